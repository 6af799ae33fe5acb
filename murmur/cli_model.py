"""`murmur model ...`: evaluate, predict, calibrate int8, train. Argument parsing and printing only: the
work is in murmur.sentiment (and the App for loading models as the config says)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from murmur.errors import EXIT_OK, EXIT_USAGE, UserError

if TYPE_CHECKING:
    from murmur.cli import Context


def cmd_model_train(ctx: Context) -> int:
    from murmur.sentiment.train import main as train_main

    return int(train_main(ctx.args.train_args, data_dir=ctx.app.settings.model.data_dir) or 0)


def cmd_model_int8(ctx: Context) -> int:
    from murmur.sentiment.data import training_files
    from murmur.sentiment.model import MANIFEST, ModelError, builtin_dir
    from murmur.sentiment.quantize import fit_int8_from_files

    args = ctx.args
    ref = args.model or ctx.app.settings.model.name
    try:
        model_dir = builtin_dir(ref) or Path(ref).expanduser()
    except ModelError as exc:
        raise UserError(str(exc)) from None
    if not (model_dir / MANIFEST).is_file():
        raise UserError(f"{ref} is not a murmur model directory (no {MANIFEST}); give a built-in name or "
                        "a directory written by `murmur model train`")
    for f in map(Path, [*args.calibrate, args.val, *([args.zh] if args.zh else []), *args.exclude]):
        if not f.is_file():
            raise UserError(f"{f} does not exist; give label<TAB>text files with --calibrate, --val, --zh "
                            "and --exclude")
    try:
        files = [Path(f) for f in args.calibrate] or training_files(ctx.app.settings.model.data_dir,
                                                                    option="--calibrate FILE.tsv")
        entry = fit_int8_from_files(
            model_dir, calibrate_files=files, val_file=Path(args.val), zh_file=Path(args.zh) if args.zh else None,
            rows=args.rows, seed=args.seed, alphas=tuple(float(a) for a in args.alphas.split(",") if a.strip()),
            exclude=[Path(f) for f in args.exclude], progress=lambda msg: print(msg, file=sys.stderr),
        )
    except ModelError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(entry, ensure_ascii=False))
    return EXIT_OK


def cmd_model_eval(ctx: Context) -> int:
    from murmur.sentiment.evaluate import evaluate

    scorer = ctx.app.load_scorer(ctx.args.model or ctx.app.settings.model.name)
    for path in ctx.args.files:
        if not Path(path).is_file():
            raise UserError(f"{path} does not exist; give a label<TAB>text file")
        result = evaluate(scorer, Path(path)) | {"model": scorer.model.model_id}
        if ctx.args.format == "json":
            print(json.dumps(result, ensure_ascii=False))
            continue
        labels = list(result["confusion"])
        print(f"{path}: {result['rows']} rows, model {scorer.model.model_id}"
              + (" (binary: positive iff P(positive) > P(negative))" if result["binary"] else ""))
        print(f"  macro recall {result['macro_recall']:.4f}   accuracy {result['accuracy']:.4f}")
        print("  confusion (rows: true label, columns: predicted)")
        print("  " + " " * 10 + "".join(f"{lab:>10}" for lab in labels) + f"{'recall':>10}")
        for truth in labels:
            cells = "".join(f"{result['confusion'][truth][pred]:>10}" for pred in labels)
            print(f"  {truth:<10}{cells}{result['recall'].get(truth, 0):>10.3f}")
        if result.get("categories"):
            print("  per category" + ("" if result["binary"] else " (macro recall, accuracy)"))
            print(f"  {'category':<16}{'rows':>8}{'accuracy':>10}{'macro rec':>10}"
                  + "".join(f"{'rec ' + lab[:3]:>10}" for lab in labels))
            for cat, figures in result["categories"].items():
                recalls = "".join(f"{figures['recall'].get(lab, float('nan')):>10.3f}" for lab in labels)
                print(f"  {cat:<16}{figures['rows']:>8}{figures['accuracy']:>10.4f}{figures['macro_recall']:>10.4f}"
                      + recalls)
    return EXIT_OK


def cmd_model_predict(ctx: Context) -> int:
    from murmur.crawler.language import detect_language

    texts = list(ctx.args.texts)
    if ctx.args.file:
        source = sys.stdin if ctx.args.file == "-" else open(ctx.args.file, encoding="utf-8")  # noqa: SIM115
        with source:
            texts += [line.rstrip("\n") for line in source if line.strip()]
    if not texts:
        raise UserError("give texts to score, or --file F (one text per line; - for standard input)")
    app = ctx.app
    if ctx.args.model:
        from dataclasses import replace

        from murmur.app import App

        settings = app.settings
        app = App(replace(settings, model=replace(settings.model, name=ctx.args.model, routes={})))
    routes = app.routes()
    langs = [detect_language(t) for t in texts]
    out: list[dict[str, Any] | None] = [None] * len(texts)
    for route in routes:
        mine = [i for i, lang in enumerate(langs) if out[i] is None and route.takes(lang)]
        for i, score in zip(mine, route.scorer.score([texts[i] for i in mine]), strict=True):
            out[i] = {"text": texts[i], "lang": langs[i], "label": score.label,
                      "probabilities": {"negative": round(score.negative, 4), "neutral": round(score.neutral, 4),
                                        "positive": round(score.positive, 4)},
                      "model": route.model_id}
    for i, row in enumerate(out):
        if row is None:
            reason = "language could not be detected" if langs[i] is None else \
                f"no configured model covers language {langs[i]!r}"
            row = {"text": texts[i], "lang": langs[i], "label": None, "probabilities": None, "model": None,
                   "unscored": reason}
        print(json.dumps(row, ensure_ascii=False))
    return EXIT_OK


def add_model_commands(add: Callable[..., argparse.ArgumentParser], fmt: type[argparse.HelpFormatter]) -> None:
    """`murmur model` and its subcommands, on the parser `add` builds."""
    model: argparse.ArgumentParser
    model = add("model", lambda ctx: _usage(model), "Evaluate, try, calibrate (int8) and train the sentiment model.",
                "murmur model eval val.tsv")
    msub = model.add_subparsers(dest="model_command", metavar="MODEL_COMMAND")
    p = msub.add_parser("eval", help="macro recall, accuracy and a confusion matrix on labelled files",
                        description="Score a label<TAB>text file, one row a line, with or without a first line "
                        "'label<TAB>text' (labels negative/neutral/positive; a file with only negative/positive "
                        "is binary: positive iff P(positive) > P(negative)). A third column 'category' (a "
                        "header 'label<TAB>text<TAB>category') adds the figures of each category.",
                        formatter_class=fmt, epilog="Examples:\n  murmur model eval val.tsv\n"
                        "  murmur model eval zh_shopping.tsv --model murmur-e5-sentiment@1")
    p.add_argument("files", nargs="+", metavar="FILE.tsv")
    p.add_argument("--model", help="a model name, path or hub id (default: model.name)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_model_eval)
    p = msub.add_parser("predict", help="score texts; JSON lines out (text, lang, label, probabilities, model)",
                        description="Score the texts given, or one text per line of --file, routed by "
                        "detected language like `murmur score`; prints one JSON object per text.",
                        formatter_class=fmt,
                        epilog='Example:\n  murmur model predict "I love RedNote" "小红书太好玩了"')
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--file", metavar="F", help="one text per line (- for standard input)")
    p.add_argument("--model", help="a model name, path or hub id for every language (default: the config)")
    p.set_defaults(func=cmd_model_predict)
    p = msub.add_parser("int8", help="calibrate a model's int8 path and record whether it may be the CPU default",
                        description="Quantize the model's Linear layers to int8 with smoothing scales calibrated on "
                        "a seeded sample of training texts, choose the smoothing strength on --val, and write the "
                        "scales (int8.safetensors) and the figures (murmur.json's int8 entry) into the model "
                        "directory. model.quantize = \"auto\" uses int8 only where that entry says it is within "
                        "0.5 points of float32 macro recall.",
                        formatter_class=fmt,
                        epilog="Example:\n  murmur model int8 --model murmur-e5-sentiment --calibrate train.tsv "
                        "--calibrate zh_hotel.tsv --val val.tsv --zh zh_hotel.tsv")
    p.add_argument("--model", help="a built-in name or a murmur model directory (default: model.name)")
    p.add_argument("--calibrate", action="append", default=[], metavar="FILE.tsv",
                   help="training file to sample calibration texts from (repeatable; default train.tsv and "
                   "zh_hotel.tsv in model.data_dir, the Chinese file without its held-out part)")
    p.add_argument("--val", required=True, metavar="FILE.tsv", help="labelled file that chooses alpha")
    p.add_argument("--zh", metavar="FILE.tsv", help="two-label Chinese file: report int8 on its held-out part")
    p.add_argument("--rows", type=int, default=256, help="calibration texts per file (default 256)")
    p.add_argument("--alphas", default="0.5,0.75,0.9", help="smoothing strengths to try (default 0.5,0.75,0.9)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: the model's training seed)")
    p.add_argument("--exclude", action="append", default=[], metavar="FILE.tsv",
                   help="never calibrate on the texts of this labelled file, e.g. a test sample (repeatable)")
    p.set_defaults(func=cmd_model_int8)
    p = msub.add_parser("train", help="fine-tune murmur's default sentiment model (seeded, reproducible)",
                        formatter_class=fmt, add_help=False,
                        epilog="Example:\n  murmur model train --train train.tsv --out ./my-model")
    # The trainer's own options (murmur.sentiment.train) pass through untouched: see main().
    p.set_defaults(func=cmd_model_train, train_args=[])


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE
