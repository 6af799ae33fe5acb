"""Sources side by side in one `murmur crawl`: one refusing or returning garbage never stops the others."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply
from tests.test_crawl_hackernews import SEARCH as HN_SEARCH
from tests.test_crawl_hackernews import FakeHN, make_hits


def test_a_refusing_source_and_a_garbage_source_leave_the_working_one_alone(
    tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    with FakeAPI() as good, FakeAPI() as bad:
        good.route(HN_SEARCH, FakeHN({"RedNote": make_hits("RedNote", 30, first_id=42700000)}))
        bad.route("/api/v3/search", lambda _: Reply.json({"error": "not_logged_in"}, status=403))
        bad.route("/feed.xml", lambda _: Reply.text("<html><body>not a feed</body></html>", content_type="text/html"))
        config = tmp_path / "murmur.toml"
        config.write_text(
            'terms = ["RedNote"]\n'
            f"[sources.hackernews]\nbase_url = {json.dumps(good.url)}\ndownload_delay = 0\n"
            f"[sources.lemmy]\ninstances = [{json.dumps(bad.url)}]\ndownload_delay = 0\n"
            f"[sources.rss]\nenabled = true\nfeeds = [{json.dumps(bad.url + '/feed.xml')}]\ndownload_delay = 0\n"
        )
        result = run_murmur("--config", str(config), "crawl", "hackernews", "lemmy", "rss", db_url=db_url)
    assert result.returncode == 1, result.stderr  # not every source was ok
    runs = {job: (status, stats) for job, status, stats in conn.execute(
        "SELECT job, status, stats FROM job_runs WHERE job LIKE 'crawl:%'").fetchall()}
    assert runs["crawl:hackernews"][0] == "ok" and runs["crawl:hackernews"][1]["murmur/posts/new"] == 30
    assert runs["crawl:lemmy"][0] == "failed" and runs["crawl:rss"][0] == "failed"
    assert runs["crawl:rss"][1].get("murmur/errors/malformed") == 1
    counts = dict(conn.execute("SELECT source, count(*) FROM posts GROUP BY 1").fetchall())
    assert counts == {"hackernews": 30}
    assert "hackernews: ok" in result.stdout and "lemmy: failed" in result.stdout
