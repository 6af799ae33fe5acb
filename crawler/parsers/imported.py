"""What an import format makes of one input record (a line of a capture, a row of a CSV, an object of a
JSON array): posts, each with the search it came from when the capture says, or the reason it is skipped.

Format parsers are pure functions `(record, ...) -> list[Imported]` that never raise on bad input: a
record they cannot use is one `Imported(skip="<kind>")`, which the importer counts with its line number.
One record may give several posts (a note and its nested comments)."""

from __future__ import annotations

from dataclasses import dataclass

from murmur.crawler.items import Post


@dataclass(frozen=True)
class Imported:
    post: Post | None = None
    # Why the record gave no post, as a short kind counted per file ("not_json", "unknown_platform",
    # "no_id", "no_time", "deleted", "ad", ...): the importer reports counts and the first line numbers.
    skip: str | None = None
    # The search term the capture came from (MediaCrawler's source_keyword, the keyword in Zeeschuimer's
    # source_url): the post is kept under that term even when its text does not name it.
    query: str | None = None


def skipped(kind: str) -> list[Imported]:
    """A record that gives no post, for the reason `kind`."""
    return [Imported(skip=kind)]
