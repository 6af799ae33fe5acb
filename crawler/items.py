"""The one shape every source produces, and the marker that moves a cursor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Post:
    """A public post, as every parser returns it (STYLE.md: one shape for a post)."""

    source: str
    source_id: str
    url: str | None
    author: str | None
    text: str
    created_at: datetime
    lang: str | None = None
    tags: list[str] = field(default_factory=list)  # hashtags the platform reports, without '#'
    metrics: dict[str, int] = field(default_factory=dict)  # replies, reposts, likes, ...
    raw: dict[str, Any] = field(default_factory=dict)  # the platform's own record, kept for re-parsing
    terms: list[str] = field(default_factory=list)  # configured terms it matched (set by a pipeline)
    # The conversation: the source_id this post replies to, and of its thread's root (None: top level).
    parent_source_id: str | None = None
    root_source_id: str | None = None
    via: str = "crawl"  # how it arrived: crawl, stream or import
    region: str | None = None  # where the platform says it was posted from (RedNote ip_location, ...)


@dataclass
class CursorUpdate:
    """Yielded by a spider after the posts it covers; the store pipeline writes it in the same
    transaction as those posts, so a cursor never runs ahead of what is committed."""

    source: str
    query: str
    cursor: str
