"""`murmur report --compare region`: series per `posts.region` (the place a platform shows, filled by
imports), read from the scored posts, each post once, posts without a region as 'unknown'."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from murmur.crawler.items import Post
from murmur.reports.filters import Filters
from murmur.reports.series import load_points
from murmur.sentiment.scorer import Score
from murmur.store.posts import upsert_posts
from murmur.store.scores import write_scores
from murmur.store.trends import aggregate
from tests.conftest import run_murmur

MODEL = "test-model"
MON = datetime(2025, 1, 13, tzinfo=UTC)
POS, NEG = Score("positive", 0.05, 0.15, 0.80), Score("negative", 0.70, 0.20, 0.10)  # polarity +0.75, -0.60
NEU = Score("neutral", 0.1, 0.8, 0.1)  # polarity 0

# (name, source, day, hour, region, terms, score or None: unscored)
POSTS = [
    ("r1", "rednote", 0, 9, "上海", ["RedNote"], POS),
    ("r2", "rednote", 0, 10, "上海", ["RedNote", "小红书"], NEG),  # two terms: counted once
    ("t1", "tiktok", 0, 11, "US", ["RedNote"], POS),
    ("t2", "tiktok", 1, 9, "US", ["TikTok refugee"], NEU),
    ("m1", "mastodon", 1, 10, None, ["RedNote"], POS),  # crawled: no region
    ("r3", "rednote", 1, 11, "  ", ["RedNote"], NEG),  # a blank region is no region
    ("r4", "rednote", 1, 12, "北京", ["RedNote"], None),  # unscored: not in the trend
    ("t3", "tiktok", 1, 13, "US", [], POS),  # imported with --all, matching no term: not in term reports
]


@pytest.fixture
def seeded(conn: psycopg.Connection) -> psycopg.Connection:
    posts = [
        Post(source=src, source_id=name, url=f"https://{src}.example/{name}", author=name, text=f"post {name}",
             created_at=MON + timedelta(days=day, hours=hour), lang="en", tags=[], terms=terms, region=region,
             metrics={})
        for name, src, day, hour, region, terms, _ in POSTS
    ]
    with conn.transaction():
        upsert_posts(conn, posts)
        ids: dict[str, int] = dict(conn.execute("SELECT source_id, id FROM posts").fetchall())
        scored = [(ids[name], score) for name, *_, score in POSTS if score is not None]
        write_scores(conn, MODEL, [i for i, _ in scored], [s for _, s in scored])
    aggregate(conn)
    return conn


def test_region_series_count_each_scored_post_once_and_unknown_holds_the_rest(seeded: psycopg.Connection) -> None:
    points = {(p.bucket_start.day, *p.key): (p.posts, p.negative, p.neutral, p.positive, round(p.mean_polarity, 4))
              for p in load_points(seeded, Filters(compare="region"), MODEL)}
    assert points == {
        (13, "上海"): (2, 1, 0, 1, 0.075),
        (13, "US"): (1, 0, 0, 1, 0.75),
        (14, "US"): (1, 0, 1, 0, 0.0),
        (14, "unknown"): (2, 1, 0, 1, 0.075),
    }
    only_rednote = {(p.bucket_start.day, *p.key): p.posts
                    for p in load_points(seeded, Filters(compare="region", sources=("rednote",)), MODEL)}
    assert only_rednote == {(13, "上海"): 2, (14, "unknown"): 1}


def test_compare_region_table(seeded: psycopg.Connection, db_url: str) -> None:
    result = run_murmur("report", "--compare", "region", "--sections", "trend", db_url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3 series over 2 days, 6 posts" in out, out
    assert re.search(r"^day\s+US\s+polarity\s+unknown\s+polarity\s+上海\s+polarity$", out, re.M), out
    assert re.search(r"^2025-01-13\s+1\s+\+0\.75\s+0\s+2\s+\+0\.08$", out, re.M), out
    assert re.search(r"^2025-01-14\s+1\s+\+0\.00\s+2\s+\+0\.08\s+0$", out, re.M), out
    assert re.search(r"^\s+US\s+\S+\s+2 posts, polarity \+0\.38$", out, re.M), out
    assert re.search(r"^\s+unknown\s+\S+\s+2 posts, polarity \+0\.08$", out, re.M), out
    assert re.search(r"^\s+上海\s+\S+\s+2 posts, polarity \+0\.08$", out, re.M), out


def test_compare_region_csv_and_json(seeded: psycopg.Connection, db_url: str) -> None:
    result = run_murmur("report", "--compare", "region", "--format", "csv", db_url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["bucket_start"][:10] for r in rows] == ["2025-01-13", "2025-01-14"]
    assert [(r["posts:上海"], r["posts:US"], r["posts:unknown"]) for r in rows] == [("2", "1", "0"), ("0", "1", "2")]
    assert (rows[0]["mean_polarity:上海"], rows[1]["mean_polarity:US"]) == ("0.075", "0.0")

    result = run_murmur("report", "--compare", "region", "--format", "json", "--until", "2025-01-14",
                        db_url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["bucket_start"] for r in data] == ["2025-01-13T00:00:00+00:00"]
    series = data[0]["series"]
    assert set(series) == {"上海", "US"}
    assert series["上海"] == {"posts": 2, "negative": 1, "neutral": 0, "positive": 1, "mean_polarity": 0.075,
                             "polarity_se": 1.0}


def test_compare_region_share_has_rows(seeded: psycopg.Connection, db_url: str) -> None:
    # A post the stream saw (no region: Jetstream has none) and the network's posts in its hour.
    stream = Post(source="bluesky", source_id="at://did:plc:a/app.bsky.feed.post/1", url="https://bsky.app/1",
                  author="a.bsky.social", text="RedNote", created_at=MON + timedelta(hours=9, minutes=30),
                  lang="en", terms=["RedNote"], via="stream", metrics={})
    with seeded.transaction():
        upsert_posts(seeded, [stream])
        (post_id,) = seeded.execute("SELECT id FROM posts WHERE source = 'bluesky'").fetchone()
        write_scores(seeded, MODEL, [post_id], [POS])
        seeded.execute("INSERT INTO network_volume (bucket_start, source, lang, posts)"
                       " VALUES (%s, 'bluesky', 'en', 50000)", (MON + timedelta(hours=9),))
    aggregate(seeded)
    result = run_murmur("report", "--compare", "region", "--share", "--format", "json", db_url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    shares = {(row["bucket_start"][:10], region): s["share_per_100k"]
              for row in json.loads(result.stdout) for region, s in row["series"].items()}
    assert shares[("2025-01-13", "unknown")] == 2.0  # 1 stream post per 50,000 of the network
    assert shares[("2025-01-13", "上海")] == 0.0  # a baseline, and no stream post from there
    assert shares[("2025-01-14", "US")] is None  # no baseline that day: empty, not 0
