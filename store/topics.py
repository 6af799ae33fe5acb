"""Topics (murmur/topics/): one period's embedded posts, with their polarity, and which complete periods the
`topic_emerging` alert has already checked (`topic_checks`, migration 0011)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from murmur.store.embeddings import POST_FILTERS, register

if TYPE_CHECKING:
    import psycopg

    from murmur.store.embeddings import SearchFilters


@dataclass
class PeriodPosts:
    """A period's posts that have an embedding, as parallel columns."""

    ids: list[int]
    texts: list[str]
    urls: list[str | None]
    created_at: list[datetime]
    polarity: list[float | None]  # positive - negative of `score_model`'s score; None where it scored none
    vectors: np.ndarray  # n x 384, unit rows (float32)

    def __len__(self) -> int:
        return len(self.ids)


# The filters as murmur search applies them (store/embeddings.py): sources, languages, terms.
_POSTS = """
SELECT p.id, p.text, p.url, p.created_at, s.positive - s.negative, e.embedding
FROM post_embeddings e
JOIN posts p ON p.id = e.post_id
LEFT JOIN sentiment_scores s ON s.post_id = p.id AND s.model = %(score_model)s
WHERE e.model = %(model)s
  AND p.created_at >= %(since)s AND p.created_at < %(until)s
  AND (%(sources)s::text[] IS NULL OR p.source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR p.lang = ANY (%(langs)s))
  AND (%(terms)s::text[] IS NULL OR p.terms && %(terms)s)
ORDER BY p.id
"""


def period_posts(conn: psycopg.Connection, model: str, score_model: str | None, since: datetime, until: datetime,
                 filters: SearchFilters) -> PeriodPosts:
    """The posts created in [since, until) with a `model` embedding, within `filters` (its since/until unused)."""
    register(conn)
    params = filters.params() | {"model": model, "score_model": score_model, "since": since, "until": until}
    # A binary cursor: parsing 100,000 vectors from their text form took 33 s of a week's 99 s (bench/search.py);
    # read in binary they take 2-4 s.
    with conn.transaction(), conn.cursor(binary=True) as cur:
        rows = cur.execute(_POSTS, params).fetchall()
    vectors = (np.stack([np.asarray(r[5].to_numpy(), dtype=np.float32) for r in rows]) if rows
               else np.zeros((0, 384), dtype=np.float32))
    return PeriodPosts(ids=[int(r[0]) for r in rows], texts=[r[1] for r in rows], urls=[r[2] for r in rows],
                       created_at=[r[3] for r in rows],
                       polarity=[None if r[4] is None else float(r[4]) for r in rows], vectors=vectors)


_SPAN = """
SELECT min(p.created_at), max(p.created_at)
FROM post_embeddings e
JOIN posts p ON p.id = e.post_id
WHERE e.model = %(model)s
""" + POST_FILTERS


def embedded_span(conn: psycopg.Connection, model: str, filters: SearchFilters) -> tuple[datetime, datetime] | None:
    """The first and last created_at of the embedded posts within `filters`; None when there are none."""
    params = filters.params() | {"model": model}
    with conn.transaction():
        row = conn.execute(_SPAN, params).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


# Inside the aggregation's transaction: a period is checked once, the first time it is complete.
_CLAIM_CHECK = """
INSERT INTO topic_checks (bucket_size, period_start, model) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING
RETURNING period_start
"""


def claim_topic_check(conn: psycopg.Connection, bucket_size: str, period_start: datetime, model: str) -> bool:
    """Record that the `bucket_size` period from `period_start` is checked for emerging topics; False when it
    already was (by this run's predecessors, or a concurrent one)."""
    return conn.execute(_CLAIM_CHECK, (bucket_size, period_start, model)).fetchone() is not None


def topic_checks_available(conn: psycopg.Connection) -> bool:
    """Whether this database has the topic_checks table (migration 0011)."""
    row = conn.execute("SELECT to_regclass('topic_checks') IS NOT NULL").fetchone()
    return bool(row and row[0])


def latest_scored_model(conn: psycopg.Connection) -> str | None:
    """The model of the newest sentiment score; None before any scoring."""
    with conn.transaction():
        row = conn.execute("SELECT model FROM sentiment_scores ORDER BY scored_at DESC LIMIT 1").fetchone()
    return str(row[0]) if row else None


def newest_post_at(conn: psycopg.Connection) -> datetime | None:
    """The created_at of the newest post (through posts_created_at_idx: no scan)."""
    row = conn.execute("SELECT max(created_at) FROM posts").fetchone()
    return row[0] if row else None
