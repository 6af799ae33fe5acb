"""parse_video_page and parse_oembed on saved TikTok pages and oEmbed answers (tests/fixtures/tiktok, see
its README for where each shape comes from)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.tiktok import (
    LINK_PATTERN,
    canonical_url,
    id_time,
    parse_oembed,
    parse_video_page,
    video_id_from_url,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tiktok"
RITA, OLLIE, RAIL, WENDY = "7459925161664684993", "7459631308591984866", "7459069702963829145", "7460315093155364112"
RITA_URL = f"https://www.tiktok.com/@refugee.rita/video/{RITA}"
OLLIE_URL = f"https://www.tiktok.com/@old.timer.ollie/video/{OLLIE}"
FETCHED = datetime(2025, 1, 20, 12, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def universal(detail: dict[str, Any]) -> str:
    """A page whose universal state has this video detail (for variants of the fixtures)."""
    state = {"__DEFAULT_SCOPE__": {"webapp.app-context": {"language": "en"}, "webapp.video-detail": detail}}
    return ('<html><body><script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'
            + json.dumps(state) + "</script></body></html>")


def rita_item() -> dict[str, Any]:
    text = fixture("video_universal.html").decode()
    start = text.index('type="application/json">', text.index("__UNIVERSAL_DATA_FOR_REHYDRATION__")) + 24
    state = json.loads(text[start:text.index("</script>", start)])
    return state["__DEFAULT_SCOPE__"]["webapp.video-detail"]["itemInfo"]["itemStruct"]


def test_universal_page_gives_the_post_with_escapes_decoded() -> None:
    page = parse_video_page(fixture("video_universal.html"), RITA_URL)
    assert page.blocked is None and page.unavailable is None and page.state == "universal"
    post = page.post
    assert post is not None
    assert (post.source, post.source_id, post.url, post.author) == ("tiktok", RITA, RITA_URL, "refugee.rita")
    # \u0026 and \u003C in the page's JSON are "&" and "<"; the emoji and Chinese are kept.
    assert post.text == ("Day 3 as a #TikTokRefugee on 小红书 (RedNote): the cat videos are elite 🐱 & the comments "
                         "are kind <3 #rednote #xiaohongshu")
    assert post.created_at == datetime(2025, 1, 15, tzinfo=UTC)  # createTime "1736899200", a string here
    assert post.lang == "en"
    assert post.tags == ["TikTokRefugee", "rednote", "xiaohongshu"]


def test_counts_prefer_the_exact_stats_v2_strings_over_rounded_stats() -> None:
    post = parse_video_page(fixture("video_universal.html"), RITA_URL).post
    assert post is not None
    # stats says 125300 likes and 1800000 plays; statsV2 has the exact "125347" and "1804412".
    assert post.metrics == {"likes": 125347, "replies": 2210, "reposts": 4109, "views": 1804412, "saves": 9803}
    assert post.raw["statsV2"]["repostCount"] == "0" and post.raw["date_from"] == "createTime"
    assert post.raw["video"]["playAddr"].startswith("https://v16-webapp-prime.tiktok.com/")  # \u002F decoded


def test_counts_fall_back_to_stats_when_stats_v2_is_missing() -> None:
    item = rita_item()
    del item["statsV2"]
    post = parse_video_page(universal({"statusCode": 0, "itemInfo": {"itemStruct": item}}), RITA_URL).post
    assert post is not None and post.metrics["likes"] == 125300 and post.metrics["views"] == 1800000


def test_sigi_page_takes_this_pages_video_not_the_related_rail() -> None:
    page = parse_video_page(fixture("video_sigi.html"), OLLIE_URL)
    assert page.state == "sigi"
    post = page.post
    assert post is not None
    assert (post.source_id, post.url) == (OLLIE, OLLIE_URL)
    assert post.author == "old.timer.ollie"  # in SIGI items "author" is the handle itself
    # The emoji is a \ud83d\ude2d surrogate pair in the page.
    assert post.text == ("Honest RedNote review after a week: the app is confusing but people are sweet 😭 "
                         "#rednote #tiktokban")
    assert post.created_at == datetime(2025, 1, 14, 5, tzinfo=UTC)  # an int createTime here
    assert post.metrics == {"likes": 3400, "replies": 212, "reposts": 57, "views": 41200}
    assert post.lang is None and post.tags == ["rednote", "tiktokban"]
    assert parse_video_page(fixture("video_sigi.html"), f"https://www.tiktok.com/@someone.else/video/{RAIL}"
                            ).post.source_id == RAIL  # type: ignore[union-attr]


def test_sigi_page_without_the_video_in_its_url_cannot_tell_which_item_it_is() -> None:
    with pytest.raises(ParseError, match="no item"):
        parse_video_page(fixture("video_sigi.html"), "https://www.tiktok.com/@old.timer.ollie")


def test_removed_video_is_unavailable_with_its_status() -> None:
    page = parse_video_page(fixture("video_unavailable.html"), f"https://www.tiktok.com/@gone.gary/video/{RITA}")
    assert page.post is None and page.blocked is None and page.status_code == 10204
    assert page.unavailable == ("statusCode 10204 (removed, private or withheld, "
                                "item_privacy_authorization&status_deleted)")


@pytest.mark.parametrize(("status", "meaning"), [(10216, "private"), (10222, "account is private"),
                                                 (10231, "not available in this region"), (12345, "not shown")])
def test_other_status_codes_are_unavailable_too(status: int, meaning: str) -> None:
    page = parse_video_page(universal({"statusCode": status, "statusMsg": ""}), RITA_URL)
    assert page.unavailable == f"statusCode {status} ({meaning})" and page.post is None


def test_a_redirect_to_the_login_page_is_a_login_wall() -> None:
    page = parse_video_page(fixture("login.html"), "https://www.tiktok.com/login?redirect_url=%2F%40a%2Fvideo%2F1")
    assert page.blocked == "login wall" and page.post is None


def test_a_page_whose_state_lacks_the_video_is_malformed_not_an_empty_post() -> None:
    with pytest.raises(ParseError, match="no webapp.video-detail"):
        parse_video_page(fixture("login.html"), RITA_URL)
    with pytest.raises(ParseError, match="no itemInfo.itemStruct"):
        parse_video_page(universal({"statusCode": 0, "statusMsg": "", "itemInfo": {}}), RITA_URL)
    with pytest.raises(ParseError, match="no id"):
        parse_video_page(universal({"statusCode": 0, "itemInfo": {"itemStruct": {"desc": "no id"}}}), RITA_URL)


def test_challenge_page_is_blocked() -> None:
    assert parse_video_page(fixture("challenge.html"), RITA_URL).blocked == "challenge page"
    assert parse_video_page(b"<html><body>hello</body></html>", RITA_URL).blocked == (
        "no page state (challenge or captcha page)")


def test_cut_off_or_broken_state_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="cut off"):
        parse_video_page(fixture("truncated.html"), RITA_URL)
    broken = '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{"__DEFAULT_SCOPE__":{</script>'
    with pytest.raises(ParseError, match="not valid json"):
        parse_video_page(broken, RITA_URL)


def test_photo_post_title_goes_above_the_caption_and_a_missing_create_time_comes_from_the_id() -> None:
    item = rita_item()
    item["imagePost"] = {"title": "RedNote starter pack", "images": []}
    del item["createTime"]
    post = parse_video_page(universal({"statusCode": 0, "itemInfo": {"itemStruct": item}}), RITA_URL).post
    assert post is not None
    assert post.text.startswith("RedNote starter pack\nDay 3 as a #TikTokRefugee")
    assert post.created_at == datetime.fromtimestamp(int(RITA) >> 32, UTC) and post.raw["date_from"] == "video_id"
    assert (datetime(2025, 1, 15, tzinfo=UTC) - post.created_at).total_seconds() == 23  # minted just before


def test_oembed_gives_caption_author_and_tags_but_no_counts() -> None:
    post = parse_oembed(fixture("oembed.json"), video_id=None, fetched_at=FETCHED)
    assert (post.source, post.source_id, post.author) == ("tiktok", WENDY, "walled.wendy")
    assert post.url == f"https://www.tiktok.com/@walled.wendy/video/{WENDY}"
    assert post.text == "Moving my whole life to Xiaohongshu lol 📦 #tiktokrefugee #xiaohongshu"
    assert post.tags == ["tiktokrefugee", "xiaohongshu"] and post.metrics == {}
    assert post.created_at == id_time(WENDY) and post.raw["date_from"] == "video_id"
    assert post.raw["via"] == "oembed" and post.raw["author_name"] == "Wendy W"


def test_oembed_without_an_id_uses_the_asked_id_and_without_a_plausible_id_the_fetch_time() -> None:
    body = json.loads(fixture("oembed.json"))
    del body["embed_product_id"], body["author_unique_id"]
    post = parse_oembed(json.dumps(body), video_id=WENDY, fetched_at=FETCHED)
    assert post.source_id == WENDY and post.author == "walled.wendy"  # the handle from author_url
    post = parse_oembed(json.dumps(body), video_id="12345678", fetched_at=FETCHED)
    assert post.created_at == FETCHED and post.raw["date_from"] == "fetched"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "empty body"),
    (b"<html>Bad Request</html>", "html"),
    (b'{"version": "1.0"', "not valid json"),
    (b'{"code": 400, "message": "Something went wrong"}', "no title"),
    (b"[]", "json object"),
])
def test_oembed_error_answers_are_parse_errors(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_oembed(body, video_id=WENDY, fetched_at=FETCHED)


def test_video_id_from_url_and_canonical_url() -> None:
    assert video_id_from_url(f"https://www.tiktok.com/@a.b/video/{RITA}?is_from_webapp=1") == RITA
    assert video_id_from_url(f"http://127.0.0.1:8080/@a/photo/{RITA}/") == RITA
    assert video_id_from_url("https://www.tiktok.com/@a.b") is None
    assert video_id_from_url("https://vm.tiktok.com/ZMabc123/") is None
    assert canonical_url(RITA, None) == f"https://www.tiktok.com/@_/video/{RITA}"


def test_link_pattern_matches_only_real_tiktok_video_links() -> None:
    text = (f"https://www.tiktok.com/@a.b/video/{RITA}?lang=en https://m.tiktok.com/@c_d/photo/{OLLIE}, "
            f"https://tiktok.com/@e/video/{WENDY}. https://tiktok.com.evil.example/@x/video/{RAIL} "
            f"https://eviltiktok.com/@x/video/{RAIL} https://vm.tiktok.com/ZMabc123/")
    assert re.findall(LINK_PATTERN, text) == [
        (f"https://www.tiktok.com/@a.b/video/{RITA}", RITA), (f"https://m.tiktok.com/@c_d/photo/{OLLIE}", OLLIE),
        (f"https://tiktok.com/@e/video/{WENDY}", WENDY)]


def test_id_time_is_the_top_32_bits_within_plausible_years() -> None:
    assert id_time(RITA) == datetime(2025, 1, 14, 23, 59, 37, tzinfo=UTC)
    assert id_time("12345") is None and id_time("abc") is None
