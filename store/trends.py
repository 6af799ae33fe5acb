"""Aggregates: hour and day buckets per (source, term, lang, model), and the trend queries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

from murmur.store.rollups import refresh_rollups

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

AGGREGATE_LOCK_KEY = 0x61676772  # "aggr": one aggregation at a time per database

# Scores not yet counted are claimed by stamping them; the hour buckets their posts fall in are then
# recomputed whole from posts and scores, and their days folded from the hours, so the result never depends on
# what ran before.
# Returns (scores claimed, buckets touched): counting the claimed scores afterwards (aggregated_at = now())
# scanned every score, 0.1 s per million.
_CLAIM_TOUCHED = """
WITH claimed AS (
    UPDATE sentiment_scores SET aggregated_at = now()
    WHERE aggregated_at IS NULL
    RETURNING post_id, model
), touched AS (
    INSERT INTO touched_buckets (bucket_size, bucket_start, source, model)
    SELECT DISTINCT b.size, date_bin(b.step, p.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), p.source, c.model
    FROM claimed c
    JOIN posts p ON p.id = c.post_id
    CROSS JOIN (VALUES ('hour', INTERVAL '1 hour'), ('day', INTERVAL '1 day')) AS b(size, step)
    RETURNING 1
)
SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM touched)
"""

# Buckets whose posts were deleted or edited under their aggregates (a stream source marks them:
# store/stream.py) are recomputed too; a bucket already claimed above is not listed twice (a duplicate
# row here would count its posts twice).
_CLAIM_DIRTY = """
WITH dirty AS (
    DELETE FROM dirty_buckets RETURNING bucket_size, bucket_start, source, model
)
INSERT INTO touched_buckets (bucket_size, bucket_start, source, model)
SELECT DISTINCT d.bucket_size, d.bucket_start, d.source, d.model
FROM dirty d
WHERE NOT EXISTS (
    SELECT 1 FROM touched_buckets t
    WHERE (t.bucket_size, t.bucket_start, t.source, t.model) = (d.bucket_size, d.bucket_start, d.source, d.model)
)
"""

# A day bucket touched alone (murmur marks a post's hour with its day; a caller may name only the day) is
# taken as all its hours, and an hour's day is always touched with it: days are folded from their hours.
_EXPAND_DAYS = """
INSERT INTO touched_buckets (bucket_size, bucket_start, source, model)
SELECT 'hour', h, t.source, t.model
FROM touched_buckets t, generate_series(t.bucket_start, t.bucket_start + INTERVAL '23 hours', INTERVAL '1 hour') h
WHERE t.bucket_size = 'day'
  AND NOT EXISTS (SELECT 1 FROM touched_buckets x WHERE x.bucket_size = 'hour' AND x.source = t.source
                  AND x.model = t.model AND x.bucket_start >= t.bucket_start
                  AND x.bucket_start < t.bucket_start + INTERVAL '1 day')
UNION ALL
SELECT DISTINCT 'day', date_bin(INTERVAL '1 day', t.bucket_start, TIMESTAMPTZ '2000-01-01 00:00:00+00'), t.source,
       t.model
FROM touched_buckets t
WHERE t.bucket_size = 'hour'
  AND NOT EXISTS (SELECT 1 FROM touched_buckets x WHERE x.bucket_size = 'day' AND x.source = t.source
                  AND x.model = t.model
                  AND x.bucket_start = date_bin(INTERVAL '1 day', t.bucket_start, TIMESTAMPTZ '2000-01-01 00:00:00+00'))
"""

_UPSERT = """ON CONFLICT (bucket_size, bucket_start, source, term, lang, model) DO UPDATE SET
    posts = EXCLUDED.posts,
    negative = EXCLUDED.negative,
    neutral = EXCLUDED.neutral,
    positive = EXCLUDED.positive,
    mean_polarity = EXCLUDED.mean_polarity,
    weighted_polarity = EXCLUDED.weighted_polarity,
    engagement = EXCLUDED.engagement,
    unique_posts = EXCLUDED.unique_posts,
    weight_sum = EXCLUDED.weight_sum,
    updated_at = EXCLUDED.updated_at
"""

# A post weighs murmur_engagement_weight(likes, reposts, replies) = 1 + ln(1 + likes + reposts + replies)
# in `weighted_polarity` (migration 0004 defines it): reactions count, but a viral post does not drown the rest.
# unique_posts: the posts that are no copy of an earlier post (posts.duplicate_of, migration 0012), so each
# text counts once, where it first appeared, and the sums over buckets and sources stay honest.
# weight_sum (migration 0015): the weights' sum, weighted_polarity's denominator, so days fold from hours.
# Only hours are read from the posts (a touched hour holds ~1/24 of its day's posts); _FOLD_DAYS makes the days.
_RECOMPUTE = """
INSERT INTO aggregates AS a (bucket_size, bucket_start, source, term, lang, model,
                             posts, negative, neutral, positive, mean_polarity,
                             weighted_polarity, engagement, unique_posts, weight_sum, updated_at)
SELECT t.bucket_size, t.bucket_start, p.source, term, COALESCE(p.lang, 'und'), s.model,
       count(*),
       count(*) FILTER (WHERE s.label = 'negative'),
       count(*) FILTER (WHERE s.label = 'neutral'),
       count(*) FILTER (WHERE s.label = 'positive'),
       avg(s.positive - s.negative),
       sum(e.weight * (s.positive - s.negative)) / sum(e.weight),
       sum(e.engagement),
       count(*) FILTER (WHERE p.duplicate_of IS NULL),
       sum(e.weight),
       now()
FROM touched_buckets t
JOIN posts p
  ON p.source = t.source
 AND p.created_at >= t.bucket_start
 AND p.created_at < t.bucket_start + INTERVAL '1 hour'
JOIN sentiment_scores s ON s.post_id = p.id AND s.model = t.model
CROSS JOIN LATERAL unnest(p.terms) AS term
CROSS JOIN LATERAL (
    SELECT murmur_engagement(p.likes, p.reposts, p.replies) AS engagement,
           murmur_engagement_weight(p.likes, p.reposts, p.replies) AS weight
) e
WHERE t.bucket_size = 'hour'
GROUP BY t.bucket_size, t.bucket_start, p.source, term, COALESCE(p.lang, 'und'), s.model
""" + _UPSERT

# A touched day from its 24 hour rows (recomputed or current), after the stale hour rows are gone: the same
# figures as counting its posts (the means weighted back by their counts and weights).
_FOLD_DAYS = """
INSERT INTO aggregates AS a (bucket_size, bucket_start, source, term, lang, model,
                             posts, negative, neutral, positive, mean_polarity,
                             weighted_polarity, engagement, unique_posts, weight_sum, updated_at)
SELECT 'day', t.bucket_start, h.source, h.term, h.lang, h.model,
       sum(h.posts), sum(h.negative), sum(h.neutral), sum(h.positive),
       sum(h.mean_polarity * h.posts) / sum(h.posts),
       sum(h.weighted_polarity * h.weight_sum) / sum(h.weight_sum),
       sum(h.engagement), sum(h.unique_posts), sum(h.weight_sum), now()
FROM touched_buckets t
JOIN aggregates h
  ON h.bucket_size = 'hour' AND h.source = t.source AND h.model = t.model
 AND h.bucket_start >= t.bucket_start AND h.bucket_start < t.bucket_start + INTERVAL '1 day'
WHERE t.bucket_size = 'day'
GROUP BY t.bucket_start, h.source, h.term, h.lang, h.model
""" + _UPSERT

# A row of a recomputed bucket that the recomputation did not produce (a post changed language,
# say) is stale: now() is the transaction's time, so rows just written are exactly those equal to it.
# Run between the hours and the days: it drops the hours left out and the touched days' old rows, which the
# fold then writes again from the hours that remain.
_DROP_STALE = """
DELETE FROM aggregates a
USING touched_buckets t
WHERE a.bucket_size = t.bucket_size AND a.bucket_start = t.bucket_start
  AND a.source = t.source AND a.model = t.model AND a.updated_at < now()
"""


@dataclass(frozen=True)
class AggregateRun:
    scores: int  # newly counted scores
    buckets: int  # (size, start, source, model) buckets recomputed
    rows: int  # aggregate rows written
    alerts: int = 0  # alerts the `detect` hook stored (new or updated)
    detect_error: str | None = None  # why alert detection failed (the aggregates are stored all the same)
    report_buckets: int = 0  # hour buckets of the report tables recomputed, with their days (store/rollups.py)


def aggregate(
    conn: psycopg.Connection,
    *,
    rebuild: bool = False,
    detect: Callable[[psycopg.Connection], int] | None = None,
) -> AggregateRun:
    """Fold newly scored posts into the hour and day buckets, and changed posts and scores into the tables
    the reports read (store/rollups.py); `rebuild` recomputes every bucket and gives the same rows as the
    incremental runs did.

    `detect(conn)` runs in the same transaction once the buckets are recomputed, with the temporary
    table `touched_buckets` (bucket_size, bucket_start, source, model) naming them, and returns how
    many alerts it stored. It runs in a savepoint: when it fails, the failure is logged and the
    aggregation still commits, so a detector bug never stops the trends.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (AGGREGATE_LOCK_KEY,))
        if rebuild:
            conn.execute("DELETE FROM aggregates")
            conn.execute("UPDATE sentiment_scores SET aggregated_at = NULL WHERE aggregated_at IS NOT NULL")
        conn.execute(
            """
            CREATE TEMP TABLE IF NOT EXISTS touched_buckets (
                bucket_size text, bucket_start timestamptz, source text, model text
            ) ON COMMIT DELETE ROWS
            """
        )
        # Emptied at commit; but called inside a caller's transaction this block is a savepoint, and the
        # buckets of an earlier run in it would be recomputed again (and again).
        conn.execute("DELETE FROM touched_buckets")
        with conn.cursor() as cur:
            claimed = cur.execute(_CLAIM_TOUCHED).fetchone()
            scores, touched = (int(claimed[0]), int(claimed[1])) if claimed else (0, 0)
            cur.execute(_CLAIM_DIRTY)
            touched += cur.rowcount
            if touched == 0:
                # No score changed, but posts may have (new ones waiting for scores, unscored languages).
                return AggregateRun(0, 0, 0, report_buckets=refresh_rollups(conn, rebuild=rebuild))
            # A temporary table has no statistics until analysed: the planner would guess its size and,
            # for 2 touched buckets, merge-join every post of the source against every row it imagines
            # (measured: 16 s for 500 new posts over 100k). With real counts it reads each bucket's posts
            # through the (source, created_at) index.
            cur.execute(_EXPAND_DAYS)
            touched += cur.rowcount
            cur.execute("ANALYZE touched_buckets")
            cur.execute(_RECOMPUTE)
            rows = cur.rowcount
            cur.execute(_DROP_STALE)  # hours the recomputation left out, and the touched days' old rows
            cur.execute(_FOLD_DAYS)
            rows += cur.rowcount
        report_buckets = refresh_rollups(conn, rebuild=rebuild)
        alerts, detect_error = 0, None
        if detect is not None:
            try:
                with conn.transaction():
                    alerts = detect(conn)
            except Exception as err:  # any detector bug: the trends are kept, the run says it failed
                logger.exception("alert detection failed; the aggregates are stored, these buckets go unchecked")
                detect_error = f"alert detection failed: {type(err).__name__}: {err}"
    return AggregateRun(scores=scores, buckets=touched, rows=rows, alerts=alerts,
                        detect_error=detect_error, report_buckets=report_buckets)


@dataclass(frozen=True)
class TrendRow:
    bucket_start: datetime
    source: str
    term: str
    posts: int
    negative: int
    neutral: int
    positive: int
    mean_polarity: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket_start": self.bucket_start.isoformat(),
            "source": self.source,
            "term": self.term,
            "posts": self.posts,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "mean_polarity": round(self.mean_polarity, 4),
        }


def trend(
    conn: psycopg.Connection,
    *,
    by: str = "day",
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    terms: list[str] | None = None,
    sources: list[str] | None = None,
) -> list[TrendRow]:
    """Posts and sentiment per bucket, source and term (languages summed), oldest first.

    `model` None means the model that scored most recently, so a report after `murmur score`
    shows what was just scored.
    """
    if by not in ("hour", "day"):
        raise ValueError(f"by must be 'hour' or 'day', not {by!r}")
    if model is None:
        model = latest_model(conn)
        if model is None:
            return []
    rows = trend_series(conn, by=by, model=model, since=since, until=until, terms=terms, sources=sources)
    return [TrendRow(*row[:8]) for row in rows]


def latest_model(conn: psycopg.Connection) -> str | None:
    """The model whose scores were aggregated last; None before any aggregation."""
    row = conn.execute("SELECT model FROM aggregates ORDER BY updated_at DESC LIMIT 1").fetchone()
    return str(row[0]) if row else None


SERIES_DIMS = ("source", "term", "lang")

# Languages and sources partition the aggregates, terms do not (a post matching two terms is in
# both term rows): per term, or per (source, term), the aggregates can simply be summed.
_SERIES = """
SELECT {bucket} AS bucket_start, {dims}, sum(posts)::int, sum(negative)::int, sum(neutral)::int,
       sum(positive)::int, sum(mean_polarity * posts) / sum(posts), sum(unique_posts)::int
FROM aggregates
WHERE bucket_size = %(by)s AND model = %(model)s
  AND (%(since)s::timestamptz IS NULL OR bucket_start >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR bucket_start < %(until)s)
  AND (%(terms)s::text[] IS NULL OR lower(term) = ANY (%(terms)s))
  AND (%(sources)s::text[] IS NULL OR source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(lang) = ANY (%(langs)s))
GROUP BY 1, {dims}
ORDER BY 1, {dims}
"""


def trend_series(
    conn: psycopg.Connection,
    *,
    by: str,
    model: str,
    dims: Sequence[str] = ("source", "term"),
    weekly: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    terms: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    langs: Sequence[str] | None = None,
) -> list[tuple[Any, ...]]:
    """(bucket_start, *dims, posts, negative, neutral, positive, mean_polarity, unique_posts) per `by` bucket
    ('hour' or 'day'; `weekly` folds day buckets into ISO weeks) and series, oldest first.

    `dims` names the series (of SERIES_DIMS); terms and languages are matched case-insensitively,
    None (or empty) matches any.
    """
    unknown = [d for d in dims if d not in SERIES_DIMS]
    if unknown or not dims:
        raise ValueError(f"dims must be some of {', '.join(SERIES_DIMS)}, not {list(dims)!r}")
    bucket = sql.SQL("date_trunc('week', bucket_start, 'UTC')" if weekly else "bucket_start")
    query = sql.SQL(_SERIES).format(bucket=bucket, dims=sql.SQL(", ").join(sql.Identifier(d) for d in dims))
    params = {
        "by": by,
        "model": model,
        "since": since,
        "until": until,
        "terms": [t.lower() for t in terms] if terms else None,
        "sources": list(sources) if sources else None,
        "langs": [lang.lower() for lang in langs] if langs else None,
    }
    return conn.execute(query, params).fetchall()
