"""RSS and Atom feeds -> posts. Pure functions only: no network, no Scrapy.

feedparser reads the feed (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, https://feedparser.readthedocs.io/):
it decodes the body, sanitises embedded HTML, resolves relative links, and normalises dates to UTC.
This module decides what an entry means as a post.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from murmur.crawler.items import Post
from murmur.crawler.language import normalise_code
from murmur.crawler.parsers import ParseError, first_of_each, html_to_text
from murmur.crawler.text import xml_safe

__all__ = ["FeedResult", "html_to_text", "parse_feed"]

SOURCE = "rss"

_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S")
_ELLIPSIS = ("...", "…")


@dataclass
class FeedResult:
    """One fetch of a feed, parsed: its entries as posts, and what was skipped."""

    posts: list[Post]
    title: str | None
    language: str | None
    skipped: int = 0  # entries with neither an id nor a link, or otherwise unusable


def parse_feed(
    body: bytes,
    *,
    feed_url: str,
    fetched_at: datetime,
    headers: dict[str, str] | None = None,
) -> FeedResult:
    """An RSS or Atom document -> posts.

    ``feed_url`` is where it came from (the base for relative links, and part of an id that is not a
    URI); ``fetched_at`` stands in for an entry's date when the feed gives none (RSSHub's Xiaohongshu
    notes carry no date), so such an entry's ``created_at`` is when murmur first saw it; ``headers``
    (Content-Type, Content-Language) help decoding. Raises ParseError when the body is not a feed:
    empty, HTML, garbage, or broken before its first entry. A broken feed that still yields entries is
    kept (feedparser is lenient, like feed readers).
    """
    if not body or not body.strip():
        raise ParseError("empty body")
    response_headers = {k.lower(): v for k, v in (headers or {}).items()}
    response_headers.setdefault("content-location", feed_url)
    parsed = feedparser.parse(body, response_headers=response_headers, sanitize_html=True, resolve_relative_uris=True)
    entries = parsed.get("entries") or []
    if not entries and (parsed.get("bozo") or not parsed.get("version")):
        problem = parsed.get("bozo_exception")
        raise ParseError(f"not an rss or atom feed ({_describe(problem)})")

    feed = parsed.get("feed") or {}
    feed_lang = _lang(feed.get("language"))
    # The same entry twice in one document: the first is kept.
    posts, skipped = first_of_each(
        _to_post(entry, feed_url=feed_url, feed_lang=feed_lang, fetched_at=fetched_at) for entry in entries
    )
    title = feed.get("title")
    return FeedResult(posts, title if isinstance(title, str) and title else None, feed_lang, skipped)


def _describe(problem: Any) -> str:
    if problem is None:
        return "no rss or atom root element"
    text = str(problem).strip() or type(problem).__name__
    return text[:200]


def _text(detail: Any, fallback: Any = None) -> str:
    """A feedparser text construct (value + type) -> plain text."""
    if isinstance(detail, dict) and isinstance(detail.get("value"), str):
        value, kind = detail["value"], str(detail.get("type") or "")
    elif isinstance(fallback, str):
        value, kind = fallback, "text/html"
    else:
        return ""
    if any(t in kind for t in _HTML_TYPES):
        return html_to_text(value)
    return xml_safe(value).strip()


def _body(entry: Any) -> str:
    """The entry's content as text: the full content (Atom content, RSS content:encoded) when there is
    one, else the summary (RSS description, Atom summary)."""
    contents = entry.get("content")
    if isinstance(contents, list):
        texts = [_text(c) for c in contents]
        texts = [t for t in texts if t]
        if texts:
            return max(texts, key=len)  # the same content in several types: the fullest
    return _text(entry.get("summary_detail"), entry.get("summary"))


def _joined(title: str, body: str) -> str:
    """Title and body as one text, without saying the same thing twice: RSSHub and microblog feeds
    often title an entry with the start of its text ("Day 3 on RedNote and hon...")."""
    if not title:
        return body
    if not body:
        return title
    stem = title
    for mark in _ELLIPSIS:
        stem = stem.removesuffix(mark)
    stem = " ".join(stem.split())
    if stem and " ".join(body.split()).startswith(stem):
        return body
    return f"{title}\n{body}"


def _lang(value: Any) -> str | None:
    return normalise_code(value) or None if isinstance(value, str) and value.strip() else None


def _parsed_time(value: Any) -> datetime | None:
    # feedparser gives dates as UTC time.struct_time (its *_parsed fields).
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _source_id(entry: Any, feed_url: str) -> str | None:
    """The entry's guid / Atom id, else its link. An id that is not a URI ("1234", a title) is unique
    only inside its feed (RSS 2.0 guid), so it is qualified with the feed URL."""
    entry_id = entry.get("id")
    if isinstance(entry_id, str) and entry_id.strip():
        entry_id = entry_id.strip()
        return entry_id if _SCHEME.match(entry_id) else f"{feed_url}#{entry_id}"
    link = entry.get("link")
    if isinstance(link, str) and link.strip():
        return link.strip()
    return None


def _to_post(entry: Any, *, feed_url: str, feed_lang: str | None, fetched_at: datetime) -> Post | None:
    if not isinstance(entry, dict):
        return None
    # A plain dict: FeedParserDict maps some missing keys to others (updated_parsed -> published_parsed,
    # with a DeprecationWarning); only what the feed said is wanted here.
    entry = dict(entry)
    source_id = _source_id(entry, feed_url)
    if source_id is None:
        return None
    text = _joined(_text(entry.get("title_detail"), entry.get("title")), _body(entry))

    date_from = "fetched"
    created_at = fetched_at
    for field in ("published", "updated", "created"):
        when = _parsed_time(entry.get(f"{field}_parsed"))
        if when is not None:
            created_at, date_from = when, field
            break

    link = entry.get("link")
    url = link if isinstance(link, str) and link.startswith(("http://", "https://")) else None
    if url is None and source_id.startswith(("http://", "https://")):
        url = source_id
    return Post(
        source=SOURCE,
        source_id=source_id,
        url=url,
        author=_author(entry),
        text=text,
        created_at=created_at,
        lang=_entry_lang(entry) or feed_lang,
        tags=_tags(entry.get("tags")),
        metrics=_metrics(entry),
        raw={"feed": feed_url, "date_from": date_from, "entry": _plain(entry)},
    )


def _author(entry: Any) -> str | None:
    detail = entry.get("author_detail")
    if isinstance(detail, dict) and isinstance(detail.get("name"), str) and detail["name"].strip():
        return detail["name"].strip()
    author = entry.get("author")
    return author.strip() if isinstance(author, str) and author.strip() else None


def _entry_lang(entry: Any) -> str | None:
    # xml:lang on the entry's own text (Atom), which feedparser reports on each text construct.
    for key in ("content", "summary_detail", "title_detail"):
        detail = entry.get(key)
        if isinstance(detail, list):
            detail = detail[0] if detail else None
        if isinstance(detail, dict):
            lang = _lang(detail.get("language"))
            if lang:
                return lang
    return None


def _tags(tags: Any) -> list[str]:
    """Categories (RSS <category>, Atom <category term>) as tags, without '#', each once."""
    if not isinstance(tags, list):
        return []
    names: list[str] = []
    folded: set[str] = set()
    for tag in tags:
        if not isinstance(tag, dict):
            continue
        name = tag.get("term") or tag.get("label")
        if not isinstance(name, str):
            continue
        name = name.strip().lstrip("#").strip()
        if name and name.casefold() not in folded:
            folded.add(name.casefold())
            names.append(name)
    return names


def _metrics(entry: Any) -> dict[str, int]:
    # The Slash extension's comment count (<slash:comments>), which WordPress and others publish.
    count = entry.get("slash_comments")
    if isinstance(count, str) and count.strip().isdigit():
        return {"replies": int(count.strip())}
    return {}


def _plain(value: Any) -> Any:
    """A feedparser entry as JSON-ready data: struct_time dates dropped (their text forms stay),
    strings cleaned of what PostgreSQL cannot store."""
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not isinstance(v, time.struct_time)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value if not isinstance(v, time.struct_time)]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)
