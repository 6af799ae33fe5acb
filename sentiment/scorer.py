"""Score texts in batches planned by a token budget: tokenize once, bucket by length, pad per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .model import SentimentModel


@dataclass(frozen=True)
class Score:
    """A label and the probability of each class (they sum to 1; neutral is 0 for a 2-label model)."""

    label: str
    negative: float
    neutral: float
    positive: float


def plan_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Group indices into batches, shortest first, so that longest length x batch size <= max_tokens.

    Sorting by length keeps padding small (each batch is padded only to its own longest); an item
    longer than the budget on its own still gets a batch of one rather than being dropped.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])  # stable: ties keep input order
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Ascending order: the new item is the longest, so the padded cost is its length x (size + 1).
        if current and lengths[i] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


CPU_MAX_TOKENS = 2048
GPU_MAX_TOKENS = 16384


def default_max_tokens(device: torch.device) -> int:
    """The token budget per batch for `device`.

    On 2 CPU cores (multilingual-e5-small, val.tsv tweets) 2048 tokens scored 188 texts/s against 143 at
    8192: a smaller batch's activations stay in the CPU caches. A GPU wants as much work per call as
    memory allows; 16384 tokens of a small encoder is well under 1 GB of activations.
    """
    return CPU_MAX_TOKENS if device.type == "cpu" else GPU_MAX_TOKENS


class Scorer:
    """Scores texts with one loaded model; `max_tokens` bounds the padded tokens per forward pass
    (None: `default_max_tokens` for the model's device)."""

    def __init__(self, model: SentimentModel, *, max_tokens: int | None = None, max_length: int = 128) -> None:
        max_tokens = default_max_tokens(model.device) if max_tokens is None else max_tokens
        if max_tokens < 1 or max_length < 2:
            raise ValueError("max_tokens must be >= 1 and max_length >= 2")
        self.model = model
        self.max_tokens = max_tokens
        self.max_length = max_length
        self._neg = model.index("negative")
        self._neu = model.index("neutral")
        self._pos = model.index("positive")

    def score(self, texts: Sequence[str]) -> list[Score]:
        """Scores for `texts`, in input order; an empty input gives []."""
        return self._run(texts, None)

    def score_with_embeddings(self, texts: Sequence[str]) -> tuple[list[Score], np.ndarray]:
        """Scores and e5's plain sentence embeddings (unit length, shape (n, 384)) from the same pass; the
        model must compute them on its way (embeddings.shares_pass), else ValueError."""
        from .shared_pass import DIMENSIONS, shares_pass

        if not shares_pass(self.model):
            raise ValueError(f"{self.model.model_id} does not compute e5 embeddings in its scoring pass")
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        return self._run(texts, vectors), vectors

    def _run(self, texts: Sequence[str], vectors: np.ndarray | None) -> list[Score]:
        """Score `texts`; with `vectors`, also fill its rows with the texts' embeddings."""
        if not texts:
            return []
        tok = self.model.tokenizer
        prefix = self.model.prefix  # e.g. e5's "query: ": part of the model, so callers pass raw texts
        encoded = tok([prefix + t for t in texts] if prefix else list(texts), truncation=True,
                      max_length=self.max_length)
        ids: list[list[int]] = encoded["input_ids"]
        results: list[Score | None] = [None] * len(ids)
        with torch.inference_mode():
            for batch in plan_batches([len(x) for x in ids], self.max_tokens):
                features = [{k: encoded[k][i] for k in encoded} for i in batch]
                padded = tok.pad(features, padding="longest", return_tensors="pt")
                inputs = {k: v.to(self.model.device) for k, v in padded.items()}
                if vectors is None:
                    logits = self.model.model(**inputs).logits
                else:
                    from .shared_pass import logits_and_embeddings

                    logits, embedded = logits_and_embeddings(self.model, inputs)
                    vectors[batch] = embedded.float().cpu().numpy()
                # Softmax in float32 on the CPU: probabilities then sum to 1 whatever dtype ran the model.
                probs = torch.softmax(logits.float().cpu(), dim=-1).tolist()
                for i, p in zip(batch, probs, strict=True):
                    results[i] = self._to_score(p)
        return [s for s in results if s is not None]

    def score_one(self, text: str) -> Score:
        """The score of one text."""
        return self.score([text])[0]

    def _to_score(self, p: list[float]) -> Score:
        neg = p[self._neg] if self._neg is not None else 0.0
        neu = p[self._neu] if self._neu is not None else 0.0
        pos = p[self._pos] if self._pos is not None else 0.0
        label = max((("negative", neg), ("neutral", neu), ("positive", pos)), key=lambda kv: kv[1])[0]
        return Score(label, neg, neu, pos)
