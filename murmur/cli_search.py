"""`murmur embed` and `murmur search`: argument parsing and printing only; the work is `App.embed` and
`App.search` (murmur/app.py, murmur/search.py) over store/embeddings.py."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from murmur.cli_args import date_argument
from murmur.errors import EXIT_OK, UserError

if TYPE_CHECKING:
    from murmur.cli import Context
    from murmur.search import Hit
    from murmur.store.embeddings import SearchFilters

FIELDS = ("text", "similarity", "source", "created_at", "label", "url")

SEARCH_EXAMPLES = (
    'murmur search "cooking dinner at home"\n'
    '  murmur search "小红书 上的 美国 网友" --since 2025-01-13 --source bluesky --limit 50\n'
    '  murmur search "TikTok ban" --lang zh --format json\n'
    '  murmur search "Lemon8 app" --hybrid     # also rank posts that hold the words'
)


def cmd_embed(ctx: Context) -> int:
    with ctx.app.connect() as conn:
        run = ctx.app.embed(conn, limit=ctx.args.limit, batch_size=ctx.args.batch_size, show_progress=True)
    state = ", interrupted" if run.interrupted else ""
    print(f"embedded {run.embedded} posts in {run.seconds:.1f}s ({run.per_second:.0f} posts/s){state}")
    return EXIT_OK


def _values(option: Sequence[str] | None) -> tuple[str, ...]:
    """A repeatable option that also takes comma lists, flattened."""
    return tuple(v.strip() for item in option or () for v in item.split(",") if v.strip())


def filters_of(args: Any) -> SearchFilters:
    """The post filters of `murmur search` and `murmur topics` (--since, --until, --source, --lang, --term)."""
    from murmur.store.embeddings import SearchFilters

    if args.since and args.until and args.since >= args.until:
        raise UserError("--since must be before --until")
    return SearchFilters(since=args.since, until=args.until, sources=_values(args.source),
                         langs=_values(args.lang), terms=_values(args.term))


def cmd_search(ctx: Context) -> int:
    args = ctx.args
    filters = filters_of(args)
    with ctx.app.connect() as conn:
        hits = ctx.app.search(conn, args.query, filters, limit=args.limit, hybrid=args.hybrid)
    write_hits(hits, args.format)
    return EXIT_OK


def _row(hit: Hit) -> dict[str, object]:
    return {"text": hit.text, "similarity": hit.similarity, "source": hit.source,
            "created_at": hit.created_at.isoformat(), "label": hit.label, "url": hit.url}


def write_hits(hits: Sequence[Hit], fmt: str) -> None:
    """Print the hits as a table (people), JSON (a list of objects) or CSV (programs)."""
    out = sys.stdout
    if fmt == "json":
        json.dump([_row(h) for h in hits], out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_row(h) for h in hits)
        return
    if not hits:
        print("no post found (is anything embedded yet? `murmur embed` embeds the stored posts)", file=sys.stderr)
        return
    for h in hits:
        text = " ".join(h.text.split())
        text = text if len(text) <= 100 else text[:99] + "…"
        print(f"{h.similarity:.3f}  {h.created_at:%Y-%m-%d}  {h.source:<10} {(h.label or '-'):<8} {text}")
        if h.url:
            print(f"{'':31}{h.url}")


def add_search_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """`murmur embed` and `murmur search`, on the parser `add` builds."""
    p = add("embed", cmd_embed, "Store the embedding of every post that has none (posts stored before embeddings "
            "were kept, or with model.embeddings = false), newest first; safe to stop and run again. Needs the "
            "pgvector extension on the PostgreSQL server.", "murmur embed\n  murmur embed --limit 10000")
    p.add_argument("--limit", type=int, help="embed at most this many posts")
    p.add_argument("--batch-size", type=int, default=256, help="posts per transaction (default 256)")

    p = add("search", cmd_search, "The posts closest in meaning to QUERY, in any language (an English query "
            "finds Chinese posts and the reverse): multilingual-e5 embeddings, centred per language, searched "
            "with PostgreSQL's HNSW index; the filters are applied inside the index scan.", SEARCH_EXAMPLES)
    p.add_argument("query", metavar="QUERY", help="a few words or a sentence, in any language")
    p.add_argument("--since", type=date_argument, metavar="DATE", help="only posts created at or after DATE "
                   "(UTC), e.g. 2025-01-13")
    p.add_argument("--until", type=date_argument, metavar="DATE", help="only posts created before DATE (UTC, "
                   "excluded), e.g. 2025-02-01")
    p.add_argument("--source", action="append", metavar="S", help="only these sources (repeatable, or a comma "
                   "list), e.g. bluesky,mastodon")
    p.add_argument("--lang", action="append", metavar="L", help="only posts in these languages, e.g. zh")
    p.add_argument("--term", action="append", metavar="T", help="only posts matching these configured terms, "
                   "e.g. RedNote")
    p.add_argument("--limit", type=int, default=20, help="how many posts (default 20, at most 1000)")
    p.add_argument("--hybrid", action="store_true", help="mix in the posts that hold the query's words "
                   "(PostgreSQL pg_trgm), fused with the semantic ranking by reciprocal rank: finds names and rare "
                   "words the embedding blurs; similarity stays the cosine similarity")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="output format (default table; json: a list of objects with text, similarity, source, "
                        "created_at, label and url)")
