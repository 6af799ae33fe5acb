"""`job_runs`: what each crawl, score and aggregate run did."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

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
    """Record how a run ended: status 'ok', 'failed' or 'interrupted', with its figures."""
    with conn.transaction():
        conn.execute(
            "UPDATE job_runs SET finished_at = now(), status = %s, stats = %s, error = %s WHERE id = %s",
            (status, Jsonb(_jsonable(stats or {})), error, run_id),
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
