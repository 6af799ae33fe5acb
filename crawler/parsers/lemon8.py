"""Lemon8 public post pages -> posts (pure functions: no network, no Scrapy).

A post page (``https://www.lemon8-app.com/@<link name>/<article id>?region=us``) is a Remix app: its
loader data is JSON in ``<script type="application/json" data-ttark="__remixContext">``, percent-encoded
the way JavaScript's ``encodeURIComponent`` writes it (decoded once with ``urllib.parse.unquote``; keys
then still hold their own encoded route parameters, e.g. ``$UserDetailV2+%40someone``). The article is
under ``state.loaderData``, in the route entry of the article page (``routes/$user_link_name_.$article_id``
in the pages public tools read), as a ``$ArticleDetail+…`` object. It is found by its shape, not by
those keys: the object with a ``title`` and a ``content`` and an article id (``groupId``) or class.

What is known of the article object, and from where (tests/fixtures/lemon8/README.md has the detail):
``title``, ``content``, ``author`` (``nickName``, ``linkName``, ``userId``), ``articleClass``
("Gallery"/"Video"), ``imageList``, ``largeImage`` and ``unavailableReason`` (on a removed post) from
open-source Lemon8 downloaders; ``groupId``, ``articleLikes``, ``articleRegion`` and the author object
from a saved Lemon8 profile page; ``readCount`` (and, less surely, ``diggCount``, ``favoriteCount``)
from a Lemon8 scraper's live runs. The publish time and comment count fields are NOT evidenced by any
public sample: ``publishTime``/``createTime`` and ``commentCount`` are read when present (assumed
names); without a time the post gets the time its id was minted (ByteDance ids carry Unix seconds in
their top 32 bits), flagged in ``raw["date_from"]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from murmur.crawler.items import Post
from murmur.crawler.parsers import (
    ParseError,
    as_object,
    bytedance_id_time,
    count,
    digit_string,
    html_to_text,
    inline_hashtags,
    metrics_of,
    page_wall,
    parse_json_text,
    script_text,
)

__all__ = [
    "ArticlePage",
    "HOSTS",
    "LINK_PATTERN",
    "SOURCE",
    "article_id_from_url",
    "canonical_url",
    "id_time",
    "parse_article_page",
]

SOURCE = "lemon8"
WEB = "https://www.lemon8-app.com"
HOSTS = frozenset({"lemon8-app.com", "www.lemon8-app.com"})

# For crawler/links.py (a PostgreSQL regular expression): group 1 the post URL, group 2 the article id.
# Only the real host: "https://" then the host then "/@". Share links (s.lemon8-app.com/al/…,
# v.lemon8-app.com/al/…) carry no id and are left out.
LINK_PATTERN = r"(https?://(?:www\.)?lemon8-app\.com/@[A-Za-z0-9_.-]+/([0-9]{6,25}))"

_CONTEXT = re.compile(r"""<script[^>]*\bdata-ttark=["']__remixContext["'][^>]*>""", re.I)
_URL_POST = re.compile(r"^/@([^/?#]+)/([0-9]{6,25})/?$")
_TIME_FIELDS = ("publishTime", "publish_time", "createTime", "create_time")


@dataclass
class ArticlePage:
    """One post page, parsed: a post, or why there is none (see tiktok.VideoPage)."""

    post: Post | None = None
    blocked: str | None = None
    unavailable: str | None = None


def article_id_from_url(url: str) -> str | None:
    """The article id of a Lemon8 post URL (``/@<link name>/<id>``), or None."""
    found = _URL_POST.match(urlsplit(url).path)
    return found.group(2) if found else None


def canonical_url(article_id: str, link_name: str | None) -> str:
    """The public page of a post (without ``?region=``: the same post is served in every region)."""
    return f"{WEB}/@{link_name or '_'}/{article_id}"


# When a Lemon8 (ByteDance) id was minted: dates a post whose page gives no publish time.
id_time = bytedance_id_time


def parse_article_page(body: bytes | str, url: str, *, fetched_at: datetime | None = None) -> ArticlePage:
    """A post page (``url``: where it was finally fetched from) -> a post, or why not.

    ``fetched_at`` dates a post with neither a publish time nor an id that carries one. Raises
    ParseError when the page has a Remix context but it is unusable: not JSON, no loader data, or no
    article in it (a profile or feed page, say).
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    path = urlsplit(url).path.rstrip("/")
    if path == "/login" or path.startswith("/login/"):
        return ArticlePage(blocked="login wall")
    raw = script_text(text, _CONTEXT)
    if raw is None:
        return ArticlePage(blocked=page_wall(text))
    raw = raw.strip()
    # Percent-encoded once: a "%25" in the data stays a "%" of the data.
    context = parse_json_text(raw if raw.startswith("{") else unquote(raw), what="remix context")
    state = context.get("state") if isinstance(context, dict) else None
    loader = state.get("loaderData") if isinstance(state, dict) else None
    if not isinstance(loader, dict) or not loader:
        raise ParseError("remix context has no state.loaderData")
    wanted = article_id_from_url(url)
    article = _article(loader, wanted)
    if article is None:
        reason = _unavailable(loader)
        if reason is not None:
            return ArticlePage(unavailable=reason)
        if _us_ban(loader):
            return ArticlePage(blocked="US ban notice")
        raise ParseError(f"page state has no article{f' {wanted}' if wanted else ''} (not a post page?)")
    return ArticlePage(post=_post(article, url, wanted, fetched_at))


# --- finding the article ----------------------------------------------------------------------


def _route_values(loader: dict[str, Any]) -> list[tuple[str, Any]]:
    """(key, value) of every entry of every route's loader data."""
    return [(key, value) for route in loader.values() if isinstance(route, dict) for key, value in route.items()]


def _is_article(value: Any) -> bool:
    return (isinstance(value, dict)
            and (isinstance(value.get("title"), str) or isinstance(value.get("content"), str))
            and ("groupId" in value or "articleClass" in value or "content" in value))


def _article(loader: dict[str, Any], wanted: str | None) -> dict[str, Any] | None:
    found = [(key, value) for key, value in _route_values(loader) if _is_article(value)]
    if wanted:  # the page's own post, when related posts come along
        for _, value in found:
            if str(value.get("groupId", "")) == wanted:
                return value
    # The article detail entry first ($ArticleDetail+…), then anything else of its shape.
    found.sort(key=lambda kv: not kv[0].startswith("$ArticleDetail"))
    return found[0][1] if found else None


def _unavailable(loader: dict[str, Any]) -> str | None:
    for _, value in _route_values(loader):
        if isinstance(value, dict):
            reason = value.get("unavailableReason")
            if reason not in (None, "", 0, False):
                return f"unavailable ({reason})"
    return None


def _us_ban(loader: dict[str, Any]) -> bool:
    """The root loader's ``$USBanInfo`` says the US ban is in force (Lemon8 then shows a notice)."""
    info = next((value for key, value in _route_values(loader) if key == "$USBanInfo"), None)
    return isinstance(info, dict) and info.get("isPostBanDuration") is True


# --- the post ---------------------------------------------------------------------------------


def _post(article: dict[str, Any], url: str, wanted: str | None, fetched_at: datetime | None) -> Post:
    article_id = digit_string(article.get("groupId")) or wanted
    if article_id is None:
        raise ParseError("article has no groupId and the url no article id")
    author = as_object(article.get("author"))
    link_name = author.get("linkName")
    if not (isinstance(link_name, str) and link_name.strip()):
        found = _URL_POST.match(urlsplit(url).path)
        link_name = found.group(1) if found else None
    link_name = link_name.strip().lstrip("@") if link_name else None
    text = _text(article)
    created_at, date_from = _time(article)
    if created_at is None:
        created_at, date_from = id_time(article_id), "group_id"
    if created_at is None and fetched_at is not None:
        created_at, date_from = fetched_at, "fetched"
    if created_at is None:
        raise ParseError(f"article {article_id} has no publish time")
    return Post(
        source=SOURCE,
        source_id=article_id,
        url=canonical_url(article_id, link_name),
        author=link_name,
        text=text,
        created_at=created_at,
        lang=None,  # articleRegion ("us", "th") is a market, not a language: the pipeline detects it
        tags=inline_hashtags(text),
        metrics=_metrics(article),
        raw={**article, "date_from": date_from},
    )


def _text(article: dict[str, Any]) -> str:
    title = article.get("title")
    body = article.get("content")
    if not isinstance(body, str) or not body.strip():
        body = article.get("shortContent")
    body = body if isinstance(body, str) else ""
    if re.search(r"<(p|br|div|span|a)\b", body, re.I):  # rich text: to plain text
        body = html_to_text(body)
    parts = [title.strip() if isinstance(title, str) else "", body.strip()]
    return "\n".join(p for p in parts if p)


_METRICS = {"likes": ("diggCount", "articleLikes", "likeCount"), "replies": ("commentCount",),
            "reposts": ("shareCount",), "views": ("readCount",), "saves": ("favoriteCount",)}


def _metrics(article: dict[str, Any]) -> dict[str, int]:
    return metrics_of(article, _METRICS)


def _time(article: dict[str, Any]) -> tuple[datetime | None, str]:
    for field in _TIME_FIELDS:
        value = count(article.get(field))
        if value:
            seconds = value / 1000 if value > 10**11 else value  # milliseconds, when that large
            try:
                return datetime.fromtimestamp(seconds, UTC), field
            except (OverflowError, OSError, ValueError):
                continue
    return None, ""
