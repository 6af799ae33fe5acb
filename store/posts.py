"""Writing posts and crawl cursors: one round trip per batch, idempotent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from murmur.crawler.text import has_unstorable_escape, storable

if TYPE_CHECKING:
    import psycopg

    from murmur.crawler.items import Post


@dataclass(frozen=True)
class UpsertResult:
    new: int
    updated: int
    unchanged: int


# A temporary staging table filled by COPY, then merged with one INSERT .. ON CONFLICT: the
# fastest batched upsert psycopg offers, and DISTINCT ON lets a batch carry the same post twice
# (one status under two hashtags) without "ON CONFLICT cannot affect row a second time".
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS posts_staging (
    seq integer, source text, source_id text, url text, author text, text text, lang text,
    created_at timestamptz, terms text[], tags text[], replies integer, reposts integer,
    likes integer, raw jsonb, parent_source_id text, root_source_id text, via text, region text
) ON COMMIT DELETE ROWS
"""

_COPY = """
COPY posts_staging (seq, source, source_id, url, author, text, lang, created_at, terms, tags,
                    replies, reposts, likes, raw, parent_source_id, root_source_id, via, region) FROM STDIN
"""

# Only rows that are new or really changed come back, so re-crawling the same page reports
# 0 new, 0 updated. A changed post's scores are marked for re-aggregation (its terms may differ).
# What arrives never erases what is stored (a stream event knows less than a crawl): no value is replaced
# by NULL, no handle (nor the URL made with it) by a bare DID (`did:...`, Bluesky's account id before its
# handle is known), and the way a post first arrived (`via`) stays.
_MERGE = """
WITH incoming AS (
    SELECT DISTINCT ON (source, source_id) *
    FROM posts_staging
    ORDER BY source, source_id, seq DESC
), merged AS (
    INSERT INTO posts AS p (source, source_id, url, author, text, lang, created_at, terms, tags,
                            replies, reposts, likes, raw, parent_source_id, root_source_id, via, region)
    SELECT source, source_id, url, author, text, lang, created_at, terms, tags,
           replies, reposts, likes, raw, parent_source_id, root_source_id, via, region
    FROM incoming
    ON CONFLICT (source, source_id) DO UPDATE SET
        url = CASE WHEN EXCLUDED.author LIKE 'did:%' AND p.author NOT LIKE 'did:%' THEN p.url
                   ELSE COALESCE(EXCLUDED.url, p.url) END,
        author = CASE WHEN EXCLUDED.author LIKE 'did:%' AND p.author NOT LIKE 'did:%' THEN p.author
                      ELSE COALESCE(EXCLUDED.author, p.author) END,
        text = EXCLUDED.text,
        lang = COALESCE(EXCLUDED.lang, p.lang),
        terms = ARRAY(SELECT DISTINCT t FROM unnest(p.terms || EXCLUDED.terms) AS t ORDER BY t),
        tags = EXCLUDED.tags,
        replies = COALESCE(EXCLUDED.replies, p.replies),
        reposts = COALESCE(EXCLUDED.reposts, p.reposts),
        likes = COALESCE(EXCLUDED.likes, p.likes),
        raw = COALESCE(EXCLUDED.raw, p.raw),
        parent_source_id = COALESCE(EXCLUDED.parent_source_id, p.parent_source_id),
        root_source_id = COALESCE(EXCLUDED.root_source_id, p.root_source_id),
        region = COALESCE(EXCLUDED.region, p.region),
        updated_at = now()
    WHERE (p.url, p.author, p.text, p.lang, p.tags, p.replies, p.reposts, p.likes, p.parent_source_id,
           p.root_source_id, p.region)
          IS DISTINCT FROM
          (CASE WHEN EXCLUDED.author LIKE 'did:%' AND p.author NOT LIKE 'did:%' THEN p.url
                ELSE COALESCE(EXCLUDED.url, p.url) END,
           CASE WHEN EXCLUDED.author LIKE 'did:%' AND p.author NOT LIKE 'did:%' THEN p.author
                ELSE COALESCE(EXCLUDED.author, p.author) END,
           EXCLUDED.text, COALESCE(EXCLUDED.lang, p.lang), EXCLUDED.tags,
           COALESCE(EXCLUDED.replies, p.replies), COALESCE(EXCLUDED.reposts, p.reposts),
           COALESCE(EXCLUDED.likes, p.likes), COALESCE(EXCLUDED.parent_source_id, p.parent_source_id),
           COALESCE(EXCLUDED.root_source_id, p.root_source_id), COALESCE(EXCLUDED.region, p.region))
       OR NOT (EXCLUDED.terms <@ p.terms)
    RETURNING p.id, (xmax = 0) AS inserted
), requeued AS (
    UPDATE sentiment_scores s SET aggregated_at = NULL
    FROM merged m
    WHERE s.post_id = m.id AND NOT m.inserted AND s.aggregated_at IS NOT NULL
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
       (SELECT count(*) FROM incoming)
FROM merged
"""


# PostgreSQL stores neither NUL nor half a UTF-16 surrogate pair, and one such character would fail the
# whole batch: `storable` (murmur.crawler.text, shared with the parsers) removes them here, for every source.
def _raw(raw: dict[str, Any]) -> Jsonb | None:
    if not raw:
        return None
    dumped = json.dumps(raw, default=str)
    if has_unstorable_escape(dumped):  # rare: walk the record only then
        dumped = json.dumps(storable(raw), default=str)
    return Jsonb(raw, dumps=lambda _: dumped)


def upsert_posts(conn: psycopg.Connection, posts: Sequence[Post]) -> UpsertResult:
    """Insert or update `posts` in one round trip; the caller owns the transaction."""
    if not posts:
        return UpsertResult(0, 0, 0)
    conn.execute(_STAGING)
    # Emptied at commit; but two upserts in one transaction would see the first one's rows again.
    conn.execute("DELETE FROM posts_staging")
    with conn.cursor() as cur:
        with cur.copy(_COPY) as copy:
            for seq, post in enumerate(posts):
                metrics = post.metrics or {}
                copy.write_row(
                    (
                        seq,
                        post.source,
                        storable(post.source_id),
                        storable(post.url),
                        storable(post.author),
                        storable(post.text),
                        post.lang,
                        post.created_at,
                        storable(list(post.terms)),
                        storable(list(post.tags)),
                        metrics.get("replies"),
                        metrics.get("reposts"),
                        metrics.get("likes"),
                        _raw(post.raw),
                        storable(post.parent_source_id),
                        storable(post.root_source_id),
                        post.via,
                        storable(post.region),
                    )
                )
        row = cur.execute(_MERGE).fetchone()
    assert row is not None
    new, updated, distinct = int(row[0]), int(row[1]), int(row[2])
    return UpsertResult(new=new, updated=updated, unchanged=distinct - new - updated)


def get_cursor(conn: psycopg.Connection, source: str, query: str) -> str | None:
    """The stored cursor of (source, query), or None before its first crawl."""
    row = conn.execute(
        "SELECT cursor FROM crawl_state WHERE source = %s AND query = %s", (source, query)
    ).fetchone()
    return row[0] if row else None


def set_cursors(conn: psycopg.Connection, cursors: Sequence[tuple[str, str, str]]) -> None:
    """Store (source, query, cursor) rows; the caller commits them with the posts they cover."""
    if not cursors:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO crawl_state (source, query, cursor) VALUES (%s, %s, %s)
            ON CONFLICT (source, query) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()
            """,
            list(cursors),
        )
