"""The import inbox of `murmur serve` (`import.inbox = "DIR"`): a file dropped in DIR is imported once it
stops growing (`murmur import FILE`, format auto, in this process: imports load no model), then moved to
DIR/done/ or DIR/failed/ with `<name>.reason` beside it, the one-line summary or why it failed.

- "Stopped growing": its size and modification time the same at two looks at least `settle` seconds
  apart (`Settling`, a pure rule). Hidden files (".name", as rsync and many uploaders write their
  temporary copies) and folders are left alone.
- Two services on one database never import the same file: each file is imported under a PostgreSQL
  advisory lock named after it, and a file gone by the time the lock is taken was another's.
- A database that does not answer leaves the file where it is, for the next look; anything else about a
  file (no known format, unreadable) sends it to failed/.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from murmur.errors import UserError
from murmur.store.db import connect
from murmur.store.locks import job_lock_key, try_lock, unlock

if TYPE_CHECKING:
    from murmur.app import App
    from murmur.crawler.imports.importer import ImportOutcome

logger = logging.getLogger(__name__)

DONE, FAILED = "done", "failed"
REASON_SUFFIX = ".reason"


@dataclass(frozen=True)
class _Look:
    size: int
    mtime_ns: int
    at: float  # monotonic seconds of the first look that saw this size and time


class Settling:
    """Which files have stopped growing: seen with the same size and modification time at two looks at
    least `settle` seconds apart."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._seen: dict[Path, _Look] = {}

    def ready(self, files: Mapping[Path, tuple[int, int]], now: float) -> list[Path]:
        """The files (path -> (size, mtime_ns) at this look, taken at `now`) that are ready to import."""
        ready = []
        for path, (size, mtime_ns) in files.items():
            seen = self._seen.get(path)
            if seen is None or (seen.size, seen.mtime_ns) != (size, mtime_ns):
                self._seen[path] = _Look(size, mtime_ns, now)  # new, or still growing: look again later
            elif now - seen.at >= self.settle:
                ready.append(path)
        for path in set(self._seen) - set(files):
            del self._seen[path]  # gone (imported, or taken away)
        return sorted(ready)

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)


def _files(folder: Path) -> dict[Path, tuple[int, int]]:
    """The files dropped in `folder` (not hidden, not folders) with their size and modification time."""
    found = {}
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        try:
            st = path.stat()
        except OSError:  # taken away between the listing and the look
            continue
        if path.is_file():
            found[path] = (st.st_size, st.st_mtime_ns)
    return found


def _move(path: Path, folder: Path, reason: str) -> Path:
    """Move `path` into `folder` (a name already there gets a time prefix) with its `.reason` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists() or target.with_name(target.name + REASON_SUFFIX).exists():
        target = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{path.name}"
    path.replace(target)
    target.with_name(target.name + REASON_SUFFIX).write_text(reason.replace("\n", " ").strip() + "\n")
    return target


class Inbox:
    """Watches one folder in a thread of its own until `stopping` is set."""

    def __init__(self, folder: Path, app: App, database_url: str, *, stopping: threading.Event,
                 interval: float = 2.0, settle: float = 3.0,
                 importer: Callable[[Path], list[ImportOutcome]] | None = None) -> None:
        self.folder = folder
        self.app = app
        self.database_url = database_url
        self.stopping = stopping
        self.interval = interval
        self.settling = Settling(settle)
        self.importer = importer or (lambda path: app.import_files([path]))
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the folder (and done/, failed/) and start watching; OSError when it cannot be made."""
        for sub in (self.folder, self.folder / DONE, self.folder / FAILED):
            sub.mkdir(parents=True, exist_ok=True)
        self.thread = threading.Thread(target=self._run, name="murmur-inbox", daemon=True)
        self.thread.start()
        logger.info("inbox: importing files dropped in %s", self.folder)

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        import time

        while not self.stopping.wait(self.interval):
            try:
                for path in self.settling.ready(_files(self.folder), time.monotonic()):
                    if self.stopping.is_set():
                        break
                    self.take(path)
            except Exception as err:  # the watcher outlives any one bad look (a folder taken away, ...)
                logger.warning("inbox %s: %s", self.folder, err)

    def take(self, path: Path) -> str | None:
        """Import `path` under its lock and move it: "done", "failed", or None when it was not this
        service's to import (another holds it, or has moved it) or the database did not answer."""
        import psycopg

        key = job_lock_key(f"inbox:{path.name}")
        try:
            with connect(self.database_url, autocommit=True) as conn:
                if not try_lock(conn, key):
                    return None
                try:
                    if not path.exists():
                        return None
                    self.settling.forget(path)
                    return self._import(path)
                finally:
                    unlock(conn, key)
        except psycopg.OperationalError as err:
            logger.warning("inbox: %s waits: the database does not answer (%s)", path.name,
                           str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            return None

    def _import(self, path: Path) -> str:
        import psycopg

        try:
            outcomes = self.importer(path)
        except psycopg.OperationalError:
            raise  # the database, not the file: it stays for the next look
        except UserError as err:
            reason = str(err).removeprefix(f"{path}: ")
            outcomes = []
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            outcomes = []
        else:
            reason = "; ".join(o.summary() for o in outcomes) or "no data in it"
        ok = bool(outcomes) and all(o.status in ("ok", "partial") for o in outcomes)
        where = _move(path, self.folder / (DONE if ok else FAILED), reason)
        if ok:
            logger.info("inbox: imported %s -> %s: %s", path.name, where, reason)
        else:
            logger.warning("inbox: %s failed -> %s: %s", path.name, where, reason)
        return DONE if ok else FAILED
