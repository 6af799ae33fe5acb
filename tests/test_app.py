"""The application layer (murmur/app.py): runs recorded in job_runs, a failing alert detector made a
`partial` run, and `run --once` that says plainly when every source failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from murmur.app import App
from murmur.config import load_settings
from murmur.crawler.items import Post
from murmur.errors import UserError
from murmur.store.posts import upsert_posts
from tests.conftest import only_sources, run_murmur
from tests.test_alerts import spike_data


def _scored_posts(conn: psycopg.Connection, n: int = 3) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    upsert_posts(conn, [Post(source="mastodon", source_id=f"p{i}", url=None, author="a", text="I love RedNote",
                             lang="en", created_at=now, terms=["RedNote"]) for i in range(n)])
    conn.execute("INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive) "
                 "SELECT id, 'm', 'positive', 0.1, 0.1, 0.8 FROM posts")
    conn.commit()


def test_a_failing_detector_keeps_the_trends_and_makes_the_run_partial(conn: psycopg.Connection) -> None:
    spike_data(conn)  # a spike the detector finds and then cannot store:
    conn.execute("DROP TABLE alerts CASCADE")  # a real failure, not a mock
    conn.commit()
    outcome = App(load_settings(environ={}), conn.info.dsn).aggregate(conn)
    assert outcome.status == "partial" and outcome.result.rows > 0 and outcome.result.alerts == 0
    assert outcome.error and "alert detection failed" in outcome.error
    status, error, stats = conn.execute(
        "SELECT status, error, stats FROM job_runs WHERE job = 'aggregate' ORDER BY id DESC LIMIT 1").fetchone()
    assert status == "partial" and "alert detection failed" in error and stats["detect_failed"] == 1
    posts = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    assert conn.execute("SELECT sum(posts) FROM aggregates WHERE bucket_size = 'day'").fetchone()[0] == posts


def test_a_working_aggregation_is_recorded_ok(conn: psycopg.Connection) -> None:
    _scored_posts(conn, 2)
    outcome = App(load_settings(environ={}), conn.info.dsn).aggregate(conn)
    assert (outcome.status, outcome.error, outcome.result.scores) == ("ok", None, 2)
    row = conn.execute("SELECT status, stats FROM job_runs WHERE job = 'aggregate'").fetchone()
    assert row[0] == "ok" and row[1]["scores"] == 2 and row[1]["rebuild"] is False


def test_unknown_and_disabled_sources_are_one_line_user_errors() -> None:
    app = App(load_settings(environ={}), "postgresql://unused")
    with pytest.raises(UserError, match="unknown source 'nope'; configured sources: mastodon"):
        app.chosen_sources(["nope"])
    assert "mastodon" in app.chosen_sources()


@pytest.mark.slow
def test_run_once_with_every_source_unreachable_says_so_and_fails(tmp_path: Path, db_url: str) -> None:
    config = tmp_path / "murmur.toml"
    config.write_text('[sources.mastodon]\ninstances = ["http://127.0.0.1:9"]\n' + only_sources("mastodon"))
    result = run_murmur("--config", str(config), "run", "--once", db_url=db_url, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "crawl mastodon: failed" in result.stdout
    assert "every source failed (mastodon" in result.stderr and "check the network" in result.stderr
    assert "run `murmur run --once`" not in result.stderr + result.stdout  # not the circular advice
    assert "Traceback" not in result.stderr
