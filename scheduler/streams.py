"""`murmur serve` keeps every enabled stream source running: one supervised child process per source
(`python -m murmur stream <source>`), as crawls run in children (no model loaded there, a crash there
cannot take the service down).

- A child that exits (it crashed, or gave up on a connection) is started again after a pause that
  doubles each time, from `backoff_initial` up to `backoff_max`; a child that ran `healthy_after`
  seconds or more counts as having worked, and the pause starts over.
- On stop, each child gets SIGTERM (the consumer commits its batch and cursor and exits), then
  `grace` seconds, then SIGKILL (its cursor is where its last commit left it: nothing is lost).
- The supervisor only needs the command line: `command(source)` gives it, so it is tested with any.
- The consumer itself takes an advisory lock per source, so a second service's child waits: a hot
  standby, as for the crawls.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class StreamChild:
    """What the supervisor knows of one source's child: for status lines and tests."""

    source: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float | None = None  # time.monotonic() of the current child's start
    starts: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes of the children that ended, oldest first
    next_delay: float = 0.0


class StreamSupervisor:
    """Keeps one child per stream source running until `stop()`."""

    def __init__(
        self,
        sources: Sequence[str],
        command: Callable[[str], list[str]],
        *,
        env: Mapping[str, str] | None = None,
        grace: float = 60.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        healthy_after: float = 60.0,
        on_exit: Callable[[str, int, float], None] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.command = command
        self.env = dict(env) if env is not None else None
        self.grace = grace
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self.on_exit = on_exit  # (source, exit code, seconds it ran), e.g. the service's metrics
        self.children = {source: StreamChild(source) for source in sources}
        self.stopping = stopping or threading.Event()  # the service's own: its SIGTERM stops the children
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """One thread per source; each starts its child at once."""
        for child in self.children.values():
            thread = threading.Thread(target=self._keep_running, args=(child,), name=f"stream:{child.source}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM every child, SIGKILL what is left after the grace time, and wait for the threads."""
        self.stopping.set()
        deadline = time.monotonic() + (timeout if timeout is not None else self.grace + 5.0)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _keep_running(self, child: StreamChild) -> None:
        delay = self.backoff_initial
        while not self.stopping.is_set():
            code, ran = self._run_once(child)
            if self.stopping.is_set():
                break
            if ran >= self.healthy_after:
                delay = self.backoff_initial
            child.next_delay = delay
            logger.warning("stream %s: the consumer exited with %s after %.0fs; starting it again in %gs",
                           child.source, code, ran, delay)
            if self.stopping.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max)

    def _run_once(self, child: StreamChild) -> tuple[int, float]:
        """Start the child, wait for it to end (or stop it on shutdown); (exit code, seconds it ran)."""
        started = time.monotonic()
        try:
            process = subprocess.Popen(self.command(child.source), env=self.env)
        except OSError as err:  # a bad interpreter path, say: counted as a failed start, retried later
            logger.error("stream %s: cannot start the consumer (%s)", child.source, err)
            return -1, 0.0
        child.process, child.started_at = process, started
        child.starts += 1
        if child.starts > 1:
            logger.info("stream %s: consumer started again (pid %d)", child.source, process.pid)
        try:
            while True:
                try:
                    code = process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if self.stopping.is_set():
                        code = self._terminate(child.source, process)
                        break
        finally:
            child.process = None
        ran = time.monotonic() - started
        child.exits.append(code)
        if self.on_exit is not None:
            try:
                self.on_exit(child.source, code, ran)
            except Exception:  # a metrics hiccup must not stop the supervision
                logger.exception("stream %s: on_exit failed", child.source)
        return code, ran

    def _terminate(self, source: str, process: subprocess.Popen[bytes]) -> int:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            logger.warning("stream %s: the consumer did not stop %gs after SIGTERM; killing it", source, self.grace)
            process.kill()
            return process.wait()
