"""The crawl's limits and bookkeeping, shared by every spider (crawler/spiders/base.py, crawler/runner.py): a
decompression bomb is dropped and counted as oversized, a run where some queries worked is `partial`,
and `scrapy crawl` inside the project records its run like `murmur crawl`."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import psycopg

from murmur.crawler.registry import SOURCES
from tests.conftest import REPO, murmur_env, run_murmur
from tests.fakeapi import FakeAPI, Reply

TIMELINE = (Path(__file__).parent / "fixtures" / "mastodon" / "tag_timeline.json").read_bytes()
TAG_PATH = "/api/v1/timelines/tag/"


def bomb(inflated: int) -> bytes:
    """A gzip body of `inflated` zero bytes (about a thousandth of that on the wire)."""
    return gzip.compress(b"\0" * inflated, compresslevel=9)


def mastodon_config(tmp_path: Path, instances: list[str], tags: list[str]) -> Path:
    path = tmp_path / "murmur.toml"
    path.write_text(f"""
terms = ["TikTok refugee", "小红书", "RedNote", "Lemon8"]
[sources.mastodon]
instances = {json.dumps(instances)}
tags = {json.dumps(tags)}
max_pages = 1
download_delay = 0
""")
    return path


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute("SELECT status, stats, error FROM job_runs WHERE job = 'crawl:mastodon' ORDER BY id DESC"
                       ).fetchone()
    assert row is not None
    return row


def test_a_gzip_bomb_is_counted_oversized_and_the_run_is_partial_when_another_tag_worked(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    limit = SOURCES["mastodon"].maxsize
    payload = bomb(4 * limit)  # inflates to 4 times the limit; a fraction of a megabyte on the wire
    assert len(payload) < limit // 50
    with FakeAPI() as api:
        api.route(TAG_PATH + "rednote", lambda r: Reply(200, payload, {"Content-Type": "application/json",
                                                                       "Content-Encoding": "gzip"}))
        api.route(TAG_PATH + "lemon8", lambda r: Reply(200, TIMELINE, {"Content-Type": "application/json"}))
        result = run_murmur("--config", str(mastodon_config(tmp_path, [api.url], ["rednote", "lemon8"])),
                            "crawl", "mastodon", db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert "mastodon: partial" in result.stdout and "Traceback" not in result.stderr
    # The instance answered one tag: it is not "could not be reached" (issue 10).
    assert "could not be reached" not in result.stderr and "some requests failed" in result.stderr
    status, stats, error = last_run(conn)
    assert status == "partial" and error is not None and "size limit" in error
    assert stats["murmur/errors/oversized"] == 1 and stats["murmur/failures/oversized"] == 1
    assert stats["murmur/queries/ok"] == 1 and stats["murmur/queries/failed"] == 1
    assert stats["murmur/pages"] == 1


def test_every_instance_failing_is_failed_and_says_why(tmp_path: Path, db_url: str, conn: psycopg.Connection) -> None:
    with FakeAPI() as api:
        api.route(TAG_PATH + "rednote", lambda r: Reply.json({"error": "This method requires an authenticated user"},
                                                             status=401))
        result = run_murmur("--config", str(mastodon_config(tmp_path, [api.url], ["rednote"])),
                            "crawl", "mastodon", db_url=db_url)
    assert result.returncode == 1 and "mastodon: failed" in result.stdout
    status, stats, _ = last_run(conn)
    assert status == "failed" and stats["murmur/failures/refused"] == 1 and "murmur/queries/ok" not in stats


def test_scrapy_crawl_inside_the_project_records_its_run(db_url: str, conn: psycopg.Connection) -> None:
    scrapy = str(Path(sys.executable).parent / "scrapy")
    with FakeAPI() as api:
        api.route(TAG_PATH + "lemon8", lambda r: Reply(200, TIMELINE, {"Content-Type": "application/json"}))
        ok = subprocess.run(
            [scrapy, "crawl", "mastodon", "-a", f"instances={api.url}", "-a", "tags=lemon8", "-a", "max_pages=1",
             "-s", "DOWNLOAD_DELAY=0", "-s", "LOG_LEVEL=WARNING"],
            env=murmur_env(db_url), cwd=REPO, capture_output=True, text=True, timeout=120,
        )
    assert ok.returncode == 0, ok.stderr
    status, stats, _ = last_run(conn)
    assert status == "ok" and stats["murmur/pages"] == 1 and "finish_reason" in stats

    dead = subprocess.run(
        [scrapy, "crawl", "mastodon", "-a", "instances=http://127.0.0.1:9", "-a", "tags=lemon8",
         "-s", "DOWNLOAD_DELAY=0", "-s", "LOG_LEVEL=WARNING", "-s", "RETRY_TIMES=0"],
        env=murmur_env(db_url), cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    status, stats, error = last_run(conn)
    assert status == "failed" and error == "http://127.0.0.1:9: connection refused"
    assert stats["murmur/failures/unreachable"] >= 1
    assert "mastodon: failed (http://127.0.0.1:9: connection refused)" in dead.stderr
    assert dead.returncode == 1, dead.stderr  # Scrapy's own crawl command would exit 0
    assert "Traceback" not in dead.stderr, dead.stderr
    assert conn.execute("SELECT count(*) FROM job_runs WHERE job = 'crawl:mastodon'").fetchone() == (2,)
