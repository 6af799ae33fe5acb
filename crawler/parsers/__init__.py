"""Pure parsers: a platform's response body in, `Post`s and paging ids out (STYLE.md: parsing is
separate from fetching). Nothing here touches the network or Scrapy."""

from __future__ import annotations

from dataclasses import dataclass

from murmur.crawler.items import Post

__all__ = ["Page", "ParseError", "id_key"]


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
