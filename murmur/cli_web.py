"""`murmur web`: the dashboard alone (no scheduler), e.g. for an analyst on a copy of the database; argument
parsing only, the work is web/ (the application) and web/server.py (uvicorn)."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from murmur.errors import EXIT_OK, UserError

if TYPE_CHECKING:
    import psycopg

    from murmur.cli import Context
    from murmur.search import Hit
    from murmur.store.embeddings import SearchFilters

DEFAULT_LISTEN = "127.0.0.1:9464"


def cmd_web(ctx: Context) -> int:
    from murmur.app import App
    from murmur.demo import DEMO_DATABASE
    from murmur.store.trends import latest_model
    from murmur.web.app import create_app
    from murmur.web.server import ListenError, WebServer, check_listen
    from murmur.web.views import Context as ViewContext

    args, settings = ctx.args, ctx.settings
    address = args.listen or settings.service.http or DEFAULT_LISTEN
    token = settings.service.token
    try:
        check_listen(address, token, key="--listen" if args.listen else "config key 'service.http'")
    except ListenError as err:
        raise UserError(str(err)) from None
    app = App(settings, database=DEMO_DATABASE) if args.demo else ctx.app
    with app.connect() as conn:  # migrated once here: the dashboard's own connections are read-only
        empty = latest_model(conn) is None
    if empty and args.demo:
        raise UserError(f"the demo's database ({DEMO_DATABASE}) has no scored posts yet; run `murmur demo` first")

    def search(conn: psycopg.Connection, query: str, filters: SearchFilters, limit: int) -> list[Hit]:
        return app.search(conn, query, filters, limit=limit)

    context = ViewContext(terms=settings.terms, sources=tuple(s.name for s in settings.enabled_sources()),
                          search=search)
    try:
        server = WebServer(address, create_app(app.database_url, context=context, token=token))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"{address} is taken (does `murmur serve` run here? it serves the dashboard there "
                            "already); pick another with --listen, e.g. --listen 127.0.0.1:9465") from None
        raise UserError(f"cannot listen on {address} ({err.strerror or err}); pick another with --listen") from None
    note = " (no scored posts yet: `murmur run --once` or `murmur serve` collects some)" if empty else ""
    print(f"murmur web: the dashboard at {server.url}/{note}; Ctrl-C stops it", file=sys.stderr, flush=True)
    import signal

    # uvicorn stops cleanly on SIGINT or SIGTERM, then passes the signal on to the handler before it: a plain
    # one here, so a stop exits 0 rather than as murmur's "interrupted".
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("murmur web: stopped", file=sys.stderr)
    return EXIT_OK


def add_web_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """`murmur web`, on the parser `add` builds."""
    p = add("web", cmd_web, "Serve the dashboard alone (no crawling or scoring): trends you can filter, zoom and "
            "click through to the posts, co-occurring terms, languages, top posts, alerts, source health, and "
            "search and topics where embeddings are kept. Loopback only unless MURMUR_SERVICE__TOKEN is set. "
            "`murmur serve` serves the same at service.http.",
            "murmur web\n  murmur web --demo            # the data `murmur demo` left\n"
            "  MURMUR_SERVICE__TOKEN=$(openssl rand -hex 24) murmur web --listen 0.0.0.0:9464")
    p.add_argument("--listen", metavar="HOST:PORT", help=f"where to listen (default: service.http, else "
                   f"{DEFAULT_LISTEN}); beyond loopback it needs a token, e.g. --listen 127.0.0.1:8080")
    p.add_argument("--demo", action="store_true", help="serve the demo's database (murmur_demo) instead of yours")
