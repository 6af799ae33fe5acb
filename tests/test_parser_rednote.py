"""RedNote page parsing (crawler/parsers/rednote.py) on saved page shapes (tests/fixtures/rednote, see its
README): the embedded `window.__INITIAL_STATE__`, counts, topics, walls and URLs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.rednote import (
    Blocked,
    ListedNote,
    PageRef,
    classify_url,
    extract_state,
    note_url,
    parse_count,
    parse_note,
    parse_profile,
    redirect_problem,
    topics_to_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "rednote"
ZH_ID, EN_ID = "6784c1a2000000001c00a1b2", "6785d3e4000000001d01b2c3"
ZH_URL = f"https://www.xiaohongshu.com/explore/{ZH_ID}?xsec_token=ABk9x1Qw2Er3Ty4Ui5Op6As7Df8Gh9Jk0Lz1Xc2Vb3Nm4%3D"
PROFILE_URL = "https://www.xiaohongshu.com/user/profile/64b2f0c1000000001203d4e5"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_a_note_page_gives_one_post_with_the_canonical_url_author_and_time() -> None:
    page = parse_note(fixture("note_zh.html"), ZH_URL)
    assert page.blocked is None and page.note_id == ZH_ID
    post = page.post
    assert post is not None
    assert (post.source, post.source_id) == ("rednote", ZH_ID)
    assert post.url == f"https://www.xiaohongshu.com/explore/{ZH_ID}"  # no token: it is the sharer's
    assert post.author == "俄亥俄小土豆"
    assert post.raw["user"]["userId"] == "64b2f0c1000000001203d4e5"  # the id stays in raw
    assert post.created_at == datetime(2025, 1, 14, 16, 0, tzinfo=UTC)
    assert post.created_at.tzinfo is not None
    assert post.lang is None  # left to the language pipeline


def test_text_is_title_then_desc_with_inline_topics_as_plain_hashtags() -> None:
    post = parse_note(fixture("note_zh.html"), ZH_URL).post
    assert post is not None
    assert post.text == (
        "美国TikTok难民第一次来小红书\n\n"
        "大家好！我是从TikTok来的，这里的人太友好了🥹\n请多多关照，我在学中文～\n"
        "#TikTok难民 #小红书 #中美网友对账"
    )
    assert "[话题]" not in post.text
    assert post.tags == ["TikTok难民", "小红书", "中美网友对账"]


def test_counts_shown_as_text_become_ints() -> None:
    post = parse_note(fixture("note_zh.html"), ZH_URL).post
    assert post is not None
    # likedCount "1.2万", commentCount "10+", shareCount "1,234", collectedCount "3456"
    assert post.metrics == {"likes": 12000, "replies": 10, "reposts": 1234, "collects": 3456}
    assert post.raw["interactInfo"]["collectedCount"] == "3456"  # the platform's record, as it came
    assert post.raw["collected_count"] == 3456


def test_undefined_unicode_escapes_and_the_word_undefined_inside_strings() -> None:
    post = parse_note(fixture("note_en_video.html"), f"https://www.xiaohongshu.com/discovery/item/{EN_ID}").post
    assert post is not None
    assert post.source_id == EN_ID and post.author == "maple_jo"
    # "\\o\u002F" in the page is a backslash, an "o" and a slash; "undefined" in a string stays text.
    assert "my feed was undefined before this app \\o/ the cat videos" in post.text
    assert post.raw["shareInfo"] is None  # a bare `undefined` value
    assert post.raw["video"]["media"]["stream"]["h264"][0]["masterUrl"].startswith("http://sns-video-hw")
    assert post.tags == ["TikTokRefugee", "RedNote"]
    assert post.metrics == {"likes": 987, "replies": 0, "reposts": 12, "collects": 56}


def test_the_state_is_read_from_its_script_tag_only() -> None:
    state = extract_state(fixture("note_zh.html"))
    assert state is not None
    assert set(state) == {"global", "user", "login", "note"}
    assert state["global"]["pwaAddDesktopPrompt"] is None
    assert state["note"]["noteDetailMap"][ZH_ID]["note"]["user"]["avatar"].startswith("https://sns-avatar-qc")
    assert extract_state(b"<html><body>no state</body></html>") is None


def test_js_literals_json_does_not_take_are_read_without_eval() -> None:
    body = (
        "<script>window.__INITIAL_STATE__ = {\"a\":undefined,\"b\":[1e5,-2.5,undefined,NaN],"
        "\"c\":'single \\'quoted\\' \"x\"',\"d\":\"\\x41\\v\",\"m\":new Map([[\"k\",1]]),\"s\":new Set(),"
        "\"e\":\"line\nbreak\"};(function(){var x={}})()</script>"
    )
    assert extract_state(body) == {
        "a": None, "b": [100000.0, -2.5, None, None], "c": "single 'quoted' \"x\"", "d": "A\x0b",
        "m": [["k", 1]], "s": [], "e": "line\nbreak",
    }


def test_a_cut_off_or_unreadable_state_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="cut off"):
        parse_note(fixture("truncated.html"), ZH_URL)
    with pytest.raises(ParseError, match="not readable"):
        extract_state("<script>window.__INITIAL_STATE__={\"a\":alert(1)}</script>")
    with pytest.raises(ParseError, match="no window.__INITIAL_STATE__"):
        parse_note(b"<html><body><p>hello</p></body></html>", ZH_URL)


def test_a_note_without_a_time_is_malformed_not_a_post_dated_now() -> None:
    state = extract_state(fixture("note_zh.html"))
    assert state is not None
    note = state["note"]["noteDetailMap"][ZH_ID]["note"]
    del note["time"], note["lastUpdateTime"]
    body = f"<script>window.__INITIAL_STATE__={json.dumps(state, ensure_ascii=False)}</script>"
    with pytest.raises(ParseError, match="no usable time"):
        parse_note(body, ZH_URL)


def test_a_captcha_page_is_blocked_not_an_empty_post() -> None:
    page = parse_note(fixture("captcha.html"), ZH_URL)
    assert page.post is None and page.blocked == Blocked("captcha")
    assert page.note_id == ZH_ID


def test_a_login_wall_is_blocked() -> None:
    page = parse_note(fixture("login_wall.html"), ZH_URL)
    assert page.post is None
    assert page.blocked is not None and page.blocked.reason == "login wall" and not page.blocked.deleted


def test_a_deleted_note_says_so() -> None:
    page = parse_note(fixture("deleted.html"), ZH_URL)
    assert page.post is None and page.blocked == Blocked("deleted", "笔记不存在")
    assert page.blocked.deleted


def test_a_state_without_the_requested_note_is_blocked_even_if_it_holds_another() -> None:
    page = parse_note(fixture("other_note.html"), ZH_URL)  # the page of EN_ID, asked for as ZH_ID
    assert page.post is None and page.blocked is not None and page.blocked.reason == "not in state"


def test_an_entry_that_was_not_server_rendered_is_blocked() -> None:
    state = {"note": {"noteDetailMap": {ZH_ID: {"note": {}}},
                      "serverRequestInfo": {"state": "success", "errorCode": 0, "errMsg": ""}}}
    body = f"<script>window.__INITIAL_STATE__={json.dumps(state)}</script>"
    assert parse_note(body, ZH_URL).blocked == Blocked("not in state", "the page state holds no record for this note")


def test_a_failed_server_request_is_unavailable() -> None:
    body = ("<script>window.__INITIAL_STATE__={\"note\":{\"noteDetailMap\":{},\"serverRequestInfo\":"
            "{\"state\":\"fail\",\"errorCode\":-510001,\"errMsg\":\"当前内容无法展示\"}}}</script>")
    assert parse_note(body, ZH_URL).blocked == Blocked("unavailable", "当前内容无法展示")


def test_a_page_at_another_path_names_its_note_in_the_state() -> None:
    post = parse_note(fixture("note_zh.html"), "http://127.0.0.1:8000/saved/page.html").post
    assert post is not None and post.source_id == ZH_ID


def test_only_topic_tags_count_and_inline_topics_join_them() -> None:
    state = extract_state(fixture("note_zh.html"))
    assert state is not None
    note = state["note"]["noteDetailMap"][ZH_ID]["note"]
    note["tagList"].append({"id": "", "name": "俄亥俄州", "type": "location"})
    note["desc"] = "来玩 #RedNote[话题]# #小红书[话题]#"
    post = parse_note(f"<script>window.__INITIAL_STATE__={json.dumps(state)}</script>", ZH_URL).post
    assert post is not None
    assert post.tags == ["TikTok难民", "小红书", "中美网友对账", "RedNote"]
    assert post.text.endswith("来玩 #RedNote #小红书")


def test_a_note_without_a_title_is_its_desc() -> None:
    state = extract_state(fixture("note_zh.html"))
    assert state is not None
    note = state["note"]["noteDetailMap"][ZH_ID]["note"]
    note["title"] = ""
    post = parse_note(f"<script>window.__INITIAL_STATE__={json.dumps(state)}</script>", ZH_URL).post
    assert post is not None and post.text.startswith("大家好！")


@pytest.mark.parametrize(
    ("shown", "count"),
    [(12, 12), ("12", 12), ("1,234", 1234), ("1.2万", 12000), ("10万+", 100000), ("3亿", 300000000),
     ("10+", 10), ("1千+", 1000), ("1.5w", 15000), (" 7 ", 7), ("", None), ("赞", None), (None, None),
     (-1, None), (True, None)],
)
def test_parse_count(shown: object, count: int | None) -> None:
    assert parse_count(shown) == count


@given(st.integers(min_value=0, max_value=10**12))
def test_parse_count_reads_every_plain_and_grouped_number(n: int) -> None:
    assert parse_count(str(n)) == n
    assert parse_count(f"{n:,}") == n


def test_topics_to_text() -> None:
    assert topics_to_text("hi #小红书[话题]##TikTok难民[话题]# #not a topic") == (
        "hi #小红书#TikTok难民 #not a topic", ["小红书", "TikTok难民"]
    )


def test_a_profile_page_lists_its_own_notes_with_their_tokens() -> None:
    page = parse_profile(fixture("profile.html"), PROFILE_URL)
    assert page.blocked is None
    assert (page.user_id, page.nickname) == ("64b2f0c1000000001203d4e5", "俄亥俄小土豆")
    assert page.notes == [
        ListedNote(ZH_ID, "AB6784c1a2tokenFromState="),  # the state's own token
        ListedNote("6783b0f1000000001b009f8e", "ABhref9f8eToken="),  # from the note card's link
        ListedNote("6782a9e0000000001a008e7d", "AB6782a9e0tokenFromState="),
    ]  # the second tab (collected notes of other users) is left out


def test_a_profile_behind_a_login_wall_is_blocked() -> None:
    page = parse_profile(fixture("profile_login_wall.html"), PROFILE_URL)
    assert page.notes == [] and page.blocked is not None and page.blocked.reason == "login wall"
    assert parse_profile(fixture("captcha.html"), PROFILE_URL).blocked == Blocked("captcha")


@pytest.mark.parametrize(
    ("url", "ref"),
    [
        (ZH_URL, PageRef("note", ZH_ID, "ABk9x1Qw2Er3Ty4Ui5Op6As7Df8Gh9Jk0Lz1Xc2Vb3Nm4=")),
        (f"https://xiaohongshu.com/discovery/item/{ZH_ID}?app_platform=ios&xsec_token=T&amp;xsec_source=app_share",
         PageRef("note", ZH_ID, "T", "app_share")),
        (f"https://www.xiaohongshu.com/user/profile/64b2f0c1000000001203d4e5/{ZH_ID}",  # RSSHub's item links
         PageRef("note", ZH_ID)),
        (PROFILE_URL + "?xsec_token=P", PageRef("profile", "64b2f0c1000000001203d4e5", "P")),
        (f"http://127.0.0.1:5000/explore/{ZH_ID}", PageRef("note", ZH_ID)),
        ("https://www.xiaohongshu.com/explore", None),
        ("https://www.xiaohongshu.com/explore/not-a-note-id", None),
    ],
)
def test_classify_url(url: str, ref: PageRef | None) -> None:
    assert classify_url(url) == ref


def test_note_url_keeps_only_the_share_token() -> None:
    assert note_url(ZH_ID) == f"https://www.xiaohongshu.com/explore/{ZH_ID}"
    assert note_url(ZH_ID, xsec_token="AB=", xsec_source="pc_user", base="http://127.0.0.1:9/") == (
        f"http://127.0.0.1:9/explore/{ZH_ID}?xsec_token=AB%3D&xsec_source=pc_user"
    )


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("https://www.xiaohongshu.com/website-login/captcha?redirectPath=https%3A%2F%2Fwww.xiaohongshu.com"
         "%2Fexplore%2Fx&verifyUuid=a5f3&verifyType=102&verifyBiz=461", "captcha"),
        ("https://www.xiaohongshu.com/login?redirectPath=%2Fexplore%2Fx", "login wall"),
        ("https://www.xiaohongshu.com/website-login/error", "login wall"),
        ("https://www.xiaohongshu.com/404?source=note&noteId=x&errorCode=-510000", "deleted"),
        ("https://www.xiaohongshu.com/404?source=/404/sec_yJwItGEJ&error_code=300031", "unavailable"),
        (f"https://www.xiaohongshu.com/explore/{ZH_ID}", None),
    ],
)
def test_redirect_problem(location: str, reason: str | None) -> None:
    problem = redirect_problem(location)
    assert (problem.reason if problem else None) == reason


def test_fixtures_hold_the_js_quirks_they_are_meant_to_test() -> None:
    page = fixture("note_zh.html").decode()
    assert re.search(r"window\.__INITIAL_STATE__=\{.*\}</script>", page)
    assert ":undefined" in page and "\\u002F" in page and "[话题]#" in page
