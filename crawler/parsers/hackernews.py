"""Hacker News search (`GET /api/v1/search_by_date` on HN Search by Algolia) -> posts and paging facts.

The body is Algolia's search envelope, ``{"hits": [...], "page", "nbPages", "hitsPerPage", "nbHits", ...}``
(https://hn.algolia.com/api; the hit attributes are those the index is built with in
algolia/hn-search ``app/models/item.rb``). Stories carry ``title`` and ``story_text`` (HTML), comments
``comment_text`` (HTML); both carry ``objectID`` (the HN item id, as a string), ``author``,
``created_at``/``created_at_i`` and ``_tags``. Pure functions only: no network, no Scrapy.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, html_to_text, iso_datetime, json_object, load_json

__all__ = ["SearchPage", "item_url", "parse_search", "hn_html_to_text"]

SOURCE = "hackernews"
ITEM_URL = "https://news.ycombinator.com/item?id={id}"

_DELETED = "deleted"  # what _to_post returns for a hit that is a deleted/dead item


@dataclass
class SearchPage:
    """One page of search hits, parsed.

    ``hits`` counts every entry in ``hits`` (skipped ones too), so paging never depends on how many
    were usable. ``newest`` is the largest ``created_at_i`` on the page (the incremental cursor).
    ``nb_pages`` is Algolia's own page count for the query, None when absent.
    """

    posts: list[Post]
    hits: int
    page: int | None
    nb_pages: int | None
    newest: int | None
    skipped: int = 0  # hits without what a post needs (no id, no date, wrong types)
    deleted: int = 0  # hits with no text or no author: the shape of a deleted/dead HN item


def item_url(object_id: str) -> str:
    """The public web page of an HN item."""
    return ITEM_URL.format(id=object_id)


def parse_search(body: bytes) -> SearchPage:
    """A `search_by_date` (or `search`) response body -> posts, newest timestamp and page counts.

    Raises ParseError when the body is not a JSON object with a ``hits`` list; a malformed hit is
    skipped and counted.
    """
    data = _load_object(body)
    hits = data.get("hits")
    if not isinstance(hits, list):
        message = data.get("message")
        if isinstance(message, str):
            # Algolia's error shape: {"message": "...", "status": 400}.
            raise ParseError(f"server returned an error: {message[:200]}")
        raise ParseError("expected a json object with a 'hits' list")

    posts: list[Post] = []
    seen: set[str] = set()
    skipped = deleted = 0
    newest: int | None = None
    for hit in hits:
        if not isinstance(hit, dict):
            skipped += 1
            continue
        created = _created_at(hit)
        if created is not None:
            stamp = int(created.timestamp())
            newest = stamp if newest is None else max(newest, stamp)
        result = _to_post(hit, created)
        if isinstance(result, str):  # _DELETED
            deleted += 1
        elif result is None:
            skipped += 1
        elif result.source_id not in seen:  # a hit repeated within a page is one post
            seen.add(result.source_id)
            posts.append(result)
    return SearchPage(
        posts=posts,
        hits=len(hits),
        page=_int(data.get("page")),
        nb_pages=_int(data.get("nbPages")),
        newest=newest,
        skipped=skipped,
        deleted=deleted,
    )


def hn_html_to_text(content: str) -> str:
    """HN item HTML (``comment_text``, ``story_text``) -> plain text: entities decoded, tags stripped,
    one newline per paragraph, links as their URL."""
    # HN writes paragraphs as "first<p>second" (an opening <p> and no closing one), so a line breaks where
    # a <p> opens too.
    return html_to_text(content, break_before=("br", "p"), break_after=("p",), strict=True)


def _load_object(body: bytes) -> dict[str, Any]:
    return json_object(load_json(body))


def _to_post(hit: dict[str, Any], created_at: datetime | None) -> Post | str | None:
    """One hit -> a Post; _DELETED for a hit with no text or author; None when it is malformed."""
    object_id = _object_id(hit.get("objectID"))
    if object_id is None or created_at is None:
        return None
    tags = hit.get("_tags")
    is_comment = (isinstance(tags, list) and "comment" in tags) or isinstance(hit.get("comment_text"), str)
    author = hit.get("author")
    try:
        text = _comment_text(hit) if is_comment else _story_text(hit)
    except ValueError:  # HTML lxml cannot read
        return None
    if text is None:
        return None
    if not text.strip() or not (isinstance(author, str) and author.strip()):
        # A deleted HN item loses its author and text (the Firebase tombstone keeps only id, parent,
        # time and type); nothing is left to score.
        return "deleted"
    return Post(
        source=SOURCE,
        source_id=object_id,
        url=item_url(object_id),
        author=author.strip(),
        text=text,
        created_at=created_at,
        lang=None,  # HN records no language; the language pipeline detects it
        tags=[],  # `_tags` are Algolia filters (story, author_x, story_123), not hashtags
        metrics=_metrics(hit, is_comment),
        raw=hit,
        # A comment's `parent_id` (the story or comment it answers) and `story_id` (the thread's story)
        # are item ids, the form source_id takes; a story has no parent.
        parent_source_id=_object_id(hit.get("parent_id")) if is_comment else None,
        root_source_id=_object_id(hit.get("story_id")) if is_comment else None,
    )


def _story_text(hit: dict[str, Any]) -> str | None:
    title, body = hit.get("title"), hit.get("story_text")
    if (title is not None and not isinstance(title, str)) or (body is not None and not isinstance(body, str)):
        return None
    # Titles are plain text in the index; entities are decoded in case one slipped through.
    parts = [html.unescape(title).strip() if title else "", hn_html_to_text(body) if body else ""]
    return "\n".join(p for p in parts if p)


def _comment_text(hit: dict[str, Any]) -> str | None:
    body = hit.get("comment_text")
    if body is not None and not isinstance(body, str):
        return None
    return hn_html_to_text(body) if body else ""


def _object_id(value: Any) -> str | None:
    # Documented as a string ("objectID": "1"); an integer is accepted, booleans are not ids.
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return None


def _created_at(hit: dict[str, Any]) -> datetime | None:
    """`created_at_i` (Unix seconds), else `created_at` (ISO 8601, "2015-08-03T21:32:01Z")."""
    stamp = hit.get("created_at_i")
    if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0:
        try:
            return datetime.fromtimestamp(stamp, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return iso_datetime(hit.get("created_at"))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _metrics(hit: dict[str, Any], is_comment: bool) -> dict[str, int]:
    """Points are HN's upvote count (null on comments); a story's `num_comments` counts its whole
    thread, a comment's `children` lists its direct replies."""
    metrics: dict[str, int] = {}
    points = _int(hit.get("points"))
    if points is not None:
        metrics["likes"] = points
        metrics["score"] = points
    if is_comment:
        children = hit.get("children")
        if isinstance(children, list):
            metrics["replies"] = len(children)
    else:
        comments = _int(hit.get("num_comments"))
        if comments is not None:
            metrics["replies"] = comments
    return metrics
