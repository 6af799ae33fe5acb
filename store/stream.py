"""What a stream consumer writes besides posts (store/posts.py): deletions and edits that must reach the
aggregates, the network's volume (the baseline of `report --share`), handles learnt from identity events,
and its `job_runs` row's figures while it runs. The consumer calls these inside one transaction per batch,
with the posts and the cursor."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from murmur.redact import active, redact_tree

if TYPE_CHECKING:
    import psycopg

# The hour and day buckets of the scored posts in `target` (a CTE of post ids and created_at), marked for
# the next aggregation; the models are those that scored them.
_MARK = """
dirty AS (
    INSERT INTO dirty_buckets (bucket_size, bucket_start, source, model)
    SELECT DISTINCT b.size, date_bin(b.step, t.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), t.source, s.model
    FROM target t
    JOIN sentiment_scores s ON s.post_id = t.id
    CROSS JOIN (VALUES ('hour', INTERVAL '1 hour'), ('day', INTERVAL '1 day')) AS b(size, step)
    ON CONFLICT DO NOTHING
)"""

# Deleted posts go with their scores (ON DELETE CASCADE); their buckets are marked first (one snapshot:
# the marking reads the scores before the cascade removes them).
_DELETE = f"""
WITH target AS (
    SELECT id, source, created_at FROM posts WHERE source = %(source)s AND source_id = ANY(%(ids)s)
), {_MARK}, deleted AS (
    DELETE FROM posts p USING target t WHERE p.id = t.id RETURNING p.id
)
SELECT count(*) FROM deleted
"""

# An edit that changes a stored post's text makes its scores wrong: they are dropped (and the reason it was
# left unscored, the language may have changed) so the worker scores the new text, and its buckets marked.
_EDITED = f"""
WITH incoming AS (
    SELECT * FROM unnest(%(ids)s::text[], %(texts)s::text[]) AS u(source_id, text)
), target AS (
    SELECT p.id, p.source, p.created_at
    FROM posts p JOIN incoming u ON p.source = %(source)s AND p.source_id = u.source_id
    WHERE p.text IS DISTINCT FROM u.text
), {_MARK}, unscored AS (
    DELETE FROM unscored_posts u USING target t WHERE u.post_id = t.id
), scores AS (
    DELETE FROM sentiment_scores s USING target t WHERE s.post_id = t.id
)
SELECT count(*) FROM target
"""


def delete_posts(conn: psycopg.Connection, source: str, source_ids: Sequence[str]) -> int:
    """Remove the stored posts of `source_ids` and their scores, marking their buckets; how many were stored."""
    if not source_ids:
        return 0
    row = conn.execute(_DELETE, {"source": source, "ids": list(source_ids)}).fetchone()
    return int(row[0]) if row else 0


def forget_edited(conn: psycopg.Connection, source: str, texts: Mapping[str, str]) -> int:
    """For each stored post whose text differs from `texts[source_id]`: drop its scores and mark its buckets,
    so the new text is scored and counted again. How many stored posts changed text. Call it before the
    upsert that writes the new texts."""
    if not texts:
        return 0
    row = conn.execute(_EDITED, {"source": source, "ids": list(texts), "texts": list(texts.values())}).fetchone()
    return int(row[0]) if row else 0


def stored_terms(conn: psycopg.Connection, source: str, source_ids: Iterable[str]) -> dict[str, list[str]]:
    """source_id -> terms of those of `source_ids` that are stored (a reply's parent or thread root)."""
    ids = list(set(source_ids))
    if not ids:
        return {}
    rows = conn.execute("SELECT source_id, terms FROM posts WHERE source = %s AND source_id = ANY(%s)",
                        (source, ids))
    return {source_id: list(terms or []) for source_id, terms in rows}


def add_network_volume(conn: psycopg.Connection, source: str, counts: Mapping[tuple[datetime, str], int]) -> None:
    """Add `counts` ((hour start, lang) -> posts created) to `network_volume` for `source`."""
    if not counts:
        return
    keys = sorted(counts)  # one order for every writer: no deadlock between two batches' upserts
    conn.execute(
        """
        INSERT INTO network_volume (bucket_start, source, lang, posts)
        SELECT b, %s, l, n FROM unnest(%s::timestamptz[], %s::text[], %s::bigint[]) AS u(b, l, n)
        ON CONFLICT (bucket_start, source, lang) DO UPDATE SET posts = network_volume.posts + EXCLUDED.posts
        """,
        (source, [k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys]),
    )


def rename_authors(conn: psycopg.Connection, source: str, handles: Mapping[str, str]) -> int:
    """Stored posts of `source` whose author is one of the DIDs in `handles` get the handle as author, and
    in their URL (https://bsky.app/profile/<did>/post/... -> /profile/<handle>/post/...); how many."""
    if not handles:
        return 0
    with conn.cursor() as cur:
        cur.execute(
            """
            UPDATE posts p
            SET author = u.handle,
                url = replace(p.url, '/profile/' || u.did || '/', '/profile/' || u.handle || '/'),
                updated_at = now()
            FROM unnest(%s::text[], %s::text[]) AS u(did, handle)
            WHERE p.source = %s AND p.author = u.did
            """,
            (list(handles), list(handles.values()), source),
        )
        return cur.rowcount


def update_run_stats(conn: psycopg.Connection, run_id: int, stats: Mapping[str, Any]) -> None:
    """A running job's figures so far (`job_runs.stats`), masked like finish_run's; the caller commits."""
    conn.execute("UPDATE job_runs SET stats = %s WHERE id = %s", (Jsonb(redact_tree(dict(stats), active())), run_id))
