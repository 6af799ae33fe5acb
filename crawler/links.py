"""Links to a platform found in the posts of other sources: where RedNote, TikTok, Lemon8 and Threads
pages come from when those platforms offer no search.

A spider gives a PostgreSQL regular expression whose first group is the whole URL and whose second
is the platform's id for the page (a note id, a video id); `linked_urls` returns the URLs seen in other
sources' recent posts whose id is not yet stored for that source. Only the real platform hosts belong in
the pattern: links are followed to the platform, never to whatever host a post names. The query is
store/crawl_state.py's `linked_pages`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from murmur.store.crawl_state import linked_pages

if TYPE_CHECKING:
    import psycopg


def linked_urls(
    conn: psycopg.Connection, *, source: str, pattern: str, days: int = 30, limit: int = 200
) -> list[tuple[str, str]]:
    """(url, page id) of links matching `pattern` in other sources' posts of the last `days`, newest
    first, leaving out pages `source` has stored already (its `source_id` equal to the page id)."""
    return linked_pages(conn, source=source, pattern=pattern, days=days, limit=limit)
