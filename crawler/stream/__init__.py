"""Stream sources: long-lived connections that deliver posts as they are made (crawler/registry.py: the
sources with the "stream" capability). `run_stream` runs one until it is stopped, recording it in
`job_runs` (job `stream:<source>`); `murmur stream`, the service's stream child and bench/stream.py call it.

One consumer per stream source and database at a time: a second one waits on an advisory lock (a
standby, or a `murmur stream` beside `murmur serve`), so the cursor and the baseline have one writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from murmur.config import Settings

logger = logging.getLogger(__name__)

LOCK_WAIT = 1.0  # seconds between looks at a held stream lock


@dataclass
class StreamOutcome:
    source: str
    status: str  # ok (its duration ran out) | interrupted (stopped: signal, stop event) | failed
    stats: dict[str, Any] = field(default_factory=dict)  # the job_runs stats (crawler/stream/jetstream.py)
    error: str | None = None
    waited: float = 0.0  # seconds spent waiting for another consumer's lock

    def summary(self) -> str:
        """One line, like a crawl's: `jetstream: ok, 1200 events, 14 matched, ...`."""
        s = self.stats
        skipped = sum(v for k, v in s.items() if k.startswith("skipped/") and isinstance(v, int))
        lag = s.get("lag")
        line = (f"{self.source}: {self.status}, {s.get('events', 0)} events, {s.get('posts', 0)} posts, "
                f"{s.get('matched', 0)} matched, {s.get('replies', 0)} replies, {s.get('updates', 0)} updated, "
                f"{s.get('deletes', 0)} deleted, {skipped} skipped ({s.get('skipped/malformed', 0)} malformed), "
                f"{s.get('baseline', 0)} counted in network_volume, {s.get('reconnects', 0)} reconnects"
                + (f", lag {lag:.1f} s" if isinstance(lag, int | float) else ""))
        return line + (f"; {self.error}" if self.error else "")


def run_stream(
    settings: Settings,
    database_url: str,
    source: str = "jetstream",
    *,
    duration: float | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> StreamOutcome:
    """Run stream `source` until `stop` is set or `duration` seconds pass (None: until stopped), in this
    thread. Waits first while another consumer of `source` holds its lock. Returns how it ended; a database
    failure ends it as `failed` (the error in the outcome). `on_progress(stats)` is called about once a second.
    """
    from murmur.crawler.stream.jetstream import SOURCE, JetstreamConsumer
    from murmur.store.db import connect
    from murmur.store.locks import job_lock_key, try_lock, unlock
    from murmur.store.migrate import migrate
    from murmur.store.runs import finish_run, start_run

    if source != SOURCE:
        raise ValueError(f"unknown stream source {source!r}; stream sources: {SOURCE}")
    stop = stop or threading.Event()
    started = time.monotonic()
    deadline = started + duration if duration is not None else None
    job = f"stream:{source}"
    # Autocommit: each batch is its own `conn.transaction()`, and nothing else holds one open between them.
    with connect(database_url, autocommit=True) as conn:
        migrate(conn)
        key = job_lock_key(job)
        told = False
        while not try_lock(conn, key):
            if not told:
                logger.info("%s: another consumer holds this stream; waiting for it to stop", source)
                told = True
            if stop.wait(LOCK_WAIT if deadline is None else max(min(LOCK_WAIT, deadline - time.monotonic()), 0)) \
                    or (deadline is not None and time.monotonic() >= deadline):
                return StreamOutcome(source, "interrupted" if stop.is_set() else "ok", {},
                                     "another consumer held the stream", time.monotonic() - started)
        waited = time.monotonic() - started
        run_id = start_run(conn, job)
        consumer: JetstreamConsumer | None = None
        try:
            consumer = JetstreamConsumer(settings, conn, run_id, stop=stop, deadline=deadline,
                                         on_progress=on_progress)
            status = consumer.run()
        except BaseException as err:
            interrupted = isinstance(err, KeyboardInterrupt | SystemExit)
            stats = consumer.snapshot() if consumer is not None else {}
            error = "stopped by a signal" if interrupted else f"{type(err).__name__}: {err}"
            if conn.broken or conn.closed:
                logger.error("%s: the database connection failed (%s); the run stays 'running' in job_runs",
                             source, error)
            else:
                finish_run(conn, run_id, status="interrupted" if interrupted else "failed", stats=stats,
                           error=error)
            if interrupted:
                raise
            logger.exception("%s: the stream failed", source)
            return StreamOutcome(source, "failed", stats, error, waited)
        finally:
            if not (conn.broken or conn.closed):
                unlock(conn, key)
        stats = consumer.snapshot()
        finish_run(conn, run_id, status=status, stats=stats)
        return StreamOutcome(source, status, stats, None, waited)
