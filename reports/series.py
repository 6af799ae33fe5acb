"""Volume and sentiment per period and series, read from the aggregates (or, where summing the
aggregates would count a post once per term it matched, from report_sentiment, which counts each post once
per source and language; by region, from the scored posts themselves)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.reports.filters import BASE, FROM_POSTS, EmptyReport, Filters, ReportError
from murmur.store.reports import (
    KEPT_DIMS,
    PostScope,
    series_from_posts,
    series_from_rollups,
    trend_langs,
    trend_models,
    trend_sources,
    trend_span,
    trend_terms,
)
from murmur.store.rescore import period_posts, rescored_share, routed_langs
from murmur.store.status import scoring_models
from murmur.store.trends import latest_model, trend_series

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
    unique_posts: int | None = None  # the posts no copy of an earlier one (None: series counted from posts)

    @property
    def polarity_se(self) -> float:
        """Standard error of the mean polarity, from the label counts: each post taken as +1, 0 or
        -1. A label is never less spread out than the probabilities it came from, so the band
        this gives is, if anything, wide."""
        n = self.negative + self.neutral + self.positive  # = posts, except under --dedupe
        if n < 2:
            return 0.0
        mean = (self.positive - self.negative) / n
        var = max(0.0, ((self.positive + self.negative) / n - mean * mean) * n / (n - 1))
        return math.sqrt(var / n)


def post_scope(f: Filters) -> PostScope:
    """The filters as the posts they cover (created_at in the range rounded to whole base buckets)."""
    p = f.params()
    return PostScope(since=p["since_at"], until=p["until_at"], terms=p["terms"], sources=p["sources"],
                     langs=p["langs"])


def load_points(conn: psycopg.Connection, f: Filters, model: str) -> list[Point]:
    """The points of every series, oldest first."""
    if f.compare in KEPT_DIMS:
        rows = series_from_rollups(conn, unit=f.by, dim=f.compare, model=model, scope=post_scope(f))
    elif f.compare in FROM_POSTS:
        rows = series_from_posts(conn, unit=f.by, dim=f.compare, model=model, scope=post_scope(f))
    else:
        rows = trend_series(conn, by=BASE[f.by], model=model, dims=f.dims, weekly=f.by == "week", since=f.since,
                            until=f.until, terms=f.terms, sources=f.sources, langs=f.langs)
    n = len(f.dims)
    points = [Point(row[0], tuple(row[1 : 1 + n]), row[1 + n], row[2 + n], row[3 + n], row[4 + n],
                    float(row[5 + n]), row[6 + n] if len(row) > 6 + n else None) for row in rows]
    if f.dedupe:  # the volume counts each text once; the sentiment stays that of every post
        points = [replace(p, posts=p.unique_posts) for p in points if p.unique_posts]
    return points


def resolve_model(conn: psycopg.Connection, model: str | None) -> str:
    """The model asked for, or the one that scored last; an unknown one is a ReportError."""
    if model is None:
        latest = latest_model(conn)
        if latest is None:
            raise EmptyReport(
                "no scored posts yet; run `murmur run --once` (or crawl, score, aggregate) first"
            )
        return latest
    models = trend_models(conn)
    if model not in models:
        raise ReportError(f"no trends for model {model!r}; models with trends: {', '.join(models) or 'none'}")
    return model


def choose_model(conn: psycopg.Connection, f: Filters) -> tuple[str, str | None]:
    """(the model the report shows, a line about re-scoring or None).

    The rule while the configured model changes: the configured model (one of those the latest score run
    used; the one that scored last among them) when it has scored at least as many of the period's posts as
    the previous model (the model outside the configuration with the most posts in the period), else the
    previous one; --model picks outright. Either way, while the configured model has not re-scored all the
    posts the previous one scored, the line says how far it has come.
    """
    model = resolve_model(conn, f.model)
    scoring = scoring_models(conn)
    with_trends = trend_models(conn)
    configured = [m for m in scoring if m in with_trends]
    others = [m for m in with_trends if m not in scoring]
    if f.model is None and configured and model not in configured:
        model = configured[-1]  # the default route comes last
    if model not in configured or not others:  # no change of model under way (or --model chose another)
        return model, None
    current = model
    routed = routed_langs(conn, [m for m in configured if m != current])
    counts = period_posts(conn, models=[current, *others], routed=routed, by=BASE[f.by], since=f.since,
                          until=f.until, terms=f.terms, sources=f.sources, langs=f.langs)
    previous = max(others, key=lambda m: (counts.get(m, 0), m))
    share = rescored_share(conn, current, previous, routed=routed)
    if share >= 1.0:
        return current, None
    finish = "`murmur score --all-posts` finishes it"
    if f.model is None and counts.get(current, 0) < counts.get(previous, 0):
        period = counts.get(current, 0) / max(1, counts[previous])
        return previous, (f"showing {previous}: the configured model {current} has scored {period:.0%} of this "
                          f"period's posts so far ({share:.0%} of the posts {previous} scored); {finish}, "
                          f"or pick one with --model")
    return current, f"{current}: {share:.0%} of the posts {previous} scored are re-scored; {finish}"


def check_filters(conn: psycopg.Connection, f: Filters, *, terms: tuple[str, ...], sources: tuple[str, ...]) -> None:
    """Refuse terms and sources that are neither configured nor in the data (a typo, most likely)."""
    if f.terms:
        seen = trend_terms(conn)
        known = {t.lower() for t in (*terms, *seen)}
        unknown = [t for t in f.terms if t.lower() not in known]
        if unknown:
            names = ", ".join(dict.fromkeys((*terms, *seen)))
            raise ReportError(f"unknown term {unknown[0]!r}; tracked terms: {names}")
    if f.sources:
        seen = trend_sources(conn)
        unknown = [s for s in f.sources if s not in {*sources, *seen}]
        if unknown:
            raise ReportError(
                f"unknown source {unknown[0]!r}; sources: {', '.join(dict.fromkeys((*sources, *seen)))}"
            )


def explain_empty(conn: psycopg.Connection, f: Filters, model: str) -> str:
    """Why nothing matched, in one line: the span the data covers, or the languages it has."""
    span = trend_span(conn, model)
    parts = []
    if f.since or f.until:
        parts.append(f"from {_day_or_time(f.since)}" if f.since else "")
        parts.append(f"until {_day_or_time(f.until)}" if f.until else "")
    if f.terms:
        parts.append("for " + ", ".join(f.terms))
    if f.sources:
        parts.append("on " + ", ".join(f.sources))
    if f.langs:
        parts.append(f"in {', '.join(f.langs)} (languages scored: {', '.join(trend_langs(conn, model))})")
    where = " ".join(p for p in parts if p)
    have = f"; scored posts span {span[0]:%Y-%m-%d} to {span[1]:%Y-%m-%d}" if span[0] and span[1] else ""
    return f"no scored posts {where or 'at all'} with model {model}{have}; widen --since/--until/--term/--source/--lang"


def _day_or_time(t: datetime) -> str:
    return f"{t:%Y-%m-%d}" if (t.hour, t.minute, t.second) == (0, 0, 0) else f"{t:%Y-%m-%d %H:%M}"


def trend_points(conn: psycopg.Connection, f: Filters, *, terms: tuple[str, ...] = (),
                 sources: tuple[str, ...] = ()) -> tuple[str, list[Point]]:
    """(model, points) for the filters; ReportError for unknown names, EmptyReport for no data."""
    model, points, _ = trend_points_noted(conn, f, terms=terms, sources=sources)
    return model, points


def trend_points_noted(conn: psycopg.Connection, f: Filters, *, terms: tuple[str, ...] = (),
                       sources: tuple[str, ...] = ()) -> tuple[str, list[Point], str | None]:
    """(model, points, the re-scoring line or None): the model chosen by `choose_model`."""
    model, note = choose_model(conn, f)
    check_filters(conn, f, terms=terms, sources=sources)
    points = load_points(conn, f, model)
    if not points:
        raise EmptyReport(explain_empty(conn, f, model))
    return model, points, note


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
    } | ({"unique_posts": p.unique_posts} if p.unique_posts is not None else {})
