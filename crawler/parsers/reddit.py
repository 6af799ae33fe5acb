"""Reddit API bodies -> posts: search listings, comment trees, the app-only token, error bodies.

Shapes (https://github.com/reddit-archive/reddit/wiki/JSON, https://www.reddit.com/dev/api): a
listing is ``{"kind": "Listing", "data": {"after", "before", "children": [{"kind": "t3", "data":
{...}}]}}``; ``GET /comments/<id>`` answers a JSON array of two listings, the submission and its
comment tree, where each ``t1`` comment's ``replies`` is ``""`` or another listing and ``more``
stubs stand in for comments not sent. Pure functions only: no network, no Scrapy.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, is_text, json_object, load_json
from murmur.crawler.parsers.mastodon import html_to_text

__all__ = [
    "CommentsPage",
    "ListingPage",
    "RedditError",
    "Token",
    "parse_comments",
    "parse_error",
    "parse_listing",
    "parse_token",
]

SOURCE = "reddit"
WEB = "https://www.reddit.com"  # posts link here whichever host served the API

# What Reddit puts in place of the text (and author) of deleted and removed things.
_GONE = ("[deleted]", "[removed]")


@dataclass
class ListingPage:
    """One page of a search listing, parsed.

    ``newest_utc``/``oldest_utc`` span every dated entry, skipped ones included, so a bad entry
    never stalls the cursor; ``after`` is the fullname to page back from (None on the last page).
    """

    posts: list[Post]
    after: str | None
    newest_utc: float | None
    oldest_utc: float | None
    skipped: int = 0  # entries dropped as malformed
    removed: int = 0  # deleted or removed submissions, left out on purpose


@dataclass
class CommentsPage:
    """A submission's comment tree, flattened (depth first, as Reddit orders it)."""

    posts: list[Post]
    skipped: int = 0  # malformed comments
    removed: int = 0  # "[deleted]" / "[removed]" comments
    more: int = 0  # "more" stubs: comments Reddit did not send, not fetched


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)  # a secret: never in a repr or a log line
    expires_in: float


@dataclass(frozen=True)
class RedditError:
    """An error body, e.g. ``{"reason": "private", "message": "Forbidden", "error": 403}``."""

    status: int | None
    reason: str | None  # "private", "quarantined", "banned", ... for a subreddit; None for a blanket refusal
    message: str


def parse_listing(body: bytes) -> ListingPage:
    """A search listing (``/search``, ``/r/<sub>/search``) -> submissions and the paging fullname.

    Raises ParseError when the body is not a listing; a malformed entry is skipped and counted.
    """
    data = _listing_data(_load_json(body), "search listing")
    children = data["children"]
    posts: list[Post] = []
    stamps: list[float] = []
    skipped = removed = 0
    for child in children:
        record = child.get("data") if isinstance(child, dict) else None
        if not isinstance(record, dict) or child.get("kind") != "t3":
            skipped += 1
            continue
        stamp = _epoch(record.get("created_utc"))
        if stamp is not None:
            stamps.append(stamp)
        if _submission_gone(record):
            removed += 1
            continue
        post = _submission(record)
        if post is None:
            skipped += 1
            continue
        posts.append(post)
    after = data.get("after")
    return ListingPage(
        posts=posts,
        after=after if isinstance(after, str) and after else None,
        newest_utc=max(stamps, default=None),
        oldest_utc=min(stamps, default=None),
        skipped=skipped,
        removed=removed,
    )


def parse_comments(body: bytes) -> CommentsPage:
    """``GET /comments/<id>`` -> every comment in the tree as a post; ``more`` stubs and deleted or
    removed comments are left out (and counted)."""
    document = _load_json(body)
    if not isinstance(document, list) or len(document) != 2:
        raise ParseError("expected a json array of two listings (the submission, then its comments)")
    tree = _listing_data(document[1], "comment listing")
    page = CommentsPage(posts=[])
    stack: list[Any] = list(reversed(tree["children"]))
    while stack:
        child = stack.pop()
        kind = child.get("kind") if isinstance(child, dict) else None
        record = child.get("data") if isinstance(child, dict) else None
        if kind == "more":
            page.more += 1
            continue
        if kind != "t1" or not isinstance(record, dict):
            page.skipped += 1
            continue
        replies = record.get("replies")
        if isinstance(replies, dict) and isinstance(replies.get("data"), dict):
            nested = replies["data"].get("children")
            if isinstance(nested, list):
                stack.extend(reversed(nested))  # depth first: a comment, then its replies
        if record.get("body") in _GONE:
            page.removed += 1
            continue
        post = _comment(record)
        if post is None:
            page.skipped += 1
        else:
            page.posts.append(post)
    return page


def parse_token(body: bytes) -> Token:
    """The app-only OAuth answer ``{"access_token", "token_type": "bearer", "expires_in", "scope"}``.

    Reddit reports some refusals as HTTP 200 with ``{"error": "..."}`` (prawcore's auth.py reads it
    the same way); that raises ParseError with the error named.
    """
    data = json_object(_load_json(body))
    if "error" in data:
        raise ParseError(f"token refused: {data['error']}")
    token, expires = data.get("access_token"), data.get("expires_in")
    if not isinstance(token, str) or not token:
        raise ParseError("no access_token in the answer")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        expires = 3600  # Reddit's documented lifetime of an app-only token
    return Token(access_token=token, expires_in=float(expires))


def parse_error(body: bytes, status: int | None = None) -> RedditError:
    """An error answer -> what it says; never raises (an HTML block page is a blanket refusal)."""
    try:
        data = json.loads(body.decode("utf-8", "replace")) if body else None
    except (json.JSONDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return RedditError(status, None, f"HTTP {status}" if status else "error")
    reason = data.get("reason")
    message = data.get("message") or data.get("explanation") or data.get("error")
    code = data.get("error")
    return RedditError(
        code if isinstance(code, int) and not isinstance(code, bool) else status,
        reason if isinstance(reason, str) and reason else None,
        str(message) if message is not None else f"HTTP {status}",
    )


# --- records -> posts ----------------------------------------------------------------------


def _submission(record: dict[str, Any]) -> Post | None:
    name, permalink, title = record.get("name"), record.get("permalink"), record.get("title")
    created = _datetime(record.get("created_utc"))
    if not (is_text(name) and is_text(permalink) and isinstance(title, str) and created):
        return None
    body = _body_text(record.get("selftext_html"), record.get("selftext"))
    if body is None:
        return None
    title_text = html.unescape(title).strip()
    text = f"{title_text}\n\n{body}" if body else title_text
    return _post(record, name, permalink, created, text, _counts(record, score="score", replies="num_comments"))


def _comment(record: dict[str, Any]) -> Post | None:
    name, permalink = record.get("name"), record.get("permalink")
    created = _datetime(record.get("created_utc"))
    if not (is_text(name) and is_text(permalink) and created):
        return None
    text = _body_text(record.get("body_html"), record.get("body"))
    if text is None:
        return None
    post = _post(record, name, permalink, created, text, _counts(record, score="score"))
    # Both are fullnames, the form source_id takes: `parent_id` the comment (t1_) or submission (t3_)
    # replied to, `link_id` the submission (https://github.com/reddit-archive/reddit/wiki/JSON, t1).
    post.parent_source_id = _fullname(record.get("parent_id"))
    post.root_source_id = _fullname(record.get("link_id"))
    return post


def _fullname(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("t1_", "t3_")) else None


def _post(record: dict[str, Any], name: str, permalink: str, created: datetime, text: str,
          metrics: dict[str, int]) -> Post:
    """A submission or a comment (a "thing" whose fullname is `name`) as a post."""
    return Post(
        source=SOURCE,
        source_id=name,
        url=WEB + permalink,
        author=_author(record.get("author")),
        text=text,
        created_at=created,
        metrics=metrics,
        raw=record,
    )


def _submission_gone(record: dict[str, Any]) -> bool:
    # A deleted or removed self post keeps its title but says "[deleted]"/"[removed]" in selftext;
    # a removed link post says why in removed_by_category. Either way its author or a moderator
    # took it down, so it is not collected.
    return record.get("selftext") in _GONE or bool(record.get("removed_by_category"))


def _body_text(rendered: Any, markdown: Any) -> str | None:
    """Reddit's own HTML rendering as plain text when it sent one, else the markdown with its
    entities decoded; None when neither is text."""
    if isinstance(rendered, str) and rendered.strip():
        if "<" not in rendered and "&lt;" in rendered:
            rendered = html.unescape(rendered)  # without raw_json=1 the HTML arrives escaped once
        try:
            return html_to_text(rendered)
        except ValueError:  # HTML lxml cannot read: the markdown instead
            pass
    if isinstance(markdown, str):
        # raw_json=1 sends markdown as typed; without it &, < and > arrive as entities.
        return html.unescape(markdown).strip()
    return None


def _author(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value not in _GONE else None


def _counts(record: dict[str, Any], **fields: str) -> dict[str, int]:
    metrics: dict[str, int] = {}
    for name, key in fields.items():
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            metrics[name] = value
    if "score" in metrics:
        metrics["likes"] = metrics["score"]  # the net votes: the closest Reddit has to likes
    return metrics


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _datetime(value: Any) -> datetime | None:
    # created_utc is seconds since the epoch, UTC (a float, e.g. 1586775593.0); `created` is the
    # same instant shifted by the server's zone, so it is never used.
    stamp = _epoch(value)
    if stamp is None:
        return None
    try:
        return datetime.fromtimestamp(stamp, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _listing_data(document: Any, what: str) -> dict[str, Any]:
    if isinstance(document, dict) and document.get("kind") == "Listing":
        data = document.get("data")
        if isinstance(data, dict) and isinstance(data.get("children"), list):
            return data
    if isinstance(document, dict) and ("error" in document or "message" in document):
        raise ParseError(f"server returned an error: {parse_error(json.dumps(document).encode()).message}"[:200])
    raise ParseError(f"expected a {what} ({{'kind': 'Listing', 'data': {{'children': [...]}}}})")


def _load_json(body: bytes) -> Any:
    return load_json(body)
