"""Reddit parsers on saved API bodies (tests/fixtures/reddit, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.reddit import (
    CommentsPage,
    ListingPage,
    parse_comments,
    parse_error,
    parse_listing,
    parse_token,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reddit"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def page() -> ListingPage:
    return parse_listing(fixture("search.json"))


@pytest.fixture(scope="module")
def tree() -> CommentsPage:
    return parse_comments(fixture("comments.json"))


def by_id(posts: list, source_id: str):
    (post,) = [p for p in posts if p.source_id == source_id]
    return post


def test_listing_keeps_submissions_in_listing_order_with_fullnames(page: ListingPage) -> None:
    assert [p.source_id for p in page.posts] == ["t3_1i2b3c4", "t3_1i2a9zz", "t3_1i29qqq", "t3_1i26ar1", "t3_1i24old"]
    assert all(p.source == "reddit" for p in page.posts)
    assert page.after == "t3_1i24old"


def test_deleted_and_removed_submissions_are_left_out_and_counted(page: ListingPage) -> None:
    assert page.removed == 2  # "[deleted]" selftext, and removed_by_category = "moderator"
    assert not {"t3_1i28aaa", "t3_1i27rmv"} & {p.source_id for p in page.posts}


def test_a_submission_without_a_permalink_is_skipped_and_counted(page: ListingPage) -> None:
    assert page.skipped == 1
    assert "t3_1i25zzz" not in {p.source_id for p in page.posts}


def test_paging_bounds_count_every_dated_entry(page: ListingPage) -> None:
    # The deleted and malformed entries still bound the page, so they never stall the cursor.
    assert page.newest_utc == 1736985600.0 + 3000
    assert page.oldest_utc == 1736985600.0


def test_self_post_text_is_title_then_body_rendered_as_plain_text(page: ListingPage) -> None:
    post = by_id(page.posts, "t3_1i2b3c4")
    assert post.text == (
        "Day 3 as a TikTok refugee on RedNote 😂\n\n"
        "Honestly? The vibes on 小红书 are immaculate & nobody's yelling at me <3\n"
        "Learned 你好 today 🙏"
    )
    assert post.url == "https://www.reddit.com/r/TikTokRefugees/comments/1i2b3c4/day_3_as_a_tiktok_refugee_on_rednote/"
    assert post.author == "maple_jo"
    assert post.created_at == datetime(2025, 1, 16, 0, 50, tzinfo=UTC)
    assert post.metrics == {"score": 412, "likes": 412, "replies": 57}
    assert post.lang is None and post.tags == []
    assert post.raw["name"] == "t3_1i2b3c4" and post.raw["subreddit"] == "TikTokRefugees"


def test_link_post_text_is_its_title(page: ListingPage) -> None:
    post = by_id(page.posts, "t3_1i2a9zz")
    assert post.text == "RedNote tops the App Store as TikTok ban nears"
    assert post.url.startswith("https://www.reddit.com/r/technology/")  # the discussion, not the link
    assert post.metrics["replies"] == 0


def test_chinese_submission(page: ListingPage) -> None:
    post = by_id(page.posts, "t3_1i29qqq")
    assert post.text == "小红书上的美国人太可爱了\n\n今天有一个TikTok难民问我怎么做饺子，哈哈。欢迎大家！"
    assert post.url == "https://www.reddit.com/r/China/comments/1i29qqq/小红书上的美国人太可爱了/"


def test_arabic_submission_by_a_deleted_account_keeps_its_text_without_an_author(page: ListingPage) -> None:
    post = by_id(page.posts, "t3_1i26ar1")
    assert post.author is None
    assert post.text == "لاجئو تيك توك يكتشفون RedNote\n\nانتقلت إلى ريد نوت اليوم والتجربة رائعة حقاً!"


def test_bodies_escaped_without_raw_json_are_decoded_once() -> None:
    legacy = parse_listing(fixture("search_escaped.json"))
    rendered, markdown_only = legacy.posts
    assert rendered.text == (
        "Day 3 as a TikTok refugee on RedNote 😂 & counting\n\n"
        "Honestly? The vibes on 小红书 are immaculate & nobody's yelling at me <3"
    )
    assert markdown_only.text == "Q&A: moving from TikTok to RedNote\n\nAsk away <3 & be nice"


def test_comment_tree_is_flattened_depth_first(tree: CommentsPage) -> None:
    assert [p.source_id for p in tree.posts] == ["t1_m7hb001", "t1_m7hb002", "t1_m7hb004", "t1_m7hb007"]
    assert all(p.source == "reddit" for p in tree.posts)


def test_more_stubs_and_deleted_or_removed_comments_are_left_out(tree: CommentsPage) -> None:
    assert tree.more == 2  # one at the top level, one under a reply
    assert tree.removed == 2  # "[deleted]" and "[removed]"
    assert tree.skipped == 1  # no created_utc
    # A reply to a deleted comment is still a comment of its own.
    assert by_id(tree.posts, "t1_m7hb004").text == "replying to a deleted comment: still on xiaohongshu?"


def test_comment_fields(tree: CommentsPage) -> None:
    post = by_id(tree.posts, "t1_m7hb001")
    assert post.text == "Same!! RedNote > Lemon8 imo. The tutorial helped & made my day"
    assert post.url == (
        "https://www.reddit.com/r/TikTokRefugees/comments/1i2b3c4/day_3_as_a_tiktok_refugee_on_rednote/m7hb001/"
    )
    assert post.author == "pixel_pusher"
    assert post.created_at == datetime(2025, 1, 16, 1, 8, 20, tzinfo=UTC)
    assert post.metrics == {"score": 120, "likes": 120}
    assert post.raw["link_id"] == "t3_1i2b3c4" and post.raw["parent_id"] == "t3_1i2b3c4"


def test_hebrew_and_arabic_comments(tree: CommentsPage) -> None:
    assert by_id(tree.posts, "t1_m7hb002").text == "ברוכים הבאים לרדנוט! 🎉"
    assert by_id(tree.posts, "t1_m7hb007").text == "أنا أيضاً من لاجئي تيك توك 🙂"


def test_comment_without_rendered_html_falls_back_to_markdown() -> None:
    body = json.loads(fixture("comments.json"))
    comment = body[1]["data"]["children"][0]["data"]
    comment["body_html"] = None
    comment["replies"] = ""
    body[1]["data"]["children"] = [{"kind": "t1", "data": comment}]
    (post,) = parse_comments(json.dumps(body).encode()).posts
    assert post.text == "Same!! RedNote > Lemon8 imo. The [tutorial](https://rednote.invalid/help) helped & made my day"


def test_empty_listing_is_an_empty_last_page() -> None:
    empty = parse_listing(fixture("empty.json"))
    assert empty.posts == [] and empty.after is None and empty.newest_utc is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (None, "truncated"),
        (b"<!doctype html><html><body>whoa there, pardner!</body></html>", "html"),
        (b'{"kind": "t3", "data": {}}', "expected a search listing"),
        (b'{"message": "Forbidden", "error": 403}', "server returned an error: Forbidden"),
        (b"[1, 2]", "expected a search listing"),
        (b"\xff\xfe{}", "not utf-8"),
    ],
)
def test_malformed_listing_bodies_raise_parse_error(body: bytes | None, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_listing(fixture("truncated.json") if body is None else body)


def test_comments_body_must_be_two_listings() -> None:
    with pytest.raises(ParseError, match="two listings"):
        parse_comments(fixture("search.json"))


def test_token_is_read_and_never_shown_in_its_repr() -> None:
    token = parse_token(fixture("token.json"))
    assert token.access_token == "fake-app-only-token-2ZK9q" and token.expires_in == 3600
    assert "fake-app-only-token" not in repr(token)


@pytest.mark.parametrize("body", [b'{"error": "invalid_grant"}', b'{"token_type": "bearer"}', b"[]"])
def test_refused_or_odd_token_answers_raise(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_token(body)


def test_error_bodies_say_whether_one_subreddit_or_the_client_is_refused() -> None:
    private = parse_error(fixture("private.json"), 403)
    assert (private.status, private.reason, private.message) == (403, "private", "Forbidden")
    blanket = parse_error(fixture("unauthorized.json"), 401)
    assert (blanket.status, blanket.reason, blanket.message) == (401, None, "Unauthorized")
    html = parse_error(b"<html>blocked</html>", 403)
    assert (html.status, html.reason) == (403, None)


def test_comments_name_their_parent_and_their_submission_as_fullnames() -> None:
    posts = {p.source_id: p for p in parse_comments(fixture("comments.json")).posts}
    top, nested = posts["t1_m7hb001"], posts["t1_m7hb002"]
    assert (top.parent_source_id, top.root_source_id) == ("t3_1i2b3c4", "t3_1i2b3c4")  # answers the submission
    assert (nested.parent_source_id, nested.root_source_id) == ("t1_m7hb001", "t3_1i2b3c4")  # answers a comment
    assert all(p.root_source_id == "t3_1i2b3c4" for p in posts.values())
    assert all(p.parent_source_id is None for p in parse_listing(fixture("search.json")).posts)  # submissions
