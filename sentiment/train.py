"""`murmur model train`: the trainer's command line. The recipes are `train_e5` (the default: a head over
frozen multilingual-e5-small, English and Chinese) and `train_lora` (LoRA over MiniLM, English); the data
files come from the command line or `model.data_dir`, never from a path baked in here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .data import VAL_FILE, ZH_FILE, beside, read_tsv, training_files
from .errors import ModelError
from .evaluate import evaluate

# evaluate and read_tsv live in .evaluate and .data; named here too for callers of the older module.
__all__ = ["default_out_dir", "evaluate", "main", "read_tsv"]


def default_out_dir(name: str) -> Path:
    """Where a retrain goes when --out is not given: the user's data dir, never the installed package."""
    import platformdirs

    return platformdirs.user_data_path("murmur") / "models" / name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="murmur model train",
        description="Train murmur's sentiment model: a head over frozen multilingual-e5-small (--base e5, "
        "English and Chinese, minutes on a CPU) or LoRA over MiniLM (--base minilm, English). Data files are "
        "label<TAB>text, with or without that header line.",
        epilog="example: murmur model train --base e5 --train data/train.tsv --seed 13 --out ./my-model",
    )
    parser.add_argument("--base", choices=("e5", "minilm"), default="e5", help="base encoder (default: e5)")
    parser.add_argument("--train", type=Path, default=None,
                        help="label<TAB>text training file (default: train.tsv in model.data_dir)")
    parser.add_argument(
        "--val", type=Path, default=None, help=f"validation file (default: {VAL_FILE} beside --train)"
    )
    parser.add_argument("--zh", type=Path, default=None,
                        help=f"e5: two-label Chinese file, partly held out (default: {ZH_FILE} beside --train)")
    parser.add_argument("--exclude", type=Path, action="append", default=[], metavar="FILE.tsv",
                        help="a labelled file whose texts e5 never trains on and int8 never calibrates on, "
                        "e.g. a test sample (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="model directory to write (default: models/<built-in name> in murmur's user data "
                        "dir; with --eval, the built-in model)")
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
    return parser


def main(argv: list[str] | None = None, *, data_dir: Path | None = None) -> int:
    """`murmur model train`: train a built-in model and print its val figures as JSON. `data_dir`
    (model.data_dir) holds train.tsv, val.tsv and zh_hotel.tsv when --train is not given."""
    from .model import BUILTIN_NAME, BUILTINS, MINILM_NAME

    args = _parser().parse_args(argv)
    e5 = args.base == "e5"
    name = BUILTIN_NAME if e5 else MINILM_NAME
    max_length = args.max_length or (128 if e5 else 96)
    try:
        if args.eval:
            from .model import load
            from .scorer import Scorer

            sm = load(str(args.out or BUILTINS[name]), device="auto")
            for path in args.eval:
                print(json.dumps(evaluate(Scorer(sm, max_length=max_length), path)))
            return 0
        train_file = args.train or training_files(data_dir, option="--train FILE.tsv")[0]
        result = _train(args, train_file, args.out or default_out_dir(name), max_length)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _train(args: argparse.Namespace, train_file: Path, out: Path, max_length: int) -> dict[str, Any]:
    val = args.val or beside(train_file, VAL_FILE)
    zh = (args.zh or beside(train_file, ZH_FILE)) if args.base == "e5" else None
    if args.base == "e5":
        from .train_e5 import train_e5

        result = train_e5(
            train_file, out, zh_file=zh, val_file=val, limit=args.limit or 0, seed=args.seed,
            max_length=max_length, exclude=args.exclude, embed_cache=args.embed_cache, model_id=args.model_id,
            threads=args.threads,
        )
    else:
        from .train_lora import train

        result = train(
            train_file, out, val_file=val, limit=6000 if args.limit is None else args.limit, epochs=args.epochs,
            seed=args.seed, batch_size=args.batch_size, lr=args.lr, max_length=max_length, lora_r=args.lora_r,
            model_id=args.model_id, threads=args.threads,
        )
    if val is not None and not args.no_int8:
        # The int8 path is part of the model: calibrated and measured here, so `auto` can trust it.
        from .quantize import fit_int8_from_files

        result["int8"] = fit_int8_from_files(
            out, calibrate_files=[train_file, *([zh] if zh else [])], val_file=val, zh_file=zh, rows=256,
            seed=args.seed, exclude=args.exclude, progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    return result


if __name__ == "__main__":
    raise SystemExit(main())
