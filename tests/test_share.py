"""`murmur report --share`: the series' stream-seen posts per 100,000 posts of the network, from seeded
posts (via 'stream' and 'crawl') and `network_volume` rows; every figure is exact."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from murmur.crawler.items import Post
from murmur.reports.build import build_report
from murmur.reports.filters import Filters
from murmur.sentiment.scorer import Score
from murmur.store.posts import upsert_posts
from murmur.store.scores import write_scores
from murmur.store.trends import aggregate
from tests.conftest import run_murmur

MODEL = "test-model"
MON = datetime(2025, 1, 13, tzinfo=UTC)
POS, NEG = Score("positive", 0.05, 0.15, 0.80), Score("negative", 0.70, 0.20, 0.10)

# (name, source, via, day, hour, minute, lang, terms)
POSTS = [
    ("s1", "bluesky", "stream", 0, 9, 10, "en", ["RedNote"]),
    ("s2", "bluesky", "stream", 0, 9, 20, "en", ["RedNote"]),
    ("s6", "bluesky", "stream", 0, 9, 30, "ja", ["RedNote"]),
    ("c1", "bluesky", "crawl", 0, 9, 40, "en", ["RedNote"]),  # found by search: not a stream-seen post
    ("s3", "bluesky", "stream", 0, 10, 5, "en", ["RedNote", "TikTok refugee"]),
    ("s4", "bluesky", "stream", 0, 11, 30, "en", ["RedNote"]),  # 11:00 has no baseline
    ("m1", "mastodon", "crawl", 0, 9, 0, "en", ["RedNote"]),
    ("s5", "bluesky", "stream", 1, 10, 0, "en", ["RedNote"]),  # the 14th has no baseline at all
]

# (hour of the 13th, lang, posts the network created)
NETWORK = [(9, "en", 100_000), (9, "ja", 50_000), (10, "en", 200_000), (10, "und", 50_000)]


def seed(conn: psycopg.Connection) -> None:
    posts = [
        Post(source=src, source_id=name, url=f"https://{src}.example/{name}", author=f"{name}@example",
             text=f"post {name} about {' and '.join(terms)}", lang=lang, terms=terms, via=via,
             created_at=MON + timedelta(days=day, hours=hour, minutes=minute))
        for name, src, via, day, hour, minute, lang, terms in POSTS
    ]
    with conn.transaction():
        upsert_posts(conn, posts)
        ids: dict[str, int] = dict(conn.execute("SELECT source_id, id FROM posts").fetchall())
        write_scores(conn, MODEL, [ids[p[0]] for p in POSTS], [POS if i % 2 else NEG for i in range(len(POSTS))])
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO network_volume (bucket_start, source, lang, posts)"
                            " VALUES (%s, 'bluesky', %s, %s)",
                            [(MON + timedelta(hours=h), lang, n) for h, lang, n in NETWORK])
    aggregate(conn)


@pytest.fixture
def seeded(conn: psycopg.Connection) -> psycopg.Connection:
    seed(conn)
    return conn


def shares(conn: psycopg.Connection, **filters: object) -> dict[tuple[str, ...], float | None]:
    report = build_report(conn, Filters(model=MODEL, **filters), share=True)
    fmt = "%d %H" if report.filters.by == "hour" else "%d"
    return {(p.bucket_start.strftime(fmt), *p.key): report.share(p) for p in report.points}


def test_hourly_share_counts_stream_posts_against_the_whole_network(seeded: psycopg.Connection) -> None:
    assert shares(seeded, by="hour") == {
        ("13 09", "bluesky", "RedNote"): 3 * 100_000 / 150_000,  # s1, s2, s6; c1 came by crawl
        ("13 09", "mastodon", "RedNote"): None,  # another source: no share of Bluesky's network
        ("13 10", "bluesky", "RedNote"): 100_000 / 250_000,
        ("13 10", "bluesky", "TikTok refugee"): 100_000 / 250_000,
        ("13 11", "bluesky", "RedNote"): None,  # no baseline in that hour: empty, not 0
        ("14 10", "bluesky", "RedNote"): None,
    }


def test_days_and_weeks_compare_only_the_hours_the_baseline_covers(seeded: psycopg.Connection) -> None:
    # s4 (11:30, no baseline that hour) is left out of the 13th: 4 stream posts over 400,000
    assert shares(seeded, by="day") == {
        ("13", "bluesky", "RedNote"): 1.0, ("13", "bluesky", "TikTok refugee"): 0.25,
        ("13", "mastodon", "RedNote"): None, ("14", "bluesky", "RedNote"): None,
    }
    assert shares(seeded, by="week") == {
        ("13", "bluesky", "RedNote"): 1.0, ("13", "bluesky", "TikTok refugee"): 0.25,
        ("13", "mastodon", "RedNote"): None,
    }


def test_the_language_filter_applies_to_the_network_too(seeded: psycopg.Connection) -> None:
    assert shares(seeded, by="hour", langs=("EN",)) == {
        ("13 09", "bluesky", "RedNote"): 2.0, ("13 09", "mastodon", "RedNote"): None,
        ("13 10", "bluesky", "RedNote"): 0.5, ("13 10", "bluesky", "TikTok refugee"): 0.5,
        ("13 11", "bluesky", "RedNote"): None, ("14 10", "bluesky", "RedNote"): None,
    }
    # compared per language: each against the network's posts in that language
    assert shares(seeded, compare="lang", until=MON + timedelta(days=1)) == {("13", "en"): 3 * 100_000 / 300_000,
                                                                            ("13", "ja"): 2.0}


def test_compared_sources_count_a_post_once_and_other_sources_stay_empty(seeded: psycopg.Connection) -> None:
    assert shares(seeded, compare="source") == {("13", "bluesky"): 1.0, ("13", "mastodon"): None,
                                                ("14", "bluesky"): None}
    assert set(shares(seeded, sources=("mastodon",)).values()) == {None}


def test_report_share_prints_the_column_in_every_format(seeded: psycopg.Connection, db_url: str) -> None:
    result = run_murmur("report", "--share", "--format", "csv", "--until", "2025-01-14", db_url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = {(r["source"], r["term"]): r["share_per_100k"] for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows == {("bluesky", "RedNote"): "1.0", ("bluesky", "TikTok refugee"): "0.25", ("mastodon", "RedNote"): ""}
    data = json.loads(run_murmur("report", "--share", "--format", "json", "--by", "hour", "--source", "bluesky",
                                 db_url=db_url, timeout=60).stdout)
    assert [(r["bucket_start"][8:13], r["term"], r["share_per_100k"]) for r in data] == [
        ("13T09", "RedNote", 2.0), ("13T10", "RedNote", 0.4), ("13T10", "TikTok refugee", 0.4),
        ("13T11", "RedNote", None), ("14T10", "RedNote", None)]
    table = run_murmur("report", "--share", "--sections", "trend", db_url=db_url, timeout=60)
    assert table.returncode == 0, table.stderr
    assert re.search(r"^day\s.*\bper 100k\b", table.stdout, re.M), table.stdout
    # (then the `unique` column: posts that are no near-copy of an earlier one)
    assert re.search(r"^2025-01-13\s+bluesky\s+RedNote\s+6\s.*\s1\.00\s+6$", table.stdout, re.M), table.stdout
    compared = run_murmur("report", "--share", "--compare", "source", "--format", "csv", db_url=db_url, timeout=60)
    first = next(csv.DictReader(io.StringIO(compared.stdout)))
    assert (first["share_per_100k:bluesky"], first["share_per_100k:mastodon"]) == ("1.0", "")
    plain = json.loads(run_murmur("report", "--format", "json", db_url=db_url, timeout=60).stdout)
    assert "share_per_100k" not in plain[0]  # only with --share
