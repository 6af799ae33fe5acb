"""TikTok public video pages and TikTok's oEmbed answers -> posts (pure functions: no network, no Scrapy).

A video page (``https://www.tiktok.com/@<user>/video/<id>``) embeds its state as JSON in one of two
script tags, the ones yt-dlp reads (yt-dlp ``yt_dlp/extractor/tiktok.py``, ``_get_universal_data`` /
``_get_sigi_state`` / ``_extract_web_data_and_status``):

- ``<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">``: ``__DEFAULT_SCOPE__``
  -> ``webapp.video-detail`` -> ``statusCode`` (0 when the video is shown) and ``itemInfo.itemStruct``;
- the older ``<script id="SIGI_STATE">`` (or ``sigi-persisted-data``): ``VideoPage.statusCode`` and
  ``ItemModule[<video id>]``.

The item record carries ``id``, ``desc`` (the caption), ``createTime`` (Unix seconds, an int or a
string), ``author`` (an object with ``uniqueId``/``nickname``; in SIGI items a plain handle string),
``textExtra`` (``hashtagName``), ``stats`` (ints, rounded on big counts) and, on newer pages,
``statsV2`` (the same counts as exact digit strings) and ``textLanguage``.

A page with neither script is not a video page but a block: TikTok's WAF challenge ("Please wait...",
``_wafchallengeid``) or a captcha. A redirect to ``/login`` is a login wall. Both are reported as
``blocked``, never parsed as an empty post.

oEmbed (``GET https://www.tiktok.com/oembed?url=<video url>``) answers for a public video with
``title`` (the caption), ``author_name``, ``author_unique_id``, ``author_url``, ``embed_product_id``
(the video id), ``thumbnail_url`` and ``html``; it has no creation time and no counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from murmur.crawler.items import Post
from murmur.crawler.parsers import (
    ParseError,
    as_object,
    bytedance_id_time,
    count,
    digit_string,
    inline_hashtags,
    json_object,
    page_wall,
    parse_json_text,
    script_text,
)

__all__ = [
    "HOSTS",
    "LINK_PATTERN",
    "SOURCE",
    "VideoPage",
    "canonical_url",
    "id_time",
    "parse_oembed",
    "parse_video_page",
    "video_id_from_url",
]

SOURCE = "tiktok"
WEB = "https://www.tiktok.com"
# The hosts that serve video pages; a link is followed only to these.
HOSTS = frozenset({"tiktok.com", "www.tiktok.com", "m.tiktok.com"})

# For crawler/links.py (a PostgreSQL regular expression): group 1 the video page URL, group 2 the video
# id. Only the real hosts: "https://" then the host then "/@", so tiktok.com.evil.example never matches.
# Short links (vm.tiktok.com/…, vt.tiktok.com/…) carry no id and are left out.
LINK_PATTERN = r"(https?://(?:www\.|m\.)?tiktok\.com/@[A-Za-z0-9_.-]+/(?:video|photo)/([0-9]{6,25}))"

_URL_ID = re.compile(r"/@?[^/]*/(?:video|photo)/([0-9]{6,25})(?:[/?#]|$)")
_URL_USER = re.compile(r"^/@([^/?#]+)")
# The opening tags of the two state scripts; the state runs to the next "</script>" (TikTok escapes
# "<" and "/" inside its JSON strings, so that cannot occur within it).
_UNIVERSAL = re.compile(r"""<script[^>]*\bid=["']__UNIVERSAL_DATA_FOR_REHYDRATION__["'][^>]*>""", re.I)
_SIGI = re.compile(r"""<script[^>]*\bid=["'](?:SIGI_STATE|sigi-persisted-data)["'][^>]*>""", re.I)
# The video-detail keys a video page's scope uses (photo posts and the "reflow" page of shared links).
_DETAIL_KEYS = ("webapp.video-detail", "webapp.photo-detail", "webapp.reflow.video.detail")

# What a non-zero statusCode means, as public clients map them (yt-dlp: 10216 "This video is private";
# others: 10204 item missing, deleted or withheld, 10217 deleted, 10222 the author's account is private,
# 10231 not available in this region).
STATUS_MEANING = {
    10204: "removed, private or withheld",
    10216: "private",
    10217: "deleted",
    10222: "account is private",
    10231: "not available in this region",
}


@dataclass
class VideoPage:
    """One video page, parsed: a post, or why there is none.

    ``blocked`` says why the page is not a video page at all (a login wall, a challenge); the
    video may well be public, so it is worth asking again later. ``unavailable`` says why TikTok
    does not show this video (its ``statusCode``): removed, private, withheld.
    """

    post: Post | None = None
    blocked: str | None = None
    unavailable: str | None = None
    status_code: int | None = None
    state: str | None = None  # "universal" or "sigi": which embedded state the page had


def video_id_from_url(url: str) -> str | None:
    """The video id in a TikTok video URL (``/@user/video/<id>``, ``/@user/photo/<id>``), or None."""
    match = _URL_ID.search(urlsplit(url).path + "/")
    return match.group(1) if match else None


def canonical_url(video_id: str, unique_id: str | None) -> str:
    """The public page of a video; TikTok serves it under any handle, "_" stands in for a missing one."""
    return f"{WEB}/@{unique_id or '_'}/video/{video_id}"


# When a TikTok id was minted (a video's id decodes to the same day as its ``createTime``).
id_time = bytedance_id_time


def parse_video_page(body: bytes | str, url: str) -> VideoPage:
    """A video page (``url`` is where it was finally fetched from, after redirects) -> a post, or why not.

    Raises ParseError when the page has state but it is unusable: not JSON (truncated), no video
    detail, a shown video without its item record, an item without an id.
    """
    text = _text(body)
    if _is_login(url):
        return VideoPage(blocked="login wall")
    state = script_text(text, _UNIVERSAL)
    if state is not None:
        return _from_universal(parse_json_text(state, what="page state"), url)
    state = script_text(text, _SIGI)
    if state is not None:
        return _from_sigi(parse_json_text(state, what="page state"), url)
    return VideoPage(blocked=page_wall(text))


def parse_oembed(body: bytes | str, *, video_id: str | None, fetched_at: datetime) -> Post:
    """An oEmbed answer -> a post with the caption and author only.

    oEmbed has no creation time: the post gets the time its video id was minted (``id_time``, seconds
    before the real ``createTime``), else ``fetched_at``; ``raw["date_from"]`` says which
    (``video_id`` or ``fetched``) and ``raw["via"]`` is ``oembed``. Raises ParseError when the answer is
    not an oEmbed object of a TikTok video.
    """
    text = _text(body)
    if not text.strip():
        raise ParseError("empty body")
    if text.lstrip().startswith("<"):
        raise ParseError("body is html, not json")
    data = json_object(parse_json_text(text, what="oembed answer"))
    title = data.get("title")
    if not isinstance(title, str):
        raise ParseError("oembed answer has no title")
    vid = digit_string(data.get("embed_product_id")) or video_id
    if vid is None:
        raise ParseError("oembed answer names no video id")
    handle = data.get("author_unique_id")
    if not (isinstance(handle, str) and handle.strip()):
        author_url = data.get("author_url")
        found = _URL_USER.match(urlsplit(author_url).path) if isinstance(author_url, str) else None
        handle = found.group(1) if found else None
    created_at, date_from = id_time(vid), "video_id"
    if created_at is None:
        created_at, date_from = fetched_at, "fetched"
    return Post(
        source=SOURCE,
        source_id=vid,
        url=canonical_url(vid, handle),
        author=handle.strip() if handle else None,
        text=title.strip(),
        created_at=created_at,
        lang=None,
        tags=inline_hashtags(title),
        metrics={},
        raw={**data, "via": "oembed", "date_from": date_from},
    )


# --- the two page formats ---------------------------------------------------------------------


def _from_universal(data: Any, url: str) -> VideoPage:
    scope = data.get("__DEFAULT_SCOPE__") if isinstance(data, dict) else None
    if not isinstance(scope, dict):
        raise ParseError("page state has no __DEFAULT_SCOPE__")
    detail = next((scope[k] for k in _DETAIL_KEYS if isinstance(scope.get(k), dict)), None)
    if detail is None:
        raise ParseError("page state has no webapp.video-detail (not a video page?)")
    status = _status(detail.get("statusCode"))
    if status:
        return VideoPage(unavailable=_why(status, detail.get("statusMsg")), status_code=status, state="universal")
    item = as_object(detail.get("itemInfo")).get("itemStruct")
    if not (isinstance(item, dict) and item):
        raise ParseError("webapp.video-detail has no itemInfo.itemStruct")
    return VideoPage(post=_item_post(item, url), status_code=0, state="universal")


def _from_sigi(data: Any, url: str) -> VideoPage:
    if not isinstance(data, dict):
        raise ParseError("SIGI_STATE is not a json object")
    page = as_object(data.get("VideoPage"))
    status = _status(page.get("statusCode"))
    if status:
        return VideoPage(unavailable=_why(status, page.get("statusMsg")), status_code=status, state="sigi")
    module = data.get("ItemModule")
    if not isinstance(module, dict) or not module:
        raise ParseError("SIGI_STATE has no ItemModule items")
    # ItemModule also holds the videos of the "related" rail: take the one this page is about.
    wanted = video_id_from_url(url)
    item = module.get(wanted) if wanted else None
    if item is None and len(module) == 1:
        item = next(iter(module.values()))
    if not isinstance(item, dict):
        raise ParseError(f"SIGI_STATE ItemModule has no item {wanted or '(no id in the url)'}")
    return VideoPage(post=_item_post(item, url), status_code=0, state="sigi")


def _item_post(item: dict[str, Any], url: str) -> Post:
    vid = digit_string(item.get("id"))
    if vid is None:
        raise ParseError("video item has no id")
    author = item.get("author")
    if isinstance(author, dict):  # itemStruct: {"uniqueId", "nickname", ...}
        handle = author.get("uniqueId")
    else:  # SIGI ItemModule: "author" is the handle, "nickname" beside it
        handle = author
    if not (isinstance(handle, str) and handle.strip()):
        found = _URL_USER.match(urlsplit(url).path)
        handle = found.group(1) if found else None
    created_at, date_from = _unix(item.get("createTime")), "createTime"
    if created_at is None:
        created_at, date_from = id_time(vid), "video_id"
    if created_at is None:
        raise ParseError(f"video {vid} has no createTime")
    return Post(
        source=SOURCE,
        source_id=vid,
        url=canonical_url(vid, handle.strip() if handle else None),
        author=handle.strip() if handle else None,
        text=_caption(item),
        created_at=created_at,
        lang=_language(item.get("textLanguage")),
        tags=_tags(item),
        metrics=_metrics(item),
        raw={**item, "date_from": date_from},
    )


# --- fields -----------------------------------------------------------------------------------


def _caption(item: dict[str, Any]) -> str:
    desc = item.get("desc")
    caption = desc.strip() if isinstance(desc, str) else ""
    post = item.get("imagePost")
    title = post.get("title") if isinstance(post, dict) else None
    if isinstance(title, str) and title.strip() and title.strip() not in caption:
        caption = f"{title.strip()}\n{caption}".strip()  # a photo post's title, above its caption
    return caption


def _tags(item: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for entry in item.get("textExtra") or []:
        if isinstance(entry, dict) and isinstance(entry.get("hashtagName"), str) and entry["hashtagName"].strip():
            names.append(entry["hashtagName"].strip())
    if not names:  # older records list the hashtags as "challenges"
        for entry in item.get("challenges") or []:
            if isinstance(entry, dict) and isinstance(entry.get("title"), str) and entry["title"].strip():
                names.append(entry["title"].strip())
    return list(dict.fromkeys(names))


# statsV2 (exact digit strings) first: stats rounds big counts (866000 likes, 59100 saves for 59149).
_COUNTS = {"likes": "diggCount", "replies": "commentCount", "reposts": "shareCount", "views": "playCount",
           "saves": "collectCount"}


def _metrics(item: dict[str, Any]) -> dict[str, int]:
    metrics: dict[str, int] = {}
    for block in (item.get("statsV2"), item.get("stats")):
        if not isinstance(block, dict):
            continue
        for name, key in _COUNTS.items():
            if name not in metrics:
                value = count(block.get(key))
                if value is not None:
                    metrics[name] = value
    return metrics


def _language(value: Any) -> str | None:
    """``textLanguage`` ("en", "zh-Hans", "un" for unknown) -> an ISO 639-1 code, or None."""
    if not isinstance(value, str):
        return None
    code = value.strip().split("-")[0].split("_")[0].lower()
    return code if re.fullmatch(r"[a-z]{2,3}", code) and code != "un" else None


# --- small readers ----------------------------------------------------------------------------


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body


def _is_login(url: str) -> bool:
    path = urlsplit(url).path.rstrip("/")
    return path == "/login" or path.startswith("/login/")


def _status(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0  # absent: yt-dlp reads a missing statusCode as 0 too


def _why(status: int, message: Any) -> str:
    meaning = STATUS_MEANING.get(status, "not shown")
    detail = f", {message.strip()}" if isinstance(message, str) and message.strip() else ""
    return f"statusCode {status} ({meaning}{detail})"


def _unix(value: Any) -> datetime | None:
    """``createTime``: Unix seconds as an int or a digit string."""
    seconds = count(value)
    if not seconds:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
