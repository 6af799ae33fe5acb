"""Aggregation benchmark: `aggregate --rebuild` and an incremental run over a large, scored table, with and
without alert detection.

    python bench/aggregate.py [--posts 200000] [--database-url URL]

Posts (3 sources, 4 terms, 2 languages, engagement counts) spread over 60 days are written straight into a
fresh schema with their scores, then timed: a rebuild of every hour and day bucket, the same with the alert
detector, and incremental runs after 500 new posts in one hour (which the detector sees as a spike). Prints
`murmur aggregate: rebuild N s for P posts, incremental M ms (500 new posts)`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

_POSTS = """
INSERT INTO posts (source, source_id, text, lang, created_at, terms, likes, reposts, replies)
SELECT (ARRAY['mastodon', 'bluesky', 'lemmy'])[1 + i %% 3], 's' || i, 'text ' || i,
       (ARRAY['en', 'zh'])[1 + (i / 7) %% 2],
       TIMESTAMPTZ '2025-01-01' + (random() * 60 * 86400) * INTERVAL '1 second',
       CASE WHEN i %% 5 = 0 THEN ARRAY['RedNote', 'TikTok refugee']
            ELSE ARRAY[(ARRAY['RedNote', '小红书', 'Lemon8'])[1 + i %% 3]] END,
       (random() * 50)::int, (random() * 5)::int, (random() * 3)::int
FROM generate_series(1, %(n)s) AS i
"""
_BURST = """
INSERT INTO posts (source, source_id, text, lang, created_at, terms, likes)
SELECT 'mastodon', 'burst' || %(k)s || '-' || i, 'x', 'en',
       TIMESTAMPTZ '2025-03-01 23:00' + i * INTERVAL '1 second', ARRAY['RedNote'], 1
FROM generate_series(1, 500) AS i
"""
_SCORES = """
INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive)
SELECT id, 'bench', (ARRAY['negative', 'neutral', 'positive'])[1 + id % 3], 0.3, 0.4, 0.3
FROM posts p WHERE NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200_000, help="posts over 60 days (default 200000)")
    parser.add_argument("--database-url", default=os.environ.get("MURMUR_DATABASE_URL"),
                        help="a PostgreSQL to use (default: an embedded one in a temp dir)")
    args = parser.parse_args()

    from bench.common import fresh_schema, server_url
    from murmur.alerts import detector
    from murmur.config.settings import AlertSettings
    from murmur.store.db import connect
    from murmur.store.migrate import migrate
    from murmur.store.trends import aggregate

    url = fresh_schema(server_url(args.database_url), "bench_aggregate")
    detect = detector(AlertSettings())
    with connect(url) as conn:
        migrate(conn)
        with conn.transaction():
            conn.execute(_POSTS, {"n": args.posts})
            conn.execute(_SCORES)
        conn.execute("ANALYZE")
        conn.commit()  # ANALYZE opened a transaction: left open, every aggregate() below would be a savepoint in it

        def timed(label: str, **kw: object) -> float:
            started = time.perf_counter()
            run = aggregate(conn, **kw)  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            rows = conn.execute("SELECT count(*) FROM aggregates").fetchone()[0]
            conn.commit()  # a transaction left open would make the next aggregate() a savepoint inside it
            print(f"{label}: {seconds:.2f}s ({rows} aggregate rows, {getattr(run, 'alerts', 0)} alerts)")
            return seconds

        rebuild = timed("aggregate --rebuild", rebuild=True)
        timed("aggregate --rebuild with alert detection", rebuild=True, detect=detect)
        increments = []
        for k, with_detection in ((1, False), (2, True)):
            with conn.transaction():
                conn.execute(_BURST, {"k": k})
                conn.execute(_SCORES)
            label = "incremental, 500 new posts" + (" with alert detection" if with_detection else "")
            increments.append(timed(label, detect=detect if with_detection else None))
    steady = increments[-1] * 1000
    print(f"murmur aggregate: rebuild {rebuild:.1f}s for {args.posts} posts, "
          f"incremental {steady:.0f} ms (500 new posts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
