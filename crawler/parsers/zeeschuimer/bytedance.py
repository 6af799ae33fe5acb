"""TikTok and Douyin items of a Zeeschuimer capture -> `tiktok` posts and comments, `douyin` posts.

TikTok posts (Zeeschuimer `modules/tiktok.js`: the API's ``itemList``/``item_list``, search results'
``data[].item``, the pages' ``ItemModule`` and ``webapp.video-detail`` items; 4CAT
`datasources/tiktok/search_tiktok.py` ``map_item``): ``id``, ``desc``, ``createTime`` (s), ``author`` (an
object with ``uniqueId``, or in page state the handle as a string), ``stats``/``statsV2``, ``textExtra``
(``hashtagName``), ``challenges`` (``title``), ``locationCreated``, ``isAd``; live rooms carry
``liveRoomInfo``. Source id and URL are the `tiktok` spider's (crawler/parsers/tiktok.py: the video id,
``https://www.tiktok.com/@<handle>/video/<id>``), and so are the metric names.

TikTok comments (`modules/tiktok-comments.js`, 4CAT `datasources/tiktok_comments`): ``cid``, ``aweme_id``,
``text``, ``create_time`` (s), ``digg_count``, ``reply_comment_total``, ``reply_id`` ("0" for a comment on
the video, else the comment it answers), ``user`` (``unique_id``, ``nickname``), ``share_info.url``.

Douyin (`modules/douyin.js`, 4CAT `datasources/douyin/search_douyin.py`): the web API's snake_case
``aweme_id``, ``desc``, ``create_time`` (s), ``author`` (``nickname``), ``statistics``, ``text_extra``
(``hashtag_name``), ``region``; or, with ``ZS_collected_from_embed``, the page state's camelCase
``awemeId``, ``createTime``, ``authorInfo``, ``stats``, ``textExtra``. Live streams (``rawdata``,
``cell_room``/``cellRoom``) are no posts: skip "live".
"""

from __future__ import annotations

from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import as_object, as_string, digit_string, inline_hashtags
from murmur.crawler.parsers.imported import Imported
from murmur.crawler.parsers.tiktok import canonical_url, id_time
from murmur.crawler.parsers.zeeschuimer.common import (
    Capture,
    Skip,
    imported,
    metrics_of,
    nonempty,
    pick,
    unix_time,
)

_TIKTOK_COUNTS = {"likes": ("diggCount",), "replies": ("commentCount",), "reposts": ("shareCount",),
                  "views": ("playCount",), "saves": ("collectCount",)}
_DOUYIN_COUNTS = {"likes": ("digg_count", "diggCount"), "replies": ("comment_count", "commentCount"),
                  "reposts": ("share_count", "shareCount"), "views": ("play_count", "playCount"),
                  "saves": ("collect_count", "collectCount")}
DOUYIN_VIDEO = "https://www.douyin.com/video/{id}"

__all__ = ["douyin_post", "tiktok_comment", "tiktok_post"]


def tiktok_post(data: dict[str, Any], capture: Capture) -> list[Imported]:
    if "liveRoomInfo" in data:
        raise Skip("live")
    if data.get("isAd") is True:
        raise Skip("ad")
    video_id = digit_string(data.get("id"))
    if video_id is None:
        raise Skip("no_id")
    extra: dict[str, Any] = {}
    created = unix_time(data.get("createTime"))
    if created is None:  # as the spider does: the time the video id was minted, seconds before createTime
        created = id_time(video_id)
        extra["date_from"] = "video_id"
    if created is None:
        raise Skip("no_time")
    author = data.get("author")
    handle = nonempty(as_object(author).get("uniqueId")) if isinstance(author, dict) else nonempty(author)
    # statsV2 (exact digit strings) before stats (rounded on big counts), as the spider reads them.
    metrics = metrics_of(data.get("statsV2"), _TIKTOK_COUNTS)
    metrics.update({k: v for k, v in metrics_of(data.get("stats"), _TIKTOK_COUNTS).items() if k not in metrics})
    desc = as_string(data.get("desc")).strip()
    title = as_string(as_object(data.get("imagePost")).get("title")).strip()
    text = f"{title}\n{desc}".strip() if title and title not in desc else desc  # a photo post's title above
    post = Post(
        source="tiktok",
        source_id=video_id,
        url=canonical_url(video_id, handle),
        author=handle,
        text=text,
        created_at=created,
        tags=_names(data.get("textExtra"), "hashtagName") + _names(data.get("challenges"), "title"),
        metrics=metrics,
        region=nonempty(data.get("locationCreated")),
    )
    post.tags = list(dict.fromkeys(post.tags))
    return [imported(capture, post, data, **extra)]


def tiktok_comment(data: dict[str, Any], capture: Capture) -> list[Imported]:
    comment_id = digit_string(pick(data, "cid", "id"))
    video_id = digit_string(data.get("aweme_id"))
    if comment_id is None or video_id is None:
        raise Skip("no_id")
    created = unix_time(data.get("create_time"))
    if created is None:
        raise Skip("no_time")
    user = as_object(data.get("user"))
    text = as_string(data.get("text")).strip()
    # reply_id "0": a comment on the video; else the comment it answers (reply_to_reply_id, when not "0", is
    # the reply within that thread it answers).
    parent = _reference(data.get("reply_to_reply_id")) or _reference(data.get("reply_id")) or video_id
    share_url = as_string(as_object(data.get("share_info")).get("url"))
    post = Post(
        source="tiktok",
        source_id=comment_id,
        url=share_url if share_url.startswith("https://www.tiktok.com/") else canonical_url(video_id, None),
        author=nonempty(user.get("unique_id")) or nonempty(user.get("nickname")),
        text=text,
        created_at=created,
        tags=inline_hashtags(text),
        metrics=metrics_of(data, {"likes": ("digg_count",), "replies": ("reply_comment_total",)}),
        parent_source_id=parent,
        root_source_id=video_id,
    )
    return [imported(capture, post, data)]


def douyin_post(data: dict[str, Any], capture: Capture) -> list[Imported]:
    embedded = bool(data.get("ZS_collected_from_embed"))
    room = pick(data, "cellRoom", "cell_room")
    if data.get("rawdata") or (isinstance(room, dict) and room.get("rawdata")):
        raise Skip("live")
    video_id = digit_string(pick(data, "awemeId", "aweme_id") if embedded else pick(data, "aweme_id", "awemeId"))
    if video_id is None:
        raise Skip("no_id")
    created = unix_time(pick(data, "createTime", "create_time"))
    if created is None:
        raise Skip("no_time")
    author = as_object(pick(data, "authorInfo", "author"))
    text_extra = pick(data, "textExtra", "text_extra")
    post = Post(
        source="douyin",
        source_id=video_id,
        url=DOUYIN_VIDEO.format(id=video_id),
        author=nonempty(author.get("nickname")),
        text=as_string(data.get("desc")).strip(),
        created_at=created,
        tags=list(dict.fromkeys(_names(text_extra, "hashtagName") + _names(text_extra, "hashtag_name"))),
        metrics=metrics_of(pick(data, "statistics", "stats"), _DOUYIN_COUNTS),
        region=nonempty(data.get("region")) if isinstance(data.get("region"), str) else None,
    )
    return [imported(capture, post, data)]


def _reference(value: Any) -> str | None:
    """A comment id that points somewhere: "0" (and a missing one) points nowhere."""
    ident = digit_string(value)
    return ident if ident and ident.strip("0") else None


def _names(entries: Any, key: str) -> list[str]:
    """The non-empty `key` strings of a list of objects (hashtags in textExtra, challenge titles)."""
    names: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        name = nonempty(as_object(entry).get(key))
        if name:
            names.append(name)
    return names
