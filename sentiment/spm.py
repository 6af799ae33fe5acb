"""multilingual-e5's tokenizer on sentencepiece, XLM-R's own engine: the same token ids as the
`tokenizer.json` it is built from, in a fifth of the memory.

The fast (Rust) tokenizer holds XLM-R's 250,002-piece unigram vocabulary in a trie that costs a scoring
process about 300 MB; sentencepiece keeps the same vocabulary, scores and normalisation (the precompiled
NFKC character map) in a double-array trie of about 55 MB. `build_model` writes that sentencepiece model
once, next to the converted checkpoint (e5.py); `SentencePieceTokenizer` answers the calls murmur makes
of a transformers tokenizer (`tok(texts, truncation=True, max_length=N)`, `tok.pad(...)`).

Ids are those of tokenizer.json on ordinary text (checked on every val.tsv tweet and 2,000 Chinese
reviews: 4,000 of 4,000 texts). They differ in two edge cases, where sentencepiece does what XLM-R was
trained with: trailing whitespace adds no "▁" token, and "<s>", "</s>" or "<mask>" typed in a post stay
text instead of becoming control tokens.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODEL_FILE = "sentencepiece.model"
BOS, PAD, EOS, UNK = 0, 1, 2, 3  # XLM-R's ids for <s>, <pad>, </s>, <unk>


def build_model(tokenizer_json: Path, out_file: Path) -> None:
    """Write a sentencepiece unigram model with the vocabulary, scores, ids and normaliser of `tokenizer_json`."""
    from sentencepiece import sentencepiece_model_pb2 as pb_module

    pb: Any = pb_module  # generated protobuf classes: no type information

    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = spec.get("model", {})
    normalizers = (spec.get("normalizer") or {}).get("normalizers", [])
    charsmap = next((n["precompiled_charsmap"] for n in normalizers if n.get("type") == "Precompiled"), None)
    if model.get("type") != "Unigram" or charsmap is None or model.get("unk_id") != UNK:
        raise ValueError(f"{tokenizer_json} is not XLM-R's unigram tokenizer (type {model.get('type')!r})")
    proto = pb.ModelProto()
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    proto.trainer_spec.bos_id, proto.trainer_spec.pad_id = BOS, PAD
    proto.trainer_spec.eos_id, proto.trainer_spec.unk_id = EOS, UNK
    special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    kind = pb.ModelProto.SentencePiece
    for i, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = kind.UNKNOWN if i == UNK else kind.CONTROL if i in special else kind.NORMAL
    norm = proto.normalizer_spec
    norm.name = "nmt_nfkc"
    norm.precompiled_charsmap = base64.b64decode(charsmap)
    # What tokenizer.json's Metaspace pre-tokenizer and its " {2,}" -> " " replace do, the sentencepiece way.
    norm.add_dummy_prefix = norm.remove_extra_whitespaces = norm.escape_whitespaces = True
    Path(out_file).write_bytes(proto.SerializeToString())


class SentencePieceTokenizer:
    """The subset of a transformers tokenizer that murmur uses, over a sentencepiece model:
    `tok(texts, truncation=True, max_length=N, padding=..., return_tensors=...)` and `tok.pad(features)`.
    Each text becomes <s> pieces </s>; truncation keeps the first `max_length` ids, </s> included."""

    model_input_names = ("input_ids", "attention_mask")
    padding_side = "right"
    bos_token_id, pad_token_id, eos_token_id, unk_token_id = BOS, PAD, EOS, UNK
    bos_token, pad_token, eos_token, unk_token = "<s>", "<pad>", "</s>", "<unk>"

    def __init__(self, model_file: Path | str, *, model_max_length: int = 512) -> None:
        import sentencepiece

        self.model_file = str(model_file)
        self._sp = sentencepiece.SentencePieceProcessor(model_file=self.model_file)
        self.model_max_length = model_max_length

    def __len__(self) -> int:
        return int(self._sp.get_piece_size())

    def __call__(
        self,
        texts: str | Sequence[str],
        *,
        truncation: bool = False,
        max_length: int | None = None,
        padding: bool | str = False,
        return_tensors: str | None = None,
        **_: Any,
    ) -> Any:
        from transformers import BatchEncoding

        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        limit = (max_length or self.model_max_length) if truncation else None
        ids = []
        for pieces in self._sp.encode([str(t) for t in batch]) if batch else []:
            if limit is not None and len(pieces) > limit - 2:
                pieces = pieces[: max(limit - 2, 0)]
            ids.append([BOS, *pieces, EOS])
        encoded = {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}
        if padding:
            return self.pad(encoded, return_tensors=return_tensors)
        if single:
            encoded = {k: v[0] for k, v in encoded.items()}
        return BatchEncoding(encoded, tensor_type=return_tensors)

    def pad(self, features: Any, padding: bool | str = "longest", return_tensors: str | None = None,
            **_: Any) -> Any:
        """Pad to the longest in the batch: a list of {"input_ids": [...]} dicts, or a dict of lists."""
        from transformers import BatchEncoding

        if isinstance(features, dict) or hasattr(features, "keys"):
            rows = [list(x) for x in features["input_ids"]]
        else:
            rows = [list(f["input_ids"]) for f in features]
        longest = max((len(r) for r in rows), default=0)
        padded = {
            "input_ids": [r + [PAD] * (longest - len(r)) for r in rows],
            "attention_mask": [[1] * len(r) + [0] * (longest - len(r)) for r in rows],
        }
        return BatchEncoding(padded, tensor_type=return_tensors)

    def convert_tokens_to_ids(self, token: str) -> int:
        return int(self._sp.piece_to_id(token))

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._sp.id_to_piece(int(i)) for i in ids]
