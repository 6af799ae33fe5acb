"""Pure parsers: a platform's response body in, `Post`s and paging ids out (STYLE.md: parsing is
separate from fetching). Nothing here touches the network or Scrapy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.errors import MurmurError

__all__ = ["Page", "ParseError", "count", "digit_string", "id_key", "iso_datetime", "load_json"]


@dataclass
class Page:
    """One page of a timeline, parsed.

    ``oldest_id``/``newest_id`` are the platform's own (per-instance, local) ids of the entries in the
    page, used for paging: ``max_id=oldest_id`` pages back, ``min_id=newest_id`` pages forward. They
    count every entry that carried an id, including ones skipped as malformed, so one bad entry never
    makes a crawl fetch the same page forever. Both are None for an empty page.
    """

    posts: list[Post]
    oldest_id: str | None
    newest_id: str | None
    skipped: int = 0  # entries dropped as malformed (missing required fields, wrong types)


class ParseError(MurmurError, ValueError):
    """The body as a whole is unusable: not JSON, truncated, an error object, or not the expected shape.

    The message says what was wrong, lower-case and short, so a spider can log and count it.
    """


def id_key(status_id: str) -> tuple[int, str]:
    """A sort key for Mastodon ids: numeric order for digit strings, else (length, text).

    Mastodon documents ids as "String (cast from an integer but not guaranteed to be a number)"
    (https://docs.joinmastodon.org/entities/Status/#id), and snowflake ids outgrow a 64-bit float, so
    they must never be compared as plain strings ("9" > "10") nor through float. For digit strings,
    (length without leading zeros, digits) orders exactly like int(), and the key stays comparable
    with the (length, text) key of a non-numeric id, so any mix of ids has a total order.
    """
    if status_id.isascii() and status_id.isdigit():
        digits = status_id.lstrip("0")
        return (len(digits), digits)
    return (len(status_id), status_id)


def load_json(body: bytes) -> Any:
    """A JSON response body, or `ParseError` saying why it is unusable (empty, not UTF-8, an HTML error page
    instead of JSON, truncated, nested too deeply). What the value must look like is the parser's check."""
    return parse_json_text(json_text(body))


def json_text(body: bytes) -> str:
    """The body as text, checked to be worth parsing as JSON; `load_json` without the parse, for a parser
    that looks at the raw text too."""
    if not body or not body.strip():
        raise ParseError("empty body")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"body is not utf-8 (byte {exc.start})") from None
    if text.lstrip().startswith("<"):
        raise ParseError("body is html, not json")
    return text


def parse_json_text(text: str) -> Any:
    """`json.loads` with its failures as `ParseError`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"body is not valid json (truncated?): {exc.msg} at char {exc.pos}") from None
    except RecursionError:
        raise ParseError("body is json nested too deeply") from None


def iso_datetime(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 time as platforms send it ("2025-01-14T15:05:30.017Z") -> aware UTC; a value
    without a zone is taken as UTC; None for anything unreadable or out of range."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def digit_string(value: Any) -> str | None:
    """A positive id given as an int or a string of digits, as a string; else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return value.strip()
    return None


def count(value: Any) -> int | None:
    """A count given as an int or a string of digits ("1234"), 0 or more; else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None
