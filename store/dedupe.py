"""Near-duplicates: linking a post to the earliest post whose embedding is nearly the same (posts.duplicate_of,
migration 0012), through the HNSW index, never a scan of every pair.

A link always points at an original (duplicate_of IS NULL), so a group of copies is one star around its
earliest post, and "distinct texts" is `WHERE duplicate_of IS NULL`. Deleting an original promotes its
earliest copy (the migration's trigger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from murmur.store.embeddings import register

if TYPE_CHECKING:
    import psycopg

# Nearest neighbours looked at per post. Copies already linked name their original, so a few suffice even
# when a text was pasted a thousand times: any one of them leads to the earliest.
NEIGHBOURS = 20

# The post's nearest neighbours of the same embedding model inside the window on either side of it (a post
# stored late still finds the later copies stored before it), within the threshold: the roots of their
# groups, with the post's own. Iterative scans (set by the caller) let the HNSW scan go on past the window
# filter; the distance bound is applied to the few rows the index returned.
_NEIGHBOURS = """
WITH near AS MATERIALIZED (
    SELECT q.id, q.duplicate_of, e.embedding <=> %(vec)s AS distance
    FROM post_embeddings e
    JOIN posts q ON q.id = e.post_id
    WHERE e.model = %(model)s AND e.post_id <> %(id)s
      AND q.created_at >= %(at)s::timestamptz - %(window)s AND q.created_at <= %(at)s::timestamptz + %(window)s
    ORDER BY e.embedding <=> %(vec)s
    LIMIT %(k)s
)
SELECT DISTINCT r.id, r.created_at
FROM (
    SELECT %(id)s::bigint AS id
    UNION ALL SELECT duplicate_of FROM posts WHERE id = %(id)s AND duplicate_of IS NOT NULL
    UNION ALL SELECT COALESCE(duplicate_of, id) FROM near WHERE distance <= %(max_distance)s
) g
JOIN posts r ON r.id = g.id
"""

# Every group in `roots` becomes one, around `keep`: the other roots and their copies point at it. The
# buckets of aggregated posts whose link changed are marked for the next aggregation (their unique_posts
# moved). Returns how many links changed.
_MERGE = """
WITH changed AS (
    UPDATE posts SET duplicate_of = %(keep)s
    WHERE (id = ANY (%(roots)s) OR duplicate_of = ANY (%(roots)s)) AND id <> %(keep)s
      AND duplicate_of IS DISTINCT FROM %(keep)s
    RETURNING id, source, created_at
), cleared AS (
    UPDATE posts SET duplicate_of = NULL WHERE id = %(keep)s AND duplicate_of IS NOT NULL
    RETURNING id, source, created_at
), moved AS (
    SELECT * FROM changed UNION ALL SELECT * FROM cleared
), marked AS (
    INSERT INTO dirty_buckets (bucket_size, bucket_start, source, model)
    SELECT DISTINCT b.size, date_bin(b.step, t.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), t.source,
           s.model
    FROM moved t
    JOIN sentiment_scores s ON s.post_id = t.id AND s.aggregated_at IS NOT NULL
    CROSS JOIN (VALUES ('hour', INTERVAL '1 hour'), ('day', INTERVAL '1 day')) AS b(size, step)
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM moved
"""

# The posts to link, earliest first, with their embeddings.
_IN_ORDER = """
SELECT p.id, p.created_at, e.embedding FROM posts p
JOIN post_embeddings e ON e.post_id = p.id AND e.model = %(model)s
WHERE p.id = ANY (%(ids)s)
ORDER BY p.created_at, p.id
"""

_EMBEDDED_SINCE = """
SELECT p.id FROM posts p
JOIN post_embeddings e ON e.post_id = p.id AND e.model = %(model)s
WHERE %(since)s::timestamptz IS NULL OR p.created_at >= %(since)s
ORDER BY p.created_at, p.id
"""


@dataclass(frozen=True)
class LinkRun:
    posts: int  # posts looked at
    linked: int  # links written or moved (a post's duplicate_of changed)


def _use_iterative_scan(conn: psycopg.Connection) -> None:
    # Transaction-local (is_local = true): the caller's transaction, never the session.
    conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                 "set_config('hnsw.ef_search', %s, true)", (str(max(40, 2 * NEIGHBOURS)),))


def link_duplicates(conn: psycopg.Connection, model: str, post_ids: Sequence[int], *, threshold: float,
                    window: timedelta) -> LinkRun:
    """Link each of `post_ids` (with a `model` embedding) to the earliest post within `threshold` cosine
    similarity inside `window` before or after it, merging groups the post bridges; call inside the
    transaction that wrote the embeddings (earliest posts first, so a batch of copies links to its first)."""
    if not post_ids:
        return LinkRun(0, 0)
    register(conn)
    _use_iterative_scan(conn)
    ordered = conn.execute(_IN_ORDER, {"ids": list(post_ids), "model": model}).fetchall()
    linked = 0
    for post_id, created_at, vec in ordered:
        roots: list[tuple[int, datetime]] = [
            (int(i), at) for i, at in conn.execute(_NEIGHBOURS, {
                "id": post_id, "vec": vec, "at": created_at, "model": model, "window": window, "k": NEIGHBOURS,
                "max_distance": 1.0 - threshold})
        ]
        if len(roots) < 2:
            continue  # nothing near it, and no link of its own: an original
        keep = min(roots, key=lambda r: (r[1], r[0]))[0]
        row = conn.execute(_MERGE, {"roots": [r[0] for r in roots], "keep": keep}).fetchone()
        linked += int(row[0]) if row else 0
    return LinkRun(len(ordered), linked)


def embedded_posts(conn: psycopg.Connection, model: str, since: datetime | None = None) -> list[int]:
    """Ids of the posts with a `model` embedding (created at or after `since`), earliest first."""
    return [int(r[0]) for r in conn.execute(_EMBEDDED_SINCE, {"model": model, "since": since})]


def count_duplicates(conn: psycopg.Connection) -> int:
    """Posts linked to an earlier original."""
    row = conn.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL").fetchone()
    return int(row[0]) if row else 0
