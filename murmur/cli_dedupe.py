"""`murmur dedupe`: the near-duplicate back-fill; argument parsing and printing only, the work is
murmur/dedupe.py's `relink` over store/dedupe.py."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from murmur.cli_args import date_argument
from murmur.errors import EXIT_OK

if TYPE_CHECKING:
    from murmur.cli import Context


def cmd_dedupe(ctx: Context) -> int:
    from murmur.dedupe import relink
    from murmur.progress import progress
    from murmur.search import EmbeddingsUnavailable
    from murmur.sentiment.embeddings import EMBEDDING_MODEL
    from murmur.store.embeddings import embeddings_available

    settings = ctx.settings.dedupe
    with ctx.app.connect() as conn:
        if not embeddings_available(conn):
            raise EmbeddingsUnavailable()
        with progress("linked", None) as report:
            run = relink(conn, EMBEDDING_MODEL, settings, since=ctx.args.since, progress=report)
    print(f"looked at {run.posts} posts, {run.linked} links written or moved; {run.duplicates} posts are copies "
          f"of an earlier one (threshold {settings.threshold}, window {settings.window / 86400:g} days)")
    return EXIT_OK


def add_dedupe_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """`murmur dedupe`, on the parser `add` builds."""
    p = add("dedupe", cmd_dedupe, "Link every embedded post to the earliest near-copy of its text "
            "(posts.duplicate_of; dedupe.threshold, dedupe.window), earliest posts first. Scoring and `murmur "
            "embed` link the posts they embed; run this for posts embedded before, or after changing the "
            "[dedupe] settings. Idempotent.", "murmur dedupe\n  murmur dedupe --since 2025-01-13")
    p.add_argument("--since", type=date_argument, metavar="DATE", help="only posts created at or after DATE "
                   "(UTC), e.g. 2025-01-13")
