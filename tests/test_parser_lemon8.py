"""parse_article_page on saved Lemon8 pages (tests/fixtures/lemon8, see its README for what each shape is
based on and what is assumed)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.lemon8 import (
    LINK_PATTERN,
    article_id_from_url,
    canonical_url,
    id_time,
    parse_article_page,
)

FIXTURES = Path(__file__).parent / "fixtures" / "lemon8"
LENA, OTHER, GONE = "7460296212479058611", "7459499118088461839", "7459928662062679233"
LENA_URL = f"https://www.lemon8-app.com/@lemon.lena/{LENA}?region=us"
FETCHED = datetime(2025, 1, 20, 12, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def context(name: str = "article.html") -> dict[str, Any]:
    """The decoded Remix context of a fixture page (to make variants of it)."""
    text = fixture(name).decode()
    start = text.index(">", text.index('data-ttark="__remixContext"')) + 1
    return json.loads(unquote(text[start:text.index("</script>", start)]))


def page(data: dict[str, Any], *, encoded: bool = True) -> str:
    payload = json.dumps(data, ensure_ascii=False)
    payload = quote(payload, safe="-_.!~*'()") if encoded else payload
    return f'<html><body><script type="application/json" data-ttark="__remixContext">{payload}</script></body></html>'


def article_route(data: dict[str, Any]) -> dict[str, Any]:
    return data["state"]["loaderData"]["routes/$user_link_name_.$article_id"]


def test_article_page_gives_the_post_decoded_once() -> None:
    result = parse_article_page(fixture("article.html"), LENA_URL)
    assert result.blocked is None and result.unavailable is None
    post = result.post
    assert post is not None
    assert (post.source, post.source_id, post.author) == ("lemon8", LENA, "lemon.lena")
    assert post.url == f"https://www.lemon8-app.com/@lemon.lena/{LENA}"  # no ?region=: one post, every region
    # Title, then the content; "%2B" written by the author stays "%2B" (the page is decoded once), a "+" and
    # "%" of the text are themselves, and the emoji come back from their UTF-8 percent-escapes.
    assert post.text == (
        "Why I picked Lemon8 over RedNote 🍋\nTikTok refugee here 👋 I tried RedNote first but Lemon8 feels like "
        "home: same vibe, my old mutuals + recipes & fit checks.\n\nPSA: use code LEMON%2B8 at checkout (50% off!)"
        "\n\n#lemon8diary #tiktokrefugee #rednote")
    assert post.tags == ["lemon8diary", "tiktokrefugee", "rednote"]
    assert post.lang is None  # articleRegion is a market, not a language


def test_counts_and_time() -> None:
    post = parse_article_page(fixture("article.html"), LENA_URL).post
    assert post is not None
    assert post.metrics == {"likes": 1187, "replies": 96, "views": 20415, "saves": 342}
    assert post.created_at == datetime(2025, 1, 16, tzinfo=UTC) and post.raw["date_from"] == "publishTime"
    assert post.raw["author"]["nickName"] == "Lena 🍋" and post.raw["articleClass"] == "Gallery"


def test_the_pages_own_post_is_chosen_over_a_related_one_of_the_same_shape() -> None:
    # The fixture lists a related post before the page's own: the id in the URL decides.
    other = parse_article_page(fixture("article.html"), f"https://www.lemon8-app.com/@other.olga/{OTHER}").post
    assert other is not None and other.source_id == OTHER and other.author == "other.olga"
    # Without an id in the URL, the $ArticleDetail entry is the article.
    post = parse_article_page(fixture("article.html"), "https://www.lemon8-app.com/@lemon.lena").post
    assert post is not None and post.source_id == LENA


def test_the_article_is_found_by_shape_under_any_route_and_key() -> None:
    data = context()
    route = data["state"]["loaderData"].pop("routes/$user_link_name_.$article_id")
    article = route.pop(f"$ArticleDetail+{LENA}")
    data["state"]["loaderData"]["routes/post.$id"] = {"$PostDetailV9+x": article}
    post = parse_article_page(page(data), LENA_URL).post
    assert post is not None and post.source_id == LENA


def test_plain_json_context_and_likes_from_article_likes() -> None:
    data = context()
    article = article_route(data)[f"$ArticleDetail+{LENA}"]
    del article["diggCount"], article["commentCount"], article["publishTime"]
    post = parse_article_page(page(data, encoded=False), LENA_URL).post
    assert post is not None and post.metrics["likes"] == 1187 and "replies" not in post.metrics
    # No publish time: the time the id was minted (seconds before publishing), flagged.
    assert post.created_at == id_time(LENA) and post.raw["date_from"] == "group_id"
    assert (datetime(2025, 1, 16, tzinfo=UTC) - post.created_at).total_seconds() == 31


def test_a_time_in_milliseconds_and_an_html_body() -> None:
    data = context()
    article = article_route(data)[f"$ArticleDetail+{LENA}"]
    article["publishTime"] = 1736985600123
    article["content"] = "<p>Lemon8 &amp; RedNote</p><p>second line</p>"
    post = parse_article_page(page(data), LENA_URL).post
    assert post is not None and post.created_at == datetime(2025, 1, 16, 0, 0, 0, 123000, tzinfo=UTC)
    assert post.text == "Why I picked Lemon8 over RedNote 🍋\nLemon8 & RedNote\nsecond line"


def test_a_removed_post_is_unavailable() -> None:
    result = parse_article_page(fixture("article_unavailable.html"), f"https://www.lemon8-app.com/@gone.gabe/{GONE}")
    assert result.post is None and result.unavailable == "unavailable (deleted)"


def test_a_page_whose_state_lacks_the_article_is_malformed_not_an_empty_post() -> None:
    with pytest.raises(ParseError, match="no article"):
        parse_article_page(fixture("profile.html"), "https://www.lemon8-app.com/@mara.m/7459069702963201911")
    with pytest.raises(ParseError, match="no state.loaderData"):
        parse_article_page(page({"state": {"loaderData": {}}}), LENA_URL)


def test_challenge_login_wall_and_ban_notice_are_blocked() -> None:
    assert parse_article_page(fixture("challenge.html"), LENA_URL).blocked == "challenge page"
    assert parse_article_page(b"<html><body>Loading</body></html>", LENA_URL).blocked == (
        "no page state (challenge or captcha page)")
    assert parse_article_page(fixture("profile.html"), "https://www.lemon8-app.com/login?redirect=1").blocked == (
        "login wall")
    data = context("profile.html")
    data["state"]["loaderData"]["root"]["$USBanInfo"]["isPostBanDuration"] = True
    assert parse_article_page(page(data), LENA_URL).blocked == "US ban notice"


def test_cut_off_or_broken_context_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="cut off"):
        parse_article_page(fixture("truncated.html"), LENA_URL)
    broken = '<script type="application/json" data-ttark="__remixContext">%7B%22state%22%3A%7B</script>'
    with pytest.raises(ParseError, match="not valid json"):
        parse_article_page(broken, LENA_URL)


def test_article_without_any_time_gets_the_fetch_time_or_is_malformed() -> None:
    data = context()
    article = article_route(data)[f"$ArticleDetail+{LENA}"]
    del article["publishTime"]
    article["groupId"] = "12345678"  # too small to carry a time
    url = "https://www.lemon8-app.com/@lemon.lena/12345678"
    post = parse_article_page(page(data), url, fetched_at=FETCHED).post
    assert post is not None and post.created_at == FETCHED and post.raw["date_from"] == "fetched"
    with pytest.raises(ParseError, match="no publish time"):
        parse_article_page(page(data), url)


def test_urls() -> None:
    assert article_id_from_url(LENA_URL) == LENA
    assert article_id_from_url(f"http://127.0.0.1:8080/@a.b/{LENA}/") == LENA
    assert article_id_from_url("https://www.lemon8-app.com/@lemon.lena") is None
    assert article_id_from_url("https://s.lemon8-app.com/al/GgTURfrjvc") is None
    assert canonical_url(LENA, None) == f"https://www.lemon8-app.com/@_/{LENA}"


def test_link_pattern_matches_only_real_lemon8_post_links() -> None:
    text = (f"{LENA_URL} https://lemon8-app.com/@x_y/{OTHER}. https://www.lemon8-app.com.evil.example/@x/{GONE} "
            f"https://notlemon8-app.com/@x/{GONE} https://s.lemon8-app.com/al/GgTURfrjvc")
    assert re.findall(LINK_PATTERN, text) == [
        (f"https://www.lemon8-app.com/@lemon.lena/{LENA}", LENA), (f"https://lemon8-app.com/@x_y/{OTHER}", OTHER)]
