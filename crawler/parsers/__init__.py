"""Pure parsers: a platform's response body in, `Post`s and paging ids out (STYLE.md: parsing is
separate from fetching). Nothing here touches the network or Scrapy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from lxml import etree
from lxml import html as lxml_html

from murmur.crawler.items import Post
from murmur.crawler.text import xml_safe
from murmur.errors import MurmurError

__all__ = [
    "BLOCKS",
    "Page",
    "ParseError",
    "as_object",
    "as_string",
    "bytedance_id_time",
    "count",
    "digit_string",
    "first_of_each",
    "html_to_text",
    "id_key",
    "inline_hashtags",
    "is_text",
    "iso_datetime",
    "json_object",
    "load_json",
    "page_wall",
    "raise_for_error",
    "script_text",
]


@dataclass
class Page:
    """One page of a timeline, parsed.

    ``oldest_id``/``newest_id`` are the platform's own (per-instance, local) ids of the entries in the
    page, used for paging: ``max_id=oldest_id`` pages back, ``min_id=newest_id`` pages forward. They
    count every entry that carried an id, including ones skipped as malformed, so one bad entry never
    makes a crawl fetch the same page forever. Both are None for an empty page.
    """

    posts: list[Post]
    oldest_id: str | None
    newest_id: str | None
    skipped: int = 0  # entries dropped as malformed (missing required fields, wrong types)


class ParseError(MurmurError, ValueError):
    """The body as a whole is unusable: not JSON, truncated, an error object, or not the expected shape.

    The message says what was wrong, lower-case and short, so a spider can log and count it.
    """


def first_of_each(candidates: Iterable[Post | None]) -> tuple[list[Post], int]:
    """(posts, skipped) of a page's records turned into posts: the first of each `source_id` kept, in order
    (a post repeated in one page, or reposted, is one post), and how many records gave no post (None)."""
    posts: list[Post] = []
    seen: set[str] = set()
    skipped = 0
    for post in candidates:
        if post is None:
            skipped += 1
        elif post.source_id not in seen:
            seen.add(post.source_id)
            posts.append(post)
    return posts, skipped


def id_key(status_id: str) -> tuple[int, str]:
    """A sort key for Mastodon ids: numeric order for digit strings, else (length, text).

    Mastodon documents ids as "String (cast from an integer but not guaranteed to be a number)"
    (https://docs.joinmastodon.org/entities/Status/#id), and snowflake ids outgrow a 64-bit float, so
    they must never be compared as plain strings ("9" > "10") nor through float. For digit strings,
    (length without leading zeros, digits) orders exactly like int(), and the key stays comparable
    with the (length, text) key of a non-numeric id, so any mix of ids has a total order.
    """
    if status_id.isascii() and status_id.isdigit():
        digits = status_id.lstrip("0")
        return (len(digits), digits)
    return (len(status_id), status_id)


def load_json(body: bytes) -> Any:
    """A JSON response body, or `ParseError` saying why it is unusable (empty, not UTF-8, an HTML error page
    instead of JSON, truncated, nested too deeply). What the value must look like is the parser's check."""
    return parse_json_text(json_text(body))


def json_text(body: bytes) -> str:
    """The body as text, checked to be worth parsing as JSON; `load_json` without the parse, for a parser
    that looks at the raw text too."""
    if not body or not body.strip():
        raise ParseError("empty body")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"body is not utf-8 (byte {exc.start})") from None
    if text.lstrip().startswith("<"):
        raise ParseError("body is html, not json")
    return text


def parse_json_text(text: str, *, what: str = "body") -> Any:
    """`json.loads` with its failures as `ParseError`; `what` names the text in the message."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what} is not valid json (truncated?): {exc.msg} at char {exc.pos}") from None
    except RecursionError:
        raise ParseError(f"{what} is json nested too deeply") from None


def json_object(data: Any) -> dict[str, Any]:
    """`data` if it is a JSON object; else ParseError saying what it is instead."""
    if not isinstance(data, dict):
        raise ParseError(f"expected a json object, got {type(data).__name__}")
    return data


def raise_for_error(data: Any) -> None:
    """ParseError naming the error when `data` is the error object several APIs answer with,
    ``{"error": "<text>"}`` (Mastodon's and Lemmy's, Reddit's in part)."""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        raise ParseError(f"server returned an error: {data['error'][:200]}")


def iso_datetime(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 time as platforms send it ("2025-01-14T15:05:30.017Z") -> aware UTC; a value
    without a zone is taken as UTC; None for anything unreadable or out of range."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def is_text(value: Any) -> TypeGuard[str]:
    """Whether a payload's value is a string that is not empty."""
    return isinstance(value, str) and bool(value)


def as_object(value: Any) -> dict[str, Any]:
    """A payload's value if it is a JSON object, else {}: a nested object that may be missing, read with
    `.get` like one that is there."""
    return value if isinstance(value, dict) else {}


def as_string(value: Any) -> str:
    """A payload's value if it is a string, else ""."""
    return value if isinstance(value, str) else ""


def digit_string(value: Any) -> str | None:
    """A positive id given as an int or a string of digits, as a string; else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return value.strip()
    return None


def count(value: Any) -> int | None:
    """A count given as an int or a string of digits ("1234"), 0 or more; else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


# --- HTML -> text ---

# Elements whose content is not text a reader sees.
_HIDDEN = ("script", "style", "template", "noscript", "head", "title", "iframe", "object", "svg")
# Elements that start a new line: text in two of them never runs together ("Title" + "Body" is not
# "TitleBody").
BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
})
_NL = "\n"


def html_to_text(content: str, *, break_before: Iterable[str] = BLOCKS, break_after: Iterable[str] = BLOCKS,
                 strict: bool = False) -> str:
    """HTML -> plain text: tags stripped, entities decoded, comments, scripts, styles (and the rest of
    `_HIDDEN`) dropped, characters XML cannot hold removed, one newline where an element of `break_before`
    starts or one of `break_after` ends (a run of them is one newline), surrounding whitespace trimmed.

    HTML lxml cannot read at all (a bare doctype, an empty ``<html>``) gives "", or with `strict` raises
    ValueError, for a caller that skips the record or falls back to another field instead.
    """
    cleaned = xml_safe(content)
    if not cleaned.strip():
        return ""
    try:
        # lxml asserts ("too many bodies") on an <html> without a body, besides its own errors.
        root = lxml_html.fragment_fromstring(cleaned, create_parent="div")
    except (ValueError, AssertionError, etree.LxmlError) as exc:
        if strict:
            raise ValueError(f"unreadable html: {exc}") from None
        return ""
    for hidden in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        hidden.drop_tree()  # keeps its tail text
    for element in list(root.iter(*_HIDDEN)):
        element.drop_tree()
    before, after = frozenset(break_before), frozenset(break_after)
    parts: list[str] = []

    def add(text: str | None) -> None:
        # Whitespace between blocks (source formatting, "</p>\n<p>") is not content.
        if text and (text.strip() or (parts and parts[-1] != _NL)):
            parts.append(text)

    def newline() -> None:
        # Collapse a run of line breaks (and the whitespace between them) into one.
        while parts and parts[-1] != _NL and not parts[-1].strip():
            parts.pop()
        if parts and parts[-1] != _NL:
            parts.append(_NL)

    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in before:
                newline()
            add(element.text)
        else:
            if tag in after:
                newline()
            if element is not root:
                add(element.tail)
    return "".join(parts).strip()


# --- server-rendered pages (TikTok, Lemon8) ---

# What a WAF challenge page carries instead of the page state (seen in public clients' block checks).
_CHALLENGE_MARKERS = ("_wafchallengeid", "slardar_us_waf", "please wait", "verify to continue")
_HASHTAG = re.compile(r"#([^\s#]+)")
_TRAILING = ".,;:!?)]}»\"'"


def script_text(text: str, opening: re.Pattern[str]) -> str | None:
    """The text of the script that `opening` (a regular expression for its opening tag) starts, up to
    the next ``</script>``; None when there is none; ParseError when the page ends before the script
    does (a body cut off in transfer)."""
    found = opening.search(text)
    if found is None:
        return None
    end = text.find("</script>", found.end())
    if end < 0:
        raise ParseError("page state is cut off (no closing </script>; truncated body?)")
    return text[found.end():end]


def page_wall(text: str) -> str:
    """Why a page without its state is no post page: a WAF challenge, a captcha, or neither said."""
    lowered = text.lower()
    if any(marker in lowered for marker in _CHALLENGE_MARKERS):
        return "challenge page"
    if "captcha" in lowered:
        return "captcha"
    return "no page state (challenge or captcha page)"


def inline_hashtags(text: str) -> list[str]:
    """The hashtags written in a text ("#lemon8diary"), without "#" and trailing punctuation, first seen
    first; any script (Thai and other scripts' marks are not ``\\w``)."""
    return list(dict.fromkeys(t.rstrip(_TRAILING) for t in _HASHTAG.findall(text) if t.rstrip(_TRAILING)))


def bytedance_id_time(item_id: str) -> datetime | None:
    """When a ByteDance (TikTok, Lemon8) id was minted: its top 32 bits are Unix seconds (a TikTok video's
    id decodes to the same day as its ``createTime``, seconds before it). None when it is not such an id."""
    if not (item_id.isascii() and item_id.isdigit()):
        return None
    seconds = int(item_id) >> 32
    if not 1_420_070_400 <= seconds <= 4_102_444_800:  # 2015 .. 2100: anything else is not a timestamp
        return None
    return datetime.fromtimestamp(seconds, UTC)


def metrics_of(block: Any, names: Mapping[str, tuple[str, ...]],
               reader: Callable[[Any], int | None] | None = None) -> dict[str, int]:
    """murmur's metric names -> the first readable count among each one's keys in `block`."""
    read = reader or count
    source = as_object(block)
    out: dict[str, int] = {}
    for name, keys in names.items():
        for key in keys:
            value = read(source.get(key))
            if value is not None:
                out[name] = value
                break
    return out
