"""The Instagram Graph API parsers on saved bodies (tests/fixtures/instagram, see its README)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.instagram import (
    GraphPage,
    graph_time,
    parse_graph_error,
    parse_hashtag_search,
    parse_recent_media,
)

FIXTURES = Path(__file__).parent / "fixtures" / "instagram"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def media() -> GraphPage:
    return parse_recent_media(fixture("recent_media.json"), tag="rednote")


def test_hashtag_search_gives_the_id_or_none() -> None:
    assert parse_hashtag_search(fixture("hashtag_search.json")) == "17843857450040591"
    assert parse_hashtag_search(fixture("hashtag_search_empty.json")) is None
    with pytest.raises(ParseError, match="'data' list"):
        parse_hashtag_search(b'{"id": "17873440459141021"}')
    with pytest.raises(ParseError, match="does not have permission"):
        parse_hashtag_search(fixture("error_permission.json"))


def test_recent_media_keeps_entries_with_an_id_and_a_time(media: GraphPage) -> None:
    assert [p.source_id for p in media.posts] == [
        "18045627382190516", "17932466101962845", "18101177665544332", "18066778899001122",
    ]
    assert (media.entries, media.skipped) == (5, 1)


def test_a_media_post(media: GraphPage) -> None:
    post = media.posts[0]
    assert post.source == "instagram"
    assert post.url == "https://www.instagram.com/p/DE3kP9aTq2L/"
    assert post.author is None  # recent_media cannot return the username
    assert post.text == "First week on #RedNote as a #tiktokrefugee 🍋 小红书 is wild\n\n#lemon8 #xiaohongshu"
    assert post.created_at == datetime(2025, 1, 15, 16, 20, 44, tzinfo=UTC)
    assert post.metrics == {"likes": 152, "replies": 12}
    assert post.tags == ["rednote"] and post.raw["media_type"] == "IMAGE"


def test_hidden_likes_are_left_out_and_a_media_without_caption_has_empty_text(media: GraphPage) -> None:
    assert media.posts[1].metrics == {"replies": 3}  # the owner hides like counts
    assert media.posts[2].text == "" and media.posts[2].url == "https://www.instagram.com/reel/DE1qA7vMk4T/"


def test_paging_takes_the_after_cursor_and_the_newest_time(media: GraphPage) -> None:
    assert media.after == "QVFIUnB0OXJ5dFNzN2tHMDRiM1ZAMZAzZAQ"
    assert media.newest == int(datetime(2025, 1, 15, 16, 20, 44, tzinfo=UTC).timestamp())
    last = parse_recent_media(fixture("recent_media_last.json"), tag="rednote")
    assert last.after is None and [p.source_id for p in last.posts] == ["18066778899000001"]


@pytest.mark.parametrize("body, message", [
    (b"", "empty body"),
    (b"<!DOCTYPE html><html></html>", "html"),
    (b'{"data": {}}', "'data' list"),
    (b"\xff\xfe", "not utf-8"),
])
def test_bodies_that_are_not_a_page_raise(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_recent_media(body, tag="rednote")


def test_a_truncated_page_raises() -> None:
    with pytest.raises(ParseError, match="truncated"):
        parse_recent_media(fixture("truncated.json"), tag="rednote")


@pytest.mark.parametrize("name, kind", [
    ("error_token.json", "token"),
    ("error_permission.json", "permission"),
    ("error_rate.json", "rate"),
    ("error_param.json", None),
])
def test_error_kinds(name: str, kind: str | None) -> None:
    assert parse_graph_error(fixture(name), 400).kind == kind


def test_graph_times() -> None:
    assert graph_time("2025-01-15T16:20:44+0000") == datetime(2025, 1, 15, 16, 20, 44, tzinfo=UTC)
    assert graph_time("2025-01-15T18:20:44+0200") == datetime(2025, 1, 15, 16, 20, 44, tzinfo=UTC)
    assert graph_time("2025-01-15T16:20:44Z") == datetime(2025, 1, 15, 16, 20, 44, tzinfo=UTC)
    assert graph_time("yesterday") is None and graph_time(1736958044) is None
