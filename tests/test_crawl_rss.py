"""A real Scrapy crawl (`murmur crawl rss`, in a child process) of local feeds from tests/fixtures/rss
(one shaped like RSSHub's Xiaohongshu route), into PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from murmur.crawler.spiders.rss import RssSpider
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "rss"
NOTES = "/xiaohongshu/user/5f3a9b2c000000000101d4e7/notes"
ETAG = 'W/"a1b2c3"'
LAST_MODIFIED = "Tue, 14 Jan 2025 16:00:02 GMT"
NEW_ENTRY = """  <entry>
    <title>RedNote week two</title>
    <link href="https://blog.murmur.test/posts/week-two"/>
    <id>tag:blog.murmur.test,2025:posts/week-two</id>
    <published>2025-01-21T10:00:00Z</published>
    <summary>Still on RedNote, still learning 中文.</summary>
  </entry>
</feed>"""


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rsshub_notes(request: Request) -> Reply:
    # RSSHub answers with an ETag (its etag middleware) and honours If-None-Match.
    if request.headers.get("if-none-match") == ETAG:
        return Reply(304, b"", {"ETag": ETAG})
    return Reply.text(fixture("rsshub_xiaohongshu.xml"), content_type="application/xml; charset=utf-8",
                      headers={"ETag": ETAG})


class Blog:
    """A server that sends Last-Modified but ignores conditional requests, as many do."""

    def __init__(self) -> None:
        self.body = fixture("atom_blog.xml")

    def __call__(self, request: Request) -> Reply:
        return Reply.text(self.body, content_type="application/atom+xml",
                          headers={"Last-Modified": LAST_MODIFIED})


@pytest.fixture
def blog() -> Blog:
    return Blog()


@pytest.fixture
def api(blog: Blog) -> Iterator[FakeAPI]:
    with FakeAPI() as server:
        server.route(NOTES, rsshub_notes)
        server.route("/atom.xml", blog)
        server.route("/news.xml", lambda r: Reply.text(fixture("rss_news.xml"), content_type="application/rss+xml"))
        server.route("/page.html", lambda r: Reply.text(fixture("not_a_feed.html"), content_type="text/html"))
        server.route("/garbage", lambda r: Reply.text(fixture("garbage.bin"), content_type="application/rss+xml"))
        server.route("/private.xml", lambda r: Reply.text("<h1>403 Forbidden</h1>", status=403,
                                                          content_type="text/html"))
        yield server


def crawl(tmp_path: Path, db_url: str, feeds: list[str]) -> Any:
    config = tmp_path / "murmur.toml"
    config.write_text(
        f"""
terms = ["TikTok refugee", "小红书", "RedNote", "Lemon8", "Xiaohongshu"]
[sources.rss]
feeds = {json.dumps(feeds)}
download_delay = 0
"""
    )
    return run_murmur("--config", str(config), "crawl", "rss", db_url=db_url)


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute("SELECT status, stats, error FROM job_runs WHERE job = 'crawl:rss' ORDER BY id DESC").fetchone()
    assert row is not None
    return row


def test_feeds_are_stored_then_a_second_crawl_sends_validators_and_stores_only_what_is_new(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, blog: Blog
) -> None:
    feeds = [api.url + NOTES, api.url + "/atom.xml"]
    result = crawl(tmp_path, db_url, feeds)
    assert result.returncode == 0, result.stderr
    first = {r.path: r for r in api.requests}
    assert "application/rss+xml" in first[NOTES].headers["accept"]
    assert first[NOTES].headers["user-agent"].startswith("murmur/")
    assert "if-none-match" not in first[NOTES].headers

    rows = conn.execute(
        "SELECT source, source_id, url, author, text, created_at, raw->>'feed' FROM posts ORDER BY source_id"
    ).fetchall()
    assert len(rows) == 6  # 3 RSSHub notes, 3 blog entries (the 4th has neither id nor link)
    assert {r[0] for r in rows} == {"rss"}
    notes = {r[1]: r for r in rows if r[6] == api.url + NOTES}
    note = notes["https://www.xiaohongshu.com/user/profile/5f3a9b2c000000000101d4e7/678604a2000000001703a1b2"]
    assert note[2] == note[1] and note[3] == "林 Lin"
    assert note[4] == "欢迎TikTok难民来到小红书🎉 第一课：你好"
    assert note[5].isoformat() == "2025-01-14T06:10:42+00:00"
    blog_post = next(r for r in rows if r[1] == "tag:blog.murmur.test,2025:posts/why-rednote")
    assert "<" not in blog_post[4] and "&amp;" not in blog_post[4] and "track()" not in blog_post[4]

    status, stats, error = last_run(conn)
    assert (status, error) == ("ok", None)
    assert stats["murmur/pages"] == 2 and stats["murmur/posts/new"] == 6
    assert stats["murmur/posts/skipped_malformed"] == 1
    cursors = {q: json.loads(c) for q, c in conn.execute("SELECT query, cursor FROM crawl_state").fetchall()}
    assert cursors == {
        api.url + NOTES: {"etag": ETAG, "last_modified": None},
        api.url + "/atom.xml": {"etag": None, "last_modified": LAST_MODIFIED},
    }

    # Again: the validators go back; RSSHub answers 304, the blog answers in full with one new entry.
    blog.body = blog.body.replace(b"</feed>", NEW_ENTRY.encode())
    seen = len(api.requests)
    result = crawl(tmp_path, db_url, feeds)
    assert result.returncode == 0, result.stderr
    again = {r.path: r for r in api.requests[seen:]}
    assert again[NOTES].headers["if-none-match"] == ETAG
    assert again["/atom.xml"].headers["if-modified-since"] == LAST_MODIFIED
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (7, 7)
    status, stats, _ = last_run(conn)
    assert status == "ok" and stats["murmur/feeds/not_modified"] == 1
    assert stats["murmur/posts/new"] == 1 and stats.get("murmur/posts/updated", 0) == 0


def test_what_is_not_a_feed_is_skipped_and_counted_and_the_other_feeds_go_on(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI
) -> None:
    feeds = [api.url + p for p in ("/page.html", "/garbage", "/private.xml", "/news.xml")]
    result = crawl(tmp_path, db_url, feeds)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    refused = [line for line in result.stderr.splitlines() if "refused access" in line]
    assert len(refused) == 1 and "/private.xml" in refused[0]
    skipped = [line for line in result.stderr.splitlines() if "rss: skipped" in line]
    assert len(skipped) == 2 and "not an rss or atom feed" in skipped[0]
    # the news feed: 3 entries (one repeated), all in its own feed's language
    assert conn.execute("SELECT count(*) FROM posts WHERE raw->>'feed' LIKE '%/news.xml'").fetchone() == (3,)
    status, stats, error = last_run(conn)
    # Some feeds read, some not: a partial run (issue 10).
    assert status == "partial" and stats["murmur/errors/malformed"] == 2 and stats["murmur/errors/http_403"] == 1
    assert error is not None and "/page.html" in error and "/private.xml" in error
    assert [q for (q,) in conn.execute("SELECT query FROM crawl_state").fetchall()] == [api.url + "/news.xml"]


def test_the_source_fails_when_no_feed_can_be_read(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI
) -> None:
    result = crawl(tmp_path, db_url, [api.url + "/private.xml"])
    assert result.returncode == 1 and "rss: failed" in result.stdout
    status, _, error = last_run(conn)
    assert status == "failed" and "/private.xml" in error and "403" in error


def test_no_feeds_configured_is_one_line_and_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    # Decided before any request or database access, so this runs the spider's start() in-process.
    spider = RssSpider(feeds=[])

    async def requests() -> list[Any]:
        return [r async for r in spider.start()]

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(requests()) == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert "sources.rss.feeds" in line
    # the runner's rule (crawler/runner.py _outcome): failed when every feed (or the config) failed
    assert spider.failures and len(spider.failures) >= max(len(spider.instances), 1)
