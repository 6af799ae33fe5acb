"""A real Scrapy crawl (`murmur crawl lemon8`, in a child process) of a local server that answers like
lemon8-app.com (pages from tests/fixtures/lemon8), into PostgreSQL: a configured page, links found in
other sources' posts, a removed post, a challenge page, a page without an article, and a second run."""

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
from tests.fakeapi import FakeAPI, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "lemon8"
LENA, GONE, MARA, WALLED = "7460296212479058611", "7459928662062679233", "7459069702963201911", "7460000000000000077"
PAGES = {
    f"/@lemon.lena/{LENA}": "article.html",
    f"/@gone.gabe/{GONE}": "article_unavailable.html",
    f"/@mara.m/{MARA}": "profile.html",  # a post URL answered with the author's profile: no article
    f"/@walled.will/{WALLED}": "challenge.html",
}
TERMS = ["TikTok refugee", "RedNote", "Lemon8"]


@pytest.fixture
def lemon8() -> Iterator[FakeAPI]:
    with FakeAPI() as api:
        for path, name in PAGES.items():
            api.route(path, lambda request, name=name: Reply.text(
                (FIXTURES / name).read_bytes(), content_type="text/html; charset=utf-8"))
        yield api


def link_posts(conn: psycopg.Connection) -> None:
    def post(source: str, source_id: str, text: str, raw: dict | None = None) -> Post:
        return Post(source=source, source_id=source_id, url=None, author="someone", text=text,
                    created_at=datetime(2025, 1, 16, tzinfo=UTC), raw=raw or {}, terms=["Lemon8"])

    with conn.transaction():
        upsert_posts(conn, [
            post("mastodon", "m1", f"Lemon8 gone? https://www.lemon8-app.com/@gone.gabe/{GONE}?region=us"),
            post("bluesky", "b1", "Lemon8 links", raw={"embed": {"external": {
                "uri": f"https://lemon8-app.com/@walled.will/{WALLED}"}}}),
            post("reddit", "t3_1", f"Lemon8 recipes https://www.lemon8-app.com/@mara.m/{MARA}"),
            # Not Lemon8 hosts, and a share link without an id: none is followed.
            post("hackernews", "h1", "Lemon8 https://www.lemon8-app.com.evil.example/@x/7460999999999999999 "
                                     "https://s.lemon8-app.com/al/GgTURfrjvc"),
        ])


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, *args: str) -> tuple[str, str]:
    config = tmp_path / "murmur.toml"
    config.write_text(
        f"terms = {json.dumps(TERMS)}\n[sources.lemon8]\n"
        f"urls = {json.dumps([f'https://www.lemon8-app.com/@lemon.lena/{LENA}?region=us'])}\n"
        f"base_url = {json.dumps(api.url)}\ndownload_delay = 0\n"
    )
    result = run_murmur("--config", str(config), "crawl", "lemon8", *args, db_url=db_url)
    return result.stdout, result.stderr + f"\n[exit {result.returncode}]"


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute("SELECT status, stats, error FROM job_runs WHERE job = 'crawl:lemon8' ORDER BY id DESC"
                       ).fetchone()
    assert row is not None
    return row


def test_pages_links_and_blocks_then_a_second_run_fetches_only_config_and_blocked_pages(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, lemon8: FakeAPI
) -> None:
    link_posts(conn)
    out, err = crawl(tmp_path, db_url, lemon8)
    assert "[exit 0]" in err and "Traceback" not in err, err
    assert "lemon8: ok" in out
    assert {(r.path, r.param("region")) for r in lemon8.requests} == {
        (f"/@lemon.lena/{LENA}", "us"), (f"/@gone.gabe/{GONE}", None), (f"/@mara.m/{MARA}", None),
        (f"/@walled.will/{WALLED}", None)}

    rows = conn.execute("SELECT source_id, url, author, text, created_at, likes, replies, reposts, tags, terms, "
                        "raw->>'date_from' FROM posts WHERE source = 'lemon8'").fetchall()
    assert rows == [(
        LENA, f"https://www.lemon8-app.com/@lemon.lena/{LENA}", "lemon.lena",
        "Why I picked Lemon8 over RedNote 🍋\nTikTok refugee here 👋 I tried RedNote first but Lemon8 feels like home: "
        "same vibe, my old mutuals + recipes & fit checks.\n\nPSA: use code LEMON%2B8 at checkout (50% off!)\n\n"
        "#lemon8diary #tiktokrefugee #rednote",
        datetime(2025, 1, 16, tzinfo=UTC), 1187, 96, None, ["lemon8diary", "tiktokrefugee", "rednote"],
        ["TikTok refugee", "RedNote", "Lemon8"], "publishTime")]

    status, stats, error = last_run(conn)
    assert status == "ok" and error is None
    assert stats["murmur/pages"] == 4 and stats["murmur/posts/new"] == 1
    assert stats["murmur/blocked"] == 1 and stats["murmur/blocked/challenge_page"] == 1
    assert stats["murmur/unavailable"] == 1 and stats["murmur/errors/malformed"] == 1
    assert stats["murmur/links/new"] == 3
    assert err.count("lemon8: 4 pages fetched, 1 blocked (challenge page), 1 malformed, 1 unavailable; 1 posts") == 1
    assert err.count("skipped a malformed page") == 1
    state = dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'lemon8'").fetchall())
    assert set(state) == {LENA, GONE} and state[GONE].startswith("unavailable: unavailable (deleted)")

    # Second run: the configured page (its counts move), the blocked and the malformed one again; not the
    # removed one. Nothing is stored twice.
    seen = len(lemon8.requests)
    out, err = crawl(tmp_path, db_url, lemon8)
    assert "[exit 0]" in err, err
    assert sorted(r.path for r in lemon8.requests[seen:]) == sorted(
        [f"/@lemon.lena/{LENA}", f"/@mara.m/{MARA}", f"/@walled.will/{WALLED}"])
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts WHERE source = 'lemon8'"
                        ).fetchone() == (1, 1)
    assert last_run(conn)[1]["murmur/posts/new"] == 0

    # max_pages bounds a run (configured pages first).
    seen = len(lemon8.requests)
    out, err = crawl(tmp_path, db_url, lemon8, "--max-pages", "1")
    assert "[exit 0]" in err, err
    assert [r.path for r in lemon8.requests[seen:]] == [f"/@lemon.lena/{LENA}"]
    assert "lemon8: 2 more pages wait for the next run (max_pages = 1)" in err  # the linked ones not yet read
