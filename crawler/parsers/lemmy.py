"""Lemmy search (`GET /api/v3/search`) -> posts and paging facts.

The body is a SearchResponse, ``{"type_", "posts": PostView[], "comments": CommentView[],
"communities": [...], "users": [...]}`` (LemmyNet/lemmy ``crates/api_common/src/site.rs``). A PostView
is ``{post, creator, community, counts, ...}`` and a CommentView ``{comment, creator, post, community,
counts, ...}`` (``crates/db_views/src/structs.rs``); post bodies and comment contents are markdown.
Pure functions only: no network, no Scrapy.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, as_object, iso_datetime, json_object, load_json, raise_for_error

__all__ = ["KINDS", "SearchPage", "comment_refs", "markdown_to_text", "parse_search"]

SOURCE = "lemmy"

# What the spider asks for (`type_`) per kind, and the SearchResponse list that answers it.
KINDS = {"posts": "Posts", "comments": "Comments"}

_REMOVED = "removed"  # what a converter returns for a record deleted by its author or removed by a mod


@dataclass
class SearchPage:
    """One page of search results of one kind, parsed.

    ``count`` is the number of entries in the list (skipped ones too), so paging never depends on how
    many were usable; ``newest``/``oldest`` are the extreme ``published`` times on the page, over every
    entry that had one (deleted ones too): the incremental cursor and the point to stop paging.
    """

    posts: list[Post]
    count: int
    newest: datetime | None
    oldest: datetime | None
    skipped: int = 0  # entries without what a post needs (no ap_id, no date, wrong types)
    removed: int = 0  # entries deleted by their author or removed by a moderator


def parse_search(body: bytes, *, kind: str, instance: str) -> SearchPage:
    """A search response body -> the posts of one kind ("posts" or "comments").

    ``instance`` is the base URL the page came from: the fallback for web links and author hosts.
    Raises ParseError when the body is not a SearchResponse; a malformed entry is skipped and counted.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    data = _load_object(body)
    entries = data.get(kind)
    if not isinstance(entries, list):
        raise ParseError(f"expected a search response with a '{kind}' list")
    convert = _post_view if kind == "posts" else _comment_view
    base = instance.rstrip("/")

    posts: list[Post] = []
    seen: set[str] = set()
    stamps: list[datetime] = []
    skipped = removed = 0
    for entry in entries:
        record = entry.get("post" if kind == "posts" else "comment") if isinstance(entry, dict) else None
        published = iso_datetime(record.get("published")) if isinstance(record, dict) else None
        if published is not None:
            stamps.append(published)
        result = convert(entry, base) if isinstance(entry, dict) and published is not None else None
        if isinstance(result, str):  # _REMOVED
            removed += 1
        elif result is None:
            skipped += 1
        elif result.source_id not in seen:
            seen.add(result.source_id)
            posts.append(result)
    return SearchPage(
        posts=posts,
        count=len(entries),
        newest=max(stamps, default=None),
        oldest=min(stamps, default=None),
        skipped=skipped,
        removed=removed,
    )


# --- markdown -> plain text ------------------------------------------------------------------------
# Lemmy renders markdown with markdown-it and raw HTML off (lemmy-ui), so "<b>" in a post is literal
# text and only entities are decoded. This keeps what a reader sees: link and image texts, emphasis
# and code without their marks, headings and quotes without their prefixes, spoiler titles.

_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation
_FENCE = re.compile(r"^[ \t]{0,3}(?:```|~~~).*$", re.MULTILINE)
_SPOILER = re.compile(r"^[ \t]*:::[ \t]*spoiler\b[ \t]*(.*)$", re.MULTILINE | re.IGNORECASE)
_CONTAINER_END = re.compile(r"^[ \t]*:::[ \t]*$", re.MULTILINE)
_RULE = re.compile(r"^[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(?=\S)", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)\s]*(?:[ \t]+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)\s]*(?:[ \t]+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_CODE = re.compile(r"`+([^`]+?)`+")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_EM_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_PROTECTED = 0xE000  # escaped punctuation is parked in the private use area while marks are stripped


def markdown_to_text(markdown: str) -> str:
    """Lemmy markdown -> the plain text a reader sees; entities decoded."""
    text = _ESCAPED.sub(lambda m: chr(_PROTECTED + ord(m.group(1))), markdown.replace("\r\n", "\n"))
    text = _FENCE.sub("", text)
    text = _SPOILER.sub(r"\1", text)
    text = _CONTAINER_END.sub("", text)
    text = _RULE.sub("", text)
    text = _HEADING.sub(r"\1", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub(r"\1- ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EM_STAR.sub(r"\1", text)
    text = _EM_UNDERSCORE.sub(r"\1", text)
    text = _STRIKE.sub(r"\1", text)
    text = html.unescape(text)
    text = "".join(chr(ord(c) - _PROTECTED) if _PROTECTED + 0x21 <= ord(c) <= _PROTECTED + 0x7E else c for c in text)
    return text.strip()


# --- records ---------------------------------------------------------------------------------------


def _load_object(body: bytes) -> dict[str, Any]:
    data = load_json(body)
    raise_for_error(data)  # Lemmy's error shape: {"error": "instance_is_private"} (LemmyErrorType, snake case)
    return json_object(data)


def _record(view: dict[str, Any], key: str) -> dict[str, Any] | str | None:
    """The view's post or comment record; _REMOVED when it was deleted or removed, None when there is none."""
    record = view.get(key)
    if not isinstance(record, dict):
        return None
    if record.get("deleted") is True or record.get("removed") is True:
        return _REMOVED
    return record


def _post_view(view: dict[str, Any], base: str) -> Post | str | None:
    post = _record(view, "post")
    if not isinstance(post, dict):
        return post
    title, body = post.get("name"), post.get("body")
    if not isinstance(title, str) or (body is not None and not isinstance(body, str)):
        return None
    # A title is plain text (never rendered as markdown); Lemmy 0.18.3-0.18.x stored "&" in titles,
    # bodies and comments as "&amp;" (LemmyNet/lemmy#3754, #3987), so entities are decoded everywhere.
    text = "\n".join(p for p in (html.unescape(title).strip(), markdown_to_text(body) if body else "") if p)
    metrics = _metrics(view.get("counts"), replies="comments")
    return _post(view, post, text, base, metrics)


def _comment_view(view: dict[str, Any], base: str) -> Post | str | None:
    comment = _record(view, "comment")
    if not isinstance(comment, dict):
        return comment
    content = comment.get("content")
    if not isinstance(content, str):
        return None
    metrics = _metrics(view.get("counts"), replies="child_count")
    post = _post(view, comment, markdown_to_text(content), base, metrics)
    if post is not None:
        post.parent_source_id, post.root_source_id = comment_refs(view, base)
    return post


def comment_refs(view: dict[str, Any], base: str) -> tuple[str | None, str | None]:
    """(parent, root) of a CommentView: the root is its post's `ap_id`; the parent is that post for a
    top-level comment, else the comment before it in `path` ("0.<ancestors>.<own id>", the ids local
    to the instance read, lemmy `crates/db_schema/src/source/comment.rs`), written `<host>:<id>` since
    only the instance that served it knows which comment that is (docs/sql.md, "Conversations")."""
    post = view.get("post")
    root = post.get("ap_id") if isinstance(post, dict) else None
    root = root if _is_web_url(root) else None
    path = as_object(view.get("comment")).get("path")
    ids = path.split(".") if isinstance(path, str) else []
    if len(ids) < 2 or not all(i.isascii() and i.isdigit() for i in ids):
        return None, root
    if len(ids) == 2:  # "0.<own id>": a top-level comment answers the post
        return root, root
    host = urlsplit(base).hostname or base
    return f"{host}:{ids[-2]}", root


def _post(view: dict[str, Any], record: dict[str, Any], text: str, base: str, metrics: dict[str, int]) -> Post | None:
    ap_id = record.get("ap_id")
    created_at = iso_datetime(record.get("published"))
    if not _is_web_url(ap_id) or created_at is None:
        return None
    author = _author(view.get("creator"), base)
    if author is None:
        return None
    return Post(
        source=SOURCE,
        # The ActivityPub id is the same whichever instance a post is read through, so a federated
        # post found on two instances is one post.
        source_id=ap_id,
        # ap_id is the post's page on its home instance (https://lemmy.world/post/123,
        # https://lemmy.world/comment/456), readable by anyone.
        url=ap_id,
        author=author,
        text=text,
        created_at=created_at,
        lang=None,  # Lemmy gives a language_id (the instance's own table), not a code; detected later
        tags=[],
        metrics=metrics,
        raw=view,
    )


def _is_web_url(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith(("https://", "http://")) and bool(urlsplit(value).hostname)


def _author(creator: Any, base: str) -> str | None:
    """`name@host`, the host taken from the creator's actor_id (their home instance)."""
    if not isinstance(creator, dict):
        return None
    name = creator.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    actor_id = creator.get("actor_id")
    host = urlsplit(actor_id).hostname if _is_web_url(actor_id) else urlsplit(base).hostname
    return f"{name.strip()}@{host}" if host else name.strip()




def _metrics(counts: Any, *, replies: str) -> dict[str, int]:
    if not isinstance(counts, dict):
        return {}
    fields = {"likes": "upvotes", "score": "score", "replies": replies}
    metrics: dict[str, int] = {}
    for name, field in fields.items():
        value = counts.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            metrics[name] = value
    return metrics
