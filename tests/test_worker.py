"""The scoring worker on a real database with the shipped model: routing by language, reasons for
what stays unscored, several workers sharing the load, several models side by side."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from murmur.config import load_settings
from murmur.crawler.items import Post
from murmur.sentiment.model import load
from murmur.sentiment.scorer import Scorer
from murmur.sentiment.worker import plan_routes, score_pending, score_routes
from murmur.store.db import connect
from murmur.store.posts import upsert_posts

T0 = datetime(2025, 1, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(load("murmur-minilm-sentiment", "cpu"))


def loader(scorer: Scorer) -> Callable[[str], Scorer]:
    return lambda ref: scorer


def add_posts(conn: psycopg.Connection, texts_langs: list[tuple[str, str | None]]) -> None:
    posts = [
        Post(source="mastodon", source_id=f"s{i}", url=None, author="a@x", text=text, lang=lang,
             created_at=T0 + timedelta(minutes=i), terms=["RedNote"])
        for i, (text, lang) in enumerate(texts_langs)
    ]
    with conn.transaction():
        upsert_posts(conn, posts)


def scored_langs(conn: psycopg.Connection) -> list[str | None]:
    return [r[0] for r in conn.execute(
        "SELECT p.lang FROM posts p JOIN sentiment_scores s ON s.post_id = p.id ORDER BY p.id")]


def test_a_language_no_model_covers_is_left_unscored_with_the_reason(conn: psycopg.Connection,
                                                                      scorer: Scorer) -> None:
    add_posts(conn, [("I love RedNote", "en"), ("小红书太好玩了", "zh"), ("🔥", None), ("RedNote is awful", "en")])
    settings = load_settings(environ={}, overrides={"model": {"languages": ["en"]}})
    run, unscored = score_routes(conn, plan_routes(settings, loader(scorer)))
    assert run.scored == 2 and unscored == 2
    assert scored_langs(conn) == ["en", "en"]
    reasons = dict(conn.execute(
        "SELECT p.lang, u.reason FROM unscored_posts u JOIN posts p ON p.id = u.post_id").fetchall())
    assert "no configured model covers language 'zh'" in reasons["zh"] and "covered: en" in reasons["zh"]
    assert reasons[None] == "language could not be detected"
    # nothing was given a fake neutral
    assert conn.execute("SELECT count(*) FROM sentiment_scores WHERE label = 'neutral'").fetchone()[0] <= 2


def test_routes_send_a_language_to_its_model_and_clear_its_reason(conn: psycopg.Connection, scorer: Scorer) -> None:
    add_posts(conn, [("I love RedNote", "en"), ("小红书太好玩了", "zh")])
    english_only = load_settings(environ={}, overrides={"model": {"languages": ["en"]}})
    assert score_routes(conn, plan_routes(english_only, loader(scorer)))[1] == 1
    routed = load_settings(environ={}, overrides={"model": {"languages": ["en"],
                                                            "routes": {"zh": "murmur-minilm-sentiment"}}})
    run, unscored = score_routes(conn, plan_routes(routed, loader(scorer)))
    assert run.scored == 1 and unscored == 0
    assert scored_langs(conn) == ["en", "zh"]
    assert conn.execute("SELECT count(*) FROM unscored_posts").fetchone() == (0,)


def test_two_workers_share_the_load_and_score_nothing_twice(conn: psycopg.Connection, db_url: str,
                                                           scorer: Scorer) -> None:
    add_posts(conn, [(f"RedNote post number {i}, {'great' if i % 2 else 'terrible'}", "en") for i in range(400)])
    counts: list[int] = []
    both_connected = threading.Barrier(2, timeout=60)

    def worker() -> None:
        with connect(db_url) as c:
            both_connected.wait()  # so neither drains the queue before the other has started
            counts.append(score_pending(c, scorer, model_id=scorer.model.model_id, batch_size=16).scored)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 400 and all(n > 0 for n in counts)
    assert conn.execute("SELECT count(*), count(DISTINCT post_id) FROM sentiment_scores").fetchone() == (400, 400)


def test_a_new_model_adds_its_scores_and_keeps_the_old(conn: psycopg.Connection, scorer: Scorer) -> None:
    add_posts(conn, [("I love RedNote", "en"), ("RedNote is awful", "en")])
    score_pending(conn, scorer, model_id=scorer.model.model_id)
    newer = Scorer(dataclasses.replace(scorer.model, model_id="another-model@2"))
    assert score_pending(conn, newer, model_id="another-model@2").scored == 2
    assert score_pending(conn, scorer, model_id=scorer.model.model_id).scored == 0
    rows = conn.execute("SELECT model, count(*) FROM sentiment_scores GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("another-model@2", 2), (scorer.model.model_id, 2)]
    labels = [r[0] for r in conn.execute(
        "SELECT label FROM sentiment_scores WHERE model = 'another-model@2' ORDER BY post_id")]
    assert labels == ["positive", "negative"]
