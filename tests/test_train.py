"""`murmur model train`: one seeded command; the same seed gives the same adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from murmur.cli import main
from murmur.sentiment.model import load
from murmur.sentiment.train_lora import train
from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "sentiment" / "val_sample.tsv"


def tiny_run(out: Path) -> dict:
    return train(SAMPLE, out, val_file=None, limit=48, epochs=1, seed=7, batch_size=16, lr=1e-3,
                 max_length=32, lora_r=4, model_id="test-model@1", threads=2)


@pytest.mark.slow
def test_training_is_reproducible_and_loads(tmp_path: Path) -> None:
    tiny_run(tmp_path / "a")
    tiny_run(tmp_path / "b")
    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    assert all((a[k] == b[k]).all() for k in a)
    model = load(str(tmp_path / "a"), device="cpu")
    assert model.model_id == "test-model@1" and set(model.labels) == {"negative", "neutral", "positive"}
    assert (tmp_path / "a" / "MODEL_CARD.md").read_text().strip()


def test_model_train_help_shows_the_trainer_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["model", "train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--train" in out and "--seed" in out and "--limit" in out


def test_model_train_on_a_missing_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["model", "train", "--train", str(tmp_path / "none.tsv"), "--out", str(tmp_path / "m")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_model_train_without_train_or_data_dir_names_the_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MURMUR_MODEL__DATA_DIR", raising=False)
    assert main(["model", "train", "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--train" in err and "model.data_dir" in err and len(err.splitlines()) == 1
    monkeypatch.setenv("MURMUR_MODEL__DATA_DIR", str(tmp_path))  # a folder with no train.tsv in it
    assert main(["model", "train", "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert f"model.data_dir {tmp_path} has no train.tsv" in err and len(err.splitlines()) == 1


def test_a_retrain_never_writes_into_the_installed_package() -> None:
    from murmur.sentiment.model import BUILTIN_NAME, BUILTINS, MODELS_DIR
    from murmur.sentiment.train import default_out_dir

    out = default_out_dir(BUILTIN_NAME)
    assert out.name == BUILTIN_NAME and MODELS_DIR not in out.parents and out != BUILTINS[BUILTIN_NAME]


def test_a_retrain_named_like_a_builtin_continues_its_ids(tmp_path: Path) -> None:
    import json

    from murmur.sentiment.cards import next_model_id
    from murmur.sentiment.model import BUILTIN_NAME, BUILTINS, MANIFEST

    shipped = int(json.loads((BUILTINS[BUILTIN_NAME] / MANIFEST).read_text())["model_id"].rsplit("@", 1)[1])
    assert next_model_id(tmp_path / BUILTIN_NAME) == f"{BUILTIN_NAME}@{shipped + 1}"
    assert next_model_id(tmp_path / "mine") == "mine@1"


def test_labelled_files_read_with_or_without_the_header(tmp_path: Path) -> None:
    from murmur.sentiment.data import read_tsv
    from murmur.sentiment.model import ModelError

    rows = [("positive", "good"), ("negative", "bad\tstill the text")]
    body = "".join(f"{label}\t{text}\n" for label, text in rows)
    (tmp_path / "with.tsv").write_text("label\ttext\n" + body, encoding="utf-8")
    (tmp_path / "without.tsv").write_text(body, encoding="utf-8")
    assert read_tsv(tmp_path / "with.tsv") == read_tsv(tmp_path / "without.tsv") == rows
    (tmp_path / "bad.tsv").write_text("good\tpositive\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"bad.tsv:1: expected"):
        read_tsv(tmp_path / "bad.tsv")
