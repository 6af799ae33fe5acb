"""Generic CSV and NDJSON (a 4CAT export, a spreadsheet, anything else): which column holds which field of a
post, given with `--map FIELD=COLUMN` and `--source NAME`. A pure function per record, as the format
parsers are (crawler/parsers/imported.py): it never raises; a record it cannot use is a counted skip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers.imported import Imported, skipped
from murmur.errors import UserError

# Each field of a post and the columns read for it when --map does not name one (first present wins).
FIELDS: dict[str, tuple[str, ...]] = {
    "source_id": ("source_id", "id"),
    "text": ("text", "body"),
    "created_at": ("created_at", "timestamp"),
    "author": ("author",),
    "url": ("url",),
    "lang": ("lang",),
    "likes": ("likes",),
    "reposts": ("reposts",),
    "replies": ("replies",),
    "parent_source_id": ("parent_source_id",),
    "root_source_id": ("root_source_id",),
    "region": ("region",),
}
METRICS = ("likes", "reposts", "replies")

# A Unix time above this many seconds is in milliseconds (1e11 s is the year 5138), above 1e14 in
# microseconds.
_MS, _US = 1e11, 1e14


def parse_mapping(pairs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`["text=body,created_at=ts", "author=user.name"]` -> the columns read for each field; UserError
    naming the fields for a pair that is not FIELD=COLUMN or a field that does not exist."""
    mapping = dict(FIELDS)
    for item in pairs:
        for pair in item.split(","):
            if not pair.strip():
                continue
            field, sep, column = (part.strip() for part in pair.partition("="))
            if not sep or not field or not column:
                raise UserError(f"--map {pair!r}: use FIELD=COLUMN, e.g. --map text=body,created_at=ts")
            if field not in FIELDS:
                raise UserError(f"--map {pair!r}: unknown field {field!r}; fields: {', '.join(FIELDS)}")
            mapping[field] = (column,)
    return mapping


def lookup(record: Mapping[str, Any], columns: Sequence[str]) -> Any:
    """The first present, non-empty value among `columns`; a dotted column (`user.name`) walks nested objects."""
    for column in columns:
        value: Any = record.get(column)
        if value is None and "." in column:
            value = record
            for part in column.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None and value != "":
            return value
    return None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone) or Unix seconds, milliseconds or microseconds; None
    when it is neither."""
    if value is None or isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if number is None or number != number:  # NaN
        return None
    if abs(number) >= _US:
        number /= 1e6
    elif abs(number) >= _MS:
        number /= 1e3
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(str(value).replace(",", "").strip()))
    except (TypeError, ValueError, OverflowError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def items(record: Any, *, source: str, mapping: Mapping[str, Sequence[str]]) -> list[Imported]:
    """One record (a CSV row, an NDJSON object) -> its post, or why it gives none (no_id, no_time, bad_time)."""
    if not isinstance(record, Mapping):
        return skipped("not_object")
    source_id = lookup(record, mapping["source_id"])
    if source_id is None or isinstance(source_id, dict | list):
        return skipped("no_id")
    when = lookup(record, mapping["created_at"])
    if when is None:
        return skipped("no_time")
    created_at = parse_time(when)
    if created_at is None:
        return skipped("bad_time")
    metrics = {name: n for name in METRICS if (n := _count(lookup(record, mapping[name]))) is not None}
    text = lookup(record, mapping["text"])
    post = Post(
        source=source,
        source_id=str(source_id),
        url=_text(lookup(record, mapping["url"])),
        author=_text(lookup(record, mapping["author"])),
        text="" if text is None else str(text),
        created_at=created_at,
        lang=_text(lookup(record, mapping["lang"])),
        metrics=metrics,
        raw=dict(record),
        parent_source_id=_text(lookup(record, mapping["parent_source_id"])),
        root_source_id=_text(lookup(record, mapping["root_source_id"])),
        via="import",
        region=_text(lookup(record, mapping["region"])),
    )
    return [Imported(post=post)]
