"""MediaCrawler rows -> posts (tests/fixtures/mediacrawler, see its README): one test per platform and variant."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from murmur.crawler.items import Post
from murmur.crawler.parsers.imported import Imported
from murmur.crawler.parsers.mediacrawler import describe_path, items

DATA = Path(__file__).parent / "fixtures" / "mediacrawler" / "data"
T = datetime(2025, 1, 14, 15, 5, 30, tzinfo=UTC)


def rows(relative: str) -> list[dict[str, Any]]:
    """A fixture file's rows, read the way each format is written: a JSON array, JSON lines, utf-8-sig CSV."""
    path = DATA / relative
    if path.suffix == ".json":
        return list(json.loads(path.read_text(encoding="utf-8")))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def parse(relative: str) -> list[Imported]:
    described = describe_path(DATA / relative)
    assert described is not None, relative
    platform, kind = described
    return [out for row in rows(relative) for out in items(row, platform=platform, kind=kind)]


def posts(relative: str) -> list[Post]:
    return [out.post for out in parse(relative) if out.post is not None]


def by_id(found: list[Post], source_id: str) -> Post:
    (post,) = [p for p in found if p.source_id == source_id]
    return post


# --- file layout ---


@pytest.mark.parametrize(("path", "expected"), [
    ("data/xhs/json/search_contents_2025-01-14.json", ("xhs", "contents")),
    ("data/xhs/jsonl/detail_comments_2026-08-02.jsonl", ("xhs", "comments")),
    ("data/douyin/csv/creator_contents_2025-01-14.csv", ("douyin", "contents")),
    ("/home/me/mc/bili/jsonl/search_comments_2025-01-14.jsonl.gz", ("bili", "comments")),  # SAVE_DATA_PATH, gzipped
    ("data/xhs/1_search_contents_2024-01-14.csv", ("xhs", "contents")),  # the older CSV names: a counter prefix
    ("data/bilibili/3_search_comments_2024-01-14.csv", ("bili", "comments")),  # ... and data/bilibili
    ("data/weibo/json/search_contents_20240114.json", ("weibo", "contents")),
    ("data/kuaishou/jsonl/search_contents_2025-01-14.jsonl.zst", ("kuaishou", "contents")),
    ("data/tieba/jsonl/search_contents_2025-01-14.jsonl", ("tieba", "contents")),  # named; items() skips it
    ("data/zhihu/json/search_comments_2025-01-14.json", ("zhihu", "comments")),
])
def test_describe_path_reads_platform_and_kind_from_the_layout(path: str, expected: tuple[str, str]) -> None:
    assert describe_path(Path(path)) == expected


@pytest.mark.parametrize("path", [
    "data/xhs/jsonl/search_creators_2025-01-14.jsonl",  # creators are people, not posts
    "data/xhs/jsonl/notes.jsonl",
    "data/juejin/jsonl/search_contents_2025-01-14.jsonl",  # a fork's platform
    "data/xhs/json/search_contents_2025-01-14.csv",  # an extension its folder does not hold
    "search_contents_2025-01-14.jsonl",  # no platform folder
    "RS_2025-01.zst",
])
def test_describe_path_is_none_for_other_files(path: str) -> None:
    assert describe_path(Path(path)) is None


def test_every_fixture_file_is_described() -> None:
    for path in DATA.rglob("*"):
        if path.is_file():
            assert describe_path(path) is not None, path


# --- RedNote (xhs) ---


def test_xhs_json_note_merges_with_the_rednote_spider() -> None:
    post = by_id(posts("xhs/json/search_contents_2025-01-14.json"), "6785a1f2000000001a03b7c1")
    assert post.source == "rednote" and post.via == "import"
    # The spider's URL: /explore/<id>, without MediaCrawler's xsec_token and xsec_source.
    assert post.url == "https://www.xiaohongshu.com/explore/6785a1f2000000001a03b7c1"
    assert post.created_at == T
    assert post.author == "Maple in Ohio"
    assert post.text == "TikTok难民报到\n\n来自俄亥俄的TikTok难民报到！#TikTok难民 #小红书 请多关照"
    assert post.tags == ["TikTok难民", "小红书"]
    assert post.metrics == {"likes": 13000, "collects": 2156, "replies": 10, "reposts": 987}
    assert post.region == "美国"
    assert post.parent_source_id is None and post.root_source_id is None
    assert post.raw["note_id"] == "6785a1f2000000001a03b7c1" and post.raw["collected_count"] == 2156


def test_xhs_note_query_is_its_source_keyword() -> None:
    found = parse("xhs/json/search_contents_2025-01-14.json")
    assert [out.query for out in found if out.post] == ["TikTok难民", "TikTok难民"]


def test_xhs_note_without_title_is_its_desc_once() -> None:
    post = by_id(posts("xhs/json/search_contents_2025-01-14.json"), "6785b3c4000000001b02a9d2")
    # MediaCrawler writes desc[:255] as the title of a note that has none: the text is not doubled.
    assert post.text == "hello from texas, learning chinese 🙏 #tiktokrefugee"
    assert post.tags == ["tiktokrefugee"]
    assert post.metrics == {"likes": 856, "collects": 12, "replies": 0}  # share_count "" is no count
    assert post.created_at == datetime(2025, 1, 14, 16, 5, 30, tzinfo=UTC)


def test_xhs_rows_without_id_or_time_are_skipped() -> None:
    skips = [out.skip for out in parse("xhs/json/search_contents_2025-01-14.json") if out.skip]
    assert skips == ["no_id", "no_time"]


def test_xhs_comments_link_to_note_and_parent() -> None:
    found = posts("xhs/json/search_comments_2025-01-14.json")
    top = by_id(found, "6785a9aa000000001f00c001")
    reply = by_id(found, "6785aabb000000001f00c002")
    note = "6785a1f2000000001a03b7c1"
    assert top.parent_source_id == note and top.root_source_id == note  # parent_comment_id 0: answers the note
    assert reply.parent_source_id == top.source_id and reply.root_source_id == note
    assert top.url == f"https://www.xiaohongshu.com/explore/{note}"
    assert top.text == "欢迎欢迎！[哇R]" and top.author == "成都小吃货" and top.region == "四川"
    assert top.metrics == {"likes": 1234, "replies": 3}
    assert top.created_at == datetime(2025, 1, 14, 15, 7, 30, tzinfo=UTC)
    assert reply.region == "美国" and reply.source == "rednote" and reply.via == "import"


def test_xhs_comment_has_no_query() -> None:
    assert all(out.query is None for out in parse("xhs/json/search_comments_2025-01-14.json"))


def test_xhs_anonymised_note_uses_the_creator_hash() -> None:
    (out,) = parse("xhs/jsonl/search_contents_2026-08-02.jsonl")
    post = out.post
    assert post is not None and out.query == "TikTok难民"
    assert post.source_id == "69a1b2c3000000001d04e5f6"
    assert post.author == "fbb8dff4972df6b2"  # creator_hash: 16 hex characters of the user id's sha256
    assert len(post.author) == 16 and post.raw["nickname"] == "M***o"
    assert post.region is None  # anonymised rows carry no ip_location
    assert post.metrics["likes"] == 25000
    assert post.created_at == datetime(2026, 8, 2, 8, 0, tzinfo=UTC)


def test_xhs_anonymised_comments_keep_their_thread() -> None:
    found = posts("xhs/jsonl/search_comments_2026-08-02.jsonl")
    top, reply = by_id(found, "69a1b2d4000000001f00d001"), by_id(found, "69a1b2e5000000001f00d002")
    assert top.parent_source_id == "69a1b2c3000000001d04e5f6"
    assert reply.parent_source_id == top.source_id and reply.root_source_id == "69a1b2c3000000001d04e5f6"
    assert top.author is not None and len(top.author) == 16 and top.region is None


def test_xhs_csv_rows_read_numbers_and_times_from_strings() -> None:
    (note,) = posts("xhs/csv/search_contents_2025-01-15.csv")
    assert note.source_id == "6787d7e8000000001e05a1b2"  # the first column, despite the utf-8-sig BOM
    assert note.created_at == datetime(2025, 1, 15, 15, 5, 30, tzinfo=UTC)
    assert note.metrics == {"likes": 12000, "collects": 980, "replies": 321, "reposts": 45}
    assert note.tags == ["猫", "TikTok难民"] and note.region == "上海"
    (comment,) = posts("xhs/csv/search_comments_2025-01-15.csv")
    assert comment.parent_source_id == note.source_id == comment.root_source_id  # "0" is no parent
    assert comment.region is None  # "" is no place
    assert comment.created_at == datetime(2025, 1, 15, 15, 6, 30, tzinfo=UTC)


def test_xhs_old_csv_layout_without_source_keyword() -> None:
    (out,) = parse("xhs/1_search_contents_2024-01-14.csv")
    assert out.post is not None and out.query is None
    assert out.post.source_id == "65a3f1e2000000001a02b3c4" and out.post.region == "德国"
    assert out.post.created_at == datetime(2024, 1, 14, 8, 0, tzinfo=UTC)
    assert out.post.tags == []


# --- Douyin, Weibo, Bilibili, Kuaishou ---


def test_douyin_video() -> None:
    (out,) = parse("douyin/jsonl/search_contents_2025-01-14.jsonl")
    post = out.post
    assert post is not None and out.query == "TikTok难民"
    assert post.source == "douyin" and post.source_id == "7459812345678901234"
    assert post.url == "https://www.douyin.com/video/7459812345678901234"
    assert post.created_at == T  # create_time in seconds
    assert post.text == "美国网友涌入小红书 #TikTok难民 #小红书"  # title and desc are the same caption
    assert post.tags == ["TikTok难民", "小红书"]
    assert post.metrics == {"likes": 23456, "saves": 11034, "replies": 3021}  # share_count "None" is no count
    assert post.author == "新闻小助手" and post.region == "广东"


def test_douyin_comments() -> None:
    found = posts("douyin/jsonl/search_comments_2025-01-14.jsonl")
    top, reply = by_id(found, "7459823456789012345"), by_id(found, "7459834567890123456")
    assert top.parent_source_id == "7459812345678901234" == top.root_source_id  # reply_id "0"
    assert reply.parent_source_id == top.source_id and reply.root_source_id == "7459812345678901234"
    assert top.metrics == {"likes": 88, "replies": 2} and top.region == "北京"
    assert top.created_at == datetime(2025, 1, 14, 16, 5, 30, tzinfo=UTC)


def test_weibo_post_time_is_read_with_its_china_offset() -> None:
    (out,) = parse("weibo/jsonl/search_contents_2025-01-14.jsonl")
    post = out.post
    assert post is not None and out.query == "TikTok难民"
    assert post.source == "weibo" and post.source_id == "5122334455667788"
    assert post.url == "https://m.weibo.cn/detail/5122334455667788"
    # create_date_time "2025-01-14 23:05:30+08:00", not the create_time 8 hours late that older versions wrote.
    assert post.created_at == T
    assert post.tags == ["TikTok难民", "小红书"]
    assert post.metrics == {"likes": 5210, "replies": 1024, "reposts": 300}
    assert post.region == "北京"


def test_weibo_comments_rootid_is_the_thread() -> None:
    found = posts("weibo/jsonl/search_comments_2025-01-14.jsonl")
    top, reply = by_id(found, "5122334455660001"), by_id(found, "5122334455660002")
    # Weibo's rootid of a top-level comment is its own id.
    assert top.parent_source_id == "5122334455667788" == top.root_source_id
    assert reply.parent_source_id == top.source_id
    assert reply.region == "广东"  # "来自广东" as the API writes it
    assert reply.created_at == datetime(2025, 1, 14, 16, 5, 30, tzinfo=UTC)
    assert top.metrics == {"likes": 12, "replies": 1}


def test_bilibili_video_and_comments() -> None:
    (out,) = parse("bili/json/search_contents_2025-01-14.json")
    post = out.post
    assert post is not None and out.query == "TikTok难民"
    assert post.source == "bilibili" and post.source_id == "113812345678901"
    assert post.url == "https://www.bilibili.com/video/av113812345678901"
    assert post.text == "美国人涌入小红书是什么体验"  # desc "-" is Bilibili's empty description
    assert post.metrics == {"likes": 32012, "views": 1021345, "saves": 8123, "reposts": 2011, "replies": 1890,
                            "coins": 5120, "danmaku": 3300}
    assert post.created_at == T and post.region is None
    found = posts("bili/json/search_comments_2025-01-14.json")
    top, reply = by_id(found, "250123456789"), by_id(found, "250123456790")
    assert top.parent_source_id == post.source_id and reply.parent_source_id == top.source_id
    assert reply.root_source_id == post.source_id
    assert top.metrics == {"likes": 321, "replies": 5}


def test_kuaishou_video_in_milliseconds_and_anonymised_comment() -> None:
    (out,) = parse("kuaishou/jsonl/search_contents_2025-01-14.jsonl")
    post = out.post
    assert post is not None and out.query == "TikTok难民"
    assert post.source == "kuaishou" and post.source_id == "3xk9abcde2fghij4"
    assert post.url == "https://www.kuaishou.com/short-video/3xk9abcde2fghij4"
    assert post.created_at == T
    assert post.metrics == {"likes": 4521, "views": 120034}
    assert post.tags == ["TikTok难民"]
    (comment,) = posts("kuaishou/jsonl/search_comments_2026-08-02.jsonl")
    assert comment.parent_source_id == post.source_id == comment.root_source_id
    assert comment.author is not None and len(comment.author) == 16
    assert comment.created_at == datetime(2025, 1, 14, 15, 5, 35, tzinfo=UTC)


# --- skips ---


def test_tieba_and_zhihu_rows_are_unsupported() -> None:
    assert [out.skip for out in parse("tieba/jsonl/search_contents_2025-01-14.jsonl")] == ["unsupported_platform"]
    assert items({"content_id": "1"}, platform="zhihu", kind="contents") == [Imported(skip="unsupported_platform")]
    assert items({"note_id": "1"}, platform="myspace", kind="contents") == [Imported(skip="unsupported_platform")]


@pytest.mark.parametrize("row", [None, [], "note", 3])
def test_a_row_that_is_not_an_object_is_malformed(row: Any) -> None:
    assert items(row, platform="xhs", kind="contents") == [Imported(skip="malformed")]


@pytest.mark.parametrize(("row", "kind", "skip"), [
    ({"note_id": "None", "time": 1736867130000}, "contents", "no_id"),  # str(None), as CSV writes it
    ({"note_id": 0, "time": 1736867130000}, "contents", "no_id"),
    ({"note_id": "6785a1f2000000001a03b7c1", "time": "yesterday"}, "contents", "no_time"),
    ({"note_id": "6785a1f2000000001a03b7c1", "time": -5}, "contents", "no_time"),
    ({"comment_id": "", "create_time": 1736867130000, "note_id": "x"}, "comments", "no_id"),
    ({"comment_id": "c1", "create_time": None, "note_id": "x"}, "comments", "no_time"),
])
def test_rows_without_id_or_time(row: dict[str, Any], kind: str, skip: str) -> None:
    assert items(row, platform="xhs", kind=kind) == [Imported(skip=skip)]


def test_weibo_without_create_date_time_falls_back_to_create_time() -> None:
    (out,) = items({"note_id": "1", "content": "x", "create_time": "1736867130"}, platform="weibo", kind="contents")
    assert out.post is not None and out.post.created_at == T


@pytest.mark.parametrize("row", [
    {"note_id": {"a": 1}, "time": object()},
    {"note_id": "n1", "time": 1736867130000, "title": 5, "desc": None, "liked_count": [], "tag_list": {"x": 1},
     "ip_location": 7, "nickname": None, "source_keyword": 3},
    {"note_id": "n1", "time": float("inf")},
    {"note_id": "n1", "time": "1e400"},
])
def test_odd_values_never_raise(row: dict[str, Any]) -> None:
    for platform in ("xhs", "douyin", "weibo", "bili", "kuaishou"):
        for kind in ("contents", "comments"):
            found = items(row, platform=platform, kind=kind)
            assert len(found) == 1 and (found[0].post is not None or found[0].skip)
