"""Scoring benchmark: murmur's Scorer (float32 and int8) against the transformers pipeline the tutorials
write, on the same texts, the same model and the same number of threads.

    python bench/score.py [--model NAME] [--file TSV] [--limit N] [--threads 2] [--repeat 1]

Variants, each in its own process (so each peak RSS is that variant's alone) and warmed up on a few
texts before it is timed:
  pipeline      pipeline("text-classification") called once per text (the tutorial baseline)
  pipeline-32   the same pipeline given the whole list with batch_size=32
  scorer        murmur's Scorer: token-budget batches, length-sorted, padded per batch
  scorer-int8   the same Scorer on the model after quantize_int8 (CPU only)
A model transformers' pipeline cannot wrap (murmur's mean-pooled e5 classifier) gets the same two
baselines written out by hand: tokenize, forward, softmax, per text or per 32 texts in file order.
Every variant sees the texts the Scorer's tokenizer sees (with the model's prefix, e.g. e5's "query: ")
and truncates at the Scorer's max_length.

Prints texts/s, seconds and peak RSS per variant, macro recall and accuracy when the file has a `label`
column, and `murmur scorer: N texts/s, Rx the naive pipeline`, where N is the fastest Scorer variant
eligible as a default: int8 is eligible only when its macro recall is within 0.5 points of float32's.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO.parent / "shared" / "data" / "sentiment" / "val.tsv"
VARIANTS = ("pipeline", "pipeline-32", "scorer", "scorer-int8", "scorer+embed", "scorer-int8+embed")
NAIVE = "pipeline"
WARM_UP = 8  # texts scored before timing: first calls pay for lazy init and allocator growth
MAX_MACRO_RECALL_DROP = 0.005  # the same rule as murmur.sentiment.quantize (kept here: no torch in the parent)


def read_texts(path: Path) -> tuple[list[str], list[str] | None]:
    """The `text` column of a TSV with a header, and its `label` column when it has one.

    QUOTE_NONE: tweets are stored as written, quotes included, which is what training and
    `murmur model eval` read too.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise SystemExit(f"{path} has no 'text' column in its header; give a TSV with a header row")
        rows = list(reader)
    texts = [r["text"] for r in rows]
    labels = [r["label"] for r in rows] if "label" in (reader.fieldnames or []) else None
    return texts, labels


def _mib_peak() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _mib_now() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None  # not Linux
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- in the child: one variant --------------------------------------------------------------------


def scorer_input(scorer: Any, text: str) -> str:
    """What the Scorer hands its tokenizer for `text`: the baselines must see the same (e5: "query: ...").

    Asked of the Scorer itself rather than of an attribute, so the bench stays right wherever the
    prefix is applied; falls back to the model's `prefix` if the Scorer tokenizes some other way.
    """
    import dataclasses

    from murmur.sentiment.scorer import Scorer

    seen: list[str] = []

    class Recording:
        def __init__(self, tok: Any) -> None:
            self._tok = tok

        def __call__(self, texts: Any, *args: Any, **kwargs: Any) -> Any:
            seen.extend([texts] if isinstance(texts, str) else texts)
            return self._tok(texts, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._tok, name)

    sm = scorer.model
    probe = Scorer(dataclasses.replace(sm, tokenizer=Recording(sm.tokenizer)),
                   max_tokens=scorer.max_tokens, max_length=scorer.max_length)
    probe.score([text])
    if seen and seen[0].endswith(text):
        return seen[0]
    return getattr(sm, "prefix", "") + text


def _label_of(sm: Any, name: str) -> str:
    # The pipeline answers in config label names; map them through the index onto murmur's labels.
    label2id = getattr(getattr(sm.model, "config", None), "label2id", None) or {}
    return sm.labels[int(label2id[name])] if name in label2id else name


def baseline(sm: Any, max_length: int, batch_size: int | None) -> Callable[[Sequence[str]], list[str]]:
    """The tutorial baseline: a transformers pipeline, per text (`batch_size` None) or batched."""
    import torch
    from transformers import PreTrainedModel, pipeline

    if isinstance(sm.model, PreTrainedModel):
        pipe = pipeline("text-classification", model=sm.model, tokenizer=sm.tokenizer, device=sm.device)
        kwargs = {"top_k": None, "truncation": True, "max_length": max_length}  # all classes, like Score

        def run_pipeline(texts: Sequence[str]) -> list[str]:
            if batch_size is None:
                out = [pipe(t, **kwargs) for t in texts]
            else:
                out = pipe(list(texts), batch_size=batch_size, **kwargs)
            return [_label_of(sm, max(r, key=lambda d: d["score"])["label"]) for r in out]

        return run_pipeline

    # Not a transformers model (murmur's mean-pooled classifier): what the pipeline does, by hand.
    step = batch_size or 1

    def run_loop(texts: Sequence[str]) -> list[str]:
        labels = []
        with torch.inference_mode():
            for start in range(0, len(texts), step):
                chunk = list(texts[start : start + step])
                inputs = sm.tokenizer(chunk, truncation=True, max_length=max_length, padding=True,
                                      return_tensors="pt").to(sm.device)
                probs = torch.softmax(sm.model(**inputs).logits.float(), dim=-1)
                labels.extend(sm.labels[i] for i in probs.argmax(dim=-1).tolist())
        return labels

    return run_loop


def run_variant(
    variant: str, model_name: str, device: str, threads: int, path: Path, limit: int, repeat: int = 1
) -> dict[str, Any]:
    import torch

    from murmur.config import load_settings
    from murmur.sentiment.model import load
    from murmur.sentiment.scorer import Scorer

    torch.set_num_threads(threads)
    texts, _ = read_texts(path)
    texts = texts[:limit] if limit > 0 else texts
    started = time.perf_counter()
    sm = load(model_name, device)
    if variant.startswith("scorer-int8"):
        from murmur.sentiment.quantize import int8_available, quantize_int8

        if not int8_available(sm.device):
            return {"variant": variant, "skipped": f"no int8 on {sm.device.type}"}
        sm = quantize_int8(sm)
    load_seconds = time.perf_counter() - started
    scorer = Scorer(sm, max_tokens=load_settings(environ={}).model.max_tokens or None)
    seen = scorer_input(scorer, texts[0]) if texts else ""
    prefix = seen[: len(seen) - len(texts[0])] if texts else ""
    if variant.endswith("+embed"):  # scores and e5's plain embedding from one pass (issue 14's cost)
        from murmur.sentiment.embeddings import shares_pass

        if not shares_pass(sm):
            return {"variant": variant, "skipped": f"{sm.model_id} does not share e5's pass"}

        def run(batch: Sequence[str]) -> list[str]:
            return [s.label for s in scorer.score_with_embeddings(batch)[0]]
        inputs = texts
    elif variant.startswith("scorer"):
        def run(batch: Sequence[str]) -> list[str]:
            return [s.label for s in scorer.score(batch)]
        inputs = texts
    else:
        run = baseline(sm, scorer.max_length, 32 if variant == "pipeline-32" else None)
        inputs = [scorer_input(scorer, t) for t in texts]
    rss_loaded = _mib_now()
    run(inputs[:WARM_UP])
    peak_before = _mib_peak()
    seconds = float("inf")
    for _ in range(repeat):  # the best of `repeat` passes: the others lost time to something else
        started = time.perf_counter()
        labels = run(inputs)
        seconds = min(seconds, time.perf_counter() - started)
    return {
        "variant": variant, "model_id": sm.model_id, "device": str(sm.device), "texts": len(texts),
        "seconds": seconds, "repeat": repeat, "per_second": len(texts) / seconds, "load_seconds": load_seconds,
        "rss_loaded_mib": rss_loaded, "peak_before_mib": peak_before, "peak_mib": _mib_peak(),
        "prefix_seen": prefix, "labels": labels,
        "threads": torch.get_num_threads(),
    }


# --- in the parent ----------------------------------------------------------------------------------


def metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Macro recall over the labels present in `truth`, and accuracy (as `murmur model eval` computes them)."""
    classes = sorted(set(truth))
    recall = [
        sum(1 for t, p in zip(truth, predicted, strict=True) if t == c and p == c) / truth.count(c) for c in classes
    ]
    correct = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p)
    return {"macro_recall": sum(recall) / len(recall), "accuracy": correct / len(truth)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model name, directory or hub id (default: the config's model.name)")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE,
                        help=f"TSV with a text column (default {DEFAULT_FILE})")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N texts (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per variant, the best counts (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {','.join(VARIANTS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        from murmur.config import load_settings

        args.model = load_settings(environ={}).model.name
    if args.child:  # variant|result file
        variant, out = args.child.split("|", 1)
        result = run_variant(variant, args.model, args.device, args.threads, args.file, args.limit, args.repeat)
        Path(out).write_text(json.dumps(result), encoding="utf-8")
        return 0

    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    texts, truth = read_texts(args.file)
    n = min(len(texts), args.limit) if args.limit > 0 else len(texts)
    truth = truth[:n] if truth else None
    print(f"{n} texts from {args.file}, model {args.model}, {args.threads} threads")
    results: dict[str, dict[str, Any]] = {}
    for variant in variants:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            out = Path(tmp.name)
        child = subprocess.run(
            [sys.executable, __file__, "--child", f"{variant}|{out}", "--model", args.model, "--file", str(args.file),
             "--limit", str(args.limit), "--repeat", str(args.repeat), "--threads", str(args.threads),
             "--device", args.device],
            capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if child.returncode != 0:
            print(f"{variant} failed:\n{child.stderr}", file=sys.stderr)
            return 1
        results[variant] = json.loads(out.read_text(encoding="utf-8"))
        out.unlink()
    for variant, r in results.items():
        if "skipped" in r:
            print(f"{variant:>12}: skipped ({r['skipped']})")
            continue
        quality = ""
        if truth:
            r.update(metrics(truth, r["labels"]))
            quality = f", macro recall {r['macro_recall']:.4f}, accuracy {r['accuracy']:.4f}"
        if variant != "scorer" and "labels" in results.get("scorer", {}):
            same = sum(a == b for a, b in zip(r["labels"], results["scorer"]["labels"], strict=True)) / n
            quality += f", same label as scorer {same:.1%}"
        print(f"{variant:>12}: {r['per_second']:6.1f} texts/s ({r['seconds']:.1f}s), peak RSS {r['peak_mib']:.0f} MiB "
              f"(after load {r['rss_loaded_mib'] or 0:.0f}, before timing {r['peak_before_mib']:.0f}){quality}")
    first = next((r for r in results.values() if "model_id" in r), None)
    if first:
        print(f"model {first['model_id']} on {first['device']}, {first['threads']} threads, "
              f"input prefix {first['prefix_seen']!r}")
    print(f"bench parent process (no model): peak RSS {_mib_peak():.0f} MiB")

    eligible = {}
    if "scorer" in results:
        eligible["scorer"] = results["scorer"]
    int8 = results.get("scorer-int8", {})
    if "per_second" in int8:
        if not truth or "macro_recall" not in results.get("scorer", {}):
            print("scorer-int8 not eligible as default: no labels (or no float32 run) to compare macro recall")
        elif results["scorer"]["macro_recall"] - int8["macro_recall"] <= MAX_MACRO_RECALL_DROP:
            eligible["scorer-int8"] = int8
        else:
            drop = 100 * (results["scorer"]["macro_recall"] - int8["macro_recall"])
            print(f"scorer-int8 not eligible as default: macro recall {drop:.2f} points below float32 (max 0.5)")
    if eligible and NAIVE in results and "per_second" in results[NAIVE]:
        best = max(eligible, key=lambda v: eligible[v]["per_second"])
        rate = eligible[best]["per_second"]
        note = " on this subset" if args.limit else ""
        print(f"murmur scorer: {rate:.0f} texts/s, {rate / results[NAIVE]['per_second']:.1f}x the naive pipeline "
              f"({best}{note})")
    for plain in ("scorer", "scorer-int8"):  # what storing embeddings costs (issue 14: at most 1.5x)
        both = results.get(plain + "+embed", {})
        if "per_second" in both and "per_second" in results.get(plain, {}):
            print(f"scoring with embeddings: {both['per_second']:.0f} texts/s, "
                  f"{results[plain]['per_second'] / both['per_second']:.2f}x the time of scoring alone ({plain})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
