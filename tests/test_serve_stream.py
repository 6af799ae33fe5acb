"""`murmur serve` keeps its stream sources running: the supervisor (scheduler/streams.py) with real child
processes: a child that dies is started again after a pause that doubles, a killed one too, and a stop
sends SIGTERM then SIGKILL after the grace time; then the real service with the jetstream source pointed
at a local Jetstream server (tests/fakejetstream.py), killed children and SIGTERM included."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from murmur.cli import main
from murmur.scheduler.metrics import DatabaseCollector
from murmur.scheduler.streams import StreamSupervisor
from murmur.store.db import connect
from murmur.store.locks import job_lock_key, try_lock


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def child(script: str, log: Path) -> Callable[[str], list[str]]:
    """A command line running `script` with LOG (a file it appends to) and SOURCE set."""
    prelude = f"import os, signal, sys, time\nLOG = {str(log)!r}\n"
    return lambda source: [sys.executable, "-c", prelude + f"SOURCE = {source!r}\n" + script]


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_a_child_that_exits_is_started_again_after_a_pause_that_doubles(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    script = "open(LOG, 'a').write(f'{time.monotonic()}\\n')\nsys.exit(3)\n"
    supervisor = StreamSupervisor(["jetstream"], child(script, log), backoff_initial=0.2, backoff_max=0.8,
                                  healthy_after=60)
    supervisor.start()
    try:
        wait_for(lambda: len(lines(log)) >= 5, 20, "five starts")
    finally:
        supervisor.stop(timeout=10)
    starts = [float(t) for t in lines(log)]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # pauses of 0.2, 0.4, 0.8, 0.8 s (the cap) between the starts, plus each child's own start-up time
    for gap, pause in zip(gaps, (0.2, 0.4, 0.8, 0.8), strict=False):
        assert pause <= gap < pause + 1.5, gaps
    assert supervisor.children["jetstream"].exits[:4] == [3, 3, 3, 3]


def test_a_child_that_ran_a_while_starts_again_at_once(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    script = "open(LOG, 'a').write(f'{time.monotonic()}\\n')\ntime.sleep(0.5)\nsys.exit(1)\n"
    supervisor = StreamSupervisor(["jetstream"], child(script, log), backoff_initial=0.1, backoff_max=30,
                                  healthy_after=0.3)  # every run counts as having worked: no growing pause
    supervisor.start()
    try:
        wait_for(lambda: len(lines(log)) >= 4, 20, "four starts")
    finally:
        supervisor.stop(timeout=10)
    starts = [float(t) for t in lines(log)]
    assert all(b - a < 0.5 + 0.1 + 1.5 for a, b in zip(starts, starts[1:], strict=False)), starts


def test_a_killed_child_is_replaced_and_stop_sends_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "events"
    script = ("def bye(*_):\n    open(LOG, 'a').write(f'stopped:{os.getpid()}\\n')\n    sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\nopen(LOG, 'a').write(f'started:{os.getpid()}\\n')\n"
              "while True:\n    time.sleep(0.1)\n")
    supervisor = StreamSupervisor(["jetstream", "other"], child(script, log), backoff_initial=0.1, grace=10)
    supervisor.start()
    try:
        wait_for(lambda: len(lines(log)) == 2, 20, "both children")
        first = supervisor.children["jetstream"].process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: len(lines(log)) == 3, 20, "the killed child replaced")
        assert supervisor.children["jetstream"].exits == [-signal.SIGKILL]
    finally:
        supervisor.stop(timeout=20)
    events = lines(log)
    started = {e.split(":")[1] for e in events if e.startswith("started:")}
    stopped = {e.split(":")[1] for e in events if e.startswith("stopped:")}
    assert len(started) == 3 and stopped == started - {str(first.pid)}  # the two live ones had SIGTERM
    assert all(c.process is None for c in supervisor.children.values())


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_time(tmp_path: Path) -> None:
    log = tmp_path / "events"
    script = ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\nopen(LOG, 'a').write('started\\n')\n"
              "while True:\n    time.sleep(0.1)\n")
    supervisor = StreamSupervisor(["jetstream"], child(script, log), grace=1.0)
    supervisor.start()
    wait_for(lambda: lines(log) == ["started"], 20, "the child")
    began = time.monotonic()
    supervisor.stop(timeout=20)
    assert 1.0 <= time.monotonic() - began < 10
    assert supervisor.children["jetstream"].exits == [-signal.SIGKILL]


# --- status, /metrics and source_health from the stream's job_runs rows ---------------------------


def stream_runs(conn: psycopg.Connection) -> None:
    """A consumer that lost its connection, and one running now with its stats as the consumer writes them."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO job_runs (job, started_at, finished_at, status, stats, error) VALUES"
            " ('stream:jetstream', now() - INTERVAL '300 s', now() - INTERVAL '200 s', 'failed',"
            " '{\"events\": 50, \"reconnects\": 1}', 'OSError: connection reset'),"
            " ('stream:jetstream', now() - INTERVAL '100 s', NULL, 'running', jsonb_build_object("
            " 'events', 12000, 'matched', 12, 'lag', 0.8, 'reconnects', 2, 'events_per_second', 150.5,"
            " 'connected_since', to_char(now() - INTERVAL '40 s', 'YYYY-MM-DD\"T\"HH24:MI:SSOF')), NULL)"
        )


def test_status_and_metrics_show_a_connected_stream(db_url: str, conn: psycopg.Connection,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    stream_runs(conn)
    with connect(db_url, autocommit=True) as consumer:  # the consumer's lock: a live process holds it
        assert try_lock(consumer, job_lock_key("stream:jetstream"))
        assert main(["--database-url", db_url, "status", "--format", "json"]) == 0
        status = json.loads(capsys.readouterr().out)
        job = next(j for j in status["jobs"] if j["job"] == "stream:jetstream")
        assert job["stream"]["events_per_second"] == 150.5 and job["stream"]["matched_posts"] == 12
        assert job["stream"]["lag_seconds"] == 0.8 and job["stream"]["reconnects_24h"] == 4  # 1 + 2 + a restart
        since = datetime.fromisoformat(job["stream"]["connected_since"])
        assert abs((datetime.now(UTC) - since).total_seconds() - 40) < 5
        assert job["last_run"]["status"] == "running" and job["next_run"] == "not scheduled"
        assert main(["--database-url", db_url, "status"]) == 0
        table = capsys.readouterr().out
        assert re.search(r"^stream:jetstream\s.*\brunning\s+running\s+12\b", table, re.M), table
        assert re.search(r"^stream:jetstream: connected since .*, 150\.5 events/s, 12 matched posts, lag 0\.8s, "
                         r"4 reconnects in 24h$", table, re.M), table
        gauges = {(s.name, s.labels.get("source")): s.value
                  for family in DatabaseCollector(db_url).collect() for s in family.samples}
        assert gauges[("murmur_stream_connected", "jetstream")] == 1
        assert gauges[("murmur_stream_events_per_second", "jetstream")] == 150.5
        assert gauges[("murmur_stream_matched_posts", "jetstream")] == 12
        assert gauges[("murmur_stream_lag_seconds", "jetstream")] == 0.8
        assert gauges[("murmur_stream_reconnects_24h", "jetstream")] == 4
        assert time.time() - gauges[("murmur_stream_connected_since_timestamp_seconds", "jetstream")] < 60
    # The consumer was killed (its lock went with its session): its row still says 'running', but nothing is
    # connected.
    assert main(["--database-url", db_url, "status", "--format", "json"]) == 0
    job = next(j for j in json.loads(capsys.readouterr().out)["jobs"] if j["job"] == "stream:jetstream")
    assert job["stream"]["connected_since"] is None
    gauges = {(s.name, s.labels.get("source")): s.value
              for family in DatabaseCollector(db_url).collect() for s in family.samples}
    assert gauges[("murmur_stream_connected", "jetstream")] == 0


# --- the real service, its jetstream child and a local Jetstream -----------------------------------


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_the_service_keeps_the_stream_running_restarts_a_killed_child_and_stops_cleanly(
        tmp_path: Path, db_url: str, conn: psycopg.Connection) -> None:
    import subprocess

    from tests.conftest import REPO, murmur_env, only_sources
    from tests.fakejetstream import FakeJetstream, create_frame

    did, t0 = "did:plc:servetest", 1_736_900_000_000_000
    frames = [create_frame(did, f"a{i:04d}", f"post {i} about RedNote" if i % 2 == 0 else f"post {i}", t0 + i * 1000)
              for i in range(20)]
    with FakeJetstream(frames) as server:
        config = tmp_path / "murmur.toml"
        config.write_text(f"""
terms = ["RedNote"]
[sources.jetstream]
instances = [{json.dumps(server.url)}]
[schedule]
score_interval = "1h"
aggregate_interval = "1h"
[model]
name = "/nonexistent/model"
""" + only_sources("jetstream"))
        log = tmp_path / "serve.log"
        service = subprocess.Popen([sys.executable, "-m", "murmur", "--config", str(config), "serve"],
                                   env=murmur_env(db_url), cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)

        def streamed() -> int:
            conn.rollback()
            row = conn.execute("SELECT count(*) FROM posts WHERE source = 'bluesky' AND via = 'stream'").fetchone()
            return int(row[0]) if row else 0

        try:
            wait_for(lambda: streamed() == 10, 120, "the matching posts streamed in")
            kids = [p for p in children_of(service.pid) if alive(p)]
            assert len(kids) == 1, log.read_text()
            os.kill(kids[0], signal.SIGKILL)
            wait_for(lambda: len(server.connections) >= 2, 60, "the consumer started again")
            assert server.cursors()[-1] is not None  # it resumed from its cursor
            server.add([create_frame(did, "b0001", "after the restart, RedNote", t0 + 60_000_000)])
            wait_for(lambda: streamed() == 11, 60, "a post after the restart")
            replacement = [p for p in children_of(service.pid) if alive(p)]
            assert len(replacement) == 1 and replacement != kids
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=90) == 0, log.read_text()
            assert not alive(replacement[0]), "the stream child outlived the service"
        finally:
            service.kill()
        conn.rollback()
        runs = conn.execute("SELECT status FROM job_runs WHERE job = 'stream:jetstream' ORDER BY id").fetchall()
        # the killed child's row stays 'running' (no process holds its lock); the last one ended cleanly
        assert len(runs) == 2 and runs[-1][0] in ("ok", "interrupted"), runs
        text = log.read_text()
        assert "starting it again" in text and "Traceback" not in text, text
