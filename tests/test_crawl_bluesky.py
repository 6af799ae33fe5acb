"""A real Scrapy crawl (`murmur crawl bluesky`, in a child process) of a local server that answers like
Bluesky's XRPC API from the fixtures in tests/fixtures/bluesky, into PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from murmur.crawler.spiders.bluesky import BlueskySpider
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "bluesky"
HANDLE = "maple-jo.murmur.test"
PASSWORD = "abcd-efgh-ijkl-mnop"  # the shape of an app password; must never be printed
FEED_URI = "at://did:plc:p1xe1c4t5q7w9e1r3t5y7u9i/app.bsky.feed.generator/tiktokrefugee"
CREDENTIALS = {"MURMUR_BLUESKY_HANDLE": HANDLE, "MURMUR_BLUESKY_APP_PASSWORD": PASSWORD}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class Bluesky:
    """What the fake server answers; tests change it between crawls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session = load("session.json")
        self.access = self.session["accessJwt"]
        self.search_pages: dict[str | None, Any] = {None: load("search_posts.json"), "25": load("search_empty.json")}
        self.since_page: Any = load("search_empty.json")
        self.expire_next_search = False
        self.login_status = 200
        self.author_pages: dict[str | None, Any] = {
            None: load("author_feed.json"), "2025-01-14T14:58:02.511Z": {"feed": []},
        }
        self.feed_body: bytes | None = None

    def login(self, request: Request) -> Reply:
        if self.login_status != 200:
            return Reply.json(load("error_auth.json"), status=self.login_status)
        return Reply.json(self.session)

    def refresh(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.session['refreshJwt']}":
            return Reply.json({"error": "InvalidToken", "message": "Token could not be verified"}, status=400)
        with self.lock:
            self.access = "eyJ.refreshed-access-2.sig"
            return Reply.json({**self.session, "accessJwt": self.access, "refreshJwt": "eyJ.refreshed-refresh-2.sig"})

    def search(self, request: Request) -> Reply:
        with self.lock:
            if self.expire_next_search:
                self.expire_next_search = False
                return Reply.json(load("error_expired.json"), status=400)
            if request.headers.get("authorization") != f"Bearer {self.access}":
                return Reply.json({"error": "AuthenticationRequired", "message": "Authentication Required"}, 401)
        if request.param("since"):
            return Reply.json(self.since_page)
        return Reply.json(self.search_pages.get(request.param("cursor"), {"posts": []}))

    def author_feed(self, request: Request) -> Reply:
        return Reply.json(self.author_pages.get(request.param("cursor"), {"feed": []}))

    def feed(self, request: Request) -> Reply:
        if self.feed_body is not None:
            return Reply.text(self.feed_body, content_type="application/json")
        return Reply.json(load("feed_generator.json") if not request.param("cursor") else {"feed": []})


TOP = "at://did:plc:m4plej0q7xw2k5vz3rb6tyd1/app.bsky.feed.post/3lfnrx2q4kc2s"  # search_posts.json's first


def post_thread(request: Request) -> Reply:
    """post_thread.json for the first post of search_posts.json; a deleted post's answer for any other."""
    if request.param("uri") == TOP:
        return Reply.json(load("post_thread.json"))
    return Reply.json({"thread": {"$type": "app.bsky.feed.defs#notFoundPost", "uri": request.param("uri"),
                                  "notFound": True}})


@pytest.fixture
def bsky() -> Bluesky:
    return Bluesky()


@pytest.fixture
def api(bsky: Bluesky) -> Iterator[FakeAPI]:
    with FakeAPI() as server:
        server.route("/xrpc/com.atproto.server.createSession", bsky.login, method="POST")
        server.route("/xrpc/com.atproto.server.refreshSession", bsky.refresh, method="POST")
        server.route("/xrpc/app.bsky.feed.searchPosts", bsky.search)
        server.route("/xrpc/app.bsky.feed.getAuthorFeed", bsky.author_feed)
        server.route("/xrpc/app.bsky.feed.getFeed", bsky.feed)
        server.route("/xrpc/app.bsky.feed.getPostThread", post_thread)
        yield server


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, *, accounts: tuple[str, ...] = (),
          feeds: tuple[str, ...] = (), replies: bool = False, **env: str) -> Any:
    config = tmp_path / "murmur.toml"
    config.write_text(
        f"""
terms = ["TikTok refugee", "小红书", "RedNote", "Lemon8"]
[sources.bluesky]
base_url = "{api.url}"
instances = ["{api.url}"]
tags = ["RedNote"]
accounts = {json.dumps(list(accounts))}
feeds = {json.dumps(list(feeds))}
max_pages = 3
download_delay = 0
replies = {json.dumps(replies)}
"""
    )
    return run_murmur("--config", str(config), "crawl", "bluesky", db_url=db_url, **env)


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:bluesky' ORDER BY id DESC"
    ).fetchone()
    assert row is not None
    return row


def calls(api: FakeAPI, path: str) -> list[Request]:
    return [r for r in api.requests if r.path == path]


def test_search_with_an_app_password_stores_posts_then_asks_only_for_newer_ones(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, bsky: Bluesky
) -> None:
    result = crawl(tmp_path, db_url, api, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    (login,) = calls(api, "/xrpc/com.atproto.server.createSession")
    assert login.method == "POST" and login.json() == {"identifier": HANDLE, "password": PASSWORD}
    first, second = calls(api, "/xrpc/app.bsky.feed.searchPosts")
    assert first.query == {"q": ["RedNote"], "sort": ["latest"], "limit": ["100"]}
    assert second.query == {"q": ["RedNote"], "sort": ["latest"], "limit": ["100"], "cursor": ["25"]}
    assert first.headers["authorization"] == f"Bearer {load('session.json')['accessJwt']}"
    assert first.headers["user-agent"].startswith("murmur/")

    rows = conn.execute(
        "SELECT source, source_id, url, author, text, created_at, likes, reposts, replies, tags FROM posts "
        "ORDER BY created_at DESC"
    ).fetchall()
    assert [r[3] for r in rows] == [  # the image-only post has no text and is dropped; one had no createdAt
        "maple-jo.murmur.test", "lin.murmur.test", "noor.murmur.test", "dani.murmur.test",
        "did:plc:gu5gr4mpy2k4m6n8p0r2t4v6",
    ]
    source, source_id, url, _, text, created_at, likes, reposts, replies, tags = rows[0]
    assert (source, source_id) == ("bluesky", "at://did:plc:m4plej0q7xw2k5vz3rb6tyd1/app.bsky.feed.post/3lfnrx2q4kc2s")
    assert url == "https://bsky.app/profile/maple-jo.murmur.test/post/3lfnrx2q4kc2s"
    assert "https://example.com/rednote-guide-for-beginners/part-1" in text and "&amp;" not in text
    assert created_at.isoformat() == "2025-01-14T15:05:30.017000+00:00"
    assert (likes, reposts, replies, tags) == (48, 5, 2, ["TikTokRefugee", "RedNote"])

    status, stats, error = last_run(conn)
    assert (status, error) == ("ok", None)
    assert stats["murmur/pages"] == 2 and stats["murmur/posts/new"] == 5
    assert stats["murmur/posts/skipped_malformed"] == 1 and stats["murmur/posts/dropped/empty"] == 1
    cursor = conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'bluesky'").fetchall()
    assert cursor == [("search:RedNote", "2025-01-14T15:05:30.017Z")]
    assert "bluesky: ok" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr

    # The second crawl asks only for posts since the newest one stored, and stores no duplicates.
    newer = copy.deepcopy(load("search_posts.json")["posts"][0])
    newer["uri"] = newer["uri"].replace("3lfnrx2q4kc2s", "3lfntq6b3ad2k")
    newer["record"]["createdAt"] = newer["indexedAt"] = "2025-01-15T08:00:00.250Z"
    newer["record"]["text"] = "Week 2 on RedNote, still here 🍋"
    newer["record"]["facets"] = []
    bsky.since_page = {"posts": [newer, load("search_posts.json")["posts"][0]]}  # `since` is inclusive
    seen = len(api.requests)

    result = crawl(tmp_path, db_url, api, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    (search,) = [r for r in api.requests[seen:] if r.path == "/xrpc/app.bsky.feed.searchPosts"]
    assert search.param("since") == "2025-01-14T15:05:30.017Z" and search.param("cursor") is None
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (6, 6)
    stats = last_run(conn)[1]
    assert stats["murmur/posts/new"] == 1 and stats.get("murmur/posts/updated", 0) == 0
    assert conn.execute("SELECT cursor FROM crawl_state").fetchone() == ("2025-01-15T08:00:00.250Z",)


def test_an_expired_token_is_refreshed_once_and_the_search_goes_on(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, bsky: Bluesky
) -> None:
    bsky.expire_next_search = True
    result = crawl(tmp_path, db_url, api, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    (refresh,) = calls(api, "/xrpc/com.atproto.server.refreshSession")
    assert refresh.method == "POST"
    assert refresh.headers["authorization"] == f"Bearer {load('session.json')['refreshJwt']}"
    searches = calls(api, "/xrpc/app.bsky.feed.searchPosts")
    assert [r.headers["authorization"] for r in searches[1:]] == ["Bearer eyJ.refreshed-access-2.sig"] * 2
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (5,)
    status, stats, _ = last_run(conn)
    assert status == "ok" and stats["murmur/bluesky/refreshes"] == 1


def test_a_refused_app_password_is_one_clear_line_and_the_source_fails(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, bsky: Bluesky
) -> None:
    bsky.login_status = 401
    result = crawl(tmp_path, db_url, api, accounts=("lin.murmur.test",), **CREDENTIALS)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "bluesky" in line.lower()]
    assert len(lines) == 1, result.stderr
    assert "refused the login" in lines[0] and "AuthenticationRequired" in lines[0]
    assert "MURMUR_BLUESKY_APP_PASSWORD" in lines[0] and "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert [r.path for r in api.requests] == ["/xrpc/com.atproto.server.createSession"]  # nothing else asked
    status, stats, error = last_run(conn)
    assert status == "failed" and "MURMUR_BLUESKY_APP_PASSWORD" in error and stats["murmur/errors/http_401"] == 1


def test_without_credentials_accounts_and_feeds_are_read_from_the_public_appview(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, bsky: Bluesky
) -> None:
    result = crawl(tmp_path, db_url, api, accounts=("lin.murmur.test",), feeds=(FEED_URI,))
    assert result.returncode == 0, result.stderr
    assert len([line for line in result.stderr.splitlines() if "needs an app password" in line]) == 1
    assert not calls(api, "/xrpc/app.bsky.feed.searchPosts")
    assert not calls(api, "/xrpc/com.atproto.server.createSession")
    authors = calls(api, "/xrpc/app.bsky.feed.getAuthorFeed")
    assert [r.query for r in authors] == [
        {"actor": ["lin.murmur.test"], "limit": ["100"]},
        {"actor": ["lin.murmur.test"], "limit": ["100"], "cursor": ["2025-01-14T14:58:02.511Z"]},
    ]
    (feed, feed_page_2) = calls(api, "/xrpc/app.bsky.feed.getFeed")
    assert feed.query == {"feed": [FEED_URI], "limit": ["100"]}
    assert feed_page_2.param("cursor") == "1736866800000::bafyreidcursor"
    assert all("authorization" not in r.headers for r in api.requests)
    # lin's 3 posts + maple's reposted post (author feed), noor and dani (custom feed)
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (6, 6)
    cursors = dict(conn.execute("SELECT query, cursor FROM crawl_state").fetchall())
    assert cursors == {
        "author:lin.murmur.test": "2025-01-14T18:02:40.120Z", f"feed:{FEED_URI}": "2025-01-14T14:40:11.250Z"
    }
    assert last_run(conn)[0] == "ok"

    # Again, with the custom feed answering a truncated page: the author feed's first page reaches the
    # newest post stored, so no second page is asked; the malformed page is logged, counted and skipped.
    bsky.feed_body = (FIXTURES / "truncated.json").read_bytes()
    seen = len(api.requests)
    again = crawl(tmp_path, db_url, api, accounts=("lin.murmur.test",), feeds=(FEED_URI,))
    assert again.returncode == 0, again.stderr
    authors = [r for r in api.requests[seen:] if r.path == "/xrpc/app.bsky.feed.getAuthorFeed"]
    assert [r.param("cursor") for r in authors] == [None]
    assert "malformed page" in again.stderr and "Traceback" not in again.stderr
    status, stats, _ = last_run(conn)
    assert status == "ok" and stats["murmur/errors/malformed"] == 1 and stats.get("murmur/posts/new", 0) == 0
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (6,)
    assert dict(conn.execute("SELECT query, cursor FROM crawl_state").fetchall()) == cursors  # nothing newer


def test_without_credentials_or_feeds_the_source_fails_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    # Decided before any request or database access, so this runs the spider's start() in-process.
    spider = BlueskySpider(queries=["RedNote"], base_url="http://127.0.0.1:9")

    async def requests() -> list[Any]:
        return [r async for r in spider.start()]

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(requests()) == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert "MURMUR_BLUESKY_HANDLE" in line and "MURMUR_BLUESKY_APP_PASSWORD" in line and "accounts" in line
    # the runner's rule (crawler/runner.py _outcome): failed when every host it read from failed
    assert spider.failures and len(spider.failures) >= max(len(spider.instances), 1)


def test_replies_are_read_from_the_public_thread_and_stored_with_parent_root_and_the_threads_terms(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI
) -> None:
    result = crawl(tmp_path, db_url, api, replies=True, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    threads = calls(api, "/xrpc/app.bsky.feed.getPostThread")
    # One request per matching post with replies, without the session (the public AppView answers it).
    assert len(threads) == 4 and TOP in {r.param("uri") for r in threads}
    assert {(r.param("depth"), r.param("parentHeight")) for r in threads} == {("6", "0")}
    assert not any("authorization" in r.headers for r in threads)

    (thread_terms,) = conn.execute("SELECT terms FROM posts WHERE source_id = %s", (TOP,)).fetchone()
    rows = conn.execute("SELECT source_id, parent_source_id, root_source_id, terms FROM posts "
                        "WHERE root_source_id = %s ORDER BY created_at", (TOP,)).fetchall()
    first, second = (r[0] for r in rows)
    assert [r[1:] for r in rows] == [(TOP, TOP, thread_terms), (first, TOP, thread_terms)]
    status, stats, _ = last_run(conn)
    assert status == "ok" and stats["murmur/posts/replies"] == 2 and stats["murmur/bluesky/threads"] == 4
