"""`murmur demo` and `murmur run --once`, end to end: real crawl, real model, real PostgreSQL."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
import pytest

from murmur.demo_server import load_recorded
from tests.conftest import REPO, murmur_env, only_sources, run_murmur
from tests.fakemastodon import FakeMastodon as ReplayServer

pytestmark = pytest.mark.slow


def test_demo_ends_with_a_dated_trend_report(server_url: str) -> None:
    result = run_murmur("demo", db_url=server_url, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "demo: serving" in out and "new posts (ok)" in out
    rows = re.findall(r"^2025-01-\d\d\s+mastodon\s+\S.*\s+\d+\s+\d+\s+\d+\s+\d+\s+[+-]\d\.\d\d", out, re.M)
    assert len(rows) >= 10, out
    assert "demo: done" in out and "Traceback" not in result.stderr
    # the demo's own database, not the user's
    demo_url = psycopg.conninfo.make_conninfo(server_url, dbname="murmur_demo")
    with psycopg.connect(demo_url) as conn:
        posts, scored = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id))"
            " FROM posts p"
        ).fetchone()
    assert posts == scored == sum(1 for _ in {s["uri"] for v in load_recorded().values() for s in v})
    # it ends with the commands that show its data, and they do
    commands = [shlex.split(line.split("#")[0]) for line in re.findall(r"^  murmur .*$", out, re.M)]
    steps = {words[-1]: words for words in commands}
    assert steps["report"] == ["murmur", "--database-name", "murmur_demo", "report"], out
    assert steps["psql"] == ["murmur", "--database-name", "murmur_demo", "psql"] and "web --demo" in out
    report = run_murmur(*steps["report"][1:], db_url=server_url)
    assert report.returncode == 0, report.stderr
    trend_rows = r"^2025-01-\d\d\s+mastodon\s+.*$"
    assert re.findall(trend_rows, report.stdout, re.M) == re.findall(trend_rows, out, re.M)  # the report it printed
    count = run_murmur(*steps["psql"][1:], "-tAc", "select count(*) from posts", db_url=server_url)
    assert count.returncode == 0 and int(count.stdout) == posts, count.stderr
    # `murmur web --demo` serves the same data
    web = subprocess.Popen([sys.executable, "-m", "murmur", "web", "--demo", "--listen", "127.0.0.1:0"],
                           env=murmur_env(server_url), stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        lines = []
        while web.stderr and len(lines) < 50 and not (url := re.search(r"dashboard at (http://\S+?)/", lines[-1]
                                                                       if lines else "")):
            lines.append(web.stderr.readline())
        assert url, lines
        with urllib.request.urlopen(url.group(1) + "/api/trend?by=day", timeout=30) as response:
            trend = json.load(response)
        assert sum(r["posts"] for r in trend["rows"]) == sum(
            int(m) for m in re.findall(r"^2025-01-\d\d\s+mastodon\s+.*?\s(\d+)\s+\d+\s+\d+\s+\d+\s+[+-]",
                                       report.stdout, re.M))
    finally:
        web.terminate()
        web.wait(timeout=30)


def test_run_once_crawls_scores_aggregates_and_reports(tmp_path: Path, db_url: str, conn: psycopg.Connection) -> None:
    with ReplayServer(load_recorded()) as server:
        config = tmp_path / "murmur.toml"
        config.write_text(
            f'[sources.mastodon]\ninstances = [{json.dumps(server.url)}]\ntags = ["rednote", "小红书"]\n'
            "download_delay = 0\n" + only_sources("mastodon")
        )
        result = run_murmur("--config", str(config), "run", "--once", db_url=db_url, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "crawl mastodon: ok" in result.stdout and "posts scored" in result.stdout
    assert re.search(r"^2025-01-\d\d\s+mastodon\s+(RedNote|小红书)", result.stdout, re.M), result.stdout
    labels = dict(conn.execute("SELECT label, count(*) FROM sentiment_scores GROUP BY 1").fetchall())
    assert sum(labels.values()) == conn.execute("SELECT count(*) FROM posts").fetchone()[0] > 0
    # csv and json are for programs: the same rows, parseable
    as_json = run_murmur("report", "--format", "json", db_url=db_url)
    data = json.loads(as_json.stdout)
    assert data and {"bucket_start", "source", "term", "posts", "mean_polarity"} <= set(data[0])
    as_csv = run_murmur("report", "--format", "csv", "--term", "RedNote", db_url=db_url)
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0].startswith("bucket_start,source,term,posts") and all(",RedNote," in x for x in lines[1:])
