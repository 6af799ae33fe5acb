"""The dashboard's one query of its own (web/): the posts behind one bucket of the trend, a page at a time.
Everything else it shows comes from the report builders (reports/) over store/reports.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.store.reports import UNKNOWN_REGION

if TYPE_CHECKING:
    import psycopg

# The posts the trend counted in [start, end): they matched a term and `model` scored them (the chart's
# `posts` column), narrowed like the report (terms, sources and languages case-insensitive where the report
# is); `dedupe` leaves out the copies of an earlier post, as `--dedupe` does. posts_created_at_idx bounds the
# scan to the bucket, which is one hour, day or week.
_BUCKET_POSTS = """
SELECT p.id, p.source, p.url, p.author, p.text, p.lang, p.created_at, p.terms, p.tags, s.label,
       (s.positive - s.negative)::float8 AS polarity,
       (COALESCE(p.likes, 0) + COALESCE(p.replies, 0) + COALESCE(p.reposts, 0))::bigint AS engagement
FROM posts p
JOIN sentiment_scores s ON s.post_id = p.id AND s.model = %(model)s
WHERE p.created_at >= %(start)s AND p.created_at < %(end)s
  AND cardinality(p.terms) > 0
  AND (%(terms)s::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(p.terms) t WHERE lower(t) = ANY (%(terms)s)))
  AND (%(sources)s::text[] IS NULL OR p.source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(COALESCE(p.lang, 'und')) = ANY (%(langs)s))
  AND (%(region)s::text IS NULL OR COALESCE(NULLIF(btrim(p.region), ''), %(unknown)s) = %(region)s)
  AND (NOT %(dedupe)s OR p.duplicate_of IS NULL)
ORDER BY p.created_at, p.id
LIMIT %(limit)s OFFSET %(offset)s
"""

BUCKET_POST_COLUMNS = ("id", "source", "url", "author", "text", "lang", "created_at", "terms", "tags", "label",
                       "polarity", "engagement")


def connect_read_only(url: str, *, statement_timeout_ms: int = 15_000) -> psycopg.Connection:
    """A connection for the dashboard: autocommit, every transaction read-only (it shows, never writes), and
    a statement that runs longer than `statement_timeout_ms` cancelled (a request must not hold the server)."""
    from murmur.store.db import connect

    conn = connect(url, autocommit=True)
    conn.execute("SET default_transaction_read_only = on")
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(statement_timeout_ms),))
    return conn


def ping(conn: psycopg.Connection) -> None:
    """Raises when the server does not answer."""
    conn.execute("SELECT 1")


@dataclass(frozen=True)
class BucketPage:
    rows: list[dict[str, Any]]  # BUCKET_POST_COLUMNS each, oldest first
    more: bool  # another page follows


def bucket_posts(
    conn: psycopg.Connection,
    *,
    model: str,
    start: datetime,
    end: datetime,
    terms: Sequence[str] = (),
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
    region: str | None = None,
    dedupe: bool = False,
    page: int = 1,
    page_size: int = 50,
) -> BucketPage:
    """Page `page` (from 1) of the posts in [start, end) that `model` scored; one row more than a page is read
    to tell whether another follows, so no count of the whole bucket is needed."""
    params = {
        "model": model, "start": start, "end": end,
        "terms": [t.lower() for t in terms] or None, "sources": list(sources) or None,
        "langs": [lang.lower() for lang in langs] or None, "region": region, "unknown": UNKNOWN_REGION,
        "dedupe": dedupe, "limit": page_size + 1, "offset": (page - 1) * page_size,
    }
    rows = [dict(zip(BUCKET_POST_COLUMNS, row, strict=True)) for row in conn.execute(_BUCKET_POSTS, params)]
    return BucketPage(rows[:page_size], len(rows) > page_size)
