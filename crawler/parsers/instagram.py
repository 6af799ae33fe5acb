"""Instagram Graph API bodies -> posts: hashtag search (``GET /ig_hashtag_search``) and a hashtag's recent
media (``GET /{ig-hashtag-id}/recent_media``). The error envelope and paging every Meta Graph API answers
with are `murmur.crawler.parsers.meta_graph` (re-exported here: the names were first defined in this module).

Shapes: https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-hashtag-search
(``{"data": [{"id": "17843857450040591"}]}``), .../reference/ig-hashtag/recent-media (``{"data": [media...],
"paging": {"cursors": {"after"}, "next"}}``; media fields ``id``, ``caption``, ``media_type``, ``permalink``,
``timestamp``, ``like_count`` (left out when the owner hides it), ``comments_count``; ``username`` cannot be
asked for). Pure functions only: no network, no Scrapy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from murmur.crawler.items import Post
from murmur.crawler.parsers.meta_graph import (
    GraphError,
    GraphPage,
    graph_entries,
    graph_int,
    graph_time,
    load_graph_object,
    parse_graph_error,
    parse_graph_page,
)

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "GraphError",
    "GraphPage",
    "graph_time",
    "load_graph_object",
    "parse_graph_error",
    "parse_hashtag_search",
    "parse_recent_media",
]

SOURCE = "instagram"


def parse_hashtag_search(body: bytes) -> str | None:
    """An ``ig_hashtag_search`` body -> the hashtag's id; None when Instagram knows no such hashtag.

    Raises ParseError when the body is not ``{"data": [...]}``.
    """
    _, entries = graph_entries(body)
    for entry in entries:
        ident = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(ident, str) and ident.strip().isdigit():
            return ident.strip()
    return None


def parse_recent_media(body: bytes, *, tag: str) -> GraphPage:
    """A ``recent_media`` page -> one post per media with a caption; ``tag`` is the hashtag it was found by.

    Raises ParseError when the body is not ``{"data": [...]}``; a malformed entry is skipped and counted.
    """
    return parse_graph_page(body, lambda entry, created: _media(entry, created, tag))


def _media(entry: Any, created_at: datetime, tag: str) -> Post | None:
    ident = entry.get("id")
    if not isinstance(ident, str) or not ident.strip().isdigit():
        return None
    caption = entry.get("caption")
    if caption is not None and not isinstance(caption, str):
        return None
    permalink = entry.get("permalink")
    metrics: dict[str, int] = {}
    likes = graph_int(entry.get("like_count"))  # absent when the owner hides like counts
    if likes is not None:
        metrics["likes"] = likes
    comments = graph_int(entry.get("comments_count"))
    if comments is not None:
        metrics["replies"] = comments
    return Post(
        source=SOURCE,
        source_id=ident.strip(),
        url=permalink if isinstance(permalink, str) and permalink.startswith("https://") else None,
        # recent_media cannot return `username`; the public page at `url` names the author.
        author=None,
        text=caption or "",  # a media without a caption has no text to score: the pipeline drops it
        created_at=created_at,
        lang=None,
        tags=[tag],  # Instagram returned it for this hashtag
        metrics=metrics,
        raw=entry,
    )
