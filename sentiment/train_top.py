"""The e5 fine-tune recipe (the default, murmur-e5-sentiment@2; `murmur model train --base e5`): the top
layers of multilingual-e5-small are fine-tuned with a linear head on English tweets and Chinese reviews,
the bottom layers and the 4-bit vocabulary table stay frozen (adapted.py says why: one pass also gives the
plain e5 embedding).

Because the bottom layers are frozen, their output for each training text never changes: it is computed
once (`bottom_states`, kept on disk in the work folder) and every epoch runs only the adapted layers, about
a third of the cost of a full pass. On 2 CPU cores an epoch over ~75,000 texts takes tens of minutes, not
hours. The state (weights, optimiser, step, best so far) is saved at every evaluation, so a run stopped
midway resumes where it was when the same command is run again.

Chosen on data that stands for the unseen: English on val.tsv (macro recall), Chinese on whole categories
of zh_shopping.tsv held out from training (binary accuracy), the checkpoint with the best mean of the two.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .adapted import ADAPTED_FILE, AdaptedTopClassifier
from .data import (
    CategorisedRow,
    Row,
    has_categories,
    label_counts,
    length_bucketed_batches,
    read_categorised,
    read_tsv,
    split_holdout,
    texts_of,
)
from .model import LABELS, ModelError, base_model_path, build_mean_pooled
from .scorer import plan_batches
from .train_e5 import E5_BASE, E5_PREFIX, _metrics, _row_weights

HOLDOUT_CATEGORIES = ("dairy", "phones")  # one food, one device: the two smallest but water heaters (573)
FROM_LAYER = 8  # adapt the top 4 of 12 layers: the plain embedding then costs 4/12 of a pass more


@dataclass
class Example:
    label: int  # index in LABELS
    binary: bool  # two-label data: only negative vs positive counts
    ids: list[int]


@dataclass
class Plan:
    """What a run trains on and chooses on."""

    train: list[tuple[str, str, bool]]  # label, text, binary
    en_rows: int
    zh_counts: dict[str, int]  # per source / category, rows trained
    checks: dict[str, list[Row]]  # name -> rows: "val", "zh:<category>", "zh:hotel-heldout"


def plan_data(
    train_file: Path, *, zh_files: Sequence[Path], val_file: Path | None, holdout: Sequence[str],
    zh_per_category: int, hotel_holdout: float, exclude: Sequence[Path], seed: int,
) -> Plan:
    keep_out = texts_of(exclude)
    en = [(lab, text, False) for lab, text in read_tsv(train_file) if text not in keep_out]
    rng = random.Random(seed)
    train: list[tuple[str, str, bool]] = list(en)
    zh_counts: dict[str, int] = {}
    checks: dict[str, list[Row]] = {}
    if val_file is not None:
        checks["val"] = read_tsv(val_file)
    for path in zh_files:
        rows = read_categorised(path)
        if all(cat is None for *_, cat in rows):  # one domain (hotels): a seeded share held out, as before
            plain: list[Row] = [(lab, text) for lab, text, _ in rows]
            kept, held = split_holdout(plain, hotel_holdout, seed, keep_out)
            name = Path(path).stem.removeprefix("zh_")
            checks[f"zh:{name}-heldout"] = held
            train += [(lab, text, True) for lab, text in kept]
            zh_counts[name] = len(kept)
            continue
        by_cat: dict[str, list[CategorisedRow]] = {}
        for row in rows:
            by_cat.setdefault(row[2] or "?", []).append(row)
        for cat, group in sorted(by_cat.items()):
            if cat in holdout:
                checks[f"zh:{cat}"] = [(lab, text) for lab, text, _ in group]
                continue
            group = [r for r in group if r[1] not in keep_out]
            rng.shuffle(group)
            if zh_per_category > 0:
                group = group[:zh_per_category]
            train += [(lab, text, True) for lab, text, _ in group]
            zh_counts[cat] = len(group)
    missing = [c for c in holdout if f"zh:{c}" not in checks]
    if missing and any(has_categories(p) for p in zh_files):
        raise ModelError(f"held-out categories {', '.join(missing)} are not in the Chinese files; "
                         "name categories of their third column with --holdout-category")
    if not checks:
        raise ModelError("the fine-tune chooses its checkpoint on validation data; give --val or --zh")
    return Plan(train, len(en), zh_counts, checks)


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    return list(tokenizer([E5_PREFIX + t for t in texts], truncation=True, max_length=max_length)["input_ids"])


def _pad(seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.ones(len(seqs), width, dtype=torch.long)  # 1: XLM-R's <pad>
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


class States:
    """The bottom layers' output for each text, float16, one flat table with offsets (kept on disk)."""

    def __init__(self, flat: torch.Tensor, offsets: torch.Tensor) -> None:
        self.flat, self.offsets = flat, offsets

    def batch(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = [int(self.offsets[i + 1] - self.offsets[i]) for i in index]
        width = max(lengths)
        hidden = torch.zeros(len(index), width, self.flat.shape[1])
        mask = torch.zeros(len(index), width, dtype=torch.long)
        for row, (i, n) in enumerate(zip(index, lengths, strict=True)):
            hidden[row, :n] = self.flat[int(self.offsets[i]) : int(self.offsets[i]) + n].float()
            mask[row, :n] = 1
        return hidden, mask


def bottom_states(model: AdaptedTopClassifier, seqs: Sequence[list[int]], cache: Path, what: str) -> States:
    """`States` of `seqs`, read from `cache` when an earlier run computed them."""
    from safetensors.torch import load_file, save_file

    if cache.is_file():
        saved = load_file(str(cache))
        return States(saved["flat"], saved["offsets"])
    offsets = torch.zeros(len(seqs) + 1, dtype=torch.long)
    offsets[1:] = torch.tensor([len(s) for s in seqs]).cumsum(0)
    flat = torch.empty(int(offsets[-1]), model.encoder.config.hidden_size, dtype=torch.float16)
    done, t0, said = 0, time.monotonic(), 0.0
    with torch.inference_mode():
        for batch in plan_batches([len(s) for s in seqs], 4096):
            ids, mask = _pad([seqs[i] for i in batch])
            hidden = model.bottom(ids, mask).to(torch.float16)
            for row, i in enumerate(batch):
                flat[int(offsets[i]) : int(offsets[i + 1])] = hidden[row, : len(seqs[i])]
            done += len(batch)
            if time.monotonic() - said > 30:
                said = time.monotonic()
                _log(f"bottom layers: {done}/{len(seqs)} {what}, {done / (said - t0):.0f}/s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"flat": flat, "offsets": offsets}, str(cache), metadata={"seconds": f"{time.monotonic() - t0:.1f}"})
    return States(flat, offsets)


def states_seconds(cache: Path) -> float:
    """How long computing the states in `cache` took (0 when it does not say)."""
    from safetensors import safe_open

    try:
        with safe_open(str(cache), framework="pt") as f:
            return float((f.metadata() or {}).get("seconds", 0))
    except (OSError, ValueError):
        return 0.0


def predict(model: AdaptedTopClassifier, states: States, *, chunk: int = 64) -> torch.Tensor:
    """Probabilities of every text in `states`, through the adapted layers (eval mode)."""
    model.eval()
    n = len(states.offsets) - 1
    lengths = [int(states.offsets[i + 1] - states.offsets[i]) for i in range(n)]
    order = sorted(range(n), key=lambda i: lengths[i])
    out = torch.empty(n, len(LABELS))
    with torch.inference_mode():
        for start in range(0, n, chunk):
            index = order[start : start + chunk]
            hidden, mask = states.batch(index)
            out[index] = torch.softmax(model.sentiment_logits(hidden, mask), dim=-1)
    return out


def check(model: AdaptedTopClassifier, checks: dict[str, tuple[list[Row], States]]) -> dict[str, float]:
    """The figures every checkpoint is judged by: val macro recall, each held-out set's binary accuracy."""
    figures: dict[str, float] = {}
    for name, (rows, states) in checks.items():
        binary = name != "val"
        m = _metrics(predict(model, states), [lab for lab, _ in rows], binary)
        figures[name] = round(m["accuracy"] if binary else m["macro_recall"], 4)
    return figures


def goal(figures: dict[str, float]) -> float:
    """The mean of val macro recall and the mean accuracy on held-out categories (hotel's share apart: a
    domain that is also trained)."""
    parts = []
    if "val" in figures:
        parts.append(figures["val"])
    unseen = [v for k, v in figures.items() if k.startswith("zh:") and not k.endswith("-heldout")]
    if unseen:
        parts.append(sum(unseen) / len(unseen))
    return sum(parts) / len(parts)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fine_tune(
    model: AdaptedTopClassifier, examples: list[Example], states: States, checks: dict[str, tuple[list[Row], States]],
    work: Path, *, key: str, epochs: int, batch_size: int, lr: float, head_lr: float, zh_weight: float,
    evals_per_epoch: int, seed: int, finish_now: bool = False,
) -> dict[str, Any]:
    """Train the adapted layers and head; resumable from `work/state.pt` (same `key`). Returns the best
    checkpoint's figures and the history; the best weights are in `work/best.safetensors`. `finish_now`:
    train no further than the saved state (the best checkpoint so far is the result)."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    weights = _row_weights([LABELS[e.label] for e in examples], [e.binary for e in examples], zh_weight)
    weights = weights / weights.mean()
    params = [{"params": list(model.adapted.parameters()), "lr": lr},
              {"params": list(model.classifier.parameters()), "lr": head_lr}]
    optimizer = torch.optim.AdamW(params, weight_decay=0.01)
    lengths = [len(e.ids) for e in examples]
    per_epoch = len(length_bucketed_batches(lengths, batch_size, random.Random(0)))
    total = per_epoch * epochs
    warmup = max(1, int(total * 0.06))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    every = max(1, per_epoch // evals_per_epoch)
    state_file = work / "state.pt"
    step, history, best, seconds = 0, [], {"goal": -1.0}, 0.0
    if state_file.is_file():
        saved = torch.load(str(state_file), weights_only=False)
        if saved["key"] == key:
            model.adapted.load_state_dict(saved["adapted"])
            model.classifier.load_state_dict(saved["classifier"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            step, history, best = saved["step"], saved["history"], saved["best"]
            seconds = float(saved.get("seconds", 0.0))
            torch.set_rng_state(saved["rng"])
            _log(f"resumed at step {step} of {total} (best so far {best})")
    labels = torch.tensor([e.label for e in examples])
    binary = torch.tensor([e.binary for e in examples])
    pair = [LABELS.index("negative"), LABELS.index("positive")]
    to_pair = torch.tensor([0 if lab == "negative" else 1 for lab in LABELS])
    t0, said = time.monotonic(), time.monotonic()
    start_step = step
    if finish_now:
        if not history:
            raise ModelError(f"nothing to finish in {work}: no checkpoint has been checked yet; run without "
                             "--finish-now first")
        _log(f"finishing at step {step} of {total}: the best checkpoint so far is the result")
    for epoch in range(0 if finish_now else epochs):
        plan = length_bucketed_batches(lengths, batch_size, random.Random(seed * 1000 + epoch))
        for n, index in enumerate(plan):
            if epoch * per_epoch + n < step:
                continue  # done before a resume
            model.adapted.train()
            hidden, mask = states.batch(index)
            logits = model.sentiment_logits(hidden, mask)
            y, bi, w = labels[index], binary[index], weights[index]
            full = torch.nn.functional.cross_entropy(logits, y, reduction="none")
            two = torch.nn.functional.cross_entropy(logits[:, pair], to_pair[y], reduction="none")
            loss = (w * torch.where(bi, two, full)).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            if time.monotonic() - said > 60:
                said = time.monotonic()
                rate = (step - start_step) * batch_size / (said - t0)
                _log(f"epoch {epoch + 1}/{epochs} step {step}/{total} loss {loss.item():.4f} {rate:.0f} texts/s")
            if step % every == 0 or step == total:
                figures = check(model, checks)
                record = {"step": step, "epoch": round(step / per_epoch, 2), **figures, "goal": round(goal(figures), 4)}
                history.append(record)
                _log(json.dumps(record))
                if record["goal"] > best["goal"]:
                    best = record
                    save_file(model.adapted_state(), str(work / "best.safetensors"))
                torch.save({"key": key, "seconds": seconds + time.monotonic() - t0,
                            "adapted": model.adapted.state_dict(),
                            "classifier": model.classifier.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "step": step, "history": history, "best": best,
                            "rng": torch.get_rng_state()}, str(state_file) + ".tmp")
                Path(str(state_file) + ".tmp").replace(state_file)
    if step > start_step:
        seconds += time.monotonic() - t0
    return {"best": best, "history": history, "steps": total, "steps_per_epoch": per_epoch,
            "fine_tune_seconds": round(seconds, 1)}


def prepare(
    train_file: Path, out_dir: Path, *, zh_files: Sequence[Path], val_file: Path | None,
    holdout: Sequence[str] = HOLDOUT_CATEGORIES, zh_per_category: int = 3000, hotel_holdout: float = 0.15,
    exclude: Sequence[Path] = (), seed: int = 13, max_length: int = 96, from_layer: int = FROM_LAYER,
    work: Path | None = None,
) -> tuple[AdaptedTopClassifier, Any, Plan, list[Example], States, dict[str, tuple[list[Row], States]], Path, str]:
    """The model, tokenizer, data, cached bottom states and the work folder of a fine-tune."""
    plan = plan_data(train_file, zh_files=zh_files, val_file=val_file, holdout=holdout,
                     zh_per_category=zh_per_category, hotel_holdout=hotel_holdout, exclude=exclude, seed=seed)
    base = base_model_path(E5_BASE, out_dir)
    plain, tokenizer = build_mean_pooled(base, len(LABELS), normalize=False, e5_packed=True)
    model = AdaptedTopClassifier(plain.encoder, len(LABELS), from_layer=from_layer)
    texts = [t for _, t, _ in plan.train]
    digest = hashlib.sha256(json.dumps([E5_BASE, E5_PREFIX, max_length, from_layer, texts]).encode()).hexdigest()[:16]
    if work is None:
        from .e5 import cache_dir

        work = cache_dir() / "train" / out_dir.name
    _log(f"{len(texts)} training texts ({plan.en_rows} English, Chinese {plan.zh_counts}); work folder {work}")
    seqs = _tokenize(tokenizer, texts, max_length)
    states = bottom_states(model, seqs, work / f"train-{digest}.safetensors", "training texts")
    examples = [Example(LABELS.index(lab), bi, s) for (lab, _, bi), s in zip(plan.train, seqs, strict=True)]
    checks = {}
    for name, rows in plan.checks.items():
        rows_digest = hashlib.sha256(json.dumps([E5_PREFIX, max_length, from_layer, rows]).encode()).hexdigest()[:16]
        file = work / f"check-{name.replace(':', '-')}-{rows_digest}.safetensors"
        checks[name] = (rows, bottom_states(model, _tokenize(tokenizer, [t for _, t in rows], max_length), file, name))
    return model, tokenizer, plan, examples, states, checks, work, digest


def run(
    train_file: Path, out_dir: Path, *, zh_files: Sequence[Path], val_file: Path | None,
    holdout: Sequence[str] = HOLDOUT_CATEGORIES, zh_per_category: int = 3000, exclude: Sequence[Path] = (),
    seed: int = 13, max_length: int = 96, from_layer: int = FROM_LAYER, epochs: int = 2, batch_size: int = 32,
    lr: float = 5e-5, head_lr: float = 1e-3, zh_weight: float = 1.0, evals_per_epoch: int = 4,
    work: Path | None = None, threads: int | None = None, finish_now: bool = False,
) -> tuple[AdaptedTopClassifier, Any, Plan, dict[str, Any], dict[str, Any]]:
    """Prepare and fine-tune (or resume); returns the model with its best weights loaded, the tokenizer, the
    plan, the training outcome and the recipe's settings."""
    from safetensors.torch import load_file

    if threads:
        torch.set_num_threads(threads)
    model, tokenizer, plan, examples, states, checks, work, digest = prepare(
        train_file, out_dir, zh_files=zh_files, val_file=val_file, holdout=holdout, zh_per_category=zh_per_category,
        exclude=exclude, seed=seed, max_length=max_length, from_layer=from_layer, work=work)
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "head_lr": head_lr, "zh_weight": zh_weight,
                "evals_per_epoch": evals_per_epoch, "seed": seed, "from_layer": from_layer,
                "max_length": max_length, "zh_per_category": zh_per_category, "holdout": list(holdout)}
    key = digest + json.dumps(settings, sort_keys=True)
    outcome = fine_tune(model, examples, states, checks, work, key=key, epochs=epochs, batch_size=batch_size,
                        lr=lr, head_lr=head_lr, zh_weight=zh_weight, evals_per_epoch=evals_per_epoch, seed=seed,
                        finish_now=finish_now)
    outcome["states_seconds"] = round(sum(states_seconds(f) for f in work.glob(f"*-{digest}.safetensors")), 1)
    model.load_adapted_state(load_file(str(work / "best.safetensors")))
    model.eval()
    return model, tokenizer, plan, outcome, settings


def train_e5_top(
    train_file: Path, out_dir: Path, *, zh_files: Sequence[Path], val_file: Path | None,
    model_id: str | None = None, **options: Any,
) -> dict[str, Any]:
    """Fine-tune (or resume), then check the best checkpoint on the shipped path (the Scorer on raw texts) and
    write the model directory: the adapted layers and head, murmur.json and MODEL_CARD.md."""
    from safetensors.torch import save_file

    from .cards import next_model_id, top_card, write_model_dir
    from .evaluate import evaluate_rows
    from .model import SentimentModel
    from .scorer import Scorer

    started = time.monotonic()
    model, tokenizer, plan, outcome, settings = run(train_file, out_dir, zh_files=zh_files, val_file=val_file,
                                                    **options)
    view = SentimentModel("training", torch.device("cpu"), LABELS, model, tokenizer, prefix=E5_PREFIX)
    scorer = Scorer(view, max_length=settings["max_length"])
    final: dict[str, Any] = {}
    for name, rows in plan.checks.items():
        t0 = time.monotonic()
        result = evaluate_rows(scorer, rows)
        rate = round(len(rows) / (time.monotonic() - t0), 1)
        final[name] = {"rows": len(rows), "accuracy": round(result["accuracy"], 4),
                       "macro_recall": round(result["macro_recall"], 4), "recall": result["recall"],
                       "confusion": result["confusion"], "texts_per_second": rate}
        _log(f"shipped path, {name}: {final[name]['macro_recall' if name == 'val' else 'accuracy']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_id = model_id or next_model_id(out_dir)
    save_file(model.adapted_state(), str(out_dir / ADAPTED_FILE))
    recipe = {
        "method": f"top {len(model.adapted)} of {len(model.encoder.encoder.layer)} layers fine-tuned (AdamW, "
                  "weighted cross-entropy, two-label rows on the negative/positive logits), linear head on "
                  "their mean-pooled output; bottom layers and the 4-bit vocabulary table frozen",
        "train_file": Path(train_file).name,
        "train_rows": plan.en_rows,
        "train_counts": label_counts([(lab, t) for lab, t, bi in plan.train if not bi]),
        "zh_files": [Path(p).name for p in zh_files],
        "zh_train_rows": sum(plan.zh_counts.values()),
        "zh_train_per_source": plan.zh_counts,
        "zh_train_counts": label_counts([(lab, t) for lab, t, bi in plan.train if bi]),
        "excluded_files": [Path(p).name for p in options.get("exclude", ())],
        **settings,
        "chosen": outcome["best"],
        "history": outcome["history"],
        "fine_tune_seconds": outcome["fine_tune_seconds"],
        "states_seconds": outcome["states_seconds"],
    }
    val: dict[str, Any] = {name: {k: v for k, v in f.items() if k != "confusion"} for name, f in final.items()}
    if "val" in final:  # the keys every murmur model's manifest has
        val.update(val_macro_recall=final["val"]["macro_recall"], val_accuracy=final["val"]["accuracy"])
    if "zh:hotel-heldout" in final:
        val.update(zh_heldout_accuracy=final["zh:hotel-heldout"]["accuracy"])
    manifest = write_model_dir(
        out_dir, model_id=model_id, base=E5_BASE, base_name="intfloat/multilingual-e5-small",
        max_length=settings["max_length"], recipe=recipe, val=val, card=lambda m: top_card(m, final),
        started=started, head={"file": ADAPTED_FILE, "pooling": "mean", "normalize": False,
                               "adapted_from_layer": settings["from_layer"]},
        prefix=E5_PREFIX, languages=["en", "zh"] if zh_files else ["en"],
    )
    _log(f"wrote {out_dir} ({model_id})")
    return {"model_id": model_id, "out_dir": str(out_dir), **manifest["val"]}


__all__ = ["ADAPTED_FILE", "AdaptedTopClassifier", "fine_tune", "prepare", "train_e5_top"]
