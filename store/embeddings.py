"""Post embeddings (pgvector): writing them, claiming posts that lack one, and nearest-neighbour search.

The table (migration 0010) exists only where the server has the `vector` extension: callers ask
`embeddings_available` first. Vectors are unit length, so cosine distance (`<=>`, the HNSW index's
operator class) orders by meaning; similarity = 1 - distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import psycopg


def embeddings_available(conn: psycopg.Connection) -> bool:
    """Whether this database has the post_embeddings table (the vector extension was there to create it)."""
    # In a transaction block of its own: a bare SELECT would leave the connection inside a transaction, and
    # the workers' per-batch `conn.transaction()` would then be savepoints of one long transaction.
    with conn.transaction():
        row = conn.execute("SELECT to_regclass('post_embeddings') IS NOT NULL").fetchone()
    return bool(row and row[0])


def register(conn: psycopg.Connection) -> None:
    """Teach this connection the vector type (numpy arrays in and out); once per connection."""
    if getattr(conn, "_murmur_vector", False):
        return
    from pgvector.psycopg import register_vector

    register_vector(conn)
    conn._murmur_vector = True  # type: ignore[attr-defined]


_TO_EMBED = """
SELECT p.id, p.lang FROM posts p
WHERE p.id = ANY (%(ids)s)
  AND NOT EXISTS (SELECT 1 FROM post_embeddings e WHERE e.post_id = p.id AND e.model = %(model)s)
"""


def posts_to_embed(conn: psycopg.Connection, model: str, post_ids: Sequence[int]) -> dict[int, str | None]:
    """Of `post_ids`, those without a `model` embedding, with their language."""
    if not post_ids:
        return {}
    return {int(i): lang for i, lang in conn.execute(_TO_EMBED, {"ids": list(post_ids), "model": model})}


# Posts without an embedding of `model`, newest first (search is mostly about the recent past);
# `unscored_only`: only posts no sentiment model scored (the languages no route covers), which the
# scoring pass embeds on its own since nothing else reads them. SKIP LOCKED: workers share the queue.
_CLAIM = """
SELECT p.id, p.text, p.lang FROM posts p
WHERE NOT EXISTS (SELECT 1 FROM post_embeddings e WHERE e.post_id = p.id AND e.model = %(model)s)
  AND (NOT %(unscored_only)s OR NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id))
ORDER BY p.id DESC
LIMIT %(limit)s
FOR UPDATE OF p SKIP LOCKED
"""
_COUNT = """
SELECT count(*) FROM posts p
WHERE NOT EXISTS (SELECT 1 FROM post_embeddings e WHERE e.post_id = p.id AND e.model = %(model)s)
  AND (NOT %(unscored_only)s OR NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id))
"""


def claim_unembedded(
    conn: psycopg.Connection, model: str, limit: int, *, unscored_only: bool = False
) -> list[tuple[int, str, str | None]]:
    """Lock up to `limit` posts without a `model` embedding: (id, text, lang); call inside a transaction."""
    params = {"model": model, "limit": limit, "unscored_only": unscored_only}
    while True:
        claimed = [(int(i), t, lang) for i, t, lang in conn.execute(_CLAIM, params)]
        if not claimed:
            return []
        # As in scores.claim_unscored: a post another worker embedded while this statement waited for its
        # lock is still "unembedded" in this statement's snapshot; a new statement sees its row.
        done = set(posts_done(conn, model, [post_id for post_id, _, _ in claimed]))
        fresh = [c for c in claimed if c[0] not in done]
        if fresh:
            return fresh


def posts_done(conn: psycopg.Connection, model: str, post_ids: Sequence[int]) -> list[int]:
    """Of `post_ids`, those with a `model` embedding."""
    rows = conn.execute("SELECT post_id FROM post_embeddings WHERE model = %s AND post_id = ANY (%s)",
                        (model, list(post_ids)))
    return [int(r[0]) for r in rows]


def count_unembedded(conn: psycopg.Connection, model: str, *, unscored_only: bool = False) -> int:
    """Posts without a `model` embedding (`unscored_only`: of those, the ones no model scored)."""
    with conn.transaction():
        row = conn.execute(_COUNT, {"model": model, "unscored_only": unscored_only}).fetchone()
    return int(row[0]) if row else 0


_INSERT = """
INSERT INTO post_embeddings (post_id, model, embedding) VALUES (%s, %s, %s)
ON CONFLICT (post_id, model) DO NOTHING
"""


def write_embeddings(conn: psycopg.Connection, model: str, post_ids: Sequence[int], vectors: np.ndarray) -> None:
    """Insert one embedding per post (rows of `vectors`, float32, unit length); existing ones are kept."""
    register(conn)
    rows = [(post_id, model, vec) for post_id, vec in zip(post_ids, vectors, strict=True)]
    with conn.cursor() as cur:
        cur.executemany(_INSERT, rows)


@dataclass(frozen=True)
class SearchFilters:
    since: datetime | None = None
    until: datetime | None = None  # excluded
    sources: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()

    @property
    def narrowing(self) -> bool:
        """Whether any filter is set."""
        return any((self.since, self.until, self.sources, self.langs, self.terms))

    def params(self) -> dict[str, Any]:
        """POST_FILTERS' parameters."""
        return {"since": self.since, "until": self.until, "sources": list(self.sources) or None,
                "langs": list(self.langs) or None, "terms": list(self.terms) or None}


# A post's filters (SearchFilters), on `posts p`: search's and topics' (store/topics.py).
POST_FILTERS = """
  AND (%(since)s::timestamptz IS NULL OR p.created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR p.created_at < %(until)s)
  AND (%(sources)s::text[] IS NULL OR p.source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR p.lang = ANY (%(langs)s))
  AND (%(terms)s::text[] IS NULL OR p.terms && %(terms)s)
"""

# The filters sit in the same query as the index scan: with pgvector's iterative scans (0.8,
# hnsw.iterative_scan) the HNSW scan goes on past ef_search until `limit` rows pass them, instead of
# filtering a fixed candidate list afterwards (which returns too few rows when filters are narrow).
# relaxed_order may return rows slightly out of order: the outer query sorts the few it kept.
# The label shown is the post's latest score (any model).
_NEAREST = """
WITH nearest AS MATERIALIZED (
    SELECT e.post_id, e.embedding <=> %(q)s AS distance
    FROM post_embeddings e
    JOIN posts p ON p.id = e.post_id
    WHERE e.model = %(model)s
""" + POST_FILTERS + """    ORDER BY {order}
    LIMIT %(limit)s
)
SELECT p.id, p.text, 1 - n.distance AS similarity, p.source, p.created_at, s.label, p.url, p.lang
FROM nearest n
JOIN posts p ON p.id = n.post_id
LEFT JOIN LATERAL (
    SELECT label FROM sentiment_scores WHERE post_id = p.id ORDER BY scored_at DESC LIMIT 1
) s ON true
ORDER BY n.distance, p.id
"""
_SEARCH = _NEAREST.format(order="e.embedding <=> %(q)s")
# The same, exact: `+ 0` makes the order an expression the HNSW index cannot serve, so the planner finds the
# filtered posts by their own indexes (created_at, source, lang, terms), reads each one's vector by the primary
# key and sorts them all. Chosen when the filters keep few posts (EXACT_SCAN_ROWS).
_SEARCH_EXACT = _NEAREST.format(order="(e.embedding <=> %(q)s) + 0")
_FILTERED_ROWS = "SELECT 1 FROM posts p WHERE true" + POST_FILTERS

# Filters the planner expects to keep fewer posts than this are searched exactly, not through the index. An
# HNSW scan meets a narrow filter's posts rarely (0.3% of 1M posts: 370-575 ms and 3 of 20 posts found,
# bench/search.py) while reading and sorting 10,000 vectors takes tens of milliseconds, and is complete.
EXACT_SCAN_ROWS = 10_000

SEARCH_COLUMNS = ("id", "text", "similarity", "source", "created_at", "label", "url", "lang")


# How far an iterative scan may go past the filters before it gives up (pgvector's hnsw.max_scan_tuples, 20,000
# by default). A narrow filter (a source, a language and a term in one week: 0.3% of 1M posts) stopped there
# with 2 of 20 posts found (bench/search.py); a filtered search goes on further, trading time for the posts.
FILTERED_SCAN_TUPLES = 200_000


def ef_search(limit: int) -> int:
    """The HNSW candidate list for `limit` results: at least 2x the limit, 400 at least, at most 1000
    (pgvector's maximum). Not pgvector's default 40: at 1,000,000 embeddings derived from 60,000 real centred
    e5 vectors (bench/search.py --ef) recall@10 was 0.884 at 100, 0.928 at 200, 0.972 at 400 (index query p95
    23.9 ms) and 0.988 at 800 (43.3 ms); on 20,000 real vectors 100 already gave 0.998."""
    return max(400, min(1000, 2 * limit))


def exact_search(conn: psycopg.Connection, filters: SearchFilters) -> bool:
    """Whether a search within `filters` scans the filtered posts exactly (the planner expects fewer than
    EXACT_SCAN_ROWS of them) rather than the HNSW index."""
    return filters.narrowing and estimated_rows(conn, _FILTERED_ROWS, filters.params()) < EXACT_SCAN_ROWS


def estimated_rows(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> float:
    """The rows the planner expects `query` to return (EXPLAIN: planned, not run; a millisecond or so)."""
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()
    return float(plan[0][0]["Plan"]["Plan Rows"]) if plan else 0.0


def use_iterative_scan(conn: psycopg.Connection, ef: int, max_scan_tuples: int = 20_000) -> None:
    """HNSW scans in the caller's transaction (set_config's is_local: never the session) with a candidate list
    of `ef` and iterative scanning (relaxed order) up to `max_scan_tuples` past the filters."""
    conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                 "set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true)",
                 (str(ef), str(max_scan_tuples)))


def search_nearest(
    conn: psycopg.Connection, model: str, query: np.ndarray, filters: SearchFilters, limit: int, *,
    ef: int | None = None,
) -> list[dict[str, Any]]:
    """The `limit` posts whose `model` embedding is nearest to `query` (unit length), filters applied inside
    the index scan (or an exact scan of the filtered posts where they are few: exact_search); each a dict of
    SEARCH_COLUMNS. `ef`: the HNSW candidate list (default ef_search(limit))."""
    register(conn)
    params = {"q": query, "model": model, "limit": limit, **filters.params()}
    with conn.transaction():
        if exact_search(conn, filters):
            rows = conn.execute(_SEARCH_EXACT, params).fetchall()
        else:
            use_iterative_scan(conn, ef or ef_search(limit), FILTERED_SCAN_TUPLES if filters.narrowing else 20_000)
            rows = conn.execute(_SEARCH, params).fetchall()
    return [dict(zip(SEARCH_COLUMNS, row, strict=True)) for row in rows]
