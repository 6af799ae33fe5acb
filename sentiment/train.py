"""`murmur model train`: the trainer's command line. The recipes are `train_top` (the default, `--base e5`:
the top layers of multilingual-e5-small fine-tuned, English and Chinese; murmur-e5-sentiment@2),
`train_e5` (`--base e5-head`: a head over the frozen encoder; murmur-e5-sentiment@1) and `train_lora`
(`--base minilm`: LoRA over MiniLM, English); the data files come from the command line or
`model.data_dir`, never from a path baked in here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .data import VAL_FILE, ZH_FILE, ZH_SHOPPING_FILE, beside, has_categories, read_tsv, training_files
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
        description="Train murmur's sentiment model. --base e5 (the default, murmur-e5-sentiment@2): the top "
        "layers of multilingual-e5-small fine-tuned on English tweets and Chinese reviews, whole Chinese "
        "categories held out to choose on; the frozen layers' outputs are computed once, so an epoch costs "
        "about a third of a full pass (about an hour on 2 CPU cores in all); stopped midway, the same command "
        "resumes. --base e5-head (murmur-e5-sentiment@1): a head over the frozen encoder, minutes. --base minilm: "
        "LoRA over MiniLM, English. Data files are label<TAB>text[<TAB>category], with or without that header.",
        epilog="example: murmur model train --train data/train.tsv --zh data/zh_hotel.tsv --zh data/zh_shopping.tsv "
        "--holdout-category dairy --holdout-category phones --seed 13 --out ./my-model",
    )
    parser.add_argument("--base", choices=("e5", "e5-head", "minilm"), default="e5",
                        help="recipe (default: e5, the fine-tune)")
    parser.add_argument("--train", type=Path, default=None,
                        help="label<TAB>text training file (default: train.tsv in model.data_dir)")
    parser.add_argument(
        "--val", type=Path, default=None, help=f"validation file (default: {VAL_FILE} beside --train)"
    )
    parser.add_argument("--zh", type=Path, action="append", default=None, metavar="FILE.tsv",
                        help=f"two-label Chinese file (repeatable; default: {ZH_FILE} and {ZH_SHOPPING_FILE} beside "
                        "--train); a file with a category column loses the --holdout-category categories to "
                        "validation, one without loses a seeded 15%%; e5-head reads only the first")
    parser.add_argument("--holdout-category", action="append", default=None, metavar="NAME",
                        help="e5: a category of the Chinese files never trained, chosen on (repeatable; default: "
                        "dairy and phones)")
    parser.add_argument("--zh-per-category", type=int, default=3000,
                        help="e5: at most this many reviews of each trained category (0: all; default 3000)")
    parser.add_argument("--adapt-layers", type=int, default=4,
                        help="e5: top layers fine-tuned (of 12; default 4: the plain embedding then costs 4/12 more)")
    parser.add_argument("--work", type=Path, default=None,
                        help="e5: where the frozen layers' outputs and the resumable state go (default: murmur's "
                        "cache, train/<out name>)")
    parser.add_argument("--finish-now", action="store_true",
                        help="e5: train no further; write the model from the best checkpoint a stopped run saved")
    parser.add_argument("--exclude", type=Path, action="append", default=[], metavar="FILE.tsv",
                        help="a labelled file whose texts training never uses and int8 never calibrates on, "
                        "e.g. a test sample (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="model directory to write (default: models/<built-in name> in murmur's user data "
                        "dir; with --eval, the built-in model)")
    parser.add_argument("--limit", type=int, default=None,
                        help="e5-head, minilm: rows to sample from --train (0: all; default: e5-head all, minilm 6000)")
    parser.add_argument("--epochs", type=int, default=None, help="e5 and minilm (default: e5 2, minilm 3)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--batch-size", type=int, default=32, help="e5 and minilm")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: e5 5e-5 for the layers, its head 1e-3; minilm 1e-3)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per text (default: e5 96, e5-head 128, minilm 96; tweets rarely pass 64)")
    parser.add_argument("--lora-r", type=int, default=16, help="minilm only")
    parser.add_argument("--embed-cache", type=Path, default=None,
                        help="e5-head: keep embeddings in this directory to re-fit the head quickly (e.g. /tmp/e5-emb)")
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
    e5 = args.base != "minilm"
    name = BUILTIN_NAME if e5 else MINILM_NAME
    max_length = args.max_length or (128 if args.base == "e5-head" else 96)
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
    zh_files: list[Path] = []
    if args.base != "minilm":
        zh_files = args.zh or [f for f in (beside(train_file, ZH_FILE), beside(train_file, ZH_SHOPPING_FILE)) if f]
    if args.base == "e5":
        from .train_top import HOLDOUT_CATEGORIES, train_e5_top

        result = train_e5_top(
            train_file, out, zh_files=zh_files, val_file=val, model_id=args.model_id,
            holdout=args.holdout_category or HOLDOUT_CATEGORIES, zh_per_category=args.zh_per_category,
            exclude=args.exclude, seed=args.seed, max_length=max_length, from_layer=12 - args.adapt_layers,
            epochs=args.epochs or 2, batch_size=args.batch_size, lr=args.lr or 5e-5, work=args.work,
            threads=args.threads, finish_now=args.finish_now,
        )
    elif args.base == "e5-head":
        from .train_e5 import train_e5

        zh_files = zh_files[:1]
        result = train_e5(
            train_file, out, zh_file=zh_files[0] if zh_files else None, val_file=val, limit=args.limit or 0,
            seed=args.seed, max_length=max_length, exclude=args.exclude, embed_cache=args.embed_cache,
            model_id=args.model_id, threads=args.threads,
        )
    else:
        from .train_lora import train

        result = train(
            train_file, out, val_file=val, limit=6000 if args.limit is None else args.limit,
            epochs=args.epochs or 3, seed=args.seed, batch_size=args.batch_size, lr=args.lr or 1e-3,
            max_length=max_length, lora_r=args.lora_r, model_id=args.model_id, threads=args.threads,
        )
    if val is not None and not args.no_int8:
        # The int8 path is part of the model: calibrated and measured here, so `auto` can trust it. Calibrated
        # on the training files without categories (a categorised file's held-out categories are never seen).
        from .quantize import fit_int8_from_files

        plain = [z for z in zh_files if not has_categories(z)]
        result["int8"] = fit_int8_from_files(
            out, calibrate_files=[train_file, *plain], val_file=val, zh_file=plain[0] if plain else None, rows=256,
            seed=args.seed, exclude=args.exclude, progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    return result


if __name__ == "__main__":
    raise SystemExit(main())
