"""Waiting what a rate-limited platform asks: Retry-After, and Bluesky's RateLimit-Reset."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from murmur.crawler.middlewares import rate_limit_reset_seconds, retry_after_seconds
from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request
from tests.test_crawl_hackernews import SEARCH, FakeHN, make_hits


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds(b"7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_rate_limit_reset_reads_unix_times_and_deltas() -> None:
    assert rate_limit_reset_seconds(b"1698797893", now=1698797890.0) == 3.0  # Bluesky: a Unix time
    assert rate_limit_reset_seconds("30") == 30.0  # the IETF draft: seconds from now
    assert rate_limit_reset_seconds("1698797893", now=1698797999.0) == 0.0  # already past
    assert rate_limit_reset_seconds(None) is None and rate_limit_reset_seconds("later") is None


def test_a_429_with_only_rate_limit_reset_is_waited_out_then_retried(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    search = FakeHN({"RedNote": make_hits("RedNote", 5, first_id=42700000)})
    limited = {"left": 1}

    def answer(request: Request) -> Reply:
        if limited["left"]:
            limited["left"] -= 1
            return Reply.json({"message": "rate limited"}, status=429, headers={"RateLimit-Reset": "1"})
        return search(request)

    with FakeAPI() as api:
        api.route(SEARCH, answer)
        config = tmp_path / "murmur.toml"
        config.write_text(f'terms = ["RedNote"]\n[sources.hackernews]\nbase_url = {json.dumps(api.url)}\n'
                          "download_delay = 0\n")
        result = run_murmur("--config", str(config), "crawl", "hackernews", db_url=db_url)
    assert result.returncode == 0, result.stderr
    stats = conn.execute("SELECT stats FROM job_runs WHERE job = 'crawl:hackernews'").fetchone()[0]
    assert stats["murmur/retry_after/waits"] == 1 and stats["murmur/retry_after/seconds"] == 1
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (5,)
