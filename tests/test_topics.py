"""Topics per period (`murmur topics`, the report's topics section, the `topic_emerging` alert), on a real
PostgreSQL with pgvector and the real multilingual-e5 embeddings of the bilingual posts (tests/fixtures/search)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from murmur.app import App
from murmur.config import load_settings
from murmur.config.settings import AlertSettings
from murmur.crawler.items import Post
from murmur.reports.build import build_report
from murmur.reports.filters import Filters
from murmur.reports.html import render_html
from murmur.reports.text import render_table
from murmur.sentiment.embeddings import EMBEDDING_MODEL
from murmur.store.embeddings import SearchFilters, write_embeddings
from murmur.store.posts import upsert_posts
from murmur.store.trends import aggregate
from murmur.topics import Topic, find_topics
from tests.conftest import run_murmur
from tests.test_alerts import Receiver
from tests.test_search import bilingual_posts, no_vector_url  # noqa: F401 - a fixture, used by name

MONDAY = datetime(2025, 1, 13, tzinfo=UTC)
SCORE_MODEL = "m"
EVIL = "<script>alert('x')</script> dumplings at home <b>tonight</b>"


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    """Each fixture text's stored vector (e5, centred per language), computed once for the module."""
    from murmur.sentiment.centring import load_centring
    from murmur.sentiment.embeddings import Embedder

    posts = bilingual_posts()
    texts = [p.text for p in posts] + [EVIL]
    langs = [p.lang for p in posts] + ["en"]
    embedded = load_centring().apply(Embedder.load("cpu").embed(texts), langs)
    return dict(zip(texts, embedded, strict=True))


def store(conn: psycopg.Connection, vectors: dict[str, np.ndarray], posts: Sequence[Post],
          polarity: float | None = None) -> list[int]:
    """Store `posts` with their embeddings (and a score of SCORE_MODEL with this polarity); their ids."""
    upsert_posts(conn, list(posts))
    keys = [(p.source, p.source_id) for p in posts]
    ids = {(s, i): pid for pid, s, i in conn.execute("SELECT id, source, source_id FROM posts")}
    post_ids = [ids[k] for k in keys]
    write_embeddings(conn, EMBEDDING_MODEL, post_ids, np.stack([vectors[p.text] for p in posts]))
    if polarity is not None:
        positive, negative = (polarity, 0.0) if polarity >= 0 else (0.0, -polarity)
        conn.cursor().executemany(
            "INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive) "
            "VALUES (%s, %s, 'neutral', %s, %s, %s)",
            [(pid, SCORE_MODEL, negative, 1 - positive - negative, positive) for pid in post_ids])
    conn.commit()
    return post_ids


def subject(post_id: int, conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT source_id FROM posts WHERE id = %s", (post_id,)).fetchone()
    assert row is not None
    return str(row[0]).split("-")[0]


def on_day(posts: Sequence[Post], day: datetime, tag: str) -> list[Post]:
    """Copies of `posts` created on `day` (their own ids, so a text can be posted on several days)."""
    return [replace(p, source_id=f"{p.source_id}-{tag}", created_at=day + timedelta(minutes=i))
            for i, p in enumerate(posts)]


def of(subject_name: str) -> list[Post]:
    return [p for p in bilingual_posts() if p.source_id.startswith(subject_name + "-")]


def test_topics_recover_the_subjects_with_english_and_chinese_together(conn: psycopg.Connection,
                                                                       vectors: dict[str, np.ndarray]) -> None:
    store(conn, vectors, bilingual_posts())
    topics = find_topics(conn, SearchFilters(), by="week", score_model=None)
    assert len(topics) == 4 and {t.period for t in topics} == {MONDAY}
    assert sorted(t.size for t in topics) == [10, 10, 10, 10]
    seen = set()
    for topic in topics:
        subjects = Counter(subject(i, conn) for i in topic.members)
        main, count = subjects.most_common(1)[0]
        assert count >= 8, subjects  # each subject mostly in one topic ...
        seen.add(main)
        langs = {r[0] for r in conn.execute("SELECT lang FROM posts WHERE id = ANY (%s)", (topic.members,))}
        assert langs == {"en", "zh"}  # ... its English and Chinese posts together
        assert topic.label and topic.words and len(topic.posts) == 3
        assert not topic.new and topic.growth is None  # nothing before to compare with
    assert seen == {"cooking", "tiktok", "pets", "travel"}
    tiktok = next(t for t in topics if "tiktok" in t.words)
    assert subject(tiktok.members[0], conn) == "tiktok"
    # The same posts give the same topics.
    again = find_topics(conn, SearchFilters(), by="week", score_model=None)
    assert [(t.label, t.size, t.words) for t in again] == [(t.label, t.size, t.words) for t in topics]


def two_days(conn: psycopg.Connection, vectors: dict[str, np.ndarray]) -> datetime:
    """Day one: 5 cooking and 5 TikTok posts; day two: 10 cooking, 5 TikTok and 10 pets posts (new)."""
    cooking, tiktok = of("cooking"), of("tiktok")
    store(conn, vectors, on_day(cooking[::2] + tiktok[::2], MONDAY, "a"), polarity=0.5)
    day2 = MONDAY + timedelta(days=1)
    store(conn, vectors, on_day(cooking + tiktok[1::2] + of("pets"), day2, "b"), polarity=-0.25)
    return day2


def test_a_new_subject_is_new_and_a_doubled_one_grew_two_fold(conn: psycopg.Connection,
                                                            vectors: dict[str, np.ndarray]) -> None:
    day2 = two_days(conn, vectors)
    topics = find_topics(conn, SearchFilters(), by="day", score_model=SCORE_MODEL)
    first = [t for t in topics if t.period == MONDAY]
    assert len(first) == 2 and all(not t.new and t.growth is None for t in first)
    by_subject: dict[str, list[Topic]] = {}
    for t in topics:
        if t.period == day2:
            by_subject.setdefault(subject(t.members[0], conn), []).append(t)
    assert set(by_subject) == {"cooking", "tiktok", "pets"}
    (cooking,), (tiktok,), pets = by_subject["cooking"], by_subject["tiktok"], by_subject["pets"]
    # pets may come as one topic or two (its dogs and its cats): new either way, all ten posts
    assert all(t.new and t.growth is None and t.rising for t in pets) and sum(t.size for t in pets) == 10
    assert not cooking.new and cooking.size == 10 and cooking.growth == pytest.approx(2.0) and cooking.rising
    assert not tiktok.new and tiktok.growth == pytest.approx(1.0) and not tiktok.rising
    assert all(t.mean_polarity == pytest.approx(-0.25, abs=1e-3) for t in pets)
    assert all(t.mean_polarity == pytest.approx(0.5, abs=1e-3) for t in first)
    # --since starts at day two, which is still compared with day one.
    later = find_topics(conn, SearchFilters(since=day2), by="day", score_model=SCORE_MODEL)
    assert [(t.period, t.label, t.new, t.growth) for t in later] == [
        (t.period, t.label, t.new, t.growth) for t in topics if t.period == day2]


def test_topics_prints_json_and_csv(conn: psycopg.Connection, vectors: dict[str, np.ndarray], db_url: str) -> None:
    day2 = two_days(conn, vectors)
    out = run_murmur("topics", "--by", "day", "--format", "json", db_url=db_url)
    assert out.returncode == 0, out.stderr
    topics = json.loads(out.stdout)
    assert {t["period"] for t in topics} == {MONDAY.isoformat(), day2.isoformat()}
    assert list(topics[0]) == ["period", "label", "words", "size", "mean_polarity", "new", "growth", "posts"]
    assert list(topics[0]["posts"][0]) == ["text", "url", "created_at"]
    assert topics[0]["posts"][0]["url"].startswith("https://")
    pets = [t for t in topics if t["period"] == day2.isoformat() and t["new"]]
    assert all(t["growth"] is None for t in pets) and sum(t["size"] for t in pets) == 10
    assert pets[0]["mean_polarity"] == pytest.approx(-0.25, abs=1e-3)  # the only scoring model's scores
    zh = run_murmur("topics", "--by", "week", "--lang", "zh", "--source", "bluesky", "--format", "csv",
                    db_url=db_url)
    assert zh.returncode == 0, zh.stderr
    assert zh.stdout.splitlines()[0] == "period,label,words,size,mean_polarity,new,growth,post_text,post_url"
    rows = list(csv.DictReader(io.StringIO(zh.stdout)))
    zh_posts = conn.execute("SELECT count(*) FROM posts WHERE lang = 'zh'").fetchone()
    assert zh_posts is not None and sum(int(r["size"]) for r in rows) == zh_posts[0]
    assert all(r["post_url"].startswith("https://") for r in rows)
    table = run_murmur("topics", "--by", "day", db_url=db_url)
    assert table.returncode == 0 and "new" in table.stdout and "×2.0" in table.stdout, table


def test_the_report_shows_topics_and_escapes_posts_and_links(conn: psycopg.Connection,
                                                             vectors: dict[str, np.ndarray]) -> None:
    day = MONDAY + timedelta(days=3)
    evil = Post(source="mastodon", source_id="evil-1", url="javascript:alert(1)", author="x", text=EVIL, lang="en",
                created_at=day + timedelta(hours=1), terms=["RedNote"])
    store(conn, vectors, [*on_day(of("cooking")[:2], day, "c"), evil], polarity=0.2)
    aggregate(conn)
    conn.commit()
    f = Filters(by="day", since=day, until=day + timedelta(days=1))
    report = build_report(conn, f, sections=("trend", "topics"), highlights=True)
    assert report.topics is not None and len(report.topics) == 1 and report.topics[0].size == 3
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>tonight" not in page and "javascript:" not in page
    assert "<section id='topics'>" in page
    text = render_table(report, ("topics",))
    assert text.startswith("Topics per day") and "+0.20" in text
    assert json.loads(json.dumps(report.section_rows("topics")))[0]["size"] == 3


def test_an_emerging_topic_is_alerted_once_and_posted_once(conn: psycopg.Connection,
                                                           vectors: dict[str, np.ndarray]) -> None:
    day2 = two_days(conn, vectors)
    app = App(load_settings(environ={}), conn.info.dsn)
    # A post the next day: day two is then complete.
    store(conn, vectors, on_day(of("travel")[:1], day2 + timedelta(days=1), "c"), polarity=0.0)
    with Receiver(204) as hook:
        settings = AlertSettings(webhook_url=hook.url, timeout=2.0, retries=1, backoff=0.01)
        outcome = app.aggregate(conn, alerts=settings)
        assert outcome.status == "ok", outcome.error
        store(conn, vectors, on_day(of("travel")[1:3], day2 + timedelta(days=1), "d"), polarity=0.0)
        again = app.aggregate(conn, alerts=settings)  # new scores, the same complete day: checked once
    rows = conn.execute("SELECT kind, bucket_size, bucket_start, source, term, model, value, baseline "
                        "FROM alerts WHERE kind = 'topic_emerging' ORDER BY value, term").fetchall()
    # cooking doubled (5 -> 10 posts); pets is new, but as dogs (6) and cats (4) its topics are under
    # alerts.min_posts (10), or one topic of 10 that is alerted
    grown = [r for r in rows if r[7] > 0]
    new = [r for r in rows if r[7] == 0]
    assert len(grown) == 1 and grown[0][1:4] == ("day", day2, "all") and grown[0][5] == EMBEDDING_MODEL
    assert grown[0][6] == 10 and grown[0][7] == pytest.approx(5)
    assert all(r[6] == 10 for r in new) and len(new) <= 1
    assert again.result.alerts == 0
    bodies = [b for b in hook.bodies if b["kind"] == "topic_emerging"]
    assert len(bodies) == len(rows) and hook.hits == len(hook.bodies)  # each posted once
    text = next(b["text"] for b in bodies if not b["details"]["new"])
    assert text.startswith("a topic 2.0x its size the day before: ") and "10 of 25 posts" in text


def test_without_pgvector_topics_says_why(no_vector_url: str) -> None:  # noqa: F811 - the fixture
    from murmur.store.migrate import migrate

    with psycopg.connect(no_vector_url) as c:
        migrate(c)
    out = run_murmur("topics", db_url=no_vector_url)
    assert out.returncode == 1, out
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("murmur: error: this database has no embeddings: the PostgreSQL server lacks the "
                           "pgvector extension") and "Traceback" not in out.stderr
