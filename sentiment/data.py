"""Labelled data files: `label<TAB>text` TSV in, (label, text) rows out; seeded samples and splits; where
the training data lives when no file is given (`model.data_dir`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from .errors import ModelError
from .model import LABELS

Row = tuple[str, str]
CategorisedRow = tuple[str, str, str | None]
HEADER = ["label", "text"]
CATEGORY = "category"  # an optional third column: the domain of a row (zh_shopping.tsv)
# The files `murmur model train` and `murmur model int8` look for in model.data_dir.
TRAIN_FILE = "train.tsv"
VAL_FILE = "val.tsv"
ZH_FILE = "zh_hotel.tsv"
ZH_SHOPPING_FILE = "zh_shopping.tsv"  # nine categories (third column): whole ones are held out


def read_tsv(path: Path) -> list[Row]:
    """Rows (label, text) of a `label<TAB>text` file, with or without that header line; labels must be
    murmur's (negative, neutral, positive). A third `category` column (zh_shopping.tsv) is left out here:
    `read_categorised` keeps it."""
    return [(label, text) for label, text, _ in read_categorised(path)]


def has_categories(path: Path) -> bool:
    """Whether a labelled file has the `label<TAB>text<TAB>category` header (its first line only is read)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.readline().rstrip("\r\n").split("\t") == [*HEADER, CATEGORY]
    except OSError as exc:
        raise ModelError(f"cannot read {path} ({exc.strerror}); give a label<TAB>text file") from None


def read_categorised(path: Path) -> list[CategorisedRow]:
    """Rows (label, text, category) of a labelled file; the category is None where the file has no
    `label<TAB>text<TAB>category` header."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read {path} ({exc.strerror}); give a label<TAB>text file") from None
    header = lines[0].split("\t") if lines else []
    first = 2 if header[:2] == HEADER else 1
    categorised = header == [*HEADER, CATEGORY]
    rows: list[CategorisedRow] = []
    for n, line in enumerate(lines[first - 1 :], start=first):
        label, sep, text = line.partition("\t")
        category = None
        if categorised and sep:
            text, _, category = text.rpartition("\t")
        if not sep or label not in LABELS:
            raise ModelError(
                f"{path}:{n}: expected '<negative|neutral|positive><TAB>text', got {line[:60]!r}"
            )
        rows.append((label, text.lstrip("\ufeff"), category or None))
    return rows


def texts_of(files: Sequence[Path]) -> set[str]:
    """Every text in these labelled files (the tests' samples a recipe must never train on)."""
    return {text for path in files for _, text in read_tsv(path)}


def subsample(rows: list[Row], limit: int, seed: int) -> list[Row]:
    """A deterministic, class-balanced sample of at most `limit` rows, shuffled.

    Balanced because the goal is macro recall: with 15% negatives in the tweets, a model trained on
    the natural mix under-predicts negative. A class short of its quota gives its place to the others.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[Row]] = {}
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


def split_holdout(rows: list[Row], fraction: float, seed: int, keep_out: set[str]) -> tuple[list[Row], list[Row]]:
    """(train, held out): a seeded `fraction` of the rows, plus every row whose text is in `keep_out`."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = int(len(rows) * fraction)
    held = set(order[:cut]) | {i for i, (_, text) in enumerate(rows) if text in keep_out}
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def label_counts(rows: Sequence[Row]) -> dict[str, int]:
    """Rows per label, in murmur's label order."""
    return {lab: sum(1 for r in rows if r[0] == lab) for lab in LABELS}


def beside(path: Path, name: str) -> Path | None:
    """The file `name` in `path`'s folder, when there is one (val.tsv and zh_hotel.tsv beside train.tsv)."""
    other = Path(path).parent / name
    return other if other.is_file() else None


def training_files(data_dir: Path | None, *, option: str) -> list[Path]:
    """train.tsv in `data_dir` (model.data_dir), then zh_hotel.tsv where it is there too: the training files
    when the command line names none. Raises `ModelError` naming `option` and the config key otherwise."""
    if data_dir is None:
        raise ModelError(f"no training data given; pass {option} (or set model.data_dir to the folder holding "
                         f"{TRAIN_FILE})")
    train = Path(data_dir).expanduser() / TRAIN_FILE
    if not train.is_file():
        raise ModelError(f"model.data_dir {data_dir} has no {TRAIN_FILE}; pass {option} or fix model.data_dir")
    zh = beside(train, ZH_FILE)
    return [train, *([zh] if zh else [])]


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of `batch_size` indexes of texts of similar `lengths`, in a new order each call (training)."""
    # Shuffle, sort within windows of 50 batches, then shuffle the batches: batches of similar lengths
    # (little padding, ~1.5x faster on CPU) while each epoch still sees a different order.
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
