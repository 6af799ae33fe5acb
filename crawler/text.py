"""Text normalisation, characters that cannot be stored, and term matching, shared by every source (pure
functions; no imports beyond the standard library, so the store can use `storable` too)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

# Zero-width characters survive copy-paste and split words invisibly (U+200B..U+200D, U+2060,
# U+FEFF); removing them lets "Red\u200bNote" match RedNote.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


# PostgreSQL stores neither NUL (text and jsonb refuse it) nor half a UTF-16 surrogate pair (not valid
# UTF-8); one such character anywhere in a batch would make the whole batch fail. Platforms do send them
# (a NUL in a title, an emoji cut in half by a length limit), so they are removed before storing.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The same characters as JSON carries them (escaped, as json.dumps writes them): a body or a dump without
# one needs no walk.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|d[89a-f][0-9a-f]{2})", re.IGNORECASE)
# What XML (so libxml2) refuses: the unstorable characters above, the other C0 controls but tab, newline
# and carriage return, and U+FFFE/U+FFFF. They mean nothing in a post's text.
_NOT_XML = {c: None for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0xD800, 0xE000))}
_NOT_XML.update({0xFFFE: None, 0xFFFF: None})


def storable(value: Any) -> Any:
    """`value` with NUL and lone surrogates removed from every string in it (dicts and lists walked)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def has_unstorable_escape(json_text: str) -> bool:
    """Whether JSON text escapes a NUL or a surrogate (``\\u0000``, ``\\ud83d``): only then can the value
    it holds need `storable` (a surrogate pair is a false alarm: the walk then changes nothing)."""
    return _UNSTORABLE_ESCAPE.search(json_text) is not None


def xml_safe(text: str) -> str:
    """`text` without the characters XML cannot hold (a superset of what `storable` removes)."""
    return text.translate(_NOT_XML)


def normalise_text(text: str) -> str:
    """NFC, invisible characters removed, runs of spaces folded, at most one blank line, trimmed."""
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def fold(text: str) -> str:
    """The form terms are matched in: NFKC (full-width letters become ASCII) and case-folded."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold()


def _is_word_char(ch: str) -> bool:
    """Letters and digits of scripts that separate words with spaces (Latin, Cyrillic, ...)."""
    return ch.isalnum() and not _is_cjk(ch)


# Scripts written without spaces between words: kana, CJK ideographs (with extensions A-F and the
# compatibility block) and hangul. Terms in them match inside running text.
_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK = re.compile(f"[{_CJK_RANGES}]")
# "A letter or digit of a space-separated script": a word character that is neither _ nor CJK.
_WORD = f"[^\\W_{_CJK_RANGES}]"
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _is_cjk(ch: str) -> bool:
    return bool(_CJK.match(ch))


def _tokens(term: str) -> list[str]:
    """`tiktok难民` -> ['tik', 'tok', '难民']; `RedNote` -> ['red', 'note'] (camel case splits, so
    "red note" and "rednote" both match)."""
    tokens: list[str] = []
    current = ""
    for ch in fold(_CAMEL.sub(" ", term)):
        if not (ch.isalnum() or _is_cjk(ch)):
            if current:
                tokens.append(current)
            current = ""
            continue
        if current and _is_cjk(ch) != _is_cjk(current[-1]):
            tokens.append(current)
            current = ""
        current += ch
    if current:
        tokens.append(current)
    return tokens


def term_to_tag(term: str) -> str:
    """A term written as a hashtag: `TikTok refugee` -> `tiktokrefugee`, `TikTok难民` -> `tiktok难民`."""
    return "".join(_tokens(term))


def _term_pattern(term: str) -> re.Pattern[str]:
    tokens = _tokens(term)
    if not tokens:
        raise ValueError(f"term {term!r} has no letters or digits to match")
    # Words may be written apart, hyphenated, underscored or run together (#TikTokRefugee).
    body = r"[\s_\-]*".join(re.escape(t) for t in tokens)
    last = tokens[-1]
    if last[-1].isalpha() and not _is_cjk(last[-1]):
        body += r"(?:e?s)?"  # a plural: refugees, RedNotes
    # Word boundaries only where the script uses them: 小红书 matches inside running Chinese text,
    # but "rednote" must not match inside "tiredNotes".
    if _is_word_char(tokens[0][0]):
        body = f"(?<!{_WORD})" + body
    if _is_word_char(last[-1]):
        body += f"(?!{_WORD})"
    return re.compile(body)


class TermMatcher:
    """Which configured terms a post matches: hashtag-, case-, plural- and script-aware."""

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = list(terms)
        self._patterns = [(term, _term_pattern(term)) for term in self.terms]

    def match(self, text: str, tags: Iterable[str] = ()) -> list[str]:
        """The terms found in `text` or in the platform's hashtags, in configured order."""
        haystack = fold(text)
        folded_tags = " ".join(fold(t) for t in tags)
        return [
            term
            for term, pattern in self._patterns
            if pattern.search(haystack) or (folded_tags and pattern.search(folded_tags))
        ]
