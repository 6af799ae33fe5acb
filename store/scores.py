"""Claiming unscored posts and writing their scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from murmur.sentiment.scorer import Score

# SKIP LOCKED lets several workers (processes, machines) share the queue: each claims rows
# the others have not locked, and a crashed worker's claim ends with its transaction.
# `langs` NULL means every language (a model that covers all); otherwise only those.
# Which posts a claim takes (`which`):
#   new      no model has scored them yet (fresh posts), newest stored first;
#   history  another model scored them and this one has not (after a model change), newest created first,
#            so the recent days (the reports' present, the alerts' baseline) come back first;
#   any      every post this model has not scored, oldest first (what one claim did before models changed).
WHICH = ("new", "history", "any")
_NOT_BY_MODEL = "NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id AND s.model = %(model)s)"
_SCOPE = {
    "new": "NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id)",
    "history": _NOT_BY_MODEL + "\n  AND EXISTS (SELECT 1 FROM sentiment_scores o WHERE o.post_id = p.id"
               " AND o.model <> %(model)s)",
    "any": _NOT_BY_MODEL,
}
_ORDER = {"new": "p.id DESC", "history": "p.created_at DESC, p.id DESC", "any": "p.id"}
_LANGS = """
  AND (%(langs)s::text[] IS NULL OR p.lang = ANY (%(langs)s))
  AND (%(skip)s::text[] IS NULL OR p.lang IS NULL OR NOT (p.lang = ANY (%(skip)s)))"""
_CLAIM = {
    which: f"SELECT p.id, p.text\nFROM posts p\nWHERE {_SCOPE[which]}{_LANGS}\nORDER BY {_ORDER[which]}\n"
           "LIMIT %(limit)s\nFOR UPDATE OF p SKIP LOCKED"
    for which in WHICH
}
_COUNT = {which: f"SELECT count(*) FROM posts p\nWHERE {_SCOPE[which]}{_LANGS}" for which in WHICH}


def _check(which: str) -> None:
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, not {which!r}")


# Posts that no route covers, recorded with why; rows for posts scored since are removed.
_RECORD_UNSCORED = """
WITH uncovered AS (
    SELECT p.id,
           CASE WHEN p.lang IS NULL THEN 'language could not be detected'
                ELSE format('no configured model covers language %%L (covered: %%s)', p.lang, %(covered_text)s::text)
           END AS reason
    FROM posts p
    WHERE (p.lang IS NULL OR NOT (p.lang = ANY (%(covered)s::text[])))
      AND NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id)
), recorded AS (
    INSERT INTO unscored_posts (post_id, reason)
    SELECT id, reason FROM uncovered
    ON CONFLICT (post_id) DO UPDATE SET reason = EXCLUDED.reason, recorded_at = now()
    WHERE unscored_posts.reason IS DISTINCT FROM EXCLUDED.reason
)
DELETE FROM unscored_posts u
WHERE EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = u.post_id)
"""

_INSERT = """
INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (post_id, model) DO NOTHING
"""


def claim_unscored(
    conn: psycopg.Connection,
    model: str,
    limit: int,
    languages: Sequence[str] | None = None,
    skip: Sequence[str] | None = None,
    *,
    which: str = "any",
) -> list[tuple[int, str]]:
    """Lock up to `limit` posts that `model` has not scored, in `languages` (None: any) and not in
    `skip` (languages routed to other models), of the kind `which` names (new, history or any, see
    WHICH); call inside a transaction."""
    _check(which)
    params = {
        "model": model,
        "limit": limit,
        "langs": list(languages) if languages is not None else None,
        "skip": list(skip) if skip else None,
    }
    while True:
        claimed = [(int(i), t) for i, t in conn.execute(_CLAIM[which], params)]
        if not claimed:
            return []
        # Under READ COMMITTED the NOT EXISTS above is judged on the statement's snapshot: a post
        # another worker scored and committed while this statement waited is still "unscored" here,
        # and its row lock is free by then, so SKIP LOCKED does not skip it. Locking it means the
        # other worker has committed, so a new statement sees its scores: drop those posts.
        done = {
            row[0]
            for row in conn.execute(
                "SELECT post_id FROM sentiment_scores WHERE model = %s AND post_id = ANY (%s)",
                (model, [post_id for post_id, _ in claimed]),
            )
        }
        fresh = [(post_id, text) for post_id, text in claimed if post_id not in done]
        if fresh:
            return fresh


def record_unscored(conn: psycopg.Connection, covered: Sequence[str] | None) -> int:
    """Record why posts in languages outside `covered` (None: every language is covered) stay
    unscored; return how many posts are unscored for a reason now."""
    with conn.transaction():
        if covered is None:
            conn.execute(
                "DELETE FROM unscored_posts u WHERE EXISTS (SELECT 1 FROM posts p WHERE p.id = u.post_id"
                " AND p.lang IS NOT NULL)"
            )
            conn.execute(
                """
                INSERT INTO unscored_posts (post_id, reason)
                SELECT p.id, 'language could not be detected' FROM posts p
                WHERE p.lang IS NULL AND NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id)
                ON CONFLICT (post_id) DO NOTHING
                """
            )
        else:
            langs = sorted(set(covered))
            conn.execute(_RECORD_UNSCORED, {"covered": langs, "covered_text": ", ".join(langs) or "none"})
        row = conn.execute("SELECT count(*) FROM unscored_posts").fetchone()
    return int(row[0]) if row else 0


def write_scores(conn: psycopg.Connection, model: str, post_ids: Sequence[int], scores: Sequence[Score]) -> None:
    """Insert one score per post (one round trip: executemany runs as a pipeline)."""
    rows = [
        (post_id, model, s.label, s.negative, s.neutral, s.positive)
        for post_id, s in zip(post_ids, scores, strict=True)
    ]
    with conn.cursor() as cur:
        cur.executemany(_INSERT, rows)


def count_unscored(
    conn: psycopg.Connection,
    model: str,
    languages: Sequence[str] | None = None,
    skip: Sequence[str] | None = None,
    *,
    which: str = "any",
) -> int:
    """Posts `model` could score (in `languages`, None: any; not in `skip`) and has not, of the kind
    `which` names (new: no model scored them; history: another model did; any: both)."""
    _check(which)
    row = conn.execute(
        _COUNT[which],
        {"model": model, "langs": list(languages) if languages is not None else None,
         "skip": list(skip) if skip else None},
    ).fetchone()
    return int(row[0]) if row else 0

