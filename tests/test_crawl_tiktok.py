"""A real Scrapy crawl (`murmur crawl tiktok`, in a child process) of a local server that answers like
tiktok.com (pages from tests/fixtures/tiktok), into PostgreSQL: configured pages, links found in other
sources' posts, blocked pages, oEmbed, and a second run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from murmur.crawler.items import Post
from murmur.store.posts import upsert_posts
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "tiktok"
# The videos of the fixtures: a page in each state format, a removed one, one behind a login wall (its
# caption comes from oEmbed), one behind a WAF challenge, and a page cut off mid-state.
RITA, OLLIE, GONE, WENDY, WALTER, BROKEN = (
    "7459925161664684993", "7459631308591984866", "7460143371773246113", "7460315093155364112",
    "7460358141612639171", "7460400928076911828",
)
PAGES = {
    f"/@refugee.rita/video/{RITA}": "video_universal.html",
    f"/@old.timer.ollie/video/{OLLIE}": "video_sigi.html",
    f"/@gone.gary/video/{GONE}": "video_unavailable.html",
    f"/@waf.walter/video/{WALTER}": "challenge.html",
    f"/@broken.bea/video/{BROKEN}": "truncated.html",
    "/login": "login.html",
}
TERMS = ["TikTok refugee", "RedNote", "Xiaohongshu"]


def html(name: str) -> Reply:
    return Reply.text((FIXTURES / name).read_bytes(), content_type="text/html; charset=utf-8")


def oembed(request: Request) -> Reply:
    # TikTok embeds public videos only; for others it answers 400 with an empty body.
    if WENDY in (request.param("url") or ""):
        return Reply.json((FIXTURES / "oembed.json").read_bytes())
    return Reply(status=400)


@pytest.fixture
def tiktok() -> Iterator[FakeAPI]:
    with FakeAPI() as api:
        for path, name in PAGES.items():
            api.route(path, lambda request, name=name: html(name))
        # A login wall: the video page redirects to /login.
        api.route(f"/@walled.wendy/video/{WENDY}", lambda request: Reply(
            status=302, headers={"Location": f"/login?redirect_url=%2F%40walled.wendy%2Fvideo%2F{WENDY}"}))
        api.route("/oembed", oembed)
        yield api


def link_posts(conn: psycopg.Connection) -> None:
    """Posts of other sources linking to TikTok videos (in their text or their raw record)."""
    def post(source: str, source_id: str, text: str, raw: dict | None = None) -> Post:
        return Post(source=source, source_id=source_id, url=None, author="someone", text=text,
                    created_at=datetime(2025, 1, 16, tzinfo=UTC), raw=raw or {}, terms=["RedNote"])

    with conn.transaction():
        upsert_posts(conn, [
            post("mastodon", "m1", f"RedNote review: https://www.tiktok.com/@old.timer.ollie/video/{OLLIE} and "
                                   f"https://tiktok.com/@gone.gary/video/{GONE}."),
            post("bluesky", "b1", "RedNote, see link", raw={"facets": [
                {"uri": f"https://www.tiktok.com/@walled.wendy/video/{WENDY}?is_from_webapp=1&sender_device=pc"}]}),
            post("rss", "r1", "RedNote via RSSHub", raw={"link": f"https://m.tiktok.com/@waf.walter/video/{WALTER}"}),
            # Not TikTok, and a short link without an id: neither is followed.
            post("hackernews", "h1", "RedNote https://tiktok.com.evil.example/@x/video/7460999999999999999 "
                                     "https://vm.tiktok.com/ZMabc123/"),
        ])


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, *args: str, **source: object) -> tuple[str, str]:
    settings = {"urls": [f"https://www.tiktok.com/@refugee.rita/video/{RITA}",
                         f"https://www.tiktok.com/@broken.bea/video/{BROKEN}"],
                "base_url": api.url, "download_delay": 0, **source}
    config = tmp_path / "murmur.toml"
    config.write_text(f"terms = {json.dumps(TERMS)}\n[sources.tiktok]\n"
                      + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    result = run_murmur("--config", str(config), "crawl", "tiktok", *args, db_url=db_url)
    return result.stdout, result.stderr + f"\n[exit {result.returncode}]"


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute("SELECT status, stats, error FROM job_runs WHERE job = 'crawl:tiktok' ORDER BY id DESC"
                       ).fetchone()
    assert row is not None
    return row


def stored(conn: psycopg.Connection) -> dict[str, tuple]:
    rows = conn.execute("SELECT source_id, url, author, text, created_at, likes, replies, reposts, tags, "
                        "raw->>'date_from', raw->>'via' FROM posts WHERE source = 'tiktok'").fetchall()
    return {row[0]: row[1:] for row in rows}


def test_pages_links_blocks_and_oembed_then_a_second_run_fetches_only_config_and_blocked_pages(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, tiktok: FakeAPI
) -> None:
    link_posts(conn)
    out, err = crawl(tmp_path, db_url, tiktok)
    assert "[exit 0]" in err and "Traceback" not in err, err
    assert "tiktok: ok" in out

    asked = [(r.path, r.param("url")) for r in tiktok.requests]
    pages = {path for path, _ in asked if path != "/oembed"}
    assert pages == {f"/@refugee.rita/video/{RITA}", f"/@broken.bea/video/{BROKEN}",  # config URLs
                     f"/@old.timer.ollie/video/{OLLIE}", f"/@gone.gary/video/{GONE}",  # links
                     f"/@walled.wendy/video/{WENDY}", "/login", f"/@waf.walter/video/{WALTER}"}
    # oEmbed only for the videos whose page gave nothing, asked with their real TikTok URL.
    assert sorted(url for path, url in asked if path == "/oembed") == sorted(
        f"https://www.tiktok.com/@{who}/video/{vid}"
        for who, vid in (("gone.gary", GONE), ("walled.wendy", WENDY), ("waf.walter", WALTER)))

    posts = stored(conn)
    assert set(posts) == {RITA, OLLIE, WENDY}  # nothing from the removed, blocked or broken pages
    assert posts[RITA] == (
        f"https://www.tiktok.com/@refugee.rita/video/{RITA}", "refugee.rita",
        "Day 3 as a #TikTokRefugee on 小红书 (RedNote): the cat videos are elite 🐱 & the comments are kind <3 "
        "#rednote #xiaohongshu",
        datetime(2025, 1, 15, tzinfo=UTC), 125347, 2210, 4109, ["TikTokRefugee", "rednote", "xiaohongshu"],
        "createTime", None)
    assert posts[OLLIE][:2] == (f"https://www.tiktok.com/@old.timer.ollie/video/{OLLIE}", "old.timer.ollie")
    assert posts[OLLIE][4:7] == (3400, 212, 57)
    wendy = posts[WENDY]  # from oEmbed: caption and author, the time its id was minted, no counts
    assert wendy[1:3] == ("walled.wendy", "Moving my whole life to Xiaohongshu lol 📦 #tiktokrefugee #xiaohongshu")
    assert wendy[3] == datetime.fromtimestamp(int(WENDY) >> 32, UTC) and wendy[4:7] == (None, None, None)
    assert wendy[8:] == ("video_id", "oembed")

    status, stats, error = last_run(conn)
    assert status == "ok" and error is None
    assert stats["murmur/pages"] == 6  # the login wall is fetched once, at /login
    assert stats["murmur/blocked"] == 2
    assert stats["murmur/blocked/login_wall"] == 1 and stats["murmur/blocked/challenge_page"] == 1
    assert stats["murmur/unavailable"] == 1 and stats["murmur/errors/malformed"] == 1
    assert stats["murmur/oembed/posts"] == 1 and stats["murmur/posts/new"] == 3
    assert stats["murmur/links/new"] == 4
    assert err.count("tiktok: 6 pages fetched, 2 blocked (challenge page: 1, login wall: 1), 1 malformed, "
                     "1 unavailable; 2 posts from pages, 1 from oEmbed") == 1
    assert err.count("skipped a malformed page") == 1
    state = dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'tiktok'").fetchall())
    assert set(state) == {RITA, OLLIE, GONE, WENDY}  # blocked and broken pages are tried again
    assert state[GONE].startswith("unavailable: statusCode 10204")

    # Second run: the configured pages again (their counts move) and the blocked page; the stored,
    # removed and linked pages are not fetched again, and nothing is stored twice.
    seen = len(tiktok.requests)
    out, err = crawl(tmp_path, db_url, tiktok)
    assert "[exit 0]" in err, err
    assert sorted((r.path, r.param("url")) for r in tiktok.requests[seen:]) == sorted([
        (f"/@refugee.rita/video/{RITA}", None), (f"/@broken.bea/video/{BROKEN}", None),
        (f"/@waf.walter/video/{WALTER}", None), ("/oembed", f"https://www.tiktok.com/@waf.walter/video/{WALTER}"),
    ])
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts WHERE source = 'tiktok'"
                        ).fetchone() == (3, 3)
    stats = last_run(conn)[1]
    assert stats["murmur/posts/new"] == 0 and stats["murmur/blocked"] == 1

    # max_pages bounds a run (configured pages first).
    seen = len(tiktok.requests)
    out, err = crawl(tmp_path, db_url, tiktok, "--max-pages", "1")
    assert "[exit 0]" in err, err
    assert [r.path for r in tiktok.requests[seen:]] == [f"/@refugee.rita/video/{RITA}"]


def test_a_run_where_every_page_is_blocked_fails_with_one_line(tmp_path: Path, db_url: str,
                                                                conn: psycopg.Connection) -> None:
    with FakeAPI() as api:
        api.route(f"/@waf.walter/video/{WALTER}", lambda request: html("challenge.html"))
        api.route(f"/@refugee.rita/video/{RITA}", lambda request: Reply.text("Access Denied", status=403))
        api.route("/oembed", lambda request: Reply(status=400))
        out, err = crawl(tmp_path, db_url, api, urls=[f"https://www.tiktok.com/@waf.walter/video/{WALTER}",
                                                      f"https://www.tiktok.com/@refugee.rita/video/{RITA}"])
        asked = sorted(r.path for r in api.requests)
    assert "[exit 1]" in err and "Traceback" not in err, err
    assert asked == sorted([f"/@waf.walter/video/{WALTER}", f"/@refugee.rita/video/{RITA}", "/oembed", "/oembed"])
    lines = [line for line in err.splitlines() if "pages fetched" in line]
    assert len(lines) == 1, err
    assert "2 blocked (" in lines[0] and "challenge page: 1" in lines[0] and "HTTP 403: 1" in lines[0]
    status, stats, error = last_run(conn)
    assert status == "failed" and "2 blocked (" in (error or "")
    assert stats["murmur/blocked"] == 2 and stats["murmur/blocked/HTTP_403"] == 1
    assert stats["murmur/oembed/http_400"] == 2 and "murmur/posts/new" not in stats
    assert conn.execute("SELECT count(*) FROM posts WHERE source = 'tiktok'").fetchone() == (0,)
