"""`job_runs`: what each crawl, score and aggregate run did."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from murmur.redact import active, redact, redact_tree

if TYPE_CHECKING:
    import psycopg


def start_run(conn: psycopg.Connection, job: str) -> int:
    """Record that `job` started; commits at once so the row is visible while the job runs."""
    with conn.transaction():
        row = conn.execute("INSERT INTO job_runs (job) VALUES (%s) RETURNING id", (job,)).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(
    conn: psycopg.Connection,
    run_id: int,
    *,
    status: str,
    stats: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record how a run ended: status 'ok', 'failed' or 'interrupted', with its figures.

    The error and the stats are masked with the secrets `murmur.redact.install` registered: an error
    often quotes a platform's answer, and a platform may echo what it was sent (a password)."""
    secrets = active()
    with conn.transaction():
        conn.execute(
            "UPDATE job_runs SET finished_at = now(), status = %s, stats = %s, error = %s WHERE id = %s",
            (status, Jsonb(redact_tree(_jsonable(stats or {}), secrets)),
             redact(error, secrets) if error else error, run_id),
        )


def discard_run(conn: psycopg.Connection, run_id: int) -> None:
    """Remove a run that turned out to have nothing to do (the continuous scorer's idle looks)."""
    with conn.transaction():
        conn.execute("DELETE FROM job_runs WHERE id = %s", (run_id,))


def recent_runs(conn: psycopg.Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first."""
    cur = conn.execute(
        """
        SELECT id, job, started_at, finished_at, status, stats, error
        FROM job_runs ORDER BY started_at DESC, id DESC LIMIT %s
        """,
        (limit,),
    )
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _jsonable(value: Any) -> Any:
    """Scrapy stats hold datetimes and the like; keep numbers and strings, stringify the rest."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def latest_run_id(conn: psycopg.Connection, job: str) -> int:
    """The id of `job`'s newest run (0 when it never ran)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM job_runs WHERE job = %s", (job,)).fetchone()
    return int(row[0]) if row else 0


def run_after(conn: psycopg.Connection, job: str, after_id: int) -> tuple[str, dict[str, Any]] | None:
    """(status, stats) of `job`'s newest run with an id above `after_id` (one another process recorded)."""
    row = conn.execute(
        "SELECT status, stats FROM job_runs WHERE job = %s AND id > %s ORDER BY id DESC LIMIT 1", (job, after_id)
    ).fetchone()
    return (str(row[0]), dict(row[1] or {})) if row else None
