"""Reddit dumps (Pushshift, Arctic Shift) -> posts: one line of a dump at a time. Pure functions only.

The monthly dumps are zstandard-compressed NDJSON, ``RS_YYYY-MM.zst`` for submissions and
``RC_YYYY-MM.zst`` for comments (subreddit extracts: ``<subreddit>_submissions.zst`` and
``<subreddit>_comments.zst``); each line is a thing as Reddit's API gave it (Watchful1/PushshiftDumps
``scripts/single_file.py`` reads them so). Arctic Shift's notes (ArthurHeitmann/arctic_shift
``file_content_explanations.md``, ``schemas/``) say what changed over the years: ``created_utc`` is a string in
the oldest files and a number later, the oldest comments have no ``permalink``,
``body_html`` is dropped from 2023-04, ``retrieved_on`` and a ``_meta`` object are added, ads carry
``promoted: true``. Text arrives as Reddit's API sends it without ``raw_json=1``: markdown with ``&``,
``<`` and ``>`` as entities.

Posts take the `reddit` parser's forms, so a dump and a crawl of the same thing are one post: source_id the
fullname (``t3_<id>``, ``t1_<id>``), the URL ``https://www.reddit.com`` + permalink, a comment's parent the
fullname in ``parent_id`` and its root the submission's (``link_id``).
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers.imported import Imported, skipped
from murmur.crawler.parsers.mastodon import html_to_text  # the one the reddit parser reads Reddit's HTML with

__all__ = ["SOURCE", "items", "kind_of_file"]

SOURCE = "reddit"
WEB = "https://www.reddit.com"  # the reddit parser's URL base

_GONE = ("[deleted]", "[removed]")  # what Reddit puts in place of deleted and removed text and authors
_MONTHLY = re.compile(r"^R([SC])_\d{4}-\d{2}(?:-\d{2})?(?:\.|$)")
_SUBREDDIT = re.compile(r"^[A-Za-z0-9_]+_(submissions|comments)(?:\.|$)")
_BASE36 = re.compile(r"^[0-9a-z]+$")


def kind_of_file(path: Path | str) -> str | None:
    """"submissions" or "comments" from a dump's name (``RS_2025-01.zst``, ``RC_2025-01.zst``,
    ``tiktok_comments.zst``); None for any other name."""
    name = Path(path).name
    monthly = _MONTHLY.match(name)
    if monthly:
        return "submissions" if monthly.group(1) == "S" else "comments"
    extract = _SUBREDDIT.match(name)
    return extract.group(1) if extract else None


def items(obj: Any) -> list[Imported]:
    """One dump line (already parsed JSON) -> its post, or one skip: "malformed" (not a submission or comment
    object), "no_id", "no_time", "deleted" ("[deleted]"/"[removed]" text, or removed by Reddit or a
    moderator), "ad" (a promoted post)."""
    if not isinstance(obj, dict):
        return skipped("malformed")
    if "title" in obj:
        return _submission(obj)
    if "body" in obj or "link_id" in obj:
        return _comment(obj)
    return skipped("malformed")


def _submission(record: dict[str, Any]) -> list[Imported]:
    thing_id = _thing_id(record, "t3_")
    if thing_id is None:
        return skipped("no_id")
    created = _created(record.get("created_utc"))
    if created is None:
        return skipped("no_time")
    if record.get("promoted") is True:
        return skipped("ad")
    # As the reddit parser: a deleted or removed self post keeps its title but not its text; a removed
    # link post says so in removed_by_category.
    if record.get("selftext") in _GONE or record.get("removed_by_category"):
        return skipped("deleted")
    title = record.get("title")
    if not isinstance(title, str):
        return skipped("malformed")
    body = _text(record.get("selftext_html"), record.get("selftext"))
    title_text = html.unescape(title).strip()
    permalink = _permalink(record.get("permalink")) or _submission_permalink(record, thing_id)
    post = _post(record, f"t3_{thing_id}", permalink, created,
                 f"{title_text}\n\n{body}" if body else title_text,
                 _counts(record, score="score", replies="num_comments"))
    return [Imported(post=post)]


def _comment(record: dict[str, Any]) -> list[Imported]:
    thing_id = _thing_id(record, "t1_")
    if thing_id is None:
        return skipped("no_id")
    created = _created(record.get("created_utc"))
    if created is None:
        return skipped("no_time")
    if record.get("body") in _GONE:
        return skipped("deleted")
    body = record.get("body")
    if not isinstance(body, str):
        return skipped("malformed")
    text = _text(record.get("body_html"), body)
    link_id = _fullname(record.get("link_id"))
    permalink = _permalink(record.get("permalink")) or _comment_permalink(record, thing_id, link_id)
    post = _post(record, f"t1_{thing_id}", permalink, created, text, _counts(record, score="score"))
    post.parent_source_id = _fullname(record.get("parent_id"))
    post.root_source_id = link_id
    return [Imported(post=post)]


def _post(record: dict[str, Any], name: str, permalink: str | None, created: datetime, text: str,
          metrics: dict[str, int]) -> Post:
    author = record.get("author")
    return Post(
        source=SOURCE,
        source_id=name,
        url=WEB + permalink if permalink else None,
        author=author if isinstance(author, str) and author and author not in _GONE else None,
        text=text,
        created_at=created,
        metrics=metrics,
        raw=record,
        via="import",
    )


def _thing_id(record: dict[str, Any], prefix: str) -> str | None:
    """The base-36 id of a thing, from ``id`` or else its fullname in ``name``."""
    value = record.get("id")
    if not (isinstance(value, str) and value):
        name = record.get("name")
        value = name[len(prefix):] if isinstance(name, str) and name.startswith(prefix) else None
    if isinstance(value, str) and value.startswith(prefix):
        value = value[len(prefix):]
    return value if isinstance(value, str) and _BASE36.match(value) else None


def _created(value: Any) -> datetime | None:
    """``created_utc``: epoch seconds as an int, a float, or (the oldest dumps) a string."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _text(rendered: Any, markdown: Any) -> str:
    """Reddit's HTML rendering as plain text where the dump kept it (before 2023-04), as the reddit parser
    reads it; else the markdown with its entities decoded."""
    if isinstance(rendered, str) and rendered.strip():
        if "<" not in rendered and "&lt;" in rendered:
            rendered = html.unescape(rendered)  # the API escapes the HTML once without raw_json=1
        try:
            return html_to_text(rendered)
        except ValueError:
            pass
    return html.unescape(markdown).strip() if isinstance(markdown, str) else ""


def _fullname(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("t1_", "t3_")) and len(value) > 3 else None


def _permalink(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith("/") else None


def _submission_permalink(record: dict[str, Any], thing_id: str) -> str | None:
    subreddit = record.get("subreddit")
    return f"/r/{subreddit}/comments/{thing_id}/" if isinstance(subreddit, str) and subreddit else None


def _comment_permalink(record: dict[str, Any], thing_id: str, link_id: str | None) -> str | None:
    """The oldest comments carry no permalink: Reddit's form, with "_" for the title slug it ignores."""
    subreddit = record.get("subreddit")
    if not (isinstance(subreddit, str) and subreddit and link_id and link_id.startswith("t3_")):
        return None
    return f"/r/{subreddit}/comments/{link_id[3:]}/_/{thing_id}/"


def _counts(record: dict[str, Any], **fields: str) -> dict[str, int]:
    metrics: dict[str, int] = {}
    for name, key in fields.items():
        value = record.get(key)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            metrics[name] = value
    if "score" in metrics:
        metrics["likes"] = metrics["score"]  # as the reddit parser: net votes, the closest Reddit has to likes
    return metrics
