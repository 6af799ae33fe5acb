"""The service's Prometheus metrics.

Two kinds, on purpose:
- counters and a histogram of what *this* service did (crawls it ran, posts it scored, how long
  each job took): Prometheus computes rates from them, and they start at zero with the process;
- gauges read from PostgreSQL at each scrape (posts stored per source, the unscored backlog, the
  scorer's recent rate, each job's last success): true of the whole deployment, whichever
  instance (or `murmur crawl` by hand) did the work.

The registry is the service's own, not prometheus-client's global one, so a test can build two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from murmur.store.status import last_successes, posts_by_source, scoring_throughput, stream_health, unscored_backlog

logger = logging.getLogger(__name__)

# Job durations span a sub-second aggregation to an hour-long back-fill crawl.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
ERROR_PREFIX = "murmur/errors/"  # crawl stats keys: murmur/errors/<kind>


def probe_connection(database_url: str) -> psycopg.Connection:
    """A short-lived connection for health checks and scrapes: a database that hangs fails in
    seconds instead of holding the HTTP request."""
    conn = psycopg.connect(database_url, connect_timeout=3, autocommit=True, application_name="murmur[probe]")
    conn.execute("SET statement_timeout = '5s'")
    return conn


class Metrics:
    """The counters the jobs update, and the registry `/metrics` serves."""

    def __init__(self, database_url: str, *, sources: Iterable[str] = (), streams: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        self.posts_collected = Counter(
            "murmur_posts_collected", "New posts stored by the crawls this service ran, per source.",
            ["source"], registry=self.registry,
        )
        self.posts_scored = Counter(
            "murmur_posts_scored", "Posts this service scored.", registry=self.registry,
        )
        self.errors = Counter(
            "murmur_errors",
            "Errors by job and kind: a crawl's own counts (unreachable, timeout, http_503, malformed, ...), "
            "a failed run's exception type, 'crashed' for a crawl process that died without recording its run.",
            ["job", "kind"], registry=self.registry,
        )
        self.job_runs = Counter(
            "murmur_job_runs", "Job runs this service made, by job and result.", ["job", "status"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "murmur_job_duration_seconds", "How long each job run took.", ["job"],
            buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.stream_restarts = Counter(
            "murmur_stream_restarts", "Stream consumer processes this service started again after they exited "
            "(crashed, or gave up on a connection), per source.", ["source"], registry=self.registry,
        )
        for source in sources:  # every source shows, at 0, before its first crawl
            self.posts_collected.labels(source=source)
        for source in streams:
            self.stream_restarts.labels(source=source)
        self.registry.register(DatabaseCollector(database_url))

    def record_run(self, job: str, *, status: str, seconds: float, stats: dict[str, Any] | None = None,
                   error_kind: str | None = None) -> None:
        """Count one finished run: its result, duration, and (for crawls) posts and errors by kind."""
        stats = stats or {}
        self.job_runs.labels(job=job, status=status).inc()
        self.job_duration.labels(job=job).observe(seconds)
        if job.startswith("crawl:"):
            self.posts_collected.labels(source=job.removeprefix("crawl:")).inc(_number(stats.get("murmur/posts/new")))
            for key, value in stats.items():
                if key.startswith(ERROR_PREFIX) and _number(value) > 0:
                    self.errors.labels(job=job, kind=key.removeprefix(ERROR_PREFIX)).inc(_number(value))
        elif job == "score":
            self.posts_scored.inc(_number(stats.get("scored")))
        if error_kind:
            self.errors.labels(job=job, kind=error_kind).inc()

    def record_stream_exit(self, source: str, *, code: int, seconds: float, restarting: bool) -> None:
        """Count a stream consumer process that ended: a restart, unless the service is stopping it."""
        job = f"stream:{source}"
        self.job_duration.labels(job=job).observe(seconds)
        if restarting:
            self.stream_restarts.labels(source=source).inc()
            self.errors.labels(job=job, kind="exited" if code >= 0 else "killed").inc()


class DatabaseCollector(Collector):
    """Gauges read from PostgreSQL at each scrape; `murmur_database_up` 0 (and nothing else) when it
    does not answer."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("murmur_database_up", "1 when PostgreSQL answered this scrape.")
        try:
            with probe_connection(self.database_url) as conn:
                stored = posts_by_source(conn)
                backlog = unscored_backlog(conn)
                rate = scoring_throughput(conn)
                successes = last_successes(conn, statuses=("ok", "partial"))  # partial: it collected
                streams = stream_health(conn)
        except psycopg.Error as err:
            logger.warning("metrics: PostgreSQL did not answer (%s)", first_line(err))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        posts = GaugeMetricFamily("murmur_posts", "Posts stored, per source.", labels=["source"])
        for source, n in sorted(stored.items()):
            posts.add_metric([source], n)
        yield posts
        yield GaugeMetricFamily("murmur_unscored_posts", "Posts waiting to be scored (the backlog).", value=backlog)
        yield GaugeMetricFamily(
            "murmur_scoring_rate_posts_per_second", "Posts per second over the latest score runs that scored any.",
            value=rate["posts_per_second"] or 0.0,
        )
        last = GaugeMetricFamily("murmur_job_last_success_timestamp_seconds",
                                 "When each job last finished successfully, or partly (Unix time).", labels=["job"])
        for job, finished in sorted(successes.items()):
            last.add_metric([job], finished.timestamp())
        yield last
        yield from _stream_gauges(streams)

    def describe(self) -> Iterable[Any]:
        return []  # dynamic: never queried at registration


def _stream_gauges(streams: dict[str, dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    """Per stream source, from its consumer's job_runs row: connected or not, since when, how fast, how far
    behind real time, how many matched posts and reconnects."""
    connected = GaugeMetricFamily("murmur_stream_connected", "1 while a consumer of the stream source runs.",
                                  labels=["source"])
    since = GaugeMetricFamily("murmur_stream_connected_since_timestamp_seconds",
                              "When the running consumer of the stream source started (Unix time).", labels=["source"])
    rate = GaugeMetricFamily("murmur_stream_events_per_second", "Events the latest consumer read per second.",
                             labels=["source"])
    matched = GaugeMetricFamily("murmur_stream_matched_posts", "Posts matching a term the latest consumer stored.",
                                labels=["source"])
    lag = GaugeMetricFamily("murmur_stream_lag_seconds", "How far behind real time the latest event read was.",
                            labels=["source"])
    reconnects = GaugeMetricFamily("murmur_stream_reconnects_24h", "Reconnections in the last 24 hours "
                                   "(inside each consumer run, and each restart).", labels=["source"])
    for source, h in sorted(streams.items()):
        connected.add_metric([source], 1 if h["connected_since"] is not None else 0)
        if h["connected_since"] is not None:
            since.add_metric([source], h["connected_since"].timestamp())
        for family, key in ((rate, "events_per_second"), (matched, "matched_posts"), (lag, "lag_seconds"),
                            (reconnects, "reconnects_24h")):
            if h[key] is not None:
                family.add_metric([source], float(h[key]))
    yield from (connected, since, rate, matched, lag, reconnects)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
