"""parse_search on saved HN Search (Algolia) bodies (tests/fixtures/hackernews, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.hackernews import SearchPage, hn_html_to_text, item_url, parse_search

FIXTURES = Path(__file__).parent / "fixtures" / "hackernews"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def page() -> SearchPage:
    return parse_search(fixture("search_by_date.json"))


def by_id(page: SearchPage, object_id: str) -> Post:
    (post,) = [p for p in page.posts if p.source_id == object_id]
    return post


def test_page_keeps_well_formed_hits_newest_first(page: SearchPage) -> None:
    assert [p.source_id for p in page.posts] == [
        "42735118", "42734410", "42733877", "42729980", "42719004", "42718113",
    ]
    assert all(p.source == "hackernews" for p in page.posts)
    assert (page.hits, page.page, page.nb_pages) == (8, 0, 1)


def test_hit_without_id_is_skipped_and_a_tombstone_is_counted_as_deleted(page: SearchPage) -> None:
    assert page.skipped == 1 and page.deleted == 1
    assert "42731562" not in {p.source_id for p in page.posts}  # author and comment_text null


def test_newest_is_the_largest_created_at_i_over_every_dated_hit(page: SearchPage) -> None:
    body = json.loads(fixture("search_by_date.json"))
    assert page.newest == max(h["created_at_i"] for h in body["hits"] if "created_at_i" in h) == 1736934067


def test_url_is_the_hn_item_page_and_author_the_username(page: SearchPage) -> None:
    post = by_id(page, "42729980")
    assert post.url == item_url("42729980") == "https://news.ycombinator.com/item?id=42729980"
    assert post.author == "grumpy_gus"


def test_comment_text_html_entities_and_paragraphs(page: SearchPage) -> None:
    assert by_id(page, "42729980").text == (
        "Lemon8 > RedNote for me. It's owned by ByteDance too, so \"TikTok refugee\" is a stretch & a half.\n"
        "Still fun though 😂"
    )


def test_link_story_is_its_title(page: SearchPage) -> None:
    post = by_id(page, "42718113")
    assert post.text == "TikTok refugees are flocking to RedNote 🍋"
    assert post.raw["url"] == "https://example.com/tiktok-refugees-rednote"


def test_text_story_is_title_then_story_text_with_links_as_urls(page: SearchPage) -> None:
    assert by_id(page, "42719004").text == (
        "Ask HN: Anyone else trying RedNote (Xiaohongshu)?\n"
        "I'm a \"TikTok refugee\" since the ban news & honestly enjoying it.\n"
        "What's the best way to learn the app? This helped: https://example.com/rednote-guide\n"
        "Bonus: 谢谢 = thanks"
    )


def test_chinese_and_rtl_text_kept_as_is(page: SearchPage) -> None:
    assert by_id(page, "42735118").text == "欢迎各位 TikTok难民 来到小红书！🎉 有问题可以问我\n我教你们说“你好”～"
    assert by_id(page, "42734410").text == "انضممت إلى RedNote اليوم، التطبيق جميل جداً 🌙"
    assert by_id(page, "42733877").text == 'עברתי ל-RedNote היום, האפליקציה נחמדה מאוד. ה"פליטים" של TikTok מתרבים'


def test_created_at_is_aware_utc_from_created_at_i(page: SearchPage) -> None:
    assert by_id(page, "42718113").created_at == datetime(2025, 1, 14, 18, 2, 11, tzinfo=UTC)
    assert all(p.created_at.utcoffset() is not None and p.created_at.utcoffset().total_seconds() == 0
               for p in page.posts)


def test_created_at_falls_back_to_the_iso_string() -> None:
    hit = json.loads(fixture("search_by_date.json"))["hits"][6]
    del hit["created_at_i"]
    (post,) = parse_search(json.dumps({"hits": [hit]}).encode()).posts
    assert post.created_at == datetime(2025, 1, 14, 18, 2, 11, tzinfo=UTC)


def test_metrics_points_and_comment_counts(page: SearchPage) -> None:
    assert by_id(page, "42718113").metrics == {"likes": 57, "score": 57, "replies": 3}
    assert by_id(page, "42719004").metrics == {"likes": 88, "score": 88, "replies": 41}
    # comments: points are null, replies are the direct children
    assert by_id(page, "42729980").metrics == {"replies": 2}


def test_no_language_no_hashtags_and_raw_is_the_hit(page: SearchPage) -> None:
    post = by_id(page, "42734410")
    assert post.lang is None and post.tags == [] and post.terms == []
    assert post.raw["objectID"] == "42734410" and post.raw["_tags"][0] == "comment"


def test_empty_page() -> None:
    assert parse_search(fixture("empty.json")) == SearchPage([], 0, 0, 0, None)


def test_page_past_the_1000_hit_ceiling_is_an_empty_page() -> None:
    parsed = parse_search(fixture("past_limit.json"))
    assert parsed.posts == [] and parsed.hits == 0 and parsed.nb_pages == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (fixture("error.json"), "server returned an error: unknown parameter: hitsperpages"),
        (fixture("truncated.json"), "not valid json"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "html"),
        (b"", "empty"),
        (b"[]", "expected a json object"),
        (b'{"hits": 3}', "'hits' list"),
        (b"\xff\xfe", "utf-8"),
    ],
)
def test_unusable_bodies_raise_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_search(body)
    assert message in str(info.value).lower()


def test_bad_hits_are_skipped_not_raised() -> None:
    good = json.loads(fixture("search_by_date.json"))["hits"][6]
    hits = [
        good,
        good,  # repeated in one page: one post
        7,
        None,
        {**good, "objectID": True},
        {**good, "objectID": "42718114", "created_at_i": "soon", "created_at": "yesterday"},
        {**good, "objectID": "42718115", "title": ["not", "text"]},
    ]
    parsed = parse_search(json.dumps({"hits": hits}).encode())
    assert [p.source_id for p in parsed.posts] == ["42718113"]
    assert parsed.skipped == 5 and parsed.hits == 7


def test_hn_html_to_text() -> None:
    assert hn_html_to_text("a<p>b<p>c") == "a\nb\nc"
    assert hn_html_to_text("x &#x2F; y &amp;amp; <i>z</i>") == "x / y &amp; z"
    assert hn_html_to_text("<pre><code>  indented\n  code\n</code></pre>") == "indented\n  code"
    assert hn_html_to_text("<p>") == ""


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
_hit_keys = st.sampled_from(
    ["objectID", "created_at_i", "created_at", "title", "story_text", "comment_text", "author", "_tags",
     "points", "num_comments", "children"]
)
_GOOD = json.loads(fixture("search_by_date.json"))["hits"]


@st.composite
def _mutated_hit(draw: st.DrawFn) -> dict:
    hit = {**draw(st.sampled_from(_GOOD)), **draw(st.dictionaries(_hit_keys, _json, max_size=4))}
    for key in draw(st.sets(_hit_keys, max_size=3)):
        hit.pop(key, None)
    return hit


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_raises_only_parse_error_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_search(body)
    except ParseError:
        pass


@settings(max_examples=150, deadline=None)
@given(_json | st.fixed_dictionaries({"hits": st.lists(_mutated_hit() | _json, max_size=6)}))
def test_parse_raises_only_parse_error_on_arbitrary_json(value: object) -> None:
    try:
        parsed = parse_search(json.dumps(value).encode())
    except ParseError:
        assert not (isinstance(value, dict) and isinstance(value.get("hits"), list))
        return
    assert len(parsed.posts) + parsed.skipped + parsed.deleted <= parsed.hits
    for post in parsed.posts:
        assert post.created_at.tzinfo is not None and post.text.strip() and post.source_id.isdigit()


def test_comments_name_their_parent_and_story_stories_name_none() -> None:
    posts = {p.source_id: p for p in parse_search(fixture("search_by_date.json")).posts}
    reply = posts["42733877"]  # a reply to comment 42734410 under story 42718113
    assert (reply.parent_source_id, reply.root_source_id) == ("42734410", "42718113")
    top = posts["42734410"]  # a comment on the story itself
    assert (top.parent_source_id, top.root_source_id) == ("42718113", "42718113")
    story = posts["42718113"]
    assert (story.parent_source_id, story.root_source_id) == (None, None)
