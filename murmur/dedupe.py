"""Near-duplicates: posts linked to the earliest copy of their text (posts.duplicate_of), so counts can take
each text once.

Linking happens where embeddings are written: `DedupingSink` writes a batch's embeddings and links those
posts in the same transaction (scoring and `murmur embed`). `relink` is the back-fill for posts embedded
before (or after a change of `dedupe.threshold` or `dedupe.window`): `murmur embed --dedupe` in the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from murmur.sentiment.worker import EmbeddingSink

if TYPE_CHECKING:
    import psycopg

    from murmur.config.settings import DedupeSettings

logger = logging.getLogger(__name__)

RELINK_BATCH = 500  # posts per transaction in the back-fill


@dataclass
class DedupingSink(EmbeddingSink):
    """An EmbeddingSink that links the posts it embedded to their earlier copies, in the same transaction."""

    dedupe: DedupeSettings | None = None

    def write(self, conn: psycopg.Connection, post_ids: Sequence[int], vectors: Any,
              langs: Sequence[str | None]) -> None:
        from murmur.store.dedupe import link_duplicates

        super().write(conn, post_ids, vectors, langs)
        if self.dedupe is not None:
            link_duplicates(conn, self.model_id, post_ids, threshold=self.dedupe.threshold,
                            window=timedelta(seconds=self.dedupe.window))


@dataclass(frozen=True)
class RelinkRun:
    posts: int
    linked: int
    duplicates: int  # posts linked to an original, all told, after the run


def relink(conn: psycopg.Connection, model: str, settings: DedupeSettings, *, since: datetime | None = None,
           progress: Callable[[int], None] | None = None) -> RelinkRun:
    """Link every post with a `model` embedding (created at or after `since`) to its earliest copy, earliest
    posts first, RELINK_BATCH posts per transaction; idempotent (a second run changes nothing)."""
    from murmur.store.dedupe import count_duplicates, embedded_posts, link_duplicates

    with conn.transaction():
        ids = embedded_posts(conn, model, since)
    done = linked = 0
    window = timedelta(seconds=settings.window)
    for start in range(0, len(ids), RELINK_BATCH):
        with conn.transaction():
            run = link_duplicates(conn, model, ids[start:start + RELINK_BATCH], threshold=settings.threshold,
                                  window=window)
        done += run.posts
        linked += run.linked
        if progress is not None:
            progress(done)
    with conn.transaction():
        total = count_duplicates(conn)
    if linked:
        logger.info("near-duplicates: %d links written over %d posts", linked, done)
    return RelinkRun(done, linked, total)
