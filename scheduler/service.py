"""`murmur serve`: APScheduler runs crawl, score and aggregate jobs on their intervals.

- Jobs persist in PostgreSQL (APScheduler's SQLAlchemy job store, table `apscheduler_jobs`), so a
  restart keeps each job's next run time instead of starting every schedule over; and a job whose
  last successful run (in `job_runs`) is recent waits for its next slot rather than running at once.
- A job never overlaps itself: `max_instances=1` in this process, and a PostgreSQL advisory lock
  per job across processes. Two services on one database share the job store and take turns: the
  one that finds a job's lock taken skips that turn, so a second service is a hot standby that
  takes over the jobs when the first stops.
- Missed runs (the service was down, or every worker busy) are coalesced into one, and a run
  later than one interval is dropped: its next slot comes as soon.
- SIGTERM/SIGINT stop it cleanly: no new jobs start, the scoring job stops between batches, a
  running crawl child gets SIGTERM (Scrapy then flushes its pipelines), then the process exits.
- On `service.http` (127.0.0.1:9464 by default) the dashboard, /healthz and Prometheus /metrics are served
  (scheduler/health.py, web/).
- Every enabled stream source (Jetstream) runs all the time in a supervised child process, restarted
  with backoff when it exits, stopped with the service (scheduler/streams.py); no crawl job for it.
- With `import.inbox` set, files dropped in that folder are imported (scheduler/inbox.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MODIFIED, EVENT_JOB_SUBMITTED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING

from murmur.app import App
from murmur.config import ConfigError
from murmur.crawler.registry import SOURCES, STREAM
from murmur.scheduler.metrics import Metrics, first_line, probe_connection
from murmur.store.db import connect
from murmur.store.locks import job_lock_key, try_lock, unlock
from murmur.store.migrate import migrate
from murmur.store.status import last_successes, latest_runs, record_next_runs

if TYPE_CHECKING:
    import psycopg

    from murmur.config import Settings
    from murmur.scheduler.health import HealthServer
    from murmur.scheduler.inbox import Inbox
    from murmur.scheduler.streams import StreamSupervisor
    from murmur.search import Hit
    from murmur.store.embeddings import SearchFilters

logger = logging.getLogger(__name__)


def sqlalchemy_url(database_url: str) -> str:
    """The psycopg 3 dialect URL SQLAlchemy needs for the same database."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


class _Scheduler(BackgroundScheduler):
    def _process_jobs(self) -> float | None:
        # APScheduler 3 runs one more round after shutdown() (its loop wakes on the shutdown event),
        # submits due jobs to the executor it just shut down, and logs "cannot schedule new futures
        # after shutdown" with a traceback. Only a running scheduler starts jobs.
        if self.state != STATE_RUNNING:
            return None
        return super()._process_jobs()


class Service:
    """The long-running scheduler. `run_forever()` blocks until a stop signal."""

    child_grace = 60.0  # seconds a crawl child gets to close after SIGTERM (deploy/murmur.service allows 90)
    score_poll = 5.0  # score_interval = "continuous": how often an idle scorer looks for new posts
    # Posts a scoring run scores before it aggregates them: at ~250 posts/s on a CPU, trends move
    # every 20 s or so during a back-fill, and aggregation (incremental) stays cheap next to it.
    score_pass_limit = 5000
    aggregate_wait = 300.0  # seconds the aggregation after scoring waits for one already running

    def __init__(self, settings: Settings, database_url: str, *, config_file: str | Path | None = None) -> None:
        self.settings = settings
        self.database_url = database_url
        self.config_file = config_file
        self.app = App(settings, database_url)  # loads the models once, for every scoring run
        self.stopping = threading.Event()
        self.children: set[subprocess.Popen[bytes]] = set()
        self.scheduler: Any = None
        self.model_error: str | None = None  # the last model-loading error logged
        self.metrics = Metrics(database_url, sources=self.crawl_sources(), streams=self.stream_sources())
        self.http: HealthServer | None = None
        self.streams: StreamSupervisor | None = None
        self.inbox: Inbox | None = None
        self.started_at = datetime.now(UTC)

    def _search(self, conn: psycopg.Connection, query: str, filters: SearchFilters, limit: int) -> list[Hit]:
        """The dashboard's search, on the service's App: the embedding model loads on the first query (scoring
        does not need it), in the HTTP server's thread."""
        return self.app.search(conn, query, filters, limit=limit)

    def stream_sources(self) -> list[str]:
        """The enabled sources that stream (a supervised child each) rather than crawl (a scheduled job)."""
        return [s.name for s in self.settings.enabled_sources()
                if s.name in SOURCES and STREAM in SOURCES[s.name].capabilities]

    def crawl_sources(self) -> list[str]:
        streams = set(self.stream_sources())
        # An import-only source has no spider: nothing to schedule (`murmur import` brings its posts); nor has
        # one whose platform disallows crawling until its opt-in key is on (rednote's `pages`).
        return [s.name for s in self.settings.enabled_sources()
                if s.name not in streams and not (s.name in SOURCES and (SOURCES[s.name].is_import_only
                                                                         or not SOURCES[s.name].opted_in(s)))]

    # --- shared resources for the jobs ---

    def connect(self) -> psycopg.Connection:
        return connect(self.database_url)

    @contextlib.contextmanager
    def job_lock(self, job: str, *, wait: float = 0.0) -> Iterator[bool]:
        """A session advisory lock named after the job; yields False when another session holds it
        (after waiting up to `wait` seconds for it, unless the service is stopping)."""
        key = job_lock_key(job)
        deadline = time.monotonic() + wait
        with connect(self.database_url, autocommit=True) as conn:
            while True:
                got = try_lock(conn, key)
                if got or time.monotonic() >= deadline or self.stopping.wait(0.5):
                    break
            try:
                yield got
            finally:
                if got:
                    unlock(conn, key)

    # --- lifecycle ---

    def schedule(self) -> Any:
        """Create the scheduler with the PostgreSQL job store and (re)register the jobs; it starts paused."""
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        from murmur.scheduler import jobs

        with connect(self.database_url) as conn:
            migrate(conn)
        crawls = set(self.crawl_sources())
        wanted: dict[str, tuple[Any, tuple[Any, ...], float]] = {
            f"crawl:{s.name}": (jobs.crawl, (s.name,), s.interval) for s in self.settings.enabled_sources()
            if s.name in crawls
        }
        wanted["score"] = (jobs.score, (), self.settings.schedule.score_interval or self.score_poll)
        wanted["aggregate"] = (jobs.aggregate, (), self.settings.schedule.aggregate_interval)
        scheduler = _Scheduler(
            jobstores={"default": SQLAlchemyJobStore(url=sqlalchemy_url(self.database_url),
                                                     tablename="apscheduler_jobs")},
            # A thread per job: a crawl waits on its child for minutes, and must not hold up scoring.
            executors={"default": {"type": "threadpool", "max_workers": len(wanted) + 1}},
            # coalesce: after downtime, one catch-up run, not one per missed interval.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=UTC,
        )
        jobs.bind(self)
        # Two services starting together would both create the job store's table and both rewrite
        # the jobs: one at a time (after two minutes a stuck one is not waited for).
        with self.job_lock("schedule", wait=120.0):
            scheduler.start(paused=True)
            self._register(scheduler, wanted)
            self._record_schedule(scheduler)
        # `murmur status` reads the next runs from job_schedule (APScheduler's own table is its private
        # business): recorded when a job is submitted (its next slot is already saved then) or modified.
        scheduler.add_listener(lambda event: self._record_schedule(scheduler, job_id=event.job_id),
                               EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MODIFIED)
        self.scheduler = scheduler
        return scheduler

    def _record_schedule(self, scheduler: Any, *, job_id: str | None = None) -> None:
        """Record the next run of one job (or of all, forgetting the jobs no longer scheduled)."""
        jobs = [scheduler.get_job(job_id)] if job_id else scheduler.get_jobs()
        runs = {j.id: (j.next_run_time, j.trigger.interval.total_seconds()) for j in jobs if j is not None}
        try:
            with connect(self.database_url) as conn:
                record_next_runs(conn, runs, drop_others=job_id is None)
        except Exception as err:  # only makes `murmur status` stale; never a scheduler traceback
            logger.warning("could not record the next runs: %s", first_line(err))

    def _register(self, scheduler: Any, wanted: dict[str, tuple[Any, tuple[Any, ...], float]]) -> None:
        """Add, keep or move each wanted job; remove the rest."""
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()  # a source disabled since the last start
        now = datetime.now(UTC)
        cut_short = self._cut_short_jobs()
        with connect(self.database_url) as conn:
            succeeded = last_successes(conn, statuses=("ok", "partial"))
        for job_id, (func, args, seconds) in wanted.items():
            existing = scheduler.get_job(job_id)
            same = existing is not None and existing.trigger.interval.total_seconds() == seconds
            if job_id in cut_short:
                # A crawl stopped mid-way resumes now, not an interval later: its cursor did not move,
                # and the upserts make fetching the same pages again harmless.
                when, why = now, "its last run was cut short; running it now"
            else:
                when = (existing.next_run_time or now) if same else now
                why = f"kept, next run {when}" if same else f"every {seconds:g}s, first run now"
                last_ok = succeeded.get(job_id)
                if last_ok is not None and last_ok + timedelta(seconds=seconds) > when:
                    # A restart (or another service, or `murmur crawl` by hand) must not repeat a run
                    # that has just succeeded: the job waits for the slot after it.
                    when = last_ok + timedelta(seconds=seconds)
                    why = f"every {seconds:g}s; last ran ok at {last_ok:%Y-%m-%d %H:%M:%S}, next run {when}"
            if same:
                if when != existing.next_run_time:  # (a kept time in the past runs at once, coalesced)
                    existing.modify(next_run_time=when)
            else:
                # misfire_grace_time: a run more than one interval late is dropped (coalesced runs are
                # never that late); the next slot is no further away.
                scheduler.add_job(func, "interval", seconds=seconds, args=args, id=job_id, name=job_id,
                                  replace_existing=True, next_run_time=when,
                                  misfire_grace_time=max(int(seconds), 1))
            logger.info("job %s: %s", job_id, why)

    def _cut_short_jobs(self) -> set[str]:
        """Jobs whose latest run was interrupted, or never finished and is not running elsewhere
        (the process running it was killed)."""
        with connect(self.database_url) as conn:
            latest = latest_runs(conn)
        cut = set()
        for job, run in latest.items():
            if run["status"] == "interrupted":
                cut.add(job)
            elif run["status"] == "running":
                with self.job_lock(job) as free:  # a live run holds its job's lock
                    if free:
                        cut.add(job)
        return cut

    # --- health ---

    def scheduler_state(self) -> str:
        scheduler = self.scheduler
        if self.stopping.is_set():
            return "stopping"
        if scheduler is None:
            return "starting"
        thread = getattr(scheduler, "_thread", None)
        if scheduler.state == STATE_RUNNING and (thread is None or thread.is_alive()):
            return "running"
        return "paused" if scheduler.state == STATE_PAUSED else "stopped"

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, what /healthz says): healthy when the scheduler runs and PostgreSQL answers."""
        state = self.scheduler_state()
        try:
            with probe_connection(self.database_url) as conn:
                conn.execute("SELECT 1")
            database = "ok"
        except Exception as err:  # any failure to answer is "unhealthy", never an error page
            database = first_line(err)
        ok = state == "running" and database == "ok"
        body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "scheduler": state, "database": database,
                                "started_at": self.started_at.isoformat(timespec="seconds")}
        if ok:
            body["next_runs"] = {
                job.id: job.next_run_time.isoformat(timespec="seconds") if job.next_run_time else None
                for job in self.scheduler.get_jobs()
            }
        return ok, body

    def start_http(self) -> None:
        """Serve the dashboard, /healthz and /metrics on `service.http`. A port another process holds (a second
        service on the same host: a hot standby) is said once in the log and the service runs on without HTTP;
        an address that cannot be served at all, or one beyond loopback without a token, stops the start."""
        import errno

        address = self.settings.service.http
        if not address:
            return
        from murmur.scheduler.health import HealthServer
        from murmur.web.server import ListenError, check_listen
        from murmur.web.views import Context

        token = self.settings.service.token
        try:
            check_listen(address, token, key="config key 'service.http'")
        except ListenError as err:
            raise ConfigError(str(err)) from None
        context = Context(terms=self.settings.terms, sources=tuple(s.name for s in self.settings.enabled_sources()),
                          search=self._search)
        try:
            self.http = HealthServer(address, self.health, self.metrics.registry, database_url=self.database_url,
                                     context=context, token=token)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                logger.warning("service.http %s is taken (another murmur service on this host?): running on "
                               "without the dashboard, /healthz and /metrics here", address)
                return
            raise ConfigError(
                f"config key 'service.http' is {address!r}, which cannot be served ({err.strerror or err}); "
                'pick another HOST:PORT, or set service.http = "" for none'
            ) from None
        self.http.start()
        logger.info("health and metrics on %s (/healthz, /metrics); the dashboard at %s/", self.http.url,
                    self.http.url)

    # --- streams ---

    def stream_command(self, source: str) -> list[str]:
        """The child that consumes one stream source, with the service's config (and database, in its env)."""
        cmd = [sys.executable, "-m", "murmur"]
        if self.config_file:
            cmd += ["--config", str(self.config_file)]
        return [*cmd, "stream", source]

    def start_streams(self) -> None:
        """Start the supervised child of every enabled stream source (none: nothing starts)."""
        sources = self.stream_sources()
        if not sources:
            return
        from murmur.scheduler.streams import StreamSupervisor

        def exited(source: str, code: int, seconds: float) -> None:
            self.metrics.record_stream_exit(source, code=code, seconds=seconds, restarting=not self.stopping.is_set())

        self.streams = StreamSupervisor(
            sources, self.stream_command, env={**os.environ, "MURMUR_DATABASE_URL": self.database_url},
            grace=self.child_grace, on_exit=exited, stopping=self.stopping,
        )
        self.streams.start()
        logger.info("streams: %s running in supervised child processes", ", ".join(sources))

    def start_inbox(self) -> None:
        """Watch `import.inbox` for files to import (none set: nothing starts); a folder that cannot be
        made stops the start."""
        folder = self.settings.imports.inbox
        if folder is None:
            return
        from murmur.scheduler.inbox import Inbox

        self.inbox = Inbox(folder, self.app, self.database_url, stopping=self.stopping)
        try:
            self.inbox.start()
        except OSError as err:
            self.inbox = None
            raise ConfigError(f"config key 'import.inbox' is {str(folder)!r}, which cannot be used as a folder "
                              f"({err.strerror or err}); set another, or \"\" for no inbox") from None

    # --- lifecycle ---

    def stop(self, *_: Any) -> None:
        if not self.stopping.is_set():
            logger.info("stopping: letting running jobs finish their current batch")
        self.stopping.set()

    def run_forever(self) -> int:
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start_http()  # first: a port that cannot be served fails before any job starts
            scheduler = self.schedule()
            self.start_inbox()  # after the migrations schedule() runs; a folder that cannot be made stops here
            scheduler.resume()
            self.start_streams()
            logger.info("murmur service running (%d jobs); stop with Ctrl-C or SIGTERM", len(scheduler.get_jobs()))
            while not self.stopping.wait(1.0):
                pass
            scheduler.pause()  # start nothing new while the running jobs finish
            scheduler.shutdown(wait=True)  # the stream children got SIGTERM with the stop, and close meanwhile
            if self.streams is not None:
                self.streams.stop()
            if self.inbox is not None:
                self.inbox.join(self.child_grace)  # an import under way finishes its file
            logger.info("murmur service stopped")
            return 0
        finally:
            if self.streams is not None:  # a failed start: no child outlives the service
                self.streams.stop()
            if self.http is not None:
                self.http.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            from murmur.scheduler import jobs

            jobs.bind(None)
