"""Scoring-worker benchmark: the real `murmur score` over posts in PostgreSQL, with its peak memory.

    python bench/worker.py [--file val.tsv] [--limit 0] [--threads 2] [--quantize auto] [--database-url URL]
    python bench/worker.py --rescore --limit 3000     # re-scoring history after a model change

The texts of `--file` (default ../shared/data/sentiment/val.tsv) are stored as posts (language "en") in
a fresh schema, then `murmur score` runs in a child process with the default model: it claims posts with
FOR UPDATE SKIP LOCKED, scores them and writes the scores, a batch per transaction. Prints the posts
scored, the seconds (process start-up and model load included), the child's peak RSS (`ru_maxrss`),
then `murmur worker: N posts/s (claim, score, write), peak RSS M MiB`, N from the worker's own timing.

With `--rescore` the posts are first marked as scored by another model (`bench-old@1`, placeholder
scores), as after a change of the default model, and the child runs `murmur score --all-posts`, which
re-scores them all: then `re-score: N posts/s, M s per 100,000 posts`.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO.parent / "shared" / "data" / "sentiment" / "val.tsv"


def read_texts(path: Path, limit: int) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r["text"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return rows[:limit] if limit > 0 else rows


def store_posts(url: str, texts: list[str]) -> None:
    from murmur.crawler.items import Post
    from murmur.store.db import connect
    from murmur.store.migrate import migrate
    from murmur.store.posts import upsert_posts

    now = datetime.now(UTC)
    posts = [Post(source="bench", source_id=str(i), url=None, author=None, text=t, created_at=now, lang="en",
                  terms=["RedNote"]) for i, t in enumerate(texts)]
    with connect(url) as conn:
        migrate(conn)
        with conn.transaction():
            upsert_posts(conn, posts)


OLD_MODEL = "bench-old@1"


def mark_scored_by_another_model(url: str, batch: int = 1000) -> None:
    """Every post scored by OLD_MODEL (a neutral placeholder), through the worker's own store functions."""
    from murmur.sentiment.scorer import Score
    from murmur.store.db import connect
    from murmur.store.scores import claim_unscored, write_scores

    with connect(url) as conn:
        while True:
            with conn.transaction():
                claimed = claim_unscored(conn, OLD_MODEL, batch)
                if not claimed:
                    return
                write_scores(conn, OLD_MODEL, [i for i, _ in claimed], [Score("neutral", 0.0, 1.0, 0.0)] * len(claimed))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE,
                        help=f"TSV with a text column (default {DEFAULT_FILE})")
    parser.add_argument("--limit", type=int, default=0, help="first N texts only (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="model.threads for the worker (default 2)")
    parser.add_argument("--quantize", default="auto", choices=("auto", "int8", "none"), help="model.quantize")
    parser.add_argument("--database-url", default=os.environ.get("MURMUR_DATABASE_URL"),
                        help="a PostgreSQL to use (default: an embedded one in a temp dir)")
    parser.add_argument("--rescore", action="store_true",
                        help="the posts were scored by another model: time `murmur score --all-posts` re-scoring them")
    args = parser.parse_args()
    texts = read_texts(args.file, args.limit)

    sys.path.insert(0, str(REPO))
    from bench.common import fresh_schema, server_url

    url = fresh_schema(server_url(args.database_url), "bench_worker")
    store_posts(url, texts)
    if args.rescore:
        mark_scored_by_another_model(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MURMUR_")}
    env.update(MURMUR_DATABASE_URL=url, MURMUR_MODEL__THREADS=str(args.threads), MURMUR_MODEL_QUANTIZE=args.quantize,
               PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    command = ["score", "--all-posts"] if args.rescore else ["score"]
    # MURMUR_BENCH_PROFILE=FILE: the child runs under cProfile, its stats written to FILE.
    profiled = os.environ.get("MURMUR_BENCH_PROFILE")
    profile = ["-m", "cProfile", "-o", profiled] if profiled else []
    child = subprocess.run([sys.executable, *profile, "-m", "murmur", "-v", *command], env=env, capture_output=True,
                           text=True,
                           check=False)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    if child.returncode != 0:
        print(child.stdout, child.stderr, sep="\n", file=sys.stderr)
        return 1
    loaded = re.search(r"model (\S+) loaded on (\S+) in ([\d.]+)s", child.stderr)
    print(child.stdout.strip())
    load_s = float(loaded.group(3)) if loaded else 0.0
    model = loaded.group(1) if loaded else "?"
    print(f"{len(texts)} posts from {args.file.name}, model {model}, {args.threads} threads: {seconds:.1f}s in all "
          f"(model load {load_s:.1f}s), worker peak RSS {peak_mib:.0f} MiB")
    # The worker's own timing: claiming, scoring and writing, from its first batch to its last commit.
    scored = re.search(r"score: (\d+) posts scored .* in ([\d.]+)s", child.stdout)
    if scored is None:
        print("the worker printed no `score: N posts scored` line", file=sys.stderr)
        return 1
    rate = int(scored.group(1)) / max(float(scored.group(2)), 1e-9)
    if args.rescore:
        print(f"re-score: {rate:.0f} posts/s, {100_000 / max(rate, 1e-9):.0f} s per 100,000 posts")
    print(f"murmur worker: {rate:.0f} posts/s (claim, score, write), peak RSS {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
