"""The network baseline behind `murmur report --share`: the series' posts a stream saw, and every post the
network created in the same hours (`network_volume`, counted by the stream consumer; migration 0006).

Only the hours the baseline covers count on either side: an hour with a `network_volume` row is one a
stream was connected in. A post the stream saw created in an hour without a baseline is left out of the
numerator, so a day the stream ran for six hours compares six hours with six hours."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from psycopg import sql

from murmur.store.reports import _IN_SCOPE, _POST_DIMS, PostScope

if TYPE_CHECKING:
    import psycopg

NETWORK_SOURCE = "bluesky"  # the only network with a baseline: Jetstream's posts are stored as bluesky

# The hours with a baseline in the report's range, whatever their languages.
_COVERED = """
SELECT DISTINCT bucket_start FROM network_volume
WHERE source = %(network)s
  AND (%(since_at)s::timestamptz IS NULL OR bucket_start >= %(since_at)s)
  AND (%(until_at)s::timestamptz IS NULL OR bucket_start < %(until_at)s)
"""

_NETWORK = sql.SQL("""
SELECT date_trunc(%(unit)s, n.bucket_start, 'UTC'), {lang}, sum(n.posts)::bigint
FROM network_volume n
WHERE n.source = %(network)s
  AND (%(since_at)s::timestamptz IS NULL OR n.bucket_start >= %(since_at)s)
  AND (%(until_at)s::timestamptz IS NULL OR n.bucket_start < %(until_at)s)
  AND (%(langs)s::text[] IS NULL OR lower(n.lang) = ANY (%(langs)s))
GROUP BY 1, 2
""")

# Each post once per series: a post matching two terms counts in both terms' series, as in the trend.
_STREAMED = sql.SQL("""
SELECT date_trunc(%(unit)s, p.created_at, 'UTC'), {dims}, count(DISTINCT p.id)::bigint
FROM posts p {term_join}
WHERE {in_scope}
  AND p.via = 'stream' AND p.source = %(network)s
  AND date_trunc('hour', p.created_at, 'UTC') IN ({covered})
  AND {term_filter}
GROUP BY {groups}
""")

# The report's series columns; a region is grouped as the report groups it ('unknown' when none).
_DIMS = {"source": sql.SQL("p.source"), "term": sql.SQL("term"), "lang": sql.SQL("COALESCE(p.lang, 'und')"),
         "region": _POST_DIMS["region"]}


def network_posts(conn: psycopg.Connection, *, unit: str, scope: PostScope,
                  by_lang: bool = False) -> dict[tuple[datetime, str | None], int]:
    """(period start, lang or None) -> the network's posts in the hours the baseline covers, in `scope`'s
    time range and languages (its terms and sources do not apply), per `unit` ('hour', 'day', 'week');
    per language as stored (lower-cased, 'und' when unknown) when `by_lang`."""
    lang = sql.SQL("lower(n.lang)") if by_lang else sql.SQL("NULL::text")
    rows = conn.execute(_NETWORK.format(lang=lang), _params(scope, unit)).fetchall()
    return {(start, lang_): int(n) for start, lang_, n in rows}


def streamed_posts(conn: psycopg.Connection, *, unit: str, dims: Sequence[str],
                   scope: PostScope) -> dict[tuple[datetime, tuple[str, ...]], int]:
    """(period start, series key) -> the posts in `scope` that arrived by stream (`posts.via = 'stream'`,
    source bluesky) created in an hour the baseline covers; the key holds the values of `dims` (any of
    'source', 'term', 'lang', 'region', the report's series columns)."""
    unknown = [d for d in dims if d not in _DIMS]
    if unknown or not dims:
        raise ValueError(f"dims must be some of {', '.join(_DIMS)}, not {list(dims)!r}")
    with_term = "term" in dims
    query = _STREAMED.format(
        dims=sql.SQL(", ").join(_DIMS[d] for d in dims),
        term_join=sql.SQL("CROSS JOIN LATERAL unnest(p.terms) AS term") if with_term else sql.SQL(""),
        in_scope=_IN_SCOPE,
        covered=sql.SQL(_COVERED),
        term_filter=sql.SQL("(%(terms)s::text[] IS NULL OR lower(term) = ANY (%(terms)s))") if with_term
        else sql.SQL("TRUE"),
        groups=sql.SQL(", ").join(sql.Literal(i) for i in range(1, len(dims) + 2)),
    )
    rows = conn.execute(query, _params(scope, unit)).fetchall()
    return {(row[0], tuple(row[1:-1])): int(row[-1]) for row in rows}


def _params(scope: PostScope, unit: str) -> dict[str, object]:
    return scope.params() | {"unit": unit, "network": NETWORK_SOURCE}
