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

from murmur.store.embeddings import register, use_iterative_scan

if TYPE_CHECKING:
    import psycopg

# Nearest neighbours looked at per post. Copies already linked name their original, so a few suffice even
# when a text was pasted a thousand times: any one of them leads to the earliest.
NEIGHBOURS = 20

# For each post of a batch, the candidate roots of its group: its own original (when it is a copy) and the
# roots of its nearest neighbours of the same embedding model inside the window on either side of it (a
# post stored late still finds the later copies stored before it), within the threshold; with each root's
# created_at. One statement for the batch: the LATERAL subquery is an HNSW scan per post (the index orders
# by the outer row's embedding), so a claim costs one round trip, not one per post. Iterative scans (set by
# the caller) let the HNSW scan go on past the window filter; the distance bound is applied to the few rows
# the index returned.
_CANDIDATES = """
WITH batch AS MATERIALIZED (
    SELECT p.id, p.created_at, p.duplicate_of, e.embedding
    FROM posts p JOIN post_embeddings e ON e.post_id = p.id AND e.model = %(model)s
    WHERE p.id = ANY (%(ids)s)
)
SELECT b.id, b.created_at, r.id, r.created_at
FROM batch b
CROSS JOIN LATERAL (
    SELECT b.duplicate_of AS root WHERE b.duplicate_of IS NOT NULL
    UNION ALL
    SELECT COALESCE(near.duplicate_of, near.id) FROM (
        SELECT q.id, q.duplicate_of, e.embedding <=> b.embedding AS distance
        FROM post_embeddings e
        JOIN posts q ON q.id = e.post_id
        WHERE e.model = %(model)s AND e.post_id <> b.id
          AND q.created_at >= b.created_at - %(window)s AND q.created_at <= b.created_at + %(window)s
        ORDER BY e.embedding <=> b.embedding
        LIMIT %(k)s
    ) near
    WHERE near.distance <= %(max_distance)s
) g
JOIN posts r ON r.id = g.root
"""

# Every group named in `olds` becomes the group of the matching `keeps` entry: the old root and its copies
# point at the new root, and a new root that was itself a copy (a post older than its former original)
# loses its link. The buckets of aggregated posts whose link changed are marked for the next aggregation
# (their unique_posts moved). Returns how many links changed.
_MERGE = """
WITH m AS (
    SELECT * FROM unnest(%(olds)s::bigint[], %(keeps)s::bigint[]) AS m(old, keep)
), changed AS (
    UPDATE posts p SET duplicate_of = m.keep
    FROM m
    WHERE (p.id = m.old OR p.duplicate_of = m.old) AND p.id <> m.keep
      AND p.duplicate_of IS DISTINCT FROM m.keep
    RETURNING p.id, p.source, p.created_at
), cleared AS (
    UPDATE posts SET duplicate_of = NULL
    WHERE id = ANY (%(keeps)s) AND duplicate_of IS NOT NULL
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


def link_duplicates(conn: psycopg.Connection, model: str, post_ids: Sequence[int], *, threshold: float,
                    window: timedelta) -> LinkRun:
    """Link each of `post_ids` (with a `model` embedding) to the earliest post within `threshold` cosine
    similarity inside `window` before or after it, merging groups the post bridges; call inside the
    transaction that wrote the embeddings. The batch's neighbours are read in one statement and its groups
    joined in memory (earliest posts first, so a batch of copies links to its first), then written in one."""
    if not post_ids:
        return LinkRun(0, 0)
    register(conn)
    use_iterative_scan(conn, max(40, 2 * NEIGHBOURS))
    rows = conn.execute(_CANDIDATES, {"ids": list(post_ids), "model": model, "window": window, "k": NEIGHBOURS,
                                      "max_distance": 1.0 - threshold}).fetchall()
    # Each post's candidate roots, and when every post and root was created (the earliest one keeps a group).
    created: dict[int, datetime] = {}
    candidates: dict[int, set[int]] = {}
    for post_id, post_at, root_id, root_at in rows:
        created[int(post_id)], created[int(root_id)] = post_at, root_at
        candidates.setdefault(int(post_id), set()).add(int(root_id))
    groups = _Groups(created)
    for post_id in sorted(candidates, key=lambda i: (created[i], i)):
        groups.join({post_id, *candidates[post_id]})
    olds, keeps = groups.moves()
    if not olds:
        return LinkRun(len(post_ids), 0)
    row = conn.execute(_MERGE, {"olds": olds, "keeps": keeps}).fetchone()
    return LinkRun(len(post_ids), int(row[0]) if row else 0)


class _Groups:
    """Union-find over post ids whose root is always the earliest post (created_at, then id) of its group, as
    the links in posts.duplicate_of are: the batch's joins are made here and written once."""

    def __init__(self, created: dict[int, datetime]) -> None:
        self._created = created
        self._parent: dict[int, int] = {}

    def find(self, post_id: int) -> int:
        root = post_id
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        while post_id != root:  # path compression
            self._parent[post_id], post_id = root, self._parent[post_id]
        return root

    def join(self, ids: set[int]) -> None:
        roots = {self.find(i) for i in ids}
        keep = min(roots, key=lambda r: (self._created[r], r))
        for r in roots:
            self._parent[r] = keep

    def moves(self) -> tuple[list[int], list[int]]:
        """(old root, new root) pairs, as two lists, for every id whose group is kept by another post."""
        olds, keeps = [], []
        for i in self._parent:
            keep = self.find(i)
            if keep != i:
                olds.append(i)
                keeps.append(keep)
        return olds, keeps


def embedded_posts(conn: psycopg.Connection, model: str, since: datetime | None = None) -> list[int]:
    """Ids of the posts with a `model` embedding (created at or after `since`), earliest first."""
    return [int(r[0]) for r in conn.execute(_EMBEDDED_SINCE, {"model": model, "since": since})]


def count_duplicates(conn: psycopg.Connection) -> int:
    """Posts linked to an earlier original."""
    row = conn.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL").fetchone()
    return int(row[0]) if row else 0
