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
    with service.job_lock(f"crawl:{source}") as got:
        if not got:
            logger.info("crawl %s: still running elsewhere; skipped this turn", source)
            return
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


def score() -> None:
    """Score what is unscored, a batch per transaction, stopping between batches on shutdown."""
    service = current()
    with service.job_lock("score") as got:
        if not got:
            return
        from murmur.sentiment.errors import ModelError
        from murmur.sentiment.worker import score_routes
        from murmur.store.runs import finish_run, start_run

        try:
            routes = service.routes()
        except ModelError as err:
            # The crawl goes on; posts wait unscored until the model is fixed. Said once, not per run.
            if service.model_error != str(err):
                logger.error("score: cannot load the model (%s); posts stay unscored until that is fixed", err)
                service.model_error = str(err)
            return
        with service.connect() as conn:
            run_id = start_run(conn, "score")
            try:
                run, unscored = score_routes(conn, routes, stop=service.stopping)
            except Exception as err:
                logger.exception("score: failed")
                finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
                return
            status = "interrupted" if run.interrupted else "ok"
            finish_run(conn, run_id, status=status,
                       stats={"scored": run.scored, "seconds": round(run.seconds, 2), "unscored": unscored})
            if run.scored:
                logger.info("score: %d posts in %.1fs", run.scored, run.seconds)


def aggregate() -> None:
    """Fold new scores into the trend buckets."""
    service = current()
    with service.job_lock("aggregate") as got:
        if not got:
            return
        from murmur.store.runs import finish_run, start_run
        from murmur.store.trends import aggregate as fold_scores

        with service.connect() as conn:
            run_id = start_run(conn, "aggregate")
            try:
                result = fold_scores(conn)
            except Exception as err:
                logger.exception("aggregate: failed")
                finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
                return
            finish_run(conn, run_id, status="ok", stats=result.__dict__)
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
