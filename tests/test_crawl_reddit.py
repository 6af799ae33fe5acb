"""A real Scrapy crawl (`murmur crawl reddit`, in a child process) of a local server that answers like
Reddit's API (listings built from tests/fixtures/reddit), into PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import Mock

import psycopg
import pytest
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.http import TextResponse
from scrapy.settings import Settings as ScrapySettings
from twisted.python.failure import Failure

from murmur.config import load_settings
from murmur.crawler.spiders.reddit import RedditSpider
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "reddit"
_SEARCH = json.loads((FIXTURES / "search.json").read_text())
TEMPLATE = _SEARCH["data"]["children"][0]  # a self post with rendered HTML (t3_1i2b3c4, 57 comments)
COMMENTS = (FIXTURES / "comments.json").read_bytes()
TOKEN = json.loads((FIXTURES / "token.json").read_text())["access_token"]
START = 1736900000.0  # 2025-01-15T00:13:20Z
CLIENT = {"MURMUR_REDDIT_CLIENT_ID": "murmur-test-client", "MURMUR_REDDIT_CLIENT_SECRET": "s3cret-never-shown"}
DENY_ALL = "User-agent: *\nDisallow: /\n"  # reddit.com's robots.txt since 2024


def config_credentials(source: str, env: dict[str, str]) -> dict[str, str]:
    """What the config layer reads from these environment variables for `source` (spiders never read them)."""
    return load_settings(environ=env).sources[source].credentials


def submissions(term: str, count: int, *, prefix: str, start: float = START, sub: str = "TikTokRefugees") -> list[dict]:
    """`count` submissions mentioning `term`, newest first, in the fixture's t3 shape."""
    out = []
    for n in range(count):
        child = copy.deepcopy(TEMPLATE)
        data = child["data"]
        ident = f"{prefix}{count - n:04d}"
        text = f"Still on {term}, day {count - n}"
        data.update(id=ident, name=f"t3_{ident}", title=f"{term} diary #{count - n}", selftext=text,
                    selftext_html=f'<!-- SC_OFF --><div class="md"><p>{text}</p>\n</div><!-- SC_ON -->',
                    created_utc=start + 60 * (count - n), created=start + 60 * (count - n), num_comments=0,
                    score=n, ups=n, subreddit=sub, permalink=f"/r/{sub}/comments/{ident}/diary/")
        out.append(child)
    return out


class FakeReddit:
    """Search over fixed submissions per scope ("all" or a subreddit): newest first, `after` paging,
    `q` matched in titles; `faults[scope]` is a queue of replies given instead, one per request."""

    def __init__(self, posts: dict[str, list[dict]]) -> None:
        self.posts = posts
        self.faults: dict[str, list[Reply]] = {}
        self.first_page_headers: dict[str, str] = {}

    def __call__(self, request: Request) -> Reply:
        parts = request.path.removesuffix(".json").strip("/").split("/")
        scope = parts[1] if parts[0] == "r" else "all"
        if self.faults.get(scope):
            return self.faults[scope].pop(0)
        q = (request.param("q") or "").lower()
        items = sorted((c for c in self.posts.get(scope, []) if q in c["data"]["title"].lower()),
                       key=lambda c: c["data"]["created_utc"], reverse=True)
        names = [c["data"]["name"] for c in items]
        after = request.param("after")
        begin = names.index(after) + 1 if after in names else 0
        limit = int(request.param("limit") or 25)
        page = items[begin:begin + limit]
        more = begin + limit < len(items)
        body = {"kind": "Listing", "data": {"after": page[-1]["data"]["name"] if more else None, "dist": len(page),
                                            "facets": {}, "modhash": "", "geo_filter": "", "children": page,
                                            "before": None}}
        return Reply.json(body, headers=self.first_page_headers if not after else None)

    def add(self, scope: str, posts: list[dict]) -> None:
        self.posts.setdefault(scope, []).extend(posts)


def serve(api: FakeAPI, reddit: FakeReddit, *, public: bool = False, token: Reply | None = None) -> None:
    suffix = ".json" if public else ""
    api.route("/api/v1/access_token", lambda r: token or Reply.json(json.loads((FIXTURES / "token.json").read_text())),
              method="POST")
    api.route(f"/search{suffix}", reddit)
    for sub in ("TikTokRefugees", "China", "secretclub"):
        api.route(f"/r/{sub}/search{suffix}", reddit)
    api.route(f"/comments/1i2b3c4{suffix}", lambda r: Reply(200, COMMENTS, {"Content-Type": "application/json"}))


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, *, env: dict[str, str], **source: object):
    table = {"enabled": True, "base_url": api.url, "tags": ["RedNote"], "download_delay": 0, **source}
    lines = [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()]
    config = tmp_path / "murmur.toml"
    config.write_text('terms = ["TikTok refugee", "小红书", "RedNote", "Xiaohongshu"]\n[sources.reddit]\n'
                      + "\n".join(lines) + "\n")
    return run_murmur("--config", str(config), "crawl", "reddit", db_url=db_url, **env)


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:reddit' ORDER BY id DESC").fetchone()
    assert row is not None
    return row


@pytest.fixture
def reddit() -> FakeReddit:
    return FakeReddit({"all": [TEMPLATE, *submissions("RedNote", 120, prefix="zz")]})


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    with FakeAPI(robots=DENY_ALL) as server:
        yield server


def test_oauth_crawl_stores_posts_and_comments_then_fetches_only_new_posts(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI, reddit: FakeReddit
) -> None:
    reddit.first_page_headers = {"X-Ratelimit-Used": "100", "X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "1"}
    serve(api, reddit)
    result = crawl(tmp_path, db_url, api, env=CLIENT, comments=True)
    assert result.returncode == 0, result.stderr
    assert "reddit: ok" in result.stdout and "Traceback" not in result.stderr

    token_request, *rest = api.requests
    assert (token_request.method, token_request.path) == ("POST", "/api/v1/access_token")
    assert token_request.form() == {"grant_type": ["client_credentials"]}
    basic = base64.b64encode(b"murmur-test-client:s3cret-never-shown").decode()
    assert token_request.headers["authorization"] == f"Basic {basic}"
    searches = [r for r in rest if r.path == "/search"]
    documented = {"q": ["RedNote"], "sort": ["new"], "limit": ["100"], "type": ["link"], "raw_json": ["1"]}
    # Page 2 starts after the 100th submission: the fixture's post, then zz0120 down to zz0022.
    assert [r.query for r in searches] == [documented, {**documented, "after": ["t3_zz0022"]}]
    (comments,) = [r for r in rest if r.path.startswith("/comments/")]
    assert comments.path == "/comments/1i2b3c4"
    assert comments.query == {"sort": ["new"], "limit": ["100"], "raw_json": ["1"]}
    assert all(r.headers["authorization"] == f"bearer {TOKEN}" for r in rest)
    assert all(r.headers["user-agent"].startswith("murmur/") for r in api.requests)

    counts = dict(conn.execute("SELECT left(source_id, 3), count(*) FROM posts WHERE source = 'reddit' GROUP BY 1"))
    # 121 submissions and every live comment of the matching one: the thread's replies, kept with its terms
    # whether or not they name a term (`comments` is `replies` under its older name).
    assert counts == {"t3_": 121, "t1_": 4}
    text, url, created, likes, replies = conn.execute(
        "SELECT text, url, created_at, likes, replies FROM posts WHERE source_id = 't3_1i2b3c4'").fetchone()
    assert text.startswith("Day 3 as a TikTok refugee on RedNote 😂\n\nHonestly? The vibes on 小红书 are immaculate & ")
    assert url == "https://www.reddit.com/r/TikTokRefugees/comments/1i2b3c4/day_3_as_a_tiktok_refugee_on_rednote/"
    assert created == datetime(2025, 1, 16, 0, 50, tzinfo=UTC)
    assert (likes, replies) == (412, 57)
    assert conn.execute("SELECT text FROM posts WHERE source_id = 't1_m7hb001'").fetchone() == (
        "Same!! RedNote > Lemon8 imo. The tutorial helped & made my day",)

    status, stats, error = last_run(conn)
    assert status == "ok" and error is None
    assert stats["murmur/pages"] == 3 and stats["murmur/posts/new"] == 125 and stats["murmur/posts/replies"] == 4
    assert stats["murmur/reddit/comment_trees"] == 1 and stats["murmur/reddit/more_skipped"] == 2
    assert stats["murmur/reddit/ratelimit_waits"] == 1  # the first page said the window was spent
    assert "s3cret-never-shown" not in result.stdout + result.stderr and TOKEN not in result.stderr

    # A second crawl asks only for what is newer than the cursor, and stores nothing twice.
    newest = max(c["data"]["created_utc"] for c in reddit.posts["all"])
    assert conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'reddit'").fetchone() == (
        "all:RedNote", str(int(newest)))
    reddit.add("all", submissions("RedNote", 7, prefix="yy", start=newest + 30))
    reddit.first_page_headers = {}
    seen = len(api.requests)
    again = crawl(tmp_path, db_url, api, env=CLIENT, comments=True)
    assert again.returncode == 0, again.stderr
    asked = api.requests[seen + 1:]  # after the token
    assert [r.path for r in asked] == ["/search"] and "after" not in asked[0].query  # stopped at known posts
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (132, 132)
    assert last_run(conn)[1]["murmur/posts/new"] == 7
    assert conn.execute("SELECT cursor FROM crawl_state WHERE source = 'reddit'").fetchone() == (
        str(int(newest + 30 + 60 * 7)),)


def test_public_listings_a_malformed_page_and_a_private_subreddit_are_survived(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    reddit = FakeReddit({"China": submissions("RedNote", 5, prefix="cn", sub="China"),
                         "TikTokRefugees": submissions("RedNote", 3, prefix="tr")})
    reddit.faults["TikTokRefugees"] = [Reply(200, (FIXTURES / "truncated.json").read_bytes())]
    reddit.faults["secretclub"] = [Reply.json(json.loads((FIXTURES / "private.json").read_text()), status=403)]
    with FakeAPI() as api:
        serve(api, reddit, public=True)
        result = crawl(tmp_path, db_url, api, env={}, subreddits=["TikTokRefugees", "China", "secretclub"])
    assert result.returncode == 0, result.stderr
    assert not [r for r in api.requests if r.path.endswith("access_token")]
    searches = [r for r in api.requests if r.path.endswith("/search.json")]
    assert {r.path for r in searches} == {"/r/TikTokRefugees/search.json", "/r/China/search.json",
                                          "/r/secretclub/search.json"}
    assert all(r.query["restrict_sr"] == ["1"] and "authorization" not in r.headers for r in searches)
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (5,)
    status, stats, _ = last_run(conn)
    assert status == "ok"
    assert stats["murmur/errors/malformed"] == 1 and stats["murmur/errors/http_403"] == 1
    assert "malformed page" in result.stderr and "skipped r/secretclub (HTTP 403: private)" in result.stderr
    assert "Traceback" not in result.stderr
    # Only the chain that got through moved its cursor; the malformed one is asked again next run.
    assert [q for (q,) in conn.execute("SELECT query FROM crawl_state")] == ["r/China:RedNote"]


def test_refused_credentials_are_one_line_and_the_source_fails(tmp_path: Path, db_url: str, conn: psycopg.Connection,
                                                               api: FakeAPI, reddit: FakeReddit) -> None:
    serve(api, reddit, token=Reply.json(json.loads((FIXTURES / "unauthorized.json").read_text()), status=401))
    result = crawl(tmp_path, db_url, api, env=CLIENT)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "refused" in line]
    assert len(lines) == 1 and "MURMUR_REDDIT_CLIENT_ID" in lines[0] and "MURMUR_REDDIT_CLIENT_SECRET" in lines[0]
    assert [r.path for r in api.requests] == ["/api/v1/access_token"]  # nothing else was tried
    status, _, error = last_run(conn)
    assert status == "failed" and "refused the client credentials" in error
    assert "s3cret-never-shown" not in result.stdout + result.stderr + error


# --- without a crawl -------------------------------------------------------------------------


def test_half_of_the_credentials_is_one_line_and_no_request(caplog: pytest.LogCaptureFixture) -> None:
    half = config_credentials("reddit", {"MURMUR_REDDIT_CLIENT_ID": "only-the-id"})
    spider = RedditSpider(base_url="http://127.0.0.1:9", queries=["RedNote"], credentials=half)

    async def requests() -> list:
        return [r async for r in spider.start()]

    assert asyncio.run(requests()) == []
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.reddit"]
    assert "MURMUR_REDDIT_CLIENT_ID is set but MURMUR_REDDIT_CLIENT_SECRET is not" in line
    assert spider.failures == {"http://127.0.0.1:9": line.removeprefix("reddit: ")}


@pytest.mark.parametrize(("env", "delay"), [({}, 6.0), (CLIENT, 0.6)])
def test_without_credentials_requests_are_ten_times_slower(env: dict[str, str], delay: float) -> None:
    settings = ScrapySettings({"DOWNLOAD_DELAY": 0.6, "MURMUR_SETTINGS": load_settings(environ=env)},
                              priority="cmdline")
    RedditSpider.update_settings(settings)
    assert settings.getfloat("DOWNLOAD_DELAY") == pytest.approx(delay)


def test_public_requests_obey_robots_txt_and_a_refusal_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    public = RedditSpider(base_url="https://www.reddit.com", queries=["RedNote"])
    request = public._search("all", "RedNote", cursor=None, page=1)
    assert request.url.startswith("https://www.reddit.com/search.json?")
    assert "dont_obey_robotstxt" not in request.meta and "Authorization" not in request.headers
    public.crawler = Mock()
    for _ in range(2):  # every queued request is refused the same way: one line
        public.failed(Failure(IgnoreRequest("Forbidden by robots.txt"), exc_tb=None))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.reddit"]
    assert "https://www.reddit.com/robots.txt forbids" in line and "MURMUR_REDDIT_CLIENT_SECRET" in line
    assert list(public.failures) == ["https://www.reddit.com"]

    oauth = RedditSpider(base_url="https://www.reddit.com", queries=["RedNote"],
                         credentials=config_credentials("reddit", CLIENT))
    oauth.token = "t"
    request = oauth._search("r/China", "RedNote", cursor=None, page=1)
    assert request.url.startswith("https://oauth.reddit.com/r/China/search?")
    assert request.meta["dont_obey_robotstxt"] is True and request.headers["Authorization"] == b"bearer t"


def test_an_api_refusal_mid_run_is_one_line_and_stops_the_source(caplog: pytest.LogCaptureFixture) -> None:
    spider = RedditSpider(base_url="http://127.0.0.1:9", queries=["RedNote"],
                          credentials=config_credentials("reddit", CLIENT))
    spider.crawler = Mock()
    spider.token = "revoked"
    request = spider._search("all", "RedNote", cursor=None, page=1)
    body = (FIXTURES / "unauthorized.json").read_bytes()
    refused = TextResponse(request.url, status=401, body=body, request=request)

    async def run() -> list:
        return [item async for item in spider.parse_search(refused)]

    with pytest.raises(CloseSpider):  # queued requests are dropped, not sent to be refused too
        asyncio.run(run())
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.reddit"]
    assert line == ("reddit: Reddit refused the request (HTTP 401: Unauthorized); check MURMUR_REDDIT_CLIENT_ID "
                    "and MURMUR_REDDIT_CLIENT_SECRET")
    assert spider.failures == {"http://127.0.0.1:9": line.removeprefix("reddit: ")}


def test_replies_are_stored_with_their_parent_root_and_the_threads_terms(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI
) -> None:
    serve(api, FakeReddit({"all": [TEMPLATE]}))
    result = crawl(tmp_path, db_url, api, env=CLIENT, replies=True)
    assert result.returncode == 0, result.stderr
    assert [r.path for r in api.requests if r.path.startswith("/comments/")] == ["/comments/1i2b3c4"]
    rows = conn.execute("SELECT source_id, parent_source_id, root_source_id, terms FROM posts "
                        "WHERE source_id LIKE 't1_%' ORDER BY source_id").fetchall()
    (thread_terms,) = conn.execute("SELECT terms FROM posts WHERE source_id = 't3_1i2b3c4'").fetchone()
    assert [r[:3] for r in rows] == [
        ("t1_m7hb001", "t3_1i2b3c4", "t3_1i2b3c4"),
        ("t1_m7hb002", "t1_m7hb001", "t3_1i2b3c4"),
        ("t1_m7hb004", "t1_m7hb003", "t3_1i2b3c4"),  # its parent was removed: the reference stays
        ("t1_m7hb007", "t3_1i2b3c4", "t3_1i2b3c4"),
    ]
    # A reply naming no term carries the thread's; one naming a term carries its own and the thread's.
    assert all(set(thread_terms) <= set(terms) for *_, terms in rows)
    assert last_run(conn)[1]["murmur/posts/replies"] == 4
