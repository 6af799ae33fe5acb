"""Near-duplicates on a real PostgreSQL with pgvector and the real multilingual-e5: copies (exact, lightly
edited, cross-source, templated) linked to the earliest post, originals left alone, the next copy promoted
when the original goes, unique_posts in the aggregates, and volume spikes judged on distinct posts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from murmur.alerts.detection import VOLUME_SPIKE, Thresholds, detect
from murmur.app import App
from murmur.config import load_settings
from murmur.crawler.items import Post
from murmur.dedupe import relink
from murmur.sentiment.embeddings import EMBEDDING_MODEL
from murmur.store.alerts import SeriesRow
from murmur.store.posts import upsert_posts
from murmur.store.trends import aggregate
from tests.test_search import e5_model

T0 = datetime(2025, 1, 14, 9, tzinfo=UTC)
ORIGINAL = "Just moved from TikTok to RedNote and honestly the cooking videos here are amazing, no regrets at all!"
# Written for this test: (source_id, source, minutes after T0, text). "orig" is the first of its text.
POSTS = [
    ("orig", "mastodon", 0, ORIGINAL),
    ("exact", "bluesky", 60, ORIGINAL),  # the same text, cross-posted to another network
    ("edited", "mastodon", 120,
     "just moved from tiktok to rednote and honestly the cooking videos here are amazing!! no regrets at all"),
    ("tmpl-1", "mastodon", 30, "I'm a TikTok refugee and I just joined RedNote! Follow me @alice_cooks #tiktokrefugee"),
    ("tmpl-2", "bluesky", 90, "I'm a TikTok refugee and I just joined RedNote! Follow me @bob_travels #tiktokrefugee"),
    ("tmpl-3", "mastodon", 150, "I'm a TikTok refugee and I just joined RedNote! Follow me @carol_art #tiktokrefugee"),
    ("other-1", "mastodon", 10, "RedNote keeps crashing on my old phone, so frustrating, I give up for today."),
    ("other-2", "bluesky", 20, "Learning a bit of Mandarin so I can read the comments on RedNote, wish me luck."),
    ("other-3", "mastodon", 40,
     "Is anyone else worried about what data RedNote collects? Reading the privacy policy now."),
    ("late", "bluesky", 60 * 24 * 10, ORIGINAL),  # the same text ten days on: outside the 7-day window
]


@pytest.fixture(scope="module")
def app() -> App:
    settings = load_settings(environ={"MURMUR_MODEL__NAME": e5_model(), "MURMUR_MODEL__DEVICE": "cpu",
                                      "MURMUR_MODEL__QUANTIZE": "none"})
    return App(settings, "postgresql://unused")


def store(conn: psycopg.Connection, posts: list[tuple[str, str, int, str]] = POSTS) -> None:
    upsert_posts(conn, [
        Post(source=source, source_id=sid, url=f"https://example.social/{sid}", author=f"user-{sid}", text=text,
             lang="en", created_at=T0 + timedelta(minutes=minutes), terms=["RedNote"])
        for sid, source, minutes, text in posts
    ])
    conn.commit()


def links(conn: psycopg.Connection) -> dict[str, str | None]:
    rows = conn.execute("SELECT p.source_id, o.source_id FROM posts p LEFT JOIN posts o ON o.id = p.duplicate_of")
    return dict(rows.fetchall())


EXPECTED = {"orig": None, "exact": "orig", "edited": "orig", "tmpl-1": None, "tmpl-2": "tmpl-1",
            "tmpl-3": "tmpl-1", "other-1": None, "other-2": None, "other-3": None, "late": None}


def test_the_threshold_separates_copies_from_posts_on_the_same_subject(app: App) -> None:
    """The measurement behind dedupe.threshold = 0.85 (config/default.toml), on the centred vectors stored:
    an edited copy 0.967, template posts 0.876-0.891, different posts on the same subject at most 0.62."""
    from murmur.sentiment.centring import load_centring

    texts = {sid: text for sid, _, _, text in POSTS}
    vecs = load_centring().apply(app.plain_embedder().embed(list(texts.values())), ["en"] * len(texts))
    sim = dict(zip(texts, vecs, strict=True))

    def cos(a: str, b: str) -> float:
        return float(np.dot(sim[a], sim[b]))

    assert cos("orig", "exact") > 0.999
    assert cos("orig", "edited") >= 0.95
    assert min(cos("tmpl-1", "tmpl-2"), cos("tmpl-1", "tmpl-3")) >= 0.87
    others = [cos(a, b) for a in ("orig", "tmpl-1", "other-1", "other-2", "other-3")
              for b in ("other-1", "other-2", "other-3") if a != b]
    assert max(others) < 0.7, others


def test_copies_link_to_the_earliest_post_and_originals_stay_null(conn: psycopg.Connection, app: App) -> None:
    store(conn)
    app.embed(conn)  # writing embeddings links them, in the same transaction
    assert links(conn) == EXPECTED
    # The back-fill finds the same links and changes nothing.
    run = relink(conn, EMBEDDING_MODEL, app.settings.dedupe)
    assert (run.posts, run.linked, run.duplicates) == (len(POSTS), 0, 4)


def test_a_copy_stored_before_its_original_is_relinked_when_the_original_arrives(
        conn: psycopg.Connection, app: App) -> None:
    store(conn, [p for p in POSTS if p[0] != "orig"])
    app.embed(conn)
    assert links(conn)["edited"] == "exact"
    store(conn, [p for p in POSTS if p[0] == "orig"])
    app.embed(conn)
    assert links(conn) == EXPECTED


def test_deleting_the_original_promotes_the_next_copy(conn: psycopg.Connection, app: App) -> None:
    store(conn)
    app.embed(conn)
    conn.execute("DELETE FROM posts WHERE source_id IN ('orig', 'tmpl-1')")
    conn.commit()
    got = links(conn)
    assert (got["exact"], got["edited"]) == (None, "exact")
    assert (got["tmpl-2"], got["tmpl-3"]) == (None, "tmpl-2")


def test_aggregates_count_unique_posts(conn: psycopg.Connection, app: App) -> None:
    store(conn, [p for p in POSTS if p[0] != "late"])
    app.score(conn)  # scores and embeddings (and links) in one transaction per batch
    aggregate(conn)
    rows = conn.execute("SELECT source, sum(posts)::int, sum(unique_posts)::int FROM aggregates "
                        "WHERE bucket_size = 'day' GROUP BY source ORDER BY source").fetchall()
    # bluesky: exact (a copy of a mastodon post), tmpl-2 (a copy), other-2; mastodon: the rest, two copies.
    assert rows == [("bluesky", 3, 1), ("mastodon", 6, 4)]


def _hours(days: int, per_hour: int) -> list[SeriesRow]:
    start = T0.replace(hour=0)
    return [SeriesRow(start + timedelta(hours=h), per_hour, 0, per_hour, 0, 0.0, per_hour)
            for h in range(days * 24)]


def test_a_burst_of_copies_is_one_voice_while_as_many_distinct_posts_spike() -> None:
    background = _hours(8, 12)
    burst_at = background[-1].start
    copies = [*background[:-1], SeriesRow(burst_at, 212, 0, 212, 0, 0.0, 13)]  # 200 copies of one post
    distinct = [*background[:-1], SeriesRow(burst_at, 212, 0, 212, 0, 0.0, 212)]
    assert not [f for f in detect(copies, Thresholds(), check=[burst_at]) if f.kind == VOLUME_SPIKE]
    assert [f for f in detect(distinct, Thresholds(), check=[burst_at]) if f.kind == VOLUME_SPIKE]


def _burst(conn: psycopg.Connection, *, copies: bool) -> list[str]:
    """Eight days of 20 distinct posts a day, then a ninth day with its 20 and a burst of 200 posts: copies of
    one text (its stored vector, slightly perturbed) or 200 distinct ones. Vectors are random unit vectors
    (384 dimensions: nearly orthogonal), linked by the real SQL over the HNSW index; the alerts the real
    aggregation's detector stored, by kind and bucket size."""
    from murmur.alerts import detector
    from murmur.config.settings import AlertSettings
    from murmur.sentiment.scorer import Score
    from murmur.store.dedupe import link_duplicates
    from murmur.store.embeddings import write_embeddings
    from murmur.store.scores import write_scores

    rng = np.random.default_rng(7)
    start = datetime(2025, 1, 5, tzinfo=UTC)
    posts = [(f"bg-{d}-{i}", start + timedelta(days=d, hours=i, minutes=7)) for d in range(9) for i in range(20)]
    posts += [(f"burst-{i}", start + timedelta(days=8, hours=12, seconds=10 * i)) for i in range(200)]
    upsert_posts(conn, [Post(source="mastodon", source_id=sid, url=f"https://example.social/{sid}", author="a",
                             text=sid, lang="en", created_at=at, terms=["RedNote"]) for sid, at in posts])
    ids = dict(conn.execute("SELECT source_id, id FROM posts").fetchall())
    vectors = rng.normal(size=(len(posts), 384)).astype(np.float32)
    if copies:
        vectors[-200:] = vectors[-200] + rng.normal(scale=0.01, size=(200, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    post_ids = [ids[sid] for sid, _ in posts]
    with conn.transaction():
        write_embeddings(conn, EMBEDDING_MODEL, post_ids, vectors)
        link_duplicates(conn, EMBEDDING_MODEL, post_ids, threshold=0.85, window=timedelta(days=7))
        write_scores(conn, "m", post_ids, [Score("neutral", 0.1, 0.8, 0.1)] * len(post_ids))
    aggregate(conn, detect=detector(AlertSettings()))
    conn.commit()  # the SELECT above opened a transaction: the blocks in it were savepoints
    return [f"{k}/{s}" for k, s in conn.execute("SELECT kind, bucket_size FROM alerts ORDER BY 1, 2")]


def test_a_burst_of_copies_does_not_raise_a_volume_spike_on_the_stored_series(conn: psycopg.Connection) -> None:
    assert not [a for a in _burst(conn, copies=True) if a.startswith("volume_spike")]
    unique = conn.execute("SELECT sum(posts), sum(unique_posts) FROM aggregates WHERE bucket_size = 'day' "
                          "AND bucket_start = '2025-01-13'").fetchone()
    assert unique == (220, 21)


def test_as_many_distinct_posts_raise_a_volume_spike(conn: psycopg.Connection) -> None:
    assert "volume_spike/hour" in _burst(conn, copies=False)  # 201 posts in the hour against 1 usually


def test_report_dedupe_counts_each_text_once(conn: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    import json

    from tests.conftest import run_murmur

    _burst(conn, copies=True)
    plain = run_murmur("report", "--since", "2025-01-13", "--format", "json", db_url=db_url, timeout=120)
    deduped = run_murmur("report", "--since", "2025-01-13", "--format", "json", "--dedupe", db_url=db_url,
                         timeout=120)
    assert plain.returncode == 0 and deduped.returncode == 0, plain.stderr + deduped.stderr
    assert [(r["posts"], r["unique_posts"]) for r in json.loads(plain.stdout)] == [(220, 21)]
    assert [r["posts"] for r in json.loads(deduped.stdout)] == [21]
    table = run_murmur("report", "--since", "2025-01-13", "--sections", "trend", db_url=db_url, timeout=120)
    assert table.returncode == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if line.startswith("day "))
    assert header.split()[-1] == "unique"
    html = run_murmur("report", "--since", "2025-01-13", "--html", str(tmp_path / "report.html"), db_url=db_url,
                      timeout=120)
    assert html.returncode == 0, html.stderr
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<th class='n'>distinct</th>" in text and "<td class='n'>220</td><td class='n'>21</td>" in text
