"""A new default model keeps the history: `murmur score` takes new posts only, `--all-posts` and the
service's idle pass re-score what another model scored (newest first, nothing twice), and the report says
which model it shows and how far re-scoring has come. Real PostgreSQL, the real (small) model."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from murmur.app import App
from murmur.config import load_settings
from murmur.crawler.items import Post
from murmur.reports.build import build_report
from murmur.reports.export import to_json
from murmur.reports.filters import Filters
from murmur.reports.text import summary
from murmur.sentiment.model import load
from murmur.sentiment.scorer import Scorer
from murmur.sentiment.worker import score_pending
from murmur.store.posts import upsert_posts
from murmur.store.rescore import history_backlog

OLD = "old-model@1"
DAY1 = datetime(2025, 1, 15, tzinfo=UTC)  # the history: four posts the old model scored
DAY2 = DAY1 + timedelta(days=1)  # new posts, after the switch
TEXTS = ["I love RedNote", "RedNote is awful", "RedNote is fine I guess", "小红书 is great fun", "meh", "so good"]


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(load("murmur-minilm-sentiment", "cpu"))


@pytest.fixture
def app(scorer: Scorer, db_url: str) -> App:
    settings = load_settings(environ={}, overrides={"model": {"name": "murmur-minilm-sentiment", "languages": ["en"]}})
    app = App(settings, db_url)
    app._scorers["murmur-minilm-sentiment"] = scorer  # loaded once for the module
    return app


def add(conn: psycopg.Connection, start: int, n: int, day: datetime) -> None:
    posts = [Post(source="mastodon", source_id=f"p{i}", url=None, author="a@x", text=TEXTS[i % len(TEXTS)],
                  lang="en", created_at=day + timedelta(hours=i), terms=["RedNote"]) for i in range(start, start + n)]
    with conn.transaction():
        upsert_posts(conn, posts)


def history(conn: psycopg.Connection, scorer: Scorer, n: int = 4) -> None:
    """`n` posts of DAY1 scored by the old model."""
    add(conn, 0, n, DAY1)
    old = Scorer(dataclasses.replace(scorer.model, model_id=OLD))
    assert score_pending(conn, old, model_id=OLD).scored == n


def scored_by(conn: psycopg.Connection, model: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT p.source_id FROM sentiment_scores s JOIN posts p ON p.id = s.post_id WHERE s.model = %s "
        "ORDER BY p.source_id", (model,))]


def test_score_takes_new_posts_only_and_all_posts_rescores_the_history_after_them(
        conn: psycopg.Connection, app: App, scorer: Scorer) -> None:
    history(conn, scorer)
    new = scorer.model.model_id
    add(conn, 4, 2, DAY2)
    first = app.score(conn)
    assert first is not None and (first.run.scored, first.rescored) == (2, 0)
    assert scored_by(conn, new) == ["p4", "p5"]
    assert history_backlog(conn, [new]) == 4

    add(conn, 6, 1, DAY2)
    limited = app.score(conn, history=None, limit=2)  # --all-posts --limit 2: the new post first
    assert limited is not None and (limited.run.scored, limited.rescored) == (2, 1)
    assert "p6" in scored_by(conn, new) and "p3" in scored_by(conn, new)  # then the newest of the history
    rest = app.score(conn, history=None)
    assert rest is not None and (rest.run.scored, rest.rescored) == (3, 3)
    assert rest.stats()["rescored"] == 3
    # every post once under each model: 2 + 2 + 3 runs scored the 7 posts exactly
    assert scored_by(conn, new) == [f"p{i}" for i in range(7)]
    assert scored_by(conn, OLD) == ["p0", "p1", "p2", "p3"]  # the old scores stay
    assert history_backlog(conn, [new]) == 0
    again = app.score(conn, history=None)
    assert again is not None and again.run.scored == 0


def test_the_idle_pass_rescores_a_bounded_batch_only_when_no_new_posts_wait(
        conn: psycopg.Connection, app: App, scorer: Scorer) -> None:
    history(conn, scorer)
    new = scorer.model.model_id
    add(conn, 4, 1, DAY2)
    busy = app.score(conn, history=3)  # new posts waited: no history in this pass
    assert busy is not None and (busy.run.scored, busy.rescored) == (1, 0)
    idle = app.score(conn, history=3)
    assert idle is not None and (idle.run.scored, idle.rescored) == (3, 3)
    assert scored_by(conn, new) == ["p1", "p2", "p3", "p4"]  # the newest of the history first
    last = app.score(conn, history=3)
    assert last is not None and last.rescored == 1
    assert app.score(conn, history=3, keep_idle_run=False) is None  # nothing left: the service's idle look
    assert scored_by(conn, new) == [f"p{i}" for i in range(5)]
    runs = [r[0] for r in conn.execute("SELECT stats->>'rescored' FROM job_runs WHERE job = 'score' ORDER BY id")]
    assert runs == ["0", "3", "1"]


def test_the_report_names_its_model_and_keeps_the_old_one_until_the_new_one_caught_up(
        conn: psycopg.Connection, app: App, scorer: Scorer) -> None:
    history(conn, scorer)
    new = scorer.model.model_id
    add(conn, 4, 2, DAY2)
    app.score(conn)  # the two new posts under the new model
    app.aggregate(conn, deliver=False)
    report = build_report(conn, Filters())
    # the configured model has 2 posts of the period, the old one 4: the old one is shown, and the line says why
    assert report.model == OLD
    assert report.model_note is not None and report.model_note.startswith(f"showing {OLD}: the configured model {new}")
    assert "0% of the posts" in report.model_note and "murmur score --all-posts" in report.model_note
    assert report.model_note in "\n".join(summary(report))
    assert {r["model"] for r in json.loads(to_json(report, ("trend",)))} == {OLD}

    app.score(conn, history=3)  # the service's idle pass: 3 of the 4 old posts
    app.aggregate(conn, deliver=False)
    report = build_report(conn, Filters())
    assert report.model == new
    assert report.model_note == f"{new}: 75% of the posts {OLD} scored are re-scored; `murmur score --all-posts` " \
                                "finishes it"
    assert f"(model {new})" in summary(report)[0]
    assert build_report(conn, Filters(model=OLD)).model == OLD  # --model still picks outright

    app.score(conn, history=None)
    app.aggregate(conn, deliver=False)
    report = build_report(conn, Filters())
    assert (report.model, report.model_note) == (new, None)
