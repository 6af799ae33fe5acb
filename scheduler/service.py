"""`murmur serve`: APScheduler runs crawl, score and aggregate jobs on their intervals.

- Jobs persist in PostgreSQL (APScheduler's SQLAlchemy job store, table `apscheduler_jobs`), so a
  restart keeps each job's next run time instead of starting every schedule over.
- A job never overlaps itself: `max_instances=1` in this process, and a PostgreSQL advisory lock
  per job across processes (two services on one database take turns).
- SIGTERM/SIGINT stop it cleanly: no new jobs start, the scoring job stops between batches, a
  running crawl child gets SIGTERM (Scrapy then flushes its pipelines), then the process exits.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING

from murmur.store.db import connect
from murmur.store.migrate import migrate

if TYPE_CHECKING:
    import psycopg

    from murmur.config import Settings
    from murmur.sentiment.worker import Route

logger = logging.getLogger(__name__)


def sqlalchemy_url(database_url: str) -> str:
    """The psycopg 3 dialect URL SQLAlchemy needs for the same database."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]
    def _process_jobs(self) -> float | None:
        # APScheduler 3 runs one more round after shutdown() (its loop wakes on the shutdown event),
        # submits due jobs to the executor it just shut down, and logs "cannot schedule new futures
        # after shutdown" with a traceback. Only a running scheduler starts jobs.
        if self.state != STATE_RUNNING:
            return None
        return super()._process_jobs()  # type: ignore[no-any-return]


class Service:
    """The long-running scheduler. `run_forever()` blocks until a stop signal."""

    child_grace = 60.0  # seconds a crawl child gets to close after SIGTERM

    def __init__(self, settings: Settings, database_url: str, *, config_file: str | Path | None = None) -> None:
        self.settings = settings
        self.database_url = database_url
        self.config_file = config_file
        self.stopping = threading.Event()
        self.children: set[subprocess.Popen[bytes]] = set()
        self._routes: list[Route] | None = None
        self._routes_lock = threading.Lock()
        self.scheduler: Any = None
        self.model_error: str | None = None  # the last model-loading error logged

    # --- shared resources for the jobs ---

    def connect(self) -> psycopg.Connection:
        return connect(self.database_url)

    def routes(self) -> list[Route]:
        """The scoring routes, their models loaded once for the life of the service, on first use;
        raises ModelError."""
        with self._routes_lock:
            if self._routes is None:
                from murmur.cli import scorer_loader
                from murmur.sentiment.worker import plan_routes

                self._routes = plan_routes(self.settings, scorer_loader(self.settings))
            return self._routes

    @contextlib.contextmanager
    def job_lock(self, job: str) -> Iterator[bool]:
        """A session advisory lock named after the job; yields False when another process holds it."""
        key = zlib.crc32(f"murmur-job:{job}".encode())
        with connect(self.database_url, autocommit=True) as conn:
            got = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])  # type: ignore[index]
            try:
                yield got
            finally:
                if got:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    # --- lifecycle ---

    def schedule(self) -> Any:
        """Create the scheduler with the PostgreSQL job store and (re)register the jobs."""
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        from murmur.scheduler import jobs

        with connect(self.database_url) as conn:
            migrate(conn)
        scheduler = _Scheduler(
            jobstores={"default": SQLAlchemyJobStore(url=sqlalchemy_url(self.database_url),
                                                     tablename="apscheduler_jobs")},
            executors={"default": {"type": "threadpool", "max_workers": 4}},
            # coalesce: after downtime, one catch-up run, not one per missed interval.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=UTC,
        )
        jobs.bind(self)
        scheduler.start(paused=True)
        wanted: dict[str, tuple[Any, tuple[Any, ...], float]] = {
            f"crawl:{s.name}": (jobs.crawl, (s.name,), s.interval) for s in self.settings.enabled_sources()
        }
        wanted["score"] = (jobs.score, (), self.settings.schedule.score_interval)
        wanted["aggregate"] = (jobs.aggregate, (), self.settings.schedule.aggregate_interval)
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()  # a source disabled since the last start
        now = datetime.now(UTC)
        cut_short = self._cut_short_jobs()
        for job_id, (func, args, seconds) in wanted.items():
            existing = scheduler.get_job(job_id)
            same = existing is not None and existing.trigger.interval.total_seconds() == seconds
            if same and job_id in cut_short:
                # A crawl stopped mid-way resumes now, not an interval later: its cursor did not move,
                # and the upserts make fetching the same pages again harmless.
                existing.modify(next_run_time=now)
                logger.info("job %s: its last run was cut short; running it now", job_id)
                continue
            if same:
                logger.info("job %s: kept, next run %s", job_id, existing.next_run_time)
                continue
            scheduler.add_job(func, "interval", seconds=seconds, args=args, id=job_id, name=job_id,
                              replace_existing=True, next_run_time=now)
            logger.info("job %s: every %gs, first run now", job_id, seconds)
        self.scheduler = scheduler
        return scheduler

    def _cut_short_jobs(self) -> set[str]:
        """Jobs whose latest run was interrupted or never finished (the process was killed)."""
        with connect(self.database_url) as conn:
            rows = conn.execute(
                """
                SELECT DISTINCT ON (job) job, status FROM job_runs
                ORDER BY job, started_at DESC, id DESC
                """
            ).fetchall()
        return {job for job, status in rows if status in ("interrupted", "running")}

    def stop(self, *_: Any) -> None:
        if not self.stopping.is_set():
            logger.info("stopping: letting running jobs finish their current batch")
        self.stopping.set()

    def run_forever(self) -> int:
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            scheduler = self.schedule()
            scheduler.resume()
            logger.info("murmur service running (%d jobs); stop with Ctrl-C or SIGTERM", len(scheduler.get_jobs()))
            while not self.stopping.wait(1.0):
                pass
            scheduler.pause()  # start nothing new while the running jobs finish
            scheduler.shutdown(wait=True)
            logger.info("murmur service stopped")
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            from murmur.scheduler import jobs

            jobs.bind(None)
