"""The fine-tune recipe (`murmur model train --base e5`, murmur-e5-sentiment@2's): a tiny real run on the
committed samples, its resume, the model folder it writes, and the shape it ships (adapted top layers whose
plain twin still gives e5's own embedding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from murmur.cli import main
from murmur.sentiment.adapted import AdaptedTopClassifier
from murmur.sentiment.data import read_categorised
from murmur.sentiment.model import BUILTIN_NAME, BUILTINS, E5_V1_NAME, ModelError, build_mean_pooled, load
from murmur.sentiment.scorer import Scorer
from tests.conftest import FIXTURES

SAMPLES = FIXTURES / "sentiment"


def tiny_args(out: Path, work: Path) -> list[str]:
    # Trained on the English sample and the shopping sample's dairy rows; chosen on its phones rows.
    return ["model", "train", "--train", str(SAMPLES / "val_sample.tsv"), "--val", str(SAMPLES / "val_sample.tsv"),
            "--zh", str(SAMPLES / "zh_shopping_sample.tsv"), "--holdout-category", "phones", "--epochs", "1",
            "--batch-size", "32", "--max-length", "32", "--adapt-layers", "2", "--seed", "5", "--work", str(work),
            "--out", str(out), "--model-id", "tiny@1", "--no-int8", "--threads", "2"]


@pytest.mark.slow
def test_a_tiny_fine_tune_writes_a_model_that_loads_scores_and_resumes_without_redoing_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, work = tmp_path / "tiny", tmp_path / "work"
    assert main(tiny_args(out, work)) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model_id"] == "tiny@1" and set(result) >= {"val", "zh:phones", "val_macro_recall"}
    manifest = json.loads((out / "murmur.json").read_text())
    assert manifest["head"]["adapted_from_layer"] == 10 and manifest["recipe"]["zh_train_per_source"] == {"dairy": 80}
    assert manifest["recipe"]["holdout"] == ["phones"] and manifest["recipe"]["history"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "| zh:phones | 80 |" in card and "tiny@1" in card
    first = (out / "adapted.safetensors").read_bytes()
    assert 0 < len(first) < 25 * 2**20  # what ships stays small

    # The same command again resumes from the saved state: no step is trained twice, same weights.
    assert main(tiny_args(out, work)) == 0
    err = capsys.readouterr().err
    assert "resumed at step" in err and "epoch 1/1 step" not in err
    assert (out / "adapted.safetensors").read_bytes() == first

    model = load(str(out), device="cpu")
    assert model.model_id == "tiny@1" and isinstance(model.model, AdaptedTopClassifier)
    scores = Scorer(model).score(["great day", "这个手机太差了"])
    assert all(abs(s.negative + s.neutral + s.positive - 1) < 1e-4 for s in scores)


def test_the_plain_path_of_the_adapted_model_is_e5s_own_embedding() -> None:
    from murmur.sentiment import e5

    plain, tokenizer = build_mean_pooled(e5.ensure_e5_checkpoint(), 3, normalize=True, e5_packed=True)
    adapted = AdaptedTopClassifier(plain.encoder, 3, from_layer=8)
    with torch.no_grad():  # change the adapted copy: the plain path must not move
        for p in adapted.adapted.parameters():
            p.add_(0.01)
    texts = ["query: RedNote is full of TikTok refugees", "query: 小红书上全是美国网友"]
    encoded = tokenizer(texts, truncation=True, max_length=64)
    padded = tokenizer.pad([{k: encoded[k][i] for k in encoded} for i in range(2)], return_tensors="pt")
    with torch.inference_mode():
        reference = plain.embed(padded["input_ids"], padded["attention_mask"])
        out = adapted(padded["input_ids"], padded["attention_mask"], embed=True)
    assert torch.allclose(out["embeddings"], reference, atol=1e-5)
    assert out.logits.shape == (2, 3)


def test_both_versions_of_the_default_load_by_name_and_an_unknown_one_says_which_exist() -> None:
    v1 = load(E5_V1_NAME, device="cpu")
    assert v1.model_id == E5_V1_NAME and not isinstance(v1.model, AdaptedTopClassifier)
    default = json.loads((BUILTINS[BUILTIN_NAME] / "murmur.json").read_text())["model_id"]
    assert load(default, device="cpu").model_id == default
    with pytest.raises(ModelError, match=E5_V1_NAME):
        load(f"{BUILTIN_NAME}@99", device="cpu")


def test_model_eval_prints_figures_per_category(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "eval", str(SAMPLES / "zh_shopping_sample.tsv")]) == 0
    out = capsys.readouterr().out
    assert "per category" in out and "dairy" in out and "phones" in out
    assert main(["model", "eval", str(SAMPLES / "zh_shopping_sample.tsv"), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {c: f["rows"] for c, f in result["categories"].items()} == {"dairy": 80, "phones": 80}
    assert result["binary"] and all(0.0 <= f["accuracy"] <= 1.0 for f in result["categories"].values())


def test_the_category_column_is_read_apart_from_the_text() -> None:
    rows = read_categorised(SAMPLES / "zh_shopping_sample.tsv")
    assert len(rows) == 160 and {r[2] for r in rows} == {"dairy", "phones"}
    assert all("\t" not in text for _, text, _ in rows)
