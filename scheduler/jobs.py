"""The service's jobs: module-level functions, because APScheduler's PostgreSQL job store keeps a
job as a reference to its function ("murmur.scheduler.jobs:crawl") plus plain arguments.

They reach the running service through `current()`; each records itself in `job_runs`
(the crawl child does that itself) and never lets an exception escape into the scheduler.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from murmur.scheduler.service import Service

logger = logging.getLogger(__name__)

# Posts of history (scored by another model) re-scored per idle scoring pass: four batches of 256,
# about 10-20 s of a CPU, the longest a new post waits behind the back-fill.
HISTORY_PASS = 4 * 256

_service: Service | None = None


def bind(service: Service | None) -> None:
    global _service
    _service = service


def current() -> Service:
    if _service is None:
        raise RuntimeError("no murmur service is running in this process")
    return _service


def crawl(source: str) -> None:
    """Crawl one source in a child process.

    Why a child: Scrapy's reactor cannot be restarted in one process, a crash or leak in a crawl
    cannot take the service down, and the child never loads the model. The cost is a second or
    two of start-up per crawl, which is nothing next to a crawl's polite delays.
    """
    service = current()
    job = f"crawl:{source}"
    with service.job_lock(job) as got:
        if not got:
            logger.info("crawl %s: still running elsewhere; skipped this turn", source)
            return
        before = _latest_run_id(service, job)
        started = time.monotonic()
        cmd = [sys.executable, "-m", "murmur"]
        if service.config_file:
            cmd += ["--config", str(service.config_file)]
        cmd += ["crawl", source]
        env = {**os.environ, "MURMUR_DATABASE_URL": service.database_url}
        child = subprocess.Popen(cmd, env=env)
        service.children.add(child)
        try:
            while True:
                try:
                    code = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if service.stopping.is_set() and child.returncode is None:
                        # Scrapy closes gracefully on SIGTERM: pipelines flush, cursors commit.
                        child.send_signal(signal.SIGTERM)
                        code = child.wait(timeout=service.child_grace)
                        break
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        finally:
            service.children.discard(child)
        if code not in (0, 1):  # 1: some instances unreachable, already logged by the child
            logger.warning("crawl %s: the crawl process exited with %s; will retry at the next run", source, code)
        _count_crawl(service, job, before, time.monotonic() - started)


def _latest_run_id(service: Service, job: str) -> int:
    from murmur.store.runs import latest_run_id

    with service.connect() as conn:
        return latest_run_id(conn, job)


def _count_crawl(service: Service, job: str, before: int, seconds: float) -> None:
    """Count the run the crawl process recorded (posts, errors by kind) in the service's metrics."""
    from murmur.store.runs import run_after

    with service.connect() as conn:
        run = run_after(conn, job, before)
    if run is None or run[0] == "running":  # the process died before it could record how the run ended
        service.metrics.record_run(job, status="crashed", seconds=seconds, error_kind="crashed")
    else:
        service.metrics.record_run(job, status=run[0], seconds=seconds, stats=run[1])


def score() -> None:
    """Score what is unscored, a batch per transaction, stopping between batches on shutdown.

    A run scores at most `Service.score_pass_limit` posts, then aggregates what it scored (so the
    trends move during a long back-fill too) and goes on with the next pass until nothing is left.
    With `score_interval = "continuous"` the job is due every few seconds, and a look that finds
    nothing to score leaves no row in job_runs (one every few seconds would bury the others).
    A pass that finds no new posts re-scores up to HISTORY_PASS posts another model scored (after the
    configured model changed), newest first, so the trend and the alerts' baseline come back under the
    new model while new posts wait at most one such pass.
    """
    service = current()
    with service.job_lock("score") as got:
        if not got:
            return
        from murmur.sentiment.errors import ModelError
        from murmur.store.runs import finish_run, start_run

        try:
            service.app.routes()
        except ModelError as err:
            # The crawl goes on; posts wait unscored until the model is fixed. Said (and recorded) once,
            # not per run.
            if service.model_error != str(err):
                logger.error("score: cannot load the model (%s); posts stay unscored until that is fixed", err)
                service.model_error = str(err)
                with service.connect() as conn:
                    finish_run(conn, start_run(conn, "score"), status="failed", error=f"ModelError: {err}")
                service.metrics.record_run("score", status="failed", seconds=0.0, error_kind="ModelError")
            return
        continuous = service.settings.schedule.score_interval == 0
        with service.connect() as conn:
            while not service.stopping.is_set():
                try:
                    outcome = service.app.score(conn, limit=service.score_pass_limit, stop=service.stopping,
                                                keep_idle_run=not continuous, history=HISTORY_PASS)
                except Exception as err:  # recorded as failed by the App; the service goes on
                    logger.exception("score: failed")
                    service.metrics.record_run("score", status="failed", seconds=0.0, error_kind=type(err).__name__)
                    return
                if outcome is None:  # continuous, and nothing to score: no row, no metric
                    return
                run = outcome.run
                service.metrics.record_run("score", status=outcome.status, seconds=run.seconds,
                                           stats={"scored": run.scored})
                if not run.scored:
                    return
                logger.info("score: %d posts in %.1fs", run.scored, run.seconds)
                # Aggregation follows every scoring run; it waits for one already running (here or in
                # another service) to finish, since that one may have started before these scores.
                _aggregate(service, wait=service.aggregate_wait)
                # A pass that re-scored history goes on: the next one looks for new posts first.
                if run.interrupted or (run.scored < service.score_pass_limit and not outcome.rescored):
                    return


def aggregate() -> None:
    """Fold new scores into the trend buckets (on its interval: scores other workers wrote)."""
    _aggregate(current(), wait=0.0)


def _aggregate(service: Service, *, wait: float) -> None:
    """One aggregation run, under the job's lock (waiting up to `wait` seconds for it)."""
    with service.job_lock("aggregate", wait=wait) as got:
        if not got:
            return
        from murmur.alerts import deliver_in_background

        def deliver(new_alerts: int) -> None:
            deliver_in_background(service.database_url, service.settings.alerts, new_alerts=new_alerts,
                                  stop=service.stopping)

        with service.connect() as conn:
            started = time.monotonic()
            try:
                outcome = service.app.aggregate(conn, on_new_alerts=deliver)
            except Exception as err:  # recorded as failed by the App; the service goes on
                logger.exception("aggregate: failed")
                service.metrics.record_run("aggregate", status="failed", seconds=time.monotonic() - started,
                                           error_kind=type(err).__name__)
                return
            service.metrics.record_run("aggregate", status=outcome.status, seconds=time.monotonic() - started,
                                       error_kind="detector" if outcome.error else None)
            result = outcome.result
            if result.scores:
                logger.info("aggregate: %d scores into %d buckets", result.scores, result.buckets)
                _log_recent_trend(conn)


def _log_recent_trend(conn: psycopg.Connection) -> None:
    """The service's report: the last three days' trend, logged whenever new scores came in."""
    from datetime import UTC, datetime, timedelta

    from murmur.reports.report import render_trend
    from murmur.store.trends import trend

    rows = trend(conn, by="day", since=datetime.now(UTC) - timedelta(days=3))
    if rows:
        logger.info("trend of the last three days (murmur report for more):\n%s", render_trend(rows, "table"))
