"""`murmur demo`: the whole flow with no internet, in about a minute.

Recorded Mastodon responses (synthetic posts in the documented Status shape, shipped in
murmur/demo_data/) are served on a local port; the real spider and pipelines crawl them
into the embedded PostgreSQL (a database of its own, `murmur_demo`, reset at each demo so your
own data is never touched), then the real model scores them, aggregation runs and the report
is printed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from murmur.app import App
from murmur.config.settings import SourceSettings
from murmur.errors import EXIT_OK

if TYPE_CHECKING:
    from murmur.config import Settings

logger = logging.getLogger(__name__)

DEMO_DATABASE = "murmur_demo"


def _reset_demo_database(settings: Settings) -> str:
    """A fresh `murmur_demo` database on the same server murmur uses; returns its URL."""
    from murmur.store.db import recreate_database, resolve_url

    # On the user's server (or the embedded one), a database of its own beside theirs.
    url = resolve_url(settings.database.url, settings.database.data_dir, DEMO_DATABASE)
    recreate_database(url, DEMO_DATABASE, why="the demo needs a role that may create databases, or unset "
                      "MURMUR_DATABASE_URL to use the embedded server")
    return url


def run_demo(settings: Settings, program: str = "murmur") -> int:
    """The demo; `program` is how the user calls murmur, for the commands printed at its end."""
    from dataclasses import replace

    from murmur.console import print_aggregate, print_report, print_score
    from murmur.demo_server import DemoServer, load_recorded
    from murmur.reports.command import ReportOptions

    started = time.monotonic()
    recorded = load_recorded()
    url = _reset_demo_database(settings)
    with DemoServer(recorded) as server:
        print(f"demo: serving {sum(map(len, recorded.values()))} recorded Mastodon statuses at {server.url}")
        source = SourceSettings(
            name="mastodon",
            instances=(server.url,),
            tags=tuple(recorded),
            max_pages=10,
            download_delay=0.05,  # our own local server: no rate limit to respect
        )
        # Alerts on the demo's synthetic posts are stored in its database, never sent to your webhook.
        demo = replace(settings, sources={"mastodon": source}, alerts=replace(settings.alerts, webhook_url=None))
        app = App(demo, url)
        outcomes = app.crawl(["mastodon"])
    for o in outcomes:
        print(f"demo: crawled {o.stats.get('murmur/pages', 0)} pages, {o.new_posts} new posts ({o.status})")
    with app.connect() as conn:
        print_score(app.score(conn, show_progress=True))
        print_aggregate(app.aggregate(conn), demo.alerts)
    print(f"demo: trend report (posts and mean sentiment per day, term and source), "
          f"{time.monotonic() - started:.0f}s so far\n")
    print_report(app, ReportOptions.build())
    print(f"\ndemo: done in {time.monotonic() - started:.0f}s. The data stays in the {DEMO_DATABASE} database; "
          "look at it with:")
    print("\n".join(next_steps(program)))
    print("`murmur run --once` does the same against the configured instances.")
    return EXIT_OK


def next_steps(program: str = "murmur") -> list[str]:
    """The commands that show the demo's data, as `program` (murmur and the global options the demo ran
    with) calls them: a plain `murmur report` reads murmur's own database, which the demo never touches."""
    steps = [
        (f"{program} --database-name {DEMO_DATABASE} report", "the report above; any report option works"),
        (f"{program} web --demo", "the dashboard over the demo's data"),
        (f"{program} --database-name {DEMO_DATABASE} psql", "SQL on its tables and views (docs/sql.md)"),
    ]
    width = max(len(command) for command, _ in steps)
    return [f"  {command:<{width}}  # {why}" for command, why in steps]
