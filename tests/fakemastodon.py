"""A fake Mastodon instance for spider tests and the crawl benchmark: the hashtag timeline with
Mastodon's paging and Link header, robots.txt, faults (tests/fakeapi.py serves it), and
`generate_statuses`, synthetic statuses of the documented shape to fill it with.

    with FakeMastodon({"rednote": generate_statuses(100, tag="rednote")}) as server:
        ... crawl with instances = [server.url] ...
        assert any("max_id=" in target for target in server.requests)
"""

from __future__ import annotations

import json
import random
import threading
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from html import escape
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlencode

from murmur.crawler.parsers import id_key
from tests.fakeapi import FakeAPI, Reply, Request

__all__ = ["FakeMastodon", "generate_statuses"]

TAG_PATH = "/api/v1/timelines/tag/"
DEFAULT_LIMIT = 20  # https://docs.joinmastodon.org/methods/timelines/#tag: "Defaults to 20 statuses."
MAX_LIMIT = 40  # "... Max 40 statuses."

# The general section of Mastodon's own public/robots.txt: a few HTML paths are off limits, the API is
# open. (Its list of AI crawlers told to stay out is left off; murmur's user agent is not among them.)
DEFAULT_ROBOTS_TXT = (
    "# See http://www.robotstxt.org/robotstxt.html for documentation on how to use the robots.txt file\n"
    "\n"
    "User-agent: *\n"
    "Disallow: /media_proxy/\n"
    "Disallow: /interact/\n"
)


class _Timeline:
    """One tag's statuses, kept sorted by id, each serialised once (pages are joined bytes)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, str]] = []
        self.ids: list[str] = []
        self.bodies: list[bytes] = []

    def add(self, statuses: Iterable[dict[str, Any]]) -> None:
        for status in statuses:
            status_id = str(status["id"])
            key = id_key(status_id)
            at = bisect_left(self.keys, key)
            body = json.dumps(status, ensure_ascii=False, separators=(",", ":")).encode()
            if at < len(self.keys) and self.keys[at] == key:
                self.bodies[at] = body  # the same status recorded twice: the later copy wins
                continue
            self.keys.insert(at, key)
            self.ids.insert(at, status_id)
            self.bodies.insert(at, body)

    def page(self, limit: int, max_id: str | None, since_id: str | None, min_id: str | None) -> list[int]:
        """Indexes of the page, newest first, the way Mastodon's Paginable concern selects them.

        Without min_id: the newest `limit` with since_id < id < max_id. With min_id: the `limit` *oldest*
        with min_id < id < max_id, then reversed, so paging forward never skips a status
        (app/models/concerns/paginable.rb; https://docs.joinmastodon.org/api/guidelines/#pagination).
        """
        hi = bisect_left(self.keys, id_key(max_id)) if max_id else len(self.keys)
        if min_id:
            lo = bisect_right(self.keys, id_key(min_id))
            chosen = range(lo, min(hi, lo + limit)) if hi > lo else range(0)
        else:
            lo = bisect_right(self.keys, id_key(since_id)) if since_id else 0
            chosen = range(max(lo, hi - limit), hi) if hi > lo else range(0)
        return list(reversed(chosen))


def _normalise_tag(tag: str) -> str:
    # Mastodon matches hashtags case-insensitively and by normalised form (Tag.find_normalized).
    return unicodedata.normalize("NFKC", tag).casefold().lstrip("#")


def _ruby_to_i(value: str) -> int:
    """Rails' `params[:limit].to_i`: leading integer or 0 (so `limit=abc` means 0, as on Mastodon)."""
    text = value.strip()
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    count = len(digits) - len(digits.lstrip("0123456789"))
    return sign * int(digits[:count]) if count else 0


class FakeMastodon:
    """Serves statuses by hashtag on 127.0.0.1 (a free port), as a Mastodon instance's tag timeline.

    Use as a context manager, or call start()/stop(). Statuses and faults may be added while a crawl
    runs in another thread.
    """

    def __init__(self, statuses_by_tag: dict[str, list[dict[str, Any]]], *,
                 robots_txt: str = DEFAULT_ROBOTS_TXT) -> None:
        self._api = FakeAPI(robots=robots_txt, fallback=self._answer)
        self._lock = threading.Lock()
        self._timelines: dict[str, _Timeline] = {}
        for tag, statuses in statuses_by_tag.items():
            self.add_statuses(tag, statuses)

    def start(self) -> FakeMastodon:
        self._api.start()
        return self

    def stop(self) -> None:
        self._api.stop()

    def __enter__(self) -> FakeMastodon:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8731`` (no trailing slash)."""
        return self._api.url

    @property
    def requests(self) -> list[str]:
        """Every request target received so far (path and query, as sent; robots.txt too), oldest first."""
        return [r.target for r in self._api.received]

    @property
    def user_agents(self) -> list[str]:
        """The User-Agent header of every request, in the order of `requests`."""
        return [r.headers.get("user-agent", "") for r in self._api.received]

    def add_statuses(self, tag: str, statuses: Iterable[dict[str, Any]]) -> None:
        """Add statuses to a tag's timeline (e.g. new posts arriving between two crawls)."""
        with self._lock:
            self._timelines.setdefault(_normalise_tag(tag), _Timeline()).add(statuses)

    def add_fault(self, target_prefix: str, kind: str, times: int = 1, retry_after: int = 1) -> None:
        """See FakeAPI.add_fault: "500", "429", "truncated" or "garbage" for the next `times` requests."""
        self._api.add_fault(target_prefix, kind, times, retry_after)

    def _answer(self, request: Request) -> Reply:
        tag = request.path[len(TAG_PATH):] if request.path.startswith(TAG_PATH) else ""
        if not tag or "/" in tag:
            return Reply.json(b'{"error":"Record not found"}', status=404)
        with self._lock:
            return self._tag_timeline(unquote(tag), request)

    def _tag_timeline(self, raw_tag: str, request: Request) -> Reply:
        def param(name: str) -> str | None:
            return request.param(name) or None  # Rails' `.present?`: an empty value is no value

        limit_text = param("limit")
        limit = DEFAULT_LIMIT if limit_text is None else min(abs(_ruby_to_i(limit_text)), MAX_LIMIT)
        timeline = self._timelines.get(_normalise_tag(raw_tag))
        if timeline is None:
            # Mastodon's TagController answers an unknown tag with an empty array, not 404
            # (app/controllers/api/v1/timelines/tag_controller.rb: `@tag.nil? ? [] : ...`).
            return Reply.json(b"[]")
        indexes = timeline.page(limit, param("max_id"), param("since_id"), param("min_id"))
        body = b"[" + b",".join(timeline.bodies[i] for i in indexes) + b"]"
        if not indexes:
            return Reply.json(body)  # no Link header on an empty page, as Mastodon
        # Link header as TagController#insert_pagination_headers: next pages back from the oldest id,
        # prev forward from the newest; only limit/local/only_media carry over.
        kept = {k: v for k in ("local", "limit", "only_media") if (v := param(k)) is not None}
        base = f"{self.url}{TAG_PATH}{quote(raw_tag, safe='')}"
        next_url = f"{base}?{urlencode({**kept, 'max_id': timeline.ids[indexes[-1]]})}"
        prev_url = f"{base}?{urlencode({**kept, 'min_id': timeline.ids[indexes[0]]})}"
        return Reply.json(body, headers={"Link": f'<{next_url}>; rel="next", <{prev_url}>; rel="prev"'})


# -- data ---------------------------------------------------------------------------------------------

_TEXTS = (
    ("en", "Just moved to RedNote because of the TikTok ban. Everyone here is so welcoming!"),
    ("en", "Honestly the whole app-hopping thing is exhausting &amp; bad for privacy."),
    ("en", "Day {n} as a TikTok refugee: learned to say &quot;cat tax&quot; in Mandarin."),
    ("en", "Not sure how I feel about this yet. Watching and waiting."),
    ("zh", "欢迎TikTok难民来小红书！有问题尽管问😄"),
    ("zh", "服务器又卡了，外国朋友太多了哈哈。"),
    ("zh", "说实话有点担心社区氛围会变。"),
    ("en", "Learning 中文 from the comments: 谢谢 = thanks 🙏"),
)


def generate_statuses(
    n: int,
    *,
    tag: str,
    start_id: int = 110000000000000000,
    start: datetime | None = None,
    instance: str = "bench.murmur.invalid",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``n`` synthetic Status dicts of the documented shape, ids and created_at increasing (oldest first).

    Content mentions ``#tag`` as Mastodon renders hashtags; text cycles through a few English and
    Chinese variants. Deterministic for a given seed; 20,000 take well under a second.
    """
    rng = random.Random(seed)
    begin = start or datetime(2025, 1, 13, tzinfo=UTC)
    name = tag.lstrip("#")
    tag_url = f"https://{instance}/tags/{quote(name.lower(), safe='')}"
    hashtag = f'<a href="{tag_url}" class="mention hashtag" rel="tag">#<span>{escape(name)}</span></a>'
    tags = [{"name": name.lower(), "url": tag_url}]
    accounts = [_bench_account(i, instance) for i in range(50)]
    offsets = rng.choices(range(5, 120), k=n)  # seconds between posts
    pick_text = rng.choices(range(len(_TEXTS)), k=n)
    pick_account = rng.choices(range(len(accounts)), k=n)
    likes = rng.choices(range(40), k=n)
    statuses: list[dict[str, Any]] = []
    moment = begin
    for i in range(n):
        moment += timedelta(seconds=offsets[i], milliseconds=i % 1000)
        status_id = str(start_id + i)
        lang, text = _TEXTS[pick_text[i]]
        account = accounts[pick_account[i]]
        username = account["username"]
        statuses.append(
            {
                "id": status_id,
                "created_at": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
                "in_reply_to_id": None,
                "in_reply_to_account_id": None,
                "sensitive": False,
                "spoiler_text": "",
                "visibility": "public",
                "language": lang,
                "uri": f"https://{instance}/users/{username}/statuses/{status_id}",
                "url": f"https://{instance}/@{username}/{status_id}",
                "replies_count": likes[i] % 4,
                "reblogs_count": likes[i] // 8,
                "favourites_count": likes[i],
                "edited_at": None,
                "content": f"<p>{text.format(n=i % 30 + 1)}</p><p>{hashtag}</p>",
                "reblog": None,
                "account": dict(account),
                "media_attachments": [],
                "mentions": [],
                "tags": [dict(tags[0])],
                "emojis": [],
                "card": None,
                "poll": None,
            }
        )
    return statuses


def _bench_account(i: int, instance: str) -> dict[str, Any]:
    username = f"bench_user_{i:02d}"
    return {
        "id": str(109000000000000000 + i),
        "username": username,
        "acct": username,  # local to `instance`, so a bare acct (Account#acct)
        "display_name": f"Bench User {i}",
        "locked": False,
        "bot": False,
        "discoverable": True,
        "group": False,
        "created_at": "2023-01-01T00:00:00.000Z",
        "note": "",
        "url": f"https://{instance}/@{username}",
        "avatar": f"https://{instance}/avatars/original/missing.png",
        "avatar_static": f"https://{instance}/avatars/original/missing.png",
        "header": f"https://{instance}/headers/original/missing.png",
        "header_static": f"https://{instance}/headers/original/missing.png",
        "followers_count": i * 3,
        "following_count": i,
        "statuses_count": 100 + i,
        "last_status_at": "2025-01-26",
        "emojis": [],
        "fields": [],
    }
