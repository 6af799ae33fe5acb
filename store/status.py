"""What the service has been doing, read back from the database: the queries behind `murmur status`,
the service's restart decisions and its `/metrics` gauges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


def latest_runs(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Job name -> its latest run (id, started_at, finished_at, status, stats, error)."""
    cur = conn.execute(
        """
        SELECT DISTINCT ON (job) job, id, started_at, finished_at, status, stats, error
        FROM job_runs ORDER BY job, started_at DESC, id DESC
        """
    )
    names = [d.name for d in cur.description or []]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def last_successes(conn: psycopg.Connection, *, statuses: Sequence[str] = ("ok",)) -> dict[str, datetime]:
    """Job name -> when its latest successful run finished (`statuses` count as success: the scheduler also
    counts `partial`, a run that did its work but for some queries, as one not to repeat at once)."""
    rows = conn.execute(
        "SELECT job, max(finished_at) FROM job_runs WHERE status = ANY(%s) AND finished_at IS NOT NULL GROUP BY job",
        (list(statuses),),
    ).fetchall()
    return {job: finished for job, finished in rows}


def posts_collected(conn: psycopg.Connection, hours: float = 24.0) -> dict[str, int]:
    """Source -> posts first stored in the last `hours`."""
    rows = conn.execute(
        "SELECT source, count(*) FROM posts WHERE collected_at > now() - make_interval(secs => %s) GROUP BY source",
        (hours * 3600,),
    ).fetchall()
    return {source: int(n) for source, n in rows}


def posts_by_source(conn: psycopg.Connection) -> dict[str, int]:
    """Source -> posts stored."""
    return {source: int(n) for source, n in conn.execute("SELECT source, count(*) FROM posts GROUP BY source")}


def scoring_models(conn: psycopg.Connection) -> list[str]:
    """The models the latest score run that named them used (its stats' "models")."""
    row = conn.execute(
        """
        SELECT stats->'models' FROM job_runs
        WHERE job = 'score' AND jsonb_typeof(stats->'models') = 'array'
        ORDER BY started_at DESC, id DESC LIMIT 1
        """
    ).fetchone()
    return [str(m) for m in row[0]] if row else []


def unscored_backlog(conn: psycopg.Connection, models: Sequence[str] | None = None) -> int:
    """Posts waiting to be scored: none of `models` (default: those of the latest score run; none
    known: any model) has scored them, and none was set aside as in a language no model covers."""
    models = list(models) if models is not None else scoring_models(conn)
    row = conn.execute(
        """
        SELECT count(*) FROM posts p
        WHERE NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id
                          AND (cardinality(%(models)s::text[]) = 0 OR s.model = ANY (%(models)s)))
          AND NOT EXISTS (SELECT 1 FROM unscored_posts u WHERE u.post_id = p.id)
        """,
        {"models": models},
    ).fetchone()
    return int(row[0]) if row else 0


def scoring_throughput(conn: psycopg.Connection, runs: int = 20) -> dict[str, Any]:
    """Posts per second over the latest `runs` score runs that scored anything (from their stats)."""
    row = conn.execute(
        """
        SELECT count(*), coalesce(sum((stats->>'scored')::bigint), 0),
               coalesce(sum((stats->>'seconds')::double precision), 0), max(finished_at)
        FROM (SELECT stats, finished_at FROM job_runs
              WHERE job = 'score' AND status IN ('ok', 'interrupted')
                AND (stats->>'scored')::bigint > 0 AND (stats->>'seconds')::double precision > 0
              ORDER BY started_at DESC, id DESC LIMIT %s) recent
        """,
        (runs,),
    ).fetchone()
    assert row is not None
    n, posts, seconds, last = int(row[0]), int(row[1]), float(row[2]), row[3]
    return {"runs": n, "posts": posts, "seconds": round(seconds, 2),
            "posts_per_second": round(posts / seconds, 1) if seconds else None, "last_at": last}


def next_run_times(conn: psycopg.Connection) -> dict[str, datetime | None]:
    """Job -> when it runs next (None: paused), as the service last recorded it (`record_next_runs`);
    empty when no service has recorded its jobs on this database."""
    return dict(conn.execute("SELECT job, next_run_at FROM job_schedule").fetchall())


def record_next_runs(
    conn: psycopg.Connection,
    runs: Mapping[str, tuple[datetime | None, float]],
    *,
    drop_others: bool = False,
) -> None:
    """Record when each job runs next (None: paused) and its interval in seconds, for `murmur status`;
    `drop_others` also forgets the jobs not named (no longer scheduled). Commits."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO job_schedule (job, next_run_at, interval_seconds, updated_at)
                VALUES (%s, %s, %s, now())
                ON CONFLICT (job) DO UPDATE SET next_run_at = EXCLUDED.next_run_at,
                    interval_seconds = EXCLUDED.interval_seconds, updated_at = EXCLUDED.updated_at
                """,
                [(job, when, float(seconds)) for job, (when, seconds) in runs.items()],
            )
        if drop_others:
            conn.execute("DELETE FROM job_schedule WHERE job <> ALL (%s::text[])", (list(runs),))


def table_counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(posts, sentiment scores, aggregate rows) stored."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM sentiment_scores), "
        "(SELECT count(*) FROM aggregates)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def stream_health(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Stream source -> its figures from the `source_health` view (migration 0008): connected_since (None
    when no consumer is connected), events_per_second, matched_posts, lag_seconds, reconnects_24h,
    last_run_at, last_status, last_error, and `running` (a consumer holds the stream's lock); from the
    `stream:<source>` job_runs rows the consumer keeps up to date. A row a killed consumer left 'running'
    is not connected: no process holds its lock."""
    from murmur.store.locks import job_lock_key

    cur = conn.execute(
        """
        SELECT source, connected_since, events_per_second, matched_posts, lag_seconds, reconnects_24h,
               last_run_at, last_status, last_error
        FROM source_health WHERE kind = 'stream' ORDER BY source
        """
    )
    names = [d.name for d in cur.description or []]
    health = {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in cur.fetchall()}
    for source, h in health.items():
        # A bigint advisory lock below 2**32 shows in pg_locks as classid 0, objid the key, objsubid 1.
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 0"
            " AND objid::bigint = %s AND objsubid = 1 AND granted)",
            (job_lock_key(f"stream:{source}"),),
        ).fetchone()
        h["running"] = bool(row and row[0])
        if not h["running"]:
            h["connected_since"] = None
    return health
