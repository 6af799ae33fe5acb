"""A real Scrapy crawl (`murmur crawl rednote`, in a child process) of a local server that serves RedNote
pages built from tests/fixtures/rednote, into PostgreSQL: configured pages, a profile's notes, walls,
and links found in other sources' posts (an RSSHub feed read by the rss source among them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from murmur.crawler.items import Post
from murmur.crawler.parsers.rss import parse_feed
from murmur.store.posts import upsert_posts
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures"
ZH_ID, EN_ID = "6784c1a2000000001c00a1b2", "6785d3e4000000001d01b2c3"
USER = "64b2f0c1000000001203d4e5"
LISTED, LISTED_CAPTCHA = "6783b0f1000000001b009f8e", "6782a9e0000000001a008e7d"  # on the profile page
LOGIN_ID, TRUNCATED_ID, DELETED_ID, CAPTCHA_ID = (
    "6780aaaa000000001c00aaaa", "6780bbbb000000001c00bbbb", "6780cccc000000001c00cccc", "6780dddd000000001c00dddd")
CAPTCHA_WALL = ("https://www.xiaohongshu.com/website-login/captcha?redirectPath=https%3A%2F%2Fwww.xiaohongshu.com"
                "%2Fexplore%2F{id}&verifyUuid=a5f32b62-453e-426b-98fe-2cfe0c16776d&verifyType=102&verifyBiz=461")


def fixture(name: str) -> str:
    return (FIXTURES / "rednote" / name).read_text()


def note_page(note_id: str, template: str = "note_en_video.html") -> str:
    """A saved note page, re-addressed to `note_id` (the id sits in the state's map key and fields)."""
    old = ZH_ID if template == "note_zh.html" else EN_ID
    return fixture(template).replace(old, note_id)


class FakeRedNote:
    """Pages by path; `redirects` maps a path to where it sends the visitor."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.redirects: dict[str, str] = {}

    def __call__(self, request: Request) -> Reply:
        if request.path in self.redirects:
            return Reply(302, b"", {"Location": self.redirects[request.path]})
        if request.path in self.pages:
            return Reply.text(self.pages[request.path], content_type="text/html; charset=utf-8")
        return Reply.text("<h1>not found</h1>", status=404, content_type="text/html")


def serve(site: FakeRedNote, robots: str = "User-agent: *\nDisallow:\n") -> FakeAPI:
    api = FakeAPI(robots=robots).start()
    paths = {*site.pages, *site.redirects}
    for path in paths:
        api.route(path, site)
    return api


def crawl(tmp_path: Path, db_url: str, **source: Any) -> tuple[str, str]:
    source.setdefault("pages", True)  # page crawling is opt-in (xiaohongshu.com's robots.txt disallows it)
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in source.items())
    config = tmp_path / "murmur.toml"
    config.write_text(
        'terms = ["TikTok refugee", "TikTok难民", "小红书", "RedNote", "Xiaohongshu"]\n'
        f"[sources.rednote]\n{table}download_delay = 0\n"
    )
    result = run_murmur("--config", str(config), "crawl", "rednote", db_url=db_url)
    return result.stdout, result.stderr + f"\n[exit {result.returncode}]"


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:rednote' ORDER BY id DESC"
    ).fetchone()
    assert row is not None
    return row


def crawl_state(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'rednote'").fetchall())


def test_configured_notes_and_a_profiles_notes_are_stored_walls_counted_then_not_stored_twice(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    site = FakeRedNote()
    site.pages = {
        f"/explore/{ZH_ID}": fixture("note_zh.html"),
        f"/user/profile/{USER}": fixture("profile.html"),
        f"/explore/{LISTED}": note_page(LISTED),
        f"/explore/{LOGIN_ID}": fixture("login_wall.html").replace(ZH_ID, LOGIN_ID),
        f"/discovery/item/{TRUNCATED_ID}": fixture("truncated.html").replace(ZH_ID, TRUNCATED_ID),
        f"/explore/{DELETED_ID}": fixture("deleted.html").replace(ZH_ID, DELETED_ID),
        f"/explore/{CAPTCHA_ID}": fixture("captcha.html"),
    }
    site.pages[f"/explore/{EN_ID}"] = fixture("note_en_video.html")
    site.redirects = {
        # A listed note that sends logged-out readers to the captcha: never followed there.
        f"/explore/{LISTED_CAPTCHA}": CAPTCHA_WALL.format(id=LISTED_CAPTCHA),
        # The old address of a note: followed to its page on the same site, the token kept.
        f"/discovery/item/{EN_ID}": f"/explore/{EN_ID}?xsec_token=EN%3D",
    }
    with serve(site) as api:
        urls = [f"{api.url}/explore/{ZH_ID}?xsec_token=ABk9%3D&xsec_source=pc_search", f"{api.url}/user/profile/{USER}",
                f"{api.url}/explore/{LOGIN_ID}", f"{api.url}/discovery/item/{TRUNCATED_ID}",
                f"{api.url}/explore/{DELETED_ID}", f"{api.url}/explore/{CAPTCHA_ID}", "https://example.com/not-a-note",
                f"{api.url}/discovery/item/{EN_ID}"]
        out, err = crawl(tmp_path, db_url, urls=urls, follow_links=False, max_pages=20)
        assert "[exit 0]" in err and "Traceback" not in err, err
        assert "rednote: ok, 4 pages, 3 new" in out
        summary = [line for line in err.splitlines() if "rednote: 10 pages fetched" in line]
        assert len(summary) == 1, err
        assert summary[0].endswith(
            "10 pages fetched, 3 notes parsed, 3 blocked (captcha: 2, login wall: 1), 1 deleted, 1 malformed")
        assert err.count("skipped a malformed page") == 1 and err.count("is not a note") == 1

        asked = {r.path: r for r in api.requests}
        assert set(asked) == {*site.pages, *site.redirects}  # each page once; nothing off the server
        assert asked[f"/explore/{ZH_ID}"].query == {"xsec_token": ["ABk9="], "xsec_source": ["pc_search"]}
        # The profile's notes are asked with the token their card links carry.
        assert asked[f"/explore/{LISTED}"].query == {"xsec_token": ["ABhref9f8eToken="], "xsec_source": ["pc_user"]}
        assert asked[f"/explore/{ZH_ID}"].headers["user-agent"].startswith("murmur/")
        assert asked[f"/explore/{EN_ID}"].query == {"xsec_token": ["EN="]}

        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT source_id, url, author, text, created_at, lang, tags, terms, likes, replies, reposts, raw "
            "FROM posts WHERE source = 'rednote'")}
        assert set(rows) == {ZH_ID, LISTED, EN_ID}
        url, author, text, created_at, lang, tags, terms, likes, replies, reposts, raw = rows[ZH_ID]
        assert url == f"https://www.xiaohongshu.com/explore/{ZH_ID}" and author == "俄亥俄小土豆"
        assert text.startswith("美国TikTok难民第一次来小红书\n\n大家好！") and text.endswith("#小红书 #中美网友对账")
        assert created_at == datetime(2025, 1, 14, 16, 0, tzinfo=UTC) and lang == "zh"
        assert tags == ["TikTok难民", "小红书", "中美网友对账"] and set(terms) == {"TikTok难民", "小红书"}
        assert (likes, replies, reposts) == (12000, 10, 1234)
        assert raw["user"]["userId"] == USER and raw["collected_count"] == 3456
        assert rows[LISTED][4] == "en" and rows[LISTED][1] == "maple_jo"

        status, stats, error = last_run(conn)
        assert (status, error) == ("ok", None)
        assert stats["murmur/blocked"] == 3 and stats["murmur/blocked/captcha"] == 2
        assert stats["murmur/blocked/login_wall"] == 1 and stats["murmur/errors/malformed"] == 1
        assert stats["murmur/posts/skipped_deleted"] == 1 and stats["murmur/posts/new"] == 3
        assert stats["murmur/pages/fetched"] == 10 and stats["murmur/errors/bad_url"] == 1
        assert crawl_state(conn) == {f"gone:{DELETED_ID}": "deleted"}

        # Again: configured pages are read again (their counts move), the profile's stored note is not.
        seen = len(api.requests)
        out, err = crawl(tmp_path, db_url, urls=urls, follow_links=False, max_pages=20)
        assert "[exit 0]" in err, err
        again = [r.path for r in api.requests[seen:]]
        assert f"/explore/{LISTED}" not in again and f"/explore/{ZH_ID}" in again
        assert len(again) == len(set(again)) == 9
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (3, 3)
    status, stats, _ = last_run(conn)
    assert status == "ok" and stats.get("murmur/posts/new", 0) == 0 and stats["murmur/blocked"] == 3


def test_without_the_opt_in_a_crawl_says_robots_txt_disallows_it_and_fetches_nothing(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    site = FakeRedNote()
    site.pages = {f"/explore/{ZH_ID}": fixture("note_zh.html")}
    with serve(site) as api:
        out, err = crawl(tmp_path, db_url, pages=False, urls=[f"{api.url}/explore/{ZH_ID}"], base_url=api.url)
        assert "[exit 0]" in err and "Traceback" not in err, err
        said = [line for line in err.splitlines() if "rednote: not crawled:" in line]
        assert len(said) == 1, err
        assert "robots.txt disallows all crawling" in said[0] and "murmur import" in said[0], said
        assert "sources.rednote.pages = true" in said[0]
        assert api.requests == []  # not even robots.txt
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM job_runs WHERE job = 'crawl:rednote'").fetchone() == (0,)


def test_a_run_where_every_page_is_blocked_fails_and_says_why(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    site = FakeRedNote()
    site.redirects = {f"/explore/{ZH_ID}": CAPTCHA_WALL.format(id=ZH_ID),
                      f"/explore/{EN_ID}": "https://www.xiaohongshu.com/login?redirectPath=%2Fexplore"}
    with serve(site) as api:
        urls = [f"{api.url}/explore/{ZH_ID}", f"{api.url}/explore/{EN_ID}"]
        out, err = crawl(tmp_path, db_url, urls=urls, follow_links=False, max_pages=1)
        assert len(api.requests) == 1  # max_pages bounds the run
    assert "[exit 1]" in err and "Traceback" not in err, err
    assert "rednote: 1 pages fetched, 0 notes parsed, 1 blocked (captcha: 1), 1 left for the next run" in err
    status, stats, error = last_run(conn)
    assert status == "failed" and error is not None and "1 blocked (captcha: 1)" in error
    assert stats["murmur/blocked"] == 1 and conn.execute("SELECT count(*) FROM posts").fetchone() == (0,)


def test_pages_robots_txt_forbids_are_not_fetched_and_said_once(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    site = FakeRedNote()
    site.pages = {f"/explore/{ZH_ID}": fixture("note_zh.html"), f"/explore/{EN_ID}": fixture("note_en_video.html")}
    with serve(site, robots="User-agent: *\nDisallow: /explore/\n") as api:
        out, err = crawl(tmp_path, db_url, urls=[f"{api.url}/explore/{ZH_ID}", f"{api.url}/explore/{EN_ID}"])
        assert api.requests == []
    assert "[exit 1]" in err and "Traceback" not in err, err
    assert err.count("2 forbidden by robots.txt (crawler.obey_robots)") == 1
    status, stats, _ = last_run(conn)
    assert status == "failed" and stats["murmur/robots_forbidden"] == 2


def other_post(source: str, source_id: str, text: str) -> Post:
    return Post(source=source, source_id=source_id, url=None, author=None, text=text,
                created_at=datetime(2025, 1, 15, tzinfo=UTC), terms=["RedNote"])


def test_links_in_other_sources_posts_are_followed_only_to_rednote_and_only_once(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    # The rss source's posts of an RSSHub Xiaohongshu feed (tests/fixtures/rss): three note links.
    feed = parse_feed((FIXTURES / "rss" / "rsshub_xiaohongshu.xml").read_bytes(),
                      feed_url="https://rsshub.murmur.test/xiaohongshu/user/5f3a9b2c000000000101d4e7/notes",
                      fetched_at=datetime(2025, 1, 15, tzinfo=UTC))
    rss_ids = ["678604a2000000001703a1b2", "6785f1c0000000001a03b2c3", "6785e0aa000000001b02c3d4"]
    linked, shared, elsewhere = "6786aaaa000000001a01a1a1", "6786bbbb000000001a01b2b2", "6786cccc000000001a01c3c3"
    with conn.transaction():
        upsert_posts(conn, [
            *feed.posts,
            other_post("mastodon", "m1", f"so fun https://www.xiaohongshu.com/explore/{linked}?xsec_token=TOK%3D"
                                         "&xsec_source=app_share&appuid=5f3a9b2c000000000101d4e7&apptime=1736900000"),
            other_post("bluesky", "b1", "my first RedNote 👉 http://xhslink.com/a/AbC123 ！"),
            other_post("hackernews", "h1", f"RedNote? https://xhslink.com/o/EvIl9 and "
                                           f"https://xiaohongshu.com.evil.example/explore/{elsewhere}"),
            other_post("rednote", rss_ids[2], "already stored"),
        ])
    site = FakeRedNote()
    site.pages = {f"/explore/{note}": note_page(note) for note in [*rss_ids[:2], linked, shared]}
    site.redirects = {
        # A share link leads to the note, with the sharer's tracking parameters.
        "/a/AbC123": f"https://www.xiaohongshu.com/discovery/item/{shared}?app_platform=android&app_version=8.69.1"
                     "&xsec_token=STOK%3D&xsec_source=app_share&appuid=62c58b90000000000303dc54&apptime=1736900000",
        "/o/EvIl9": f"https://evil.example/explore/{elsewhere}",  # not RedNote: never followed
    }
    with serve(site) as api:
        out, err = crawl(tmp_path, db_url, urls=[], follow_links=True, base_url=api.url, max_pages=10)
        assert "[exit 0]" in err and "Traceback" not in err, err
        asked = {r.path: r.query for r in api.requests}
        assert set(asked) == {f"/explore/{rss_ids[0]}", f"/explore/{rss_ids[1]}", f"/explore/{linked}",
                              f"/explore/{shared}", "/a/AbC123", "/o/EvIl9"}
        assert asked[f"/explore/{linked}"] == {"xsec_token": ["TOK="], "xsec_source": ["app_share"]}  # no appuid
        assert asked[f"/explore/{shared}"] == {"xsec_token": ["STOK="], "xsec_source": ["app_share"]}
        stored = {r[0] for r in conn.execute("SELECT source_id FROM posts WHERE source = 'rednote'")}
        assert stored == {*rss_ids, linked, shared}
        assert crawl_state(conn) == {
            "xhslink.com/a/AbC123": f"https://www.xiaohongshu.com/explore/{shared}?xsec_token=STOK%3D"
                                    "&xsec_source=app_share",
            "xhslink.com/o/EvIl9": "off-platform: evil.example",
        }
        status, stats, _ = last_run(conn)
        assert status == "ok" and stats["murmur/posts/new"] == 4 and stats["murmur/short_links/resolved"] == 1
        assert stats["murmur/links/off_platform"] == 1 and stats["murmur/blocked/off-platform_redirect"] == 1

        # Again: every linked note is stored and both share links are known, so nothing is fetched.
        seen = len(api.requests)
        out, err = crawl(tmp_path, db_url, urls=[], follow_links=True, base_url=api.url, max_pages=10)
        assert "[exit 0]" in err, err
        assert api.requests[seen:] == []
    assert "rednote: nothing to fetch" in err
    assert last_run(conn)[0] == "ok"
