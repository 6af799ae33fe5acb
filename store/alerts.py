"""`alerts`: the series the detector reads, the alerts it stores, and their delivery state."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    import psycopg

SeriesKey = tuple[str, str, str, str]  # (bucket_size, source, term, model)
StreamKey = tuple[str, str, str]  # (bucket_size, source, model)


@dataclass(frozen=True)
class SeriesRow:
    """One bucket of a (size, source, term, model) series, languages summed."""

    start: datetime
    posts: int
    negative: int
    neutral: int
    positive: int
    mean_polarity: float
    unique_posts: int | None = None  # the posts no copy of an earlier one: spikes are judged on these


@dataclass
class TouchedSeries:
    """What the detector needs after an aggregation: each touched series with enough history before
    its touched buckets, which buckets were touched, and since when each (size, source, model) has
    been watched (its first bucket): days before that are unknown, not zero."""

    series: dict[SeriesKey, list[SeriesRow]] = field(default_factory=dict)
    touched: dict[StreamKey, set[datetime]] = field(default_factory=dict)
    watched_since: dict[StreamKey, datetime] = field(default_factory=dict)


# Run inside the aggregation's transaction, where the temporary table touched_buckets names the
# (size, start, source, model) buckets just recomputed (store/trends.py).
_TOUCHED = "SELECT bucket_size, bucket_start, source, model FROM touched_buckets"

_SERIES = """
WITH spans AS (
    SELECT bucket_size, source, model, min(bucket_start) AS first, max(bucket_start) AS last
    FROM touched_buckets
    GROUP BY bucket_size, source, model
)
SELECT a.bucket_size, a.source, a.term, a.model, a.bucket_start,
       sum(a.posts)::int, sum(a.negative)::int, sum(a.neutral)::int, sum(a.positive)::int,
       sum(a.mean_polarity * a.posts) / sum(a.posts), sum(a.unique_posts)::int
FROM spans t
JOIN aggregates a
  ON a.bucket_size = t.bucket_size AND a.source = t.source AND a.model = t.model
 AND a.bucket_start >= t.first - make_interval(days => CASE t.bucket_size WHEN 'hour' THEN %(hour_days)s
                                                                          ELSE %(day_days)s END)
 AND a.bucket_start <= t.last
GROUP BY a.bucket_size, a.source, a.term, a.model, a.bucket_start
ORDER BY a.bucket_size, a.source, a.term, a.model, a.bucket_start
"""

# min() per stream walks the primary key (bucket_size, bucket_start, ...) from the start and stops at
# the first row of that source and model: no scan of the whole table.
_WATCHED_SINCE = """
SELECT s.bucket_size, s.source, s.model,
       (SELECT min(a.bucket_start) FROM aggregates a
        WHERE a.bucket_size = s.bucket_size AND a.source = s.source AND a.model = s.model)
FROM (SELECT DISTINCT bucket_size, source, model FROM touched_buckets) s
"""


def touched_series(conn: psycopg.Connection, *, hour_days: int, day_days: int) -> TouchedSeries:
    """The series of the buckets the running aggregation recomputed (call it inside `aggregate`), with
    `hour_days` (`day_days`) days of history before the touched hour (day) buckets."""
    out = TouchedSeries()
    for size, start, source, model in conn.execute(_TOUCHED):
        out.touched.setdefault((size, source, model), set()).add(start)
    series: dict[SeriesKey, list[SeriesRow]] = defaultdict(list)
    for size, source, term, model, *values in conn.execute(_SERIES, {"hour_days": hour_days, "day_days": day_days}):
        series[(size, source, term, model)].append(SeriesRow(*values))
    out.series = dict(series)
    for size, source, model, first in conn.execute(_WATCHED_SINCE):
        if first is not None:
            out.watched_since[(size, source, model)] = first
    return out


@dataclass(frozen=True)
class AlertRow:
    """An alert as stored (`id` None before it is)."""

    kind: str
    bucket_size: str
    bucket_start: datetime
    source: str
    term: str
    model: str
    value: float
    baseline: float
    score: float
    details: dict[str, Any]
    id: int | None = None
    detected_at: datetime | None = None
    delivered_at: datetime | None = None


# Detecting the same thing again (a rebuild, a late post in the bucket) refreshes the figures of the
# stored alert, keeping when it was first detected and whether it was delivered; only new rows are
# reported back as inserted, so each alert is logged once. An alert another model already raised (the
# same kind, bucket, source and term: a new default model re-scoring the history finds the spikes the old
# one found) is stored as delivered and not reported: it was told once.
_UPSERT = """
INSERT INTO alerts AS a (kind, bucket_size, bucket_start, source, term, model, value, baseline, score, details,
                         delivered_at)
SELECT v.*, CASE WHEN EXISTS (
    SELECT 1 FROM alerts o
    WHERE (o.kind, o.bucket_size, o.bucket_start, o.source, o.term)
          = (v.kind, v.bucket_size, v.bucket_start, v.source, v.term)
      AND o.model <> v.model) THEN now() END
FROM (VALUES (%s::text, %s::text, %s::timestamptz, %s::text, %s::text, %s::text, %s::float8, %s::float8,
              %s::float8, %s::jsonb)) AS v (kind, bucket_size, bucket_start, source, term, model, value, baseline,
                                            score, details)
ON CONFLICT (kind, bucket_size, bucket_start, source, term, model) DO UPDATE SET
    value = EXCLUDED.value, baseline = EXCLUDED.baseline, score = EXCLUDED.score, details = EXCLUDED.details
WHERE (a.value, a.baseline, a.score, a.details)
      IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.baseline, EXCLUDED.score, EXCLUDED.details)
RETURNING id, detected_at, (xmax = 0) AND delivered_at IS NULL AS new
"""


def store_alerts(conn: psycopg.Connection, alerts: list[AlertRow]) -> list[AlertRow]:
    """Upsert `alerts` on their unique key; returns those that were new (and not already raised under another
    model), with their ids."""
    if not alerts:
        return []
    new: list[AlertRow] = []
    with conn.cursor() as cur:
        cur.executemany(
            _UPSERT,
            [(a.kind, a.bucket_size, a.bucket_start, a.source, a.term, a.model, a.value, a.baseline, a.score,
              Jsonb(a.details)) for a in alerts],
            returning=True,
        )
        for alert in alerts:
            row = cur.fetchone()
            if row is not None and row[2]:
                new.append(AlertRow(**{**alert.__dict__, "id": row[0], "detected_at": row[1]}))
            if not cur.nextset():
                break
    return new


def claim_undelivered(conn: psycopg.Connection) -> AlertRow | None:
    """The oldest undelivered alert, locked until the caller's transaction ends; another process
    delivering at the same time skips it (so no alert is sent twice at once)."""
    row = conn.execute(
        """
        SELECT kind, bucket_size, bucket_start, source, term, model, value, baseline, score, details,
               id, detected_at, delivered_at
        FROM alerts
        WHERE delivered_at IS NULL
        ORDER BY id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """
    ).fetchone()
    return AlertRow(*row) if row else None


def mark_delivered(conn: psycopg.Connection, alert_id: int) -> None:
    conn.execute("UPDATE alerts SET delivered_at = now() WHERE id = %s", (alert_id,))


def count_undelivered(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM alerts WHERE delivered_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def recent_alerts(
    conn: psycopg.Connection, *, since: datetime | None = None, until: datetime | None = None, limit: int = 100
) -> list[AlertRow]:
    """Alerts whose bucket starts in [since, until), newest bucket first."""
    cur = conn.execute(
        """
        SELECT kind, bucket_size, bucket_start, source, term, model, value, baseline, score, details,
               id, detected_at, delivered_at
        FROM alerts
        WHERE (%(since)s::timestamptz IS NULL OR bucket_start >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR bucket_start < %(until)s)
        ORDER BY bucket_start DESC, id DESC
        LIMIT %(limit)s
        """,
        {"since": since, "until": until, "limit": limit},
    )
    return [AlertRow(*row) for row in cur.fetchall()]
