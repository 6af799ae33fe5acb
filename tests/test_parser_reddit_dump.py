"""Reddit dump lines -> posts (tests/fixtures/reddit_dump, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from murmur.crawler.items import Post
from murmur.crawler.parsers.imported import Imported
from murmur.crawler.parsers.reddit_dump import items, kind_of_file

FIXTURES = Path(__file__).parent / "fixtures" / "reddit_dump"
T = datetime(2025, 1, 14, 15, 5, 30, tzinfo=UTC)


def parse(name: str) -> list[Imported]:
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    return [out for line in lines for out in items(json.loads(line))]


def by_id(found: list[Imported], source_id: str) -> Post:
    (post,) = [out.post for out in found if out.post is not None and out.post.source_id == source_id]
    return post


@pytest.fixture(scope="module")
def submissions() -> list[Imported]:
    return parse("RS_2025-01.ndjson")


@pytest.fixture(scope="module")
def comments() -> list[Imported]:
    return parse("RC_2025-01.ndjson")


@pytest.mark.parametrize(("name", "kind"), [
    ("RS_2025-01.zst", "submissions"),
    ("/dumps/reddit/comments/RC_2025-01.zst", "comments"),
    ("RC_2005-12.zst", "comments"),
    ("RS_2025-01.ndjson", "submissions"),
    ("RS_2025-01", "submissions"),
    ("RC_2011-01-01.zst", "comments"),  # a day-stamped name
    ("TikTokCringe_submissions.zst", "submissions"),  # subreddit extracts
    ("TikTokCringe_comments.zst", "comments"),
    ("RS_v2_2008-01.xz", None),
    ("RS_2025.zst", None),
    ("RX_2025-01.zst", None),
    ("notes.jsonl", None),
    ("search_comments_2025-01-14.jsonl", None),  # a MediaCrawler file
])
def test_kind_of_file(name: str, kind: str | None) -> None:
    assert kind_of_file(Path(name)) == kind
    assert kind_of_file(name) == kind


def test_submission_takes_the_reddit_parser_forms(submissions: list[Imported]) -> None:
    post = by_id(submissions, "t3_1i1abcd")
    assert post.source == "reddit" and post.via == "import"
    assert post.url == "https://www.reddit.com/r/TikTokCringe/comments/1i1abcd/everyone_is_moving_to_rednote/"
    assert post.created_at == T
    assert post.author == "maple_in_ohio"
    # Entities decoded in the title and the markdown.
    assert post.text == ("Everyone is moving to RedNote & learning Mandarin\n\n"
                         "Xiaohongshu & the \"TikTok refugees\" > anything I expected. 你好!")
    assert post.metrics == {"score": 2871, "replies": 412, "likes": 2871}
    assert post.parent_source_id is None and post.root_source_id is None
    assert post.raw["_meta"]["retrieved_2nd_on"] > 0 and post.region is None


def test_link_post_is_its_title(submissions: list[Imported]) -> None:
    post = by_id(submissions, "t3_1i1abce")
    assert post.text == "RedNote tops the App Store"
    assert post.metrics == {"score": -2, "replies": 3, "likes": -2}


def test_old_submission_reads_its_rendered_html(submissions: list[Imported]) -> None:
    post = by_id(submissions, "t3_nz1ab")
    assert post.created_at == datetime(2012, 1, 1, tzinfo=UTC)
    assert post.text == "Happy new year\n\n新年快乐 & cheers"  # selftext_html as text, as the reddit parser reads it
    assert post.url == "https://www.reddit.com/r/China/comments/nz1ab/happy_new_year/"


def test_submission_skips(submissions: list[Imported]) -> None:
    assert [out.skip for out in submissions if out.skip] == ["deleted", "deleted", "ad", "no_id", "no_time"]
    assert all(out.query is None for out in submissions)


def test_comment_links_to_its_submission(comments: list[Imported]) -> None:
    top = by_id(comments, "t1_m7abc01")
    assert top.url == "https://www.reddit.com/r/TikTokCringe/comments/1i1abcd/everyone_is_moving_to_rednote/m7abc01/"
    assert top.text == "Welcome!! 欢迎 <3"
    assert top.created_at == datetime(2025, 1, 14, 15, 7, 30, tzinfo=UTC)
    assert top.parent_source_id == "t3_1i1abcd" and top.root_source_id == "t3_1i1abcd"
    assert top.metrics == {"score": 154, "likes": 154}


def test_reply_names_its_parent_comment_and_deleted_author_is_none(comments: list[Imported]) -> None:
    reply = by_id(comments, "t1_m7abc02")
    assert reply.parent_source_id == "t1_m7abc01" and reply.root_source_id == "t3_1i1abcd"
    assert reply.author is None and reply.text == "same here"


def test_removed_comment_is_skipped_as_deleted(comments: list[Imported]) -> None:
    assert [out.skip for out in comments if out.skip] == ["deleted"]


def test_old_comment_without_permalink(comments: list[Imported]) -> None:
    post = by_id(comments, "t1_c0abc12")
    assert post.created_at == datetime(2010, 1, 1, tzinfo=UTC)
    assert post.text == "> quoted\n\nreply"
    # Reddit's permalink form, "_" for the title slug Reddit ignores.
    assert post.url == "https://www.reddit.com/r/pics/comments/aabbc/_/c0abc12/"
    assert post.parent_source_id == "t3_aabbc" == post.root_source_id


def test_comment_with_rendered_html_reads_it_as_the_crawl_does() -> None:
    (out,) = items({"id": "m1", "body": "**hi** &amp; bye", "body_html": "<div class=\"md\"><p><strong>hi</strong> "
                    "&amp; bye</p></div>", "created_utc": 1736867130, "link_id": "t3_abc", "parent_id": "t3_abc",
                    "subreddit": "x"})
    assert out.post is not None and out.post.text == "hi & bye"


@pytest.mark.parametrize(("obj", "skip"), [
    (None, "malformed"),
    ([1, 2], "malformed"),
    ("RS_2025-01", "malformed"),
    ({"foo": 1}, "malformed"),
    ({"id": "abc", "title": None, "created_utc": 1736867130}, "malformed"),
    ({"id": "abc", "body": 5, "created_utc": 1736867130, "link_id": "t3_x"}, "malformed"),
    ({"id": "ABC!", "title": "t", "created_utc": 1736867130}, "no_id"),
    ({"id": "abc", "title": "t", "created_utc": None}, "no_time"),
    ({"id": "abc", "title": "t", "created_utc": True}, "no_time"),
    ({"id": "abc", "title": "t", "created_utc": float("nan")}, "no_time"),
    ({"id": "abc", "title": "t", "created_utc": 10 ** 30}, "no_time"),
    ({"id": "abc", "body": "[deleted]", "created_utc": 1736867130, "link_id": "t3_x"}, "deleted"),
])
def test_bad_lines_are_counted_not_raised(obj: Any, skip: str) -> None:
    assert items(obj) == [Imported(skip=skip)]


def test_submission_without_name_or_permalink() -> None:
    (out,) = items({"id": "nz1ac", "title": "t", "selftext": "", "created_utc": "1325376000", "subreddit": "China"})
    assert out.post is not None and out.post.source_id == "t3_nz1ac"
    assert out.post.url == "https://www.reddit.com/r/China/comments/nz1ac/"
    assert out.post.created_at == datetime(2012, 1, 1, tzinfo=UTC)


def test_fullname_in_id_and_missing_subreddit() -> None:
    (out,) = items({"id": "t1_zz9", "body": "x", "created_utc": "1736867130.0", "parent_id": "bogus"})
    assert out.post is not None
    assert out.post.source_id == "t1_zz9" and out.post.url is None
    assert out.post.parent_source_id is None and out.post.root_source_id is None
    assert out.post.created_at == T
