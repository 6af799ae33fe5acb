"""Bluesky `app.bsky.feed.getPostThread` -> the replies below a post. Pure functions only.

Shape (bluesky-social/atproto lexicons/app/bsky/feed/getPostThread.json and feed/defs.json): the output is
``{"thread": threadViewPost | notFoundPost | blockedPost}``; a ``#threadViewPost`` is ``{"post": postView,
"parent"?: <the same union>, "replies"?: [<the same union>]}``, replies nested `depth` levels (default 6);
``#notFoundPost`` is ``{"uri", "notFound": true}`` and ``#blockedPost`` ``{"uri", "blocked": true, "author"}``.
Each reply's record carries its own reply refs (parent and root), which `post_from_view` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, json_object, load_json
from murmur.crawler.parsers.bluesky import post_from_view

__all__ = ["Thread", "parse_thread"]


@dataclass
class Thread:
    """The replies below the asked-for post, depth first; posts deleted, blocked or unreadable are counted."""

    replies: list[Post]
    skipped: int = 0  # malformed post views
    unavailable: int = 0  # notFoundPost / blockedPost entries


def parse_thread(body: bytes) -> Thread:
    """A getPostThread answer -> every reply below the thread's post (the post itself and its parents are
    not replies to it, so they are left out). ParseError when the body is no such answer."""
    data = json_object(load_json(body))
    top = data.get("thread")
    if not isinstance(top, dict):
        raise ParseError("expected a getPostThread object with a 'thread'")
    if top.get("notFound") is True or top.get("blocked") is True:
        return Thread(replies=[], unavailable=1)
    if not isinstance(top.get("post"), dict):
        raise ParseError("expected the thread's post view")
    thread = Thread(replies=[])
    seen: set[str] = set()
    stack: list[Any] = list(reversed(_replies(top)))
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            thread.skipped += 1
            continue
        if node.get("notFound") is True or node.get("blocked") is True:
            thread.unavailable += 1
            continue
        stack.extend(reversed(_replies(node)))  # depth first: a reply, then the replies to it
        post = post_from_view(node.get("post"))
        if post is None:
            thread.skipped += 1
        elif post.source_id not in seen:
            seen.add(post.source_id)
            thread.replies.append(post)
    return thread


def _replies(node: dict[str, Any]) -> list[Any]:
    replies = node.get("replies")
    return replies if isinstance(replies, list) else []
