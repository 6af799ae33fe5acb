"""`murmur serve`: jobs on intervals, a SIGTERM mid-crawl loses nothing, a restart resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO, murmur_env, only_sources
from tests.fakemastodon import FakeMastodon as ReplayServer
from tests.fakemastodon import generate_statuses

pytestmark = pytest.mark.slow


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def count(conn: psycopg.Connection, sql: str) -> int:
    conn.rollback()  # a fresh snapshot each poll
    return int(conn.execute(sql).fetchone()[0])


def start_service(config: Path, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "murmur", "--config", str(config), "serve"],
        env=murmur_env(db_url), cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def test_sigterm_mid_crawl_loses_nothing_and_a_restart_completes(tmp_path: Path, db_url: str,
                                                                   conn: psycopg.Connection) -> None:
    statuses = generate_statuses(1200, tag="rednote", seed=3)
    with ReplayServer({"rednote": statuses}) as server:
        config = tmp_path / "murmur.toml"
        config.write_text(
            f"""
terms = ["RedNote"]
[sources.mastodon]
instances = [{json.dumps(server.url)}]
tags = ["rednote"]
interval = "1h"
max_pages = 100
download_delay = 0.25
[schedule]
score_interval = "1s"
aggregate_interval = "1s"
""" + only_sources("mastodon")
        )
        log = tmp_path / "serve.log"
        service = start_service(config, db_url, log)
        try:
            wait_for(lambda: count(conn, "SELECT count(*) FROM posts") > 0, 60, "the first stored posts")
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=90) == 0, log.read_text()
        finally:
            service.kill()
        text = log.read_text()
        assert "Traceback" not in text, text
        first = count(conn, "SELECT count(*) FROM posts")
        assert 0 < first < 1200  # stopped mid-crawl...
        assert count(conn, "SELECT count(*) FROM job_runs WHERE status = 'running'") == 0  # ...every run closed
        assert count(conn, "SELECT count(*) FROM job_runs WHERE job = 'crawl:mastodon' AND status = 'interrupted'") == 1
        assert count(conn, "SELECT count(*) FROM apscheduler_jobs") == 3  # crawl, score, aggregate persisted

        # A restart: the interrupted back-fill starts again; upserts make that safe.
        service = start_service(config, db_url, log)
        try:
            wait_for(lambda: count(conn, "SELECT count(*) FROM posts") == 1200, 120, "all posts")
            wait_for(lambda: count(conn, "SELECT count(*) FROM sentiment_scores") == 1200, 120, "all scores")
            wait_for(lambda: count(conn, "SELECT coalesce(sum(posts), 0) FROM aggregates WHERE bucket_size = 'day'")
                     == 1200, 60, "the aggregates")
            service.send_signal(signal.SIGINT)
            assert service.wait(timeout=90) == 0, log.read_text()
        finally:
            service.kill()
    assert count(conn, "SELECT count(DISTINCT source_id) FROM posts") == 1200
    assert count(conn, "SELECT count(*) FROM sentiment_scores WHERE aggregated_at IS NULL") == 0
    assert count(conn, "SELECT count(*) FROM crawl_state") == 1  # the completed back-fill left its cursor
    second_start = log.read_text().split("murmur service stopped", 1)[1]
    assert "job crawl:mastodon: its last run was cut short; running it now" in second_start
    assert "first run now" not in second_start  # the restart kept the persisted schedules


def test_an_unreachable_source_is_logged_and_the_service_keeps_running(tmp_path: Path, db_url: str,
                                                                        conn: psycopg.Connection) -> None:
    config = tmp_path / "murmur.toml"
    config.write_text(
        """
terms = ["RedNote"]
[sources.mastodon]
instances = ["http://127.0.0.1:9"]
interval = "2s"
download_delay = 0
[schedule]
score_interval = "1h"
aggregate_interval = "1h"
""" + only_sources("mastodon")
    )
    log = tmp_path / "serve.log"
    service = start_service(config, db_url, log)
    try:
        wait_for(lambda: count(conn, "SELECT count(*) FROM job_runs WHERE job = 'crawl:mastodon' "
                                     "AND status = 'failed'") >= 2, 60, "two failed crawl runs")
        assert service.poll() is None  # still running
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0
    finally:
        service.kill()
    text = log.read_text()
    lines = [line for line in text.splitlines() if "could not be reached" in line]
    runs = count(conn, "SELECT count(*) FROM job_runs WHERE job = 'crawl:mastodon'")
    assert len(lines) == runs  # one line per source and run
    assert "Traceback" not in text
