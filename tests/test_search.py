"""Embeddings in PostgreSQL (pgvector) and `murmur search`, on a real server with the real multilingual-e5:
written with the scores in one transaction, back-filled by `murmur embed`, a query in one language finding the
other language's posts on its subject, filters inside the index query, and a server without the extension."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from murmur.app import App
from murmur.config import load_settings
from murmur.crawler.items import Post
from murmur.search import EmbeddingsUnavailable
from murmur.sentiment.embeddings import EMBEDDING_MODEL, Embedder
from murmur.store import embeddings as store_embeddings
from murmur.store.embeddings import SearchFilters, embeddings_available, exact_search
from murmur.store.migrate import migrate
from murmur.store.posts import upsert_posts
from tests.conftest import FIXTURES, run_murmur

POSTS = FIXTURES / "search" / "bilingual_posts.tsv"
T0 = datetime(2025, 1, 13, 9, tzinfo=UTC)


def bilingual_posts() -> list[Post]:
    """40 posts written for these tests: English and Chinese on four subjects (cooking, the TikTok ban, pets,
    travel); English on mastodon, Chinese on bluesky; TikTok posts match the term TikTok, the rest RedNote;
    each subject a day of its own."""
    with POSTS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    days = {"cooking": 0, "tiktok": 1, "pets": 2, "travel": 3}
    return [
        Post(source="mastodon" if r["lang"] == "en" else "bluesky", source_id=f"{r['subject']}-{i}",
             url=f"https://example.social/{i}", author=f"user{i}", text=r["text"], lang=r["lang"],
             created_at=T0 + timedelta(days=days[r["subject"]], minutes=i),
             terms=["TikTok"] if r["subject"] == "tiktok" else ["RedNote"])
        for i, r in enumerate(rows)
    ]


def subject_of(source_id: str) -> str:
    return source_id.split("-")[0]


def e5_model() -> str:
    """A built-in model over the e5 encoder that this working tree can load (@1 once @2 is the default)."""
    from murmur.sentiment.model import BUILTINS, E5_V1_NAME, MANIFEST

    return E5_V1_NAME if (BUILTINS[E5_V1_NAME] / MANIFEST).is_file() else "murmur-e5-sentiment"


@pytest.fixture(scope="module")
def app() -> App:
    """One App for the module (models loaded once); each test hands it its own connection."""
    # float32: the scoring pass gives exactly the plain e5 embedding (an int8 copy gives it within int8's rounding)
    settings = load_settings(environ={"MURMUR_MODEL__NAME": e5_model(), "MURMUR_MODEL__DEVICE": "cpu",
                                      "MURMUR_MODEL__QUANTIZE": "none"})
    return App(settings, "postgresql://unused")


@pytest.fixture
def stored(conn: psycopg.Connection, app: App) -> Iterator[psycopg.Connection]:
    """The bilingual posts, embedded."""
    upsert_posts(conn, bilingual_posts())
    conn.commit()
    assert app.embed(conn).embedded == 40
    yield conn


def _source_ids(conn: psycopg.Connection, ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = conn.execute("SELECT id, source_id, lang FROM posts WHERE id = ANY (%s)", (ids,))
    return {int(i): (sid, lang) for i, sid, lang in rows}


@pytest.mark.parametrize(("query", "subject", "other"), [
    ("cooking dinner at home", "cooking", "zh"),
    ("在家做饭", "cooking", "en"),
    ("TikTok禁令", "tiktok", "en"),
    ("我的宠物猫和狗", "pets", "en"),
])
def test_a_query_in_one_language_finds_the_other_languages_posts_on_its_subject(
        stored: psycopg.Connection, app: App, query: str, subject: str, other: str) -> None:
    hits = app.search(stored, query, SearchFilters(), limit=10)
    assert len(hits) == 10
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    found = _source_ids(stored, [h.id for h in hits])
    on_subject = [found[h.id] for h in hits if subject_of(found[h.id][0]) == subject]
    assert len(on_subject) >= 7, on_subject  # the subject decides the ranking ...
    # ... and the other language's posts on it come into the top 10 (plain e5 put none there for a
    # Chinese query: measured 0-1 of 10; centred, 3-5).
    assert sum(lang == other for _, lang in on_subject) >= 3, on_subject


@pytest.mark.parametrize("path", ["index", "exact"])
def test_filters_are_applied_inside_the_index_query(stored: psycopg.Connection, app: App, path: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Both paths: the HNSW scan with the filters inside it, and the exact scan of the filtered posts that narrow
    # filters take (here every filter is narrow: 40 posts).
    if path == "index":
        monkeypatch.setattr(store_embeddings, "EXACT_SCAN_ROWS", 0)
    assert exact_search(stored, SearchFilters(langs=("zh",))) is (path == "exact")
    assert exact_search(stored, SearchFilters()) is False  # no filter: always the index
    query = "cooking dinner at home"
    zh = app.search(stored, query, SearchFilters(langs=("zh",)), limit=5)
    assert len(zh) == 5 and {h.lang for h in zh} == {"zh"} and {h.source for h in zh} == {"bluesky"}
    assert {subject_of(sid) for sid, _ in _source_ids(stored, [h.id for h in zh]).values()} == {"cooking"}
    assert {h.source for h in app.search(stored, query, SearchFilters(sources=("mastodon",)))} == {"mastodon"}
    # Only the TikTok day: the nearest posts to a cooking query there are still 10 TikTok posts, no fewer.
    day = app.search(stored, query, SearchFilters(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2)))
    assert len(day) == 10 and all(T0 + timedelta(days=1) <= h.created_at < T0 + timedelta(days=2) for h in day)
    term = app.search(stored, query, SearchFilters(terms=("TikTok",)), limit=20)
    assert len(term) == 10 and {subject_of(s) for s, _ in _source_ids(stored, [h.id for h in term]).values()} == {
        "tiktok"}
    assert app.search(stored, query, SearchFilters(langs=("ja",))) == []


def test_search_prints_json_and_csv(stored: psycopg.Connection, db_url: str) -> None:
    out = run_murmur("search", "the TikTok ban", "--limit", "3", "--format", "json", "--lang", "zh",
                     db_url=db_url, MURMUR_MODEL__DEVICE="cpu")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert len(hits) == 3 and list(hits[0]) == ["text", "similarity", "source", "created_at", "label", "url"]
    assert all("TikTok" in h["text"] and h["source"] == "bluesky" for h in hits)
    assert 0 < hits[2]["similarity"] <= hits[0]["similarity"] <= 1
    assert hits[0]["label"] is None  # embedded by `murmur embed`, never scored
    out = run_murmur("search", "我家的狗", "--limit", "2", "--format", "csv", "--since", "2025-01-15",
                     "--until", "2025-01-16", db_url=db_url, MURMUR_MODEL__DEVICE="cpu")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(out.stdout.splitlines()))
    assert len(rows) == 2 and rows[0]["created_at"].startswith("2025-01-15") and rows[0]["url"].startswith("https://")


def test_scoring_stores_the_embeddings_with_the_scores_in_one_transaction(conn: psycopg.Connection,
                                                                         app: App) -> None:
    posts = bilingual_posts()[:6]
    posts.append(Post(source="mastodon", source_id="fr-1", url=None, author="a", lang="fr", created_at=T0,
                      text="J'ai fait des raviolis à la maison ce soir", terms=["RedNote"]))
    upsert_posts(conn, posts)
    conn.commit()
    outcome = app.score(conn)
    assert outcome is not None and outcome.run.scored == 6 and outcome.unscored == 1
    # Each scored post's embedding was written by the transaction that wrote its score (same xmin).
    same = conn.execute("""
        SELECT count(*) FILTER (WHERE s.xmin::text = e.xmin::text), count(*)
        FROM sentiment_scores s JOIN post_embeddings e USING (post_id)""").fetchone()
    assert same == (6, 6)
    # The French post no model covers is embedded too (e5 reads about a hundred languages).
    models = conn.execute("SELECT p.lang, e.model FROM post_embeddings e JOIN posts p ON p.id = e.post_id "
                          "WHERE p.lang = 'fr'").fetchall()
    assert models == [("fr", EMBEDDING_MODEL)]
    norms = [float(r[0]) for r in conn.execute("SELECT vector_norm(embedding) FROM post_embeddings")]
    assert len(norms) == 7 and all(abs(n - 1) < 1e-4 for n in norms)
    assert app.embed(conn).embedded == 0  # nothing left for the back-fill


def test_the_shared_pass_gives_the_plain_e5_embedding(app: App) -> None:
    scorer = app.routes()[0].scorer
    texts = [p.text for p in bilingual_posts()[::5]]
    scores, shared = scorer.score_with_embeddings(texts)
    assert scores == scorer.score(texts)
    plain = Embedder.load("cpu").embed(texts)
    assert np.abs(shared - plain).max() < 1e-4


def test_embed_back_fills_what_scoring_without_embeddings_left(conn: psycopg.Connection, app: App,
                                                              db_url: str) -> None:
    upsert_posts(conn, bilingual_posts()[:12])
    conn.commit()
    off = App(load_settings(environ={"MURMUR_MODEL__NAME": e5_model(), "MURMUR_MODEL__EMBEDDINGS": "false"}),
              "postgresql://unused")
    off._scorers = app._scorers  # the module's loaded model, not a second copy
    outcome = off.score(conn)
    assert outcome is not None and outcome.run.scored == 12
    assert conn.execute("SELECT count(*) FROM post_embeddings").fetchone() == (0,)
    assert app.embed(conn, limit=5).embedded == 5
    out = run_murmur("embed", db_url=db_url, MURMUR_MODEL__DEVICE="cpu")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("embedded 7 posts")
    assert run_murmur("embed", db_url=db_url).stdout.startswith("embedded 0 posts")  # idempotent
    stats = conn.execute("SELECT stats->>'embedded' FROM job_runs WHERE job = 'embed' ORDER BY id").fetchall()
    assert [int(s[0]) for s in stats] == [5, 7, 0]
    labelled = app.search(conn, "dumplings", SearchFilters(), limit=1)
    assert labelled[0].label in ("negative", "neutral", "positive")


def test_a_migration_needing_a_missing_extension_is_skipped_with_one_line_and_tried_again(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    migrations = [
        (9001, "9001_first.sql", "CREATE TABLE first_table (a int)"),
        (9002, "9002_needs.sql", "-- requires: murmur_no_such_extension\nCREATE TABLE needs_it (a int)"),
        (9003, "9003_later.sql", "CREATE TABLE later_table (a int)"),
    ]
    with psycopg.connect(db_url) as c, caplog.at_level(logging.INFO, logger="murmur.store.migrate"):
        assert migrate(c, migrations) == ["9001_first.sql", "9003_later.sql"]
        assert migrate(c, migrations) == []  # tried again, skipped again, nothing else to do
        tables = {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        assert {"first_table", "later_table"} <= tables and "needs_it" not in tables
        assert [r[0] for r in c.execute("SELECT version FROM schema_migrations ORDER BY 1")] == [9001, 9003]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "9002_needs.sql skipped" in warnings[0]
    assert "murmur_no_such_extension" in warnings[0]


@pytest.fixture
def no_vector_url(server_url: str) -> Iterator[str]:
    """A database where the vector extension is not installed, reached as a role that may not create it:
    a user's server without pgvector, for real."""
    name = f"noext_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"DROP ROLE IF EXISTS {name}")
        admin.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER")
        admin.execute(f"CREATE DATABASE {name} OWNER {name}")
    yield make_conninfo(server_url, dbname=name, user=name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE {name}")


def test_without_pgvector_scoring_stores_scores_warning_once_and_search_says_why(
        no_vector_url: str, app: App, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="murmur"), psycopg.connect(no_vector_url) as conn:
        migrate(conn)
        assert not embeddings_available(conn)
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (0,)
        upsert_posts(conn, bilingual_posts()[:4])
        conn.commit()
        fresh = App(app.settings, "postgresql://unused")
        fresh._scorers = app._scorers  # the module's loaded model
        first = fresh.score(conn)
        upsert_posts(conn, bilingual_posts()[4:6])
        conn.commit()
        second = fresh.score(conn)
        assert first is not None and second is not None and (first.run.scored, second.run.scored) == (4, 2)
        with pytest.raises(EmbeddingsUnavailable):
            fresh.search(conn, "cooking", SearchFilters())
    skipped = [r.getMessage() for r in caplog.records if "0010_embeddings.sql skipped" in r.getMessage()]
    assert len(skipped) <= 1  # once per process (an earlier test in this process may have logged it)
    assert len([r for r in caplog.records if "no embeddings stored" in r.getMessage()]) == 1
    for args in (("search", "cooking"), ("embed",)):
        out = run_murmur(*args, db_url=no_vector_url)
        assert out.returncode == 1, out
        lines = out.stderr.strip().splitlines()
        assert lines[-1].startswith("murmur: error: this database has no embeddings: the PostgreSQL server lacks "
                                    "the pgvector extension"), lines
        assert "Traceback" not in out.stderr


def test_an_int8_model_stores_the_plain_e5_embedding_from_its_own_int8_pass(conn: psycopg.Connection,
                                                                           app: App) -> None:
    upsert_posts(conn, bilingual_posts()[:4])
    conn.commit()
    int8 = App(load_settings(environ={"MURMUR_MODEL__NAME": e5_model(), "MURMUR_MODEL__DEVICE": "cpu",
                                      "MURMUR_MODEL__QUANTIZE": "int8"}), "postgresql://unused")
    outcome = int8.score(conn)
    assert outcome is not None and outcome.run.scored == 4 and outcome.models[0].endswith("+int8")
    from murmur.store.embeddings import register

    register(conn)
    rows = conn.execute("SELECT embedding FROM post_embeddings ORDER BY post_id").fetchall()
    stored = np.stack([r[0].to_numpy() for r in rows])
    texts = [p.text for p in bilingual_posts()[:4]]
    from murmur.sentiment.centring import load_centring

    expected = load_centring().apply(app.plain_embedder().embed(texts), [p.lang for p in bilingual_posts()[:4]])
    # One pass, in int8: the same vectors as float32's but for int8's rounding (README: Search).
    from murmur.sentiment.embeddings import shares_pass

    assert shares_pass(int8.load_scorer(e5_model()).model)
    from murmur.sentiment.quantize import full_range_activations

    cosines = (stored * expected).sum(axis=1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(expected, axis=1)
    # 8-bit activations (VNNI/AMX CPUs) keep them within 0.98; 7-bit ones (older x86: an AVX2-only EPYC measured
    # 0.973 for the worst of these four) within 0.96.
    assert cosines.min() > (0.98 if full_range_activations() else 0.96), cosines
    assert np.abs(stored - expected).max() > 1e-6


def test_hybrid_ranking_fuses_ranks_not_scores() -> None:
    from murmur.search import hybrid_ranking

    # 3 is second in both rankings: 2/(60+2) beats 1's 1/(60+1) from one ranking alone.
    assert hybrid_ranking([1, 3, 5], [4, 3, 6], 3) == [3, 1, 4]
    assert hybrid_ranking([1, 2], [], 5) == [1, 2]  # no word matched: the semantic order as it was
    assert hybrid_ranking([], [7, 8], 1) == [7]


def test_hybrid_search_brings_in_the_posts_that_hold_a_rare_word(stored: psycopg.Connection, app: App,
                                                                 db_url: str) -> None:
    # A made-up name on a post about something else: its embedding does not carry the name, its text does.
    odd = Post(source="mastodon", source_id="odd-1", url="https://example.social/odd", author="odd",
               text="The cat slept on the keyboard all afternoon again while I was reading about Zorblaxia", lang="en",
               created_at=T0 + timedelta(days=3, hours=5), terms=["RedNote"])
    han = Post(source="bluesky", source_id="odd-2", url="https://example.social/odd2", author="odd2",
               text="今天下午和朋友去公园散步，顺便买了柠檬八的周边", lang="zh",
               created_at=T0 + timedelta(days=3, hours=6), terms=["RedNote"])
    upsert_posts(stored, [odd, han])
    stored.commit()
    assert app.embed(stored).embedded == 2
    # Measured on these posts: the embedding ranks the cooking posts first, and the name's post 6th or lower
    plain = app.search(stored, "cooking Zorblaxia at home", SearchFilters(), limit=5)
    hybrid = app.search(stored, "cooking Zorblaxia at home", SearchFilters(), limit=5, hybrid=True)
    assert not any("Zorblaxia" in h.text for h in plain)
    assert any("Zorblaxia" in h.text for h in hybrid) and len(hybrid) == 5
    assert all(0 < h.similarity <= 1 for h in hybrid)  # the cosine similarity, also for a lexical-only hit
    assert "Zorblaxia" in app.search(stored, "Zorblaxia cooking", SearchFilters(), limit=5, hybrid=True)[0].text
    # Chinese words are segmented (jieba) before they are matched; the filters hold for the lexical half too.
    assert "周边" not in app.search(stored, "做饭 周边", SearchFilters(langs=("zh",)), limit=3)[0].text
    assert "周边" in app.search(stored, "做饭 周边", SearchFilters(langs=("zh",)), limit=3, hybrid=True)[0].text
    assert {h.lang for h in app.search(stored, "Zorblaxia", SearchFilters(langs=("zh",)), limit=3,
                                       hybrid=True)} == {"zh"}
    out = run_murmur("search", "Zorblaxia", "--hybrid", "--limit", "2", "--format", "json", db_url=db_url,
                     MURMUR_MODEL__DEVICE="cpu")
    assert out.returncode == 0, out.stderr
    assert "Zorblaxia" in json.loads(out.stdout)[0]["text"]


def test_the_stored_embeddings_id_names_the_centring_means_version() -> None:
    from murmur.sentiment.centring import VERSION

    assert EMBEDDING_MODEL == f"multilingual-e5-small/centred@{VERSION}"
