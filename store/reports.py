"""The queries behind `murmur report` that the trend series (store/trends.py) does not answer: series
counted from the posts, co-occurring hashtags and terms, the language mix and top posts (from the report
tables the aggregation keeps, store/rollups.py), alerts, and what the aggregates hold (models, terms,
sources, span) for checking filters and explaining an empty report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg import sql

from murmur.store.rollups import KEPT_LEVELS, TOP_KEPT

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class PostScope:
    """The posts a report reads: they matched a term, were created in [since, until), and match any
    of `terms`, `sources` and `langs` (None or empty: any; terms and languages case-insensitive)."""

    since: datetime | None = None
    until: datetime | None = None
    terms: Sequence[str] | None = None
    sources: Sequence[str] | None = None
    langs: Sequence[str] | None = None

    def params(self) -> dict[str, Any]:
        return {
            "since_at": self.since,
            "until_at": self.until,
            "terms": [t.lower() for t in self.terms] if self.terms else None,
            "sources": list(self.sources) if self.sources else None,
            "langs": [lang.lower() for lang in self.langs] if self.langs else None,
        }


# PostScope as a condition on posts (or a relation with their columns) named `p`.
_IN_SCOPE = sql.SQL("""cardinality(p.terms) > 0
  AND (%(since_at)s::timestamptz IS NULL OR p.created_at >= %(since_at)s)
  AND (%(until_at)s::timestamptz IS NULL OR p.created_at < %(until_at)s)
  AND (%(terms)s::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(p.terms) t WHERE lower(t) = ANY (%(terms)s)))
  AND (%(sources)s::text[] IS NULL OR p.source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(COALESCE(p.lang, 'und')) = ANY (%(langs)s))""")

# --- series from the posts -------------------------------------------------------------------------

# Per source or language, each post once (summing the aggregates would count a post once per term it
# matched): counted from the posts and scores the aggregation has folded in (aggregated_at set), so
# the figures agree with the per-term ones.
_SERIES_FROM_POSTS = """
SELECT date_trunc(%(unit)s, p.created_at, 'UTC') AS bucket_start, {dim}, count(*)::int,
       (count(*) FILTER (WHERE s.label = 'negative'))::int,
       (count(*) FILTER (WHERE s.label = 'neutral'))::int,
       (count(*) FILTER (WHERE s.label = 'positive'))::int,
       avg(s.positive - s.negative)::float8
FROM posts p
JOIN sentiment_scores s ON s.post_id = p.id AND s.model = %(model)s AND s.aggregated_at IS NOT NULL
WHERE {in_scope}
GROUP BY 1, 2
ORDER BY 1, 2
"""

# A post with no region (every crawled one, and imports whose capture had none) is grouped as 'unknown'.
UNKNOWN_REGION = "unknown"
_POST_DIMS = {
    "source": sql.SQL("p.source"),
    "lang": sql.SQL("COALESCE(p.lang, 'und')"),
    "region": sql.SQL("COALESCE(NULLIF(btrim(p.region), ''), {unknown})").format(unknown=sql.Literal(UNKNOWN_REGION)),
}


def series_from_posts(
    conn: psycopg.Connection, *, unit: str, dim: str, model: str, scope: PostScope
) -> list[tuple[Any, ...]]:
    """(bucket_start, source, lang or region, posts, negative, neutral, positive, mean_polarity) per `unit`
    ('hour', 'day', 'week') and value of `dim` ('source', 'lang' or 'region'), each post counted once."""
    if dim not in _POST_DIMS:
        raise ValueError(f"dim must be one of {', '.join(_POST_DIMS)}, not {dim!r}")
    query = sql.SQL(_SERIES_FROM_POSTS).format(dim=_POST_DIMS[dim], in_scope=_IN_SCOPE)
    return conn.execute(query, scope.params() | {"unit": unit, "model": model}).fetchall()


# The same series from report_sentiment (migration 0016), which keeps these counts per hour and day: a read
# of the range's buckets instead of its posts. Region is not kept there (few posts have one): from the posts.
# Its language is as shown (not lowered), so the filter lowers it.
_SERIES_FROM_ROLLUPS = """
SELECT date_trunc(%(unit)s, r.bucket_start, 'UTC') AS bucket_start, r.{dim}, sum(r.posts)::int,
       sum(r.negative)::int, sum(r.neutral)::int, sum(r.positive)::int,
       (sum(r.polarity_sum) / sum(r.posts))::float8
FROM report_sentiment r
WHERE {in_buckets}
GROUP BY 1, 2
ORDER BY 1, 2
"""
KEPT_DIMS = ("source", "lang")


def series_from_rollups(
    conn: psycopg.Connection, *, unit: str, dim: str, model: str, scope: PostScope
) -> list[tuple[Any, ...]]:
    """series_from_posts' rows for `dim` 'source' or 'lang' (KEPT_DIMS), read from report_sentiment."""
    if dim not in KEPT_DIMS:
        raise ValueError(f"dim must be one of {', '.join(KEPT_DIMS)}, not {dim!r}")
    in_buckets = _IN_BUCKETS.format(kept=sql.SQL("r.model = %(model)s"), lang=sql.SQL("lower(r.lang)"))
    query = sql.SQL(_SERIES_FROM_ROLLUPS).format(dim=sql.Identifier(dim), in_buckets=in_buckets)
    return conn.execute(query, scope.params() | {"unit": unit, "model": model, "base": _BASE[unit]}).fetchall()


# --- what co-occurs, in which languages, the top posts: from the report tables --------------------------

# The report tables (migration 0013, kept by store/rollups.py) hold hour and day buckets; a report's range
# is whole buckets of its base (hour for --by hour, day for day and week), which PostScope holds once made
# by reports.series.post_scope: a bucket counts when its start is in [since, until). The figures are those
# the posts give (store/report_scan.py counts them so) for every post the aggregation has seen.
# `kept`: which of a bucket's rows (a level; report_sentiment: a model); `lang`: the row's language as the
# filter compares it (lowered).
_IN_BUCKETS = sql.SQL("""r.bucket_size = %(base)s AND {kept}
  AND (%(since_at)s::timestamptz IS NULL OR r.bucket_start >= %(since_at)s)
  AND (%(until_at)s::timestamptz IS NULL OR r.bucket_start < %(until_at)s)
  AND (%(terms)s::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(r.terms) t WHERE lower(t) = ANY (%(terms)s)))
  AND (%(sources)s::text[] IS NULL OR r.source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR {lang} = ANY (%(langs)s))""")


def _in_rollup(level: str) -> sql.Composed:
    """_IN_BUCKETS for a table with levels (migration 0013), at the level the parameter `level` holds."""
    return _IN_BUCKETS.format(kept=sql.SQL("r.level = {}").format(sql.Placeholder(level)), lang=sql.SQL("r.lang"))


_BASE = {"hour": "hour", "day": "day", "week": "day"}

# The level (migration 0013) that keeps exactly (source, lang, terms) -> its number. Where a table does not
# keep that level, level 0 (which keeps all three) answers: summing over what a query does not need is still
# right, only slower.
_LEVELS = {(True, True, True): 0, (False, False, False): 1, (False, False, True): 4, (True, True, False): 5}


def _level(table: str, scope: PostScope, *, source: bool = False, lang: bool = False, terms: bool = False) -> int:
    """The coarsest level of `table` that keeps what the scope filters on and what the query groups by."""
    level = _LEVELS.get((source or bool(scope.sources), lang or bool(scope.langs), terms or bool(scope.terms)), 0)
    return level if level in KEPT_LEVELS[table] else 0


# Each post is in exactly one term-set row of a level, so the sums are distinct posts. A term set may hold
# a term twice (as the post did): it still counts the post once for it.
_COOCCURRENCE = """
WITH sets AS (
    SELECT date_trunc(%(unit)s, r.bucket_start, 'UTC') AS period, r.terms, sum(r.posts) AS posts
    FROM report_term_sets r
    WHERE {in_sets}
    GROUP BY 1, 2
),
totals AS (SELECT period, sum(posts) AS posts FROM sets GROUP BY 1),
entries AS (
    SELECT date_trunc(%(unit)s, r.bucket_start, 'UTC') AS period, r.tag AS entry, 'tag' AS kind, sum(r.posts) AS n
    FROM report_tags r
    WHERE {in_tags}
    GROUP BY 1, 2
    UNION ALL
    SELECT s.period, u.t, 'term', sum(s.posts)
    FROM sets s CROSS JOIN LATERAL (SELECT DISTINCT t FROM unnest(s.terms) AS t) u
    WHERE CASE WHEN %(terms)s::text[] IS NULL THEN cardinality(s.terms) > 1 ELSE lower(u.t) <> ALL (%(terms)s) END
    GROUP BY 1, 2
),
ranked AS (
    SELECT e.*, row_number() OVER (PARTITION BY e.period ORDER BY e.n DESC, e.entry COLLATE "C") AS rank
    FROM entries e
),
-- With `top`: the entries ranked in a period's first `top`, and those ranked so in the period after it
-- (whose `previous` count and `new` flag they give); Python's string order is "C"'s, code points.
kept AS (
    SELECT r.period, r.entry, r.kind, r.n FROM ranked r
    WHERE %(top)s::int IS NULL OR r.rank <= %(top)s
       OR EXISTS (SELECT 1 FROM ranked x WHERE x.period = r.period + %(step)s::interval AND x.entry = r.entry
                  AND x.kind = r.kind AND x.rank <= %(top)s)
)
SELECT t.period, t.posts::int, e.entry, e.kind, COALESCE(e.n, 0)::int
FROM totals t LEFT JOIN kept e ON e.period = t.period
ORDER BY 1, 5 DESC, 3
"""
# A period's length in hours, never in days: a day added to a timestamptz follows the session's time zone.
_STEP = {"hour": "1 hour", "day": "24 hours", "week": "168 hours"}

_LANGUAGES = """
SELECT date_trunc(%(unit)s, r.bucket_start, 'UTC'), r.source, sum(r.posts)::int,
       COALESCE(sum(r.posts) FILTER (WHERE r.lang = 'en' OR r.lang LIKE 'en-%%'), 0)::int,
       COALESCE(sum(r.posts) FILTER (WHERE r.lang = 'zh' OR r.lang LIKE 'zh-%%'), 0)::int
FROM report_term_sets r
WHERE {in_rollup}
GROUP BY 1, 2
ORDER BY 1, 2
"""


def _rollup_params(unit: str, scope: PostScope, level: int) -> dict[str, Any]:
    if unit not in _BASE:
        raise ValueError(f"unit must be one of {', '.join(_BASE)}, not {unit!r}")
    return scope.params() | {"unit": unit, "base": _BASE[unit], "level": level}


def cooccurrence_counts(conn: psycopg.Connection, *, unit: str, scope: PostScope,
                        top: int | None = None) -> list[tuple[Any, ...]]:
    """(period, matched posts in it, entry, kind, posts holding it) per `unit` period, most held first;
    entry is '#hashtag' (kind 'tag') or another tracked term (kind 'term'), None for a period with
    neither. `top`: only the entries among a period's `top` most held (ties by entry) or the next period's
    (what reports.extras.cooccurrence ranks and compares); None: every entry."""
    # The term sets are needed whole (the other terms come from them); the hashtags only as the filters ask.
    query = sql.SQL(_COOCCURRENCE).format(in_sets=_in_rollup("level"), in_tags=_in_rollup("tag_level"))
    params = _rollup_params(unit, scope, _level("report_term_sets", scope, terms=True)) | {
        "tag_level": _level("report_tags", scope), "top": top, "step": _STEP[unit]}
    return conn.execute(query, params).fetchall()


def language_counts(conn: psycopg.Connection, *, unit: str, scope: PostScope) -> list[tuple[Any, ...]]:
    """(period, source, posts, in English, in Chinese) per `unit` period and source, scored or not."""
    query = sql.SQL(_LANGUAGES).format(in_rollup=_in_rollup("level"))
    level = _level("report_term_sets", scope, source=True, lang=True)
    return conn.execute(query, _rollup_params(unit, scope, level)).fetchall()


# --- top posts and alerts --------------------------------------------------------------------------

TOP_LIMIT = TOP_KEPT  # the most top posts a report can ask for: what the report tables keep per group

# The `limit` best of each group in the range, the best `limit` of those, then their text from the posts.
# Ties go to the most engaged, then the newest, then the highest id (the tables' own order).
_TOP_ROLLUP = """
SELECT p.source, p.url, p.author, p.text, p.lang, p.created_at, p.terms, s.label, r.polarity::float8, r.engagement
FROM (
    SELECT r.post_id, r.polarity, r.engagement, r.created_at
    FROM ({pieces}) AS r
    WHERE (%(terms)s::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(r.terms) t WHERE lower(t) = ANY (%(terms)s)))
      AND (%(sources)s::text[] IS NULL OR r.source = ANY (%(sources)s))
      AND (%(langs)s::text[] IS NULL OR r.lang = ANY (%(langs)s))
    ORDER BY {order}
    LIMIT %(limit)s
) r
JOIN posts p ON p.id = r.post_id
JOIN sentiment_scores s ON s.post_id = r.post_id AND s.model = %(model)s
ORDER BY {order}
"""
_TOP_PIECE = """
SELECT * FROM report_top_posts
WHERE model = %(model)s AND positive = %(positive)s AND bucket_size = {size} AND level = %(level)s
  AND rank <= %(limit)s
  AND ({lo}::timestamptz IS NULL OR bucket_start >= {lo}) AND ({hi}::timestamptz IS NULL OR bucket_start < {hi})"""
_TOP_ORDER = {
    True: "r.polarity DESC, r.engagement DESC, r.created_at DESC, r.post_id DESC",
    False: "r.polarity ASC, r.engagement DESC, r.created_at DESC, r.post_id DESC",
}


def _top_pieces(since: datetime | None, until: datetime | None) -> list[tuple[str, datetime | None, datetime | None]]:
    """[since, until) as (bucket size, start, end) pieces: whole days from the day rows, the hours before the
    first whole day and after the last from the hour rows (None: open)."""
    first_day = _day(since, up=True) if since else None
    last_day = _day(until, up=False) if until else None
    if first_day and last_day and first_day > last_day:  # within one day
        return [("hour", since, until)]
    pieces: list[tuple[str, datetime | None, datetime | None]] = [("day", first_day, last_day)]
    if since and first_day and since < first_day:
        pieces.append(("hour", since, first_day))
    if until and last_day and last_day < until:
        pieces.append(("hour", last_day, until))
    return pieces


def _day(t: datetime, *, up: bool) -> datetime:
    t = t.astimezone(UTC)
    start = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1) if up and start != t else start


def top_scored_posts(
    conn: psycopg.Connection, *, model: str, scope: PostScope, positive: bool, limit: int
) -> list[tuple[Any, ...]]:
    """(source, url, author, text, lang, created_at, terms, label, polarity, engagement) of the `limit`
    (at most TOP_LIMIT) most positive (or most negative) posts; ties go to the most engaged, then the
    newest."""
    if not 1 <= limit <= TOP_LIMIT:
        raise ValueError(f"limit must be from 1 to {TOP_LIMIT}, not {limit}")
    params: dict[str, Any] = scope.params() | {"model": model, "positive": positive, "limit": limit,
                                               "level": _level("report_top_posts", scope)}
    pieces = []
    for i, (size, lo, hi) in enumerate(_top_pieces(scope.since, scope.until)):
        params |= {f"lo{i}": lo, f"hi{i}": hi}
        pieces.append(sql.SQL(_TOP_PIECE).format(size=sql.Literal(size), lo=sql.Placeholder(f"lo{i}"),
                                                 hi=sql.Placeholder(f"hi{i}")))
    query = sql.SQL(_TOP_ROLLUP).format(pieces=sql.SQL("\nUNION ALL\n").join(pieces),
                                        order=sql.SQL(_TOP_ORDER[positive]))
    return conn.execute(query, params).fetchall()


_ALERTS = """
SELECT kind, bucket_size, bucket_start, source, term, value, baseline, score, details
FROM alerts
WHERE (model IS NULL OR model = %(model)s)
  AND (%(since)s::timestamptz IS NULL OR bucket_start >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR bucket_start < %(until)s)
  AND (%(terms)s::text[] IS NULL OR term IS NULL OR lower(term) = ANY (%(terms)s))
  AND (%(sources)s::text[] IS NULL OR source IS NULL OR source = ANY (%(sources)s))
ORDER BY bucket_start DESC, score DESC NULLS LAST
LIMIT %(limit)s
"""


def alerts_in_range(
    conn: psycopg.Connection,
    *,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
    terms: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    limit: int = 50,
) -> list[tuple[Any, ...]] | None:
    """(kind, bucket_size, bucket_start, source, term, value, baseline, score, details) of the alerts
    whose bucket starts in [since, until), newest first; None where the database has no alerts table."""
    if not relation_exists(conn, "alerts"):
        return None
    params = {
        "model": model,
        "since": since,
        "until": until,
        "terms": [t.lower() for t in terms] if terms else None,
        "sources": list(sources) if sources else None,
        "limit": limit,
    }
    return conn.execute(_ALERTS, params).fetchall()


def relation_exists(conn: psycopg.Connection, relation: str) -> bool:
    """Whether a table or view of that name is on the search path."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and row[0])


# --- what the aggregates hold ----------------------------------------------------------------------


def trend_models(conn: psycopg.Connection) -> list[str]:
    """The models with trends, sorted."""
    return [m for (m,) in conn.execute("SELECT DISTINCT model FROM aggregates ORDER BY 1")]


def trend_terms(conn: psycopg.Connection) -> list[str]:
    """The terms with trends, sorted."""
    return [t for (t,) in conn.execute("SELECT DISTINCT term FROM aggregates ORDER BY 1")]


def trend_sources(conn: psycopg.Connection) -> list[str]:
    """The sources with trends, sorted."""
    return [s for (s,) in conn.execute("SELECT DISTINCT source FROM aggregates ORDER BY 1")]


def trend_langs(conn: psycopg.Connection, model: str) -> list[str]:
    """The languages `model` has trends in, sorted."""
    return [lang for (lang,) in conn.execute("SELECT DISTINCT lang FROM aggregates WHERE model = %s ORDER BY 1",
                                             (model,))]


def trend_span(conn: psycopg.Connection, model: str) -> tuple[datetime | None, datetime | None]:
    """The first and last day bucket `model` has trends in; (None, None) for none."""
    row = conn.execute(
        "SELECT min(bucket_start), max(bucket_start) FROM aggregates WHERE bucket_size = 'day' AND model = %s",
        (model,),
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)
