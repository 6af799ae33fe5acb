"""The import formats, and which one a file is in.

Each format names its parser module (crawler/parsers/<name>.py: pure functions over one record, see
crawler/parsers/imported.py), imported only when a file of that format is read: a format whose module is
not in this murmur is unavailable, and asking for it says so in one line. `--format auto` looks at the
path (MediaCrawler's folder layout, Reddit dumps' RS_/RC_ names), then at the first record (Zeeschuimer's
envelope), and reads a file as generic CSV or NDJSON only when `--source` says whose posts they are.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from murmur.crawler.imports import generic
from murmur.crawler.imports.reading import first_bytes, first_object
from murmur.crawler.parsers.imported import Imported
from murmur.errors import UserError

logger = logging.getLogger(__name__)

# Format name -> its parser module (None: built in, crawler/imports/generic.py).
FORMATS: dict[str, str | None] = {
    "zeeschuimer": "murmur.crawler.parsers.zeeschuimer",
    "mediacrawler": "murmur.crawler.parsers.mediacrawler",
    "reddit-dump": "murmur.crawler.parsers.reddit_dump",
    "csv": None,
    "ndjson": None,
}
CHOICES = ("auto", *FORMATS)
# The file names a walk of a folder picks up (compressed or not).
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")
COMPRESSED = (".gz", ".zst")
# What each format looks like, for `auto` when the format's own module is not there to say (so the error
# can name the format that is missing rather than "no known format").
_DUMP_NAME = re.compile(r"^R[SC]_\d{4}-\d{2}")
_MEDIACRAWLER_PATH = re.compile(r"(?:^|/)(xhs|douyin|weibo|bili|kuaishou|tieba|zhihu)/(json|jsonl|csv)/"
                                r"[^/]*(contents|comments)[^/]*$")
_ZEESCHUIMER_KEYS = {"item_id", "source_platform", "data"}
_COMMENTS_FILE = re.compile(r"^RC_|comments", re.IGNORECASE)

Parse = Callable[[Any], list[Imported]]


@dataclass(frozen=True)
class FilePlan:
    """One file to import: its format, how its records are read, and the parser each record goes to."""

    path: Path
    format: str
    reader: str  # ndjson | csv | json (a JSON array)
    parse: Parse
    detail: str = ""  # e.g. MediaCrawler's platform and kind, for the summary


def parser_module(fmt: str) -> ModuleType | None:
    """The parser module of `fmt`, or None when this murmur does not have it (yet)."""
    name = FORMATS[fmt]
    if name is None:
        return None
    return _load(name)


@functools.cache
def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            logger.warning("import parser %s cannot load: %s", name, err)
        return None
    except Exception as err:  # a broken parser module makes its format unavailable, not the importer
        logger.warning("import parser %s cannot load: %s", name, err)
        return None


def available() -> list[str]:
    """The formats this murmur can read now."""
    return [fmt for fmt, module in FORMATS.items() if module is None or parser_module(fmt) is not None]


def pending() -> list[str]:
    """The formats whose parser module is not here."""
    return [fmt for fmt in FORMATS if fmt not in available()]


def _require(fmt: str) -> ModuleType:
    module = parser_module(fmt)
    if module is None:
        name = str(FORMATS[fmt]).rsplit(".", 1)[-1]
        raise UserError(f"the {fmt} format is not available in this murmur (its parser, crawler/parsers/{name}.py, "
                        f"is missing); available formats: {', '.join(available())}")
    return module


def _is_dump(path: Path) -> bool:
    module = parser_module("reddit-dump")
    if module is not None:
        return bool(module.kind_of_file(path))
    return bool(_DUMP_NAME.match(path.name))


def _mediacrawler(path: Path) -> tuple[str, str] | None:
    module = parser_module("mediacrawler")
    if module is not None:
        found = module.describe_path(path)
        return (str(found[0]), str(found[1])) if found else None
    match = _MEDIACRAWLER_PATH.search(path.as_posix())
    return (match.group(1), match.group(3)) if match else None


def _is_zeeschuimer(first: Any) -> bool:
    module = parser_module("zeeschuimer")
    if module is not None:
        return bool(module.sniff(first))
    return isinstance(first, dict) and _ZEESCHUIMER_KEYS <= set(first)


def _reader_by_name(path: Path) -> str:
    """ndjson, csv or json (an array) from the name, the compression suffix aside."""
    name = path.name.lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".json"):
        return "json"
    return "ndjson"


def _reader_by_content(path: Path) -> str:
    """json for a file that opens with '[', ndjson for '{', else csv."""
    head = first_bytes(path, 4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if head.startswith(b"[") else "ndjson" if head.startswith(b"{") else "csv"


def looks_like_data(path: Path) -> bool:
    """A file a walk of a folder imports: data files by their name, and Reddit dumps."""
    name = path.name.lower()
    if name.startswith("."):
        return False
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return name.endswith(DATA_SUFFIXES) or bool(_DUMP_NAME.match(path.name))


def _posts_first(path: Path) -> tuple[bool, Path]:
    """The order a folder is read in: posts before the comments under them (MediaCrawler's contents files
    before its comments files, RS_ dumps before RC_), so a comment finds its thread stored (importer.py)."""
    return bool(_COMMENTS_FILE.search(path.name)), path


def detect(path: Path, *, generic_source: bool) -> str | None:
    """The format `auto` picks for `path`, or None when it is none of them."""
    # MediaCrawler's folder layout is the surest sign; then Zeeschuimer's envelope, before a dump's name
    # (Reddit extracts are named <subreddit>_comments, and so may a renamed capture be).
    if _mediacrawler(path) is not None:
        return "mediacrawler"
    if _reader_by_name(path) == "ndjson" and _is_zeeschuimer(first_object(path)):
        return "zeeschuimer"
    if _is_dump(path):
        return "reddit-dump"
    if generic_source:
        return "csv" if _reader_by_name(path) == "csv" or _reader_by_content(path) == "csv" else "ndjson"
    return None


def plan_file(path: Path, fmt: str, *, source: str | None, mapping: Mapping[str, Sequence[str]]) -> FilePlan:
    """How to read `path` in format `fmt` ("auto" detects it); UserError in one line when it cannot be read."""
    if fmt == "auto":
        found = detect(path, generic_source=source is not None)
        if found is None:
            raise UserError(f"{path}: no known format (formats: {', '.join(FORMATS)}); for csv or ndjson give "
                            "--source NAME (and --map FIELD=COLUMN where the columns have other names)")
        fmt = found
    if fmt in ("csv", "ndjson"):
        if source is None:
            raise UserError(f"{path}: --format {fmt} needs --source NAME (whose posts these are, e.g. --source x)")
        reader = "csv" if fmt == "csv" else "json" if _reader_by_content(path) == "json" else "ndjson"
        parse = functools.partial(generic.items, source=source, mapping=mapping)
        return FilePlan(path, fmt, reader, parse, f"as {source}")
    module = _require(fmt)
    if fmt == "zeeschuimer":
        return FilePlan(path, fmt, "ndjson", module.items)
    if fmt == "reddit-dump":
        kind = module.kind_of_file(path)
        return FilePlan(path, fmt, "ndjson", module.items, str(kind) if kind else "")
    described = module.describe_path(path)
    if not described:
        raise UserError(f"{path}: not a MediaCrawler output file (data/<platform>/<json|jsonl|csv>/"
                        "<type>_<contents|comments>_<date>.<ext>, platforms xhs, douyin, weibo, bili, kuaishou)")
    platform, kind = described
    parse = functools.partial(module.items, platform=platform, kind=kind)
    return FilePlan(path, fmt, _reader_by_name(path), parse, f"{platform} {kind}")


def plan(paths: Sequence[Path], fmt: str, *, source: str | None, mapping: Mapping[str, Sequence[str]]
         ) -> tuple[list[FilePlan], list[tuple[Path, str]]]:
    """(the files to import, with their plans; the files found in folders that are skipped, with why). A file
    named on the command line that cannot be read is a UserError before anything is imported."""
    plans: list[FilePlan] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found = sorted((p for p in path.rglob("*") if p.is_file() and looks_like_data(p)), key=_posts_first)
            if not found:
                raise UserError(f"{path}: no data files in this folder (.json, .jsonl, .ndjson, .csv, "
                                "compressed or not, or RS_/RC_ dumps)")
            for file in found:
                try:
                    plans.append(plan_file(file, fmt, source=source, mapping=mapping))
                except UserError as err:
                    skipped.append((file, str(err).removeprefix(f"{file}: ")))
        elif path.is_file():
            plans.append(plan_file(path, fmt, source=source, mapping=mapping))
        else:
            raise UserError(f"{path}: no such file or folder")
    return plans, skipped
