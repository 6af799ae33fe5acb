"""What a crawl reads back before it starts: the cursors of a source (`crawl_state`), and links to a
platform's pages found in other sources' posts (crawler/links.py). Cursors are written by the store
pipeline with the posts before them (store/posts.py: set_cursors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg


def cursors(conn: psycopg.Connection, source: str) -> dict[str, str]:
    """Query -> cursor of every `crawl_state` row of `source`."""
    rows = conn.execute("SELECT query, cursor FROM crawl_state WHERE source = %s", (source,))
    return {query: cursor for query, cursor in rows}


# The posts' text, and their raw record (a platform's own link fields, facets, embeds), both searched.
_LINKED = """
WITH found AS (
    SELECT m[1] AS url, m[2] AS page_id, max(p.collected_at) AS seen
    FROM posts p
    CROSS JOIN LATERAL regexp_matches(p.text || ' ' || coalesce(p.raw::text, ''), %(pattern)s, 'g') AS m
    WHERE p.source <> %(source)s
      AND p.collected_at > now() - make_interval(days => %(days)s)
    GROUP BY 1, 2
)
SELECT url, page_id FROM found f
WHERE NOT EXISTS (SELECT 1 FROM posts q WHERE q.source = %(source)s AND q.source_id = f.page_id)
ORDER BY seen DESC, url
LIMIT %(limit)s
"""


def linked_pages(
    conn: psycopg.Connection, *, source: str, pattern: str, days: int = 30, limit: int = 200
) -> list[tuple[str, str]]:
    """(url, page id) of links matching `pattern` (group 1 the URL, group 2 the page id) in other
    sources' posts of the last `days`, newest first, leaving out pages `source` has stored already."""
    rows = conn.execute(_LINKED, {"pattern": pattern, "source": source, "days": days, "limit": limit})
    return [(url, page_id) for url, page_id in rows]


def stored_ids(conn: psycopg.Connection, source: str, ids: list[str]) -> set[str]:
    """Those of `ids` that `source` has stored as posts already (their `source_id`)."""
    rows = conn.execute("SELECT source_id FROM posts WHERE source = %s AND source_id = ANY(%s)", (source, ids))
    return {source_id for (source_id,) in rows}
