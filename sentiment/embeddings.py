"""Plain multilingual-e5 sentence embeddings, from the scoring pass where the model shares it, else from a
pass of their own.

e5's sentence embedding is the mean of the last hidden states over a text's real tokens, L2-normalised,
with the `query: ` prefix the scorer already puts before every text. A sentiment model built on the e5
encoder computes it on the way to its logits (murmur-e5-sentiment@1: `MeanPooledClassifier.embed`;
@2: `AdaptedTopClassifier(..., embed=True)`), so one pass serves both (`shares_pass`). Any other model (a
hub model, minilm) gets a separate plain e5 pass (`Embedder.load`). An int8 copy of a built-in e5 model
shares its (int8) pass: within a cosine of 0.998 of float32's.
Stored vectors are centred per language (centring.py) under `EMBEDDING_MODEL`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .embedding_id import EMBEDDING_MODEL
from .shared_pass import DIMENSIONS, E5_PREFIX, Encode, logits_and_embeddings, shared_encode, shares_pass

if TYPE_CHECKING:
    from .scorer import Scorer

__all__ = ["DIMENSIONS", "EMBEDDING_MODEL", "Embedder", "logits_and_embeddings", "shares_pass"]



class Embedder:
    """Texts -> plain e5 embeddings (float32, unit length, one row per text), batched by a token budget."""

    def __init__(self, encode: Encode, tokenizer: Any, device: torch.device, *, max_tokens: int | None = None,
                 max_length: int = 128) -> None:
        from .scorer import default_max_tokens

        self.encode = encode
        self.tokenizer = tokenizer
        self.device = device
        self.max_tokens = default_max_tokens(device) if max_tokens is None else max_tokens
        self.max_length = max_length

    @classmethod
    def from_scorer(cls, scorer: Scorer) -> Embedder | None:
        """An embedder over the scorer's own encoder (no second model in memory), or None if it has none."""
        encode = shared_encode(scorer.model)
        if encode is None:
            return None
        return cls(encode, scorer.model.tokenizer, scorer.model.device, max_tokens=scorer.max_tokens,
                   max_length=scorer.max_length)

    @classmethod
    def load(cls, device: str = "auto", *, max_tokens: int | None = None) -> Embedder:
        """The plain e5 encoder (the offline conversion, e5.py) on `device`; raises ModelError."""
        from . import e5
        from .errors import ModelError
        from .model import inference_dtype, quiet, resolve_device

        dev = resolve_device(device)
        try:
            with quiet():
                tokenizer = e5.load_scoring_tokenizer()
                encoder = e5.load_encoder()
        except e5.E5Error as exc:
            raise ModelError(str(exc)) from None
        encoder.to(device=dev, dtype=inference_dtype(dev))
        encoder.eval()

        def encode(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, dim=-1)

        return cls(encode, tokenizer, dev, max_tokens=max_tokens)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The embeddings of `texts`, in input order: shape (len(texts), 384)."""
        from .scorer import plan_batches

        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        tok = self.tokenizer
        encoded = tok([E5_PREFIX + t for t in texts], truncation=True, max_length=self.max_length)
        ids: list[list[int]] = encoded["input_ids"]
        with torch.inference_mode():
            for batch in plan_batches([len(x) for x in ids], self.max_tokens):
                features = [{k: encoded[k][i] for k in encoded} for i in batch]
                padded = tok.pad(features, padding="longest", return_tensors="pt")
                vecs = self.encode(padded["input_ids"].to(self.device), padded["attention_mask"].to(self.device))
                out[batch] = vecs.float().cpu().numpy()
        return out
