"""`murmur demo`: the whole flow with no internet, in about a minute.

Recorded Mastodon responses (synthetic posts in the documented Status shape, shipped in
crawler/recorded/mastodon/) are served on a local port; the real spider and pipelines crawl them
into the embedded PostgreSQL (a database of its own, `murmur_demo`, reset at each demo so your
own data is never touched), then the real model scores them, aggregation runs and the report
is printed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from murmur.config.settings import SourceSettings

if TYPE_CHECKING:
    from murmur.cli import Context

logger = logging.getLogger(__name__)

DEMO_DATABASE = "murmur_demo"


def _reset_demo_database(ctx: Context) -> str:
    """A fresh `murmur_demo` database on the same server murmur uses; returns its URL."""
    import psycopg
    from psycopg import sql

    from murmur.store.db import DatabaseError, connect, resolve_url

    # On the user's server (or the embedded one), a database of its own beside theirs.
    url = resolve_url(ctx.settings.database.url, ctx.settings.database.data_dir, DEMO_DATABASE)
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    try:
        with connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DEMO_DATABASE)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DATABASE)))
    except psycopg.Error as err:
        raise DatabaseError(
            f"could not create the {DEMO_DATABASE} database ({err}); the demo needs a role that may create "
            "databases, or unset MURMUR_DATABASE_URL to use the embedded server"
        ) from None
    return url


def run_demo(ctx: Context) -> int:
    from dataclasses import replace

    from murmur.cli import EXIT_OK, aggregate_all, cmd_report, score_all, use_report_defaults
    from murmur.crawler.replay import ReplayServer, load_recorded
    from murmur.crawler.runner import run_crawl
    from murmur.store.db import connect
    from murmur.store.migrate import migrate

    started = time.monotonic()
    recorded = load_recorded("mastodon")
    url = _reset_demo_database(ctx)
    with ReplayServer(recorded) as server:
        print(f"demo: serving {sum(map(len, recorded.values()))} recorded Mastodon statuses at {server.url}")
        source = SourceSettings(
            name="mastodon",
            instances=(server.url,),
            tags=tuple(recorded),
            max_pages=10,
            download_delay=0.05,  # our own local server: no rate limit to respect
        )
        settings = replace(ctx.settings, sources={"mastodon": source})
        outcomes = run_crawl(settings, ["mastodon"], url)
    for o in outcomes:
        print(f"demo: crawled {o.stats.get('murmur/pages', 0)} pages, {o.new_posts} new posts ({o.status})")
    ctx.settings = settings
    with connect(url) as conn:
        migrate(conn)
        score_all(ctx, conn)
        # Alerts on the demo's synthetic posts are stored in its database, never sent to your webhook.
        aggregate_all(conn, alerts=replace(settings.alerts, webhook_url=None))
    use_report_defaults(ctx.args)
    print(f"demo: trend report (posts and mean sentiment per day, term and source), "
          f"{time.monotonic() - started:.0f}s so far\n")
    cmd_report(ctx, DEMO_DATABASE)
    print(f"\ndemo: done in {time.monotonic() - started:.0f}s. The data stays in the {DEMO_DATABASE} database; "
          "`murmur run --once` does the same against the configured instances.")
    return EXIT_OK
