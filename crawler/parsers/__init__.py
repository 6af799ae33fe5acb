"""Pure parsers: a platform's response body in, `Post`s and paging ids out (STYLE.md: parsing is
separate from fetching). Nothing here touches the network or Scrapy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from murmur.crawler.items import Post

__all__ = ["Page", "ParseError", "id_key", "load_json"]


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


class ParseError(ValueError):
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
