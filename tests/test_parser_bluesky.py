"""The Bluesky parsers on saved XRPC bodies (tests/fixtures/bluesky, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.bluesky import (
    FeedPage,
    format_datetime,
    parse_datetime,
    parse_feed,
    parse_search,
    parse_session,
    post_from_view,
    xrpc_error,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bluesky"
MAPLE_URI = "at://did:plc:m4plej0q7xw2k5vz3rb6tyd1/app.bsky.feed.post/3lfnrx2q4kc2s"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def search() -> FeedPage:
    return parse_search(fixture("search_posts.json"))


def by_author(page: FeedPage, author: str) -> Post:
    (post,) = [p for p in page.posts if p.author == author]
    return post


def test_search_keeps_well_formed_posts_in_order_and_skips_the_malformed(search: FeedPage) -> None:
    assert [p.author for p in search.posts] == [
        "maple-jo.murmur.test",
        "lin.murmur.test",
        "noor.murmur.test",
        "dani.murmur.test",
        "did:plc:gu5gr4mpy2k4m6n8p0r2t4v6",
        "pixel.murmur.test",
    ]
    assert search.skipped == 1  # the record without createdAt
    assert all(p.source == "bluesky" for p in search.posts)
    assert search.cursor == "25"


def test_source_id_is_the_at_uri_and_url_the_bsky_app_page(search: FeedPage) -> None:
    maple = by_author(search, "maple-jo.murmur.test")
    assert maple.source_id == MAPLE_URI
    assert maple.url == "https://bsky.app/profile/maple-jo.murmur.test/post/3lfnrx2q4kc2s"
    assert maple.raw["cid"].startswith("bafyrei") and maple.raw["uri"] == MAPLE_URI


def test_text_keeps_emoji_and_literal_ampersands_and_expands_the_shortened_link(search: FeedPage) -> None:
    # Bluesky text is plain text: '&', '>' and '<3' are what the user typed, nothing to decode.
    assert by_author(search, "maple-jo.murmur.test").text == (
        'Day 3 on RedNote 🍋😂 & honestly? The "TikTok refugee" welcome has been wholesome. Cat pics > politics <3\n'
        "Guide: https://example.com/rednote-guide-for-beginners/part-1\n#TikTokRefugee #RedNote"
    )


def test_hashtag_facets_become_tags_and_counts_become_metrics(search: FeedPage) -> None:
    maple = by_author(search, "maple-jo.murmur.test")
    assert maple.tags == ["TikTokRefugee", "RedNote"]
    assert maple.metrics == {"replies": 2, "reposts": 5, "likes": 48, "quotes": 1}
    assert maple.lang == "en"
    assert maple.terms == []  # set later by the match pipeline


def test_chinese_text_with_mention_and_cjk_hashtags(search: FeedPage) -> None:
    lin = by_author(search, "lin.murmur.test")
    assert lin.text == (
        "欢迎各位 TikTok难民 来到小红书！🎉 有问题可以问我，我教你们说“你好”～ @maple-jo.murmur.test\n"
        "#小红书 #TikTok难民"
    )
    assert lin.tags == ["小红书", "TikTok难民"]
    assert lin.lang == "zh"


def test_rtl_arabic_and_hebrew_text_is_kept_as_is(search: FeedPage) -> None:
    assert by_author(search, "noor.murmur.test").text == "انضممت إلى RedNote اليوم، التطبيق جميل جداً 🌙 #TikTokRefugee"
    dani = by_author(search, "dani.murmur.test")
    assert dani.text == "עברתי ל-RedNote בגלל האיסור, מי עוד פה? 🙋"
    assert (dani.lang, dani.tags) == ("he", [])


def test_unverified_handle_falls_back_to_the_did_and_extra_record_tags_are_kept(search: FeedPage) -> None:
    gus = by_author(search, "did:plc:gu5gr4mpy2k4m6n8p0r2t4v6")
    assert gus.url == "https://bsky.app/profile/did:plc:gu5gr4mpy2k4m6n8p0r2t4v6/post/3lfnqsx3mhs2b"
    assert gus.tags == ["ban"]


def test_created_at_is_aware_utc_and_a_future_client_clock_falls_back_to_indexed_at(search: FeedPage) -> None:
    assert by_author(search, "maple-jo.murmur.test").created_at == datetime(2025, 1, 14, 15, 5, 30, 17000, tzinfo=UTC)
    # Gus's record claims 16:45, but the AppView indexed it at 14:20 (its sortAt)
    assert by_author(search, "did:plc:gu5gr4mpy2k4m6n8p0r2t4v6").created_at == datetime(
        2025, 1, 14, 14, 20, 7, 777000, tzinfo=UTC
    )
    assert all(p.created_at.utcoffset().total_seconds() == 0 for p in search.posts)


def test_image_only_post_has_empty_text(search: FeedPage) -> None:
    # "May be an empty string, if there are embeds" (app.bsky.feed.post); the normalise pipeline drops it.
    assert by_author(search, "pixel.murmur.test").text == ""


def test_search_newest_and_oldest_are_the_sort_times(search: FeedPage) -> None:
    assert search.newest == datetime(2025, 1, 14, 15, 5, 30, 17000, tzinfo=UTC)
    assert search.oldest == datetime(2025, 1, 14, 14, 10, tzinfo=UTC)


def test_author_feed_resolves_reposts_and_dedupes_and_survives_deleted_and_blocked_parents() -> None:
    page = parse_feed(fixture("author_feed.json"))
    assert [p.source_id.rsplit("/", 1)[1] for p in page.posts] == [
        "3lfnsc2k7t22m",  # lin's own post
        "3lfnrx2q4kc2s",  # maple's post, reposted by lin
        "3lfnrz5b2wk2p",  # lin's reply to a deleted post in a blocked thread
        "3lfnrq7zt2k2x",  # lin's older post
    ]
    assert page.posts[1].author == "maple-jo.murmur.test"  # a repost is the original author's post
    assert page.posts[0].lang == "en"  # the first of several langs
    assert page.skipped == 1  # the entry that is not an object
    assert page.cursor == "2025-01-14T14:58:02.511Z"
    # the repost sorts at the time it was reposted, not when maple posted
    assert page.newest == datetime(2025, 1, 14, 18, 2, 40, 120000, tzinfo=UTC)
    assert page.oldest == datetime(2025, 1, 14, 14, 58, 2, 511000, tzinfo=UTC)


def test_custom_feed_page() -> None:
    page = parse_feed(fixture("feed_generator.json"))
    assert [p.author for p in page.posts] == ["noor.murmur.test", "dani.murmur.test"]
    assert page.cursor == "1736866800000::bafyreidcursor"


def test_a_post_and_its_repost_in_one_page_are_one_post() -> None:
    view = json.loads(fixture("search_posts.json"))["posts"][0]
    body = json.dumps({"feed": [
        {"post": view, "reason": {"$type": "app.bsky.feed.defs#reasonRepost", "by": view["author"],
                                  "indexedAt": "2025-01-15T00:00:00Z"}},
        {"post": view},
    ]}).encode()
    page = parse_feed(body)
    assert [p.source_id for p in page.posts] == [MAPLE_URI]
    assert (page.newest, page.skipped) == (datetime(2025, 1, 15, tzinfo=UTC), 0)


def test_empty_search_page() -> None:
    assert parse_search(fixture("search_empty.json")) == FeedPage([], None, None, None, 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("error_expired.json", "server returned an error: expiredtoken: token has expired"),
        ("error_unknown_feed.json", "unknownfeed"),
        ("truncated.json", "not valid json"),
        ("bad_gateway.html", "html"),
    ],
)
def test_unusable_bodies_raise_parse_error(name: str, message: str) -> None:
    for parse in (parse_search, parse_feed):
        with pytest.raises(ParseError) as info:
            parse(fixture(name))
        assert message in str(info.value).lower()


@pytest.mark.parametrize("body", [b"", b"  ", b"[]", b'{"feed": {}}', b'{"posts": null}', b"\xff\xfe", b"[" * 100_000])
def test_wrong_shapes_raise_parse_error(body: bytes) -> None:
    for parse in (parse_search, parse_feed):
        with pytest.raises(ParseError):
            parse(body)


def test_session_tokens_are_read_and_never_shown() -> None:
    session = parse_session(fixture("session.json"))
    assert session.access_jwt.startswith("eyJ") and session.refresh_jwt != session.access_jwt
    assert (session.did, session.handle) == ("did:plc:m4plej0q7xw2k5vz3rb6tyd1", "maple-jo.murmur.test")
    assert "fixture-access" not in repr(session) and "fixture-refresh" not in repr(session)
    with pytest.raises(ParseError):
        parse_session(b'{"did": "did:plc:x", "handle": "x.test", "accessJwt": ""}')
    with pytest.raises(ParseError):
        parse_session(fixture("error_auth.json"))


def test_xrpc_error_reads_error_bodies_only() -> None:
    assert xrpc_error(fixture("error_expired.json")) == ("ExpiredToken", "Token has expired")
    assert xrpc_error(b'{"error": "RateLimitExceeded"}') == ("RateLimitExceeded", "")
    assert xrpc_error(fixture("search_empty.json")) is None
    assert xrpc_error(fixture("bad_gateway.html")) is None


def test_views_that_are_not_posts_are_refused() -> None:
    good = json.loads(fixture("search_posts.json"))["posts"][0]
    like_uri = {**good, "uri": "at://did:plc:m4plej0q7xw2k5vz3rb6tyd1/app.bsky.feed.like/3lfnrx2q4kc2s"}
    not_uri = {**good, "uri": "https://bsky.app/profile/x/post/1"}
    no_author = {**good, "author": {"displayName": "nobody"}}
    bad_date = {**good, "record": {**good["record"], "createdAt": "yesterday"}}
    for view in (like_uri, not_uri, no_author, bad_date, None, 3, {"notFound": True}):
        assert post_from_view(view) is None
    assert post_from_view(good) is not None


def test_a_facet_with_wrong_byte_offsets_leaves_the_text_alone() -> None:
    good = json.loads(fixture("search_posts.json"))["posts"][0]
    broken = json.loads(json.dumps(good))
    broken["record"]["facets"][0]["index"] = {"byteStart": 19, "byteEnd": 21}  # splits the 🍋
    broken["record"]["facets"].append({"index": {"byteStart": 0, "byteEnd": 10_000}, "features": [
        {"$type": "app.bsky.richtext.facet#link", "uri": "https://x.test"}]})
    post = post_from_view(broken)
    assert post is not None and post.text == good["record"]["text"]


def test_a_link_on_words_keeps_the_words() -> None:
    good = json.loads(fixture("search_posts.json"))["posts"][0]
    view = json.loads(json.dumps(good))
    text = "read this guide please"
    view["record"] = {"text": text, "createdAt": good["record"]["createdAt"], "facets": [
        {"index": {"byteStart": 10, "byteEnd": 15}, "features": [
            {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/guide"}]}]}
    post = post_from_view(view)
    assert post is not None and post.text == text


def test_datetimes_round_trip_as_cursor_text() -> None:
    when = parse_datetime("2025-01-14T15:05:30.017Z")
    assert when == datetime(2025, 1, 14, 15, 5, 30, 17000, tzinfo=UTC)
    assert format_datetime(when) == "2025-01-14T15:05:30.017Z"
    assert parse_datetime("2025-01-14T16:05:30.017+01:00") == when
    assert parse_datetime("2025-01-14T15:05:30.123456789Z") == datetime(2025, 1, 14, 15, 5, 30, 123456, tzinfo=UTC)
    for bad in ("2025-01-14", "soon", None, 5):
        assert parse_datetime(bad) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
_view_keys = st.sampled_from(["uri", "author", "record", "indexedAt", "likeCount", "replyCount"])
_GOOD = json.loads(fixture("search_posts.json"))["posts"][0]


@st.composite
def _mutated_view(draw: st.DrawFn) -> dict:
    view = {**_GOOD, **draw(st.dictionaries(_view_keys, _json, max_size=3))}
    record = {**_GOOD["record"], **draw(st.dictionaries(st.sampled_from(["text", "facets", "langs", "tags",
                                                                          "createdAt"]), _json, max_size=3))}
    view["record"] = record
    return view


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parsers_raise_only_parse_error_on_arbitrary_bytes(body: bytes) -> None:
    for parse in (parse_search, parse_feed):
        try:
            parse(body)
        except ParseError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.lists(_mutated_view() | _json, max_size=5))
def test_parsers_raise_only_parse_error_on_arbitrary_json(views: list) -> None:
    for body in ({"posts": views}, {"feed": [{"post": v} for v in views]}):
        page = (parse_search if "posts" in body else parse_feed)(json.dumps(body).encode())
        assert len(page.posts) + page.skipped <= len(views)
        for post in page.posts:
            assert post.created_at.tzinfo is not None and isinstance(post.text, str) and post.source_id


def test_nul_and_lone_surrogates_which_postgres_cannot_store_are_removed() -> None:
    good = json.loads(fixture("search_posts.json"))["posts"][0]
    body = json.dumps({"posts": [good]}).replace("Day 3", "Day\\u0000 3\\ud800").encode()
    (post,) = parse_search(body).posts
    assert post.text.startswith("Day 3 on RedNote")
    assert "\x00" not in json.dumps(post.raw) and "\\u0000" not in json.dumps(post.raw)


def test_a_thread_gives_the_replies_below_the_post_with_their_reply_refs() -> None:
    from murmur.crawler.parsers.bluesky_thread import parse_thread

    thread = parse_thread(fixture("post_thread.json"))
    top = "at://did:plc:m4plej0q7xw2k5vz3rb6tyd1/app.bsky.feed.post/3lfnrx2q4kc2s"
    first, second = thread.replies  # depth first; the thread's own post is not a reply to it
    assert (first.parent_source_id, first.root_source_id) == (top, top)
    assert (second.parent_source_id, second.root_source_id) == (first.source_id, top)
    assert first.text == "欢迎！which app did you try first?" and first.lang == "zh"
    assert thread.unavailable == 2 and thread.skipped == 0  # a deleted and a blocked reply
    assert parse_thread(b'{"thread": {"uri": "at://x/app.bsky.feed.post/1", "notFound": true}}').replies == []
    with pytest.raises(ParseError):
        parse_thread(b'{"posts": []}')
