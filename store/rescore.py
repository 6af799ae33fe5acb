"""After the configured model changes: how much of the history the new model has re-scored, for
`murmur status` (from the scores) and the reports (from the aggregates, which stay small)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg


def history_backlog(conn: psycopg.Connection, models: Sequence[str]) -> int:
    """Posts a model outside `models` scored and none of `models` has: the re-scoring left to do."""
    if not models:
        return 0
    row = conn.execute(
        """
        SELECT count(DISTINCT o.post_id) FROM sentiment_scores o
        WHERE NOT (o.model = ANY (%(models)s))
          AND NOT EXISTS (SELECT 1 FROM sentiment_scores c WHERE c.post_id = o.post_id AND c.model = ANY (%(models)s))
        """,
        {"models": list(models)},
    ).fetchone()
    return int(row[0]) if row else 0


# Posts per model in a report's period (summed over terms, the same way for every model, so the figures
# compare), leaving out the languages other configured models score (a route's language is not this
# model's to re-score).
_PERIOD_POSTS = """
SELECT model, sum(posts)::bigint
FROM aggregates
WHERE bucket_size = %(by)s AND model = ANY (%(models)s)
  AND (%(since)s::timestamptz IS NULL OR bucket_start >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR bucket_start < %(until)s)
  AND (%(terms)s::text[] IS NULL OR lower(term) = ANY (%(terms)s))
  AND (%(sources)s::text[] IS NULL OR source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(lang) = ANY (%(langs)s))
  AND NOT (lang = ANY (%(routed)s::text[]))
GROUP BY model
"""


def period_posts(
    conn: psycopg.Connection,
    *,
    models: Sequence[str],
    routed: Sequence[str] = (),
    by: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    terms: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    langs: Sequence[str] | None = None,
) -> dict[str, int]:
    """Model -> posts it has in the `by` buckets of [since, until) and the filters, not in the
    languages `routed`; a model with none is absent."""
    params = {
        "by": by, "models": list(models), "routed": list(routed), "since": since, "until": until,
        "terms": [t.lower() for t in terms] if terms else None,
        "sources": list(sources) if sources else None,
        "langs": [lang.lower() for lang in langs] if langs else None,
    }
    return {m: int(n) for m, n in conn.execute(_PERIOD_POSTS, params)}


def routed_langs(conn: psycopg.Connection, models: Sequence[str]) -> list[str]:
    """The languages `models` have trends in (those of the other routes), sorted."""
    if not models:
        return []
    return [lang for (lang,) in conn.execute(
        "SELECT DISTINCT lang FROM aggregates WHERE model = ANY (%s) ORDER BY 1", (list(models),))]


def rescored_share(conn: psycopg.Connection, current: str, previous: str, *, routed: Sequence[str] = ()) -> float:
    """The share of `previous`'s posts (day buckets, not in the languages `routed`) that `current` has
    scored too, bucket by bucket: 1.0 when none is left (or `previous` has none)."""
    row = conn.execute(
        """
        SELECT sum(least(COALESCE(c.posts, 0), p.posts))::float8 / NULLIF(sum(p.posts), 0)
        FROM aggregates p
        LEFT JOIN aggregates c
          ON (c.bucket_size, c.bucket_start, c.source, c.term, c.lang, c.model)
           = (p.bucket_size, p.bucket_start, p.source, p.term, p.lang, %(current)s)
        WHERE p.bucket_size = 'day' AND p.model = %(previous)s AND NOT (p.lang = ANY (%(routed)s::text[]))
        """,
        {"current": current, "previous": previous, "routed": list(routed)},
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else 1.0
