"""Threads bodies -> posts: the Threads API's keyword search, and the data a public post page embeds.

Keyword search (``GET /v1.0/keyword_search``, https://developers.facebook.com/docs/threads/keyword-search
and .../threads/reference/media-retrieval): ``{"data": [{"id", "text", "media_type", "permalink",
"timestamp": "2023-10-17T05:42:03+0000", "username", "shortcode", "topic_tag", "has_replies", "is_reply",
"is_quote_post", ...}], "paging": {"cursors": {"before", "after"}, "next"}}``, errors in the Graph envelope
(``murmur.crawler.parsers.meta_graph.parse_graph_error``). It returns no like or reply counts.

Post pages (``https://www.threads.com/@<user>/post/<shortcode>``, also on threads.net): the server embeds
the page's Relay query results in ``<script type="application/json" data-sjs>`` blocks
(``{"require": [["ScheduledServerJS", "handle", null, [{"__bbox": {"require": [["RelayPrefetchedStreamCache",
"next", [], ["adp_BarcelonaPostPage...", {"__bbox": {"complete": true, "result": {"data": {"data":
{"edges": [{"node": {"thread_items": [{"post": {...}}]}}]}}}}}]]]}}]]]}``). The path to the posts changes
between builds, so the blocks are walked for post records: dicts with ``pk``, ``code``, ``taken_at`` and a
``user``. Sources: scrapfly/scrapfly-scrapers threads-scraper/threads.py (data-sjs blocks, ``thread_items``,
``post.caption.text``, ``taken_at``, ``like_count``, the ``/accounts/login`` redirect), yt-dlp's
yt_dlp/extractor/threads.py (``text_post_app_info.direct_reply_count``), and the parsers quoted in
tests/fixtures/threads/README.md. Pure functions only: no network, no Scrapy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, first_of_each
from murmur.crawler.parsers.meta_graph import GraphPage, parse_graph_page

__all__ = [
    "POST_LINK",
    "PostPage",
    "parse_keyword_search",
    "parse_post_page",
    "post_url",
    "shortcode_of",
    "shortcode_to_pk",
]

SOURCE = "threads"
WEB = "https://www.threads.com"  # Threads moved from threads.net to threads.com in 2025; both still answer

# Links to a Threads post in other sources' posts (a PostgreSQL regular expression for
# murmur.crawler.links.linked_urls, and a Python one): group 1 the URL, group 2 the shortcode. Only the
# real hosts, with or without www, in both URL forms (/@user/post/<code> and the short /t/<code>).
POST_LINK = r"(https?://(?:www\.)?threads\.(?:net|com)/(?:@[A-Za-z0-9._]+/post|t)/([A-Za-z0-9_-]+))"
_POST_PATH = re.compile(r"^/(?:@[^/]+/post|t)/([A-Za-z0-9_-]+)/?$")

# Instagram's (and Threads') shortcode alphabet: a shortcode is the media pk in base 64
# (junhoyeo/threads-api#166, junhoyeo/threads-py#27).
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}

_SJS = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE)
_SJS_OPEN = re.compile(r"<script\b[^>]*\bdata-sjs\b[^>]*>", re.IGNORECASE)
_LOGIN_PATHS = ("/login", "/accounts/login")
_CHALLENGE_PATHS = ("/challenge", "/checkpoint", "/accounts/suspended")
_MAX_DEPTH = 60


@dataclass
class PostPage:
    """A post page, parsed: the page's own post first, then the other posts it shows (its replies).

    ``blocked`` names why nothing could be read ("login wall", "challenge"); posts is empty then.
    """

    posts: list[Post]
    blocked: str | None = None
    skipped: int = 0  # post records without what a post needs


def shortcode_to_pk(code: str) -> str | None:
    """A post's shortcode (the URL's last part) -> its media pk, as a decimal string."""
    if not code or len(code) > 20 or any(c not in _DIGIT for c in code):
        return None
    value = 0
    for char in code:
        value = value * 64 + _DIGIT[char]
    return str(value)


def shortcode_of(url: str) -> str | None:
    """The shortcode in a post URL's path (any host: saved pages can stand in), or None."""
    match = _POST_PATH.match(urlsplit(url).path)
    return match.group(1) if match else None


def post_url(username: str | None, code: str) -> str:
    """The public web page of a post."""
    return f"{WEB}/@{username}/post/{code}" if username else f"{WEB}/t/{code}"


# --- the API --------------------------------------------------------------------------------------


def parse_keyword_search(body: bytes) -> GraphPage:
    """A ``keyword_search`` body -> posts, the ``after`` cursor of the next page and the newest timestamp.

    Raises ParseError when the body is not ``{"data": [...]}``; a malformed entry is skipped and counted.
    """
    return parse_graph_page(body, _api_post)


def _api_post(entry: Any, created_at: datetime) -> Post | None:
    ident, text = entry.get("id"), entry.get("text")
    if not isinstance(ident, str) or not ident.strip().isdigit():
        return None
    if text is not None and not isinstance(text, str):
        return None
    username, shortcode, permalink = entry.get("username"), entry.get("shortcode"), entry.get("permalink")
    username = username if isinstance(username, str) and username else None
    if isinstance(permalink, str) and permalink.startswith("https://"):
        url: str | None = permalink
    elif isinstance(shortcode, str) and shortcode:
        # The API leaves permalink out of media flagged for copyrighted material.
        url = post_url(username, shortcode)
    else:
        url = None
    topic = entry.get("topic_tag")
    return Post(
        source=SOURCE,
        source_id=ident.strip(),
        url=url,
        author=username,
        text=text or "",  # a media post without text has nothing to score: the pipeline drops it
        created_at=created_at,
        lang=None,
        tags=[topic.strip().lstrip("#")] if isinstance(topic, str) and topic.strip() else [],
        metrics={},  # keyword search returns no counts (insights are for the owner's own media)
        raw=entry,
    )


# --- post pages ------------------------------------------------------------------------------------


def parse_post_page(body: bytes | str, url: str) -> PostPage:
    """A Threads post page (``url`` is where it was answered from, after redirects) -> its posts.

    A login wall or challenge (by URL, or a page with no post data that asks to log in) gives
    ``PostPage([], blocked=...)``. Raises ParseError when the page embeds no post data, embeds it
    malformed, or embeds posts but not the one the URL names.
    """
    path = urlsplit(url).path.lower()
    if path.startswith(_LOGIN_PATHS):
        return PostPage([], blocked="login wall")
    if path.startswith(_CHALLENGE_PATHS):
        return PostPage([], blocked="challenge")
    code = shortcode_of(url)
    if code is None:
        raise ParseError(f"not a post url: {url}")
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body

    records: list[dict[str, Any]] = []
    blocks = broken = 0
    for attrs, content in _SJS.findall(text):
        if "data-sjs" not in attrs or "application/json" not in attrs:
            continue
        blocks += 1
        if '"taken_at"' not in content:
            continue  # Relay definitions and other modules: no post records in them
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, RecursionError):
            broken += 1
            continue
        records.extend(_post_records(data))
    if len(_SJS_OPEN.findall(text)) > blocks:
        broken += 1  # a block opened and never closed: the body was cut off

    if not records:
        reason = _wall(text)
        if reason:
            return PostPage([], blocked=reason)
        if broken:
            raise ParseError("the page's embedded data is cut off or not valid json")
        if not blocks:
            raise ParseError("no embedded data (script type=application/json data-sjs) in the page")
        raise ParseError("no post data embedded in the page (a page rendered by script only)")

    posts, skipped = first_of_each(_page_post(record) for record in records)
    # The page's own post first, then the others it shows (quoted, replies); each post keeps its record as raw.
    target = next((post for post in posts if post.raw.get("code") == code), None)
    if target is None:
        raise ParseError(f"the page's embedded data has no post {code}")
    return PostPage([target, *(post for post in posts if post is not target)], skipped=skipped)


def _post_records(node: Any, depth: int = 0) -> list[dict[str, Any]]:
    """Every post record in a parsed block, outermost first (a quoted post after the post quoting it)."""
    if depth > _MAX_DEPTH:
        return []
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "pk" in node and "code" in node and "taken_at" in node and isinstance(node.get("user"), dict):
            found.append(node)
        for value in node.values():
            found.extend(_post_records(value, depth + 1))
    elif isinstance(node, list):
        for value in node:
            found.extend(_post_records(value, depth + 1))
    return found


def _page_post(record: dict[str, Any]) -> Post | None:
    pk, code, taken = record.get("pk"), record.get("code"), record.get("taken_at")
    pk = str(pk) if isinstance(pk, int | str) and not isinstance(pk, bool) and str(pk).isdigit() else None
    if pk is None or not isinstance(code, str) or not code:
        return None
    if not isinstance(taken, int) or isinstance(taken, bool) or taken <= 0:
        return None
    try:
        created = datetime.fromtimestamp(taken, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    caption = record.get("caption")
    text = caption.get("text") if isinstance(caption, dict) else None  # caption is null on a media-only post
    if text is not None and not isinstance(text, str):
        return None
    user = record["user"]
    username = user.get("username") if isinstance(user.get("username"), str) else None
    return Post(
        source=SOURCE,
        source_id=pk,  # the media pk, which the shortcode encodes
        url=post_url(username, code),
        author=username,
        text=text or "",
        created_at=created,
        lang=None,  # the page records no language; the language pipeline detects it
        tags=[],
        metrics=_page_metrics(record),
        raw=record,
    )


def _page_metrics(record: dict[str, Any]) -> dict[str, int]:
    info = record.get("text_post_app_info")
    info = info if isinstance(info, dict) else {}
    metrics: dict[str, int] = {}
    for key, value in (
        ("likes", record.get("like_count")),
        ("replies", info.get("direct_reply_count")),
        ("reposts", info.get("repost_count")),
        ("quotes", info.get("quote_count")),
        ("shares", info.get("reshare_count")),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            metrics[key] = value
    return metrics


def _wall(text: str) -> str | None:
    """Why a page without post data is a wall, if it is one.

    A Graph-style refusal (``"require_login": true``, what Threads' logged-out queries answer when they
    will not serve) or a page whose title asks to log in.
    """
    if re.search(r'"require_login"\s*:\s*true', text):
        return "login wall"
    title = re.search(r"<title[^>]*>([^<]*)</title>", text, re.IGNORECASE)
    if title and re.search(r"\blog ?in\b", title.group(1), re.IGNORECASE):
        return "login wall"
    if re.search(r'action="[^"]*/accounts/login', text):
        return "login wall"
    return None
