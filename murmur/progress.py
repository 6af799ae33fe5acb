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
