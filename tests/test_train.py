"""`murmur model train`: one seeded command; the same seed gives the same adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from murmur.cli import main
from murmur.sentiment.model import load
from murmur.sentiment.train import train
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
