"""MediaCrawler output -> posts: one row of its JSON, JSONL or CSV files at a time. Pure functions only.

MediaCrawler (NanmiCoder/MediaCrawler) runs a logged-in browser and writes what it collects under
``data/<platform>/<json|jsonl|csv>/<search|detail|creator>_<contents|comments>_<YYYY-MM-DD>.<ext>``
(`tools/async_file_writer.py`; older versions wrote ``data/<platform>/<n>_<type>_<kind>_<date>.csv`` with a
counter prefix, and ``data/bilibili/`` for Bilibili). Each row is the flat dict its ``store/<platform>/
__init__.py`` builds; CSV rows carry the same keys with every value a string (utf-8-sig), so every
number and time here is read from a string too:

- xhs (RedNote) notes: ``note_id, type, title, desc, time`` (ms), ``last_update_time, user_id, nickname,
  liked_count, collected_count, comment_count, share_count`` (strings as the app shows them, "1.3万"),
  ``ip_location, tag_list`` (topic names, comma-separated), ``note_url, source_keyword, xsec_token``;
  comments ``comment_id, create_time`` (ms), ``ip_location, note_id, content, sub_comment_count,
  parent_comment_id`` (0 for a top-level comment), ``like_count``.
- douyin: ``aweme_id, desc, create_time`` (s), ``liked_count, collected_count, comment_count,
  share_count, ip_location`` (the API's ``ip_label``); comments ``comment_id, aweme_id, content,
  create_time, like_count, sub_comment_count, parent_comment_id`` (the API's ``reply_id``, "0" at top level).
- weibo: ``note_id, content, create_time`` (s), ``create_date_time`` (China time, "+08:00"),
  ``liked_count, comments_count, shared_count, ip_location``; comments ``comment_id, note_id, content,
  comment_like_count, sub_comment_count, ip_location, parent_comment_id`` (the API's ``rootid``: a
  top-level comment's is its own id).
- bili: ``video_id`` (the aid), ``title, desc, create_time`` (s), ``liked_count, video_play_count,
  video_favorite_count, video_share_count, video_coin_count, video_danmaku, video_comment``; comments
  ``comment_id, video_id, content, create_time, like_count, sub_comment_count, parent_comment_id``.
- kuaishou: ``video_id, title, desc, create_time`` (ms), ``liked_count, viewd_count`` (sic); comments
  ``comment_id, video_id, content, create_time`` (ms), ``sub_comment_count`` (no parent).

Since July 2026 MediaCrawler anonymises people: ``creator_hash`` (16 hex characters of a sha256 of the user
id) and a masked ``nickname`` ("小***书") replace ``user_id``, ``avatar``, ``ip_location``, ``gender``. Both
field sets are read: the author is the nickname of an older row and the hash of an anonymised one (a
stable pseudonym, where the masked nickname is shared by many people).

RedNote notes get the `rednote` spider's source_id (the note id) and URL (``/explore/<id>``, no token) so
an import and a crawl of the same note are one post.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import inline_hashtags, iso_datetime, metrics_of
from murmur.crawler.parsers.imported import Imported, skipped
from murmur.crawler.parsers.rednote import note_url, parse_count, topics_to_text

__all__ = ["PLATFORMS", "SOURCES", "describe_path", "items"]

# MediaCrawler's data folder name -> murmur source. tieba and zhihu are MediaCrawler platforms murmur has no
# source for: `describe_path` names them, `items` skips their rows as unsupported.
SOURCES = {"xhs": "rednote", "douyin": "douyin", "weibo": "weibo", "bili": "bilibili", "kuaishou": "kuaishou"}
PLATFORMS = (*SOURCES, "tieba", "zhihu")
_FOLDERS = {**{p: p for p in PLATFORMS}, "bilibili": "bili"}  # data/bilibili/ in versions before 2024-06
_FORMATS = ("json", "jsonl", "csv")
_COMPRESSED = (".gz", ".zst")
_FILE = re.compile(
    r"^(?:\d+_)?(?:search|detail|creator)_(contents|comments)_(?:\d{4}-\d{2}-\d{2}|\d{8})\.(json|jsonl|csv)$"
)

_URLS = {
    "douyin": "https://www.douyin.com/video/{id}",
    "weibo": "https://m.weibo.cn/detail/{id}",
    "bili": "https://www.bilibili.com/video/av{id}",
    "kuaishou": "https://www.kuaishou.com/short-video/{id}",
}
# The note/video id of a row, per platform (a comment row names its note with the same key).
_NOTE_ID = {"xhs": "note_id", "douyin": "aweme_id", "weibo": "note_id", "bili": "video_id",
            "kuaishou": "video_id"}
# metric -> the row's keys for it, first present wins (weibo's raw API names second).
_NOTE_METRICS: dict[str, dict[str, tuple[str, ...]]] = {
    "xhs": {"likes": ("liked_count",), "collects": ("collected_count",), "replies": ("comment_count",),
            "reposts": ("share_count",)},
    "douyin": {"likes": ("liked_count",), "saves": ("collected_count",), "replies": ("comment_count",),
               "reposts": ("share_count",)},
    "weibo": {"likes": ("liked_count", "attitudes_count"), "replies": ("comments_count", "comment_count"),
              "reposts": ("shared_count", "reposts_count")},
    "bili": {"likes": ("liked_count",), "views": ("video_play_count",), "saves": ("video_favorite_count",),
             "reposts": ("video_share_count",), "replies": ("video_comment",), "coins": ("video_coin_count",),
             "danmaku": ("video_danmaku",)},
    "kuaishou": {"likes": ("liked_count",), "views": ("viewd_count", "viewed_count"),
                 "replies": ("comment_count",)},
}
_COMMENT_METRICS = {"likes": ("like_count", "comment_like_count"), "replies": ("sub_comment_count",)}
# What MediaCrawler writes for a missing value: str(None) in CSV and in str()-wrapped fields, 0 for no parent.
_NO_VALUE = frozenset({"", "0", "none", "null", "nan", "undefined"})
_WEIBO_TOPIC = re.compile(r"#([^#\n]{1,64})#")
_REGION_PREFIXES = ("IP属地：", "IP属地:", "IP属地", "发布于", "来自")


def describe_path(path: Path) -> tuple[str, str] | None:
    """(platform, kind) of a MediaCrawler output file from its place and name, e.g.
    ``data/xhs/jsonl/search_contents_2025-01-14.jsonl`` -> ("xhs", "contents"); kind is "contents" or
    "comments". None for any other file (creators, contacts, another tool's file)."""
    name = path.name
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    found = _FILE.match(name)
    if found is None:
        return None
    kind, ext = found.groups()
    folders = path.parent.parts
    # data/<platform>/<ext>/<file>, or data/<platform>/<file> for the older CSV layout.
    if folders and folders[-1] == ext:
        folders = folders[:-1]
    if not folders or folders[-1] in _FORMATS:
        return None
    platform = _FOLDERS.get(folders[-1].lower())
    return (platform, kind) if platform else None


def items(row: dict[str, Any], *, platform: str, kind: str) -> list[Imported]:
    """One row of a MediaCrawler contents or comments file -> its post (with the search keyword it was
    collected under), or one skip: "unsupported_platform", "malformed", "no_id", "no_time"."""
    if platform not in SOURCES:
        return skipped("unsupported_platform")
    if not isinstance(row, dict) or kind not in ("contents", "comments"):
        return skipped("malformed")
    if kind == "contents":
        return _note(row, platform)
    return _comment(row, platform)


# --- rows -> posts ---


def _note(row: dict[str, Any], platform: str) -> list[Imported]:
    note_id = _id(row.get(_NOTE_ID[platform]))
    if note_id is None:
        return skipped("no_id")
    created = _created(row, platform, "time" if platform == "xhs" else "create_time")
    if created is None:
        return skipped("no_time")
    text, tags = _note_text(row, platform)
    metrics = metrics_of(row, _NOTE_METRICS[platform], parse_count)
    post = Post(
        source=SOURCES[platform],
        source_id=note_id,
        url=_note_url(platform, note_id),
        author=_author(row),
        text=text,
        created_at=created,
        tags=tags,
        metrics=metrics,
        # As the rednote spider keeps it: the collections as a number (posts has no column for them).
        raw={**row, "collected_count": metrics.get("collects")} if platform == "xhs" else row,
        via="import",
        region=_region(row.get("ip_location")),
    )
    keyword = row.get("source_keyword")
    query = keyword.strip() if isinstance(keyword, str) and keyword.strip() else None
    return [Imported(post=post, query=query)]


def _comment(row: dict[str, Any], platform: str) -> list[Imported]:
    comment_id = _id(row.get("comment_id"))
    if comment_id is None:
        return skipped("no_id")
    created = _created(row, platform, "create_time")
    if created is None:
        return skipped("no_time")
    note_id = _id(row.get(_NOTE_ID[platform]))
    parent = _id(row.get("parent_comment_id"))
    if parent == comment_id:  # Weibo's rootid: a top-level comment is its own root
        parent = None
    content = row.get("content")
    text = content.strip() if isinstance(content, str) else ""
    post = Post(
        source=SOURCES[platform],
        source_id=comment_id,
        # A comment has no page of its own: it shows on its note's.
        url=_note_url(platform, note_id) if note_id else None,
        author=_author(row),
        text=topics_to_text(text)[0] if platform == "xhs" else text,
        created_at=created,
        metrics=metrics_of(row, _COMMENT_METRICS, parse_count),
        raw=row,
        # A reply answers the comment it names; a top-level comment answers the note, the thread's root.
        parent_source_id=parent or note_id,
        root_source_id=note_id,
        via="import",
        region=_region(row.get("ip_location")),
    )
    return [Imported(post=post)]


def _note_text(row: dict[str, Any], platform: str) -> tuple[str, list[str]]:
    """A note's text (title and body, the title left out when the body starts with it) and its tags."""
    if platform == "weibo":
        text = _string(row.get("content"))
        return text, _unique(m.strip() for m in _WEIBO_TOPIC.findall(text))
    title, desc = _string(row.get("title")), _string(row.get("desc"))
    if platform == "bili" and desc == "-":  # Bilibili's placeholder for a video without a description
        desc = ""
    tags: list[str] = []
    body = desc
    if platform == "xhs":
        body, inline = topics_to_text(desc)
        listed = row.get("tag_list")
        names = listed.split(",") if isinstance(listed, str) else listed if isinstance(listed, list) else []
        tags = _unique([*(n.strip() for n in names if isinstance(n, str)), *inline])
        if title and desc.startswith(title):  # MediaCrawler's title falls back to the desc's first 255 chars
            title = ""
    elif platform in ("douyin", "kuaishou"):
        tags = inline_hashtags(desc or title)
        if title == desc:  # both store the one caption as title and desc
            title = ""
    body = body.strip()
    if title and body and not body.startswith(title):
        return f"{title}\n\n{body}", tags
    return body or title, tags


def _note_url(platform: str, note_id: str) -> str:
    if platform == "xhs":
        return note_url(note_id)  # the rednote spider's form: /explore/<id>, without the share token
    return _URLS[platform].format(id=note_id)


def _created(row: dict[str, Any], platform: str, key: str) -> datetime | None:
    if platform == "weibo":
        # create_date_time is the API's RFC 2822 time in China time, written with its offset. Prefer it:
        # MediaCrawler's create_time for Weibo was 8 hours late before its time_util fix (the China
        # wall-clock time read as UTC).
        dated = iso_datetime(_string(row.get("create_date_time")) or None)
        if dated is not None:
            return dated
    created = _epoch(row.get(key))
    if created is None and key == "time":
        created = _epoch(row.get("last_update_time"))
    return created


def _epoch(value: Any) -> datetime | None:
    """Unix time in seconds or milliseconds (told apart by size), as a number or a string of one."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    seconds = value / 1000 if value > 100_000_000_000 else value  # 1e11 s is the year 5138; 1e11 ms is 1973
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _id(value: Any) -> str | None:
    """A platform id as a string; None for a missing one (None, "", "0", "None" from str(None))."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return None if text.lower() in _NO_VALUE else text


def _author(row: dict[str, Any]) -> str | None:
    if _id(row.get("creator_hash")) and not _id(row.get("user_id")):
        return _string(row.get("creator_hash"))  # anonymised: the hash, the only stable name left
    nickname = _string(row.get("nickname"))
    return nickname or _id(row.get("user_id"))


def _region(value: Any) -> str | None:
    text = _string(value)
    for prefix in _REGION_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    return None if text.lower() in _NO_VALUE else text


def _string(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _unique(names: Any) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))
