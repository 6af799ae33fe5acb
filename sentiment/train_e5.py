"""The e5 recipe (the default): multilingual-e5-small stays frozen; each text is embedded once (mean-pooled),
and a linear head is fitted on English tweets and Chinese reviews. Minutes on a CPU. Writes a model
directory `murmur.sentiment.model.load` reads: the head as safetensors, murmur.json and MODEL_CARD.md."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .cards import e5_card, next_model_id, write_model_dir
from .data import Row, label_counts, read_tsv, split_holdout, subsample, texts_of
from .evaluate import evaluate, evaluate_rows, metrics
from .model import HEAD_FILE, LABELS, ModelError, SentimentModel, base_model_path, build_mean_pooled
from .scorer import Scorer, plan_batches

E5_BASE = {"convert": "multilingual-e5-small"}
E5_BASE_NAME = "intfloat/multilingual-e5-small"
# e5's model card: "query: " for symmetric tasks and for embeddings used as features (linear probes).
E5_PREFIX = "query: "


def embed_texts(
    model: Any, tokenizer: Any, texts: Sequence[str], *, prefix: str, max_length: int,
    max_tokens: int = 4096, log_every: int = 0,
) -> torch.Tensor:
    """The pooled embedding of each text, in input order, computed in length-sorted batches."""
    encoded = tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length)
    ids = encoded["input_ids"]
    out = torch.empty(len(ids), model.classifier.in_features)
    done, t0 = 0, time.monotonic()
    with torch.inference_mode():
        for batch in plan_batches([len(x) for x in ids], max_tokens):
            padded = tokenizer.pad([{k: encoded[k][i] for k in encoded} for i in batch], return_tensors="pt")
            out[batch] = model.embed(padded["input_ids"], padded["attention_mask"]).float()
            done += len(batch)
            if log_every and done // log_every != (done - len(batch)) // log_every:
                _log(f"embedded {done}/{len(ids)} texts, {done / (time.monotonic() - t0):.0f}/s")
    return out


def _embeddings(
    model: Any, tokenizer: Any, texts: Sequence[str], *, prefix: str, max_length: int, cache: Path | None
) -> torch.Tensor:
    # A cache for iterating on the head: keyed by everything the embeddings depend on.
    from safetensors.torch import load_file, save_file

    key = hashlib.sha256(json.dumps([E5_BASE, prefix, max_length, list(texts)]).encode()).hexdigest()[:24]
    path = cache / f"e5-{key}.safetensors" if cache is not None else None
    if path is not None and path.is_file():
        return load_file(str(path))["x"]
    x = embed_texts(model, tokenizer, texts, prefix=prefix, max_length=max_length, log_every=2000)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"x": x.contiguous()}, str(path))
    return x


def fit_head(
    x: torch.Tensor, y: torch.Tensor, binary: torch.Tensor, weight: torch.Tensor, *, l2: float,
    max_iter: int = 300,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3-class linear head (weight, bias) on features `x`, by weighted, L2-penalised cross-entropy.

    Rows marked `binary` (two-label data: Chinese reviews) only say negative vs positive, so their
    loss is the cross-entropy over those two logits: they neither teach nor unteach neutral, which is
    learnt from the English tweets alone. Deterministic: full batch, L-BFGS, float64.
    """
    x64 = x.double()
    mean, std = x64.mean(0), x64.std(0).clamp(min=1e-6)
    z = (x64 - mean) / std  # standardised: e5's normalised embeddings are far from isotropic
    w = torch.zeros(len(LABELS), x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(LABELS), dtype=torch.float64, requires_grad=True)
    pair = [LABELS.index("negative"), LABELS.index("positive")]
    to_pair = torch.tensor([0 if lab == "negative" else 1 for lab in LABELS])
    weight = weight.double() / weight.sum()
    optimizer = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = z @ w.T + b
        full = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        two = torch.nn.functional.cross_entropy(logits[:, pair], to_pair[y], reduction="none")
        loss = (weight * torch.where(binary, two, full)).sum() + l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    # Fold the standardisation into the layer: it then reads the raw pooled embeddings.
    with torch.no_grad():
        w_raw = w / std
        return w_raw.float(), (b - w_raw @ mean).float()


def _row_weights(labels: Sequence[str], binary: Sequence[bool], zh_weight: float) -> torch.Tensor:
    # Class-balanced within each source (the goal is macro recall; tweets are 15% negative), then the
    # two-label rows together weigh `zh_weight` times the three-label rows.
    weights = []
    groups: dict[tuple[bool, str], int] = {}
    for lab, bi in zip(labels, binary, strict=True):
        groups[(bi, lab)] = groups.get((bi, lab), 0) + 1
    for lab, bi in zip(labels, binary, strict=True):
        classes = sum(1 for g in groups if g[0] == bi)
        share = zh_weight if bi else 1.0
        weights.append(share / (classes * groups[(bi, lab)]))
    return torch.tensor(weights)


def _predict(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, normalize: bool) -> torch.Tensor:
    if normalize:
        x = torch.nn.functional.normalize(x, dim=-1)
    return torch.softmax(x @ w.T + b, dim=-1)



def _metrics(probs: torch.Tensor, labels: Sequence[str], binary: bool) -> dict[str, Any]:
    neg, pos = LABELS.index("negative"), LABELS.index("positive")
    if binary:
        pred = ["positive" if p[pos] > p[neg] else "negative" for p in probs.tolist()]
    else:
        pred = [LABELS[i] for i in probs.argmax(-1).tolist()]
    return metrics(labels, pred, binary=binary)


def train_e5(
    train_file: Path,
    out_dir: Path,
    *,
    zh_file: Path | None = None,
    val_file: Path | None = None,
    limit: int = 0,
    seed: int = 13,
    max_length: int = 128,
    l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2),
    zh_weight_grid: Sequence[float] = (0.25, 0.5, 1.0),
    normalize_grid: Sequence[bool] = (True, False),
    zh_holdout: float = 0.15,
    exclude: Sequence[Path] = (),
    embed_cache: Path | None = None,
    model_id: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fit a linear head over frozen, mean-pooled multilingual-e5-small; write the model directory.

    Every text is embedded once. The grid (L2 penalty x weight of the Chinese rows x L2-normalised or
    raw embeddings) is searched on `val_file` and a seeded held-out split of `zh_file`: the setting
    with the best mean of val macro recall and held-out binary accuracy is written. Rows whose text
    appears in an `exclude` file (the tests' samples) go to the held-out side, never to training.
    """
    if threads:
        torch.set_num_threads(threads)
    started = time.monotonic()
    keep_out = texts_of(exclude)
    en_rows = [r for r in subsample(read_tsv(train_file), limit, seed) if r[1] not in keep_out]
    zh_train: list[Row] = []
    zh_held: list[Row] = []
    if zh_file is not None:
        zh_train, zh_held = split_holdout(read_tsv(zh_file), zh_holdout, seed, keep_out)
    val_rows = read_tsv(val_file) if val_file is not None else []
    if not val_rows and not zh_held:
        raise ModelError("the e5 recipe chooses its head on validation data; give --val or --zh")

    base_path = base_model_path(E5_BASE, out_dir)
    model, tokenizer = build_mean_pooled(base_path, len(LABELS), normalize=False, e5_packed=True)
    model.eval()

    def embed(rows: list[Row], what: str) -> torch.Tensor:
        _log(f"embedding {len(rows)} {what}")
        return _embeddings(model, tokenizer, [t for _, t in rows], prefix=E5_PREFIX, max_length=max_length,
                           cache=embed_cache)

    t_embed = time.monotonic()
    train_rows = en_rows + zh_train
    x_train = embed(train_rows, "training texts")
    x_val = embed(val_rows, "val texts") if val_rows else None
    x_zh = embed(zh_held, "held-out chinese texts") if zh_held else None
    embed_seconds = time.monotonic() - t_embed
    y = torch.tensor([LABELS.index(lab) for lab, _ in train_rows])
    is_binary = [False] * len(en_rows) + [True] * len(zh_train)

    grid: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], torch.Tensor, torch.Tensor] | None = None
    for normalize in normalize_grid:
        x = torch.nn.functional.normalize(x_train, dim=-1) if normalize else x_train
        for zh_weight in zh_weight_grid if zh_train else (0.0,):
            weight = _row_weights([lab for lab, _ in train_rows], is_binary, zh_weight)
            for l2 in l2_grid:
                w, b = fit_head(x, y, torch.tensor(is_binary), weight, l2=l2)
                record: dict[str, Any] = {"normalize": normalize, "zh_weight": zh_weight, "l2": l2}
                goals = []
                if x_val is not None:
                    m = _metrics(_predict(x_val, w, b, normalize), [lab for lab, _ in val_rows], False)
                    record.update(val_macro_recall=m["macro_recall"], val_accuracy=m["accuracy"])
                    goals.append(m["macro_recall"])
                if x_zh is not None:
                    m = _metrics(_predict(x_zh, w, b, normalize), [lab for lab, _ in zh_held], True)
                    record.update(zh_heldout_accuracy=m["accuracy"])
                    goals.append(m["accuracy"])
                _log("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
                grid.append(record)
                goal = sum(goals) / len(goals)
                if best is None or goal > best[0]:
                    best = (goal, record, w, b)
    assert best is not None
    _, chosen, w, b = best
    _log(f"chose {chosen}")

    # The final check runs the shipped path: the Scorer on raw texts, prefix and pooling inside.
    from safetensors.torch import save_file

    model.normalize = chosen["normalize"]
    with torch.no_grad():
        model.classifier.weight.copy_(w)
        model.classifier.bias.copy_(b)
    view = SentimentModel("training", torch.device("cpu"), LABELS, model, tokenizer, prefix=E5_PREFIX)
    scorer = Scorer(view, max_length=max_length)
    final: dict[str, Any] = {}
    if val_file is not None:
        t0 = time.monotonic()
        result = evaluate(scorer, val_file)
        rate = result["rows"] / (time.monotonic() - t0)
        final.update(val_macro_recall=result["macro_recall"], val_accuracy=result["accuracy"],
                     val_confusion=result["confusion"], val_texts_per_second=round(rate, 1))
    if zh_held:
        result = evaluate_rows(scorer, zh_held)
        final.update(zh_heldout_accuracy=result["accuracy"], zh_heldout_confusion=result["confusion"],
                     zh_heldout_rows=len(zh_held))
    _log(f"shipped path: {final}")

    out_dir.mkdir(parents=True, exist_ok=True)
    model_id = model_id or next_model_id(out_dir)
    save_file({"weight": w.contiguous(), "bias": b.contiguous()}, str(out_dir / HEAD_FILE))
    recipe = {
        "method": "frozen encoder, linear head on mean-pooled embeddings (L-BFGS, weighted cross-entropy)",
        "train_file": Path(train_file).name,
        "train_rows": len(en_rows),
        "train_counts": label_counts(en_rows),
        "zh_file": Path(zh_file).name if zh_file is not None else None,
        "zh_train_rows": len(zh_train),
        "zh_train_counts": label_counts(zh_train),
        "zh_heldout_rows": len(zh_held),
        "zh_holdout": zh_holdout,
        "excluded_files": [str(Path(p).name) for p in exclude],
        "limit": limit,
        "seed": seed,
        "max_length": max_length,
        "prefix": E5_PREFIX,
        "grid": {"l2": list(l2_grid), "zh_weight": list(zh_weight_grid), "normalize": list(normalize_grid)},
        "chosen": {k: chosen[k] for k in ("normalize", "zh_weight", "l2")},
        "embed_seconds": round(embed_seconds, 1),
    }
    manifest = write_model_dir(
        out_dir, model_id=model_id, base=E5_BASE, base_name=E5_BASE_NAME, max_length=max_length, recipe=recipe,
        val={k: v for k, v in final.items() if "confusion" not in k}, card=lambda m: e5_card(m, grid, final),
        started=started, head={"file": HEAD_FILE, "pooling": "mean", "normalize": chosen["normalize"]},
        prefix=E5_PREFIX, languages=["en", "zh"] if zh_file is not None else ["en"],
    )
    _log(f"wrote {out_dir} ({model_id}) in {manifest['recipe']['train_seconds']} s")
    return {"model_id": model_id, "out_dir": str(out_dir), "grid": grid, **manifest["val"]}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
