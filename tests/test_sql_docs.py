"""The SQL people run by hand: migration 0003 on an existing database, the views' columns and rows,
the engagement functions (0004), and every ```sql block of docs/sql.md run against a migrated database
with a few rows."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from murmur.crawler.items import Post
from murmur.store.alerts import AlertRow, store_alerts
from murmur.store.db import connect
from murmur.store.migrate import available_migrations, migrate
from murmur.store.posts import upsert_posts
from murmur.store.runs import finish_run, start_run
from murmur.store.status import record_next_runs
from murmur.store.trends import aggregate
from tests.conftest import REPO

MODEL = "murmur-e5-sentiment@1+int8"
T0 = datetime(2025, 1, 13, 9, tzinfo=UTC)
DOCS = REPO / "docs" / "sql.md"

# Label -> (negative, neutral, positive), as a model would write them.
PROBS = {"negative": (0.8, 0.15, 0.05), "neutral": (0.2, 0.6, 0.2), "positive": (0.05, 0.15, 0.8)}


def post(i: int, *, source: str = "mastodon", terms: tuple[str, ...] = ("RedNote",), lang: str = "en",
         hours: float = 0, likes: int = 0, tags: tuple[str, ...] = ("rednote",)) -> Post:
    return Post(source=source, source_id=f"{source}-{i}", url=f"https://{source}.example/{i}", author=f"user{i % 3}",
                text=f"post {i} about {' and '.join(terms)}", created_at=T0 + timedelta(hours=hours), lang=lang,
                terms=list(terms), tags=list(tags), metrics={"likes": likes, "reposts": i % 2, "replies": None})


def score(conn: psycopg.Connection, labels: dict[str, str]) -> None:
    """Score posts by source_id: label per post, as the worker writes them."""
    for source_id, label in labels.items():
        conn.execute(
            """
            INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive)
            SELECT id, %s, %s, %s, %s, %s FROM posts WHERE source_id = %s
            """,
            (MODEL, label, *PROBS[label], source_id),
        )


def seed(conn: psycopg.Connection) -> None:
    posts = [
        post(1, terms=("TikTok refugee", "RedNote"), likes=120, tags=("tiktokrefugee", "rednote")),
        post(2, terms=("TikTok refugee",), hours=0.5, tags=("tiktokrefugee",)),
        post(3, lang="zh", terms=("小红书", "RedNote"), hours=1, likes=8, tags=("小红书",)),
        post(4, hours=26, likes=3),
        post(5, source="bluesky", hours=2, likes=40, tags=("rednote", "lemon8")),
        post(6, source="bluesky", lang="ja", hours=3),  # no model covers Japanese: stays unscored
        replace(post(7, source="bluesky", hours=2), via="stream"),  # seen by the stream, not scored yet
    ]
    with conn.transaction():
        upsert_posts(conn, posts)
        score(conn, {"mastodon-1": "positive", "mastodon-2": "negative", "mastodon-3": "positive",
                     "mastodon-4": "neutral", "bluesky-5": "positive"})
        conn.execute(
            "INSERT INTO unscored_posts (post_id, reason) SELECT id, %s FROM posts WHERE source_id = 'bluesky-6'",
            ("no configured model covers language 'ja' (covered: en, zh)",),
        )
    aggregate(conn)
    finish_run(conn, start_run(conn, "crawl:mastodon"), status="ok", stats={"murmur/posts/new": 4})
    finish_run(conn, start_run(conn, "crawl:bluesky"), status="failed", error="HTTP 401: check the app password")
    finish_run(conn, start_run(conn, "aggregate"), status="ok")
    with conn.transaction():  # a stream consumer that lost its connection, and the one running now
        conn.execute(
            "INSERT INTO job_runs (job, started_at, finished_at, status, stats, error) VALUES"
            " ('stream:jetstream', now() - INTERVAL '300 s', now() - INTERVAL '200 s', 'failed',"
            " '{\"events\": 50, \"reconnects\": 1}', 'connection closed'),"
            " ('stream:jetstream', now() - INTERVAL '100 s', NULL, 'running',"
            " '{\"events\": 12000, \"matched\": 12, \"lag\": 0.8, \"reconnects\": 2}', NULL)"
        )
        with conn.cursor() as cur:  # the network's posts, as the stream counted them
            cur.executemany("INSERT INTO network_volume (bucket_start, source, lang, posts)"
                            " VALUES (%s, 'bluesky', %s, %s)",
                            [(T0, "en", 50_000), (T0 + timedelta(hours=2), "en", 120_000),
                             (T0 + timedelta(hours=2), "und", 30_000)])
    record_next_runs(conn, {"crawl:mastodon": (T0 + timedelta(hours=1), 3600.0), "crawl:bluesky": (None, 1800.0),
                            "score": (T0, 60.0), "aggregate": (T0 + timedelta(minutes=30), 900.0)})
    with conn.transaction():
        store_alerts(conn, [
            AlertRow("volume_spike", "hour", T0, "mastodon", "RedNote", MODEL, 40, 2, 9.5,
                     {"posts": 40, "baseline_days": 7}),
            AlertRow("sentiment_shift", "day", T0 - timedelta(hours=9), "mastodon", "RedNote", MODEL, -0.4, 0.1,
                     -5.2, {"posts": 60, "baseline_posts": 400, "direction": "down"}),
            AlertRow("topic_emerging", "day", T0 - timedelta(hours=9), "all", "dumplings · kitchen · 做饭",
                     "multilingual-e5-small/centred@1", 12, 0, 0, {"words": ["dumplings", "kitchen", "做饭"],
                                                                  "new": True, "posts": 80}),
        ])


def seed_conversation(conn: psycopg.Connection) -> None:
    """A thread (docs/sql.md, "Conversations"): a submission, a comment and a reply to it, unscored; and a
    Lemmy reply whose parent comment is not stored yet."""
    with conn.transaction():
        upsert_posts(conn, [
            replace(post(8, source="reddit", hours=4), source_id="t3_1i2b3c4"),
            replace(post(9, source="reddit", hours=5), source_id="t1_a", parent_source_id="t3_1i2b3c4",
                    root_source_id="t3_1i2b3c4"),
            replace(post(10, source="reddit", hours=6), source_id="t1_b", parent_source_id="t1_a",
                    root_source_id="t3_1i2b3c4"),
            replace(post(11, source="lemmy", hours=6), parent_source_id="lemmy.example:12",
                    root_source_id="https://lemmy.example/post/1"),
        ])


def seed_embeddings(conn: psycopg.Connection) -> None:
    """A unit-length vector per post (made from its id), as `murmur embed` would store them."""
    conn.execute("""
        INSERT INTO post_embeddings (post_id, model, embedding)
        SELECT p.id, 'multilingual-e5-small/centred@1',
               l2_normalize((SELECT array_agg(sin(p.id * g + g)) FROM generate_series(1, 384) g)::vector)
        FROM posts p
        """)


def sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def statements(block: str) -> list[str]:
    # Grafana's macro becomes a plain filter; statements end with ';' at the end of a line.
    block = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN '2000-01-01' AND '2100-01-01'", block)
    return [s.strip() for s in re.split(r";\s*$", block, flags=re.M) if s.strip()]


def test_the_docs_have_sql_for_every_view() -> None:
    text = "\n".join(sql_blocks())
    for name in ("trend_daily", "trend_hourly", "top_posts", "source_health", "alerts", "network_volume"):
        assert len(re.findall(rf"\bFROM {name}\b", text)) >= 2, name


@pytest.mark.parametrize("index", range(len(sql_blocks())))
def test_every_sql_block_in_the_docs_runs_and_returns_rows(conn: psycopg.Connection, index: int) -> None:
    seed(conn)
    seed_conversation(conn)
    seed_embeddings(conn)
    for statement in statements(sql_blocks()[index]):
        with conn.transaction():
            rows = conn.execute(statement).fetchall()
        assert rows, f"no rows from docs/sql.md block {index}:\n{statement}"


def test_the_engagement_functions_count_a_missing_figure_as_zero(conn: psycopg.Connection) -> None:
    cases = [((None, None, None), 0), ((120, 1, None), 121), ((None, 2, 3), 5), ((-7, 0, 0), -7)]
    for (likes, reposts, replies), engagement in cases:
        row = conn.execute("SELECT murmur_engagement(%s, %s, %s), murmur_engagement_weight(%s, %s, %s)",
                           (likes, reposts, replies) * 2).fetchone()
        assert row is not None and row[0] == engagement
        assert row[1] == pytest.approx(1 + math.log(1 + max(engagement, 0)), abs=1e-12)  # a negative count: 1


def test_the_weight_function_gives_the_formula_aggregation_used_before(conn: psycopg.Connection) -> None:
    seed(conn)
    old = """1 + ln(1 + greatest(COALESCE(p.likes, 0)::bigint + COALESCE(p.reposts, 0)
                                + COALESCE(p.replies, 0), 0))"""
    new = "murmur_engagement_weight(p.likes, p.reposts, p.replies)"
    rows = conn.execute(f"SELECT {new}, {old} FROM posts p").fetchall()
    assert rows and all(now == before for now, before in rows)


def columns(conn: psycopg.Connection, view: str) -> list[str]:
    cur = conn.execute(f"SELECT * FROM {view} LIMIT 0")
    return [d.name for d in cur.description or []]


def test_the_views_have_the_agreed_columns(conn: psycopg.Connection) -> None:
    trend = ["bucket_start", "source", "term", "lang", "model", "posts", "negative", "neutral", "positive",
             "mean_polarity", "weighted_polarity", "engagement"]
    assert columns(conn, "trend_daily") == trend and columns(conn, "trend_hourly") == trend
    assert columns(conn, "top_posts") == ["post_id", "source", "url", "author", "text", "lang", "created_at",
                                          "terms", "tags", "model", "label", "polarity", "engagement"]
    assert columns(conn, "source_health") == ["source", "last_run_at", "last_status", "last_error", "runs_24h",
                                              "failed_24h", "posts_24h", "posts_7d", "kind", "connected_since",
                                              "events_per_second", "matched_posts", "lag_seconds", "reconnects_24h"]
    assert columns(conn, "alerts") == ["id", "kind", "bucket_size", "bucket_start", "source", "term", "model",
                                       "value", "baseline", "score", "details", "detected_at", "delivered_at"]


def test_the_views_show_what_the_tables_hold(conn: psycopg.Connection) -> None:
    seed(conn)
    day = conn.execute(
        "SELECT posts, engagement, mean_polarity, weighted_polarity FROM trend_daily"
        " WHERE source = 'mastodon' AND term = 'TikTok refugee' AND bucket_start = '2025-01-13'"
    ).fetchone()
    # Post 1 (positive, 120 likes + 1 repost: weight 1 + ln 122) and post 2 (negative, no reactions).
    weight = 1 + math.log(122)
    assert day is not None and day[:2] == (2, 121) and day[2] == pytest.approx(0.0, abs=1e-6)
    assert day[3] == pytest.approx((weight * 0.75 - 0.75) / (weight + 1), abs=1e-6)
    assert conn.execute("SELECT count(*) FROM trend_hourly WHERE term = 'TikTok refugee'").fetchone() == (1,)
    top = conn.execute(
        "SELECT p.source_id, t.label, t.polarity, t.engagement FROM top_posts t"
        " JOIN posts p ON p.id = t.post_id ORDER BY t.engagement DESC LIMIT 2"
    ).fetchall()
    assert [(r[0], r[1], round(r[2], 4), r[3]) for r in top] == [("mastodon-1", "positive", 0.75, 121),
                                                                ("bluesky-5", "positive", 0.75, 41)]
    health = {r[0]: r[1:] for r in conn.execute(
        "SELECT source, last_status, last_error, runs_24h, failed_24h, posts_24h, posts_7d FROM source_health"
    )}
    assert health == {"mastodon": ("ok", None, 1, 0, 4, 4),
                      "bluesky": ("failed", "HTTP 401: check the app password", 1, 1, 3, 3),
                      "jetstream": ("running", None, 2, 1, 1, 1)}  # its posts: those that came by stream
    streams = conn.execute(
        "SELECT source, kind, connected_since IS NOT NULL, events_per_second, matched_posts, lag_seconds,"
        " reconnects_24h FROM source_health ORDER BY source"
    ).fetchall()
    # 12,000 events over its 100 s so far; 1 + 2 reconnects inside the runs, and one restart
    assert streams == [("bluesky", "crawl", False, None, None, None, None),
                       ("jetstream", "stream", True, 120.0, 12, 0.8, 4),
                       ("mastodon", "crawl", False, None, None, None, None)]


# The aggregation of murmur before migration 0003: counts and mean polarity only.
_OLD_AGGREGATE = """
INSERT INTO aggregates (bucket_size, bucket_start, source, term, lang, model,
                        posts, negative, neutral, positive, mean_polarity)
SELECT b.size, date_bin(b.step, p.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), p.source, term,
       COALESCE(p.lang, 'und'), s.model, count(*),
       count(*) FILTER (WHERE s.label = 'negative'), count(*) FILTER (WHERE s.label = 'neutral'),
       count(*) FILTER (WHERE s.label = 'positive'), avg(s.positive - s.negative)
FROM posts p
JOIN sentiment_scores s ON s.post_id = p.id
CROSS JOIN LATERAL unnest(p.terms) AS term
CROSS JOIN (VALUES ('hour', INTERVAL '1 hour'), ('day', INTERVAL '1 day')) AS b(size, step)
GROUP BY 1, 2, 3, 4, 5, 6
"""


def _aggregate_rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT bucket_size, bucket_start, source, term, lang, model, posts, negative, neutral, positive,"
        " round(mean_polarity::numeric, 6), round(weighted_polarity::numeric, 6), engagement,"
        " round(weight_sum::numeric, 6)"
        " FROM aggregates ORDER BY 1, 2, 3, 4, 5, 6"
    ).fetchall()


def test_an_existing_database_migrates_with_its_new_columns_filled(db_url: str) -> None:
    with connect(db_url) as conn:
        with conn.transaction():  # the database as murmur left it before 0003
            conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())")
            for version, name, text in available_migrations():
                if version < 3:
                    conn.execute(text)
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            # Written as that schema's columns (today's upsert_posts writes columns later migrations add).
            for p in [post(i, hours=i / 2, likes=i * 7, lang="zh" if i % 3 == 0 else "en") for i in range(1, 12)]:
                conn.execute(
                    "INSERT INTO posts (source, source_id, url, author, text, lang, created_at, terms, tags, replies,"
                    " reposts, likes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (p.source, p.source_id, p.url, p.author, p.text, p.lang, p.created_at, p.terms, p.tags,
                     p.metrics.get("replies"), p.metrics.get("reposts"), p.metrics.get("likes")))
            score(conn, {f"mastodon-{i}": ("positive", "neutral", "negative")[i % 3] for i in range(1, 12)})
            conn.execute(_OLD_AGGREGATE)
            conn.execute("UPDATE sentiment_scores SET aggregated_at = now()")
        assert "0003_trends_alerts.sql" in migrate(conn)
        migrated = _aggregate_rows(conn)
        assert all(r[11] is not None for r in migrated) and any(r[12] > 0 for r in migrated)
        assert aggregate(conn).scores == 0  # nothing left to aggregate: the migration filled the columns itself
        aggregate(conn, rebuild=True)
        assert _aggregate_rows(conn) == migrated
