"""The scoring worker: claim unscored posts, score them, write the scores, in one transaction
per batch, so a post is never scored twice nor lost when a worker dies mid-batch."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from murmur.store.scores import claim_unscored, write_scores

if TYPE_CHECKING:
    import psycopg

    from murmur.sentiment.scorer import Scorer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreRun:
    scored: int
    batches: int
    seconds: float
    interrupted: bool = False

    @property
    def per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


def score_pending(
    conn: psycopg.Connection,
    scorer: Scorer,
    *,
    model_id: str,
    batch_size: int = 256,
    limit: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScoreRun:
    """Score every post `model_id` has not scored yet (or `limit` of them), batch by batch.

    `stop` is checked between batches: a SIGTERM lets the batch in hand commit, then returns.
    """
    started = time.monotonic()
    scored = batches = 0
    while limit is None or scored < limit:
        if stop is not None and stop.is_set():
            return ScoreRun(scored, batches, time.monotonic() - started, interrupted=True)
        want = batch_size if limit is None else min(batch_size, limit - scored)
        with conn.transaction():
            claimed = claim_unscored(conn, model_id, want)
            if not claimed:
                break
            scores = scorer.score([text for _, text in claimed])
            write_scores(conn, model_id, [post_id for post_id, _ in claimed], scores)
        scored += len(claimed)
        batches += 1
        if progress is not None:
            progress(scored)
    return ScoreRun(scored, batches, time.monotonic() - started)
