"""The import inbox of `murmur serve`: a file dropped there is imported once it stops growing and moved to
done/ (or failed/, with why), and a file another service holds is left to it."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest

from murmur.app import App
from murmur.config import load_settings
from murmur.scheduler.inbox import Inbox, Settling
from murmur.store.db import connect
from murmur.store.locks import job_lock_key, try_lock, unlock
from tests.conftest import FIXTURES
from tests.test_serve import NO_MODEL, start_service, stop, wait_for, write_config

NDJSON = FIXTURES / "import" / "posts.ndjson"
CAPTURE = FIXTURES / "zeeschuimer" / "tiktok.ndjson"


def test_a_file_is_ready_once_its_size_and_time_stay_the_same_over_two_looks_apart() -> None:
    settling = Settling(3.0)
    a, b = Path("a.ndjson"), Path("b.ndjson")
    assert settling.ready({a: (10, 1)}, now=0.0) == []  # first look: not known yet
    assert settling.ready({a: (10, 1)}, now=2.0) == []  # the same, but too soon after
    assert settling.ready({a: (10, 1), b: (5, 1)}, now=3.0) == [a]  # unchanged 3 s apart
    assert settling.ready({a: (10, 1), b: (9, 2)}, now=6.5) == [a]  # b grew: its wait starts over
    assert settling.ready({b: (9, 2)}, now=8.0) == []
    assert settling.ready({b: (9, 2)}, now=9.5) == [b]
    assert settling.ready({b: (9, 3)}, now=20.0) == []  # rewritten in place, same size: a new time
    settling.forget(b)
    assert settling.ready({a: (10, 1)}, now=21.0) == []  # a left and came back: a new file


def test_a_file_another_service_holds_is_left_to_it(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    dropped = inbox_dir / "posts.ndjson"
    shutil.copy(NDJSON, dropped)
    calls: list[Path] = []
    settings = load_settings(environ={})
    inbox = Inbox(inbox_dir, App(settings, db_url), db_url, stopping=threading.Event(),
                  importer=lambda path: calls.append(path) or [])
    with connect(db_url, autocommit=True) as other:  # another service importing the same name
        key = job_lock_key("inbox:posts.ndjson")
        assert try_lock(other, key)
        assert inbox.take(dropped) is None and dropped.exists() and calls == []
        unlock(other, key)
    assert inbox.take(dropped) == "failed" and calls == [dropped]  # the stand-in importer imported nothing
    assert (inbox_dir / "failed" / "posts.ndjson.reason").read_text() == "no data in it\n"
    assert inbox.take(dropped) is None  # moved meanwhile by the one that held it: nothing to do


@pytest.mark.slow
def test_serve_imports_a_dropped_file_once_it_stops_growing_and_fails_a_bad_one_with_a_reason(
        tmp_path: Path, db_url: str, conn: psycopg.Connection) -> None:
    pytest.importorskip("murmur.crawler.parsers.zeeschuimer")
    inbox = tmp_path / "inbox"
    config = write_config(tmp_path / "murmur.toml", f"""
terms = ["RedNote", "TikTok refugee", "小红书"]
[schedule]
score_interval = "1h"
aggregate_interval = "1h"
[model]
name = "{NO_MODEL}"
[import]
inbox = "{inbox}"
""")
    log = tmp_path / "serve.log"
    service = start_service(config, db_url, log)
    try:
        wait_for(lambda: (inbox / "done").is_dir() or service.poll() is not None, 60, "the inbox")
        assert service.poll() is None, log.read_text()
        body = CAPTURE.read_bytes()
        (inbox / ".upload.tmp").write_bytes(body)  # hidden (an uploader's temporary copy): never looked at
        bad = inbox / "notes.txt"
        bad.write_text("hello\n")
        good = inbox / "zeeschuimer-export-tiktok.com.ndjson"
        step = len(body) // 60
        with good.open("ab") as out:  # a capture still being written: a bit every half second
            for start in range(0, len(body), step):
                if (inbox / "failed" / "notes.txt").exists():
                    break
                out.write(body[start:start + step])
                out.flush()
                time.sleep(0.5)
            assert (inbox / "failed" / "notes.txt").exists(), "the bad file not in failed/ after 30 s"
            assert good.exists() and not (inbox / "done" / good.name).exists()  # growing: not taken
            out.write(body[good.stat().st_size:])
        wait_for(lambda: (inbox / "done" / good.name).exists(), 60, "the capture in done/")
        assert (inbox / ".upload.tmp").exists()
    finally:
        stop(service, log)
    text = log.read_text()
    assert "Traceback" not in text, text
    reason = (inbox / "failed" / "notes.txt.reason").read_text()
    assert "no known format" in reason and len(reason.splitlines()) == 1
    summary = (inbox / "done" / f"{good.name}.reason").read_text()
    assert len(summary.splitlines()) == 1 and "zeeschuimer" in summary and " new" in summary
    assert not good.exists() and not bad.exists()
    conn.rollback()
    [(status, new)] = conn.execute("SELECT status, (stats->'posts'->>'new')::int FROM job_runs "
                                   "WHERE job = 'import:zeeschuimer'").fetchall()
    stored = conn.execute("SELECT count(*) FROM posts WHERE source = 'tiktok' AND via = 'import'").fetchone()
    assert status == "ok" and new > 0 and stored == (new,)
