"""`murmur topics`: argument parsing and printing only; the work is murmur/topics/ over store/topics.py."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from murmur.cli_args import date_argument
from murmur.errors import EXIT_OK

if TYPE_CHECKING:
    from murmur.cli import Context
    from murmur.topics import Topic

CSV_FIELDS = ("period", "label", "words", "size", "mean_polarity", "new", "growth", "post_text", "post_url")

TOPICS_EXAMPLES = (
    "murmur topics --since 2025-01-13 --until 2025-01-27\n"
    "  murmur topics --by day --since 2025-01-13 --lang zh --format json\n"
    "  murmur topics --term RedNote --source bluesky,mastodon --format csv"
)


def cmd_topics(ctx: Context) -> int:
    from murmur.cli_search import filters_of
    from murmur.store.topics import latest_scored_model
    from murmur.store.trends import latest_model
    from murmur.topics import find_topics

    args = ctx.args
    filters = filters_of(args)
    with ctx.app.connect() as conn:
        # the model the reports show (the one aggregated last), else the one that scored last
        score_model = latest_model(conn) or latest_scored_model(conn)
        topics = find_topics(conn, filters, by=args.by, score_model=score_model)
    write_topics(topics, args.format, by=args.by)
    return EXIT_OK


def write_topics(topics: Sequence[Topic], fmt: str, *, by: str) -> None:
    """Print the topics as a table (people), JSON (a list of objects) or CSV (one row per topic)."""
    out = sys.stdout
    if fmt == "json":
        json.dump([t.as_dict() for t in topics], out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for t in topics:
            row = t.as_dict()
            first = t.posts[0] if t.posts else None
            writer.writerow({k: row[k] for k in CSV_FIELDS[:7]} | {
                "words": " ".join(t.words), "post_text": first.text if first else "",
                "post_url": first.url if first else ""})
        return
    if not topics:
        print("no topics: no embedded posts in this range (`murmur embed` embeds the stored posts)", file=sys.stderr)
        return
    from murmur.reports.text import topics_table

    print("\n".join(topics_table(topics, by=by)))


def add_topics_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """`murmur topics`, on the parser `add` builds."""
    p = add("topics", cmd_topics, "What the posts are about, per day or week: their multilingual embeddings "
            "grouped into topics (English and Chinese posts on one subject together), each with its "
            "characteristic words, size, mean sentiment and the posts nearest its centre; topics new since the "
            "previous period, or at least twice their size then, are marked. Needs the pgvector extension.",
            TOPICS_EXAMPLES)
    p.add_argument("--since", type=date_argument, metavar="DATE", help="only posts created at or after DATE "
                   "(UTC), e.g. 2025-01-13")
    p.add_argument("--until", type=date_argument, metavar="DATE", help="only posts created before DATE (UTC, "
                   "excluded), e.g. 2025-02-01")
    p.add_argument("--by", choices=("day", "week"), default="week", help="period (default week; weeks start on "
                   "Monday, UTC)")
    p.add_argument("--term", action="append", metavar="T", help="only posts matching these configured terms, "
                   "e.g. RedNote")
    p.add_argument("--source", action="append", metavar="S", help="only these sources (repeatable, or a comma "
                   "list), e.g. bluesky,mastodon")
    p.add_argument("--lang", action="append", metavar="L", help="only posts in these languages, e.g. zh")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="output format (default table; json: a list of topics with period, label, words, size, "
                        "mean_polarity, new, growth and posts)")
