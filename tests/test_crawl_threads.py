"""A real Scrapy crawl (`murmur crawl threads`, in a child process) of a local server that answers like the
Threads API's keyword search and serves saved Threads post pages (tests/fixtures/threads), into PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import Mock

import psycopg
import pytest
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.http import TextResponse
from twisted.python.failure import Failure

from murmur.config import load_settings
from murmur.crawler.items import Post
from murmur.crawler.parsers.threads import shortcode_to_pk
from murmur.crawler.spiders.threads import ThreadsSpider
from murmur.store.posts import upsert_posts
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "threads"
SEARCH = "/v1.0/keyword_search"
GRAPH_HOST = "https://graph.threads.net"
TEMPLATE = json.loads((FIXTURES / "keyword_search.json").read_text())["data"][0]
TOKEN = "THAAtest-token-never-shown"
START = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
TERMS = ["RedNote", "小红书", "TikTok refugee", "Lemon8", "Xiaohongshu"]
PAGE = "/@maple.jo/post/DE2vK7nMq1A"  # post_page.html
WALLED = "/@someone/post/DE9LoginWall"  # redirects to the login page
CUT = "/@someone/post/DE9Truncated"  # a connection cut mid-page
GONE = "/@someone/post/DE9NotInData"  # the page's data lacks the post


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S+0000")


def entries(term: str, count: int, *, first_id: int, start: datetime = START) -> list[dict]:
    """`count` keyword-search entries about `term`, newest first, in the fixture's shape."""
    out = []
    for n in range(count):
        entry = copy.deepcopy(TEMPLATE)
        ident = first_id + count - n
        entry.update(id=str(ident), text=f"{term} post {ident}: day {n} as a refugee 🍋",
                     timestamp=stamp(start + timedelta(minutes=count - n)), shortcode=f"DE{ident}",
                     permalink=f"https://www.threads.net/@maple.jo/post/DE{ident}")
        entry.pop("topic_tag", None)
        out.append(entry)
    return out


class FakeThreads:
    """keyword_search over fixed entries per query: newest first, `since` (Unix seconds, inclusive), pages of
    `limit`, `after` an opaque offset; `faults[(q, page)]` queues replies given instead."""

    def __init__(self, found: dict[str, list[dict]]) -> None:
        self.found = found
        self.faults: dict[tuple[str, int], list[Reply]] = {}

    def __call__(self, request: Request) -> Reply:
        q = request.param("q") or ""
        offset = int((request.param("after") or "off-0").removeprefix("off-"))
        per = int(request.param("limit") or 25)
        queued = self.faults.get((q, offset // per))
        if queued:
            return queued.pop(0)
        since = int(request.param("since") or 0)
        matching = sorted(
            (e for e in self.found.get(q, [])
             if datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S%z").timestamp() >= since),
            key=lambda e: e["timestamp"], reverse=True)
        body: dict = {"data": matching[offset:offset + per]}
        if matching:
            body["paging"] = {"cursors": {"before": f"off-{offset}", "after": f"off-{offset + per}"}}
            if offset + per < len(matching):
                # Graph writes the token into `next`: the spider must not follow it.
                body["paging"]["next"] = f"{GRAPH_HOST}/v1.0/keyword_search?access_token=X&after=off-{offset + per}"
        return Reply.json(body)


@pytest.fixture
def threads() -> Iterator[tuple[FakeAPI, FakeThreads]]:
    search = FakeThreads({
        "RedNote": entries("RedNote", 120, first_id=18060000000000000),
        "Lemon8": json.loads((FIXTURES / "keyword_search_last.json").read_text())["data"],
    })
    search.faults[("Xiaohongshu", 0)] = [Reply.json((FIXTURES / "truncated.json").read_bytes())]
    html = "text/html; charset=utf-8"
    with FakeAPI() as api:
        api.route(SEARCH, search)
        api.route(PAGE, lambda r: Reply.text((FIXTURES / "post_page.html").read_bytes(), content_type=html))
        api.route(WALLED, lambda r: Reply(status=302, headers={"Location": "/accounts/login/?next=%2F%40someone"}))
        api.route("/accounts/login/", lambda r: Reply.text((FIXTURES / "login_wall.html").read_bytes(),
                                                           content_type=html))
        api.route(CUT, lambda r: Reply.text((FIXTURES / "truncated.html").read_bytes(), content_type=html))
        api.route(GONE, lambda r: Reply.text((FIXTURES / "post_page_missing.html").read_bytes(),
                                             content_type=html))
        yield api, search


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, *, token: str | None = TOKEN, **source: object):
    table = {"enabled": True, "base_url": api.url, "download_delay": 0, **source}
    config = tmp_path / "murmur.toml"
    config.write_text(f"terms = {json.dumps(TERMS, ensure_ascii=False)}\n[sources.threads]\n"
                      + "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()) + "\n")
    env = {"MURMUR_THREADS_PAGES_URL": api.url, **({"MURMUR_THREADS_ACCESS_TOKEN": token} if token else {})}
    return run_murmur("--config", str(config), "crawl", "threads", db_url=db_url, **env)


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:threads' ORDER BY id DESC").fetchone()
    assert row is not None
    return row


def link_post(source_id: str, text: str) -> Post:
    return Post(source="mastodon", source_id=source_id, url=None, author=None, text=text,
                created_at=datetime(2025, 1, 15, tzinfo=UTC), terms=["RedNote"])


def test_crawl_searches_follows_linked_pages_counts_walls_then_asks_only_for_newer_posts(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, threads: tuple[FakeAPI, FakeThreads]
) -> None:
    api, search = threads
    with conn.transaction():
        upsert_posts(conn, [
            link_post("m1", "RedNote thread: https://www.threads.net/@maple.jo/post/DE2vK7nMq1A?xmt=AQGz so good"),
            link_post("m2", "login? https://threads.com/@someone/post/DE9LoginWall and "
                            "https://www.threads.com/@someone/post/DE9Truncated"),
            link_post("m3", "https://www.threads.com/@someone/post/DE9NotInData "
                            "https://threads.example.com/@x/post/DE9NotThreads is not Threads"),
        ])
    result = crawl(tmp_path, db_url, api, tags=["RedNote", "Lemon8", "Xiaohongshu"], max_pages=2)
    assert result.returncode == 0, result.stderr
    assert "threads: ok" in result.stdout and "Traceback" not in result.stderr
    assert TOKEN not in result.stdout + result.stderr

    searches = [r for r in api.requests if r.path == SEARCH]
    assert [(r.param("q"), r.param("after")) for r in searches] == [
        ("RedNote", None), ("RedNote", "off-100"), ("Lemon8", None), ("Xiaohongshu", None)]
    assert all(r.param("search_type") == "RECENT" and r.param("limit") == "100" and r.param("since") is None
               and "timestamp" in (r.param("fields") or "") for r in searches)
    # The token travels in a header only, never in a URL.
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" and "access_token" not in r.query for r in searches)
    pages = sorted(r.path for r in api.requests if r.path != SEARCH)
    assert pages == sorted([PAGE, WALLED, "/accounts/login/", CUT, GONE])  # never the threads.example link

    assert conn.execute("SELECT count(*) FROM posts WHERE source = 'threads' AND source_id LIKE '18060000%'"
                        ).fetchone() == (120,)
    text, url, author, created = conn.execute(
        "SELECT text, url, author, created_at FROM posts WHERE source_id = '18060000000000120'").fetchone()
    assert (text, author) == ("RedNote post 18060000000000120: day 0 as a refugee 🍋", "maple.jo")
    assert url == "https://www.threads.net/@maple.jo/post/DE18060000000000120" and created == START + timedelta(
        minutes=120)
    # The linked page: its post (under its pk) and the replies that name a term.
    page = conn.execute("SELECT url, author, likes, replies, reposts, terms FROM posts WHERE source_id = %s",
                        (shortcode_to_pk("DE2vK7nMq1A"),)).fetchone()
    assert page == ("https://www.threads.com/@maple.jo/post/DE2vK7nMq1A", "maple.jo", 1204, 2, 31,
                    ["RedNote", "小红书", "TikTok refugee", "Lemon8"])
    assert {a for (a,) in conn.execute("SELECT author FROM posts WHERE source = 'threads' AND url LIKE "
                                       "'https://www.threads.com/%'")} == {"maple.jo", "grumpy.gus", "cat_lady_ny"}

    status, stats, error = last_run(conn)
    assert status == "ok" and error is None
    assert stats["murmur/blocked"] == 1 and stats["murmur/blocked/login_wall"] == 1
    assert stats["murmur/errors/malformed"] == 3  # a search page and two post pages
    assert stats["murmur/threads/queries"] == 4 and stats["murmur/threads/post_pages"] == 4
    assert "threads: 4 post pages fetched, 1 blocked (login wall), 2 unreadable" in result.stderr
    assert "threads: sent 4 keyword queries" in result.stderr
    cursors = dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'threads'").fetchall())
    assert cursors == {"RedNote": str(int((START + timedelta(minutes=120)).timestamp())),
                       "Lemon8": str(int(datetime(2025, 1, 14, 22, 10, tzinfo=UTC).timestamp()))}
    stored = conn.execute("SELECT count(*) FROM posts WHERE source = 'threads'").fetchone()[0]

    # Second run: only what is newer than each cursor is asked for; the stored page is not fetched again,
    # the blocked and unreadable ones are (they stored nothing).
    search.found["RedNote"] += entries("RedNote", 3, first_id=18070000000000000, start=START + timedelta(hours=3))
    seen = len(api.requests)
    again = crawl(tmp_path, db_url, api, tags=["RedNote", "Lemon8", "Xiaohongshu"], max_pages=2)
    assert again.returncode == 0, again.stderr
    asked = api.requests[seen:]
    assert [(r.param("q"), r.param("since")) for r in asked if r.path == SEARCH] == [
        ("RedNote", cursors["RedNote"]), ("Lemon8", cursors["Lemon8"]), ("Xiaohongshu", None)]
    assert PAGE not in {r.path for r in asked} and {WALLED, CUT, GONE} <= {r.path for r in asked}
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts WHERE source = 'threads'"
                        ).fetchone() == (stored + 3, stored + 3)
    assert last_run(conn)[1]["murmur/posts/new"] == 3


def test_a_refused_token_is_one_line_and_the_source_fails(tmp_path: Path, db_url: str,
                                                           conn: psycopg.Connection) -> None:
    with FakeAPI() as api:
        api.route(SEARCH, lambda r: Reply.json(json.loads((FIXTURES / "error_token.json").read_text()), status=400))
        result = crawl(tmp_path, db_url, api, tags=["RedNote", "Lemon8"], follow_links=False)
        asked = api.requests
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "refused" in line]
    assert len(lines) == 1 and "Session has expired" in lines[0] and "MURMUR_THREADS_ACCESS_TOKEN" in lines[0]
    assert len(asked) == 1  # stopped at once: nothing asked for the second query
    status, _, error = last_run(conn)
    assert status == "failed" and "code 190" in error and "threads: failed" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


# --- without a crawl -------------------------------------------------------------------------------


def test_a_missing_token_is_one_line_and_no_request(caplog: pytest.LogCaptureFixture) -> None:
    spider = ThreadsSpider(base_url="http://127.0.0.1:9", queries=["RedNote"])

    async def requests() -> list:
        return [r async for r in spider.start()]

    assert asyncio.run(requests()) == []
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.threads"]
    assert line.startswith("threads: MURMUR_THREADS_ACCESS_TOKEN is not set; set it")
    assert spider.failures == {"http://127.0.0.1:9": line.removeprefix("threads: ")}


def test_a_spent_query_limit_stops_the_source_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    spider = ThreadsSpider(base_url="http://127.0.0.1:9", queries=["RedNote", "Lemon8"],
                           credentials={"access_token": TOKEN})
    spider.crawler = Mock()
    request = spider._search(0, after=None, page=1, newest=None)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}".encode() and TOKEN not in request.url
    refused = TextResponse(request.url, status=400, body=(FIXTURES / "error_rate.json").read_bytes(),
                           request=request)
    with pytest.raises(CloseSpider):  # what is queued is dropped, not sent to be refused too
        list(spider.parse_search(refused))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.threads"]
    assert line == ("threads: the Threads API refused the request ((#4) Application request limit reached "
                    "(OAuthException, code 4)); the keyword search limit (2,200 queries per 24 hours per user) is "
                    "spent; the next run tries again")


def test_one_bad_query_is_said_once_and_the_next_query_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    spider = ThreadsSpider(base_url="http://127.0.0.1:9", queries=["RedNote", "Lemon8"],
                           credentials={"access_token": TOKEN})
    spider.crawler = Mock()
    request = spider._search(0, after=None, page=1, newest=None)
    bad = TextResponse(request.url, status=400, body=(FIXTURES / "error_param.json").read_bytes(), request=request)
    (following,) = list(spider.parse_search(bad))
    assert following.meta["index"] == 1 and "q=Lemon8" in following.url
    assert not spider.stopped and any("(#100) Invalid parameter" in r.getMessage() for r in caplog.records)


def test_only_the_real_hosts_go_to_the_stand_in_and_robots_refusals_count_as_blocked() -> None:
    # MURMUR_THREADS_PAGES_URL, as the config layer hands it over.
    environment = load_settings(environ={"MURMUR_THREADS_PAGES_URL": "http://127.0.0.1:8080/"}).sources[
        "threads"].environment
    spider = ThreadsSpider(queries=["RedNote"], urls=["https://mirror.example/@a/post/DE2vK7nMq1A"],
                           environment=environment)
    spider.crawler = Mock()
    assert spider._fetch_url("https://www.threads.net/@a/post/DE2vK7nMq1A?xmt=1") == (
        "http://127.0.0.1:8080/@a/post/DE2vK7nMq1A?xmt=1")
    assert spider._fetch_url("https://threads.com/t/DE2vK7nMq1A") == "http://127.0.0.1:8080/t/DE2vK7nMq1A"
    assert spider._fetch_url("https://mirror.example/@a/post/DE2vK7nMq1A") == (
        "https://mirror.example/@a/post/DE2vK7nMq1A")  # a configured page is read where it is

    request = spider._page("https://www.threads.com/@a/post/DE2vK7nMq1A")
    try:
        raise IgnoreRequest("Forbidden by robots.txt")
    except IgnoreRequest:
        failure = Failure()
    failure.request = request  # what Scrapy attaches before calling the errback
    spider.page_failed(failure)
    assert spider.blocked == {"robots.txt": 1}
