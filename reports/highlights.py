"""The posts behind the numbers (most positive, most negative) and the alerts raised in the range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

from murmur.reports.filters import Filters

if TYPE_CHECKING:
    import psycopg

# The top_posts view (migration 0003) where it exists; the same columns from the tables otherwise.
_TOP_POSTS_INLINE = """
SELECT p.id AS post_id, p.source, p.url, p.author, p.text, p.lang, p.created_at, p.terms, p.tags,
       s.model, s.label, s.positive - s.negative AS polarity,
       COALESCE(p.likes, 0) + COALESCE(p.replies, 0) + COALESCE(p.reposts, 0) AS engagement
FROM posts p JOIN sentiment_scores s ON s.post_id = p.id
"""

_TOP = """
SELECT source, url, author, text, lang, created_at, terms, label, polarity::float8, engagement::bigint
FROM ({posts}) AS top
WHERE model = %(model)s AND cardinality(terms) > 0 AND {side}
  AND (%(since_at)s::timestamptz IS NULL OR created_at >= %(since_at)s)
  AND (%(until_at)s::timestamptz IS NULL OR created_at < %(until_at)s)
  AND (%(terms)s::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(terms) t WHERE lower(t) = ANY (%(terms)s)))
  AND (%(sources)s::text[] IS NULL OR source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(COALESCE(lang, 'und')) = ANY (%(langs)s))
ORDER BY {order}, engagement DESC, created_at DESC
LIMIT %(limit)s
"""

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


@dataclass(frozen=True)
class TopPost:
    source: str
    url: str | None
    author: str | None
    text: str
    lang: str | None
    created_at: datetime
    terms: list[str]
    label: str
    polarity: float
    engagement: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"created_at": self.created_at.isoformat(), "polarity": round(self.polarity, 4)}


@dataclass(frozen=True)
class Alert:
    kind: str
    bucket_size: str
    bucket_start: datetime
    source: str | None
    term: str | None
    value: float | None
    baseline: float | None
    score: float | None
    details: Any

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"bucket_start": self.bucket_start.isoformat()}


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and row[0])


def top_posts(conn: psycopg.Connection, f: Filters, model: str, *, limit: int = 5) -> tuple[list[TopPost],
                                                                                          list[TopPost]]:
    """(most positive, most negative) posts in the range; ties go to the most engaged."""
    source = sql.SQL("SELECT * FROM top_posts") if _exists(conn, "top_posts") else sql.SQL(_TOP_POSTS_INLINE)
    params = f.params() | {"model": model, "limit": limit}
    sides = []
    for side, order in (("polarity > 0", "polarity DESC"), ("polarity < 0", "polarity ASC")):
        query = sql.SQL(_TOP).format(posts=source, side=sql.SQL(side), order=sql.SQL(order))
        sides.append([TopPost(*row) for row in conn.execute(query, params)])
    return sides[0], sides[1]


def alerts(conn: psycopg.Connection, f: Filters, model: str, *, limit: int = 50) -> list[Alert] | None:
    """Alerts in the range, newest first; None where the database has no alerts table."""
    if not _exists(conn, "alerts"):
        return None
    params = f.params() | {"model": model, "limit": limit}
    return [Alert(*row) for row in conn.execute(_ALERTS, params)]
