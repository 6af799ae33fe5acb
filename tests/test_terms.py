"""Term matching (hashtag-, case-, plural- and script-aware) and text normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from murmur.crawler.text import TermMatcher, normalise_text, term_to_tag

TERMS = ["TikTok refugee", "TikTok难民", "小红书", "RedNote", "Xiaohongshu", "Lemon8"]
MATCHER = TermMatcher(TERMS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Proud #TikTokRefugee here", ["TikTok refugee"]),
        ("all the tiktok refugees are on rednote now", ["TikTok refugee", "RedNote"]),
        ("TikTok-refugee, Tik Tok refugee", ["TikTok refugee"]),
        ("我是TikTok难民，来小红书报到", ["TikTok难民", "小红书"]),
        ("欢迎来到小红书！", ["小红书"]),
        ("ＲｅｄＮｏｔｅ is full-width", ["RedNote"]),
        ("Red\u200bNote with a zero-width space", ["RedNote"]),
        ("#Xiaohongshu and #Lemon8", ["Xiaohongshu", "Lemon8"]),
    ],
)
def test_terms_match_across_case_hashtags_plurals_and_scripts(text: str, expected: list[str]) -> None:
    assert MATCHER.match(text) == expected


@pytest.mark.parametrize("text", ["tiredNotes all day", "#lemon8life", "mytiktokrefugee", "refugee tiktok", ""])
def test_lookalikes_do_not_match(text: str) -> None:
    assert MATCHER.match(text) == []


def test_platform_hashtags_count_as_matches() -> None:
    assert MATCHER.match("no words here", tags=["TikTokRefugee"]) == ["TikTok refugee"]


def test_terms_written_as_tags() -> None:
    assert [term_to_tag(t) for t in TERMS] == [
        "tiktokrefugee", "tiktok难民", "小红书", "rednote", "xiaohongshu", "lemon8"
    ]


_words = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=0, max_size=12)


@given(
    term=st.sampled_from(TERMS),
    before=st.sampled_from(["", " ", "#", "，", "\n", "(", "我是"]),
    after=st.sampled_from(["", " ", "!", "。", ")", "的"]),
    upper=st.booleans(),
)
def test_a_term_is_found_wherever_it_stands_alone(term: str, before: str, after: str, upper: bool) -> None:
    written = term.upper() if upper else term
    assert term in MATCHER.match(f"start {before}{written}{after} end")


@given(st.text(max_size=200))
def test_normalise_is_idempotent_and_trims(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once
    assert once == once.strip()
    assert "  " not in once and "\u200b" not in once


@given(term=st.sampled_from(TERMS), noise=_words)
def test_matching_ignores_the_case_of_the_text(term: str, noise: str) -> None:
    text = f"{noise} {term} {noise}"
    assert term in MATCHER.match(text.upper())
    assert MATCHER.match(text.upper()) == MATCHER.match(text.casefold())
