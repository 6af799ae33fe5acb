"""Volume and sentiment per period and series, read from the aggregates (or, where summing the
aggregates would count a post once per term it matched, from the scored posts themselves)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

from murmur.reports.filters import EmptyReport, Filters, ReportError

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Point:
    """One period of one series."""

    bucket_start: datetime
    key: tuple[str, ...]  # the series: values of Filters.dims
    posts: int
    negative: int
    neutral: int
    positive: int
    mean_polarity: float  # mean of P(positive) - P(negative)

    @property
    def polarity_se(self) -> float:
        """Standard error of the mean polarity, from the label counts: each post taken as +1, 0 or
        -1. A label is never less spread out than the probabilities it came from, so the band
        this gives is, if anything, wide."""
        n = self.posts
        if n < 2:
            return 0.0
        mean = (self.positive - self.negative) / n
        var = max(0.0, ((self.positive + self.negative) / n - mean * mean) * n / (n - 1))
        return math.sqrt(var / n)


# Languages and sources partition the aggregates, terms do not (a post matching two terms is in
# both term rows): per term, or per (source, term), the aggregates can simply be summed.
_FROM_AGGREGATES = """
SELECT {bucket} AS bucket_start, {dims}, sum(posts)::int, sum(negative)::int, sum(neutral)::int,
       sum(positive)::int, sum(mean_polarity * posts) / sum(posts)
FROM aggregates
WHERE bucket_size = %(base)s AND model = %(model)s
  AND (%(since)s::timestamptz IS NULL OR bucket_start >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR bucket_start < %(until)s)
  AND (%(terms)s::text[] IS NULL OR lower(term) = ANY (%(terms)s))
  AND (%(sources)s::text[] IS NULL OR source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(lang) = ANY (%(langs)s))
GROUP BY 1, {dims}
ORDER BY 1, {dims}
"""

# Per source or language, each post once: counted from the posts and scores the aggregation has
# folded in (aggregated_at set), so the figures agree with the per-term ones.
_FROM_POSTS = """
SELECT date_trunc(%(unit)s, p.created_at, 'UTC') AS bucket_start, {dim}, count(*)::int,
       (count(*) FILTER (WHERE s.label = 'negative'))::int,
       (count(*) FILTER (WHERE s.label = 'neutral'))::int,
       (count(*) FILTER (WHERE s.label = 'positive'))::int,
       avg(s.positive - s.negative)::float8
FROM posts p
JOIN sentiment_scores s ON s.post_id = p.id AND s.model = %(model)s AND s.aggregated_at IS NOT NULL
WHERE cardinality(p.terms) > 0
  AND (%(since_at)s::timestamptz IS NULL OR p.created_at >= %(since_at)s)
  AND (%(until_at)s::timestamptz IS NULL OR p.created_at < %(until_at)s)
  AND (%(terms)s::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(p.terms) t WHERE lower(t) = ANY (%(terms)s)))
  AND (%(sources)s::text[] IS NULL OR p.source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(COALESCE(p.lang, 'und')) = ANY (%(langs)s))
GROUP BY 1, 2
ORDER BY 1, 2
"""


def load_points(conn: psycopg.Connection, f: Filters, model: str) -> list[Point]:
    """The points of every series, oldest first."""
    params = f.params() | {"model": model}
    if f.compare in ("source", "lang"):
        dim = sql.SQL("p.source") if f.compare == "source" else sql.SQL("COALESCE(p.lang, 'und')")
        query = sql.SQL(_FROM_POSTS).format(dim=dim)
    else:
        bucket = sql.SQL("date_trunc('week', bucket_start, 'UTC')" if f.by == "week" else "bucket_start")
        query = sql.SQL(_FROM_AGGREGATES).format(
            bucket=bucket, dims=sql.SQL(", ").join(sql.Identifier(d) for d in f.dims)
        )
    n = len(f.dims)
    return [
        Point(row[0], tuple(row[1 : 1 + n]), *row[1 + n : 5 + n], float(row[5 + n]))
        for row in conn.execute(query, params)
    ]


def resolve_model(conn: psycopg.Connection, model: str | None) -> str:
    """The model asked for, or the one that scored last; an unknown one is a ReportError."""
    if model is None:
        row = conn.execute("SELECT model FROM aggregates ORDER BY updated_at DESC LIMIT 1").fetchone()
        if row is None:
            raise EmptyReport(
                "no scored posts yet; run `murmur run --once` (or crawl, score, aggregate) first"
            )
        return str(row[0])
    models = [m for (m,) in conn.execute("SELECT DISTINCT model FROM aggregates ORDER BY 1")]
    if model not in models:
        raise ReportError(f"no trends for model {model!r}; models with trends: {', '.join(models) or 'none'}")
    return model


def check_filters(conn: psycopg.Connection, f: Filters, *, terms: tuple[str, ...], sources: tuple[str, ...]) -> None:
    """Refuse terms and sources that are neither configured nor in the data (a typo, most likely)."""
    if f.terms:
        seen = [t for (t,) in conn.execute("SELECT DISTINCT term FROM aggregates ORDER BY 1")]
        known = {t.lower() for t in (*terms, *seen)}
        unknown = [t for t in f.terms if t.lower() not in known]
        if unknown:
            names = ", ".join(dict.fromkeys((*terms, *seen)))
            raise ReportError(f"unknown term {unknown[0]!r}; tracked terms: {names}")
    if f.sources:
        seen = [s for (s,) in conn.execute("SELECT DISTINCT source FROM aggregates ORDER BY 1")]
        unknown = [s for s in f.sources if s not in {*sources, *seen}]
        if unknown:
            raise ReportError(
                f"unknown source {unknown[0]!r}; sources: {', '.join(dict.fromkeys((*sources, *seen)))}"
            )


def explain_empty(conn: psycopg.Connection, f: Filters, model: str) -> str:
    """Why nothing matched, in one line: the span the data covers, or the languages it has."""
    span = conn.execute(
        "SELECT min(bucket_start), max(bucket_start) FROM aggregates WHERE bucket_size = 'day' AND model = %s",
        (model,),
    ).fetchone()
    parts = []
    if f.since or f.until:
        parts.append(f"from {_day_or_time(f.since)}" if f.since else "")
        parts.append(f"until {_day_or_time(f.until)}" if f.until else "")
    if f.terms:
        parts.append("for " + ", ".join(f.terms))
    if f.sources:
        parts.append("on " + ", ".join(f.sources))
    if f.langs:
        langs = [lang for (lang,) in conn.execute("SELECT DISTINCT lang FROM aggregates WHERE model = %s ORDER BY 1",
                                                  (model,))]
        parts.append(f"in {', '.join(f.langs)} (languages scored: {', '.join(langs)})")
    where = " ".join(p for p in parts if p)
    have = f"; scored posts span {span[0]:%Y-%m-%d} to {span[1]:%Y-%m-%d}" if span and span[0] else ""
    return f"no scored posts {where or 'at all'} with model {model}{have}; widen --since/--until/--term/--source/--lang"


def _day_or_time(t: datetime) -> str:
    return f"{t:%Y-%m-%d}" if (t.hour, t.minute, t.second) == (0, 0, 0) else f"{t:%Y-%m-%d %H:%M}"


def trend_points(conn: psycopg.Connection, f: Filters, *, terms: tuple[str, ...] = (),
                 sources: tuple[str, ...] = ()) -> tuple[str, list[Point]]:
    """(model, points) for the filters; ReportError for unknown names, EmptyReport for no data."""
    model = resolve_model(conn, f.model)
    check_filters(conn, f, terms=terms, sources=sources)
    points = load_points(conn, f, model)
    if not points:
        raise EmptyReport(explain_empty(conn, f, model))
    return model, points


def as_row(p: Point, dims: tuple[str, ...]) -> dict[str, Any]:
    """A point as a flat record (JSON, CSV, Parquet)."""
    return {
        "bucket_start": p.bucket_start.isoformat(),
        **dict(zip(dims, p.key, strict=True)),
        "posts": p.posts,
        "negative": p.negative,
        "neutral": p.neutral,
        "positive": p.positive,
        "mean_polarity": round(p.mean_polarity, 4),
        "polarity_se": round(p.polarity_se, 4),
    }
