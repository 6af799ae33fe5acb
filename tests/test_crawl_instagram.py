"""A real Scrapy crawl (`murmur crawl instagram`, in a child process) of a local server that answers like the
Instagram Graph API's hashtag search (media built from tests/fixtures/instagram), into PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import Mock

import psycopg
import pytest
from scrapy.http import TextResponse

from murmur.config import load_settings
from murmur.crawler.spiders.instagram import InstagramSpider, default_tags
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "instagram"
TEMPLATE = json.loads((FIXTURES / "recent_media.json").read_text())["data"][0]
TOKEN = "EAABtest-token-never-shown"
USER = "17841405309211844"
SEARCH = "/v24.0/ig_hashtag_search"
IDS = {"rednote": "17843857450040591", "lemon8": "17841562906103814", "小红书": "17841563587120501"}
START = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
TERMS = ["RedNote", "Lemon8", "小红书", "TikTok refugee"]
TAGS = ["RedNote", "#Lemon8", "xiaohongshu", "tiktok refugee", "小红书"]


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S+0000")


def media(count: int, *, first_id: int, start: datetime = START) -> list[dict]:
    """`count` recent_media entries about RedNote, newest first, in the fixture's shape."""
    out = []
    for n in range(count):
        entry = copy.deepcopy(TEMPLATE)
        ident = first_id + count - n
        entry.update(id=str(ident), caption=f"#RedNote day {ident} 🍋", like_count=n, comments_count=2 * n,
                     timestamp=stamp(start + timedelta(minutes=count - n)),
                     permalink=f"https://www.instagram.com/p/R{ident}/")
        out.append(entry)
    return out


class FakeInstagram:
    """ig_hashtag_search over IDS, and recent_media over fixed entries per hashtag id (pages of `limit`,
    `after` an opaque offset); `faults[id]` queues replies given instead."""

    def __init__(self, found: dict[str, list[dict]]) -> None:
        self.found = found
        self.faults: dict[str, list[Reply]] = {}

    def search(self, request: Request) -> Reply:
        ident = IDS.get(request.param("q") or "")
        return Reply.json({"data": [{"id": ident}] if ident else []})

    def recent_media(self, hashtag_id: str) -> Callable[[Request], Reply]:
        def answer(request: Request) -> Reply:
            queued = self.faults.get(hashtag_id)
            if queued:
                return queued.pop(0)
            offset = int((request.param("after") or "off-0").removeprefix("off-"))
            per = int(request.param("limit") or 25)
            items = self.found.get(hashtag_id, [])
            body: dict = {"data": items[offset:offset + per], "paging": {"cursors": {"after": f"off-{offset + per}"}}}
            if offset + per < len(items):
                body["paging"]["next"] = f"https://graph.facebook.com/v24.0/{hashtag_id}/recent_media?access_token=X"
            return Reply.json(body)
        return answer


@pytest.fixture
def instagram() -> Iterator[tuple[FakeAPI, FakeInstagram]]:
    fake = FakeInstagram({
        IDS["rednote"]: media(120, first_id=18040000000000000),
        IDS["lemon8"]: json.loads((FIXTURES / "recent_media_last.json").read_text())["data"],
    })
    fake.faults[IDS["小红书"]] = [Reply.json((FIXTURES / "truncated.json").read_bytes())]
    with FakeAPI(robots="User-agent: *\nDisallow: /\n") as api:
        api.route(SEARCH, fake.search)
        for ident in IDS.values():
            api.route(f"/v24.0/{ident}/recent_media", fake.recent_media(ident))
        yield api, fake


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, *, token: str | None = TOKEN, user: str | None = USER,
          **source: object):
    table = {"enabled": True, "base_url": api.url, "download_delay": 0, **source}
    config = tmp_path / "murmur.toml"
    config.write_text(f"terms = {json.dumps(TERMS, ensure_ascii=False)}\n[sources.instagram]\n"
                      + "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()) + "\n")
    env = {**({"MURMUR_INSTAGRAM_ACCESS_TOKEN": token} if token else {}),
           **({"MURMUR_INSTAGRAM_USER_ID": user} if user else {})}
    return run_murmur("--config", str(config), "crawl", "instagram", db_url=db_url, **env)


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:instagram' ORDER BY id DESC").fetchone()
    assert row is not None
    return row


def state(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'instagram'").fetchall())


def test_crawl_looks_hashtags_up_once_stores_media_then_stops_at_what_it_has_seen(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, instagram: tuple[FakeAPI, FakeInstagram]
) -> None:
    api, fake = instagram
    result = crawl(tmp_path, db_url, api, tags=TAGS, max_pages=3)
    assert result.returncode == 0, result.stderr
    assert "instagram: ok" in result.stdout and "Traceback" not in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert "'tiktok refugee' is not a hashtag" in result.stderr
    assert "Instagram knows no hashtag #xiaohongshu" in result.stderr
    assert "malformed recent-media page for #小红书" in result.stderr

    asked = [(r.path, r.param("q"), r.param("after")) for r in api.requests]
    rednote = f"/v24.0/{IDS['rednote']}/recent_media"
    assert asked == [
        (SEARCH, "rednote", None), (rednote, None, None), (rednote, None, "off-50"), (rednote, None, "off-100"),
        (SEARCH, "lemon8", None), (f"/v24.0/{IDS['lemon8']}/recent_media", None, None),
        (SEARCH, "xiaohongshu", None),
        (SEARCH, "小红书", None), (f"/v24.0/{IDS['小红书']}/recent_media", None, None),
    ]
    # Documented parameters; the token in a header only; robots.txt (Disallow: /) not consulted for the API.
    assert all(r.param("user_id") == USER and "access_token" not in r.query
               and r.headers["authorization"] == f"Bearer {TOKEN}" for r in api.requests)
    first_media = api.requests[1]
    assert (first_media.param("fields"), first_media.param("limit")) == (
        "id,caption,media_type,permalink,timestamp,like_count,comments_count", "50")

    assert conn.execute("SELECT count(*) FROM posts WHERE source = 'instagram'").fetchone() == (121,)
    row = conn.execute("SELECT url, author, text, created_at, likes, replies, tags FROM posts "
                       "WHERE source_id = '18040000000000120'").fetchone()
    assert row == ("https://www.instagram.com/p/R18040000000000120/", None, "#RedNote day 18040000000000120 🍋",
                   START + timedelta(minutes=120), 0, 0, ["rednote"])

    status, stats, error = last_run(conn)
    assert status == "ok" and error is None
    assert stats["murmur/pages"] == 4 and stats["murmur/posts/new"] == 121
    assert stats["murmur/instagram/hashtag_lookups"] == 4 and stats["murmur/instagram/unknown_hashtags"] == 1
    assert stats["murmur/errors/malformed"] == 1
    newest = str(int((START + timedelta(minutes=120)).timestamp()))
    lemon8 = str(int(datetime(2025, 1, 14, 23, 59, 59, tzinfo=UTC).timestamp()))
    assert state(conn) == {
        "hashtag-id:rednote": IDS["rednote"], "hashtag-id:lemon8": IDS["lemon8"], "hashtag-id:小红书": IDS["小红书"],
        "#rednote": newest, "#lemon8": lemon8,
    }

    # Second run: no lookup for the hashtags whose id is kept; paging stops at the first page with nothing new.
    fake.found[IDS["rednote"]] = media(3, first_id=18050000000000000, start=START + timedelta(hours=3)) + \
        fake.found[IDS["rednote"]]
    seen = len(api.requests)
    again = crawl(tmp_path, db_url, api, tags=TAGS, max_pages=3)
    assert again.returncode == 0, again.stderr
    assert [(r.path, r.param("q"), r.param("after")) for r in api.requests[seen:]] == [
        (rednote, None, None), (rednote, None, "off-50"),
        (f"/v24.0/{IDS['lemon8']}/recent_media", None, None),
        (SEARCH, "xiaohongshu", None),  # unknown hashtags are not kept
        (f"/v24.0/{IDS['小红书']}/recent_media", None, None),
    ]
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (124, 124)
    assert last_run(conn)[1]["murmur/posts/new"] == 3
    assert state(conn)["#rednote"] == str(int((START + timedelta(hours=3, minutes=3)).timestamp()))


def test_a_missing_feature_is_one_line_and_the_source_fails(tmp_path: Path, db_url: str,
                                                             conn: psycopg.Connection) -> None:
    refusal = json.loads((FIXTURES / "error_permission.json").read_text())
    with FakeAPI() as api:
        api.route(SEARCH, lambda r: Reply.json(refusal, status=400))
        result = crawl(tmp_path, db_url, api, tags=["rednote", "lemon8"])
        asked = api.requests
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "refused" in line]
    assert len(lines) == 1 and "(#10) Application does not have permission" in lines[0]
    assert "Instagram Public Content Access" in lines[0]
    assert len(asked) == 1  # stopped at once: nothing asked for the second hashtag
    status, _, error = last_run(conn)
    assert status == "failed" and "code 10" in error and "instagram: failed" in result.stdout


# --- without a crawl -------------------------------------------------------------------------------


@pytest.mark.parametrize("token, user, missing", [
    (None, USER, "MURMUR_INSTAGRAM_ACCESS_TOKEN is not set"),
    (TOKEN, None, "MURMUR_INSTAGRAM_USER_ID is not set"),
    (None, None, "MURMUR_INSTAGRAM_ACCESS_TOKEN and MURMUR_INSTAGRAM_USER_ID are not set"),
])
def test_missing_credentials_are_one_line_and_no_request(
    caplog: pytest.LogCaptureFixture, token: str | None, user: str | None, missing: str,
) -> None:
    env = {var: value for var, value in (("MURMUR_INSTAGRAM_ACCESS_TOKEN", token), ("MURMUR_INSTAGRAM_USER_ID", user))
           if value}
    credentials = load_settings(environ=env).sources["instagram"].credentials  # the config layer reads them
    spider = InstagramSpider(base_url="http://127.0.0.1:9", tags=["rednote"], credentials=credentials)

    async def requests() -> list:
        return [r async for r in spider.start()]

    assert asyncio.run(requests()) == []
    (line,) = [r.getMessage() for r in caplog.records if r.name == "murmur.crawler.spiders.instagram"]
    assert line.startswith(f"instagram: {missing}; set MURMUR_INSTAGRAM_ACCESS_TOKEN")
    assert list(spider.failures) == ["http://127.0.0.1:9"]


def test_one_bad_hashtag_is_said_once_and_the_next_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    spider = InstagramSpider(base_url="http://127.0.0.1:9", tags=["rednote", "lemon8"],
                             credentials={"access_token": TOKEN, "user_id": USER})
    spider.crawler = Mock()
    (request,) = list(spider._next_tag(0))
    assert request.headers["Authorization"] == f"Bearer {TOKEN}".encode() and TOKEN not in request.url
    bad = TextResponse(request.url, status=400, body=(FIXTURES / "error_param.json").read_bytes(), request=request)
    (following,) = list(spider.parse_hashtag(bad))
    assert following.meta["index"] == 1 and "q=lemon8" in following.url and not spider.stopped
    assert any("the lookup of #rednote failed ((#100) Invalid parameter" in r.getMessage() for r in caplog.records)


def test_tags_default_to_the_terms_as_hashtags_and_are_capped_at_the_weekly_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert default_tags(["TikTok refugee", "TikTok难民", "小红书", "RedNote", "rednote"]) == [
        "tiktokrefugee", "tiktok难民", "小红书", "rednote"]
    spider = InstagramSpider(tags=[f"tag{n}" for n in range(35)])
    assert len(spider.tags) == 30 and spider.tags[-1] == "tag29"
    assert any("only the first 30" in r.getMessage() for r in caplog.records)
