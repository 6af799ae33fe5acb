"""The fake Mastodon answers like Mastodon's tag timeline (paging, Link header), robots.txt, faults."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.mastodon import parse_timeline
from tests.fakemastodon import FakeMastodon, generate_statuses

TAG = "/api/v1/timelines/tag/"


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def ids_of(body: bytes) -> list[int]:
    return [int(status["id"]) for status in json.loads(body)]


@pytest.fixture
def server() -> Iterator[FakeMastodon]:
    # 100 statuses with ids 1000..1099 under #rednote, so expectations read as plain numbers
    statuses = generate_statuses(100, tag="RedNote", start_id=1000)
    with FakeMastodon({"rednote": statuses}) as fake:
        yield fake


def page(server: FakeMastodon, query: str = "", tag: str = "rednote") -> list[int]:
    status, _, body = fetch(f"{server.url}{TAG}{tag}{'?' if query else ''}{query}")
    assert status == 200
    return ids_of(body)


def test_default_page_is_the_newest_20_newest_first(server: FakeMastodon) -> None:
    assert page(server) == list(range(1099, 1079, -1))


def test_limit_is_capped_at_40(server: FakeMastodon) -> None:
    assert len(page(server, "limit=5")) == 5
    assert len(page(server, "limit=1000")) == 40
    assert page(server, "limit=-3") == [1099, 1098, 1097]  # Rails: params[:limit].to_i.abs


def test_max_id_returns_older_than_it(server: FakeMastodon) -> None:
    assert page(server, "max_id=1050&limit=3") == [1049, 1048, 1047]
    assert page(server, "max_id=1002") == [1001, 1000]


def test_since_id_returns_the_newest_ones_newer_than_it(server: FakeMastodon) -> None:
    assert page(server, "since_id=1090&limit=3") == [1099, 1098, 1097]
    assert page(server, "since_id=1097") == [1099, 1098]


def test_min_id_returns_the_ones_immediately_newer_still_newest_first(server: FakeMastodon) -> None:
    assert page(server, "min_id=1090&limit=3") == [1093, 1092, 1091]
    assert page(server, "min_id=1090&max_id=1093") == [1092, 1091]
    assert page(server, "min_id=1099") == []


def test_link_header_points_next_to_the_oldest_and_prev_to_the_newest(server: FakeMastodon) -> None:
    _, headers, body = fetch(f"{server.url}{TAG}RedNote?limit=3&since_id=5")
    assert ids_of(body) == [1099, 1098, 1097]
    next_part, prev_part = headers["Link"].split(", ")
    assert next_part.endswith('; rel="next"') and prev_part.endswith('; rel="prev"')
    next_url = urlsplit(next_part[1 : next_part.index(">")])
    prev_url = urlsplit(prev_part[1 : prev_part.index(">")])
    assert f"{next_url.scheme}://{next_url.netloc}" == server.url
    assert next_url.path == f"{TAG}RedNote"
    # only limit/local/only_media carry over, as Mastodon's TagController#pagination_params
    assert parse_qs(next_url.query) == {"limit": ["3"], "max_id": ["1097"]}
    assert parse_qs(prev_url.query) == {"limit": ["3"], "min_id": ["1099"]}


def test_following_next_links_walks_the_whole_timeline_once(server: FakeMastodon) -> None:
    seen: list[int] = []
    url: str | None = f"{server.url}{TAG}rednote?limit=40"
    while url:
        _, headers, body = fetch(url)
        seen += ids_of(body)
        link = headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    assert seen == list(range(1099, 999, -1))


def test_empty_page_has_no_link_header(server: FakeMastodon) -> None:
    _, headers, body = fetch(f"{server.url}{TAG}rednote?max_id=1000")
    assert body == b"[]" and "Link" not in headers


def test_tag_is_case_insensitive_and_url_decoded() -> None:
    chinese = generate_statuses(3, tag="小红书", start_id=1)
    with FakeMastodon({"小红书": chinese, "RedNote": generate_statuses(2, tag="rednote")}) as fake:
        assert page(fake, tag="%E5%B0%8F%E7%BA%A2%E4%B9%A6") == [3, 2, 1]
        assert len(page(fake, tag="REDNOTE")) == 2


def test_unknown_tag_is_an_empty_array_and_other_paths_404(server: FakeMastodon) -> None:
    status, headers, body = fetch(f"{server.url}{TAG}nosuchtag")
    assert (status, body) == (200, b"[]")
    assert headers["Content-Type"].startswith("application/json")
    for path in ("/api/v1/timelines/public", "/", f"{TAG}rednote/extra", TAG):
        status, _, body = fetch(f"{server.url}{path}")
        assert (status, json.loads(body)) == (404, {"error": "Record not found"})


def test_robots_txt_is_permissive_by_default_and_settable() -> None:
    with FakeMastodon({}) as fake:
        status, headers, body = fetch(f"{fake.url}/robots.txt")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert b"Disallow: /api" not in body and b"User-agent: *" in body
    with FakeMastodon({}, robots_txt="User-agent: *\nDisallow: /\n") as fake:
        assert fetch(f"{fake.url}/robots.txt")[2] == b"User-agent: *\nDisallow: /\n"


@pytest.mark.parametrize("kind", ["500", "429", "truncated", "garbage"])
def test_fault_is_served_the_given_times_then_normal_service_resumes(server: FakeMastodon, kind: str) -> None:
    server.add_fault(TAG + "rednote", kind, times=2, retry_after=7)
    for _ in range(2):
        status, headers, body = fetch(f"{server.url}{TAG}rednote?limit=2")
        if kind == "500":
            assert status == 500
        elif kind == "429":
            assert (status, headers["Retry-After"]) == (429, "7")
            assert json.loads(body) == {"error": "Too many requests"}
        else:
            assert status == 200
            with pytest.raises(ParseError):
                parse_timeline(body, instance="bench.murmur.invalid")
    assert fetch(f"{server.url}{TAG}rednote?limit=2")[0] == 200
    assert page(server, "limit=2") == [1099, 1098]


def test_fault_only_hits_matching_paths(server: FakeMastodon) -> None:
    server.add_fault(TAG + "lemon8", "500")
    assert fetch(f"{server.url}/robots.txt")[0] == 200
    assert page(server, "limit=1") == [1099]
    assert fetch(f"{server.url}{TAG}lemon8")[0] == 500
    assert fetch(f"{server.url}{TAG}lemon8")[0] == 200


def test_unknown_fault_kind_is_refused(server: FakeMastodon) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.add_fault("/", "timeout")


def test_requests_records_each_target_received(server: FakeMastodon) -> None:
    page(server, "limit=2")
    page(server, "min_id=1098")
    assert server.requests == [f"{TAG}rednote?limit=2", f"{TAG}rednote?min_id=1098"]


def test_add_statuses_appends_newer_posts_seen_by_min_id(server: FakeMastodon) -> None:
    newer = generate_statuses(3, tag="rednote", start_id=2000, start=datetime(2025, 2, 1, tzinfo=UTC))
    server.add_statuses("RedNote", newer)
    assert page(server, "min_id=1099") == [2002, 2001, 2000]
    assert page(server, "limit=4") == [2002, 2001, 2000, 1099]
    server.add_statuses("lemon8", newer[:1])  # a tag not served before
    assert page(server, tag="lemon8") == [2000]


def test_generate_statuses_shape_parses_into_posts() -> None:
    statuses = generate_statuses(50, tag="TikTokRefugee", start_id=500, seed=3)
    assert [s["id"] for s in statuses] == [str(i) for i in range(500, 550)]
    created = [s["created_at"] for s in statuses]
    assert created == sorted(created) and len(set(created)) == 50
    assert generate_statuses(50, tag="TikTokRefugee", start_id=500, seed=3) == statuses
    for status in statuses:
        assert 'class="mention hashtag" rel="tag">#<span>TikTokRefugee</span></a>' in status["content"]
        assert status["tags"] == [{"name": "tiktokrefugee", "url": "https://bench.murmur.invalid/tags/tiktokrefugee"}]
    parsed = parse_timeline(json.dumps(statuses[::-1]).encode(), instance="bench.murmur.invalid")
    assert len(parsed.posts) == 50 and parsed.skipped == 0
    assert (parsed.oldest_id, parsed.newest_id) == ("500", "549")
    assert all(p.author.endswith("@bench.murmur.invalid") and "#TikTokRefugee" in p.text for p in parsed.posts)
    assert {p.lang for p in parsed.posts} == {"en", "zh"}


def test_generate_statuses_is_fast_enough_for_a_benchmark() -> None:
    began = time.perf_counter()
    statuses = generate_statuses(20_000, tag="rednote")
    assert len(statuses) == 20_000
    assert time.perf_counter() - began < 2.0


def test_start_and_stop_are_safe_to_repeat() -> None:
    fake = FakeMastodon({})
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url
    fake.start()
    url = fake.url
    assert fake.start().url == url
    fake.stop()
    fake.stop()
