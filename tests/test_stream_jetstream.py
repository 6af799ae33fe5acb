"""The Jetstream consumer against a local websocket server (tests/fakejetstream.py) and the real database:
what is stored, edited, deleted and counted, and that reconnects, restarts and a kill -9 lose nothing and
count nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from murmur.config import load_settings
from murmur.config.settings import Settings
from murmur.crawler.stream import StreamOutcome, run_stream
from murmur.store.db import connect
from murmur.store.migrate import migrate
from murmur.store.posts import get_cursor
from murmur.store.trends import aggregate
from tests.conftest import REPO, murmur_env, only_sources, run_murmur
from tests.fakejetstream import (
    FakeJetstream,
    account_frame,
    create_frame,
    delete_frame,
    identity_frame,
    update_frame,
)

ALICE, BOB = "did:plc:alice0000000000000000000", "did:plc:bob00000000000000000000"
T0 = (int(time.time()) - 600) * 1_000_000  # ten minutes ago, whole seconds


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection: what the test writes is seen by the consumer at once."""
    with connect(db_url, autocommit=True) as conn:
        migrate(conn)
        yield conn


def uri(did: str, rkey: str) -> str:
    return f"at://{did}/app.bsky.feed.post/{rkey}"


def settings_for(server: FakeJetstream, **jetstream: Any) -> Settings:
    return load_settings(environ={}, overrides={"sources": {"jetstream": {"instances": [server.url], **jetstream}}})


def cursor_of(conn: psycopg.Connection) -> int:
    value = get_cursor(conn, "jetstream", "app.bsky.feed.post")
    return int(value) if value else 0


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def stream_until(settings: Settings, db_url: str, last_time_us: int) -> StreamOutcome:
    """Run the consumer in a thread until its committed cursor reaches `last_time_us`, then stop it."""
    stop = threading.Event()
    outcome: list[StreamOutcome] = []
    thread = threading.Thread(target=lambda: outcome.append(run_stream(settings, db_url, stop=stop)))
    thread.start()
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            wait_for(lambda: cursor_of(conn) >= last_time_us)
    finally:
        stop.set()
        thread.join(30)
    assert outcome, "run_stream did not return"
    return outcome[0]


def rows(conn: psycopg.Connection, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def test_matching_posts_and_their_replies_are_stored_once_with_their_fields(db_url: str,
                                                                            auto: psycopg.Connection) -> None:
    frames: list[str | dict[str, Any]] = [
        create_frame(ALICE, "a1", "Joined RedNote today, #TikTokRefugee checking in", T0 + 1_000_000),
        create_frame(BOB, "b1", "Lunch was great", T0 + 2_000_000, langs=("en",)),
        create_frame(BOB, "b2", "Welcome! What made you pick it?", T0 + 3_000_000,
                     reply=(uri(ALICE, "a1"), uri(ALICE, "a1"))),
        create_frame(BOB, "b3", "no idea what you mean", T0 + 4_000_000,
                     reply=(uri(ALICE, "zz"), uri(ALICE, "zz"))),  # a reply to a post not stored
        create_frame(ALICE, "a2", "", T0 + 5_000_000),  # an image without words: counted, not stored
        identity_frame(ALICE, "alice.bsky.social", T0 + 6_000_000),
        account_frame(BOB, T0 + 6_500_000),
        create_frame(BOB, "l1", "", T0 + 6_700_000, collection="app.bsky.feed.like"),
        "not json at all",
        '{"kind": "commit", "did": "did:plc:x"}',
        create_frame(ALICE, "a3", "小红书 真的很好玩，大家好", T0 + 7_000_000, langs=("en",)),
    ]
    with FakeJetstream(frames) as server:
        outcome = stream_until(settings_for(server), db_url, T0 + 7_000_000)
    assert outcome.status == "interrupted" and outcome.error is None
    stored = rows(auto, "SELECT source_id, source, author, url, terms, lang, via, parent_source_id, root_source_id, "
                        "text FROM posts ORDER BY source_id")
    by_id = {r[0]: r for r in stored}
    assert sorted(by_id) == [uri(ALICE, "a1"), uri(ALICE, "a3"), uri(BOB, "b2")]
    a1 = by_id[uri(ALICE, "a1")]
    assert a1[1:7] == ("bluesky", "alice.bsky.social", "https://bsky.app/profile/alice.bsky.social/post/a1",
                       ["TikTok refugee", "RedNote"], "en", "stream")
    assert by_id[uri(ALICE, "a3")][5] == "zh"  # the detector's language, not the declared one
    b2 = by_id[uri(BOB, "b2")]
    assert b2[4] == ["TikTok refugee", "RedNote"] and b2[7:9] == (uri(ALICE, "a1"), uri(ALICE, "a1"))
    # every create counted once, by hour and detected language (the like and the non-posts are not)
    volume = dict(rows(auto, "SELECT lang, sum(posts)::int FROM network_volume WHERE source = 'bluesky' GROUP BY 1"))
    assert sum(volume.values()) == 6 and volume["zh"] == 1
    s = outcome.stats
    assert (s["events"], s["posts"], s["matched"], s["replies"], s["baseline"]) == (11, 6, 2, 1, 6)
    assert (s["skipped/malformed"], s["skipped/account"], s["skipped/collection"]) == (2, 1, 1)
    assert s["reconnects"] == 0 and s["lag"] >= 0 and s["connected_since"]
    job = rows(auto, "SELECT status, stats->>'matched' FROM job_runs WHERE job = 'stream:jetstream'")
    assert job == [("interrupted", "2")]
    assert server.cursors() == [None]


def test_an_edit_is_rescored_and_a_delete_removes_the_post_and_its_buckets(db_url: str,
                                                                           auto: psycopg.Connection) -> None:
    create = create_frame(ALICE, "a1", "RedNote is lovely", T0 + 1_000_000)
    with FakeJetstream([create]) as server:
        settings = settings_for(server)
        stream_until(settings, db_url, T0 + 1_000_000)
        post_id = rows(auto, "SELECT id FROM posts")[0][0]
        with auto.transaction():
            auto.execute("INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive) "
                         "VALUES (%s, 'm', 'positive', 0.1, 0.1, 0.8)", (post_id,))
        aggregate(auto)
        assert rows(auto, "SELECT count(*) FROM aggregates")[0][0] > 0

        server.add([update_frame(ALICE, "a1", "RedNote is lovely, and so is Lemon8", T0 + 2_000_000),
                    update_frame(BOB, "x9", "an edit of a post never stored", T0 + 2_500_000)])
        outcome = stream_until(settings, db_url, T0 + 2_500_000)
        assert outcome.stats["updates"] == 1 and outcome.stats["edited"] == 1
        assert rows(auto, "SELECT text, terms FROM posts") == [
            ("RedNote is lovely, and so is Lemon8", ["Lemon8", "RedNote"])]
        assert rows(auto, "SELECT count(*) FROM sentiment_scores")[0][0] == 0  # to be scored again
        assert rows(auto, "SELECT count(*) FROM dirty_buckets")[0][0] == 2  # its hour and its day

        with auto.transaction():
            auto.execute("INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive) "
                         "VALUES (%s, 'm', 'positive', 0.1, 0.1, 0.8)", (post_id,))
        aggregate(auto)
        server.add([delete_frame(ALICE, "a1", T0 + 3_000_000), delete_frame(BOB, "nope", T0 + 3_100_000)])
        outcome = stream_until(settings, db_url, T0 + 3_100_000)
    assert outcome.stats["deletes"] == 1 and outcome.stats["delete_events"] == 2
    assert rows(auto, "SELECT count(*) FROM posts")[0][0] == 0
    assert rows(auto, "SELECT count(*) FROM sentiment_scores")[0][0] == 0
    result = aggregate(auto)  # the marked buckets are recomputed: their rows go
    assert result.buckets == 2 and rows(auto, "SELECT count(*) FROM aggregates")[0][0] == 0
    assert rows(auto, "SELECT sum(posts)::int FROM network_volume")[0][0] == 1  # replays not counted again
    # each run resumed from the committed cursor, rewound 5 s
    assert server.cursors() == [None, T0 + 1_000_000 - 5_000_000, T0 + 2_500_000 - 5_000_000]


def test_a_connection_dropped_mid_message_is_reconnected_and_nothing_is_counted_twice(
        db_url: str, auto: psycopg.Connection) -> None:
    frames = [create_frame(ALICE, f"r{i}", f"RedNote post {i}", T0 + i * 1_000_000) for i in range(1, 9)]
    with FakeJetstream(frames, drop_after=3) as server:
        outcome = stream_until(settings_for(server, rewind=2), db_url, T0 + 8_000_000)
    assert outcome.stats["reconnects"] == 1
    assert server.cursors() == [None, T0 + 3_000_000 - 2_000_000]  # the last committed time, rewound 2 s
    assert rows(auto, "SELECT count(*) FROM posts")[0][0] == 8
    assert rows(auto, "SELECT sum(posts)::int FROM network_volume")[0][0] == 8
    assert outcome.stats["posts"] == 11  # three creates read again (the 2 s rewind), stored and counted once


def test_a_dead_instance_is_skipped_for_the_next(db_url: str, auto: psycopg.Connection) -> None:
    frames = [create_frame(ALICE, "r1", "RedNote", T0 + 1_000_000)]
    with FakeJetstream(frames) as server:
        settings = load_settings(environ={}, overrides={"sources": {"jetstream": {
            "instances": ["ws://127.0.0.1:9", server.url]}}})  # port 9 (discard): refused
        outcome = stream_until(settings, db_url, T0 + 1_000_000)
    assert outcome.stats["reconnects"] == 1 and rows(auto, "SELECT count(*) FROM posts")[0][0] == 1


def test_murmur_stream_killed_with_sigkill_resumes_from_its_cursor_losing_and_doubling_nothing(
        db_url: str, auto: psycopg.Connection, tmp_path: Any) -> None:
    n = 400  # 100 ms of stream time apart: a 5 s rewind re-reads 50 of them
    frames = [create_frame(ALICE if i % 2 else BOB, f"k{i}", f"post {i}" + (" about RedNote" if i % 10 == 0 else ""),
                           T0 + i * 100_000) for i in range(n)]
    last = T0 + (n - 1) * 100_000
    with FakeJetstream(frames, rate=100) as server:
        config = tmp_path / "murmur.toml"
        config.write_text(only_sources("jetstream") + f'\n[sources.jetstream]\ninstances = ["{server.url}"]\n')
        command = [sys.executable, "-m", "murmur", "--config", str(config), "stream", "jetstream"]
        first = subprocess.Popen(command, env=murmur_env(db_url), cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: cursor_of(auto) >= T0 + 100 * 100_000, timeout=60)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.communicate(timeout=30)
        killed_at = cursor_of(auto)
        assert killed_at < last  # mid-stream
        second = subprocess.Popen(command, env=murmur_env(db_url), cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: cursor_of(auto) >= last, timeout=90)
        finally:
            second.send_signal(signal.SIGTERM)
            out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        assert out.startswith("jetstream: interrupted, ")
        assert server.cursors()[1] == killed_at - 5_000_000
    assert rows(auto, "SELECT count(*) FROM posts")[0][0] == n // 10
    assert rows(auto, "SELECT sum(posts)::int FROM network_volume")[0][0] == n
    statuses = [r[0] for r in rows(auto, "SELECT status FROM job_runs WHERE job = 'stream:jetstream' ORDER BY id")]
    assert statuses == ["running", "interrupted"]  # a kill -9 leaves its row as it was


def test_crawl_skips_a_stream_source_saying_so(db_url: str) -> None:
    result = run_murmur("crawl", "jetstream", db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert "jetstream: a stream source, not crawled" in result.stderr


def test_the_consumer_imports_neither_torch_nor_scrapy() -> None:
    code = ("import sys, murmur.crawler.stream, murmur.crawler.stream.jetstream, murmur.cli_stream; "
            "print(sorted(m for m in sys.modules if m in ('torch', 'scrapy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
