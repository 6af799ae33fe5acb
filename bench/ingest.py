"""Ingest benchmark: the real spider and pipelines crawl 20,000 generated Mastodon statuses (pages
of 40) from a local server into PostgreSQL, beside the same crawl with the tutorial pipeline (one
INSERT and commit per item).

    python bench/ingest.py [--posts 20000] [--tags 4] [--database-url URL]

Prints `murmur ingest: N posts/s, Rx the per-item pipeline`. Each crawl runs in its own process
(a Scrapy reactor starts once per process), timed from the first request to the spider closing,
which is after the store pipeline's last commit. AutoThrottle and the download delay are off:
the server is local, so they would measure politeness, not the pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

PER_ITEM = "bench.ingest.PerItemStorePipeline"


class PerItemStorePipeline:
    """The Scrapy tutorial's way: one INSERT and one commit per item (the baseline)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> PerItemStorePipeline:
        return cls(crawler.settings.get("MURMUR_DATABASE_URL"))

    def open_spider(self) -> None:
        from murmur.store.db import connect
        from murmur.store.migrate import migrate

        self.conn = connect(self.url)
        migrate(self.conn)

    def close_spider(self) -> None:
        self.conn.close()

    def process_item(self, item: Any) -> Any:
        from psycopg.types.json import Jsonb

        from murmur.crawler.items import Post

        if isinstance(item, Post):
            self.conn.execute(
                """
                INSERT INTO posts (source, source_id, url, author, text, lang, created_at, terms, tags,
                                   replies, reposts, likes, raw)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (source, source_id) DO NOTHING
                """,
                (item.source, item.source_id, item.url, item.author, item.text, item.lang, item.created_at,
                 item.terms, item.tags, item.metrics.get("replies"), item.metrics.get("reposts"),
                 item.metrics.get("likes"), Jsonb(item.raw)),
            )
            self.conn.commit()
        return item


def crawl_once(server_url: str, tags: list[str], database_url: str, variant: str) -> dict[str, Any]:
    """In a child process: crawl everything the server has, return timing and counts."""
    from dataclasses import replace

    from scrapy import signals

    from murmur.config import load_settings
    from murmur.config.settings import SourceSettings
    from murmur.crawler.runner import run_crawl

    settings = load_settings(environ={})
    source = SourceSettings(name="mastodon", instances=(server_url,), tags=tuple(tags), max_pages=10_000,
                            download_delay=0.0, concurrency=len(tags))
    settings = replace(settings, terms=("RedNote", "小红书", "TikTok refugee"), sources={"mastodon": source})
    marks: dict[str, float] = {}

    class Timer:
        """Marks the first request and the close (Scrapy keeps weak references: bound methods of an
        extension the crawler holds, not lambdas)."""

        @classmethod
        def from_crawler(cls, crawler: Any) -> Timer:
            timer = cls()
            crawler.signals.connect(timer.first, signal=signals.request_reached_downloader)
            crawler.signals.connect(timer.closed, signal=signals.spider_closed)
            return timer

        def first(self, **_: Any) -> None:
            marks.setdefault("first", time.perf_counter())

        def closed(self, **_: Any) -> None:
            marks["closed"] = time.perf_counter()

    extra: dict[str, Any] = {"AUTOTHROTTLE_ENABLED": False, "EXTENSIONS": {Timer: 0}}
    if variant == "per-item":
        extra["ITEM_PIPELINES"] = {
            "murmur.crawler.pipelines.NormalisePipeline": 100,
            "murmur.crawler.pipelines.MatchTermsPipeline": 200,
            "murmur.crawler.pipelines.DetectLanguagePipeline": 300,
            PER_ITEM: 900,
        }
    outcome = run_crawl(settings, ["mastodon"], database_url, extra=extra)[0]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    return {"variant": variant, "seconds": marks["closed"] - marks["first"], "stored": stored,
            "pages": outcome.stats.get("murmur/pages", 0), "status": outcome.status,
            "store_seconds": outcome.stats.get("murmur/store/seconds", 0.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=20_000, help="statuses served (default 20000)")
    parser.add_argument("--tags", type=int, default=4, help="hashtags they are spread over (default 4)")
    parser.add_argument("--database-url", default=os.environ.get("MURMUR_DATABASE_URL"),
                        help="a PostgreSQL to write to (default: an embedded one in a temp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # variant|server|tags|db
        variant, server, tags, db = args.child.split("|", 3)
        print(json.dumps(crawl_once(server, tags.split(","), db, variant)))
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bench/ is not a package root
    from bench.common import fresh_schema
    from bench.common import server_url as bench_server
    from tests.fakemastodon import FakeMastodon, generate_statuses

    server_url = bench_server(args.database_url)
    per_tag = args.posts // args.tags
    tags = [f"rednote{i}" if i else "rednote" for i in range(args.tags)]
    statuses = {
        tag: generate_statuses(per_tag, tag="rednote", start_id=110_000_000_000_000_000 + i * 10_000_000, seed=i)
        for i, tag in enumerate(tags)
    }
    results = {}
    with FakeMastodon(statuses) as server:
        for variant in ("batched", "per-item"):
            db = fresh_schema(server_url, f"bench_{variant.replace('-', '_')}")
            child = subprocess.run(
                [sys.executable, __file__, "--child", f"{variant}|{server.url}|{','.join(tags)}|{db}"],
                capture_output=True, text=True, check=False,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
            r = results[variant]
            rate = r["stored"] / r["seconds"]
            print(f"{variant:>9}: {r['stored']} posts in {r['seconds']:.2f}s = {rate:.0f} posts/s "
                  f"({r['pages']} pages, {r['store_seconds']:.2f}s in batched writes, {r['status']})")
    batched = results["batched"]["stored"] / results["batched"]["seconds"]
    per_item = results["per-item"]["stored"] / results["per-item"]["seconds"]
    print(f"murmur ingest: {batched:.0f} posts/s, {batched / per_item:.1f}x the per-item pipeline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
