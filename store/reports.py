"""The queries behind `murmur report` that the trend series (store/trends.py) does not answer: series
counted from the posts, co-occurring hashtags and terms, the language mix, top posts, alerts, and what
the aggregates hold (models, terms, sources, span) for checking filters and explaining an empty report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

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


# --- what co-occurs, in which languages ------------------------------------------------------------

# The posts a report covers, whatever their score.
_MATCHED = sql.SQL("""
SELECT p.id, date_trunc(%(unit)s, p.created_at, 'UTC') AS period, p.terms, p.tags
FROM posts p
WHERE {in_scope}
""").format(in_scope=_IN_SCOPE)

# A hashtag that is only a matched term written as a hashtag (#rednote on a RedNote post,
# #tiktokrefugees on a "TikTok refugee" one) says nothing new, so it is left out. Other terms are
# those besides the ones asked for (--term), or, with none asked for, any term that shares a post
# with another.
_COOCCURRENCE = """
WITH matched AS ({matched}),
totals AS (SELECT period, count(*) AS posts FROM matched GROUP BY 1),
entries AS (
    SELECT m.period, m.id, '#' || lower(tag) AS entry, 'tag' AS kind
    FROM matched m CROSS JOIN LATERAL unnest(m.tags) AS tag
    WHERE NOT EXISTS (
        SELECT 1 FROM unnest(m.terms) AS t, lower(regexp_replace(t, '\\s+', '', 'g')) AS h
        WHERE lower(tag) IN (h, h || 's')
    )
    UNION
    SELECT m.period, m.id, t, 'term'
    FROM matched m CROSS JOIN LATERAL unnest(m.terms) AS t
    WHERE CASE WHEN %(terms)s::text[] IS NULL THEN cardinality(m.terms) > 1 ELSE lower(t) <> ALL (%(terms)s) END
)
SELECT t.period, t.posts, e.entry, e.kind, count(DISTINCT e.id)::int
FROM totals t LEFT JOIN entries e ON e.period = t.period
GROUP BY 1, 2, 3, 4
ORDER BY 1, 5 DESC, 3
"""

_LANGUAGES = """
WITH matched AS ({matched})
SELECT m.period, p.source, count(*)::int,
       (count(*) FILTER (WHERE lower(p.lang) = 'en' OR lower(p.lang) LIKE 'en-%%'))::int,
       (count(*) FILTER (WHERE lower(p.lang) = 'zh' OR lower(p.lang) LIKE 'zh-%%'))::int
FROM matched m JOIN posts p ON p.id = m.id
GROUP BY 1, 2
ORDER BY 1, 2
"""


def cooccurrence_counts(conn: psycopg.Connection, *, unit: str, scope: PostScope) -> list[tuple[Any, ...]]:
    """(period, matched posts in it, entry, kind, posts holding it) per `unit` period, most held first;
    entry is '#hashtag' (kind 'tag') or another tracked term (kind 'term'), None for a period with
    neither."""
    query = sql.SQL(_COOCCURRENCE).format(matched=_MATCHED)
    return conn.execute(query, scope.params() | {"unit": unit}).fetchall()


def language_counts(conn: psycopg.Connection, *, unit: str, scope: PostScope) -> list[tuple[Any, ...]]:
    """(period, source, posts, in English, in Chinese) per `unit` period and source, scored or not."""
    query = sql.SQL(_LANGUAGES).format(matched=_MATCHED)
    return conn.execute(query, scope.params() | {"unit": unit}).fetchall()


# --- top posts and alerts --------------------------------------------------------------------------

# The top_posts view (migration 0003) where it exists; the same columns from the tables otherwise.
_TOP_POSTS_INLINE = sql.SQL("""
SELECT p.id AS post_id, p.source, p.url, p.author, p.text, p.lang, p.created_at, p.terms, p.tags,
       s.model, s.label, s.positive - s.negative AS polarity,
       COALESCE(p.likes, 0) + COALESCE(p.replies, 0) + COALESCE(p.reposts, 0) AS engagement
FROM posts p JOIN sentiment_scores s ON s.post_id = p.id
""")

_TOP = """
SELECT source, url, author, text, lang, created_at, terms, label, polarity::float8, engagement::bigint
FROM ({posts}) AS p
WHERE model = %(model)s AND {side} AND {in_scope}
ORDER BY {order}, engagement DESC, created_at DESC
LIMIT %(limit)s
"""

_SIDES = {True: ("polarity > 0", "polarity DESC"), False: ("polarity < 0", "polarity ASC")}


def top_scored_posts(
    conn: psycopg.Connection, *, model: str, scope: PostScope, positive: bool, limit: int
) -> list[tuple[Any, ...]]:
    """(source, url, author, text, lang, created_at, terms, label, polarity, engagement) of the `limit`
    most positive (or most negative) posts; ties go to the most engaged, then the newest."""
    posts = sql.SQL("SELECT * FROM top_posts") if relation_exists(conn, "top_posts") else _TOP_POSTS_INLINE
    side, order = _SIDES[positive]
    query = sql.SQL(_TOP).format(posts=posts, side=sql.SQL(side), order=sql.SQL(order), in_scope=_IN_SCOPE)
    return conn.execute(query, scope.params() | {"model": model, "limit": limit}).fetchall()


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
