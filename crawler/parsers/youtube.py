"""YouTube Data API v3 bodies -> posts: ``search.list`` pages (videos), ``commentThreads.list``
pages (top-level comments) and error bodies.

Shapes: https://developers.google.com/youtube/v3/docs/search/list,
https://developers.google.com/youtube/v3/docs/commentThreads/list and the schemas in the API's
discovery document (googleapis/google-api-python-client
googleapiclient/discovery_cache/documents/youtube.v3.json: SearchResult, CommentThread,
CommentSnippet). Errors: https://developers.google.com/youtube/v3/docs/errors. Pure functions
only: no network, no Scrapy.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, is_text, iso_datetime, load_json

__all__ = ["ApiError", "CommentsPage", "SearchPage", "parse_comment_threads", "parse_error", "parse_search"]

SOURCE = "youtube"
WATCH = "https://www.youtube.com/watch?v="


@dataclass
class SearchPage:
    """One ``search.list`` page: videos as posts, the token of the next page, and the newest
    ``publishedAt`` among its results (skipped ones included), the incremental cursor."""

    posts: list[Post]
    next_page_token: str | None
    newest_published: str | None
    skipped: int = 0  # results dropped as malformed (or not videos)

    @property
    def video_ids(self) -> list[str]:
        return [p.source_id for p in self.posts]


@dataclass
class CommentsPage:
    posts: list[Post]
    next_page_token: str | None
    skipped: int = 0  # malformed threads, and threads not visible to everyone


@dataclass(frozen=True)
class ApiError:
    """``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``."""

    code: int | None
    reason: str | None  # errors[0].reason: quotaExceeded, keyInvalid, commentsDisabled, ...
    message: str
    details: tuple[str, ...] = field(default=())  # google.rpc.ErrorInfo reasons, e.g. API_KEY_INVALID


def parse_search(body: bytes) -> SearchPage:
    """A ``search.list`` page (``type=video``) -> one post per video: title and description.

    Raises ParseError when the body is not a searchListResponse; a malformed result is skipped.
    """
    data = _load_response(body, "youtube#searchListResponse")
    posts: list[Post] = []
    published: list[tuple[datetime, str]] = []
    skipped = 0
    for item in data["items"]:
        snippet = item.get("snippet") if isinstance(item, dict) else None
        stamp = _published(snippet)
        if stamp is not None:
            published.append(stamp)
        post = _video(item)
        if post is None:
            skipped += 1
        else:
            posts.append(post)
    return SearchPage(
        posts=posts,
        next_page_token=_token(data.get("nextPageToken")),
        newest_published=max(published)[1] if published else None,
        skipped=skipped,
    )


def parse_comment_threads(body: bytes) -> CommentsPage:
    """A ``commentThreads.list`` page (``part=snippet``, ``textFormat=plainText``) -> one post per
    top-level comment."""
    data = _load_response(body, "youtube#commentThreadListResponse")
    posts: list[Post] = []
    skipped = 0
    for item in data["items"]:
        post = _comment(item)
        if post is None:
            skipped += 1
        else:
            posts.append(post)
    return CommentsPage(posts=posts, next_page_token=_token(data.get("nextPageToken")), skipped=skipped)


def parse_error(body: bytes, status: int | None = None) -> ApiError:
    """An error answer -> its code, reason and message; never raises."""
    try:
        data = json.loads(body.decode("utf-8", "replace")) if body else None
    except (json.JSONDecodeError, RecursionError):
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ApiError(status, None, f"HTTP {status}" if status else "error")
    errors = error.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    reason = first.get("reason")
    message = error.get("message") or first.get("message") or f"HTTP {status}"
    details = error.get("details")
    detail_reasons = tuple(
        d["reason"] for d in details if isinstance(d, dict) and isinstance(d.get("reason"), str)
    ) if isinstance(details, list) else ()
    code = error.get("code")
    return ApiError(
        code=code if isinstance(code, int) and not isinstance(code, bool) else status,
        reason=reason if isinstance(reason, str) and reason else None,
        # Some messages carry HTML ("exceeded your <a href=...>quota</a>."); a log line wants text.
        message=re.sub(r"<[^>]+>", "", str(message)).strip(),
        details=detail_reasons,
    )


# --- records -> posts ----------------------------------------------------------------------


def _video(item: Any) -> Post | None:
    if not isinstance(item, dict):
        return None
    ident, snippet = item.get("id"), item.get("snippet")
    if not isinstance(ident, dict) or not isinstance(snippet, dict):
        return None
    video_id = ident.get("videoId")
    if ident.get("kind") != "youtube#video" or not is_text(video_id):
        return None  # type=video asks for videos only; a channel or playlist result is not a post
    title, description = snippet.get("title"), snippet.get("description")
    created = iso_datetime(snippet.get("publishedAt"))
    if not isinstance(title, str) or created is None:
        return None
    # search.list sends title and description HTML-escaped ("Rubik&#39;s", "&amp;"): a known quirk
    # of this method (videos.list does not), so they are decoded once.
    parts = [html.unescape(title).strip()]
    if isinstance(description, str) and description.strip():
        parts.append(html.unescape(description).strip())
    channel = snippet.get("channelTitle")
    return Post(
        source=SOURCE,
        source_id=video_id,
        url=WATCH + video_id,
        author=html.unescape(channel) if is_text(channel) else None,
        text="\n\n".join(parts),
        created_at=created,
        raw=item,
    )


def _comment(item: Any) -> Post | None:
    if not isinstance(item, dict) or not isinstance(item.get("snippet"), dict):
        return None
    thread = item["snippet"]
    if thread.get("isPublic") is False:
        return None  # not visible to everyone: not a public post
    top = thread.get("topLevelComment")
    snippet = top.get("snippet") if isinstance(top, dict) else None
    if not isinstance(snippet, dict):
        return None
    comment_id = top.get("id")
    video_id = thread.get("videoId") or snippet.get("videoId")
    text = snippet.get("textDisplay")
    created = iso_datetime(snippet.get("publishedAt"))
    if not (is_text(comment_id) and is_text(video_id) and isinstance(text, str) and created):
        return None
    metrics: dict[str, int] = {}
    for name, value in (("likes", snippet.get("likeCount")), ("replies", thread.get("totalReplyCount"))):
        if isinstance(value, int) and not isinstance(value, bool):
            metrics[name] = value
    author = snippet.get("authorDisplayName")
    return Post(
        source=SOURCE,
        source_id=comment_id,
        url=f"{WATCH}{video_id}&lc={comment_id}",
        author=author if is_text(author) else None,
        # textFormat=plainText: the comment as text, links and mentions included as typed.
        text=text.strip(),
        created_at=created,
        metrics=metrics,
        raw=item,
        # A top-level comment answers the video, whose source_id is its video id, and roots its thread.
        parent_source_id=video_id,
        root_source_id=video_id,
    )


def _published(snippet: Any) -> tuple[datetime, str] | None:
    if not isinstance(snippet, dict):
        return None
    value = snippet.get("publishedAt")
    parsed = iso_datetime(value)
    return (parsed, _rfc3339(parsed)) if parsed is not None else None


def _rfc3339(when: datetime) -> str:
    """The form publishedAfter takes: RFC 3339 in UTC, e.g. 2025-01-15T08:30:00Z."""
    text = when.astimezone(UTC).isoformat(timespec="microseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _token(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _load_response(body: bytes, kind: str) -> dict[str, Any]:
    data = load_json(body)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = parse_error(body)
        raise ParseError(f"server returned an error: {error.reason or error.code}: {error.message}"[:200])
    if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
        raise ParseError(f"expected a {kind} object with an items array")
    if data.get("kind") not in (None, kind):
        raise ParseError(f"expected a {kind}, got {data.get('kind')!r}")
    data.setdefault("items", [])  # an empty result may leave items out
    return data
