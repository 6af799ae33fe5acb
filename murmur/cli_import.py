"""`murmur import`: captures, dumps and exports into the database. Argument parsing and printing only: the
work is `App.import_files` (murmur/app.py) over murmur.crawler.imports."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from murmur.cli_args import date_argument
from murmur.errors import EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from murmur.cli import Context

FORMATS = ("auto", "zeeschuimer", "mediacrawler", "reddit-dump", "csv", "ndjson")
FIELDS = ("source_id, text, created_at, author, url, lang, likes, reposts, replies, parent_source_id, "
          "root_source_id, region")

EXAMPLES = (
    "murmur import zeeschuimer-export-xiaohongshu.com-2025-01-15T103000.ndjson\n"
    "  murmur import ~/MediaCrawler/data/ --since 2025-01-13 --until 2025-02-01    # a MediaCrawler data/ folder\n"
    "  murmur import RS_2025-01.zst RC_2025-01.zst --term RedNote                  # Reddit dumps\n"
    "  murmur import export.csv --format csv --source x --map text=body,created_at=timestamp,source_id=id\n"
    "  murmur import posts.ndjson.gz --format ndjson --source weibo --all --map author=user.screen_name"
)


def cmd_import(ctx: Context) -> int:
    args = ctx.args

    def skipped(path: Path, why: str) -> None:
        print(f"{path}: not imported: {why}", file=sys.stderr)

    outcomes = ctx.app.import_files(
        [Path(p) for p in args.files], fmt=args.format, source=args.source, term=args.term, keep_all=args.all,
        since=args.since, until=args.until, mapping=args.map, show_progress=True, on_skipped=skipped,
    )
    for outcome in outcomes:
        print(outcome.summary())
    if not outcomes:
        print("import: no file imported", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK if all(o.status in ("ok", "partial") for o in outcomes) else EXIT_ERROR


def add_import_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """`murmur import`, on the parser `add` builds."""
    p = add("import", cmd_import, "Import captures, dumps and exports: Zeeschuimer NDJSON, MediaCrawler JSON/JSONL/"
            "CSV files or a whole data/ folder, Reddit dumps (RS_/RC_*.zst), and any CSV or NDJSON with --source "
            "and --map. Plain, .gz and .zst files are read as streams; posts go through the crawl pipeline "
            "(terms, language) and are stored idempotently; one summary line per file, each file a job_runs row.",
            EXAMPLES)
    p.add_argument("files", nargs="+", metavar="FILE", help="files or folders (a folder is walked for .json, "
                   ".jsonl, .ndjson and .csv files, compressed or not, and RS_/RC_ dumps)")
    p.add_argument("--format", choices=FORMATS, default="auto", help="the files' format (default auto: told by "
                   "the path and the first record; csv and ndjson need --source)")
    p.add_argument("--source", metavar="NAME", help="whose posts a csv or ndjson file holds: any source name, "
                   "e.g. x, weibo, douyin, bilibili, kuaishou, rednote, tiktok")
    p.add_argument("--term", metavar="TERM", help="the search the capture came from: a post naming no configured "
                   "term is kept under TERM (a capture's own query, where it records one, comes first)")
    p.add_argument("--all", action="store_true", help="keep every post, matching or not (posts matching no term "
                   "show in per-source views and SQL, not in term trends)")
    p.add_argument("--since", type=date_argument,
                   help="only posts created at or after this time (UTC), e.g. 2025-01-13")
    p.add_argument("--until", type=date_argument, help="only posts created before this time (UTC, exclusive), "
                   "e.g. 2025-02-01")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN", help="for csv and ndjson: the "
                   f"column of a field (repeatable, or a comma list; a.b reads nested JSON). Fields: {FIELDS}. "
                   "Unmapped fields read the column of their own name (source_id or id, text or body, created_at "
                   "or timestamp); times as ISO 8601 or Unix seconds or milliseconds")
