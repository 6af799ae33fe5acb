"""RedNote (Xiaohongshu) items of a Zeeschuimer capture -> `rednote` posts and comments.

Zeeschuimer's `modules/rednote.js` keeps four kinds of note record, and 4CAT's
`datasources/xiaohongshu/search_rednote.py` (`map_item`) maps each:

- search and explore cards: ``{id, model_type: "note", xsec_token, note_card: {display_title, type, user,
  interact_info, cover, ...}}``, a card of the feed API adding ``title``, ``desc``, ``time`` (ms),
  ``ip_location``, ``tag_list`` and all four counts;
- user-page items: the card itself at the top, ``{note_id, type, display_title, user, interact_info, ...}``;
- notes from a page's embedded state: ``{id: <note id>, note: {noteId, title, desc, time, ipLocation,
  tagList, interactInfo, user, xsecToken, ...}}`` (camelCase);
- cards read from a page's HTML: ``{id, url, title, author_name, likes, "_zs-origin": "html"}``.

4CAT rejects a record with none of ``note_card``, ``user``, ``note`` (a "tile stub" of a hover card): skip
"stub". Counts are strings as the page shows them ("1.2万", "10+"). A card without ``time`` has no post time
in 4CAT either (it leaves the timestamp empty rather than use the capture time); murmur needs one, so the
time comes from the note id, a 24-hex-digit id whose first 8 digits are Unix seconds (raw["date_from"] says
"note_id"), and never from when the browser saw it. Source id and URL are the `rednote` spider's: the note
id, ``https://www.xiaohongshu.com/explore/<id>`` (the share token stays in raw).

Comments (`modules/rednote-comments.js`, 4CAT `datasources/xiaohongshu_comments`): ``{id, note_id, content,
create_time (ms), ip_location, like_count, sub_comment_count, user_info: {nickname}, sub_comments: [...]}``,
each sub-comment with ``target_comment: {id}`` (the comment it answers; MediaCrawler `store/xhs` reads the
same field as its parent_comment_id). One record gives the comment and its nested sub-comments.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import as_object, as_string
from murmur.crawler.parsers.imported import Imported
from murmur.crawler.parsers.rednote import note_url, parse_count, topics, topics_to_text
from murmur.crawler.parsers.zeeschuimer.common import (
    Capture,
    Skip,
    imported,
    metrics_of,
    nonempty,
    pick,
    text_id,
    unix_time,
)

SOURCE = "rednote"
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_NOTE_COUNTS = {
    "likes": ("liked_count", "likedCount", "likes"),
    "replies": ("comment_count", "commentCount"),
    "reposts": ("share_count", "shareCount"),
    "collects": ("collected_count", "collectedCount"),
}


def id_time(note_id: str) -> datetime | None:
    """When a RedNote id (a 24-hex-digit object id) was minted: its first 8 hex digits are Unix seconds."""
    if not _OBJECT_ID.match(note_id):
        return None
    seconds = int(note_id[:8], 16)
    if not 1_420_070_400 <= seconds <= 4_102_444_800:  # 2015 .. 2100
        return None
    return datetime.fromtimestamp(seconds, UTC)


def note(data: dict[str, Any], capture: Capture) -> list[Imported]:
    """One note record (any of the four kinds) -> its post."""
    if data.get("_zs-origin") == "html":
        card, kind = data, "html"
    elif isinstance(data.get("note"), dict):
        card, kind = data["note"], "embedded"
    elif isinstance(data.get("note_card"), dict) and data.get("type") != "video":
        card, kind = data["note_card"], "card"
    elif "user" in data or "note_id" in data:
        card, kind = data, "user_page"
    else:
        raise Skip("stub")
    note_id = text_id(pick(data, "id", "note_id")) or text_id(pick(card, "note_id", "noteId", "id"))
    if note_id is None:
        raise Skip("no_id")
    extra: dict[str, Any] = {"zeeschuimer_kind": kind}
    created = unix_time(card.get("time"), millis=True) or unix_time(
        pick(card, "last_update_time", "lastUpdateTime"), millis=True)
    if created is None:
        created = id_time(note_id)
        extra["date_from"] = "note_id"
    if created is None:
        raise Skip("no_time")
    title = as_string(pick(card, "title", "display_title", "displayTitle")).strip()
    body, inline = topics_to_text(as_string(card.get("desc")))
    body = body.strip()
    # As the rednote spider writes it: a note without a title shows the start of its desc as one.
    text = f"{title}\n\n{body}" if title and body and not body.startswith(title) else (body or title)
    user = as_object(card.get("user"))
    author = nonempty(pick(user, "nickname", "nickName", "nick_name")) or nonempty(card.get("author_name"))
    metrics = metrics_of(pick(card, "interact_info", "interactInfo") or card, _NOTE_COUNTS, parse_count)
    if "collects" in metrics:
        extra["collected_count"] = metrics["collects"]
    post = Post(
        source=SOURCE,
        source_id=note_id,
        url=note_url(note_id),
        author=author,
        text=text,
        created_at=created,
        tags=topics(pick(card, "tag_list", "tagList"), inline),
        metrics=metrics,
        region=nonempty(pick(card, "ip_location", "ipLocation")),
    )
    return [imported(capture, post, data, **extra)]


def comments(data: dict[str, Any], capture: Capture) -> list[Imported]:
    """One comment record -> the comment, then each of its nested sub-comments (a bad one is a skip)."""
    out: list[Imported] = []
    top_id: str | None = None
    try:
        top = _comment(data, capture, parent=None)
        top_id = top.post.source_id if top.post else None
        out.append(top)
    except Skip as skip:
        out.append(Imported(skip=skip.kind))
        top_id = text_id(data.get("id"))
    for sub in data.get("sub_comments") or []:
        try:
            if not isinstance(sub, dict):
                raise Skip("malformed")
            out.append(_comment(sub, capture, parent=top_id, note_id=text_id(data.get("note_id"))))
        except Skip as skip:
            out.append(Imported(skip=skip.kind))
    return out


def _comment(data: dict[str, Any], capture: Capture, *, parent: str | None, note_id: str | None = None) -> Imported:
    comment_id = text_id(data.get("id"))
    note_id = text_id(data.get("note_id")) or note_id
    if comment_id is None or note_id is None:
        raise Skip("no_id")
    created = unix_time(data.get("create_time"), millis=True)
    if created is None:
        raise Skip("no_time")
    # A sub-comment answers the comment it targets (a reply to a reply), else the comment it is nested under.
    target = text_id(as_object(data.get("target_comment")).get("id"))
    body, topics = topics_to_text(as_string(data.get("content")))
    post = Post(
        source=SOURCE,
        source_id=comment_id,
        url=note_url(note_id),
        author=nonempty(as_object(data.get("user_info")).get("nickname")),
        text=body.strip(),
        created_at=created,
        tags=topics,
        metrics=metrics_of(data, {"likes": ("like_count",), "replies": ("sub_comment_count",)}, parse_count),
        parent_source_id=(target or parent or note_id) if parent else note_id,
        root_source_id=note_id,
        region=nonempty(data.get("ip_location")),
    )
    return imported(capture, post, {k: v for k, v in data.items() if k != "sub_comments"})
