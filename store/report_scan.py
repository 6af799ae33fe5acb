"""The report queries as they were before the report tables (migration 0013): co-occurrence, language mix and
top posts counted by scanning `posts` over the whole range. Kept as the reference the tables are checked
against (tests/test_report_rollups.py) and for a one-off answer straight from the posts; the reports read
store/reports.py, whose figures these must equal once the aggregation has run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

from murmur.store.reports import _IN_SCOPE, PostScope, relation_exists

if TYPE_CHECKING:
    import psycopg

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


def scan_cooccurrence_counts(conn: psycopg.Connection, *, unit: str, scope: PostScope) -> list[tuple[Any, ...]]:
    """store.reports.cooccurrence_counts, counted from the posts."""
    query = sql.SQL(_COOCCURRENCE).format(matched=_MATCHED)
    return conn.execute(query, scope.params() | {"unit": unit}).fetchall()


def scan_language_counts(conn: psycopg.Connection, *, unit: str, scope: PostScope) -> list[tuple[Any, ...]]:
    """store.reports.language_counts, counted from the posts."""
    query = sql.SQL(_LANGUAGES).format(matched=_MATCHED)
    return conn.execute(query, scope.params() | {"unit": unit}).fetchall()


# The top_posts view (migration 0003) where it exists; the same columns from the tables otherwise.
_TOP_POSTS_INLINE = sql.SQL("""
SELECT p.id AS post_id, p.source, p.url, p.author, p.text, p.lang, p.created_at, p.terms, p.tags,
       s.model, s.label, s.positive - s.negative AS polarity,
       COALESCE(p.likes, 0) + COALESCE(p.replies, 0) + COALESCE(p.reposts, 0) AS engagement
FROM posts p JOIN sentiment_scores s ON s.post_id = p.id
""")

# Ties beyond engagement and time go to the highest id, as in the report tables (before them, such a
# tie came out in whatever order the scan met the posts).
_TOP = """
SELECT source, url, author, text, lang, created_at, terms, label, polarity::float8, engagement::bigint
FROM ({posts}) AS p
WHERE model = %(model)s AND {side} AND {in_scope}
ORDER BY {order}, engagement DESC, created_at DESC, post_id DESC
LIMIT %(limit)s
"""

_SIDES = {True: ("polarity > 0", "polarity DESC"), False: ("polarity < 0", "polarity ASC")}


def scan_top_scored_posts(
    conn: psycopg.Connection, *, model: str, scope: PostScope, positive: bool, limit: int
) -> list[tuple[Any, ...]]:
    """store.reports.top_scored_posts, read from the posts (any `limit`)."""
    posts = sql.SQL("SELECT * FROM top_posts") if relation_exists(conn, "top_posts") else _TOP_POSTS_INLINE
    side, order = _SIDES[positive]
    query = sql.SQL(_TOP).format(posts=posts, side=sql.SQL(side), order=sql.SQL(order), in_scope=_IN_SCOPE)
    return conn.execute(query, scope.params() | {"model": model, "limit": limit}).fetchall()
