"""Date windows (`murmur crawl SOURCE --since D --until D`): real crawls, in a child process, of local servers
answering like each platform, into PostgreSQL. Each pins the parameters sent, that only posts inside the window
are stored, that the incremental cursor does not move, and that a run cut short is resumed from the window's key."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request
from tests.test_crawl_bluesky import CREDENTIALS
from tests.test_crawl_bluesky import load as load_bluesky
from tests.test_crawl_hackernews import SEARCH, make_hits
from tests.test_crawl_lemmy import FakeLemmy, make_posts
from tests.test_crawl_youtube import COMBINED, KEY, TERMS, FakeYouTube, rfc3339, videos

SINCE, UNTIL = datetime(2025, 1, 13, 22, tzinfo=UTC), datetime(2025, 1, 14, tzinfo=UTC)


def state(conn: psycopg.Connection, source: str) -> dict[str, str]:
    return dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = %s", (source,)).fetchall())


# --- Hacker News ---------------------------------------------------------------------------------------


class WindowedHN:
    """search_by_date honouring `created_at_i>=A,created_at_i<B` (https://hn.algolia.com/api: numericFilters
    are comma-separated and ANDed), newest first, pages of hitsPerPage."""

    def __init__(self, hits: list[dict]) -> None:
        self.hits = hits

    def __call__(self, request: Request) -> Reply:
        keep = lambda h: True  # noqa: E731
        for test in (request.param("numericFilters") or "").split(","):
            for op, check in ((">=", lambda a, b: a >= b), ("<", lambda a, b: a < b), (">", lambda a, b: a > b)):
                if test.startswith("created_at_i" + op):
                    bound, prev = int(test.removeprefix("created_at_i" + op)), keep
                    keep = lambda h, prev=prev, check=check, bound=bound: prev(h) and check(h["created_at_i"], bound)  # noqa: E731
                    break
        page, per = int(request.param("page") or 0), int(request.param("hitsPerPage") or 20)
        matching = sorted(filter(keep, self.hits), key=lambda h: h["created_at_i"], reverse=True)
        return Reply.json({"hits": matching[page * per:(page + 1) * per], "page": page, "nbHits": len(matching),
                           "nbPages": math.ceil(len(matching) / per), "hitsPerPage": per, "query": "", "params": ""})


def test_hackernews_window_asks_the_range_stores_only_it_keeps_the_cursor_and_resumes(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    hits = make_hits("RedNote", 400, first_id=42700000)  # a hit a minute from 20:27:40 on 13 January
    inside = [h for h in hits if SINCE.timestamp() <= h["created_at_i"] < UNTIL.timestamp()]
    assert len(inside) == 120
    config = tmp_path / "murmur.toml"
    config.write_text('terms = ["RedNote"]\n[sources.hackernews]\nbase_url = "{url}"\ndownload_delay = 0\n')
    conn.execute("INSERT INTO crawl_state (source, query, cursor) VALUES ('hackernews', 'RedNote', '1700000000')")
    conn.commit()
    window = ["--since", "2025-01-13T22:00:00", "--until", "2025-01-14"]
    key = "window:2025-01-13T22:00:00Z/2025-01-14:RedNote"
    with FakeAPI() as api:
        api.route(SEARCH, WindowedHN(hits))
        config.write_text(config.read_text().replace("{url}", api.url))
        first = run_murmur("--config", str(config), "crawl", "hackernews", *window, "--max-pages", "1", db_url=db_url)
        assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
        assert "not collected whole after 1 pages" in first.stderr
        stored = conn.execute("SELECT created_at FROM posts WHERE source = 'hackernews'").fetchall()
        assert len(stored) == 100 and all(SINCE <= at < UNTIL for (at,) in stored)
        oldest = min(at for (at,) in stored)
        assert state(conn, "hackernews") == {"RedNote": "1700000000", key: str(int(oldest.timestamp()) + 1)}

        second = run_murmur("--config", str(config), "crawl", "hackernews", *window, db_url=db_url)
        assert second.returncode == 0, second.stderr
        third = run_murmur("--config", str(config), "crawl", "hackernews", *window, db_url=db_url)
        assert third.returncode == 0 and "collected whole by an earlier run" in third.stderr, third.stderr
        asked = [(r.param("query"), r.param("page"), r.param("numericFilters"), r.param("tags")) for r in api.requests]
    start, end = int(SINCE.timestamp()), int(UNTIL.timestamp())
    assert asked == [  # the third run asks nothing: the window is done
        ("RedNote", "0", f"created_at_i>={start},created_at_i<{end}", "(story,comment)"),
        ("RedNote", "0", f"created_at_i>={start},created_at_i<{int(oldest.timestamp()) + 1}", "(story,comment)"),
    ]
    ids = {sid for (sid,) in conn.execute("SELECT source_id FROM posts WHERE source = 'hackernews'")}
    assert ids == {h["objectID"] for h in inside}  # the window, whole, and nothing outside it
    assert state(conn, "hackernews") == {"RedNote": "1700000000", key: "done"}  # the incremental cursor stayed



def test_a_source_without_windows_says_so_in_one_line_and_crawls_nothing(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    config = tmp_path / "murmur.toml"
    config.write_text('terms = ["RedNote"]\n[sources.reddit]\nenabled = true\ndownload_delay = 0\n')
    result = run_murmur("--config", str(config), "crawl", "reddit", "--since", "2025-01-13", db_url=db_url)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "reddit:" in line]
    assert len(lines) == 1 and "murmur import RS_YYYY-MM.zst" in lines[0] and "nothing crawled" in lines[0]
    assert conn.execute("SELECT count(*) FROM job_runs WHERE job = 'crawl:reddit'").fetchone() == (0,)


def test_until_without_since_is_a_one_line_error(tmp_path: Path, db_url: str) -> None:
    config = tmp_path / "murmur.toml"
    config.write_text('terms = ["RedNote"]\n')
    result = run_murmur("--config", str(config), "crawl", "hackernews", "--until", "2025-01-14", db_url=db_url)
    assert result.returncode != 0 and "--until needs --since" in result.stderr and "Traceback" not in result.stderr


# --- Mastodon ------------------------------------------------------------------------------------------

MASTODON = Path(__file__).parent / "fixtures" / "mastodon" / "tag_timeline.json"


def snowflake(moment: datetime, seq: int = 0) -> int:
    """A Mastodon id made at `moment` (lib/mastodon/snowflake.rb: milliseconds << 16, low bits a sequence)."""
    return (int(moment.timestamp() * 1000) << 16) + seq


def make_statuses(count: int, start: datetime) -> list[dict]:
    """`count` statuses naming RedNote, one a minute from `start`, newest first (the fixture's shape)."""
    template = next(s for s in json.loads(MASTODON.read_text()) if s["reblog"] is None and s["content"])
    statuses = []
    for n in range(count):
        made = datetime.fromtimestamp(start.timestamp() + 60 * n, UTC)
        sid = str(snowflake(made, n))
        uri = f"https://mstdn.murmur.invalid/users/maple_jo/statuses/{sid}"
        statuses.append({**template, "id": sid, "created_at": made.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "uri": uri,
                         "url": uri, "content": f"<p>Trying RedNote, day {n}</p>", "replies_count": 0})
    return sorted(statuses, key=lambda s: int(s["id"]), reverse=True)


class TagTimeline:
    """GET /api/v1/timelines/tag/:tag with max_id (statuses older than it, newest first) and limit
    (https://docs.joinmastodon.org/methods/timelines/#tag)."""

    def __init__(self, statuses: list[dict]) -> None:
        self.statuses = statuses

    def __call__(self, request: Request) -> Reply:
        below = int(request.param("max_id") or 1 << 80)
        older = [s for s in self.statuses if int(s["id"]) < below]
        return Reply.json(older[: int(request.param("limit") or 20)])


def test_mastodon_window_pages_back_from_until_to_since_keeps_the_cursor_and_resumes(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    statuses = make_statuses(360, datetime(2025, 1, 13, 20, tzinfo=UTC))  # 20:00 to 01:59
    inside = {s["uri"] for s in statuses if SINCE <= datetime.fromisoformat(s["created_at"]) < UNTIL}
    assert len(inside) == 120
    window = ["--since", "2025-01-13T22:00:00", "--until", "2025-01-14"]
    with FakeAPI() as api:
        api.route("/api/v1/timelines/tag/rednote", TagTimeline(statuses))
        config = tmp_path / "murmur.toml"
        config.write_text(f'terms = ["RedNote"]\n[sources.mastodon]\nenabled = true\ninstances = ["{api.url}"]\n'
                          'tags = ["rednote"]\ndownload_delay = 0\n')
        query, key = f"{api.url}#rednote", f"window:2025-01-13T22:00:00Z/2025-01-14:{api.url}#rednote"
        conn.execute("INSERT INTO crawl_state (source, query, cursor) VALUES ('mastodon', %s, '1')", (query,))
        conn.commit()
        first = run_murmur("--config", str(config), "crawl", "mastodon", *window, "--max-pages", "2", db_url=db_url)
        assert first.returncode == 0 and "not collected whole after 2 pages" in first.stderr, first.stderr
        assert conn.execute("SELECT count(*) FROM posts WHERE source = 'mastodon'").fetchone() == (80,)
        progress = state(conn, "mastodon")[key]
        assert state(conn, "mastodon") == {query: "1", key: progress}
        second = run_murmur("--config", str(config), "crawl", "mastodon", *window, db_url=db_url)
        assert second.returncode == 0, second.stderr
        asked = [(r.param("max_id"), r.param("limit")) for r in api.requests]
    assert asked[0] == (str(snowflake(UNTIL)), "40")  # from the id a status made at `until` would have
    assert asked[2] == (progress, "40") and len(asked) == 4  # resumed; the fourth page reaches past `since`
    stored = {sid for (sid,) in conn.execute("SELECT source_id FROM posts WHERE source = 'mastodon'")}
    assert stored == inside
    assert state(conn, "mastodon") == {query: "1", key: "done"}


# --- YouTube -------------------------------------------------------------------------------------------


class WindowedYouTube(FakeYouTube):
    """search.list honouring publishedBefore too (inclusive, as publishedAfter:
    https://developers.google.com/youtube/v3/docs/search/list#publishedBefore)."""

    def search(self, request: Request) -> Reply:
        before = request.param("publishedBefore")
        everything, self.results = self.results, [v for v in self.results
                                                  if before is None or v["snippet"]["publishedAt"] <= before]
        try:
            return super().search(request)
        finally:
            self.results = everything


def test_youtube_window_asks_published_after_and_before_stores_only_it_and_resumes(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    found = videos("RedNote", 300, prefix="rn", start=datetime(2025, 1, 13, 20, tzinfo=UTC))  # 20:01 to 01:00
    inside = {v["id"]["videoId"] for v in found if rfc3339(SINCE) <= v["snippet"]["publishedAt"] < rfc3339(UNTIL)}
    assert len(inside) == 120
    window = ["--since", "2025-01-13T22:00:00", "--until", "2025-01-14"]
    key = f"window:2025-01-13T22:00:00Z/2025-01-14:{COMBINED}"
    with FakeAPI() as api:
        fake = WindowedYouTube(found)
        api.route("/youtube/v3/search", fake.search)
        config = tmp_path / "murmur.toml"
        config.write_text(f"terms = {json.dumps(TERMS, ensure_ascii=False)}\n[sources.youtube]\nenabled = true\n"
                          f'base_url = "{api.url}/youtube/v3"\ncomments = false\ndownload_delay = 0\n')
        conn.execute("INSERT INTO crawl_state (source, query, cursor) VALUES ('youtube', %s, '2020-01-01T00:00:00Z')",
                     (COMBINED,))
        conn.commit()
        env = {"MURMUR_YOUTUBE_API_KEY": KEY}
        first = run_murmur("--config", str(config), "crawl", "youtube", *window, "--max-pages", "1", db_url=db_url,
                           **env)
        assert first.returncode == 0 and "not collected whole after 1 pages" in first.stderr, first.stderr
        progress = state(conn, "youtube")[key]
        assert progress == "2025-01-13T23:11:00Z"  # the oldest of the first 50, from 00:00 (inclusive) down
        second = run_murmur("--config", str(config), "crawl", "youtube", *window, db_url=db_url, **env)
        assert second.returncode == 0, second.stderr
        asked = [(r.param("publishedAfter"), r.param("publishedBefore"), r.param("pageToken"), r.param("order"))
                 for r in api.requests if r.path.endswith("/search")]
    assert asked == [("2025-01-13T22:00:00Z", "2025-01-14T00:00:00Z", None, "date"),
                     ("2025-01-13T22:00:00Z", progress, None, "date"),
                     ("2025-01-13T22:00:00Z", progress, "50", "date")]
    stored = {sid for (sid,) in conn.execute("SELECT source_id FROM posts WHERE source = 'youtube'")}
    assert stored == inside  # the video at `until` itself came back (inclusive) and was left out
    assert state(conn, "youtube") == {COMBINED: "2020-01-01T00:00:00Z", key: "done"}


# --- Lemmy ---------------------------------------------------------------------------------------------


def test_lemmy_window_reads_newest_first_pages_to_the_start_keeps_only_it_and_resumes_at_the_next_page(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    posts = make_posts("RedNote", 300, first_id=9000, start=datetime(2025, 1, 13, 20, tzinfo=UTC))  # 20:01 to 01:00
    inside = {v["post"]["ap_id"] for v in posts
              if SINCE <= datetime.fromisoformat(v["post"]["published"]) < UNTIL}
    assert len(inside) == 120
    window = ["--since", "2025-01-13T22:00:00", "--until", "2025-01-14"]
    fake = FakeLemmy()
    fake.views["Posts"]["RedNote"] = posts
    with FakeAPI() as api:
        api.route("/api/v3/search", fake)
        config = tmp_path / "murmur.toml"
        config.write_text(f'terms = ["RedNote"]\n[sources.lemmy]\ninstances = ["{api.url}"]\ndownload_delay = 0\n')
        incremental = f"{api.url}#posts#RedNote"
        key = f"window:2025-01-13T22:00:00Z/2025-01-14:{api.url}#posts#RedNote"
        conn.execute("INSERT INTO crawl_state (source, query, cursor) VALUES ('lemmy', %s, %s)",
                     (incremental, "2020-01-01T00:00:00+00:00"))
        comments_key = f"window:2025-01-13T22:00:00Z/2025-01-14:{api.url}#comments#RedNote"
        conn.commit()
        first = run_murmur("--config", str(config), "crawl", "lemmy", *window, "--max-pages", "2", db_url=db_url)
        assert first.returncode == 0 and "not collected whole after 2 pages" in first.stderr, first.stderr
        assert state(conn, "lemmy")[key] == "3"
        second = run_murmur("--config", str(config), "crawl", "lemmy", *window, db_url=db_url)
        assert second.returncode == 0 and "collected whole by an earlier run" in second.stderr, second.stderr
        asked = [(r.param("type_"), r.param("page"), r.param("sort")) for r in api.requests]
    # Posts pages 1-2, comments (none: done); then posts from page 3 to 4, which reaches before `since`.
    assert asked == [("Posts", "1", "New"), ("Posts", "2", "New"), ("Comments", "1", "New"),
                     ("Posts", "3", "New"), ("Posts", "4", "New")]
    stored = {sid for (sid,) in conn.execute("SELECT source_id FROM posts WHERE source = 'lemmy'")}
    assert stored == inside
    assert state(conn, "lemmy") == {incremental: "2020-01-01T00:00:00+00:00", key: "done",
                                    comments_key: "done"}


# --- Bluesky -------------------------------------------------------------------------------------------


def make_bluesky_posts(count: int, start: datetime) -> list[dict]:
    """`count` postViews naming RedNote, one a minute from `start` (the shape of search_posts.json's first;
    createdAt before indexedAt, so each one's sortAt is its createdAt)."""
    template = load_bluesky("search_posts.json")["posts"][0]
    views = []
    for n in range(count):
        made = datetime.fromtimestamp(start.timestamp() + 60 * n, UTC)
        rkey = f"3lfw{n:09d}"
        views.append({**template, "uri": template["uri"].rsplit("/", 1)[0] + "/" + rkey,
                      "record": {**template["record"], "text": f"Trying RedNote, minute {n}", "facets": [],
                                 "createdAt": made.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
                      "indexedAt": made.strftime("%Y-%m-%dT%H:%M:%S.500Z"), "replyCount": 0})
    return views


class WindowedSearchPosts:
    """app.bsky.feed.searchPosts with `since` (inclusive) and `until` (exclusive) compared with sortAt, newest first
    (sort=latest), and a cursor (here the offset) while more remain; at most 50 a page whatever `limit` asks, as
    a server may answer fewer (https://docs.bsky.app/docs/api/app-bsky-feed-search-posts)."""

    def __init__(self, views: list[dict]) -> None:
        self.views = sorted(views, key=lambda v: v["record"]["createdAt"], reverse=True)

    def __call__(self, request: Request) -> Reply:
        since, until = request.param("since"), request.param("until")
        matching = [v for v in self.views if (since is None or v["record"]["createdAt"] >= since)
                    and (until is None or v["record"]["createdAt"] < until)]
        offset, per = int(request.param("cursor") or 0), min(int(request.param("limit") or 25), 50)
        out: dict = {"posts": matching[offset:offset + per]}
        if offset + per < len(matching):
            out["cursor"] = str(offset + per)
        return Reply.json(out)


def test_bluesky_window_asks_since_and_until_stores_only_it_keeps_the_cursor_and_resumes(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    views = make_bluesky_posts(360, datetime(2025, 1, 13, 20, tzinfo=UTC))  # 20:00 to 01:59
    inside = {v["uri"] for v in views if SINCE <= datetime.fromisoformat(v["record"]["createdAt"]) < UNTIL}
    assert len(inside) == 120  # 22:00 (since, included) to 23:59; the one at 00:00 (until) is not
    window = ["--since", "2025-01-13T22:00:00", "--until", "2025-01-14"]
    key = "window:2025-01-13T22:00:00Z/2025-01-14:search:RedNote"
    conn.execute("INSERT INTO crawl_state (source, query, cursor) VALUES ('bluesky', 'search:RedNote', %s)",
                 ("2020-01-01T00:00:00.000Z",))
    conn.commit()
    with FakeAPI() as api:
        api.route("/xrpc/com.atproto.server.createSession", lambda r: Reply.json(load_bluesky("session.json")),
                  method="POST")
        api.route("/xrpc/app.bsky.feed.searchPosts", WindowedSearchPosts(views))
        config = tmp_path / "murmur.toml"
        config.write_text(f'terms = ["RedNote"]\n[sources.bluesky]\nbase_url = "{api.url}"\ninstances = ["{api.url}"]\n'
                          'tags = ["RedNote"]\naccounts = ["lin.murmur.test"]\nmax_pages = 3\ndownload_delay = 0\n')
        crawl = ["--config", str(config), "crawl", "bluesky", *window]
        first = run_murmur(*crawl, "--max-pages", "1", db_url=db_url, **CREDENTIALS)
        assert first.returncode == 0 and "not collected whole after 1 pages" in first.stderr, first.stderr
        assert len([line for line in first.stderr.splitlines() if "accounts and feeds take no dates" in line]) == 1
        progress = state(conn, "bluesky")[key]
        assert progress == "2025-01-13T23:10:00.001Z"  # the oldest of the first 50, from 23:59 down, plus 1 ms
        second = run_murmur(*crawl, db_url=db_url, **CREDENTIALS)
        assert second.returncode == 0, second.stderr
        seen = len(api.requests)
        third = run_murmur(*crawl, db_url=db_url, **CREDENTIALS)
        assert third.returncode == 0 and "collected whole by an earlier run" in third.stderr, third.stderr
        assert len(api.requests) == seen  # the third run asks nothing, not even a login
        asked = [(r.param("q"), r.param("sort"), r.param("since"), r.param("until"), r.param("cursor"))
                 for r in api.requests if r.path == "/xrpc/app.bsky.feed.searchPosts"]
        assert not [r for r in api.requests if r.path.endswith(("getAuthorFeed", "getFeed"))]
    since = "2025-01-13T22:00:00.000Z"
    assert asked == [("RedNote", "latest", since, "2025-01-14T00:00:00.000Z", None),
                     ("RedNote", "latest", since, progress, None),  # resumed from the stored progress
                     ("RedNote", "latest", since, progress, "50")]  # paged with the cursor to the chain's end
    stored = {sid for (sid,) in conn.execute("SELECT source_id FROM posts WHERE source = 'bluesky'")}
    assert stored == inside
    assert state(conn, "bluesky") == {"search:RedNote": "2020-01-01T00:00:00.000Z", key: "done"}


def test_bluesky_window_without_an_app_password_is_one_clear_line(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    config = tmp_path / "murmur.toml"
    config.write_text('terms = ["RedNote"]\n[sources.bluesky]\nbase_url = "http://127.0.0.1:9"\n'
                      'accounts = ["lin.murmur.test"]\ndownload_delay = 0\n')
    result = run_murmur("--config", str(config), "crawl", "bluesky", "--since", "2025-01-13", db_url=db_url)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "bluesky:" in line and "app password" in line]
    assert len(lines) == 1 and "MURMUR_BLUESKY_APP_PASSWORD" in lines[0], result.stderr
    assert result.returncode == 1  # nothing can be collected: the source failed, as without a window
    (status, error), = conn.execute("SELECT status, error FROM job_runs WHERE job = 'crawl:bluesky'").fetchall()
    assert status == "failed" and "app password" in error
    assert state(conn, "bluesky") == {}
