"""`murmur status`: what the service did and will do, per job, read from the database alone (no
service needs to be running: it records when each job runs next in `job_schedule`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.crawler.registry import SOURCES, STREAM
from murmur.store.rescore import history_backlog
from murmur.store.runs import recent_runs
from murmur.store.status import (
    latest_runs,
    next_run_times,
    posts_collected,
    scoring_models,
    scoring_throughput,
    stream_health,
    table_counts,
    unscored_backlog,
)

if TYPE_CHECKING:
    import psycopg

    from murmur.config import Settings

NOT_SCHEDULED = "not scheduled"
CONTINUOUS = "continuous"  # a stream source: the service keeps its consumer running
IMPORT_ONLY = "import only"  # no spider, no stream: its posts arrive with `murmur import`


def gather(conn: psycopg.Connection, settings: Settings, *, limit: int = 10) -> dict[str, Any]:
    """Everything `murmur status` shows, as plain data (the JSON output)."""
    counts = table_counts(conn)
    latest = latest_runs(conn)
    day = posts_collected(conn, hours=24)
    scheduled = next_run_times(conn)
    models = scoring_models(conn)
    enabled = {s.name for s in settings.enabled_sources()}
    crawled = {job.removeprefix("crawl:") for job in latest if job.startswith("crawl:")}
    health = stream_health(conn)
    streams = set(health) | {s for s in enabled if s in SOURCES and STREAM in SOURCES[s].capabilities}
    jobs = []
    for source in sorted(enabled | crawled | streams | set(day)):
        job = f"{'stream' if source in streams else 'crawl'}:{source}"
        entry = {"job": job, "source": source, "enabled": source in enabled, "last_run": _run(latest.get(job)),
                 "posts_24h": day.get(source, 0), "next_run": _next(scheduled, job), **_declared(settings, source)}
        if source in streams:
            entry["next_run"] = CONTINUOUS if scheduled and source in enabled else NOT_SCHEDULED
            entry["stream"] = _stream(health.get(source))
        elif source in SOURCES and SOURCES[source].is_import_only:
            entry["job"], entry["next_run"], entry["import_only"] = f"import:{source}", IMPORT_ONLY, True
        jobs.append(entry)
    for job in ("score", "aggregate"):
        jobs.append({"job": job, "last_run": _run(latest.get(job)), "next_run": _next(scheduled, job)})
    return {
        "posts": counts[0], "scores": counts[1], "aggregate_rows": counts[2],
        # history_posts: of the backlog, posts another model scored (after a model change), which the service
        # re-scores when no new posts wait, and `murmur score --all-posts` at once
        "backlog": {"unscored_posts": unscored_backlog(conn, models), "models": models,
                    "history_posts": history_backlog(conn, models)},
        "scorer": scoring_throughput(conn),
        "service": "scheduled" if scheduled else "never ran on this database",
        "jobs": jobs,
        "recent_runs": [{**(_run(r) or {}), "job": r["job"]} for r in recent_runs(conn, limit)],
    }


def _declared(settings: Settings, name: str) -> dict[str, Any]:
    """What the source registry says of a source: how it collects, which credential variables are unset, and
    what its platform allows today (`policy`, where the registry says)."""
    entry = SOURCES.get(name)
    if entry is None:  # a source a newer murmur crawled into this database
        return {}
    configured = settings.sources.get(name)
    have = configured.credentials if configured is not None else {}
    declared: dict[str, Any] = {"collects": sorted(entry.capabilities),
                                "credentials_unset": [var for key, var in entry.credentials.items() if key not in have]}
    if entry.policy:  # what the platform allows today (docs/platforms.md)
        declared["policy"] = entry.policy
    return declared


def _stream(h: dict[str, Any] | None) -> dict[str, Any]:
    """A stream's figures (source_health): connected since (None: no consumer runs), events/s, matched
    posts, lag behind real time, reconnects in the last 24 hours."""
    h = h or {}
    return {"connected_since": h.get("connected_since"), "events_per_second": h.get("events_per_second"),
            "matched_posts": h.get("matched_posts"), "lag_seconds": h.get("lag_seconds"),
            "reconnects_24h": h.get("reconnects_24h") or 0}


def _run(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    stats = row.get("stats") or {}
    finished = row["finished_at"]
    return {
        "started_at": row["started_at"], "finished_at": finished, "status": row["status"],
        "seconds": round((finished - row["started_at"]).total_seconds(), 1) if finished else None,
        "new_posts": stats.get("murmur/posts/new"), "scored": stats.get("scored"), "error": row["error"],
    }


def _next(scheduled: dict[str, datetime | None], job: str) -> datetime | str:
    if job not in scheduled:
        return NOT_SCHEDULED
    return scheduled[job] or "paused"


def render(status: dict[str, Any], fmt: str, *, database: str) -> str:
    """The status as a table for people or JSON for programs."""
    if fmt == "json":
        return json.dumps({"database": database, **status}, default=_json_value, ensure_ascii=False, indent=2) + "\n"
    lines = [f"database: {database}",
             f"posts: {status['posts']}  scores: {status['scores']}  aggregate rows: {status['aggregate_rows']}"]
    backlog, scorer = status["backlog"], status["scorer"]
    models = f" for {', '.join(backlog['models'])}" if backlog["models"] else ""
    rate = (f"{scorer['posts_per_second']:g} posts/s ({scorer['posts']} posts over the latest {scorer['runs']} runs "
            "that scored any)" if scorer["posts_per_second"] else "no scoring run yet")
    history = backlog.get("history_posts", 0)
    history = f" ({history} of them history to re-score: murmur score --all-posts)" if history else ""
    lines.append(f"unscored backlog: {backlog['unscored_posts']} posts{models}{history}   scorer: {rate}")
    if status["service"] != "scheduled":
        lines.append("service: `murmur serve` has never run on this database, so nothing is scheduled")
    lines.append("")
    header = ("job", "last run", "result", "took", "new/scored", "posts 24h", "next run")
    rows = [header]
    for job in status["jobs"]:
        run = job["last_run"] or {}
        name = job["job"] + ("" if job.get("enabled", True) else " (disabled)")
        rows.append((
            name,
            _when(run.get("started_at")) if run else "" if job.get("import_only") else "never",
            run.get("status", ""),
            f"{run['seconds']:.1f}s" if run.get("seconds") is not None else ("running" if run else ""),
            _count(run.get("new_posts") if job["job"].startswith("crawl:")
                   else job["stream"]["matched_posts"] if "stream" in job else run.get("scored")),
            str(job["posts_24h"]) if "posts_24h" in job else "",
            _when(job["next_run"]),
        ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    right = {3, 4, 5}
    for i, row in enumerate(rows):
        cells = [str(c).rjust(widths[j]) if j in right else str(c).ljust(widths[j]) for j, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for job in status["jobs"]:
        if "stream" in job:
            lines.append(_stream_line(job["job"], job["stream"]))
    unset = [(j["job"], j["credentials_unset"]) for j in status["jobs"]
             if j.get("enabled") and j.get("credentials_unset")]
    for job, variables in unset:
        lines.append(f"{job}: credentials not set: {', '.join(variables)} (README: Sources)")
    for job in status["jobs"]:
        if job.get("policy"):
            lines.append(f"{job['job']}: {job['policy']}")
    errors = [(j["job"], j["last_run"]["error"]) for j in status["jobs"] if j["last_run"] and j["last_run"]["error"]]
    for job, error in errors:
        lines.append(f"{job}: {error}")
    if status["recent_runs"]:
        lines += ["", "latest runs:"]
        for r in status["recent_runs"]:
            took = f"{r['seconds']:.1f}s" if r["seconds"] is not None else "running"
            lines.append(f"{_when(r['started_at'])}  {r['job']:<16} {r['status']:<11} {took:>8}  "
                         f"{r['error'] or ''}".rstrip())
    return "\n".join(lines) + "\n"


def _stream_line(job: str, s: dict[str, Any]) -> str:
    if s["connected_since"] is None:
        return f"{job}: not connected; {s['reconnects_24h']} reconnects in 24h"
    rate = f"{s['events_per_second']:g} events/s" if s["events_per_second"] is not None else "rate unknown"
    lag = f"lag {s['lag_seconds']:.1f}s" if s["lag_seconds"] is not None else "lag unknown"
    return (f"{job}: connected since {_when(s['connected_since'])}, {rate}, {s['matched_posts'] or 0} matched posts, "
            f"{lag}, {s['reconnects_24h']} reconnects in 24h")


def _when(value: datetime | str | None) -> str:
    if isinstance(value, datetime):
        return f"{value.astimezone():%Y-%m-%d %H:%M:%S}"
    return value or ""


def _count(value: Any) -> str:
    return str(value) if isinstance(value, int) else ""


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
