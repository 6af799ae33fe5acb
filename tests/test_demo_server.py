"""The demo's data and the small server that plays it to the real spider (the whole demo runs in
test_demo.py); these pin what the spider relies on: newest first, max_id back, min_id forward."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from murmur.crawler.parsers import id_key
from murmur.crawler.parsers.mastodon import parse_timeline
from murmur.demo_server import DemoServer, load_recorded
from tests.fakemastodon import generate_statuses

TAG = "/api/v1/timelines/tag/"


def get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ids(url: str) -> list[int]:
    status, body = get(url)
    assert status == 200 and isinstance(body, list)
    return [int(s["id"]) for s in body]


@pytest.fixture
def server() -> Iterator[DemoServer]:
    with DemoServer({"rednote": generate_statuses(100, tag="rednote", start_id=1000)}) as demo:
        yield demo


def test_load_recorded_ships_the_demo_tags() -> None:
    data = load_recorded()
    assert set(data) == {"tiktokrefugee", "rednote", "xiaohongshu", "lemon8", "小红书"}
    total = sum(len(statuses) for statuses in data.values())
    assert 100 <= total <= 140
    for tag, statuses in data.items():
        status_ids = [s["id"] for s in statuses]
        assert sorted(status_ids, key=id_key) == status_ids  # ids increase with created_at
        assert [s["created_at"] for s in statuses] == sorted(s["created_at"] for s in statuses)
        parsed = parse_timeline(json.dumps(statuses).encode(), instance="demo.murmur.invalid")
        assert parsed.skipped == 0 and len(parsed.posts) == len(statuses)
        assert all(tag in post.tags for post in parsed.posts)
        assert all("2025-01-12" <= post.created_at.date().isoformat() <= "2025-01-26" for post in parsed.posts)


def test_pages_are_newest_first_and_max_id_walks_back_through_all(server: DemoServer) -> None:
    assert ids(f"{server.url}{TAG}rednote") == list(range(1099, 1079, -1))
    assert len(ids(f"{server.url}{TAG}rednote?limit=1000")) == 40
    seen: list[int] = []
    query = "limit=40"
    while page := ids(f"{server.url}{TAG}rednote?{query}"):
        seen += page
        query = f"limit=40&max_id={page[-1]}"
    assert seen == list(range(1099, 999, -1))


def test_min_id_gives_the_statuses_just_newer_newest_first(server: DemoServer) -> None:
    assert ids(f"{server.url}{TAG}rednote?min_id=1090&limit=3") == [1093, 1092, 1091]
    assert ids(f"{server.url}{TAG}rednote?min_id=1099") == []


def test_unknown_tags_are_empty_and_other_paths_404(server: DemoServer) -> None:
    assert ids(f"{server.url}{TAG}nosuchtag") == []
    assert get(f"{server.url}/api/v1/timelines/public") == (404, {"error": "Record not found"})
    assert get(f"{server.url}{TAG}rednote?limit=abc")[0] == 400


def test_the_recorded_chinese_tag_is_served_by_its_quoted_name() -> None:
    data = load_recorded()
    with DemoServer(data) as demo:
        assert len(ids(f"{demo.url}{TAG}%E5%B0%8F%E7%BA%A2%E4%B9%A6?limit=40")) == len(data["小红书"])
