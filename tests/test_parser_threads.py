"""The Threads parsers on saved bodies (tests/fixtures/threads, see its README): keyword search pages of the
Threads API, and public post pages with their embedded data."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.instagram import GraphPage, parse_graph_error
from murmur.crawler.parsers.threads import (
    POST_LINK,
    PostPage,
    parse_keyword_search,
    parse_post_page,
    post_url,
    shortcode_of,
    shortcode_to_pk,
)

FIXTURES = Path(__file__).parent / "fixtures" / "threads"
URL = "https://www.threads.com/@maple.jo/post/DE2vK7nMq1A"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- keyword search ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def search() -> GraphPage:
    return parse_keyword_search(fixture("keyword_search.json"))


def test_search_keeps_entries_with_an_id_and_a_time_and_counts_the_rest(search: GraphPage) -> None:
    assert [p.source_id for p in search.posts] == [
        "18063419387085732", "18047726655094311", "17985512093760244", "18325104887013970",
    ]
    assert (search.entries, search.skipped) == (6, 2)
    assert all(p.source == "threads" for p in search.posts)


def test_search_post_fields(search: GraphPage) -> None:
    post = search.posts[0]
    assert post.url == "https://www.threads.net/@maple.jo/post/DE2vK7nMq1A"  # the permalink, as given
    assert post.author == "maple.jo"
    assert post.text == 'Day 3 on 小红书 as a TikTok refugee 🍋 the "cat tax" is real\nLemon8 next?'
    assert post.created_at == datetime(2025, 1, 15, 14, 32, 7, tzinfo=UTC)
    assert post.tags == ["TikTokRefugee"] and post.metrics == {} and post.lang is None
    assert post.raw["is_quote_post"] is False


def test_a_media_post_without_text_has_empty_text_and_no_permalink_falls_back_to_the_shortcode(
    search: GraphPage,
) -> None:
    image, video = search.posts[2], search.posts[3]
    assert image.text == ""  # the pipeline drops it as empty
    assert video.url == "https://www.threads.com/@noor.writes/post/DE0pH8dNw2C"
    assert video.text == "الجميع ينتقلون إلى RedNote هذا الأسبوع"


def test_search_paging_takes_the_after_cursor_never_the_next_url(search: GraphPage) -> None:
    assert search.after == "QVFIUmZAxaFNYQ0tGT3RPWnVrT2E5ZA"
    assert search.newest == int(datetime(2025, 1, 15, 14, 50, 26, tzinfo=UTC).timestamp())
    last = parse_keyword_search(fixture("keyword_search_last.json"))
    assert last.after is None and len(last.posts) == 1  # no paging.next: the last page
    empty = parse_keyword_search(fixture("keyword_search_empty.json"))
    assert (empty.posts, empty.after, empty.newest, empty.entries) == ([], None, None, 0)


@pytest.mark.parametrize("body, message", [
    (b"", "empty body"),
    (b"<html>oops</html>", "html"),
    (b"[]", "expected a json object"),
    (b'{"paging": {}}', "'data' list"),
])
def test_search_bodies_that_are_not_a_page_raise(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_keyword_search(body)


def test_a_truncated_search_page_raises() -> None:
    with pytest.raises(ParseError, match="truncated"):
        parse_keyword_search(fixture("truncated.json"))


def test_graph_errors_name_what_stops_the_source() -> None:
    token = parse_graph_error(fixture("error_token.json"), 400)
    assert (token.code, token.subcode, token.type, token.kind) == (190, 463, "OAuthException", "token")
    assert token.describe().startswith("Error validating access token: Session has expired")
    assert token.describe().endswith("(OAuthException, code 190, subcode 463)")
    assert parse_graph_error(fixture("error_rate.json"), 400).kind == "rate"
    assert parse_graph_error(fixture("error_param.json"), 400).kind is None  # one query's fault only
    assert parse_graph_error(b"<html>bad gateway</html>", 502).describe() == "HTTP 502"
    with pytest.raises(ParseError, match="Error validating access token"):
        parse_keyword_search(fixture("error_token.json"))


# --- post pages ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page() -> PostPage:
    return parse_post_page(fixture("post_page.html"), URL)


def test_the_page_post_comes_first_with_its_counts(page: PostPage) -> None:
    post = page.posts[0]
    assert post.source_id == "3546229215990033728" == shortcode_to_pk("DE2vK7nMq1A")
    assert post.url == URL and post.author == "maple.jo"
    assert post.created_at == datetime(2025, 1, 15, 14, 32, 7, tzinfo=UTC)
    assert post.metrics == {"likes": 1204, "replies": 2, "reposts": 31, "quotes": 4, "shares": 57}
    assert post.raw["code"] == "DE2vK7nMq1A" and page.blocked is None


def test_escapes_in_the_embedded_json_are_decoded(page: PostPage) -> None:
    # \u5c0f\u7ea2\u4e66, a surrogate pair for the emoji, \u003C for "<", \/ in the link.
    assert page.posts[0].text == (
        'Day 3 on 小红书 as a TikTok refugee 🍋 the "cat tax" <3 is real\n'
        "Lemon8 next? https://example.com/rednote-guide"
    )
    assert page.posts[1].text == "RedNote 的翻译功能太好用了 😂"


def test_replies_and_a_quoted_post_follow_each_once(page: PostPage) -> None:
    assert [(p.source_id, p.author) for p in page.posts[1:]] == [
        ("3546238420977699417", "grumpy.gus"),
        ("3546418378412988217", "noor.writes"),
        ("3544602538608262430", "cat_lady_ny"),  # quoted inside noor.writes' reply
        ("3563632761483730768", "photo.jun"),  # a media-only reply: empty text, dropped by the pipeline
    ]
    assert page.posts[-1].text == ""
    assert page.posts[3].url == "https://www.threads.com/@cat_lady_ny/post/DEw9TqPsX0e"


def test_the_page_parses_from_text_and_from_any_host() -> None:
    body = fixture("post_page.html").decode()
    here = parse_post_page(body, "http://127.0.0.1:8080/@maple.jo/post/DE2vK7nMq1A/")
    short = parse_post_page(body, "https://threads.net/t/DE2vK7nMq1A")
    assert here.posts[0].source_id == short.posts[0].source_id == "3546229215990033728"
    assert here.posts[0].url == URL  # the canonical public URL, not where it was read


def test_a_login_wall_is_blocked_not_an_empty_post() -> None:
    login = fixture("login_wall.html")
    assert parse_post_page(login, "https://www.threads.com/accounts/login/?next=%2F%40maple.jo") == PostPage(
        [], blocked="login wall")
    assert parse_post_page(login, URL) == PostPage([], blocked="login wall")  # served at the post's own URL
    gated = json.dumps({"message": "Please wait a few minutes before you try again.", "require_login": True,
                        "igweb_rollout": True, "status": "fail"})
    assert parse_post_page(gated, URL).blocked == "login wall"
    assert parse_post_page(b"", "https://www.threads.com/challenge/?next=/").blocked == "challenge"


def test_a_page_whose_data_lacks_the_post_raises() -> None:
    with pytest.raises(ParseError, match="no post DE2vK7nMq1A"):
        parse_post_page(fixture("post_page_missing.html"), URL)


@pytest.mark.parametrize("name, message", [
    ("shell.html", "rendered by script only"),
    ("truncated.html", "cut off or not valid json"),
])
def test_pages_without_readable_data_raise(name: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_post_page(fixture(name), URL)


def test_a_page_without_any_embedded_data_or_a_post_url_raises() -> None:
    with pytest.raises(ParseError, match="no embedded data"):
        parse_post_page(b"<html><body>hello</body></html>", URL)
    with pytest.raises(ParseError, match="not a post url"):
        parse_post_page(fixture("post_page.html"), "https://www.threads.com/@maple.jo")


# --- URLs and ids ---------------------------------------------------------------------------------------


def test_shortcodes_decode_to_the_media_pk() -> None:
    # Pairs quoted by Threads clients (junhoyeo/threads-api#40, NonsensicalOne/0gram#5) and scraped from real
    # pages (scrapfly/scrapfly-scrapers threads-scraper/results/thread.json: "pk" and "code" of one post).
    assert shortcode_to_pk("CuW6-7KyXme") == "3140957200974444958"
    assert shortcode_to_pk("DQFEsNAD77d") == "3748422894658502365"
    assert shortcode_to_pk("CuVdfsNtmvh") == "3140546036288089057"
    assert shortcode_to_pk("CuV0mavRgg-") == "3140647653629888574"
    assert shortcode_to_pk("") is None and shortcode_to_pk("not/a/code") is None


def test_post_urls() -> None:
    assert shortcode_of(URL) == "DE2vK7nMq1A"
    assert shortcode_of("https://www.threads.net/t/CuW6-7KyXme/?igshid=MzRlODBiNWFlZA==") == "CuW6-7KyXme"
    assert shortcode_of("https://www.threads.com/@maple.jo") is None
    assert post_url("maple.jo", "DE2vK7nMq1A") == URL
    assert post_url(None, "DE2vK7nMq1A") == "https://www.threads.com/t/DE2vK7nMq1A"


def test_the_link_pattern_takes_only_the_real_hosts() -> None:
    pattern = re.compile(POST_LINK)  # the same expression PostgreSQL runs in linked_urls
    text = (
        "see https://www.threads.net/@maple.jo/post/DE2vK7nMq1A?xmt=AQG and https://threads.com/t/DE2xQ4bN8pZ "
        "not https://www.threads.net.evil.example/@x/post/AAAAAAAAAAA nor https://notthreads.com/t/BBBBBBBBBBB "
        "nor https://www.threads.com/@maple.jo"
    )
    assert [(m.group(1), m.group(2)) for m in pattern.finditer(text)] == [
        ("https://www.threads.net/@maple.jo/post/DE2vK7nMq1A", "DE2vK7nMq1A"),
        ("https://threads.com/t/DE2xQ4bN8pZ", "DE2xQ4bN8pZ"),
    ]
