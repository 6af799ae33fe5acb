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
    with service.connect() as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM job_runs WHERE job = %s", (job,)).fetchone()
    return int(row[0]) if row else 0


def _count_crawl(service: Service, job: str, before: int, seconds: float) -> None:
    """Count the run the crawl process recorded (posts, errors by kind) in the service's metrics."""
    with service.connect() as conn:
        row = conn.execute(
            "SELECT status, stats FROM job_runs WHERE job = %s AND id > %s ORDER BY id DESC LIMIT 1", (job, before)
        ).fetchone()
    if row is None or row[0] == "running":  # the process died before it could record how the run ended
        service.metrics.record_run(job, status="crashed", seconds=seconds, error_kind="crashed")
    else:
        service.metrics.record_run(job, status=row[0], seconds=seconds, stats=row[1])


def score() -> None:
    """Score what is unscored, a batch per transaction, stopping between batches on shutdown.

    A run scores at most `Service.score_pass_limit` posts, then aggregates what it scored (so the
    trends move during a long back-fill too) and goes on with the next pass until nothing is left.
    With `score_interval = "continuous"` the job is due every few seconds, and a look that finds
    nothing to score leaves no row in job_runs (one every few seconds would bury the others).
    """
    service = current()
    with service.job_lock("score") as got:
        if not got:
            return
        from murmur.sentiment.errors import ModelError
        from murmur.sentiment.worker import score_routes
        from murmur.store.runs import discard_run, finish_run, start_run

        try:
            routes = service.routes()
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
                run_id = start_run(conn, "score")
                try:
                    run, unscored = score_routes(conn, routes, limit=service.score_pass_limit, stop=service.stopping)
                except Exception as err:
                    logger.exception("score: failed")
                    finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
                    service.metrics.record_run("score", status="failed", seconds=0.0, error_kind=type(err).__name__)
                    return
                status = "interrupted" if run.interrupted else "ok"
                if continuous and not run.scored and not run.interrupted:
                    discard_run(conn, run_id)
                    return
                finish_run(conn, run_id, status=status,
                           stats={"scored": run.scored, "batches": run.batches, "seconds": round(run.seconds, 2),
                                  "unscored": unscored, "models": [r.model_id for r in routes]})
                service.metrics.record_run("score", status=status, seconds=run.seconds, stats={"scored": run.scored})
                if not run.scored:
                    return
                logger.info("score: %d posts in %.1fs", run.scored, run.seconds)
                # Aggregation follows every scoring run; it waits for one already running (here or in
                # another service) to finish, since that one may have started before these scores.
                _aggregate(service, wait=service.aggregate_wait)
                if run.interrupted or run.scored < service.score_pass_limit:
                    return


def aggregate() -> None:
    """Fold new scores into the trend buckets (on its interval: scores other workers wrote)."""
    _aggregate(current(), wait=0.0)


def _aggregate(service: Service, *, wait: float) -> None:
    """One aggregation run, under the job's lock (waiting up to `wait` seconds for it)."""
    with service.job_lock("aggregate", wait=wait) as got:
        if not got:
            return
        from murmur.alerts import deliver_in_background, detector
        from murmur.store.runs import finish_run, start_run
        from murmur.store.trends import aggregate as fold_scores

        with service.connect() as conn:
            run_id = start_run(conn, "aggregate")
            started = time.monotonic()
            try:
                result = fold_scores(conn, detect=detector(service.settings.alerts))
            except Exception as err:
                logger.exception("aggregate: failed")
                finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
                service.metrics.record_run("aggregate", status="failed", seconds=time.monotonic() - started,
                                           error_kind=type(err).__name__)
                return
            finish_run(conn, run_id, status="ok", stats=result.__dict__)
            service.metrics.record_run("aggregate", status="ok", seconds=time.monotonic() - started)
            deliver_in_background(service.database_url, service.settings.alerts, new_alerts=result.alerts,
                                  stop=service.stopping)
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
