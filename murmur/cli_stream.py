"""`murmur stream`: run the stream sources in the foreground. Argument parsing, signals and printing only:
the work is `murmur.crawler.stream.run_stream`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from murmur.errors import EXIT_ERROR, EXIT_OK, UserError

if TYPE_CHECKING:
    from murmur.cli import Context
    from murmur.crawler.stream import StreamOutcome

PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def cmd_stream(ctx: Context) -> int:
    from murmur.crawler.stream import run_stream

    args = ctx.args
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"--duration {args.duration:g}: use a number of seconds above 0, e.g. --duration 600")
    sources = ctx.app.chosen_streams(args.sources)
    url = ctx.app.database_url
    stop = threading.Event()
    # SIGTERM and Ctrl-C stop the stream cleanly: the batch in hand is committed, the run recorded, exit 0.
    previous = {sig: signal.signal(sig, lambda _s, _f: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    outcomes: list[StreamOutcome] = []
    try:
        if len(sources) == 1:
            outcomes.append(run_stream(ctx.settings, url, sources[0], duration=args.duration, stop=stop,
                                       on_progress=_printer(sources[0])))
        else:  # one thread per stream source, stopped together
            threads = []
            for name in sources:
                def work(name: str = name) -> None:
                    outcomes.append(run_stream(ctx.settings, url, name, duration=args.duration, stop=stop,
                                               on_progress=_printer(name)))
                threads.append(threading.Thread(target=work, name=f"stream-{name}"))
                threads[-1].start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sys.stderr.isatty():
            print(file=sys.stderr)  # past the progress line
    for outcome in outcomes:
        print(outcome.summary())
    return EXIT_OK if outcomes and all(o.status in ("ok", "interrupted") for o in outcomes) else EXIT_ERROR


def _printer(source: str) -> Callable[[dict[str, Any]], None]:
    """Progress on stderr: one line kept up to date on a terminal, a line every 10 s elsewhere."""
    tty = sys.stderr.isatty()
    last = 0.0

    def show(stats: dict[str, Any]) -> None:
        nonlocal last
        now = time.monotonic()
        if not tty and now - last < PROGRESS_EVERY:
            return
        last = now
        lag = stats.get("lag")
        behind = f"lag {lag:.1f} s" if isinstance(lag, int | float) else "lag -"
        line = (f"{source}: {stats.get('events', 0)} events ({stats.get('events_per_second', 0):.0f}/s), "
                f"{stats.get('matched', 0)} matched, {stats.get('replies', 0)} replies, {behind}")
        if tty:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return show


def add_stream_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """`murmur stream`, on the parser `add` builds."""
    p = add("stream", cmd_stream, "Run the stream sources (jetstream: every public Bluesky post, live, no account) "
            "in the foreground until SIGTERM, Ctrl-C or --duration: posts matching the terms are stored as they "
            "are made, and the network's volume counted; progress on stderr, then a summary line.",
            "murmur stream --duration 600")
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="stream sources, e.g. jetstream (default: all "
                   "enabled)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds (default: run "
                   "until SIGTERM or Ctrl-C)")
