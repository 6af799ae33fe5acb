"""A local HTTP server that answers like a Mastodon instance, from recorded statuses.

Used by the demo (`python -m murmur.crawler.replay`), by spider tests (a real Scrapy crawl against a
real HTTP server, DESIGN.md "Real parts") and by the crawl benchmark. It serves only what murmur
reads: the hashtag timeline, with Mastodon's paging, and robots.txt; faults can be injected.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from murmur.crawler.parsers import id_key

__all__ = ["ReplayServer", "generate_statuses", "load_recorded", "FAULT_KINDS"]

_TAG_PATH = "/api/v1/timelines/tag/"
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

FAULT_KINDS = frozenset({"500", "429", "truncated", "garbage"})

_GARBAGE_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class _Fault:
    path_prefix: str
    kind: str
    remaining: int
    retry_after: int


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] | None = None


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


class ReplayServer:
    """Serves recorded Mastodon statuses on 127.0.0.1 (an ephemeral port by default).

    Use as a context manager, or call start()/stop(). Safe to use from tests running crawls in
    other threads: requests, faults and added statuses are guarded by one lock.
    """

    def __init__(
        self,
        statuses_by_tag: dict[str, list[dict[str, Any]]],
        *,
        robots_txt: str = DEFAULT_ROBOTS_TXT,
        port: int = 0,
    ) -> None:
        self.robots_txt = robots_txt
        self._port = port
        self._lock = threading.Lock()
        self._timelines: dict[str, _Timeline] = {}
        self._faults: list[_Fault] = []
        self._requests: list[str] = []
        self._user_agents: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for tag, statuses in statuses_by_tag.items():
            self.add_statuses(tag, statuses)

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        """Bind and serve in a daemon thread; calling it on a running server does nothing."""
        if self._httpd is not None:
            return self
        server = self

        class Handler(_Handler):
            replay = server

        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        # A short poll interval makes stop() (shutdown waits for the next poll) near instant in tests.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="murmur-replay", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8731`` (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("replay server is not running; call start() or use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- test controls ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[str]:
        """Every request target received so far (path and query, as sent), oldest first; a copy."""
        with self._lock:
            return list(self._requests)

    @property
    def user_agents(self) -> list[str]:
        """The User-Agent header of every request, in the order of `requests`; a copy."""
        with self._lock:
            return list(self._user_agents)

    def add_statuses(self, tag: str, statuses: Iterable[dict[str, Any]]) -> None:
        """Add statuses to a tag's timeline (e.g. new posts arriving between two crawls)."""
        with self._lock:
            self._timelines.setdefault(_normalise_tag(tag), _Timeline()).add(statuses)

    def add_fault(self, path_prefix: str, kind: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` requests whose target starts with ``path_prefix`` with a fault.

        kind: "500"; "429" (with ``Retry-After: retry_after``); "truncated" (200, the real JSON cut in
        half); "garbage" (200, an HTML error page). Afterwards, normal service resumes.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(sorted(FAULT_KINDS))}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self._lock:
            self._faults.append(_Fault(path_prefix, kind, times, retry_after))

    # -- answering (called from handler threads) -------------------------------------------------------

    def _respond(self, target: str, user_agent: str = "") -> _Response:
        with self._lock:
            self._requests.append(target)
            self._user_agents.append(user_agent)
            fault = self._take_fault(target)
            response = self._route(target)
        if fault is None:
            return response
        if fault.kind == "500":
            return _Response(500, b'{"error":"Internal Server Error"}')
        if fault.kind == "429":
            # Mastodon's rate-limit answer (config/initializers/rack_attack.rb) plus Retry-After, which
            # polite clients (Scrapy's retry, our throttle) honour.
            reset = datetime.now(UTC) + timedelta(seconds=fault.retry_after)
            return _Response(
                429,
                b'{"error":"Too many requests"}',
                headers={
                    "Retry-After": str(fault.retry_after),
                    "X-RateLimit-Limit": "300",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                },
            )
        if fault.kind == "truncated":
            return _Response(200, response.body[: len(response.body) // 2], headers=response.headers)
        return _Response(200, _GARBAGE_HTML, content_type="text/html; charset=utf-8")

    def _take_fault(self, target: str) -> _Fault | None:
        for fault in self._faults:
            if target.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _route(self, target: str) -> _Response:
        parts = urlsplit(target)
        if parts.path == "/robots.txt":
            return _Response(200, self.robots_txt.encode(), content_type="text/plain; charset=utf-8")
        if parts.path.startswith(_TAG_PATH) and "/" not in parts.path[len(_TAG_PATH) :]:
            raw_tag = unquote(parts.path[len(_TAG_PATH) :])
            if raw_tag:
                return self._tag_timeline(raw_tag, parse_qs(parts.query))
        return _Response(404, b'{"error":"Record not found"}')

    def _tag_timeline(self, raw_tag: str, query: dict[str, list[str]]) -> _Response:
        def param(name: str) -> str | None:
            value = query.get(name, [""])[0]
            return value or None  # Rails' `.present?`: an empty value is no value

        limit_text = param("limit")
        limit = DEFAULT_LIMIT if limit_text is None else min(abs(_ruby_to_i(limit_text)), MAX_LIMIT)
        timeline = self._timelines.get(_normalise_tag(raw_tag))
        if timeline is None:
            # Mastodon's TagController answers an unknown tag with an empty array, not 404
            # (app/controllers/api/v1/timelines/tag_controller.rb: `@tag.nil? ? [] : ...`).
            return _Response(200, b"[]")
        indexes = timeline.page(limit, param("max_id"), param("since_id"), param("min_id"))
        body = b"[" + b",".join(timeline.bodies[i] for i in indexes) + b"]"
        if not indexes:
            return _Response(200, body)  # no Link header on an empty page, as Mastodon
        # Link header as TagController#insert_pagination_headers: next pages back from the oldest id,
        # prev forward from the newest; only limit/local/only_media carry over.
        kept = {k: query[k][0] for k in ("local", "limit", "only_media") if k in query}
        base = f"{self.url}{_TAG_PATH}{quote(raw_tag, safe='')}"
        next_url = f"{base}?{urlencode({**kept, 'max_id': timeline.ids[indexes[-1]]})}"
        prev_url = f"{base}?{urlencode({**kept, 'min_id': timeline.ids[indexes[0]]})}"
        return _Response(200, body, headers={"Link": f'<{next_url}>; rel="next", <{prev_url}>; rel="prev"'})


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"  # keep-alive, so a benchmark measures the crawler, not TCP set-up
    server_version = "murmur-replay"

    def do_GET(self) -> None:  # the name http.server dispatches to
        response = self.replay._respond(self.path, self.headers.get("User-Agent", ""))
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in (response.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo do not want a line per request on stderr."""


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


def load_recorded(source: str = "mastodon") -> dict[str, list[dict[str, Any]]]:
    """The shipped demo data (``crawler/recorded/<source>/statuses.json``): hashtag -> statuses."""
    folder = resources.files("murmur.crawler").joinpath("recorded")
    available = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and entry.name[:1] != "_")
    if source not in available:
        raise ValueError(f"no recorded data for source {source!r}; available: {', '.join(available)}")
    data = json.loads(folder.joinpath(source, "statuses.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"recorded data for {source!r} is not an object of hashtag -> statuses")
    return data


def main(argv: list[str] | None = None) -> None:
    """``python -m murmur.crawler.replay [--port N]``: serve the demo data until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m murmur.crawler.replay",
        description="Serve murmur's recorded Mastodon statuses like a Mastodon instance.",
        epilog="example: python -m murmur.crawler.replay --port 8731 "
        "then curl 'http://127.0.0.1:8731/api/v1/timelines/tag/rednote?limit=2'",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (default: any free)")
    args = parser.parse_args(argv)
    data = load_recorded("mastodon")
    with ReplayServer(data, port=args.port) as server:
        print(f"serving recorded Mastodon statuses at {server.url}", flush=True)
        for tag in sorted(data):
            print(f"  {server.url}{_TAG_PATH}{quote(tag, safe='')}  ({len(data[tag])} statuses)", flush=True)
        print("press Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)


if __name__ == "__main__":
    main()
