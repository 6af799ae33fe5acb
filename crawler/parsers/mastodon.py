"""Mastodon tag timeline (`GET /api/v1/timelines/tag/:hashtag`) -> posts and paging ids.

The body is a JSON array of Status entities (https://docs.joinmastodon.org/methods/timelines/#tag,
https://docs.joinmastodon.org/entities/Status/). Pure functions only: no network, no Scrapy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from murmur.crawler.items import Post
from murmur.crawler.parsers import Page, ParseError, id_key, iso_datetime, load_json, raise_for_error
from murmur.crawler.parsers import html_to_text as _html_to_text

__all__ = ["Context", "html_to_text", "local_ref", "parse_context", "parse_timeline"]

SOURCE = "mastodon"

# What a status must carry to become a Post; anything less is skipped and counted, not raised.
_REQUIRED = ("id", "uri", "created_at", "content", "account")


def parse_timeline(body: bytes, *, instance: str) -> Page:
    """A Mastodon tag timeline page -> posts, and the ids to page back and forward from.

    ``instance`` is the server the page came from (a host, or a base URL): local accounts carry a bare
    ``acct`` (https://docs.joinmastodon.org/entities/Account/#acct) and are qualified with its host.
    Raises ParseError when the body is not a JSON array; a malformed entry is skipped and counted.
    """
    statuses = _load_array(body)
    host, ref_host = _instance_host(instance), _ref_host(instance)

    posts: list[Post] = []
    seen_uris: set[str] = set()
    ids: list[str] = []
    skipped = 0
    for entry in statuses:
        outer_id = _status_id(entry.get("id")) if isinstance(entry, dict) else None
        if outer_id is not None:
            ids.append(outer_id)
        post = _to_post(entry, host, ref_host) if outer_id is not None else None
        if post is None:
            skipped += 1
            continue
        # A boost resolves to the boosted status's uri, so the original and its boosts in one page are
        # one post; the first seen (the newest, as timelines are newest first) is kept.
        if post.source_id in seen_uris:
            continue
        seen_uris.add(post.source_id)
        posts.append(post)

    if not ids:
        return Page(posts=posts, oldest_id=None, newest_id=None, skipped=skipped)
    return Page(posts=posts, oldest_id=min(ids, key=id_key), newest_id=max(ids, key=id_key), skipped=skipped)


@dataclass
class Context:
    """A status's conversation (`GET /api/v1/statuses/:id/context`), its replies resolved to URIs.

    ``focus`` is the status the context was asked for, given again with its parent and root as URIs;
    ``replies`` are the descendants, each with its parent's URI and the thread's root (the first ancestor,
    or the focus when it has none). ``root`` is that root's URI.
    """

    focus: Post
    replies: list[Post]
    root: str
    skipped: int = 0


def local_ref(host: str, status_id: Any) -> str | None:
    """``<host>:<id>``: a status id as the instance `host` knows it (`in_reply_to_id` is such an id,
    https://docs.joinmastodon.org/entities/Status/#in_reply_to_id), unambiguous until it is resolved to
    the status's URI (docs/sql.md, "Conversations"); None for no id."""
    local = _status_id(status_id)
    return f"{host}:{local}" if local is not None else None


def parse_context(body: bytes, *, instance: str, focus: Post) -> Context:
    """A Context entity (``{"ancestors": [Status], "descendants": [Status]}``,
    https://docs.joinmastodon.org/methods/statuses/#context) read on `instance` for the status `focus`
    (parsed from the same instance) -> the focus and its replies with parents and root as URIs.

    Every status of the context is known by its local id on this instance, so each ``in_reply_to_id``
    resolves to a URI; the root is the first ancestor (the API orders them oldest first).
    Raises ParseError when the body is no Context; a malformed status is skipped and counted.
    """
    data = load_json(body)
    raise_for_error(data)
    if not isinstance(data, dict) or not isinstance(data.get("ancestors"), list) \
            or not isinstance(data.get("descendants"), list):
        raise ParseError("expected a context object with 'ancestors' and 'descendants' arrays")
    host, ref_host = _instance_host(instance), _ref_host(instance)
    uris: dict[str, str] = {}
    for status in [*data["ancestors"], *data["descendants"], focus.raw]:
        local, uri = (_status_id(status.get("id")), status.get("uri")) if isinstance(status, dict) else (None, None)
        if local is not None and isinstance(uri, str) and uri:
            uris[f"{ref_host}:{local}"] = uri
    first = data["ancestors"][0] if data["ancestors"] else None
    first_uri = first.get("uri") if isinstance(first, dict) else None
    root: str = first_uri if isinstance(first_uri, str) and first_uri else focus.source_id

    def placed(post: Post) -> Post:
        post.parent_source_id = uris.get(post.parent_source_id or "", post.parent_source_id)
        post.root_source_id = root
        return post

    replies: list[Post] = []
    skipped = 0
    for status in data["descendants"]:
        post = _to_post(status, host, ref_host) if isinstance(status, dict) else None
        if post is None:
            skipped += 1
        elif post.source_id != focus.source_id:
            replies.append(placed(post))
    again = placed(replace(focus, parent_source_id=local_ref(ref_host, focus.raw.get("in_reply_to_id")),
                           terms=list(focus.terms)))
    if first is None:
        again.root_source_id = None  # a top-level post: the root of its thread, with no root above it
    return Context(focus=again, replies=replies, root=root, skipped=skipped)


def html_to_text(content: str) -> str:
    """Status ``content`` HTML -> plain text: tags stripped, entities decoded, one newline per run of
    ``<br>``/``</p>``, surrounding whitespace trimmed; ValueError when lxml cannot read it at all.

    The newline rule is Mastodon's own HTML -> plain text (app/lib/plain_text_formatter.rb), so a
    post's text reads as Mastodon renders it in plain text: a ``<br>`` or the end of a ``<p>`` breaks
    a line, nothing else does. Links keep their full URL (the ``invisible``/``ellipsis`` spans are
    display-only).
    """
    return _html_to_text(content, break_before=("br",), break_after=("p",), strict=True)


def _load_array(body: bytes) -> list[Any]:
    data = load_json(body)
    raise_for_error(data)  # Mastodon's error entity (https://docs.joinmastodon.org/entities/Error/)
    if not isinstance(data, list):
        raise ParseError(f"expected a json array of statuses, got {type(data).__name__}")
    return data


def _instance_host(instance: str) -> str:
    """'mastodon.social', 'https://mastodon.social/' -> 'mastodon.social'."""
    candidate = instance.strip()
    if "://" not in candidate:
        candidate = f"//{candidate}"
    try:
        host = urlsplit(candidate).hostname
    except ValueError:
        host = None
    return host or instance.strip().lower()


def _ref_host(instance: str) -> str:
    """The instance as local references name it: its host, with the port when one is given
    ('https://mastodon.social/' -> 'mastodon.social', 'localhost:8080' -> 'localhost:8080')."""
    candidate = instance.strip()
    if "://" in candidate:
        candidate = urlsplit(candidate).netloc
    return candidate.strip("/").lower() or _instance_host(instance)


def _status_id(value: Any) -> str | None:
    # Documented as a string; an integer is accepted (some servers), booleans and floats are not ids.
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _to_post(entry: dict[str, Any], host: str, ref_host: str) -> Post | None:
    """One Status -> a Post, or None when it lacks what a post needs; its parent is a local reference
    on `ref_host` (`local_ref`)."""
    status = entry
    reblog = entry.get("reblog")
    if reblog is not None:
        # A boost is a wrapper with empty content around the boosted status
        # (https://docs.joinmastodon.org/entities/Status/#reblog): the post is the boosted one.
        if not isinstance(reblog, dict):
            return None
        status = reblog
    if any(status.get(name) is None for name in _REQUIRED):
        return None

    uri, content, account = status["uri"], status["content"], status["account"]
    if not (isinstance(uri, str) and uri and isinstance(content, str) and isinstance(account, dict)):
        return None
    author = _author(account.get("acct"), _account_host(account) or host)
    created_at = iso_datetime(status["created_at"])
    if author is None or created_at is None or _status_id(status["id"]) is None:
        return None
    try:
        text = html_to_text(content)
    except ValueError:  # HTML lxml cannot read: skipped and counted
        return None

    spoiler = status.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        # A content warning is the post's subject line (shown before the collapsed content), and
        # often carries the sentiment ("rant", "spoilers"), so it leads the text.
        text = f"{spoiler.strip()}\n{text}" if text else spoiler.strip()

    url = status.get("url")
    language = status.get("language")
    return Post(
        source=SOURCE,
        source_id=uri,
        url=url if isinstance(url, str) and url else uri,
        author=author,
        text=text,
        created_at=created_at,
        lang=language if isinstance(language, str) and language else None,
        tags=_tag_names(status.get("tags")),
        metrics=_metrics(status),
        raw=status,
        parent_source_id=local_ref(ref_host, status.get("in_reply_to_id")),
    )


def _account_host(account: dict[str, Any]) -> str | None:
    """The host of the account's profile URL: a local account's real home, even when the page was
    read through a mirror or a replay server (https://docs.joinmastodon.org/entities/Account/#url)."""
    url = account.get("url")
    if not isinstance(url, str):
        return None
    return urlsplit(url).hostname or None


def _author(acct: Any, host: str) -> str | None:
    # `acct` is "username" for accounts local to the instance, "username@domain" for remote ones
    # (https://docs.joinmastodon.org/entities/Account/#acct); qualify local ones so one person is
    # one author whichever instance we read them through.
    if not isinstance(acct, str) or not acct.strip():
        return None
    acct = acct.strip().lstrip("@")
    if not acct:
        return None
    return acct if "@" in acct else f"{acct}@{host}"




def _tag_names(tags: Any) -> list[str]:
    if not isinstance(tags, list):
        return []
    return [tag["name"] for tag in tags if isinstance(tag, dict) and isinstance(tag.get("name"), str)]


def _metrics(status: dict[str, Any]) -> dict[str, int]:
    fields = {"replies": "replies_count", "reposts": "reblogs_count", "likes": "favourites_count"}
    metrics: dict[str, int] = {}
    for name, field in fields.items():
        value = status.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            metrics[name] = value
    return metrics
