"""Links to a platform found in the posts of other sources: where RedNote, TikTok, Lemon8 and Threads
pages come from when those platforms offer no search.

A spider gives a PostgreSQL regular expression whose first group is the whole URL and whose second
is the platform's id for the page (a note id, a video id); `linked_urls` returns the URLs seen in other
sources' recent posts whose id is not yet stored for that source. Only the real platform hosts belong in
the pattern: links are followed to the platform, never to whatever host a post names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

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


def linked_urls(
    conn: psycopg.Connection, *, source: str, pattern: str, days: int = 30, limit: int = 200
) -> list[tuple[str, str]]:
    """(url, page id) of links matching `pattern` in other sources' posts of the last `days`, newest
    first, leaving out pages `source` has stored already (its `source_id` equal to the page id)."""
    rows = conn.execute(_LINKED, {"pattern": pattern, "source": source, "days": days, "limit": limit})
    return [(url, page_id) for url, page_id in rows]
