"""Search and topics benchmark (issue 14): `murmur search` over 1,000,000 stored embeddings, the HNSW index's
recall against an exact scan, and `murmur topics` over a week of 100,000 posts.

    python bench/search.py [--posts 1000000] [--sample 2000] [--sigma 0.01] [--data-dir DIR] [--reuse]
                           [--ef 100,200,400]

The data: `--sample` texts per language (seeded; default English from val.tsv, Chinese from zh_hotel.tsv and
zh_shopping.tsv of ../shared/data/sentiment, `--texts LANG=FILE[,FILE]` for others) are embedded by the
built-in model through the scorer's own pass (`App.plain_embedder`, as `murmur score` and `murmur search`
do) and centred with their language's mean (sentiment/centring.py): the real vectors. Every other post is a
copy of one of them (its text and language) whose vector is derived from the real one (`derived`: a random
mixture of it and two other texts of its language, plus Gaussian noise of `--sigma` per dimension,
re-normalised). Posts get a source (bluesky 55%, mastodon 25%, reddit 12%, lemmy 6%, rss 2%), a created_at
spread evenly over `--days` from Monday 2025-01-06 (70 days: a week holds a tenth of the posts), terms
(RedNote 72%, TikTok refugee 25%, 小红书 24%, Lemon8 3%) and a placeholder score, so filters keep from under
1% to half of the posts. Embeddings are loaded with binary COPY with the HNSW index dropped, then the index
is built (`maintenance_work_mem` `--build-mem`, one parallel worker), as an operator would after a bulk load.

Measured, with the model loaded once and warm, on the embedded server with murmur's memory settings
(store/db.py server_settings; `SHOW shared_buffers` is printed): the whole `App.search` call (what `murmur
search` runs: the query's language, its embedding, centring, the index query with filters inside it) p50/p95
over 50 English and Chinese queries, without and with filters, after a first pass over them (printed as the
first pass: the pages they need read from disk or the kernel's cache into PostgreSQL's, as a service that has
been answering has them); recall@10 of `search_nearest` (its own hnsw.ef_search and iterative scan settings)
against the same query as an exact scan (index scans off); and `find_topics` for the first week (no week
before it to compare with). `--data-dir` keeps the embedded PostgreSQL; `--reuse` runs the measurements on a
database an earlier run filled there (or in `--database-url`'s schema).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "sentiment"
DEFAULT_TEXTS = (f"en={DATA / 'val.tsv'}", f"zh={DATA / 'zh_hotel.tsv'},{DATA / 'zh_shopping.tsv'}")
SCHEMA = "bench_search"
START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday: the first week is a whole ISO week
SEED = 14
SCORE_MODEL = "bench"

QUERIES = (
    "the hotel room was clean and quiet", "delivery was late and the package was damaged",
    "battery life of my new phone", "Dark Souls release date", "concert tickets for tonight",
    "great football match last night", "the presidential election debate", "Apple announces the new iPhone",
    "Star Wars movie trailer", "breakfast at the hotel was good", "cheap price but good quality",
    "customer service was rude to me", "happy birthday to my best friend", "weekend plans with the family",
    "that book was so boring", "season finale of my favourite series", "Trump speech on TV",
    "party on Friday night", "rain and bad weather all day", "my laptop screen broke",
    "fresh fruit, very sweet", "shuttle bus from the airport", "Christmas shopping", "playing Pokemon Go",
    "tired of waiting in line",
    "酒店房间干净安静", "快递太慢了，包装也破了", "手机电池续航怎么样", "早餐很丰富", "价格便宜质量好",
    "客服态度很差", "这本书很无聊", "水果很新鲜很甜", "离机场很近", "电脑屏幕坏了", "衣服尺码偏小",
    "热水器安装师傅很专业", "周末和家人出去玩", "昨晚的足球比赛", "美国大选辩论", "新电影的预告片",
    "音乐会门票", "服务员很热情", "房间隔音不好", "性价比很高", "送货上门很方便", "洗发水味道很香",
    "游戏发布日期", "下雨天心情不好", "生日快乐",
)

_SEEDS = "CREATE TEMP TABLE seeds (k int PRIMARY KEY, text text NOT NULL, lang text NOT NULL)"
# Post i is a copy of seed (i - 1) % seeds; the seeds themselves are posts 1..seeds. setseed: the same
# sources, times and terms every run.
_POSTS = """
INSERT INTO posts (id, source, source_id, url, text, lang, created_at, terms)
SELECT i, CASE WHEN r1 < 0.55 THEN 'bluesky' WHEN r1 < 0.80 THEN 'mastodon' WHEN r1 < 0.92 THEN 'reddit'
               WHEN r1 < 0.98 THEN 'lemmy' ELSE 'rss' END,
       'b' || i, 'https://bench.murmur.invalid/' || i, s.text, s.lang,
       %(start)s::timestamptz + (i - 1) * (%(days)s * INTERVAL '1 day') / %(n)s,
       CASE WHEN r2 < 0.60 THEN ARRAY['RedNote'] || CASE WHEN r3 < 0.2 THEN ARRAY['TikTok refugee'] ELSE '{}' END
            WHEN r2 < 0.73 THEN ARRAY['TikTok refugee'] WHEN r2 < 0.85 THEN ARRAY['小红书']
            WHEN r2 < 0.97 THEN ARRAY['RedNote', '小红书'] ELSE ARRAY['Lemon8'] END
FROM (SELECT i, random() AS r1, random() AS r2, random() AS r3 FROM generate_series(1, %(n)s) AS i) g
JOIN seeds s ON s.k = (g.i - 1) %% %(seeds)s
"""
_SCORES = """
INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive)
SELECT id, %(model)s, (ARRAY['negative', 'neutral', 'positive'])[1 + id %% 3], 0.2 + 0.3 * (id %% 2), 0.3, 0.2
FROM posts
"""
_INDEX = "CREATE INDEX post_embeddings_hnsw_idx ON post_embeddings USING hnsw (embedding vector_cosine_ops)"


def schema_url(server: str, name: str) -> str:
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options={quote(f'-csearch_path={name}')}"


def read_samples(specs: Sequence[str], per_lang: int) -> tuple[list[str], list[str]]:
    """`per_lang` texts (seeded, distinct) of each LANG=FILE[,FILE]: texts and their languages."""
    from murmur.sentiment.centring import read_texts

    texts, langs = [], []
    for spec in specs:
        lang, _, names = spec.partition("=")
        paths = [Path(n).expanduser() for n in names.split(",") if n]
        missing = [str(p) for p in paths if not p.is_file()]
        if not lang or not paths or missing:
            raise SystemExit(f"--texts {spec}: give LANG=FILE[,FILE] of TSVs with a text column"
                             + (f" ({', '.join(missing)} not found)" if missing else ""))
        pool = sorted(set(read_texts(paths)))
        chosen = random.Random(SEED).sample(pool, min(per_lang, len(pool)))
        texts += chosen
        langs += [lang] * len(chosen)
    order = list(range(len(texts)))
    random.Random(SEED).shuffle(order)  # languages interleaved: any run of posts (a week) has them all
    return [texts[i] for i in order], [langs[i] for i in order]


def derived(seeds: np.ndarray, langs: Sequence[str], first: int, count: int, sigma: float,
            rng: np.random.Generator) -> np.ndarray:
    """The vectors of posts first..first+count-1 (1-based): seed (i-1) % len(seeds) itself for the first
    len(seeds) posts; every other post's is a random mixture of its seed and two other seeds of its language
    (weights drawn from Dirichlet(1, 1, 1)), plus N(0, sigma^2) per dimension, re-normalised.

    Why mixtures: copies of a few thousand seeds with noise alone, or each moved a little towards one other
    seed, form tight islands of near-identical vectors around each seed (250 a seed at 1M), a graph HNSW
    cannot cross and inside which "the exact top 10" is noise: measured here, recall@10 0.49 (noise alone) and
    0.18-0.32 (moved towards one seed) at 1M, which a million different posts would not show. Mixtures of
    three texts fill the space between the texts of a language continuously, as a million posts on a few
    thousand subjects mixing them would.
    """
    lang_of = np.asarray(langs)
    ids = np.arange(first, first + count)
    own = (ids - 1) % len(seeds)
    out = seeds[own].copy()
    copies = np.flatnonzero(ids > len(seeds))
    if len(copies):
        others = np.empty((len(copies), 2), dtype=int)
        for lang in sorted(set(langs)):
            pool = np.flatnonzero(lang_of == lang)
            mine = lang_of[own[copies]] == lang
            others[mine] = pool[rng.integers(len(pool), size=(int(mine.sum()), 2))]
        w = rng.dirichlet((1.0, 1.0, 1.0), size=len(copies)).astype(np.float32)
        out[copies] = (w[:, :1] * seeds[own[copies]] + w[:, 1:2] * seeds[others[:, 0]]
                       + w[:, 2:] * seeds[others[:, 1]])
        out[copies] += rng.normal(0.0, sigma, size=(len(copies), seeds.shape[1])).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def fill(conn: Any, app: Any, args: argparse.Namespace, model: str) -> dict[str, Any]:
    """Posts, scores and embeddings as the module docstring says, then the HNSW index; what was made."""
    from psycopg import sql

    from murmur.sentiment.centring import load_centring
    from murmur.store.embeddings import register

    texts, langs = read_samples(args.texts or DEFAULT_TEXTS, args.sample)
    embedder = app.plain_embedder()
    started = time.perf_counter()
    seeds = load_centring().apply(embedder.embed(texts), langs)
    encode_s = time.perf_counter() - started
    print(f"encoded {len(texts):,} sample texts ({', '.join(sorted(set(langs)))}) in {encode_s:.1f}s "
          f"({len(texts) / encode_s:.0f} texts/s), centred")

    started = time.perf_counter()
    with conn.transaction():
        conn.execute(_SEEDS)
        with conn.cursor().copy("COPY seeds (k, text, lang) FROM STDIN") as copy:
            for k, (text, lang) in enumerate(zip(texts, langs, strict=True)):
                copy.write_row((k, text, lang))
        conn.execute("SELECT setseed(0.14)")
        conn.execute(_POSTS, {"n": args.posts, "seeds": len(texts), "start": START, "days": args.days})
        conn.execute("SELECT setval(pg_get_serial_sequence('posts', 'id'), %s)", (args.posts,))
        conn.execute(_SCORES, {"model": SCORE_MODEL})
    posts_s = time.perf_counter() - started
    print(f"posts: {args.posts:,} rows with scores in {posts_s:.1f}s")

    register(conn)
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    cosines = []
    with conn.transaction():
        conn.execute("DROP INDEX post_embeddings_hnsw_idx")
        with conn.cursor().copy("COPY post_embeddings (post_id, model, embedding) FROM STDIN WITH (FORMAT BINARY)"
                                ) as copy:
            copy.set_types(["int8", "text", "vector"])
            for first in range(1, args.posts + 1, 50_000):
                count = min(50_000, args.posts + 1 - first)
                chunk = derived(seeds, langs, first, count, args.sigma, rng)
                ids = np.arange(first, first + count)
                copies = ids > len(seeds)
                if copies.any():  # how far the copies are from their real vector
                    cosines.append((chunk[copies] * seeds[(ids[copies] - 1) % len(seeds)]).sum(axis=1).mean())
                for post_id, vector in zip(ids.tolist(), chunk, strict=True):
                    copy.write_row((post_id, model, vector))
    copy_s = time.perf_counter() - started
    cosine = float(np.mean(cosines)) if cosines else 1.0
    print(f"embeddings: {args.posts:,} rows by binary COPY in {copy_s:.1f}s ({args.posts / copy_s:,.0f} rows/s); "
          f"derived ones at mean cosine {cosine:.3f} to their own text's real vector (sigma {args.sigma})")
    conn.execute("ANALYZE")
    conn.commit()

    started = time.perf_counter()
    with conn.transaction():
        conn.execute(f"SET LOCAL maintenance_work_mem = '{args.build_mem}'")
        conn.execute("SET LOCAL max_parallel_maintenance_workers = 1")
        conn.execute(_INDEX)
    build_s = time.perf_counter() - started
    print(f"HNSW index built in {build_s:.1f}s ({args.posts:,} embeddings, m 16, ef_construction 64, "
          f"maintenance_work_mem {args.build_mem}, 1 parallel worker)")
    meta = {"posts": args.posts, "seeds": len(texts), "sigma": args.sigma, "days": args.days,
            "mean_cosine": round(cosine, 4), "encode_s": round(encode_s, 1), "copy_s": round(copy_s, 1),
            "build_s": round(build_s, 1), "filled": datetime.now(UTC).isoformat(timespec="seconds")}
    with conn.transaction():  # what the fill was, for --reuse
        conn.execute(sql.SQL("COMMENT ON TABLE post_embeddings IS {}").format(sql.Literal(json.dumps(meta))))
    return meta


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def time_calls(call: Callable[[Any], int], queries: Sequence[Any], rounds: int) -> tuple[list[float], int]:
    """Milliseconds per call over `rounds` passes of `queries`, and the fewest rows a call returned."""
    times, fewest = [], sys.maxsize
    for _ in range(rounds):
        for q in queries:
            started = time.perf_counter()
            rows = call(q)
            times.append((time.perf_counter() - started) * 1000)
            fewest = min(fewest, rows)
    return times, fewest


_EXACT = """
SELECT e.post_id FROM post_embeddings e JOIN posts p ON p.id = e.post_id
WHERE e.model = %(model)s
{filters}ORDER BY e.embedding <=> %(q)s, e.post_id
LIMIT %(limit)s
"""


def exact_ids(conn: Any, model: str, vector: np.ndarray, filters: Any, limit: int) -> list[int]:
    """The true nearest posts within `filters`: the same ordering as search, every row read (no index)."""
    from murmur.store.embeddings import POST_FILTERS

    params = {"q": vector, "model": model, "limit": limit, **filters.params()}
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        rows = conn.execute(_EXACT.format(filters=POST_FILTERS.lstrip("\n")), params).fetchall()
    return [int(r[0]) for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000, help="posts, each with an embedding (default 1000000)")
    parser.add_argument("--sample", type=int, default=2000, help="real texts embedded per language (default 2000)")
    parser.add_argument("--texts", action="append", metavar="LANG=FILE[,FILE]",
                        help="a language and TSVs with a text column (repeatable; default en=val.tsv, "
                             "zh=zh_hotel.tsv,zh_shopping.tsv from ../shared/data/sentiment)")
    parser.add_argument("--sigma", type=float, default=0.01, help="noise per dimension of the derived vectors "
                        "(default 0.01)")
    parser.add_argument("--days", type=int, default=70, help="days the posts span from 2025-01-06 (default 70)")
    parser.add_argument("--build-mem", default="4GB", help="maintenance_work_mem for the index build (default 4GB)")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the queries (default 2)")
    parser.add_argument("--recall-filters", action="store_true",
                        help="also measure recall with filters (an exact scan per query and filter set: slower)")
    parser.add_argument("--ef", default="", metavar="N[,N]",
                        help="also measure recall@10 and the index query's time at these hnsw.ef_search values "
                             "(no filters), e.g. --ef 100,200,400")
    parser.add_argument("--data-dir", type=Path, help="the embedded PostgreSQL's directory (default: a new temp dir)")
    parser.add_argument("--reuse", action="store_true", help="measure the database an earlier run filled")
    parser.add_argument("--database-url", default=os.environ.get("MURMUR_DATABASE_URL"),
                        help="a PostgreSQL with pgvector to use (default: an embedded one)")
    args = parser.parse_args()
    if args.posts < 1 or args.sample < 1:
        parser.error("--posts and --sample must be positive")

    from bench.common import fresh_schema
    from murmur.app import App
    from murmur.config import load_settings
    from murmur.search import query_language
    from murmur.sentiment.centring import load_centring
    from murmur.sentiment.embeddings import EMBEDDING_MODEL
    from murmur.store.db import connect, embedded_server_url
    from murmur.store.embeddings import SearchFilters, embeddings_available, search_nearest
    from murmur.store.migrate import migrate
    from murmur.topics import find_topics

    if args.database_url:
        server = args.database_url
    else:
        data = args.data_dir or Path(tempfile.mkdtemp(prefix="murmur-bench-search-"))
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o755)  # the embedded server runs as its own user when we are root
        server = embedded_server_url(data / "pgdata", "murmur_bench")
        print(f"embedded PostgreSQL in {data} (--data-dir {data} --reuse measures it again)")
    url = schema_url(server, SCHEMA) if args.reuse else fresh_schema(server, SCHEMA)
    app = App(load_settings(environ={}), database_url=url)
    model = EMBEDDING_MODEL
    with connect(url) as conn:
        if args.reuse:
            row = conn.execute("SELECT to_regclass('post_embeddings') IS NOT NULL AND "
                               "obj_description('post_embeddings'::regclass) IS NOT NULL").fetchone()
            if not row or not row[0]:
                raise SystemExit(f"--reuse: no filled {SCHEMA} schema there; run once without --reuse")
            meta = json.loads(conn.execute("SELECT obj_description('post_embeddings'::regclass)").fetchone()[0])
            conn.commit()
            print(f"reusing {meta['posts']:,} posts filled {meta['filled']} (HNSW build then {meta['build_s']}s)")
        else:
            migrate(conn)
            if not embeddings_available(conn):
                raise SystemExit("this PostgreSQL has no pgvector extension: nothing to measure")
            meta = fill(conn, app, args, model)
        n = meta["posts"]
        sizes = conn.execute("SELECT pg_size_pretty(pg_table_size('post_embeddings')), "
                             "pg_size_pretty(pg_relation_size('post_embeddings_hnsw_idx')), "
                             "current_setting('shared_buffers')").fetchone()
        conn.commit()
        print(f"post_embeddings {sizes[0]}, HNSW index {sizes[1]}; shared_buffers {sizes[2]}")

        embedder = app.plain_embedder()
        centring = load_centring()
        week = (START, START + timedelta(days=7))
        filter_sets = [
            ("no filters", SearchFilters()),
            ("--lang zh", SearchFilters(langs=("zh",))),
            ("--since/--until one week", SearchFilters(since=week[0] + timedelta(days=28),
                                                       until=week[1] + timedelta(days=28))),
            ("--source rss", SearchFilters(sources=("rss",))),
            ("--term Lemon8", SearchFilters(terms=("Lemon8",))),
            ("--source mastodon --lang en --term 'TikTok refugee' and one week",
             SearchFilters(sources=("mastodon",), langs=("en",), terms=("TikTok refugee",),
                           since=week[0] + timedelta(days=14), until=week[1] + timedelta(days=14))),
        ]
        for q in QUERIES[:4]:  # warm-up: lazy inits, the index's upper layers into the cache
            app.search(conn, q, SearchFilters())
        times, _ = time_calls(lambda q: len(embedder.embed([q])), QUERIES, args.rounds)
        print(f"query encoding alone: p50 {percentile(times, 0.5):.1f} ms, p95 {percentile(times, 0.95):.1f} ms")
        vectors = [centring.apply(embedder.embed([q]), [query_language(q)])[0] for q in QUERIES]
        p95s = {}
        for name, filters in filter_sets:
            share = _share(conn, filters, n)

            def search(q: str, f: SearchFilters = filters) -> int:
                return len(app.search(conn, q, f))

            def nearest(v: np.ndarray, f: SearchFilters = filters) -> int:
                return len(search_nearest(conn, model, v, f, 20))

            cold, _ = time_calls(search, QUERIES, 1)  # the first pass reads the pages these queries need
            times, fewest = time_calls(search, QUERIES, args.rounds)
            alone, _ = time_calls(nearest, vectors, 1)  # the same queries' vectors: what the database takes
            p95s[name] = percentile(times, 0.95)
            short = f", a query found only {fewest}" if fewest < 20 else ""
            print(f"search p50: {percentile(times, 0.5):.1f} ms, p95: {p95s[name]:.1f} ms "
                  f"({n:,} embeddings, {name}: {share:.1%} of posts; {len(times)} calls, limit 20{short}; "
                  f"first pass p95 {percentile(cold, 0.95):.1f} ms; "
                  f"the index query alone p50 {percentile(alone, 0.5):.1f} ms, p95 {percentile(alone, 0.95):.1f} ms)")

        recall_sets = filter_sets if args.recall_filters else filter_sets[:1]
        for name, filters in recall_sets:
            found = []
            for v in vectors:
                approx = [int(r["id"]) for r in search_nearest(conn, model, v, filters, 10)]
                exact = exact_ids(conn, model, v, filters, 10)
                if exact:  # a query the filters leave nothing for has no recall to measure
                    found.append(len(set(approx) & set(exact)) / len(exact))
            if not found:
                continue
            print(f"search recall@10: {statistics.mean(found):.3f} (min {min(found):.1f}; {len(found)} queries "
                  f"against an exact scan, {n:,} embeddings, {name})")

        exact_top = [exact_ids(conn, model, v, SearchFilters(), 10) for v in vectors] if args.ef else []
        for ef in (int(x) for x in args.ef.split(",") if x.strip()):
            found = [len({int(r["id"]) for r in search_nearest(conn, model, v, SearchFilters(), 10, ef=ef)}
                         & set(exact)) / len(exact) for v, exact in zip(vectors, exact_top, strict=True) if exact]
            alone, _ = time_calls(lambda v, e=ef: len(search_nearest(conn, model, v, SearchFilters(), 20, ef=e)),
                                  vectors, args.rounds)
            print(f"search recall@10 at ef_search {ef}: {statistics.mean(found):.3f} (min {min(found):.1f}); "
                  f"the index query alone p50 {percentile(alone, 0.5):.1f} ms, p95 {percentile(alone, 0.95):.1f} ms "
                  f"(limit 20, {n:,} embeddings, no filters)")

        started = time.perf_counter()
        topics = find_topics(conn, SearchFilters(since=week[0], until=week[1]), by="week", score_model=SCORE_MODEL)
        topics_s = time.perf_counter() - started
        in_week = sum(t.size for t in topics)
        print(f"topics: {in_week:,} posts in {topics_s:.1f} s ({len(topics)} topics, the week of "
              f"{week[0]:%Y-%m-%d}; biggest: {', '.join(t.label for t in topics[:3])})")
    print(f"murmur search: p95 {max(p95s.values()):.0f} ms at {n:,} embeddings (slowest filter set), "
          f"topics {topics_s:.1f} s for {in_week:,} posts")
    return 0


def _share(conn: Any, filters: Any, n: int) -> float:
    """The share of posts `filters` keep."""
    from murmur.store.embeddings import POST_FILTERS

    with conn.transaction():
        row = conn.execute("SELECT count(*) FROM posts p WHERE true" + POST_FILTERS, filters.params()).fetchone()
    return int(row[0]) / n


if __name__ == "__main__":
    sys.exit(main())
