"""What a sentiment model over the e5 encoder shares with e5's plain sentence embedding: one pass, two outputs
(see embeddings.py). Kept apart so that the scorer can use it without importing the embedder."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .model import SentimentModel

E5_PREFIX = "query: "
DIMENSIONS = 384
Encode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids, mask) -> unit-length embeddings


def _is_e5(sm: SentimentModel) -> bool:
    """Whether `sm` runs the plain multilingual-e5 encoder (a built-in or local model over the conversion)."""
    from . import e5
    from .model import read_manifest

    # An int8 copy of a built-in e5 model shares its pass too: its plain embeddings are within a cosine of
    # 0.998 of float32's on average (min 0.995, 500 tweets and reviews; docs/benchmarks.md), and a search's
    # query goes through the same int8 encoder (App.plain_embedder), so both sides drift alike.
    if sm.path is None or sm.prefix != E5_PREFIX:
        return False
    try:
        return read_manifest(sm.path)["base"].get("convert") == e5.NAME
    except Exception:  # noqa: BLE001 (a model without a readable manifest simply does not share)
        return False


def shared_encode(sm: SentimentModel) -> Encode | None:
    """The plain e5 embedding from `sm`'s own encoder, or None when `sm` cannot give it."""
    from .adapted import AdaptedTopClassifier
    from .model import MeanPooledClassifier

    model = sm.model
    if not _is_e5(sm):
        return None
    if isinstance(model, AdaptedTopClassifier):
        adapted = model

        def encode_adapted(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return adapted.plain_embedding(adapted.bottom(ids, mask), mask)

        return encode_adapted
    if isinstance(model, MeanPooledClassifier):
        pooled = model

        def encode_pooled(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(pooled.embed(ids, mask), dim=-1)

        return encode_pooled
    return None


def shares_pass(sm: SentimentModel) -> bool:
    """Whether scoring with `sm` can give the plain e5 embedding in the same pass."""
    return shared_encode(sm) is not None


def logits_and_embeddings(sm: SentimentModel, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass of a model that `shares_pass`: (logits, unit-length plain e5 embeddings)."""
    from .adapted import AdaptedTopClassifier
    from .model import MeanPooledClassifier

    model = sm.model
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    if isinstance(model, AdaptedTopClassifier):
        out = model(ids, mask, embed=True)
        return out.logits, out["embeddings"]
    if isinstance(model, MeanPooledClassifier):
        pooled = model.embed(ids, mask)
        return model.classifier(pooled), torch.nn.functional.normalize(pooled, dim=-1)
    raise ValueError(f"{sm.model_id} does not compute e5 embeddings in its scoring pass")
