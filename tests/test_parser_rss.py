"""parse_feed on saved RSS and Atom documents (tests/fixtures/rss, see its README)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.rss import FeedResult, html_to_text, parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "rss"
FETCHED = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
RSSHUB = "https://rsshub.murmur.test/xiaohongshu/user/5f3a9b2c000000000101d4e7/notes"
NOTE = "https://www.xiaohongshu.com/user/profile/5f3a9b2c000000000101d4e7/"
NEWS = "https://news.murmur.test/feed.xml"
BLOG = "https://blog.murmur.test/atom.xml"


def parse(name: str, url: str, content_type: str = "application/rss+xml; charset=utf-8") -> FeedResult:
    return parse_feed((FIXTURES / name).read_bytes(), feed_url=url, fetched_at=FETCHED,
                      headers={"Content-Type": content_type})


def by_id(result: FeedResult, suffix: str) -> Post:
    (post,) = [p for p in result.posts if p.source_id.endswith(suffix)]
    return post


@pytest.fixture(scope="module")
def rsshub() -> FeedResult:
    return parse("rsshub_xiaohongshu.xml", RSSHUB)


@pytest.fixture(scope="module")
def news() -> FeedResult:
    return parse("rss_news.xml", NEWS)


@pytest.fixture(scope="module")
def blog() -> FeedResult:
    return parse("atom_blog.xml", BLOG, "application/atom+xml")


def test_rsshub_notes_become_posts_with_the_guid_as_source_id(rsshub: FeedResult) -> None:
    assert [p.source_id for p in rsshub.posts] == [
        NOTE + "678604a2000000001703a1b2",
        NOTE + "6785f1c0000000001a03b2c3",
        NOTE + "6785e0aa000000001b02c3d4",
    ]
    assert all(p.source == "rss" and p.url == p.source_id and p.author == "林 Lin" for p in rsshub.posts)
    assert rsshub.title == "林 Lin - 笔记 • 小红书 / RED" and rsshub.skipped == 0


def test_rsshub_description_repeating_the_title_gives_the_text_once(rsshub: FeedResult) -> None:
    first = by_id(rsshub, "678604a2000000001703a1b2")
    assert first.text == "欢迎TikTok难民来到小红书🎉 第一课：你好"  # the <img> says nothing, the title is not doubled
    assert first.tags == ["小红书", "TikTok难民"]
    assert first.lang == "en"  # RSSHub's default <language>; the language pipeline reads the text instead


def test_html_entities_are_decoded_once_and_breaks_become_newlines(rsshub: FeedResult) -> None:
    assert by_id(rsshub, "6785e0aa000000001b02c3d4").text == (
        "猫税 & 中文课 | cat tax & Chinese class 🐱 \n小红书 is so wholesome"
    )


def test_a_missing_date_is_the_fetch_time_and_says_so(rsshub: FeedResult) -> None:
    undated = by_id(rsshub, "6785f1c0000000001a03b2c3")
    assert undated.created_at == FETCHED and undated.raw["date_from"] == "fetched"
    dated = by_id(rsshub, "678604a2000000001703a1b2")
    assert dated.created_at == datetime(2025, 1, 14, 6, 10, 42, tzinfo=UTC) and dated.raw["date_from"] == "published"


def test_raw_keeps_the_feed_url_and_the_entry_as_json(rsshub: FeedResult) -> None:
    raw = by_id(rsshub, "678604a2000000001703a1b2").raw
    assert raw["feed"] == RSSHUB
    assert raw["entry"]["link"].startswith(NOTE) and "published_parsed" not in raw["entry"]
    json.dumps(raw)  # storable as jsonb


def test_rss_content_encoded_wins_over_description_and_arabic_is_kept(news: FeedResult) -> None:
    post = by_id(news, "#12345")
    assert post.text == "مستخدمو تيك توك ينتقلون إلى RedNote\nانتقل آلاف المستخدمين إلى RedNote (小红书) هذا الأسبوع."
    assert (post.author, post.lang, post.tags, post.metrics) == ("نور", "ar", ["تقنية"], {"replies": 17})
    assert post.url == "https://news.murmur.test/ar/12345"


def test_a_guid_that_is_not_a_uri_is_qualified_with_the_feed_url(news: FeedResult) -> None:
    assert by_id(news, "#12345").source_id == f"{NEWS}#12345"


def test_dates_with_an_offset_are_utc(news: FeedResult) -> None:
    assert by_id(news, "#12345").created_at == datetime(2025, 1, 15, 0, 0, tzinfo=UTC)


def test_no_guid_falls_back_to_the_link_and_named_entities_decode(news: FeedResult) -> None:
    post = by_id(news, "/en/tiktok-refugee-explained")
    assert post.source_id == "https://news.murmur.test/en/tiktok-refugee-explained"
    assert post.text == 'The "TikTok refugee" wave, explained\nWhy millions tried Xiaohongshu — and what they found…'
    assert post.author == "World Desk"  # the name, not the e-mail of RSS <author>


def test_a_repeated_entry_is_kept_once_and_a_truncated_title_is_not_doubled(news: FeedResult) -> None:
    assert [p.source_id for p in news.posts].count(f"{NEWS}#12345") == 1
    day3 = by_id(news, "/en/day-3")
    assert day3.text == "Day 3 on RedNote and honestly it is wholesome."
    assert day3.created_at == FETCHED  # "not a date"


def test_atom_html_content_loses_scripts_and_keeps_blocks_apart(blog: FeedResult) -> None:
    post = by_id(blog, "posts/why-rednote")
    assert post.text == (
        "Why I left for RedNote & stayed\nThe short version\nThe comments on 小红书 are kind & curious.\n"
        "one\ntwo\nRead part 2."
    )
    assert post.url == "https://blog.murmur.test/posts/why-rednote"  # the relative link, resolved
    assert post.created_at == datetime(2025, 1, 15, 0, 0, tzinfo=UTC)  # published, not updated
    assert post.tags == ["RedNote", "TikTokRefugee"]
    assert post.author == "Sam Learns" and post.lang == "en"


def test_atom_plain_text_title_keeps_its_angle_brackets_and_updated_stands_in(blog: FeedResult) -> None:
    post = by_id(blog, "posts/lemon8-vs-rednote")
    assert post.text == "Lemon8 vs RedNote <3 & a table\nLemon8 feels like Instagram.\nRedNote feels like a forum."
    assert post.raw["date_from"] == "updated" and post.created_at == datetime(2025, 1, 14, 20, 15, tzinfo=UTC)


def test_entry_language_beats_the_feed_language_and_hebrew_is_kept(blog: FeedResult) -> None:
    post = by_id(blog, "posts/he")
    assert (post.lang, post.text) == ("he", "עברתי ל-RedNote\nהאפליקציה מוזרה אבל נחמדה 🙂")


def test_an_entry_without_id_or_link_is_skipped_and_counted(blog: FeedResult) -> None:
    assert blog.skipped == 1 and len(blog.posts) == 3


def test_an_empty_feed_is_not_an_error() -> None:
    result = parse("empty_channel.xml", NEWS)
    assert (result.posts, result.skipped, result.title) == ([], 0, "Nothing yet")


def test_a_feed_broken_after_some_entries_keeps_them() -> None:
    result = parse("truncated_items.xml", RSSHUB)
    assert len(result.posts) == 2 and result.skipped == 1


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("not_a_feed.html", "text/html; charset=utf-8"),
        ("garbage.bin", "application/octet-stream"),
        ("truncated_head.xml", "application/rss+xml"),
    ],
)
def test_what_is_not_a_feed_raises_parse_error(name: str, content_type: str) -> None:
    with pytest.raises(ParseError, match="not an rss or atom feed"):
        parse(name, NEWS, content_type)


@pytest.mark.parametrize(
    "body", [b"", b"   \n", b'{"items": []}', b"<html><body>hi</body></html>", b"<?xml version='1.0'?><x/>"]
)
def test_other_non_feeds_raise_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(body, feed_url=NEWS, fetched_at=FETCHED)


def test_html_to_text() -> None:
    assert html_to_text("<p>a</p><p>b<br>c<br/><br>d</p>") == "a\nb\nc\nd"
    assert html_to_text("<h2>T</h2><div>body</div>") == "T\nbody"
    assert html_to_text("x <!-- hidden --> y<style>p{}</style><script>1</script>") == "x  y"
    assert html_to_text("&lt;b&gt; &amp;amp; &#39; &eacute;") == "<b> &amp; ' é"
    assert html_to_text("") == "" and html_to_text("<img src='x'>") == ""
    assert html_to_text("nul\x00byte") == "nulbyte"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_parse_raises_only_parse_error_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_feed(body, feed_url=NEWS, fetched_at=FETCHED)
    except ParseError:
        pass


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_text, _text, _text, _text), max_size=4))
def test_arbitrary_item_fields_give_posts_or_skips(items: list[tuple[str, str, str, str]]) -> None:
    from xml.sax.saxutils import escape

    body = "".join(
        f"<item><title>{escape(t)}</title><guid>{escape(g)}</guid><pubDate>{escape(d)}</pubDate>"
        f"<description>{escape(s)}</description></item>"
        for t, g, d, s in items
    )
    xml = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x</title>{body}</channel></rss>'
    try:
        result = parse_feed(xml.encode("utf-8", "ignore"), feed_url=NEWS, fetched_at=FETCHED)
    except ParseError:
        return
    assert len(result.posts) + result.skipped <= len(items)
    for post in result.posts:
        assert post.created_at.tzinfo is not None and isinstance(post.text, str) and post.source_id
        assert "\x00" not in post.text
        json.dumps(post.raw)
