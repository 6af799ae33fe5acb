"""What every Zeeschuimer platform mapper shares: the capture's envelope, the reason a record is skipped,
times and counts as the platforms write them, and the one way a mapped record becomes an imported post."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from murmur.crawler.items import Post
from murmur.crawler.parsers import as_object, as_string, count, metrics_of  # noqa: F401 (metrics_of: re-exported)
from murmur.crawler.parsers.imported import Imported

VIA = "import"


class Skip(Exception):
    """A record that gives no post; `kind` is the short reason the importer counts. A signal inside this
    package only: `items` turns it into `Imported(skip=kind)`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class Capture:
    """The envelope of one NDJSON line, less its `data`: where and when the browser saw the item."""

    platform: str
    item_id: str | None
    collected_ms: int | None
    platform_url: str
    source_url: str
    query: str | None

    def meta(self) -> dict[str, Any]:
        """Provenance kept in each post's raw record, under "zeeschuimer"."""
        return {"source_platform": self.platform, "item_id": self.item_id, "timestamp_collected": self.collected_ms,
                "source_platform_url": self.platform_url or None}


def imported(capture: Capture, post: Post, record: dict[str, Any], **extra: Any) -> Imported:
    """The post as imported: `via` "import", the platform's record as raw (with the capture's provenance and
    any `extra`), and the search the capture came from."""
    post.via = VIA
    post.raw = {**record, **extra, "zeeschuimer": capture.meta()}
    return Imported(post=post, query=capture.query)


def unix_time(value: Any, *, millis: bool = False) -> datetime | None:
    """Unix seconds (or milliseconds with `millis`) as an int, a float or a digit string -> aware UTC."""
    if isinstance(value, float) and not value.is_integer():
        number: int | None = int(value) if value > 0 else None
    else:
        number = count(int(value) if isinstance(value, float) else value)
    if not number:
        return None
    try:
        return datetime.fromtimestamp(number / 1000 if millis else number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def text_id(value: Any) -> str | None:
    """An id given as a non-empty string or a positive int, as a string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def pick(record: dict[str, Any], *keys: str) -> Any:
    """The first of `keys` whose value is not None (the same field under snake_case and camelCase names)."""
    for key in keys:
        value = record.get(key)
        if value is not None:
            return value
    return None


def nonempty(value: Any) -> str | None:
    """A stripped string, or None when it is not a string or is blank."""
    text = as_string(value).strip()
    return text or None




# --- the search a capture came from ---

_QUERY_KEYS = ("keyword", "q", "query", "search_key", "searchKeyword", "rawQuery")
# Douyin's search page carries its keyword in the path: https://www.douyin.com/search/<keyword>?type=video
_PATH_KEYWORD = re.compile(r"/search/([^/?#]+)")
_PATH_NOT_KEYWORD = {"video", "user", "users", "live", "general", "item", "notes", "top", "photo", "tag", "music"}


def search_query(*urls: str) -> str | None:
    """The keyword searched for, when one of `urls` (the request, then the tab) is a search: a "search" in
    its path and a `keyword`/`q`/`query` parameter (X's SearchTimeline: `variables` JSON with `rawQuery`),
    or Douyin's `/search/<keyword>` path. None when none of them is a search."""
    for url in urls:
        if not isinstance(url, str) or "search" not in url.lower():
            continue
        parts = urlsplit(url)
        if "search" not in parts.path.lower():
            continue
        params = parse_qs(parts.query)
        for key in _QUERY_KEYS:
            for value in params.get(key, []):
                if value.strip():
                    return value.strip()
        for value in params.get("variables", []):
            try:
                variables = json.loads(value)
            except ValueError:
                continue
            raw = as_string(as_object(variables).get("rawQuery")).strip()
            if raw:
                return raw
        found = _PATH_KEYWORD.search(parts.path)
        if found:
            keyword = unquote(found.group(1)).strip()
            if keyword and keyword.lower() not in _PATH_NOT_KEYWORD:
                return keyword
    return None
