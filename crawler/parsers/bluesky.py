"""Bluesky XRPC responses -> posts and paging cursors. Pure functions only: no network, no Scrapy.

Shapes are the atproto lexicons (bluesky-social/atproto, lexicons/app/bsky/...):

- `app.bsky.feed.searchPosts` output: ``{"cursor"?, "hitsTotal"?, "posts": [postView]}``
- `app.bsky.feed.getAuthorFeed` / `app.bsky.feed.getFeed` output: ``{"cursor"?, "feed": [feedViewPost]}``
- `app.bsky.feed.defs#postView`: uri, cid, author (profileViewBasic), record (an `app.bsky.feed.post`),
  reply/repost/like/quoteCount, indexedAt; `#feedViewPost`: post, reply?, reason? (`#reasonRepost`
  with its own indexedAt, or `#reasonPin`)
- `app.bsky.feed.post` record: text, facets (`app.bsky.richtext.facet`: a UTF-8 byte slice and
  features `#mention` / `#link` / `#tag`), langs, tags, createdAt
- XRPC errors: ``{"error": "ExpiredToken", "message": "Token has expired"}``
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import (
    ParseError,
    first_of_each,
    is_text,
    iso_datetime,
    json_object,
    json_text,
    parse_json_text,
)
from murmur.crawler.text import has_unstorable_escape, storable

__all__ = [
    "FeedPage",
    "Session",
    "format_datetime",
    "parse_datetime",
    "parse_feed",
    "parse_search",
    "parse_session",
    "post_from_view",
    "web_url",
    "xrpc_error",
]

SOURCE = "bluesky"
WEB = "https://bsky.app"
POST_COLLECTION = "app.bsky.feed.post"

# at://<did or handle>/<collection>/<rkey> (https://atproto.com/specs/at-uri-scheme)
_AT_URI = re.compile(r"^at://([^/?#]+)/([^/?#]+)/([^/?#]+)$")
# A handle the AppView could not verify is reported as this (app.bsky.actor.defs); the DID then names
# the account in web URLs, which bsky.app accepts in place of a handle.
_INVALID_HANDLE = "handle.invalid"
_ELLIPSIS = ("...", "…")


@dataclass
class FeedPage:
    """One page of search results or of a feed, parsed.

    ``newest``/``oldest`` are the sort times of the page's entries (including skipped ones whose time
    could be read), so a crawl can move its cursor and see when it reached posts it already has.
    ``cursor`` is the API's opaque paging cursor for the next (older) page, None at the end.
    """

    posts: list[Post]
    cursor: str | None
    newest: datetime | None
    oldest: datetime | None
    skipped: int = 0


@dataclass(frozen=True)
class Session:
    """`com.atproto.server.createSession` / `refreshSession` output (tokens are never printed)."""

    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)
    did: str
    handle: str


def parse_search(body: bytes) -> FeedPage:
    """An `app.bsky.feed.searchPosts` response -> posts, cursor and the newest/oldest sort times.

    Raises ParseError when the body is not the documented object; a malformed post is skipped and counted.
    """
    data = _load_object(body)
    views = data.get("posts")
    if not isinstance(views, list):
        raise ParseError("expected a searchPosts object with a 'posts' array")
    return _page([(view, None) for view in views], data.get("cursor"))


def parse_feed(body: bytes) -> FeedPage:
    """An `app.bsky.feed.getAuthorFeed` or `getFeed` response -> posts, cursor and sort times.

    A repost is the reposted post (its author and text), ordered by when it was reposted.
    """
    data = _load_object(body)
    items = data.get("feed")
    if not isinstance(items, list):
        raise ParseError("expected a feed object with a 'feed' array")
    entries: list[tuple[Any, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            entries.append((None, None))
            continue
        entries.append((item.get("post"), item.get("reason")))
    return _page(entries, data.get("cursor"))


def parse_session(body: bytes) -> Session:
    """A createSession/refreshSession response -> the tokens; ParseError when they are missing."""
    data = _load_object(body)
    names = ("accessJwt", "refreshJwt", "did", "handle")
    tokens = [value for name in names if is_text(value := data.get(name))]
    if len(tokens) != len(names):
        raise ParseError("session response lacks accessJwt, refreshJwt, did or handle")
    return Session(*tokens)


def xrpc_error(body: bytes) -> tuple[str, str] | None:
    """(error, message) of an XRPC error body (https://atproto.com/specs/xrpc#error-responses), else None."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None
    message = data.get("message")
    return data["error"], message if isinstance(message, str) else ""


def post_from_view(view: Any) -> Post | None:
    """One `app.bsky.feed.defs#postView` -> a Post, or None when it lacks what a post needs."""
    if not isinstance(view, dict):
        return None
    uri, author, record = view.get("uri"), view.get("author"), view.get("record")
    if not (isinstance(uri, str) and isinstance(author, dict) and isinstance(record, dict)):
        return None
    match = _AT_URI.match(uri)
    if match is None or match.group(2) != POST_COLLECTION:
        return None
    text = record.get("text")
    created_at = sort_time(view)
    name = _author_name(author)
    if not isinstance(text, str) or created_at is None or name is None:
        return None
    return post_from_record(uri, name, record, created_at=created_at, metrics=_metrics(view), raw=view)


def post_from_record(
    uri: str,
    author: str,
    record: dict[str, Any],
    *,
    created_at: datetime,
    metrics: dict[str, int] | None = None,
    raw: dict[str, Any] | None = None,
    via: str = "crawl",
) -> Post:
    """An `app.bsky.feed.post` record -> a Post, whoever read it (the spider's post views, the Jetstream
    consumer's commits): text with links written out, the first of `langs`, hashtags from facets and tags,
    and the reply refs. `author` is the handle, or the DID until a handle is known."""
    match = _AT_URI.match(uri)
    rkey = match.group(3) if match else uri.rsplit("/", 1)[-1]
    text = record.get("text")
    langs = record.get("langs")
    lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) and langs[0] else None
    parent, root = reply_refs(record)
    return Post(
        source=SOURCE,
        source_id=uri,
        url=web_url(author, rkey),
        author=author,
        text=_expand_links(text if isinstance(text, str) else "", record.get("facets")).strip(),
        created_at=created_at,
        lang=lang,
        tags=_tags(record),
        metrics=metrics or {},
        raw=raw if raw is not None else record,
        parent_source_id=parent,
        root_source_id=root,
        via=via,
    )


def reply_refs(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(parent, root) at:// URIs of a reply record's `reply` refs (app.bsky.feed.post#replyRef), or Nones."""
    reply = record.get("reply")
    if not isinstance(reply, dict):
        return None, None

    def uri_of(ref: Any) -> str | None:
        uri = ref.get("uri") if isinstance(ref, dict) else None
        return uri if isinstance(uri, str) and uri.startswith("at://") else None

    return uri_of(reply.get("parent")), uri_of(reply.get("root"))


def web_url(actor: str, rkey: str) -> str:
    """The post's page on bsky.app: https://bsky.app/profile/<handle or did>/post/<rkey>."""
    return f"{WEB}/profile/{actor}/post/{rkey}"


def sort_time(view: dict[str, Any]) -> datetime | None:
    """When a post sorts: its record's createdAt, unless that claims a time after the AppView indexed
    it (a client clock in the future), then indexedAt. This is the AppView's own `sortAt`, which the
    searchPosts `since` parameter is documented to compare against."""
    record = view.get("record")
    created = parse_datetime(record.get("createdAt")) if isinstance(record, dict) else None
    indexed = parse_datetime(view.get("indexedAt"))
    if created is None:
        return None
    return min(created, indexed) if indexed is not None else created


def parse_datetime(value: Any) -> datetime | None:
    """An atproto datetime (RFC 3339, e.g. "2025-01-14T15:05:30.017Z") -> aware UTC; None if unreadable."""
    if not isinstance(value, str) or "T" not in value:
        return None
    return iso_datetime(value)


def format_datetime(value: datetime) -> str:
    """The form stored as a cursor and sent as `since`: UTC with milliseconds and a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _load_object(body: bytes) -> dict[str, Any]:
    text = json_text(body)
    data = json_object(parse_json_text(text))
    # What PostgreSQL cannot store (NUL, a lone surrogate) JSON can only carry escaped: only a body with
    # such an escape is cleaned, so that text and facets' byte offsets agree with what is stored.
    if has_unstorable_escape(text):
        data = storable(data)
    if isinstance(data.get("error"), str):
        message = data.get("message")
        detail = f": {message[:200]}" if isinstance(message, str) and message else ""
        raise ParseError(f"server returned an error: {data['error'][:100]}{detail}")
    return data


def _page(entries: list[tuple[Any, Any]], cursor: Any) -> FeedPage:
    # A post and a repost of it in one page are one post; the first seen (the newest) is kept.
    posts, skipped = first_of_each(post_from_view(view) for view, _ in entries)
    times = [when for view, reason in entries if (when := _entry_time(view, reason)) is not None]
    return FeedPage(
        posts=posts,
        cursor=cursor if isinstance(cursor, str) and cursor else None,
        newest=max(times, default=None),
        oldest=min(times, default=None),
        skipped=skipped,
    )


def _entry_time(view: Any, reason: Any) -> datetime | None:
    # A repost sits in a feed at the time it was reposted (app.bsky.feed.defs#reasonRepost.indexedAt).
    if isinstance(reason, dict) and reason.get("$type") == "app.bsky.feed.defs#reasonRepost":
        when = parse_datetime(reason.get("indexedAt"))
        if when is not None:
            return when
    return sort_time(view) if isinstance(view, dict) else None


def _author_name(author: dict[str, Any]) -> str | None:
    handle, did = author.get("handle"), author.get("did")
    if isinstance(handle, str) and handle and handle != _INVALID_HANDLE:
        return handle
    return did if isinstance(did, str) and did.startswith("did:") else None


def _features(facets: Any) -> list[tuple[int, int, dict[str, Any]]]:
    """(byteStart, byteEnd, feature) for each well-formed facet feature."""
    found: list[tuple[int, int, dict[str, Any]]] = []
    if not isinstance(facets, list):
        return found
    for facet in facets:
        if not isinstance(facet, dict):
            continue
        index, features = facet.get("index"), facet.get("features")
        if not isinstance(index, dict) or not isinstance(features, list):
            continue
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            continue
        found.extend((start, end, f) for f in features if isinstance(f, dict))
    return found


def _expand_links(text: str, facets: Any) -> str:
    """Put each link's full URL in place of its shortened display text ("example.com/rednote-gui...").

    Facets index UTF-8 bytes, not characters (app.bsky.richtext.facet#byteSlice). Only a display text
    that is the URL itself, shortened, is replaced: a link on other words keeps the words.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no byte offsets to follow
        return text
    links = [
        (start, end, feature["uri"])
        for start, end, feature in _features(facets)
        if feature.get("$type") == "app.bsky.richtext.facet#link" and isinstance(feature.get("uri"), str)
        and 0 <= start < end <= len(data)
    ]
    for start, end, uri in sorted(links, reverse=True):
        try:
            shown = data[start:end].decode("utf-8")
        except UnicodeDecodeError:  # the slice splits a character: the facet is wrong, keep the text
            continue
        if _is_shortened(shown, uri):
            data = data[:start] + uri.encode("utf-8") + data[end:]
    return data.decode("utf-8")


def _is_shortened(shown: str, uri: str) -> bool:
    stem = shown.strip()
    for mark in _ELLIPSIS:
        stem = stem.removesuffix(mark)
    if len(stem) < 4:  # too short to say it is the URL
        return False
    bare = re.sub(r"^[a-z][a-z0-9+.-]*://", "", uri, flags=re.IGNORECASE)
    return uri.startswith(stem) or bare.startswith(stem) or bare.removeprefix("www.").startswith(stem)


def _tags(record: dict[str, Any]) -> list[str]:
    """Hashtags from `#tag` facets, then the record's extra `tags`, without '#', each once."""
    names: list[str] = [
        feature["tag"]
        for _, _, feature in _features(record.get("facets"))
        if feature.get("$type") == "app.bsky.richtext.facet#tag" and isinstance(feature.get("tag"), str)
    ]
    extra = record.get("tags")
    if isinstance(extra, list):
        names.extend(t for t in extra if isinstance(t, str))
    tags: list[str] = []
    folded: set[str] = set()
    for name in names:
        tag = name.strip().lstrip("#")
        if tag and tag.casefold() not in folded:
            folded.add(tag.casefold())
            tags.append(tag)
    return tags


def _metrics(view: dict[str, Any]) -> dict[str, int]:
    fields = {"replies": "replyCount", "reposts": "repostCount", "likes": "likeCount", "quotes": "quoteCount"}
    metrics: dict[str, int] = {}
    for name, key in fields.items():
        value = view.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            metrics[name] = value
    return metrics
