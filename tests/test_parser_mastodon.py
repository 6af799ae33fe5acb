"""parse_timeline on saved Mastodon tag timeline bodies (tests/fixtures/mastodon, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from murmur.crawler.parsers import Page, ParseError, id_key
from murmur.crawler.parsers.mastodon import html_to_text, parse_context, parse_timeline

FIXTURES = Path(__file__).parent / "fixtures" / "mastodon"
INSTANCE = "mstdn.murmur.invalid"  # the instance tag_timeline.json was "fetched" from

LIN_URI = "https://other.murmur.invalid/users/lin/statuses/113827303413841920"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def page() -> Page:
    return parse_timeline(fixture("tag_timeline.json"), instance=INSTANCE)


def by_author(page: Page, author: str):
    (post,) = [p for p in page.posts if p.author == author]
    return post


def test_page_keeps_well_formed_statuses_in_timeline_order(page: Page) -> None:
    assert [p.author for p in page.posts] == [
        "lin@other.murmur.invalid",  # via the boost, the newest entry
        "maple_jo@mstdn.murmur.invalid",
        "grumpy_gus@mstdn.murmur.invalid",
        "pixel@misc.murmur.invalid",
        "noor@mstdn.murmur.invalid",
        "sam_learns@mstdn.murmur.invalid",
    ]
    assert all(p.source == "mastodon" for p in page.posts)


def test_status_missing_required_fields_is_skipped_and_counted(page: Page) -> None:
    assert page.skipped == 1
    assert not any("ghost" in p.source_id for p in page.posts)


def test_paging_ids_are_the_outer_local_ids_including_skipped_entries(page: Page) -> None:
    assert page.newest_id == "113827341959233539"  # the boost wrapper's own id, not the boosted status's
    assert page.oldest_id == "113827106324807680"
    body = json.loads(fixture("tag_timeline.json"))
    assert {s["id"] for s in body} >= {page.newest_id, page.oldest_id}
    assert "113827184640000000" in {s["id"] for s in body}  # the skipped entry still bounds the page


def test_boost_resolves_to_the_boosted_status_and_is_emitted_once(page: Page) -> None:
    lin = [p for p in page.posts if p.source_id == LIN_URI]
    assert len(lin) == 1
    assert not any(p.source_id.endswith("/activity") for p in page.posts)
    post = lin[0]
    assert post.url == "https://other.murmur.invalid/@lin/113827303413841920"
    assert post.metrics == {"replies": 4, "reposts": 31, "likes": 120}
    assert post.raw["uri"] == LIN_URI and post.raw["reblog"] is None


def test_source_id_is_the_activitypub_uri(page: Page) -> None:
    maple = by_author(page, "maple_jo@mstdn.murmur.invalid")
    assert maple.source_id == "https://mstdn.murmur.invalid/users/maple_jo/statuses/113827324232794113"
    assert maple.url == "https://mstdn.murmur.invalid/@maple_jo/113827324232794113"


def test_local_acct_is_qualified_with_the_instance_host_remote_acct_kept(page: Page) -> None:
    assert by_author(page, "noor@mstdn.murmur.invalid").raw["account"]["acct"] == "noor"
    assert by_author(page, "lin@other.murmur.invalid").raw["account"]["acct"] == "lin@other.murmur.invalid"


@pytest.mark.parametrize("instance", ["mstdn.murmur.invalid", "https://mstdn.murmur.invalid/", "MSTDN.murmur.invalid"])
def test_instance_may_be_a_host_or_a_base_url(instance: str) -> None:
    parsed = parse_timeline(fixture("tag_timeline.json"), instance=instance)
    assert "noor@mstdn.murmur.invalid" in {p.author for p in parsed.posts}


def test_english_text_with_entities_emoji_mention_link_and_hashtags(page: Page) -> None:
    assert by_author(page, "maple_jo@mstdn.murmur.invalid").text == (
        'Day 3 on RedNote 🍋😂 & honestly? The "TikTok refugee" welcome has been wholesome. '
        "Cat pics > politics.\n"
        "Thanks @lin for the 中文 tips! Guide: https://example.com/rednote-guide-for-beginners/part-1\n"
        "#TikTokRefugee #RedNote"
    )


def test_chinese_text(page: Page) -> None:
    post = by_author(page, "lin@other.murmur.invalid")
    assert post.text == (
        "欢迎各位 TikTok难民 来到小红书！🎉 有问题可以问我，我教你们说“你好”～\n#小红书 #TikTok难民 #TikTokRefugee"
    )
    assert post.lang == "zh"
    assert post.tags == ["小红书", "tiktok难民", "tiktokrefugee"]


def test_content_warning_leads_the_text(page: Page) -> None:
    assert by_author(page, "grumpy_gus@mstdn.murmur.invalid").text == (
        "rant: app store politics\n"
        "Installed Lemon8 AND RedNote in one night because of the ban. Neither lets me export my data. "
        "This is not a <fix>, it's a new landlord.\n#TikTokRefugee #Lemon8"
    )


def test_null_language_and_null_url_fall_back(page: Page) -> None:
    post = by_author(page, "pixel@misc.murmur.invalid")
    assert post.lang is None
    assert post.url == post.source_id == "https://misc.murmur.invalid/objects/5b9f2c1e-0d4f-4c49-9a8e-2d1f6f3a7c10"
    assert post.text == "tiktok refugees everywhere on my feed today\nwild times #tiktokrefugee"


def test_rtl_text_is_kept_as_is(page: Page) -> None:
    post = by_author(page, "noor@mstdn.murmur.invalid")
    assert post.text == "انضممت إلى RedNote اليوم، التطبيق جميل جداً 🌙\n#TikTokRefugee"
    assert post.lang == "ar"


def test_mixed_text_br_becomes_newline(page: Page) -> None:
    assert by_author(page, "sam_learns@mstdn.murmur.invalid").text == (
        "Learning 中文 from 小红书 comments: 谢谢 = thanks, 加油 = you got this 💪\n"
        'My tutor says my tones are "brave".\n#TikTokRefugee #xiaohongshu #小红书'
    )


def test_created_at_is_aware_utc_with_milliseconds(page: Page) -> None:
    assert all(p.created_at.tzinfo is not None and p.created_at.utcoffset().total_seconds() == 0 for p in page.posts)
    assert by_author(page, "maple_jo@mstdn.murmur.invalid").created_at == datetime(
        2025, 1, 14, 15, 5, 30, 17000, tzinfo=UTC
    )


def test_tags_and_metrics(page: Page) -> None:
    post = by_author(page, "maple_jo@mstdn.murmur.invalid")
    assert post.tags == ["tiktokrefugee", "rednote"]
    assert post.metrics == {"replies": 2, "reposts": 5, "likes": 48}
    assert post.terms == []  # set later by the match pipeline


def test_empty_page() -> None:
    assert parse_timeline(fixture("empty.json"), instance=INSTANCE) == Page([], None, None, 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("error.json", "server returned an error: the access token is invalid"),
        ("truncated.json", "not valid json"),
        ("bad_gateway.html", "html"),
    ],
)
def test_unusable_bodies_raise_parse_error(name: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_timeline(fixture(name), instance=INSTANCE)
    assert message in str(info.value).lower()


@pytest.mark.parametrize("body", [b"", b"   ", b"{}", b'"x"', b"42", b"null", b"\xff\xfe\x00", b"[" * 100_000])
def test_other_non_arrays_raise_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_timeline(body, instance=INSTANCE)


def test_non_object_entries_and_bad_fields_are_skipped_not_raised() -> None:
    good = json.loads(fixture("tag_timeline.json"))[1]
    bad_date = {**good, "id": "5", "created_at": "yesterday"}
    bad_account = {**good, "id": "6", "account": {"acct": ""}}
    body = json.dumps([good, 7, None, bad_date, bad_account, {"id": True}]).encode()
    parsed = parse_timeline(body, instance=INSTANCE)
    assert [p.source_id for p in parsed.posts] == [good["uri"]]
    assert parsed.skipped == 5
    assert (parsed.oldest_id, parsed.newest_id) == ("5", good["id"])


def test_html_to_text_follows_mastodons_plain_text_rules() -> None:
    assert html_to_text("<p>a</p><p>b<br>c<br /><br>d</p>") == "a\nb\nc\nd"
    assert html_to_text("<p>a</p>\n<p>b</p>") == "a\nb"
    assert html_to_text("<p>x <!-- hidden --> y</p>") == "x  y"
    assert html_to_text("&lt;b&gt; &amp;amp; &#39;") == "<b> &amp; '"
    assert html_to_text("") == ""
    assert html_to_text("<p>nul\x00byte</p>") == "nulbyte"


def test_id_key_orders_numeric_ids_as_numbers() -> None:
    assert sorted(["10", "9", "113827341959233539", "0100"], key=id_key) == ["9", "10", "0100", "113827341959233539"]
    assert id_key("0100") == id_key("100")
    assert id_key("abc") < id_key("abcd")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
_status_keys = st.sampled_from(
    [
        "id",
        "uri",
        "url",
        "created_at",
        "content",
        "account",
        "reblog",
        "language",
        "tags",
        "spoiler_text",
        "replies_count",
        "reblogs_count",
        "favourites_count",
    ]
)
_statusish = st.dictionaries(
    _status_keys,
    _json
    | st.fixed_dictionaries({"acct": st.text(max_size=20)})
    | st.text(alphabet="<>/&;pbr#x0123456789 ", max_size=40),
    max_size=13,
)

_GOOD = json.loads(fixture("tag_timeline.json"))[1]


@st.composite
def _mutated_status(draw: st.DrawFn) -> dict:
    """A well-formed status with some fields replaced by arbitrary JSON or removed."""
    status = {**_GOOD, **draw(st.dictionaries(_status_keys, _json, max_size=4))}
    for key in draw(st.sets(_status_keys, max_size=3)):
        status.pop(key, None)
    return status


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_raises_only_parse_error_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_timeline(body, instance=INSTANCE)
    except ParseError:
        pass


@settings(max_examples=150, deadline=None)
@given(_json | st.lists(_mutated_status() | _statusish | _json, max_size=6))
def test_parse_raises_only_parse_error_on_arbitrary_json(value: object) -> None:
    try:
        parsed = parse_timeline(json.dumps(value).encode(), instance=INSTANCE)
    except ParseError:
        assert not isinstance(value, list)
        return
    assert isinstance(value, list)
    assert len(parsed.posts) + parsed.skipped <= len(value)
    for post in parsed.posts:
        assert post.created_at.tzinfo is not None and isinstance(post.text, str) and post.source_id


MAPLE = "https://mstdn.murmur.invalid/users/maple_jo/statuses/113827324232794113"


def timeline() -> Page:
    return parse_timeline(fixture("tag_timeline.json"), instance=INSTANCE)
LIN_REPLY = "https://other.murmur.invalid/users/lin/statuses/113827329987000000"


def test_a_reply_names_its_parent_by_the_instance_and_the_local_id_until_resolved() -> None:
    page = parse_timeline(fixture("replies_timeline.json"), instance=INSTANCE)
    parents = {p.source_id: p.parent_source_id for p in page.posts}
    assert parents[LIN_REPLY] == "mstdn.murmur.invalid:113827324232794113"
    assert all(p.root_source_id is None for p in page.posts)  # a status does not name its root
    assert all(p.parent_source_id is None for p in timeline().posts)  # tag_timeline.json has no replies
    with_port = parse_timeline(fixture("replies_timeline.json"), instance="localhost:8080").posts[0]
    assert with_port.parent_source_id == "localhost:8080:113827324232794113"  # two local instances never clash


def test_a_context_resolves_the_replies_parents_to_uris_and_roots_them_at_the_top_post() -> None:
    focus = next(p for p in timeline().posts if p.source_id == MAPLE)
    context = parse_context(fixture("context.json"), instance=INSTANCE, focus=focus)
    replies = {p.source_id: p for p in context.replies}
    assert context.root == MAPLE and context.skipped == 1  # the status without content or account
    assert replies[LIN_REPLY].parent_source_id == MAPLE
    own = "https://mstdn.murmur.invalid/users/maple_jo/statuses/113827335120000002"
    assert replies[own].parent_source_id == LIN_REPLY  # lin's reply by its local id here, resolved
    assert {p.root_source_id for p in context.replies} == {MAPLE}
    assert (context.focus.parent_source_id, context.focus.root_source_id) == (None, None)  # a top-level post


def test_a_context_of_a_reply_gives_it_the_first_ancestor_as_root() -> None:
    focus = next(p for p in parse_timeline(fixture("replies_timeline.json"), instance=INSTANCE).posts
                 if p.source_id == LIN_REPLY)
    context = parse_context(fixture("context_of_reply.json"), instance=INSTANCE, focus=focus)
    assert (context.focus.parent_source_id, context.focus.root_source_id) == (MAPLE, MAPLE)
    (reply,) = context.replies
    assert (reply.parent_source_id, reply.root_source_id) == (LIN_REPLY, MAPLE)


def test_a_context_that_is_no_context_is_a_parse_error() -> None:
    focus = timeline().posts[0]
    with pytest.raises(ParseError, match="context"):
        parse_context(b"[]", instance=INSTANCE, focus=focus)
