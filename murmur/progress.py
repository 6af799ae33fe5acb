"""One progress display for every long command (score, rebuild, imports, back-fills): tqdm on a
terminal, a DEBUG log line now and then elsewhere (a service's journal wants no carriage returns)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("murmur")

LOG_EVERY = 10.0  # seconds between log lines when stderr is not a terminal


@contextmanager
def progress(label: str, total: int | None = None, *, unit: str = "posts") -> Iterator[Callable[[int], None]]:
    """`with progress("scored", total) as report: ... report(done_so_far)` — `done` is a running total."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total or None, desc=label, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True,
                   leave=False)
        seen = 0

        def report(done: int) -> None:
            nonlocal seen
            bar.update(done - seen)
            seen = done

        try:
            yield report
        finally:
            bar.close()
        return
    started = last = time.monotonic()

    def log(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= LOG_EVERY:
            last = now
            of = f"/{total}" if total else ""
            logger.debug("%s: %d%s %s (%.0f/s)", label, done, of, unit, done / max(now - started, 1e-9))

    yield log


@contextmanager
def file_progress(label: str, total_bytes: int | None, *, unit: str = "records"
                  ) -> Iterator[Callable[[int, int], None]]:
    """`with file_progress("import x.zst", size) as report: ... report(bytes_read, items_so_far)`: a bar of
    the file's bytes with the items and items/s beside it on a terminal, an INFO line every 10 s elsewhere."""
    started = last = time.monotonic()
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total_bytes or None, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                   file=sys.stderr, dynamic_ncols=True, leave=False)
        seen = 0

        def update(done: int, items: int) -> None:
            nonlocal seen
            rate = items / max(time.monotonic() - started, 1e-9)
            bar.set_postfix_str(f"{items} {unit}, {rate:.0f}/s", refresh=False)
            bar.update(done - seen)
            seen = done

        try:
            yield update
        finally:
            bar.close()
        return

    def log(done: int, items: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= LOG_EVERY:
            last = now
            of = f" of {total_bytes / 2**20:.1f}" if total_bytes else ""
            logger.info("%s: %.1f%s MB read, %d %s (%.0f/s)", label, done / 2**20, of, items, unit,
                        items / max(now - started, 1e-9))

    yield log
