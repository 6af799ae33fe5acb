"""Claiming unscored posts and writing their scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from murmur.sentiment.scorer import Score

# SKIP LOCKED lets several workers (processes, machines) share the queue: each claims rows
# the others have not locked, and a crashed worker's claim ends with its transaction.
_CLAIM = """
SELECT p.id, p.text
FROM posts p
WHERE NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id AND s.model = %(model)s)
ORDER BY p.id
LIMIT %(limit)s
FOR UPDATE OF p SKIP LOCKED
"""

_INSERT = """
INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (post_id, model) DO NOTHING
"""


def claim_unscored(conn: psycopg.Connection, model: str, limit: int) -> list[tuple[int, str]]:
    """Lock up to `limit` posts that `model` has not scored; call inside a transaction."""
    return [(int(i), t) for i, t in conn.execute(_CLAIM, {"model": model, "limit": limit})]


def write_scores(conn: psycopg.Connection, model: str, post_ids: Sequence[int], scores: Sequence[Score]) -> None:
    """Insert one score per post (one round trip: executemany runs as a pipeline)."""
    rows = [
        (post_id, model, s.label, s.negative, s.neutral, s.positive)
        for post_id, s in zip(post_ids, scores, strict=True)
    ]
    with conn.cursor() as cur:
        cur.executemany(_INSERT, rows)


def count_unscored(conn: psycopg.Connection, model: str) -> int:
    row = conn.execute(
        """
        SELECT count(*) FROM posts p
        WHERE NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id AND s.model = %s)
        """,
        (model,),
    ).fetchone()
    return int(row[0]) if row else 0
