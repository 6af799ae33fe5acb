"""How good a model is on labelled data: macro recall, accuracy and the confusion matrix (`murmur model eval`,
training's validation, int8's check against float32)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data import Row, read_categorised
from .errors import ModelError
from .model import LABELS, SentimentModel
from .scorer import Scorer


def evaluate(model_or_scorer: SentimentModel | Scorer, tsv_path: Path, *, limit: int = 0) -> dict[str, Any]:
    """Macro recall, accuracy and confusion matrix of a model on a labelled TSV file.

    A file with only negative/positive labels is scored as binary: positive iff P(positive) > P(negative).
    A file with a `category` column (label<TAB>text<TAB>category) also gets the figures of each category
    (`categories`: name -> rows, accuracy, macro recall, recall per label, confusion).
    """
    rows = read_categorised(Path(tsv_path))
    if limit > 0:
        rows = rows[:limit]
    if not rows:
        raise ModelError(f"{tsv_path} has no rows to evaluate")
    categories = [cat for *_, cat in rows]
    return {"file": str(tsv_path), **evaluate_rows(model_or_scorer, [(lab, text) for lab, text, _ in rows],
                                                   categories=categories if any(categories) else None)}


def evaluate_rows(model_or_scorer: SentimentModel | Scorer, rows: Sequence[Row], *,
                  categories: Sequence[str | None] | None = None) -> dict[str, Any]:
    """`evaluate` on (label, text) rows already in memory; `categories` (one per row) adds per-category figures."""
    scorer = model_or_scorer if isinstance(model_or_scorer, Scorer) else Scorer(model_or_scorer)
    binary = "neutral" not in {label for label, _ in rows}
    scores = scorer.score([text for _, text in rows])
    predicted = [("positive" if s.positive > s.negative else "negative") if binary else s.label for s in scores]
    truth = [label for label, _ in rows]
    result = {"rows": len(rows), "binary": binary, **metrics(truth, predicted, binary=binary)}
    if categories is not None:
        groups: dict[str, list[int]] = {}
        for i, cat in enumerate(categories):
            groups.setdefault(cat or "(none)", []).append(i)
        result["categories"] = {
            cat: {"rows": len(index),
                  **metrics([truth[i] for i in index], [predicted[i] for i in index], binary=binary)}
            for cat, index in sorted(groups.items())
        }
    return result


def metrics(truth: Sequence[str], predicted: Sequence[str], *, binary: bool) -> dict[str, Any]:
    """Accuracy, macro recall (over the labels present), recall per label and the confusion matrix
    (`confusion[true][predicted]`) of predicted labels; binary: negative and positive only."""
    labels = ["negative", "positive"] if binary else list(LABELS)
    confusion = {t: dict.fromkeys(labels, 0) for t in labels}
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    recall = {t: confusion[t][t] / sum(confusion[t].values()) for t in labels if sum(confusion[t].values())}
    return {
        "accuracy": sum(confusion[t][t] for t in labels) / len(truth),
        "macro_recall": sum(recall.values()) / len(recall),
        "recall": recall,
        "confusion": confusion,
    }
