"""The Zeeschuimer format parser on captures of each platform and variant (tests/fixtures/zeeschuimer, see its
README for where each shape comes from)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from murmur.crawler.items import Post
from murmur.crawler.parsers.imported import Imported
from murmur.crawler.parsers.zeeschuimer import SKIP_KINDS, items, sniff, source_of
from murmur.crawler.parsers.zeeschuimer.common import search_query

FIXTURES = Path(__file__).parent / "fixtures" / "zeeschuimer"


def lines(name: str) -> list[Any]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def only(result: list[Imported]) -> Imported:
    assert len(result) == 1, result
    return result[0]


def post_of(envelope: Any) -> tuple[Post, str | None]:
    got = only(items(envelope))
    assert got.post is not None, got.skip
    assert got.skip is None
    return got.post, got.query


def skip_of(envelope: Any) -> str | None:
    got = only(items(envelope))
    assert got.post is None
    return got.skip


def test_every_fixture_line_maps_without_raising_and_sets_via_import() -> None:
    for path in sorted(FIXTURES.glob("*.ndjson")):
        for line in lines(path.name):
            for got in items(line):
                assert (got.post is None) != (got.skip is None)
                assert got.skip is None or got.skip in SKIP_KINDS
                if got.post is not None:
                    assert got.post.via == "import"
                    assert got.post.created_at.tzinfo is not None
                    assert "zeeschuimer" in got.post.raw


def test_sniff() -> None:
    assert sniff(lines("rednote.ndjson")[0])
    assert sniff(lines("x.ndjson")[0])
    assert not sniff({"id": "t1_a", "body": "a reddit comment"})
    assert not sniff({"source_platform": "tiktok.com"})  # no data
    assert not sniff([1, 2])
    assert not sniff(None)


def test_sources() -> None:
    assert [source_of(p) for p in ("xiaohongshu.com", "xiaohongshu-comments", "tiktok.com", "tiktok-comments",
                                   "douyin.com", "instagram.com", "threads.net", "twitter.com", "9gag.com")] == [
        "rednote", "rednote", "tiktok", "tiktok", "douyin", "instagram", "threads", "x", None]


# --- RedNote notes ---


def test_rednote_search_card_takes_its_time_from_the_note_id() -> None:
    post, query = post_of(lines("rednote.ndjson")[0])
    assert post.source == "rednote"
    assert post.source_id == "67862088000000001203ef7d"
    assert post.url == "https://www.xiaohongshu.com/explore/67862088000000001203ef7d"  # as the spider: no token
    assert post.text == "TikTok难民来小红书了"
    assert post.author == "小红薯Rita"
    assert post.metrics == {"likes": 12000}
    assert post.created_at == at(2025, 1, 14, 8, 30)
    assert post.raw["date_from"] == "note_id"
    assert post.raw["xsec_token"] == "ABinventedtoken1="
    assert post.region is None
    assert query == "TikTok难民"  # the keyword in the search tab's URL


def test_rednote_detail_card() -> None:
    post, query = post_of(lines("rednote.ndjson")[1])
    assert post.source_id == "67877910000000000b0205a1"
    assert post.text == "Hello from a TikTok refugee\n\n第一次来小红书 #TikTok难民 #cat tax 大家好"
    assert post.tags == ["TikTok难民", "猫", "cat tax"]
    assert post.created_at == datetime(2025, 1, 15, 9, 0, 0, 123000, tzinfo=UTC)
    assert "date_from" not in post.raw
    assert post.region == "美国"
    assert post.metrics == {"likes": 10, "collects": 3456, "replies": 15000, "reposts": 88}
    assert post.raw["collected_count"] == 3456
    assert query is None  # a note page, not a search


def test_rednote_user_page_item() -> None:
    post, _ = post_of(lines("rednote.ndjson")[2])
    assert (post.source_id, post.text, post.author) == ("6788d8a000000000120226c4", "在美国的第一天", "Ollie在小红书")
    assert post.metrics == {"likes": 300_000_000}
    assert post.created_at == at(2025, 1, 16, 10)


def test_rednote_embedded_state_note() -> None:
    post, _ = post_of(lines("rednote.ndjson")[3])
    assert post.source_id == "678a3830000000001a01f3b2"
    assert post.text == "Learning Chinese with my cat #学中文"  # no title: the desc alone
    assert post.tags == ["学中文"]
    assert post.region == "加拿大"
    assert post.author == "Wendy"
    assert post.metrics == {"likes": 2500, "collects": 12, "replies": 7, "reposts": 0}
    assert post.created_at == at(2025, 1, 17, 11)


def test_rednote_html_card() -> None:
    post, _ = post_of(lines("rednote.ndjson")[4])
    assert (post.source_id, post.text, post.author) == ("678b97c00000000017038d11", "小红书上的美国人", "Rail fan")
    assert post.metrics == {}  # "赞" is a label, not a count
    assert post.raw["date_from"] == "note_id"


def test_rednote_skips() -> None:
    stub, no_id, no_time = lines("rednote.ndjson")[5:8]
    assert skip_of(stub) == "stub"
    assert skip_of(no_id) == "no_id"
    assert skip_of(no_time) == "no_time"  # no time and an id that carries none: never the capture time


# --- RedNote comments ---


def test_rednote_comment_and_its_sub_comments() -> None:
    got = items(lines("rednote_comments.ndjson")[0])
    assert [g.skip for g in got] == [None, None, None, "no_time"]
    top, reply, reply_to_reply = (g.post for g in got[:3])
    assert top is not None and reply is not None and reply_to_reply is not None
    note, top_id = "67877910000000000b0205a1", "67878720000000002c0a1111"
    assert (top.source, top.source_id) == ("rednote", top_id)
    assert top.text == "欢迎欢迎 #TikTok难民 welcome!"
    assert top.tags == ["TikTok难民"]
    assert top.created_at == at(2025, 1, 15, 10)
    assert top.region == "上海"
    assert top.author == "上海阿姨"
    assert top.metrics == {"likes": 11000, "replies": 2}
    assert (top.parent_source_id, top.root_source_id) == (note, note)
    assert top.url == f"https://www.xiaohongshu.com/explore/{note}"
    assert "sub_comments" not in top.raw
    assert (reply.source_id, reply.parent_source_id, reply.root_source_id) == ("67878e28000000002c0a2222", top_id, note)
    assert reply.region == "美国"
    assert (reply_to_reply.parent_source_id, reply_to_reply.root_source_id) == ("67878e28000000002c0a2222", note)


# --- TikTok ---


def test_tiktok_api_item_from_a_search() -> None:
    post, query = post_of(lines("tiktok.ndjson")[0])
    assert post.source == "tiktok"
    assert post.source_id == "7459787521152800376"
    assert post.url == "https://www.tiktok.com/@refugee.rita/video/7459787521152800376"
    assert post.author == "refugee.rita"
    assert post.created_at == at(2025, 1, 14, 15, 5, 30)
    assert post.tags == ["tiktokrefugee", "xiaohongshu", "fyp"]
    assert post.metrics == {"likes": 866123, "replies": 4321, "reposts": 999, "views": 5412345, "saves": 59149}
    assert post.region == "US"
    assert query == "tiktok refugee"


def test_tiktok_page_state_item_with_a_string_author() -> None:
    post, query = post_of(lines("tiktok.ndjson")[1])
    assert (post.author, post.url) == ("old.timer.ollie", "https://www.tiktok.com/@old.timer.ollie/video/7460064417557449741")
    assert post.created_at == at(2025, 1, 15, 9)
    assert post.tags == ["banban"]
    assert post.metrics == {"likes": 10, "replies": 2, "reposts": 1, "views": 300}
    assert query is None


def test_tiktok_skips() -> None:
    assert [skip_of(line) for line in lines("tiktok.ndjson")[2:]] == ["ad", "live", "no_id"]


def test_tiktok_comments() -> None:
    top_line, reply_line = lines("tiktok_comments.ndjson")
    top, _ = post_of(top_line)
    video = "7459787521152800376"
    assert (top.source, top.source_id, top.text) == ("tiktok", "7459931000000000001", "see you on 小红书 #bye")
    assert (top.parent_source_id, top.root_source_id) == (video, video)
    assert top.author == "commenter.one"
    assert top.metrics == {"likes": 120, "replies": 3}
    assert top.created_at == at(2025, 1, 14, 16)
    assert top.url is not None and top.url.startswith(f"https://www.tiktok.com/@refugee.rita/video/{video}")
    reply, _ = post_of(reply_line)
    assert (reply.parent_source_id, reply.root_source_id) == ("7459931000000000001", video)
    assert reply.author == "Two"  # no unique_id: the nickname
    assert reply.url == f"https://www.tiktok.com/@_/video/{video}"


# --- Douyin ---


def test_douyin_api_and_embedded_items() -> None:
    api, embedded, live = lines("douyin.ndjson")
    post, query = post_of(api)
    assert (post.source, post.source_id) == ("douyin", "7459956184213094519")
    assert post.url == "https://www.douyin.com/video/7459956184213094519"
    assert post.text == "美国网友涌入小红书 #TikTok难民 #小红书"
    assert post.tags == ["TikTok难民", "小红书"]
    assert post.author == "抖音新闻"
    assert post.metrics == {"likes": 52000, "replies": 3100, "reposts": 800, "views": 0, "saves": 900}
    assert post.created_at == at(2025, 1, 15, 2)
    assert post.region == "CN"
    assert query == "TikTok难民"
    post, _ = post_of(embedded)
    assert (post.source_id, post.author, post.tags) == ("7459971646095360136", "观察者", ["中美网友"])
    assert post.metrics["likes"] == 7
    assert skip_of(live) == "live"


# --- Instagram and Threads ---


def test_instagram_item_list_and_graph_shapes() -> None:
    search, hidden, graph, ad, grid = lines("instagram.ndjson")
    post, query = post_of(search)
    assert (post.source, post.source_id) == ("instagram", "3545000000000000001")
    assert post.url == "https://www.instagram.com/p/DEinvAAAAAA/"
    assert (post.author, post.text) == ("insta.rita", "Goodbye TikTok #tiktokban #rednote")
    assert post.tags == ["tiktokban", "rednote"]
    assert post.metrics == {"likes": 321, "replies": 12}
    assert post.created_at == at(2025, 1, 15, 12)
    assert query == "rednote"
    post, _ = post_of(hidden)
    assert (post.source_id, post.text) == ("3545000000000000002", "")  # caption null
    assert post.metrics == {"views": 800}  # hidden likes are made up: left out
    post, _ = post_of(graph)
    assert (post.source_id, post.author, post.text) == ("3545000000000000003", "graph.user", "old graph shape #legacy")
    assert post.metrics == {"likes": 44, "replies": 3}
    assert post.created_at == at(2025, 1, 17, 12)
    assert skip_of(ad) == "ad"
    assert skip_of(grid) == "no_time"


def test_threads_post() -> None:
    found, no_time = lines("threads.ndjson")
    post, query = post_of(found)
    assert (post.source, post.source_id) == ("threads", "3546000000000000001")
    assert post.url == "https://www.threads.com/@threads.rita/post/DEthrAAAAAA"
    assert (post.author, post.text) == ("threads.rita", "Is everyone on RedNote now?")
    assert post.metrics == {"likes": 77, "replies": 9, "reposts": 2, "quotes": 1, "shares": 4}
    assert post.created_at == at(2025, 1, 15, 13)
    assert query == "rednote"
    assert skip_of(no_time) == "no_time"


# --- X ---


def test_x_search_result_reply_and_promoted() -> None:
    search, reply, promoted = lines("x.ndjson")
    post, query = post_of(search)
    assert (post.source, post.source_id, post.author) == ("x", "1879500000000000001", "x.rita")
    assert post.url == "https://x.com/x.rita/status/1879500000000000001"
    assert post.text == "Everyone is moving to #RedNote #TikTokBan"
    assert post.tags == ["RedNote", "TikTokBan"]
    assert post.created_at == at(2025, 1, 14, 15, 5, 30)
    assert post.metrics == {"likes": 10, "replies": 2, "reposts": 3, "quotes": 1, "views": 12345}
    assert (post.parent_source_id, post.root_source_id) == (None, None)
    assert query == "rednote lang:en"  # the request's rawQuery, before the tab's q
    post, query = post_of(reply)
    assert post.author == "x.ollie"  # newer responses: screen_name under result.core
    assert (post.parent_source_id, post.root_source_id) == ("1879500000000000001", "1879500000000000001")
    assert query is None
    assert skip_of(promoted) == "ad"


# --- bad input and queries ---


def test_bad_lines_are_skipped_by_kind() -> None:
    not_object, unknown, data_not_object = lines("bad.ndjson")
    assert skip_of(not_object) == "malformed"
    assert skip_of(unknown) == "unknown_platform"
    assert skip_of(data_not_object) == "malformed"
    assert skip_of("a string") == "malformed"


@pytest.mark.parametrize("data", [
    {"id": "67862088000000001203ef7d", "note_card": {"display_title": ["x"], "user": "nobody", "interact_info": []}},
    {"id": "67862088000000001203ef7d", "note_card": {"time": "soon", "tag_list": "x", "desc": 5}},
])
def test_odd_shapes_never_raise(data: dict[str, Any]) -> None:
    for got in items({"source_platform": "xiaohongshu.com", "item_id": "x", "data": data}):
        assert got.post is not None or got.skip in SKIP_KINDS


@pytest.mark.parametrize(("urls", "expected"), [
    (("https://www.xiaohongshu.com/search_result?keyword=%E5%B0%8F%E7%BA%A2%E4%B9%A6&type=51",), "小红书"),
    (("https://www.tiktok.com/search/video?q=rednote",), "rednote"),
    (("https://www.tiktok.com/api/search/item/full/?keyword=tiktok+ban&offset=0",), "tiktok ban"),
    (("https://www.douyin.com/search/%E7%8C%AB?type=video",), "猫"),
    (("https://www.tiktok.com/@someone/video/1", "https://www.tiktok.com/foryou"), None),
    (("https://www.tiktok.com/search/video",), None),
    (("", "https://www.xiaohongshu.com/explore/abc"), None),
])
def test_search_query(urls: tuple[str, ...], expected: str | None) -> None:
    assert search_query(*urls) == expected
