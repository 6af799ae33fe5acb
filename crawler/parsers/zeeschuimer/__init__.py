"""Zeeschuimer NDJSON captures -> imported posts (a format parser: crawler/parsers/imported.py).

Zeeschuimer (digitalmethodsinitiative/zeeschuimer, a Firefox extension) records the items a researcher's
browser loads and exports them one JSON object a line (js/zs-background.js): ``id``, ``nav_index``,
``item_id``, ``timestamp_collected`` (ms), ``last_updated`` (ms, exports since Feb 2026),
``source_platform`` (the module id), ``source_platform_url`` (the tab), ``source_url`` (the request),
``user_agent`` and ``data`` (the platform's own object). Each platform's `data` is mapped the way 4CAT
maps it (digitalmethodsinitiative/4cat ``datasources/*/search_*.py`` ``map_item``), in the modules beside
this one. The same item may be exported twice: the store's upsert on (source, source_id) makes that one post.

Skip kinds: "malformed" (not an object, no ``data`` object), "unknown_platform", "no_id", "no_time", "ad",
"live" (a live stream, no post), "stub" (a RedNote tile with no content), "unavailable" (a withheld tweet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from murmur.crawler.parsers import as_string
from murmur.crawler.parsers.imported import Imported, skipped
from murmur.crawler.parsers.zeeschuimer.bytedance import douyin_post, tiktok_comment, tiktok_post
from murmur.crawler.parsers.zeeschuimer.common import Capture, Skip, search_query, text_id
from murmur.crawler.parsers.zeeschuimer.meta import instagram_post, threads_post
from murmur.crawler.parsers.zeeschuimer.rednote import comments as rednote_comments
from murmur.crawler.parsers.zeeschuimer.rednote import note as rednote_note
from murmur.crawler.parsers.zeeschuimer.x import x_post

__all__ = ["PLATFORMS", "SKIP_KINDS", "items", "sniff", "source_of"]

Mapper = Callable[[dict[str, Any], Capture], list[Imported]]

# source_platform (Zeeschuimer's module id) -> (murmur source, mapper).
PLATFORMS: dict[str, tuple[str, Mapper]] = {
    "xiaohongshu.com": ("rednote", rednote_note),
    "xiaohongshu-comments": ("rednote", rednote_comments),
    "tiktok.com": ("tiktok", tiktok_post),
    "tiktok-comments": ("tiktok", tiktok_comment),
    "douyin.com": ("douyin", douyin_post),
    "instagram.com": ("instagram", instagram_post),
    "threads.net": ("threads", threads_post),
    "twitter.com": ("x", x_post),
}
SKIP_KINDS = ("malformed", "unknown_platform", "no_id", "no_time", "ad", "live", "stub", "unavailable")
_ENVELOPE_KEYS = ("item_id", "timestamp_collected", "source_platform_url", "source_url", "nav_index")


def sniff(first: Any) -> bool:
    """Whether the first line of a file (parsed) is a Zeeschuimer item: an object with a string
    ``source_platform``, a ``data`` object and at least one other envelope key."""
    return (
        isinstance(first, dict)
        and isinstance(first.get("source_platform"), str)
        and isinstance(first.get("data"), dict)
        and any(key in first for key in _ENVELOPE_KEYS)
    )


def source_of(platform: str) -> str | None:
    """The murmur source a Zeeschuimer `source_platform` imports into, or None when it is not mapped."""
    entry = PLATFORMS.get(platform)
    return entry[0] if entry else None


def items(envelope: Any) -> list[Imported]:
    """One NDJSON line's object -> its posts (with the search keyword its URLs carry), or the skip saying
    why it has none. Never raises."""
    if not isinstance(envelope, dict):
        return skipped("malformed")
    platform = as_string(envelope.get("source_platform"))
    entry = PLATFORMS.get(platform)
    if entry is None:
        return skipped("unknown_platform")
    data = envelope.get("data")
    if not isinstance(data, dict):
        return skipped("malformed")
    platform_url, source_url = as_string(envelope.get("source_platform_url")), as_string(envelope.get("source_url"))
    collected = envelope.get("timestamp_collected")
    capture = Capture(
        platform=platform,
        item_id=text_id(envelope.get("item_id")),
        collected_ms=collected if isinstance(collected, int) and not isinstance(collected, bool) else None,
        platform_url=platform_url,
        source_url=source_url,
        query=search_query(source_url, platform_url),
    )
    try:
        return entry[1](data, capture)
    except Skip as skip:
        return skipped(skip.kind)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError):
        # A shape no mapper expects (a list where an object belongs, ...): counted, never a traceback.
        return skipped("malformed")
