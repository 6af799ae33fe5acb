"""YouTube Data API parsers on saved bodies (tests/fixtures/youtube, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.youtube import (
    CommentsPage,
    SearchPage,
    parse_comment_threads,
    parse_error,
    parse_search,
)
from murmur.crawler.text import normalise_text

FIXTURES = Path(__file__).parent / "fixtures" / "youtube"
VIDEO = "Qm3rT9xLk2A"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def search() -> SearchPage:
    return parse_search(fixture("search.json"))


@pytest.fixture(scope="module")
def threads() -> CommentsPage:
    return parse_comment_threads(fixture("comment_threads.json"))


def by_id(posts: list, source_id: str):
    (post,) = [p for p in posts if p.source_id == source_id]
    return post


def test_search_page_keeps_videos_in_result_order(search: SearchPage) -> None:
    assert search.video_ids == [VIDEO, "Zx8Yw7Vu6T5", "Ar4bIc5Dd6E", "Up9cOmInG00"]
    assert all(p.source == "youtube" for p in search.posts)
    assert search.next_page_token == "CAYQAA"


def test_channel_results_and_undated_videos_are_skipped_and_counted(search: SearchPage) -> None:
    assert search.skipped == 2
    assert "NoDate00001" not in search.video_ids


def test_newest_published_is_the_cursor_in_rfc3339(search: SearchPage) -> None:
    assert search.newest_published == "2025-01-16T20:00:00Z"  # the upcoming live stream


def test_video_text_is_title_and_description_with_entities_decoded(search: SearchPage) -> None:
    post = by_id(search.posts, VIDEO)
    assert post.text == (
        "I joined RedNote as a TikTok refugee & here's what happened 😂\n\n"
        'Day 3 on 小红书: the "cat tax", learning 你好, and why nobody is yelling at me ...'
    )
    assert post.author == "Maple & Jo"
    assert post.url == f"https://www.youtube.com/watch?v={VIDEO}"
    assert post.created_at == datetime(2025, 1, 16, 18, 42, 7, tzinfo=UTC)
    assert post.metrics == {} and post.lang is None
    assert post.raw["id"] == {"kind": "youtube#video", "videoId": VIDEO}


def test_chinese_and_arabic_videos(search: SearchPage) -> None:
    chinese = by_id(search.posts, "Zx8Yw7Vu6T5").text
    assert chinese == "美国TikTok难民涌入小红书，中国网友热情欢迎\n\n小红书一夜之间涌入了大量美国用户……"
    arabic = by_id(search.posts, "Ar4bIc5Dd6E").text
    assert arabic == "لاجئو تيك توك ينتقلون إلى ريد نوت\n\nشرح كامل لتطبيق RedNote الجديد"


def test_video_with_an_empty_description_is_its_title(search: SearchPage) -> None:
    assert by_id(search.posts, "Up9cOmInG00").text == "LIVE: Lemon8 vs RedNote — where are TikTok users going?"


def test_last_page_has_no_token_and_no_items() -> None:
    last = parse_search(fixture("search_last.json"))
    assert last.posts == [] and last.next_page_token is None and last.newest_published is None


def test_comment_threads_become_top_level_comment_posts(threads: CommentsPage) -> None:
    assert [p.source_id for p in threads.posts] == [
        "UgzR1x2y3z4A5b6C7d8E4AaABAg", "UgxH3b4r5e6w7Q8r9s0T4AaABAg", "UgyC1j2k3l4M5n6O7p8Q4AaABAg",
        "UgwA9r8a7b6C5d4E3f2G4AaABAg",
    ]
    assert threads.next_page_token == "QURTSl9pMlQ1ZmN4"


def test_hidden_and_undated_threads_are_skipped_and_counted(threads: CommentsPage) -> None:
    assert threads.skipped == 2


def test_comment_fields(threads: CommentsPage) -> None:
    post = by_id(threads.posts, "UgzR1x2y3z4A5b6C7d8E4AaABAg")
    assert post.text == "RedNote > Lemon8, no contest 😂 the cat tax is real"
    assert post.url == f"https://www.youtube.com/watch?v={VIDEO}&lc=UgzR1x2y3z4A5b6C7d8E4AaABAg"
    assert post.author == "@pixel_pusher"
    assert post.created_at == datetime(2025, 1, 16, 19, 10, tzinfo=UTC)
    assert post.metrics == {"likes": 120, "replies": 4}


def test_cjk_hebrew_and_arabic_comments(threads: CommentsPage) -> None:
    assert by_id(threads.posts, "UgyC1j2k3l4M5n6O7p8Q4AaABAg").text == "欢迎TikTok难民来小红书！我们很高兴见到你们"
    assert by_id(threads.posts, "UgxH3b4r5e6w7Q8r9s0T4AaABAg").text == "ברוכים הבאים לרדנוט! 🎉"
    arabic = by_id(threads.posts, "UgwA9r8a7b6C5d4E3f2G4AaABAg").text
    # textDisplay can end in a byte-order mark; the normalise pipeline takes it out.
    assert normalise_text(arabic) == "أنا أيضاً من لاجئي تيك توك 🙂"


def test_comment_thread_without_video_id_on_the_thread_uses_the_comments() -> None:
    body = json.loads(fixture("comment_threads.json"))
    del body["items"][0]["snippet"]["videoId"]
    body["items"] = body["items"][:1]
    (post,) = parse_comment_threads(json.dumps(body).encode()).posts
    assert post.url.startswith(f"https://www.youtube.com/watch?v={VIDEO}&lc=")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (None, "truncated"),
        (b"<html><body>502 Bad Gateway</body></html>", "html"),
        (b'{"kind": "youtube#commentThreadListResponse", "items": []}', "expected a youtube#searchListResponse"),
        (b'{"items": {}}', "items array"),
        (b"[]", "items array"),
    ],
)
def test_malformed_search_bodies_raise_parse_error(body: bytes | None, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_search(fixture("truncated.json") if body is None else body)


def test_an_error_body_with_status_200_raises_with_its_reason() -> None:
    with pytest.raises(ParseError, match="quotaExceeded"):
        parse_search(fixture("quota_exceeded.json"))


def test_error_bodies_give_reason_message_and_details() -> None:
    quota = parse_error(fixture("quota_exceeded.json"), 403)
    assert (quota.code, quota.reason) == (403, "quotaExceeded")
    assert quota.message == "The request cannot be completed because you have exceeded your quota."
    key = parse_error(fixture("key_invalid.json"), 400)
    assert (key.code, key.reason, key.details) == (400, "badRequest", ("API_KEY_INVALID",))
    disabled = parse_error(fixture("comments_disabled.json"), 403)
    assert disabled.reason == "commentsDisabled" and "<" not in disabled.message


def test_an_unreadable_error_body_still_gives_the_status() -> None:
    error = parse_error(b"<html>Service Unavailable</html>", 503)
    assert (error.code, error.reason, error.message) == (503, None, "HTTP 503")


def test_top_level_comments_answer_their_video_which_roots_the_thread() -> None:
    page = parse_comment_threads(fixture("comment_threads.json"))
    assert page.posts
    assert {(p.parent_source_id, p.root_source_id) for p in page.posts} == {("Qm3rT9xLk2A", "Qm3rT9xLk2A")}
    assert all(p.parent_source_id is None for p in parse_search(fixture("search.json")).posts)  # videos
