"""A real Scrapy crawl (`murmur crawl youtube`, in a child process) of a local server that answers like
the YouTube Data API v3 (results built from tests/fixtures/youtube), into PostgreSQL."""

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
from scrapy.exceptions import CloseSpider
from scrapy.http import TextResponse

from murmur.config import load_settings
from murmur.crawler.spiders.youtube import YouTubeSpider, default_queries
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "youtube"
VIDEO = json.loads((FIXTURES / "search.json").read_text())["items"][0]
THREADS = json.loads((FIXTURES / "comment_threads.json").read_text())
KEY = "AIza-test-key-never-shown"
START = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
TERMS = ["TikTok refugee", "小红书", "RedNote"]
COMBINED = '"TikTok refugee"|小红书|RedNote'
DENY_ALL = "User-agent: *\nDisallow: /\n"


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def videos(term: str, count: int, *, prefix: str, start: datetime = START) -> list[dict]:
    """`count` search results about `term`, newest first, in the fixture's shape."""
    out = []
    for n in range(count):
        item = copy.deepcopy(VIDEO)
        ident = f"{prefix}{count - n:08d}"[:11]
        published = rfc3339(start + timedelta(minutes=count - n))
        item["id"]["videoId"] = ident
        item["snippet"].update(publishedAt=published, publishTime=published,
                               title=f"My {term} week #{count - n} &amp; counting")
        out.append(item)
    return out


class FakeYouTube:
    """search.list over fixed results (q as |-separated alternatives, publishedAfter inclusive, order=date,
    pageToken = offset) and commentThreads.list answering the fixture's threads for any video."""

    def __init__(self, results: list[dict]) -> None:
        self.results = results
        self.faults: dict[str, list[Reply]] = {}  # q or "comments" -> replies given instead
        self.disabled: set[str] = set()  # videos whose comments are turned off

    def search(self, request: Request) -> Reply:
        if request.headers.get("x-goog-api-key") != KEY:
            return Reply.json(json.loads((FIXTURES / "key_invalid.json").read_text()), status=400)
        q = request.param("q") or ""
        if self.faults.get(q):
            return self.faults[q].pop(0)
        wanted = [alt.strip('"').lower() for alt in q.split("|")]
        after = request.param("publishedAfter")
        items = sorted(
            (v for v in self.results
             if any(w in v["snippet"]["title"].lower() for w in wanted)
             and (after is None or v["snippet"]["publishedAt"] >= after)),
            key=lambda v: v["snippet"]["publishedAt"], reverse=True)
        offset, size = int(request.param("pageToken") or 0), int(request.param("maxResults") or 5)
        body = {"kind": "youtube#searchListResponse", "etag": "fake", "regionCode": "US",
                "pageInfo": {"totalResults": len(items), "resultsPerPage": size},
                "items": items[offset:offset + size]}
        if offset + size < len(items):
            body["nextPageToken"] = str(offset + size)
        return Reply.json(body)

    def comment_threads(self, request: Request) -> Reply:
        video = request.param("videoId") or ""
        if self.faults.get("comments"):
            return self.faults["comments"].pop(0)
        if video in self.disabled:
            return Reply.json(json.loads((FIXTURES / "comments_disabled.json").read_text()), status=403)
        body = copy.deepcopy(THREADS)
        for n, item in enumerate(body["items"]):
            item["id"] = item["snippet"]["topLevelComment"]["id"] = f"Ug{video}{n}"
            item["snippet"]["videoId"] = item["snippet"]["topLevelComment"]["snippet"]["videoId"] = video
        body.pop("nextPageToken")
        return Reply.json(body)


@pytest.fixture
def youtube() -> FakeYouTube:
    return FakeYouTube(videos("RedNote", 60, prefix="rn") + videos("Lemon8", 5, prefix="l8"))


@pytest.fixture
def api(youtube: FakeYouTube) -> Iterator[FakeAPI]:
    with FakeAPI(robots=DENY_ALL) as server:
        server.route("/youtube/v3/search", youtube.search)
        server.route("/youtube/v3/commentThreads", youtube.comment_threads)
        yield server


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, *, key: str | None = KEY, **source: object):
    table = {"enabled": True, "base_url": f"{api.url}/youtube/v3", "download_delay": 0, **source}
    config = tmp_path / "murmur.toml"
    config.write_text(f"terms = {json.dumps(TERMS, ensure_ascii=False)}\n[sources.youtube]\n"
                      + "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()) + "\n")
    env = {"MURMUR_YOUTUBE_API_KEY": key} if key else {}
    return run_murmur("--config", str(config), "crawl", "youtube", db_url=db_url, **env)


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:youtube' ORDER BY id DESC").fetchone()
    assert row is not None
    return row


def test_crawl_stores_videos_and_comments_then_asks_only_for_newer_videos(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, youtube: FakeYouTube
) -> None:
    youtube.disabled.add("rn00000059")
    result = crawl(tmp_path, db_url, api, comments=True, max_pages=2)
    assert result.returncode == 0, result.stderr
    assert "youtube: ok" in result.stdout and "Traceback" not in result.stderr

    searches = [r for r in api.requests if r.path == "/youtube/v3/search"]
    documented = {"part": ["snippet"], "q": [COMBINED], "type": ["video"], "order": ["date"], "maxResults": ["50"]}
    assert [r.query for r in searches] == [documented, {**documented, "pageToken": ["50"]}]
    threads = [r for r in api.requests if r.path == "/youtube/v3/commentThreads"]
    assert len(threads) == 60  # one per video found, robots.txt (Disallow: /) not consulted
    assert threads[0].query == {"part": ["snippet"], "videoId": [threads[0].param("videoId")], "maxResults": ["100"],
                                "order": ["time"], "textFormat": ["plainText"]}
    assert all(r.headers["x-goog-api-key"] == KEY and "key" not in r.query for r in api.requests)

    text, url, created = conn.execute(
        "SELECT text, url, created_at FROM posts WHERE source_id = 'rn00000060'").fetchone()
    assert text.startswith("My RedNote week #60 & counting\n\nDay 3 on 小红书: the \"cat tax\"")
    assert url == "https://www.youtube.com/watch?v=rn00000060"
    assert created == START + timedelta(minutes=60)
    comment = conn.execute("SELECT text, url, likes, replies FROM posts WHERE source_id = 'Ugrn000000600'").fetchone()
    assert comment == ("RedNote > Lemon8, no contest 😂 the cat tax is real",
                       "https://www.youtube.com/watch?v=rn00000060&lc=Ugrn000000600", 120, 4)
    # 60 videos, and on 59 of them the two comments that name a term (the other two match none).
    assert conn.execute("SELECT count(*) FROM posts WHERE source = 'youtube'").fetchone() == (60 + 59 * 2,)

    status, stats, error = last_run(conn)
    assert status == "ok" and error is None
    assert stats["murmur/youtube/quota_units"] == 2 * 100 + 60
    assert stats["murmur/youtube/comments_unavailable"] == 1
    assert stats["murmur/pages"] == 2 + 59 and stats["murmur/posts/new"] == 178
    assert [line for line in result.stderr.splitlines() if "quota units" in line][0].endswith(
        "youtube: used 260 quota units")
    assert KEY not in result.stdout + result.stderr

    # The second run asks for what was published since the newest video, and stores nothing twice.
    cursor = conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'youtube'").fetchone()
    assert cursor == (COMBINED, rfc3339(START + timedelta(minutes=60)))
    youtube.results += videos("TikTok refugee", 3, prefix="tr", start=START + timedelta(hours=2))
    seen = len(api.requests)
    again = crawl(tmp_path, db_url, api, comments=True, max_pages=2)
    assert again.returncode == 0, again.stderr
    asked = api.requests[seen:]
    (search,) = [r for r in asked if r.path.endswith("/search")]
    assert search.param("publishedAfter") == cursor[1]
    assert sorted(r.param("videoId") for r in asked if r.path.endswith("/commentThreads")) == [
        "tr00000001", "tr00000002", "tr00000003"]  # not the video at the cursor, whose comments were read
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (178 + 9, 178 + 9)
    assert last_run(conn)[1]["murmur/posts/new"] == 9
    assert "youtube: used 103 quota units" in again.stderr


def test_a_malformed_page_is_skipped_and_counted_and_the_crawl_goes_on(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, youtube: FakeYouTube
) -> None:
    youtube.faults["RedNote"] = [Reply(200, (FIXTURES / "truncated.json").read_bytes())]
    result = crawl(tmp_path, db_url, api, tags=["RedNote", "Lemon8"], comments=False)
    assert result.returncode == 0, result.stderr
    assert {r.param("q") for r in api.requests} == {"RedNote", "Lemon8"}
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (5,)
    status, stats, _ = last_run(conn)
    assert status == "ok" and stats["murmur/errors/malformed"] == 1 and stats["murmur/youtube/quota_units"] == 200
    assert "malformed search page" in result.stderr and "Traceback" not in result.stderr
    assert [q for (q,) in conn.execute("SELECT query FROM crawl_state")] == ["Lemon8"]


def test_a_spent_quota_stops_the_source_with_its_reason(tmp_path: Path, db_url: str, conn: psycopg.Connection,
                                                        api: FakeAPI, youtube: FakeYouTube) -> None:
    quota = json.loads((FIXTURES / "quota_exceeded.json").read_text())
    youtube.faults["comments"] = [Reply.json(quota, status=403) for _ in range(50)]
    result = crawl(tmp_path, db_url, api, tags=["RedNote"], comments=True, max_pages=1)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "refused" in line]
    assert len(lines) == 1 and "quotaExceeded" in lines[0] and "midnight Pacific" in lines[0]
    # 50 comment requests were queued; once the quota was spent the rest were dropped, not sent.
    assert len([r for r in api.requests if r.path.endswith("/commentThreads")]) < 50
    status, stats, error = last_run(conn)
    assert status == "failed" and "quotaExceeded" in error
    assert stats["murmur/youtube/quota_units"] >= 101
    assert "youtube: used" in result.stderr and "Traceback" not in result.stderr


# --- without a crawl -------------------------------------------------------------------------


def test_a_missing_key_is_one_line_and_no_request(caplog: pytest.LogCaptureFixture) -> None:
    spider = YouTubeSpider(base_url="http://127.0.0.1:9/youtube/v3", queries=["RedNote"])

    async def requests() -> list:
        return [r async for r in spider.start()]

    assert asyncio.run(requests()) == []
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.youtube"]
    assert line.startswith("youtube: MURMUR_YOUTUBE_API_KEY is not set; set it")
    assert spider.failures == {"http://127.0.0.1:9/youtube/v3": line.removeprefix("youtube: ")}


def test_terms_become_one_or_query() -> None:
    assert default_queries(TERMS) == [COMBINED]
    assert default_queries([]) == []


def test_an_invalid_key_is_one_line_naming_the_reason_and_stops_the_source(caplog: pytest.LogCaptureFixture) -> None:
    credentials = load_settings(environ={"MURMUR_YOUTUBE_API_KEY": "AIza-wrong"}).sources["youtube"].credentials
    spider = YouTubeSpider(base_url="http://127.0.0.1:9/youtube/v3", queries=["RedNote"], credentials=credentials)
    spider.crawler = Mock()
    request = spider._search("RedNote", cursor=None, page=1)
    assert request.headers["X-Goog-Api-Key"] == b"AIza-wrong" and "AIza-wrong" not in request.url
    refused = TextResponse(request.url, status=400, body=(FIXTURES / "key_invalid.json").read_bytes(),
                           request=request)
    with pytest.raises(CloseSpider):  # queued requests are dropped, not sent to be refused too
        list(spider.parse_search(refused))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.youtube"]
    assert line == ("youtube: the YouTube Data API refused the request (badRequest, API_KEY_INVALID: API key not "
                    "valid. Please pass a valid API key.); check MURMUR_YOUTUBE_API_KEY (a key of a project with "
                    "the YouTube Data API v3 enabled)")
    assert "AIza-wrong" not in line and spider.quota_units == 100
