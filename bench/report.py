"""Report benchmark (issue 15): `murmur report` over millions of posts, read from the report tables.

    nice -n 10 python bench/report.py [--posts 1000000] [--database-url URL]

A fresh embedded PostgreSQL (or a fresh schema of --database-url) is filled with N generated posts over 90
days by `INSERT .. SELECT generate_series` (not the crawler): 4 sources, 6 terms (one post in five holds two),
languages en, zh, zh-Hans, es, ja and unknown, 0-3 hashtags drawn from 300 with a long tail (and the terms
written as hashtags), engagement counts; ids follow created_at as they do when posts arrive as they are made.
Every post but the Japanese ones (no model covers them: unscored_posts) is scored once. Then ANALYZE, and:

- `murmur aggregate --rebuild` as a whole process (alert detection included, as the CLI runs it);
- `murmur report` (table), `--format json` and `--html` as whole processes (best of 3, after one warm-up);
- each report's queries, timed one by one in process (the wall time of each statement over the unix
  socket: an upper bound of its server time), for the default report, --html, --by week, --by hour over
  the last two days, and a filtered one (--term, --source, --lang);
- an incremental aggregation of 1,000 new scores (1,000 new posts in the latest hour, scored), with the
  alert detector as the service runs it.

Prints one line per figure and, last, `murmur report: table T s, json J s, html H s, slowest query Q ms
(NAME), rebuild R s (S s per 1M posts), incremental I ms (1000 new scores) at N posts`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAYS = 90
START = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 1_000_000

# Post i is made at START + i/n of the range (plus up to 10 minutes), so ids follow time as they do when
# posts are collected as they are made. Hashtags: 300 with a long tail (k = 300 * u^3), the terms written
# as hashtags on one post in four (#rednote, #tiktokrefugees: the co-occurrence leaves those out); `i * 0`
# ties the hashtags' subquery to its row, else PostgreSQL would draw one set for every post.
_POSTS = """
INSERT INTO posts (source, source_id, url, author, text, lang, created_at, terms, tags, likes, reposts, replies)
SELECT src, 's' || i, 'https://' || src || '.example/' || i, 'user' || (i %% 50000),
       'generated post ' || i || ' about ' || array_to_string(terms, ' and '),
       (ARRAY['en', 'en', 'en', 'en', 'zh', 'zh', 'zh-Hans', 'es', 'ja', NULL])[1 + (i * 7) %% 10],
       %(start)s::timestamptz + (i::float8 / %(n)s::float8 * %(days)s * 86400 + random() * 600) * INTERVAL '1 second',
       terms,
       ARRAY(SELECT 'tag' || floor(300 * random() ^ 3 + i * 0)::int
             FROM generate_series(1, (random() * 3 + i * 0)::int))
         || CASE WHEN i %% 4 = 0 THEN ARRAY[lower(replace(terms[1], ' ', ''))] ELSE '{}' END,
       (random() ^ 4 * 500)::int, (random() * 5)::int, (random() * 3)::int
FROM (
    SELECT i, (ARRAY['mastodon', 'bluesky', 'lemmy', 'rednote'])[1 + i %% 4] AS src,
           CASE WHEN i %% 5 = 0
                THEN ARRAY[t[1 + i %% 6], t[1 + (i / 6 + 1) %% 6]]
                ELSE ARRAY[t[1 + (i / 3) %% 6]] END AS terms
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i,
         (SELECT ARRAY['TikTok refugee', 'TikTok难民', '小红书', 'RedNote', 'Xiaohongshu', 'Lemon8']) AS terms(t)
) g
"""
_SCORES = """
INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive, aggregated_at)
SELECT id, 'bench', CASE WHEN pos > neg AND pos > 1 - pos - neg THEN 'positive'
                         WHEN neg > pos AND neg > 1 - pos - neg THEN 'negative' ELSE 'neutral' END,
       neg, 1 - pos - neg, pos, NULL
FROM (SELECT id, (random() * 0.5)::real AS pos, (random() * 0.5)::real AS neg FROM posts
      WHERE id > %(after)s AND lang IS DISTINCT FROM 'ja') s
"""
_UNSCORED = """
INSERT INTO unscored_posts (post_id, reason)
SELECT id, 'no configured model covers language ''ja'' (covered: en, zh)' FROM posts WHERE lang = 'ja'
"""
_NEW_POSTS = """
INSERT INTO posts (source, source_id, url, author, text, lang, created_at, terms, tags, likes)
SELECT (ARRAY['mastodon', 'bluesky', 'lemmy', 'rednote'])[1 + i %% 4], 'new' || i, NULL, 'someone',
       'a new post ' || i, (ARRAY['en', 'zh'])[1 + i %% 2],
       %(at)s::timestamptz + i * INTERVAL '3 seconds', ARRAY['RedNote'], ARRAY['tag1'], i %% 7
FROM generate_series(1, 1000) AS i
"""


def fill(conn: Any, n: int, days: int = DAYS) -> None:
    for first in range(1, n + 1, CHUNK):
        last = min(n, first + CHUNK - 1)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(_POSTS, {"first": first, "last": last, "n": n, "days": days, "start": START})
        print(f"  posts {last:,}/{n:,} ({time.perf_counter() - started:.0f}s)", flush=True)
    with conn.transaction():
        conn.execute(_SCORES, {"after": 0})
        conn.execute(_UNSCORED)
    vacuum(conn)


def vacuum(conn: Any) -> None:
    """VACUUM ANALYZE (outside a transaction): visibility maps and statistics, as autovacuum leaves them."""
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False


def murmur(url: str, *args: str) -> float:
    """Seconds one `murmur` process takes, start to exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MURMUR_")} | {
        "MURMUR_DATABASE_URL": url, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "murmur", *args], env=env, capture_output=True, text=True,
                          cwd=REPO, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"murmur {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def best_of(runs: int, fn: Callable[[], float]) -> float:
    fn()  # one warm-up: the server's caches, Python's bytecode
    return min(fn() for _ in range(runs))


class Timed:
    """conn.execute, timing each statement (wall time over the socket: an upper bound of server time)."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.execute = conn, conn.execute
        self.times: list[tuple[str, float]] = []
        conn.execute = self

    def __call__(self, query: Any, *args: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        cur = self.execute(query, *args, **kw)
        rows = cur.fetchall() if cur.description else []
        self.times.append((_name(query), (time.perf_counter() - started) * 1000))

        class Done:  # the rows, fetched inside the timing, handed out as a cursor would
            description = cur.description
            rowcount = cur.rowcount

            def fetchall(self) -> list[Any]:
                return rows

            def fetchone(self) -> Any:
                return rows[0] if rows else None

            def __iter__(self) -> Any:
                return iter(rows)

        return Done()


def _name(query: Any) -> str:
    import inspect

    for frame in inspect.stack()[2:6]:
        if "/store/" in frame.filename:
            return f"{Path(frame.filename).stem}.{frame.function}"
    return str(query)[:40]


def dashboard_requests(url: str, last: datetime) -> tuple[float, str]:
    """Each dashboard data request (GET /api/VIEW, as the page sends them) through the dashboard's own app in
    process, best of 3 after a warm-up: the server's time (the query, the JSON), no network. Returns the slowest."""
    from starlette.testclient import TestClient

    from web.app import create_app

    day = (last - timedelta(days=3)).date().isoformat()
    filtered = "term=RedNote&term=小红书&source=bluesky&source=rednote&lang=zh"
    requests = [
        "trend", "trend?by=hour&since=" + (last - timedelta(days=2)).date().isoformat(), "trend?by=week",
        "trend?" + filtered, "trend?dedupe=1", "compare?compare=source", "compare?compare=lang", "share",
        "cooccurrence", "cooccurrence?" + filtered, "languages", "languages?" + filtered, "top", "top?top=50",
        f"posts?bucket={day}", f"posts?bucket={day}&page=20", "alerts", "sources", "options",
    ]
    slowest = (0.0, "")
    with TestClient(create_app(url)) as client:
        for request in requests:
            path = "/api/" + request
            first = client.get(path)
            if first.status_code != 200:
                raise SystemExit(f"dashboard {path}: HTTP {first.status_code}: {first.text[:200]}")
            times = []
            for _ in range(3):
                started = time.perf_counter()
                client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            rows = len(first.json().get("rows", []))
            print(f"dashboard /api/{request}: {min(times):.0f} ms ({rows} rows)", flush=True)
            slowest = max(slowest, (min(times), request))
    return slowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000, help="posts (default 1000000)")
    parser.add_argument("--database-url", default=os.environ.get("MURMUR_DATABASE_URL"),
                        help="a PostgreSQL to use (default: an embedded one in a temp dir)")
    parser.add_argument("--days", type=int, default=DAYS,
                        help="days the posts span (default 90); 1M posts over 9 days are 10M over 90 per bucket")
    args = parser.parse_args()

    from bench.common import fresh_schema, server_url
    from murmur.alerts import detector
    from murmur.config.settings import AlertSettings
    from murmur.reports.build import SECTIONS, build_report
    from murmur.reports.filters import Filters
    from murmur.store.db import connect
    from murmur.store.migrate import migrate
    from murmur.store.report_scan import scan_cooccurrence_counts, scan_language_counts, scan_top_scored_posts
    from murmur.store.reports import top_scored_posts
    from murmur.store.rollups import refresh_rollups
    from murmur.store.trends import aggregate

    url = fresh_schema(server_url(args.database_url), "bench_report")
    n = args.posts
    with connect(url) as conn:
        migrate(conn)
        conn.commit()
        started = time.perf_counter()
        fill(conn, n, args.days)
        print(f"filled {n:,} posts and their scores, analysed: {time.perf_counter() - started:.0f}s", flush=True)

    rebuild = murmur(url, "aggregate", "--rebuild")
    print(f"murmur aggregate --rebuild: {rebuild:.1f}s ({rebuild / n * 1e6:.1f}s per 1M posts)", flush=True)
    with connect(url) as conn:
        started = time.perf_counter()
        with conn.transaction():  # the report tables' share of the rebuild, recomputed alone
            refresh_rollups(conn, rebuild=True)
        tables_alone = time.perf_counter() - started
        print(f"of which the report tables (recomputed alone, in process): {tables_alone:.1f}s", flush=True)
        vacuum(conn)  # as autovacuum would after the rebuild's writes
        sizes = conn.execute("""SELECT string_agg(format('%s %s rows', relname, n_live_tup), ', ' ORDER BY relname)
                                FROM pg_stat_user_tables WHERE relname LIKE 'report%%' OR relname = 'aggregates'
                             """).fetchone()[0]
        print(f"tables: {sizes}")

    html = Path(tempfile.mkdtemp(prefix="murmur-bench-report-")) / "report.html"
    processes = {
        "table": best_of(3, lambda: murmur(url, "report")),
        "json": best_of(3, lambda: murmur(url, "report", "--format", "json")),
        "html": best_of(3, lambda: murmur(url, "report", "--html", str(html))),
    }
    for name, seconds in processes.items():
        print(f"murmur report ({name}): {seconds:.2f}s", flush=True)

    last = START + timedelta(days=args.days)
    reports = {
        "default": (Filters(), ("trend", "cooccurrence", "languages"), False),
        "html": (Filters(), SECTIONS, True),
        "week": (Filters(by="week"), ("trend", "cooccurrence", "languages"), True),
        "hour, last 2 days": (Filters(by="hour", since=last - timedelta(days=2)), ("trend", "cooccurrence",
                                                                                   "languages"), True),
        "filtered": (Filters(terms=("RedNote", "小红书"), sources=("bluesky", "rednote"), langs=("zh",)),
                     ("trend", "cooccurrence", "languages"), True),
    }
    slowest = (0.0, "")
    with connect(url) as conn:
        for name, (f, sections, highlights) in reports.items():
            build_report(conn, f, sections=sections, highlights=highlights)  # warm; --top 5, the default
            timed = Timed(conn)
            build_report(conn, f, sections=sections, highlights=highlights)
            conn.execute = timed.execute
            total = sum(ms for _, ms in timed.times)
            worst = max(timed.times, key=lambda t: t[1])
            print(f"report {name}: {len(timed.times)} queries, {total:.0f} ms in all, slowest "
                  f"{worst[1]:.0f} ms ({worst[0]})")
            for query, ms in timed.times:
                print(f"    {ms:7.1f} ms  {query}")
            slowest = max(slowest, (worst[1], f"{worst[0]}, {name}"))
        conn.commit()

        # The same sections counted from the posts, as every report did before the report tables.
        from murmur.reports.extras import _with_previous
        from murmur.reports.series import post_scope

        f = Filters()
        for name, call in (
            ("cooccurrence", lambda: scan_cooccurrence_counts(conn, unit="day", scope=_with_previous(f))),
            ("languages", lambda: scan_language_counts(conn, unit="day", scope=post_scope(f))),
            ("top posts (positive)", lambda: scan_top_scored_posts(conn, model="bench", scope=post_scope(f),
                                                                   positive=True, limit=5)),
        ):
            started = time.perf_counter()
            call()
            print(f"before (scanning posts), default report, {name}: {(time.perf_counter() - started) * 1000:.0f} ms")
        started = time.perf_counter()
        top_scored_posts(conn, model="bench", scope=post_scope(f), positive=False, limit=50)
        print(f"top posts, --top 50 (the most kept), whole range: {(time.perf_counter() - started) * 1000:.0f} ms")
        conn.commit()

        dashboard_slowest = dashboard_requests(url, last)

        detect = detector(AlertSettings())
        incremental = []
        for k, with_detection in ((0, False), (1, True)):
            at = last + timedelta(hours=k)
            with conn.transaction():
                conn.execute(_NEW_POSTS.replace("'new' || i", f"'new{k}-' || i"), {"at": at})
                after = conn.execute("SELECT max(post_id) FROM sentiment_scores").fetchone()[0]
                conn.execute(_SCORES, {"after": after})
            started = time.perf_counter()
            run = aggregate(conn, detect=detect if with_detection else None)
            seconds = time.perf_counter() - started
            conn.commit()
            label = "with alert detection" if with_detection else "without alert detection"
            print(f"incremental aggregation, 1,000 new scores {label}: {seconds * 1000:.0f} ms "
                  f"({run.scores} scores, {run.buckets} buckets, {run.report_buckets} report hours)", flush=True)
            incremental.append(seconds)

    print(f"dashboard: slowest data request {dashboard_slowest[0]:.0f} ms ({dashboard_slowest[1]}) at {n} posts "
          f"over {args.days} days")
    print(f"murmur report: table {processes['table']:.2f}s, json {processes['json']:.2f}s, html "
          f"{processes['html']:.2f}s, slowest query {slowest[0]:.0f} ms ({slowest[1]}), rebuild {rebuild:.1f}s "
          f"({rebuild / n * 1e6:.1f}s per 1M posts, report tables {tables_alone:.1f}s), "
          f"incremental {incremental[-1] * 1000:.0f} ms (1000 new scores) "
          f"at {n} posts over {args.days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
