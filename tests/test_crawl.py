"""A real Scrapy crawl (`murmur crawl`, in a child process) of a local server that answers like
Mastodon, into PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO, murmur_env, run_murmur
from tests.fakemastodon import FakeMastodon as ReplayServer
from tests.fakemastodon import generate_statuses


def write_config(tmp_path: Path, instances: list[str], tags: list[str], *, max_pages: int = 10) -> Path:
    path = tmp_path / "murmur.toml"
    path.write_text(
        f"""
terms = ["TikTok refugee", "小红书", "RedNote"]
[sources.mastodon]
instances = {json.dumps(instances)}
tags = {json.dumps(tags)}
max_pages = {max_pages}
download_delay = 0
"""
    )
    return path


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    statuses = {
        "rednote": generate_statuses(100, tag="rednote", seed=1),
        "tiktokrefugee": generate_statuses(30, tag="tiktokrefugee", start_id=111000000000000000, seed=2),
    }
    with ReplayServer(statuses) as srv:
        yield srv


def crawl(
    tmp_path: Path, db_url: str, instances: list[str], tags: list[str], **kw: int
) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, instances, tags, **kw)
    return run_murmur("--config", str(config), "crawl", "mastodon", db_url=db_url)


def last_run_stats(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:mastodon' ORDER BY id DESC"
    ).fetchone()
    assert row is not None
    return row


def test_crawl_stores_every_post_once_with_plain_text(tmp_path: Path, db_url: str, conn: psycopg.Connection,
                                                       server: ReplayServer) -> None:
    result = crawl(tmp_path, db_url, [server.url], ["rednote", "tiktokrefugee"])
    assert result.returncode == 0, result.stderr
    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts").fetchone() == (130, 130)
    text, terms, lang = conn.execute("SELECT text, terms, lang FROM posts ORDER BY created_at LIMIT 1").fetchone()
    assert "<" not in text and "&amp;" not in text and terms
    status, stats, _ = last_run_stats(conn)
    assert status == "ok" and stats["murmur/posts/new"] == 130 and stats["murmur/pages"] >= 5
    assert "mastodon: ok" in result.stdout and "130 new" in result.stdout


def test_second_crawl_fetches_only_new_posts(tmp_path: Path, db_url: str, conn: psycopg.Connection,
                                             server: ReplayServer) -> None:
    assert crawl(tmp_path, db_url, [server.url], ["rednote"]).returncode == 0
    cursor = conn.execute("SELECT cursor FROM crawl_state").fetchone()[0]
    newer = generate_statuses(7, tag="rednote", start_id=int(cursor) + 1000, seed=9)
    server.add_statuses("rednote", newer)
    seen = len(server.requests)
    result = crawl(tmp_path, db_url, [server.url], ["rednote"])
    assert result.returncode == 0, result.stderr
    asked = [r for r in server.requests[seen:] if "/timelines/" in r]
    assert asked and all("min_id=" in r for r in asked)
    assert f"min_id={cursor}" in asked[0]
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (107,)
    assert last_run_stats(conn)[1]["murmur/posts/new"] == 7
    assert conn.execute("SELECT cursor FROM crawl_state").fetchone()[0] == max((s["id"] for s in newer), key=int)
    third = crawl(tmp_path, db_url, [server.url], ["rednote"])  # nothing new: nothing stored twice
    assert third.returncode == 0 and conn.execute("SELECT count(*) FROM posts").fetchone() == (107,)


def test_errors_are_survived_counted_and_the_crawl_goes_on(tmp_path: Path, db_url: str, conn: psycopg.Connection,
                                                            server: ReplayServer) -> None:
    server.add_fault("/api/v1/timelines/tag/rednote?limit=40&max_id", "500", times=1)
    server.add_fault("/api/v1/timelines/tag/tiktokrefugee", "429", times=1, retry_after=1)
    server.add_fault("/api/v1/timelines/tag/rednote?limit=40&max_id", "truncated", times=1)
    result = crawl(tmp_path, db_url, [server.url], ["rednote", "tiktokrefugee"])
    assert result.returncode == 0, result.stderr
    status, stats, _ = last_run_stats(conn)
    assert status == "ok"
    assert stats["murmur/errors/malformed"] == 1
    assert stats["retry/count"] >= 1  # the 500, retried by Scrapy
    assert stats["murmur/retry_after/waits"] == 1 and stats["murmur/retry_after/seconds"] == 1
    assert "malformed page" in result.stderr and "Traceback" not in result.stderr
    # The truncated page broke that chain (40 posts in), the other tag was fetched whole after its 429.
    counts = dict(conn.execute("SELECT tags[1], count(*) FROM posts GROUP BY 1").fetchall())
    assert counts["tiktokrefugee"] == 30 and counts["rednote"] == 40


def test_an_unreachable_instance_is_one_log_line_and_the_others_go_on(tmp_path: Path, db_url: str,
                                                                     conn: psycopg.Connection,
                                                                     server: ReplayServer) -> None:
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    result = crawl(tmp_path, db_url, [dead, server.url], ["rednote", "tiktokrefugee"])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "could not be reached" in line]
    assert len(lines) == 1 and dead in lines[0] and "next run" in lines[0]
    assert "Traceback" not in result.stderr
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (130,)
    all_dead = crawl(tmp_path, db_url, [dead], ["rednote"])
    assert all_dead.returncode == 1 and "could not be reached" in all_dead.stderr
    assert last_run_stats(conn)[0] == "failed"


def test_robots_txt_is_obeyed(tmp_path: Path, db_url: str, conn: psycopg.Connection) -> None:
    robots = "User-agent: *\nDisallow: /api/\n"
    with ReplayServer({"rednote": generate_statuses(5, tag="rednote")}, robots_txt=robots) as srv:
        result = crawl(tmp_path, db_url, [srv.url], ["rednote"])
        assert not [r for r in srv.requests if "/timelines/" in r]
        assert any(r.startswith("/robots.txt") for r in srv.requests)
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (0,)
    assert "robots.txt" in result.stderr


def test_the_user_agent_identifies_murmur(tmp_path: Path, db_url: str, server: ReplayServer) -> None:
    assert crawl(tmp_path, db_url, [server.url], ["tiktokrefugee"]).returncode == 0
    assert server.user_agents and all(ua.startswith("murmur/") for ua in server.user_agents)


def test_scrapy_crawl_inside_the_project_uses_murmur_config(db_url: str, conn: psycopg.Connection,
                                                            server: ReplayServer) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "scrapy"), "crawl", "mastodon", "-a", f"instances={server.url}",
         "-a", "tags=tiktokrefugee", "-s", "DOWNLOAD_DELAY=0", "-s", "LOG_LEVEL=WARNING"],
        env=murmur_env(db_url), cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert conn.execute("SELECT count(*) FROM posts WHERE 'tiktokrefugee' = ANY (tags)").fetchone() == (30,)
    assert conn.execute("SELECT count(*) FROM crawl_state").fetchone() == (1,)
