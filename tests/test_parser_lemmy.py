"""parse_search on saved Lemmy search bodies (tests/fixtures/lemmy, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.lemmy import SearchPage, markdown_to_text, parse_search

FIXTURES = Path(__file__).parent / "fixtures" / "lemmy"
INSTANCE = "https://lemmy.murmur.invalid"  # the instance the fixtures were "fetched" from
OTHER = "https://other.murmur.invalid"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def posts() -> SearchPage:
    return parse_search(fixture("search_posts.json"), kind="posts", instance=INSTANCE)


@pytest.fixture(scope="module")
def comments() -> SearchPage:
    return parse_search(fixture("search_comments.json"), kind="comments", instance=INSTANCE)


def by_author(page: SearchPage, author: str) -> Post:
    (post,) = [p for p in page.posts if p.author == author]
    return post


def test_posts_page_keeps_well_formed_posts_newest_first(posts: SearchPage) -> None:
    assert [p.author for p in posts.posts] == [
        "maple_jo@lemmy.murmur.invalid",
        "lin@other.murmur.invalid",
        "noor@lemmy.murmur.invalid",
        "yael@lemmy.murmur.invalid",
    ]
    assert all(p.source == "lemmy" for p in posts.posts)


def test_deleted_and_removed_posts_are_skipped_and_counted(posts: SearchPage) -> None:
    assert posts.removed == 2  # one deleted by its author, one removed by a moderator
    assert not [p for p in posts.posts if "spyware" in p.text or "FREE" in p.text]
    assert posts.skipped == 1  # the post with no ap_id
    assert posts.count == 7


def test_paging_times_cover_every_dated_entry(posts: SearchPage) -> None:
    assert posts.newest == datetime(2025, 1, 15, 9, 41, 7, 318021, tzinfo=UTC)
    assert posts.oldest == datetime(2025, 1, 14, 18, 2, 11, tzinfo=UTC)  # the skipped post still bounds it


def test_source_id_and_url_are_the_activitypub_id(posts: SearchPage) -> None:
    local = by_author(posts, "maple_jo@lemmy.murmur.invalid")
    assert local.source_id == local.url == f"{INSTANCE}/post/2460113"
    remote = by_author(posts, "lin@other.murmur.invalid")
    assert remote.source_id == remote.url == f"{OTHER}/post/913377"  # its home, not the instance read


def test_post_text_is_title_then_markdown_body_as_plain_text(posts: SearchPage) -> None:
    assert by_author(posts, "maple_jo@lemmy.murmur.invalid").text == (
        "Day 3 as a TikTok refugee on RedNote 🍋\n"
        "Honestly? The welcome has been wholesome & the cat pics > politics.\n\n"
        "Wrote up what I learned: my RedNote guide\n\n"
        "谢谢 = thanks\n\n"
        "- export your TikTok data first\n"
        "- Settings > Privacy\n\n"
        "#TikTokRefugee"
    )


def test_chinese_post(posts: SearchPage) -> None:
    post = by_author(posts, "lin@other.murmur.invalid")
    assert post.text == "欢迎各位 TikTok难民 来到小红书！🎉\n有问题可以问我，我教你们说“你好”～"
    assert post.lang is None  # Lemmy gives a language_id, not a code; the language pipeline decides


def test_rtl_titles_and_escaped_entities_in_titles(posts: SearchPage) -> None:
    assert by_author(posts, "noor@lemmy.murmur.invalid").text == "انضممت إلى RedNote اليوم، التطبيق جميل جداً 🌙"
    link_post = by_author(posts, "yael@lemmy.murmur.invalid")
    assert link_post.text == 'עברתי ל-RedNote היום: "פליטי TikTok" בכל מקום'
    assert link_post.raw["post"]["url"] == "https://example.com/tiktok-refugees-rednote"


def test_post_metrics_and_raw(posts: SearchPage) -> None:
    post = by_author(posts, "maple_jo@lemmy.murmur.invalid")
    assert post.metrics == {"likes": 51, "score": 48, "replies": 12}
    assert post.raw["community"]["name"] == "technology" and post.tags == []
    assert post.created_at == datetime(2025, 1, 15, 9, 41, 7, 318021, tzinfo=UTC)


def test_comments_page(comments: SearchPage) -> None:
    assert [p.author for p in comments.posts] == [
        "grumpy_gus@lemmy.murmur.invalid",
        "lin@other.murmur.invalid",
        "noor@lemmy.murmur.invalid",
        "yael@lemmy.murmur.invalid",
    ]
    assert (comments.removed, comments.skipped, comments.count) == (2, 1, 7)  # deleted, removed; no creator


def test_comment_text_url_and_metrics(comments: SearchPage) -> None:
    post = by_author(comments, "grumpy_gus@lemmy.murmur.invalid")
    assert post.text == (
        "The welcome has been wholesome\n\nSame here! Lemon8 felt empty, RedNote doesn't. Thread: link 😂"
    )
    assert post.source_id == post.url == f"{INSTANCE}/comment/11852290"
    assert post.metrics == {"likes": 6, "score": 6, "replies": 2}
    remote = by_author(comments, "lin@other.murmur.invalid")
    assert remote.url == f"{OTHER}/comment/4410982" and remote.text == "小红书的 TikTok难民 太可爱了 🤣 谢谢大家"


def test_rtl_comments_with_entities(comments: SearchPage) -> None:
    assert by_author(comments, "noor@lemmy.murmur.invalid").text == "أهلاً بكم! RedNote أفضل من المتوقع"
    assert by_author(comments, "yael@lemmy.murmur.invalid").text == 'גם אני "פליטת TikTok" ב-RedNote & זה כיף'


def test_lemmy_0_18_naive_timestamps_are_utc() -> None:
    parsed = parse_search(fixture("search_posts_0_18.json"), kind="posts", instance=INSTANCE)
    (post,) = parsed.posts
    assert post.created_at == datetime(2023, 7, 2, 10, 15, 0, 123456, tzinfo=UTC)
    assert post.text == "Lemon8 vs RedNote?\nWhich one are you on?"
    assert post.metrics == {"likes": 6, "score": 5, "replies": 3}


def test_the_other_list_of_the_response_is_not_read() -> None:
    parsed = parse_search(fixture("search_posts.json"), kind="comments", instance=INSTANCE)
    assert parsed.posts == [] and parsed.count == 0 and parsed.newest is None


def test_empty_page() -> None:
    assert parse_search(fixture("empty.json"), kind="posts", instance=INSTANCE) == SearchPage([], 0, None, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (fixture("error.json"), "server returned an error: instance_is_private"),
        (fixture("truncated.json"), "not valid json"),
        (b"<html><body>502 Bad Gateway</body></html>", "html"),
        (b"", "empty"),
        (b"[]", "expected a json object"),
        (b'{"type_": "Posts", "posts": {}}', "'posts' list"),
    ],
)
def test_unusable_bodies_raise_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_search(body, kind="posts", instance=INSTANCE)
    assert message in str(info.value).lower()


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        parse_search(fixture("search_posts.json"), kind="users", instance=INSTANCE)


def test_author_without_actor_id_falls_back_to_the_instance_host() -> None:
    view = json.loads(fixture("search_posts.json"))["posts"][0]
    del view["creator"]["actor_id"]
    body = json.dumps({"posts": [view, 3, None, {"post": "x"}]}).encode()
    parsed = parse_search(body, kind="posts", instance=INSTANCE + "/")
    assert [p.author for p in parsed.posts] == ["maple_jo@lemmy.murmur.invalid"]
    assert parsed.skipped == 3


def test_markdown_to_text() -> None:
    assert markdown_to_text("# Title\n**bold** *em* _under_ ~~gone~~ `code`") == "Title\nbold em under gone code"
    assert markdown_to_text("snake_case_name and 5*3*2 stay") == "snake_case_name and 5*3*2 stay"
    assert markdown_to_text("[text](https://x.example/a_b \"t\") ![alt](https://x/y.png) <https://z.example>") == (
        "text alt https://z.example"
    )
    assert markdown_to_text("> quoted\n> > nested\n* one\n+ two") == "quoted\nnested\n- one\n- two"
    assert markdown_to_text("::: spoiler Ending\nthey win\n:::\n---\nafter") == "Ending\nthey win\n\n\nafter"
    assert markdown_to_text(r"\*not em\* \_nor this\_ 1\. AT&amp;T &lt;b&gt;") == "*not em* _nor this_ 1. AT&T <b>"
    assert markdown_to_text("```\ncode block\n```") == "code block"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
_POSTS = json.loads(fixture("search_posts.json"))["posts"]
_COMMENTS = json.loads(fixture("search_comments.json"))["comments"]
_keys = st.sampled_from(["post", "comment", "creator", "counts", "community"])
_record_keys = st.sampled_from(["ap_id", "published", "name", "body", "content", "deleted", "removed", "id"])


@st.composite
def _mutated_view(draw: st.DrawFn) -> dict:
    view = json.loads(json.dumps(draw(st.sampled_from(_POSTS + _COMMENTS))))
    record = view.get("post") if "comment" not in view else view["comment"]
    record.update(draw(st.dictionaries(_record_keys, _json, max_size=3)))
    for key in draw(st.sets(_keys, max_size=2)):
        view.pop(key, None)
    return view


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["posts", "comments"]))
def test_parse_raises_only_parse_error_on_arbitrary_bytes(body: bytes, kind: str) -> None:
    try:
        parse_search(body, kind=kind, instance=INSTANCE)
    except ParseError:
        pass


@settings(max_examples=150, deadline=None)
@given(
    _json | st.fixed_dictionaries({"posts": st.lists(_mutated_view() | _json, max_size=5),
                                   "comments": st.lists(_mutated_view() | _json, max_size=5)}),
    st.sampled_from(["posts", "comments"]),
)
def test_parse_raises_only_parse_error_on_arbitrary_json(value: object, kind: str) -> None:
    try:
        parsed = parse_search(json.dumps(value).encode(), kind=kind, instance=INSTANCE)
    except ParseError:
        assert not (isinstance(value, dict) and isinstance(value.get(kind), list) and "error" not in value)
        return
    assert len(parsed.posts) + parsed.skipped + parsed.removed <= parsed.count
    for post in parsed.posts:
        assert post.created_at.tzinfo is not None and isinstance(post.text, str)
        assert post.source_id.startswith(("https://", "http://")) and "@" in (post.author or "")


def test_comments_name_the_post_as_root_and_a_parent_comment_by_its_local_id() -> None:
    parsed = parse_search(fixture("search_comment_replies.json"), kind="comments", instance=INSTANCE)
    reply, top = parsed.posts
    post_uri = "https://lemmy.murmur.invalid/post/2460113"
    # path "0.11852290.11852301": the parent is comment 11852290 as this instance numbers it
    assert (reply.parent_source_id, reply.root_source_id) == ("lemmy.murmur.invalid:11852290", post_uri)
    assert (top.parent_source_id, top.root_source_id) == (post_uri, post_uri)  # path "0.<id>": answers the post
    assert all(p.parent_source_id is None for p in parse_search(fixture("search_posts.json"), kind="posts",
                                                                instance=INSTANCE).posts)
