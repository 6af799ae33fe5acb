"""The service an operator leaves alone: restarts that do not repeat fresh runs, two services on one
database that never run a job twice at once, /healthz and /metrics, `murmur status`, continuous scoring."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from murmur.cli import main
from murmur.config import ConfigError, load_settings
from murmur.scheduler import jobs
from murmur.scheduler.health import HealthServer
from murmur.scheduler.service import Service, job_lock_key
from murmur.store.db import connect
from murmur.store.migrate import migrate
from tests.conftest import REPO, murmur_env, only_sources
from tests.fakemastodon import FakeMastodon as ReplayServer
from tests.fakemastodon import generate_statuses

pytestmark = pytest.mark.slow

NO_MODEL = "/nonexistent/model"  # a service that must not spend seconds loading the real one


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def scalar(conn: psycopg.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    conn.rollback()  # a fresh snapshot each poll
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def write_config(path: Path, body: str, *sources: str) -> Path:
    path.write_text(body + only_sources(*sources))
    return path


def start_service(config: Path, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "murmur", "--config", str(config), "serve"],
        env=murmur_env(db_url), cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def stop(service: subprocess.Popen[bytes], log: Path) -> None:
    service.send_signal(signal.SIGTERM)
    try:
        assert service.wait(timeout=90) == 0, log.read_text()
    finally:
        service.kill()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text `text`."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in /metrics")


# --- restarts ---------------------------------------------------------------------------------


def scheduled(service: Service) -> dict[str, datetime]:
    return {job.id: job.next_run_time for job in service.scheduler.get_jobs()}


def near(a: datetime, b: datetime) -> bool:
    return abs((a - b).total_seconds()) < 0.01  # the job store keeps times as float seconds


@pytest.fixture
def hourly(tmp_path: Path) -> Any:
    path = write_config(tmp_path / "murmur.toml", """
terms = ["RedNote"]
[sources.mastodon]
instances = ["http://127.0.0.1:9"]
interval = "1h"
[schedule]
score_interval = "1h"
aggregate_interval = "1h"
""", "mastodon")
    return load_settings(path, environ={})


def lifetime(settings: Any, db_url: str) -> dict[str, datetime]:
    """Register the jobs as `murmur serve` does at start (the scheduler stays paused), then stop."""
    service = Service(settings, db_url)
    try:
        service.schedule()
        return scheduled(service)
    finally:
        service.scheduler.shutdown(wait=False)
        jobs.bind(None)


def test_after_a_restart_a_job_that_just_succeeded_waits_for_its_next_slot(
        hourly: Any, db_url: str, conn: psycopg.Connection) -> None:
    first = lifetime(hourly, db_url)
    start = datetime.now(UTC)
    assert set(first) == {"crawl:mastodon", "score", "aggregate"}
    assert all(abs((t - start).total_seconds()) < 5 for t in first.values())  # a fresh database: all at once

    # The first life ran the crawl ten minutes ago and scored two hours ago; then the process died
    # before its job store noted the crawl's next time.
    ten_min_ago, two_hours_ago = start - timedelta(minutes=10), start - timedelta(hours=2)
    conn.execute("INSERT INTO job_runs (job, started_at, finished_at, status) VALUES "
                 "('crawl:mastodon', %s, %s, 'ok'), ('score', %s, %s, 'ok')",
                 (ten_min_ago, ten_min_ago, two_hours_ago, two_hours_ago))
    conn.commit()
    second = lifetime(hourly, db_url)
    assert near(second["crawl:mastodon"], ten_min_ago + timedelta(hours=1))  # its slot, 50 minutes away
    assert second["score"] <= datetime.now(UTC)  # not recent: due now, as kept
    assert second["aggregate"] <= datetime.now(UTC)

    # A lost job store (or a changed interval) gets the same answer, not "first run now".
    conn.execute("DROP TABLE apscheduler_jobs")
    conn.commit()
    third = lifetime(hourly, db_url)
    assert near(third["crawl:mastodon"], ten_min_ago + timedelta(hours=1))
    assert third["score"] <= datetime.now(UTC) + timedelta(seconds=1)


def test_a_run_left_running_by_a_dead_process_reruns_at_once_but_a_live_one_does_not(
        hourly: Any, db_url: str, conn: psycopg.Connection) -> None:
    lifetime(hourly, db_url)
    recently = datetime.now(UTC) - timedelta(minutes=5)
    conn.execute("INSERT INTO job_runs (job, started_at, finished_at, status) VALUES "
                 "('crawl:mastodon', %s, %s, 'ok'), ('aggregate', %s, %s, 'ok')",
                 (recently - timedelta(minutes=1), recently, recently - timedelta(minutes=1), recently))
    conn.execute("INSERT INTO job_runs (job, started_at) VALUES ('crawl:mastodon', %s), ('aggregate', %s)",
                 (recently, recently))  # both 'running'; only the aggregate's lock is held, by a live process
    conn.commit()
    with connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (job_lock_key("aggregate"),))
        after = lifetime(hourly, db_url)
    assert after["crawl:mastodon"] <= datetime.now(UTC)  # its process died mid-run: resume now
    assert near(after["aggregate"], recently + timedelta(hours=1))  # running elsewhere: its own slot


# --- two services, one database -----------------------------------------------------------------


def overlaps(conn: psycopg.Connection, job: str) -> list[tuple[Any, ...]]:
    runs = conn.execute("SELECT id, started_at, finished_at FROM job_runs WHERE job = %s ORDER BY started_at, id",
                        (job,)).fetchall()
    assert all(finished is not None for _, _, finished in runs), runs
    return [(a, b) for a, b in zip(runs, runs[1:], strict=False) if b[1] < a[2]]


def test_two_services_on_one_database_never_run_a_job_twice_at_once_and_the_standby_takes_over(
        tmp_path: Path, db_url: str, conn: psycopg.Connection) -> None:
    with ReplayServer({"rednote": generate_statuses(200, tag="rednote", seed=5)}) as server:
        config = write_config(tmp_path / "murmur.toml", f"""
terms = ["RedNote"]
[sources.mastodon]
instances = [{json.dumps(server.url)}]
tags = ["rednote"]
interval = "1s"
download_delay = 0.2
[schedule]
score_interval = "1s"
aggregate_interval = "1s"
[model]
name = "{NO_MODEL}"
""", "mastodon")
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        a, b = (start_service(config, db_url, log) for log in logs)
        try:
            # Each crawl is a child process that takes longer than the 1 s interval: both services
            # want every job all the time.
            wait_for(lambda: scalar(conn, "SELECT count(*) FROM job_runs WHERE job = 'crawl:mastodon' "
                                          "AND status = 'ok'") >= 4, 90, "four crawls")
            stop(a, logs[0])
            a_stopped = scalar(conn, "SELECT now()")
            wait_for(lambda: scalar(conn, "SELECT count(*) FROM job_runs WHERE job = 'crawl:mastodon' "
                                          "AND status = 'ok' AND started_at > %s", (a_stopped,)) >= 1,
                     60, "the standby's crawl")
            stop(b, logs[1])
        finally:
            a.kill()
            b.kill()
    conn.rollback()
    for job in ("crawl:mastodon", "aggregate"):
        assert scalar(conn, "SELECT count(*) FROM job_runs WHERE job = %s", (job,)) >= 2
        assert overlaps(conn, job) == [], f"{job} ran twice at once"
    assert overlaps(conn, "score") == []
    assert scalar(conn, "SELECT count(*) FROM posts") == 200
    text = logs[0].read_text() + logs[1].read_text()
    assert "Traceback" not in text, text
    assert "still running elsewhere; skipped this turn" in text  # they did contend
    # The broken model is said once per service, not once per second.
    assert text.count("score: cannot load the model") == 2


# --- a running service: continuous scoring, /healthz, /metrics, status -----------------------------


@dataclass
class Served:
    url: str  # the HTTP endpoint
    db_url: str
    config: Path
    log: Path
    conn: psycopg.Connection


@pytest.fixture(scope="module")
def served(server_url: str, extensions: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `murmur serve` (the real model, continuous scoring, HTTP on a free port) that has crawled,
    scored and aggregated 60 posts; its tests only read from it, apart from posts they add."""
    schema = f"serve_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    db_url = f"{server_url}{'&' if '?' in server_url else '?'}options={quote(f'-csearch_path={schema},public')}"
    tmp = tmp_path_factory.mktemp("serve")
    try:
        with ReplayServer({"rednote": generate_statuses(60, tag="rednote", seed=9)}) as server, \
                connect(db_url) as conn:
            migrate(conn)
            conn.commit()
            # The second instance refuses connections: its errors are counted by kind.
            config = write_config(tmp / "murmur.toml", f"""
terms = ["RedNote"]
[sources.mastodon]
instances = [{json.dumps(server.url)}, "http://127.0.0.1:9"]
tags = ["rednote"]
interval = "1h"
download_delay = 0
[schedule]
score_interval = "continuous"
aggregate_interval = "1h"
[service]
http = "127.0.0.1:0"
""", "mastodon")
            log = tmp / "serve.log"
            service = start_service(config, db_url, log)
            try:
                wait_for(lambda: "health and metrics on" in log.read_text(), 60, "the HTTP endpoint")
                url = re.search(r"health and metrics on (http://\S+)", log.read_text()).group(1)  # type: ignore[union-attr]
                wait_for(lambda: scalar(conn, "SELECT coalesce(sum(posts), 0) FROM aggregates "
                                              "WHERE bucket_size = 'day'") == 60, 120, "60 posts aggregated")
                yield Served(url, db_url, config, log, conn)
                stop(service, log)
            finally:
                service.kill()
            assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_healthz_says_ok_with_the_scheduler_running_and_the_database_answering(served: Served) -> None:
    status, body = get(served.url + "/healthz")
    health = json.loads(body)
    assert status == 200, health
    assert health["status"] == "ok" and health["scheduler"] == "running" and health["database"] == "ok"
    assert set(health["next_runs"]) == {"crawl:mastodon", "score", "aggregate"}
    assert get(served.url + "/nothing")[0] == 404


def test_the_service_serves_the_dashboard_beside_healthz_and_metrics(served: Served) -> None:
    status, page = get(served.url + "/")
    assert status == 200 and b'src="/static/app.js"' in page
    status, body = get(served.url + "/api/trend?by=day")
    trend = json.loads(body)
    assert status == 200 and sum(r["posts"] for r in trend["rows"]) == 60 and trend["series"][0]["label"] == \
        "mastodon · RedNote"
    # Search too: the posts were embedded in the scoring pass, the query by the service's own model.
    status, body = get(served.url + "/api/search?q=RedNote&limit=3")
    hits = json.loads(body)
    assert status == 200 and len(hits["rows"]) == 3, hits
    assert all(0 < h["similarity"] <= 1 and h["source"] == "mastodon" for h in hits["rows"])


def test_metrics_count_posts_per_source_errors_by_kind_scoring_and_job_durations(served: Served) -> None:
    status, body = get(served.url + "/metrics")
    assert status == 200
    text = body.decode()
    conn = served.conn
    assert metric(text, "murmur_posts_collected_total", source="mastodon") == 60
    assert metric(text, "murmur_errors_total", job="crawl:mastodon", kind="refused") >= 1
    assert metric(text, "murmur_posts_scored_total") == scalar(conn, "SELECT count(*) FROM sentiment_scores") >= 60
    assert metric(text, "murmur_posts", source="mastodon") == scalar(conn, "SELECT count(*) FROM posts")
    assert metric(text, "murmur_unscored_posts") == 0
    assert metric(text, "murmur_scoring_rate_posts_per_second") > 0
    assert metric(text, "murmur_database_up") == 1
    # One instance answers and one refuses: the crawl did its work but for that host, a `partial` run.
    for job, status in (("crawl:mastodon", "partial"), ("score", "ok"), ("aggregate", "ok")):
        assert metric(text, "murmur_job_duration_seconds_count", job=job) >= 1
        assert metric(text, "murmur_job_runs_total", job=job, status=status) >= 1
    assert metric(text, "murmur_job_last_success_timestamp_seconds", job="crawl:mastodon") > time.time() - 600


def test_continuous_scoring_takes_new_posts_at_once_and_aggregation_follows_each_run(served: Served) -> None:
    conn = served.conn
    conn.execute("INSERT INTO posts (source, source_id, text, lang, created_at, terms) "
                 "VALUES ('mastodon', 'added-by-test', 'I love RedNote', 'en', now(), '{RedNote}')")
    conn.commit()
    # No crawl and no aggregate interval (both hourly) is due: only the continuous scorer, and the
    # aggregation that follows its run, can bring this post into the trends.
    wait_for(lambda: scalar(conn, "SELECT coalesce(sum(posts), 0) FROM aggregates WHERE bucket_size = 'day'")
             == scalar(conn, "SELECT count(*) FROM posts"), 30, "the added post in the aggregates")
    runs = conn.execute("SELECT job, started_at, finished_at, stats FROM job_runs WHERE job IN ('score', 'aggregate') "
                        "ORDER BY started_at, id").fetchall()
    scoring = [r for r in runs if r[0] == "score"]
    assert len(scoring) >= 2 and all(r[3]["scored"] > 0 for r in scoring)  # idle looks leave no rows
    for _, _, finished, _ in scoring:
        assert any(job == "aggregate" and finished <= started < finished + timedelta(seconds=10)
                   for job, started, _, _ in runs), "no aggregation right after a scoring run"


def test_status_shows_per_source_runs_backlog_throughput_and_next_runs(served: Served,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(served.config), "--database-url", served.db_url, "status"]
    assert main([*args, "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    crawl = next(j for j in status["jobs"] if j["job"] == "crawl:mastodon")
    assert crawl["last_run"]["status"] == "partial" and crawl["last_run"]["new_posts"] == 60  # one host refused
    assert crawl["posts_24h"] == scalar(served.conn, "SELECT count(*) FROM posts")
    assert datetime.fromisoformat(crawl["next_run"]) > datetime.now(UTC) + timedelta(minutes=50)  # hourly
    assert status["backlog"]["unscored_posts"] == 0 and status["backlog"]["models"]
    assert status["scorer"]["posts_per_second"] > 0
    assert {j["job"] for j in status["jobs"]} == {"crawl:mastodon", "score", "aggregate"}
    assert main(args) == 0
    table = capsys.readouterr().out
    assert re.search(r"^crawl:mastodon\s+\S+ \S+\s+partial\s", table, re.M), table
    assert "posts/s" in table and "unscored backlog: 0 posts" in table


# --- without a service ---------------------------------------------------------------------------


def test_status_says_not_scheduled_before_any_service_ran(db_url: str, conn: psycopg.Connection,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    conn.execute("INSERT INTO job_runs (job, finished_at, status, stats) "
                 "VALUES ('crawl:mastodon', now(), 'ok', '{\"murmur/posts/new\": 3}')")
    conn.commit()
    assert main(["--database-url", db_url, "status", "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["service"] == "never ran on this database"
    assert {j["next_run"] for j in status["jobs"]} == {"not scheduled"}
    assert next(j for j in status["jobs"] if j["job"] == "crawl:mastodon")["last_run"]["new_posts"] == 3
    assert main(["--database-url", db_url, "status"]) == 0
    assert "not scheduled" in capsys.readouterr().out


def test_healthz_is_503_when_the_database_does_not_answer_or_the_scheduler_is_not_running(
        db_url: str, conn: psycopg.Connection) -> None:
    settings = load_settings(environ={})
    for url, database in (("postgresql://nobody@127.0.0.1:9/x", "connection"), (db_url, "ok")):
        service = Service(settings, url)  # never scheduled
        server = HealthServer("127.0.0.1:0", service.health, service.metrics.registry)
        server.start()
        try:
            status, body = get(server.url + "/healthz")
            health = json.loads(body)
            assert status == 503 and health["status"] == "unavailable" and health["scheduler"] == "starting"
            assert database in health["database"]
            status, body = get(server.url + "/metrics")
            assert status == 200
            assert metric(body.decode(), "murmur_database_up") == (1 if database == "ok" else 0)
        finally:
            server.stop()


def test_a_port_already_taken_is_logged_once_and_the_service_runs_on_without_http(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        service = Service(load_settings(environ={"MURMUR_SERVICE__HTTP": address}), db_url)
        service.start_http()  # a hot standby on the same host: no HTTP, no failure
    assert service.http is None
    said = [r for r in caplog.records if "is taken" in r.getMessage()]
    assert len(said) == 1 and address in said[0].getMessage() and said[0].levelname == "WARNING"


def test_an_address_that_cannot_be_served_or_needs_a_token_stops_the_start(db_url: str) -> None:
    settings = load_settings(environ={"MURMUR_SERVICE__HTTP": "192.0.2.1:9464", "MURMUR_SERVICE__TOKEN": "t" * 24})
    with pytest.raises(ConfigError, match=r"config key 'service.http' is '192\.0\.2\.1:9464'.*pick another"):
        Service(settings, db_url).start_http()  # TEST-NET-1: no interface here has it
    with pytest.raises(ConfigError, match="MURMUR_SERVICE__TOKEN"):
        Service(load_settings(environ={"MURMUR_SERVICE__HTTP": "0.0.0.0:0"}), db_url).start_http()
