"""RedNote (Xiaohongshu) pages -> posts. Pure functions only: no network, no Scrapy.

A public note page (`/explore/<note id>`, `/discovery/item/<note id>`) and a public profile page
(`/user/profile/<user id>`) are server-rendered by a Vue app that writes its store into the page as
``<script>window.__INITIAL_STATE__={...}</script>``. That is a JavaScript literal, not JSON: absent
values are the bare token ``undefined``, ``/`` is written ``\\u002F``, and newer pages may hold
``new Map(...)``/``new Set(...)`` (RSSHub's `lib/routes/xiaohongshu/util.ts` strips those). It is
read by `jsobject.read_js_object` (a small tokenizer, never evaluated; why not chompjs is said there).

- A note page keeps its note at ``note.noteDetailMap[<note id>].note`` (yt-dlp
  `yt_dlp/extractor/xiaohongshu.py`, MediaCrawler `media_platform/xhs/extractor.py`): ``title``,
  ``desc`` (topics written inline as ``#name[话题]#``), ``tagList`` (``type: "topic"`` for topics),
  ``time``/``lastUpdateTime`` (ms), ``ipLocation``, ``user`` (``userId``, ``nickname``) and
  ``interactInfo`` whose counts are strings as the page shows them ("1.2万", "10+").
- A profile page keeps its notes at ``user.notes``: one list per tab, each entry ``{id, noteCard,
  xsecToken?}`` (Spider_XHS `test/user_info.py`, RSSHub `lib/routes/xiaohongshu/user.ts`).

A page whose state lacks the note is a captcha, a login wall or a deleted note: it is reported as
`Blocked` (with which, when the page says), never as an empty post.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, as_object, as_string
from murmur.crawler.parsers.jsobject import read_js_object

__all__ = [
    "Blocked",
    "ListedNote",
    "NotePage",
    "PageRef",
    "ProfilePage",
    "classify_url",
    "extract_state",
    "note_url",
    "parse_count",
    "parse_note",
    "parse_profile",
    "redirect_problem",
    "topics_to_text",
]

SOURCE = "rednote"
HOSTS = ("www.xiaohongshu.com", "xiaohongshu.com")  # the real note hosts
SHORT_HOST = "xhslink.com"  # share links: a redirect to a note page
NOTE_URL = "https://www.xiaohongshu.com/explore/{id}"
# Query parameters worth keeping on a note URL: the page only renders for logged-out visitors with the
# token it was shared with (MediaCrawler `media_platform/xhs/help.py` parse_note_info_from_note_url).
# Everything else in a shared link (appuid, share_id, apptime, ...) identifies the sharer: dropped.
KEPT_PARAMS = ("xsec_token", "xsec_source")

_ID = r"[0-9a-f]{24}"
_NOTE_PATH = re.compile(rf"^/(?:explore|discovery/item)/({_ID})/?$")
_PROFILE_PATH = re.compile(rf"^/user/profile/({_ID})/?$")
# RSSHub's Xiaohongshu routes link each item as <profile URL>/<note id>.
_PROFILE_NOTE_PATH = re.compile(rf"^/user/profile/{_ID}/({_ID})/?$")

_NOTE_HREF = re.compile(rf"""href=["']([^"']*/(?:explore|user/profile/{_ID})/{_ID}\?[^"']*)["']""")
_STATE_START = re.compile(r"window\.__INITIAL_STATE__\s*=\s*")

# "#小红书[话题]#": a topic written inline in a note's desc (yt-dlp's test notes show the shape).
_TOPIC_MARKER = re.compile(r"#([^#\[\]\n]{1,100}?)\[话题\]#")
_COUNT = re.compile(r"^(\d+(?:\.\d+)?)(万|亿|千|[wWkK])?\+?$")
_UNITS = {"万": 10_000, "w": 10_000, "W": 10_000, "亿": 100_000_000, "千": 1_000, "k": 1_000, "K": 1_000}

# What a captcha or login wall page says about itself, when it is served in place of a note.
# What a captcha or login wall page says about itself when it is served in place of a note (markers
# open-source clients test for: the captcha redirect's query, its title, the "too frequent" notice).
_CAPTCHA_MARKERS = ("website-login/captcha", "verifyUuid=", "verifyType=", "安全验证", "滑动太频繁", "请求太频繁")
_LOGIN_MARKERS = ("website-login/", "登录后查看", "登录小红书", "扫码登录", "手机号登录")
# MediaCrawler `media_platform/xhs/client.py`: NOTE_NOT_FOUND_CODE = -510000, NOTE_ABNORMAL_CODE = -510001
# (other clients show it as "当前内容无法展示": a note shown without a valid xsec_token, or risk control).
_NOT_FOUND_CODE = -510000
_GONE_WORDS = ("不存在", "已删除", "已被删除", "deleted", "not found", "not exist")


@dataclass(frozen=True)
class Blocked:
    """Why a page holds no note (or profile): a captcha, a login wall, a deleted note, ..."""

    reason: str  # short and stable, for stats keys: captcha, login wall, deleted, unavailable, not in state
    detail: str | None = None  # what the page said, when it said something

    @property
    def deleted(self) -> bool:
        return self.reason == "deleted"

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


@dataclass
class NotePage:
    """A note page, parsed: its post, or why it has none."""

    note_id: str | None
    post: Post | None = None
    blocked: Blocked | None = None


@dataclass(frozen=True)
class ListedNote:
    """A note listed on a profile page."""

    note_id: str
    xsec_token: str | None = None


@dataclass
class ProfilePage:
    """A profile page, parsed: the notes it lists (its own, newest first), or why it lists none."""

    user_id: str | None
    nickname: str | None = None
    notes: list[ListedNote] = field(default_factory=list)
    blocked: Blocked | None = None


@dataclass(frozen=True)
class PageRef:
    """What a URL points at: a note (by id) or a profile (by user id), with the token it carries."""

    kind: str  # "note" | "profile"
    id: str
    xsec_token: str | None = None
    xsec_source: str | None = None


# --- URLs ---


def classify_url(url: str) -> PageRef | None:
    """A note or profile page URL (any host: the path decides) -> what it points at; None otherwise."""
    parts = urlsplit(html.unescape(url.strip()))
    path = parts.path
    query = parse_qs(parts.query)
    token = next(iter(query.get("xsec_token", [])), None) or None
    source = next(iter(query.get("xsec_source", [])), None) or None
    for pattern, kind in ((_NOTE_PATH, "note"), (_PROFILE_NOTE_PATH, "note"), (_PROFILE_PATH, "profile")):
        match = pattern.match(path)
        if match:
            return PageRef(kind, match.group(1), token, source)
    return None


def note_url(note_id: str, *, xsec_token: str | None = None, xsec_source: str | None = None,
             base: str = "https://www.xiaohongshu.com") -> str:
    """The URL a note page is fetched from: /explore/<id>, with its share token when there is one."""
    params = {k: v for k, v in (("xsec_token", xsec_token), ("xsec_source", xsec_source)) if v}
    return f"{base.rstrip('/')}/explore/{note_id}" + (f"?{urlencode(params)}" if params else "")


def redirect_problem(location: str) -> Blocked | None:
    """Where a redirect goes, when that is a wall and not a page: the captcha, the login page, a 404.

    Seen in the wild (quoted by open-source clients): ``/website-login/captcha?redirectPath=...&
    verifyUuid=...&verifyType=102&verifyBiz=461``, ``/login?redirectPath=...``, ``/website-login/error``
    and ``/404?source=/404/sec_...&errorCode=...`` (a note that is gone or needs a token).
    """
    parts = urlsplit(location)
    path = parts.path.lower()
    if "captcha" in path or "/website-login/verify" in path or "/website-login/security" in path:
        return Blocked("captcha", parts.path)
    if path.startswith(("/login", "/website-login", "/signin")):
        return Blocked("login wall", parts.path)
    if path.startswith("/404"):
        query = parse_qs(parts.query)
        code = (query.get("errorCode") or query.get("error_code") or [""])[0]
        if code == str(_NOT_FOUND_CODE):
            return Blocked("deleted", f"404, errorCode {code}")
        return Blocked("unavailable", f"404{', errorCode ' + code if code else ''}")
    return None


# --- the embedded state ---


def extract_state(body: bytes | str) -> dict[str, Any] | None:
    """The object assigned to ``window.__INITIAL_STATE__`` in a page; None when the page has none.

    Raises ParseError when the assignment is there but cut off or not readable as data.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    start = _STATE_START.search(text)
    if start is None:
        return None
    state = read_js_object(text, start.end(), what="window.__INITIAL_STATE__")
    if not isinstance(state, dict):
        raise ParseError("window.__INITIAL_STATE__ is not an object")
    return state


def _unwrap(value: Any) -> Any:
    """Vue refs serialised as {"_rawValue": ..., "_value": ...} (RSSHub reads both) -> the value."""
    if isinstance(value, dict):
        for key in ("_rawValue", "_value"):
            if key in value:
                return value[key]
    return value


# --- counts and text ---


def parse_count(value: Any) -> int | None:
    """An interaction count as the page shows it -> an int: 12, "12", "1,234", "1.2万", "3亿", "10+",
    "1千+", "1.5w"; None when it is not a count (an empty string, a label such as "赞")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip().replace(",", "").replace("，", "").replace(" ", "")
    match = _COUNT.match(text)
    if match is None:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    unit = match.group(2)
    return int(number * _UNITS[unit]) if unit else int(number)


def topics_to_text(desc: str) -> tuple[str, list[str]]:
    """A note's desc with its inline topics ("#小红书[话题]#") as plain hashtags ("#小红书"), and the
    topic names in order of appearance."""
    topics = [m.strip() for m in _TOPIC_MARKER.findall(desc)]
    return _TOPIC_MARKER.sub(lambda m: f"#{m.group(1).strip()}", desc), topics


# --- note pages ---


def parse_note(body: bytes | str, url: str) -> NotePage:
    """A note page -> its post, or `Blocked` saying why it has none.

    `url` is the page's URL (after redirects); its path names the note. Raises ParseError when the page
    is neither a note nor a recognisable wall (no state and no wall markers, a state cut off or unreadable,
    a note record without what a post needs).
    """
    ref = classify_url(url)
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    state = extract_state(text)
    if state is None:
        wall = _wall_in_text(text)
        if wall is not None:
            return NotePage(ref.id if ref else None, blocked=wall)
        raise ParseError("no window.__INITIAL_STATE__ in the page, and no captcha or login wall either")
    note_state = _unwrap(state.get("note"))
    if not isinstance(note_state, dict):
        note_state = {}
    note_id = ref.id if ref is not None and ref.kind == "note" else None
    if note_id is None:  # a mirror or saved page under another path: the state says which note it shows
        for key in ("currentNoteId", "firstNoteId"):
            if isinstance(note_state.get(key), str) and note_state[key]:
                note_id = note_state[key]
                break
    details = _unwrap(note_state.get("noteDetailMap"))
    entry = details.get(note_id) if isinstance(details, dict) and note_id else None
    record = _unwrap(entry.get("note")) if isinstance(entry, dict) else None
    if not isinstance(record, dict) or not record:
        return NotePage(note_id, blocked=_why_missing(state, note_state, text))
    return NotePage(note_id, post=_note_to_post(record, note_id))


def _why_missing(state: dict[str, Any], note_state: dict[str, Any], text: str) -> Blocked:
    """The page's own account of why its note is missing: deleted, unavailable, a wall."""
    info = _unwrap(note_state.get("serverRequestInfo"))
    if isinstance(info, dict):
        code = info.get("errorCode", info.get("code"))
        message = info.get("errMsg") or info.get("msg") or info.get("message")
        message = message if isinstance(message, str) and message else None
        if code == _NOT_FOUND_CODE or str(code) == str(_NOT_FOUND_CODE) or (
            message and any(word in message.lower() for word in _GONE_WORDS)
        ):
            return Blocked("deleted", message or f"errorCode {code}")
        if info.get("state") == "fail" or code not in (None, 0, "0", ""):
            return Blocked("unavailable", message or f"errorCode {code}")
    wall = _wall_in_text(text)
    if wall is not None:
        return wall
    login = _unwrap(state.get("login"))
    if isinstance(login, dict) and login.get("showLogin") is True:
        return Blocked("login wall", "the page asks to log in")
    return Blocked("not in state", "the page state holds no record for this note")


def _wall_in_text(text: str) -> Blocked | None:
    if any(marker in text for marker in _CAPTCHA_MARKERS):
        return Blocked("captcha")
    if any(marker in text for marker in _LOGIN_MARKERS):
        return Blocked("login wall")
    return None


def _note_to_post(note: dict[str, Any], note_id: str | None) -> Post:
    record_id = note.get("noteId") or note.get("id")
    if not isinstance(record_id, str) or not record_id:
        record_id = note_id
    if not record_id:
        raise ParseError("the note record has no noteId")
    created_at = _time(note.get("time")) or _time(note.get("lastUpdateTime"))
    if created_at is None:
        raise ParseError(f"note {record_id} has no usable time")
    title, desc = as_string(note.get("title")), as_string(note.get("desc"))
    body, inline = topics_to_text(desc)
    title, body = title.strip(), body.strip()
    # A note posted without a title shows the start of its desc as one: the text is then the desc alone.
    text = f"{title}\n\n{body}" if title and body and not body.startswith(title) else (body or title)
    tags = topics(note.get("tagList"), inline)
    user = as_object(note.get("user"))
    author = user.get("nickname") or user.get("nickName")
    interact = as_object(note.get("interactInfo"))
    metrics = {
        name: count
        for name, key in (("likes", "likedCount"), ("replies", "commentCount"), ("reposts", "shareCount"),
                          ("collects", "collectedCount"))
        if (count := parse_count(interact.get(key))) is not None
    }
    return Post(
        source=SOURCE,
        source_id=record_id,
        url=NOTE_URL.format(id=record_id),
        author=author if isinstance(author, str) and author else None,
        text=text,
        created_at=created_at,
        tags=tags,
        metrics=metrics,
        # The record as the page holds it, and its collections as a number (posts has no column for them).
        raw={**note, "collected_count": metrics.get("collects")},
    )


def _time(value: Any) -> datetime | None:
    """Milliseconds since the epoch (an int, or digits) -> an aware UTC datetime."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def topics(tag_list: Any, inline: list[str]) -> list[str]:
    """Topic tags (`type: "topic"`) then the text's inline topics, each once, first seen first."""
    names = []
    if isinstance(tag_list, list):
        for tag in tag_list:
            if isinstance(tag, dict) and tag.get("type") == "topic" and isinstance(tag.get("name"), str):
                names.append(tag["name"].strip())
    names.extend(inline)
    return list(dict.fromkeys(n for n in names if n))


# --- profile pages ---


def parse_profile(body: bytes | str, url: str) -> ProfilePage:
    """A profile page -> the user's own notes (the first tab of ``user.notes``), or `Blocked`.

    Raises ParseError when the page has neither a state nor a recognisable wall, or an unreadable state.
    """
    ref = classify_url(url)
    user_id = ref.id if ref is not None and ref.kind == "profile" else None
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    state = extract_state(text)
    if state is None:
        wall = _wall_in_text(text)
        if wall is not None:
            return ProfilePage(user_id, blocked=wall)
        raise ParseError("no window.__INITIAL_STATE__ in the page, and no captcha or login wall either")
    user = _unwrap(state.get("user"))
    page_data = _unwrap(user.get("userPageData")) if isinstance(user, dict) else None
    tabs = _unwrap(user.get("notes")) if isinstance(user, dict) else None
    if not isinstance(page_data, dict) or not isinstance(tabs, list):
        wall = _wall_in_text(text)
        login = _unwrap(state.get("login"))
        if wall is None and isinstance(login, dict) and login.get("showLogin") is True:
            wall = Blocked("login wall", "the page asks to log in")
        return ProfilePage(user_id, blocked=wall or Blocked("not in state", "the page state holds no profile"))
    basic = as_object(page_data.get("basicInfo"))
    nickname = basic.get("nickname") if isinstance(basic.get("nickname"), str) else None
    # One list per tab (notes, collections, likes); the first is the user's own notes. A flat list is
    # taken as that tab.
    own = _unwrap(tabs[0]) if tabs and isinstance(_unwrap(tabs[0]), list) else tabs
    # The server-rendered note cards link each note with its token; RSSHub's getUserWithCookie reads
    # them from there (`#userPostedFeeds a[href*="xsec_token"]`) when the state has none.
    linked_tokens = _tokens_in_links(text)
    notes: list[ListedNote] = []
    seen: set[str] = set()
    for item in own:
        item = _unwrap(item)
        if not isinstance(item, dict):
            continue
        card = as_object(item.get("noteCard"))
        note_id = card.get("noteId") or item.get("id")
        if not isinstance(note_id, str) or not re.fullmatch(_ID, note_id) or note_id in seen:
            continue
        seen.add(note_id)
        token = item.get("xsecToken") or card.get("xsecToken") or linked_tokens.get(note_id)
        notes.append(ListedNote(note_id, token if isinstance(token, str) and token else None))
    return ProfilePage(user_id, nickname, notes)


def _tokens_in_links(text: str) -> dict[str, str]:
    """note id -> xsec_token, from the note links (``href="/user/profile/<uid>/<id>?xsec_token=..."``,
    ``href="/explore/<id>?xsec_token=..."``) in a page's HTML."""
    tokens: dict[str, str] = {}
    for href in _NOTE_HREF.findall(text):
        ref = classify_url(href)
        if ref is not None and ref.kind == "note" and ref.xsec_token:
            tokens.setdefault(ref.id, ref.xsec_token)
    return tokens
