"""The report tables (migrations 0013 and 0016, store/rollups.py) against the posts themselves: co-occurrence,
language mix, top posts and the --compare source|lang series read from the tables equal the same queries run over
`posts` (store/report_scan.py), for hour, day and week periods, term, source and language filters, unscored posts
and odd language tags; after the first aggregation, after incremental ones, after deletes, edits and re-crawls that
change tags and likes, and after a rebuild (which gives the incremental runs' rows)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import product

import psycopg
import pytest

from murmur.crawler.items import Post
from murmur.reports.extras import _with_previous, language_mix, rank_cooccurrence
from murmur.reports.filters import Filters, ReportError
from murmur.reports.highlights import top_posts
from murmur.reports.series import post_scope
from murmur.sentiment.scorer import Score
from murmur.store.posts import upsert_posts
from murmur.store.report_scan import scan_cooccurrence_counts, scan_language_counts, scan_top_scored_posts
from murmur.store.reports import (
    KEPT_DIMS,
    TOP_LIMIT,
    cooccurrence_counts,
    language_counts,
    series_from_posts,
    series_from_rollups,
    top_scored_posts,
)
from murmur.store.rollups import TABLES
from murmur.store.scores import write_scores
from murmur.store.stream import delete_posts, forget_edited
from murmur.store.trends import aggregate

START = datetime(2025, 1, 12, 20, tzinfo=UTC)  # a Sunday evening: the first days straddle two ISO weeks
TERMS = ["RedNote", "小红书", "TikTok refugee", "Lemon8"]
TAGS = ["rednote", "RedNote", "tiktokrefugees", "lemon8s", "xiaohongshu", "小红书", "tiktokban", "Foo", "foo"]
LANGS = ["en", "EN-us", "en-GB", "zh", "zh-Hans", "ZH-tw", "ja", "und", None]
SOURCES = ["mastodon", "bluesky", "lemmy"]
# Few distinct scores, so polarities tie and the engagement, time and id break them.
SCORES = [Score("positive", 0.05, 0.15, 0.80), Score("negative", 0.70, 0.20, 0.10),
          Score("neutral", 0.2, 0.6, 0.2), Score("neutral", 0.3, 0.4, 0.3), Score("positive", 0.01, 0.04, 0.95)]


def posts(rng: random.Random, prefix: str, n: int, *, hours: int = 150) -> list[Post]:
    out = []
    for i in range(n):
        terms = rng.sample(TERMS, rng.choice([1, 1, 1, 2, 3]))
        if rng.random() < 0.05:
            terms.append(terms[0])  # a term twice, as a pipeline bug might store it
        created = START + timedelta(hours=rng.randrange(hours), minutes=rng.randrange(60))
        out.append(Post(source=rng.choice(SOURCES), source_id=f"{prefix}{i}", url=f"https://x.example/{prefix}{i}",
                        author=f"a{i}", text=f"post {prefix}{i}", created_at=created, lang=rng.choice(LANGS),
                        tags=rng.sample(TAGS, rng.choice([0, 1, 2, 3])), terms=terms,
                        metrics={"likes": rng.choice([0, 0, 1, 5, 40])}))
    return out


def store(conn: psycopg.Connection, batch: list[Post], rng: random.Random, *, models: tuple[str, ...] = ("m1", "m2"),
          scored: float = 0.8) -> None:
    """The posts written through the store, most of them scored (by one or two models)."""
    with conn.transaction():
        upsert_posts(conn, batch)
        ids = dict(conn.execute("SELECT source_id, id FROM posts WHERE source_id = ANY (%s)",
                                ([p.source_id for p in batch],)).fetchall())
        for model in models:
            chosen = [ids[p.source_id] for p in batch if rng.random() < scored]
            write_scores(conn, model, chosen, [rng.choice(SCORES) for _ in chosen])


FILTERS = [
    Filters(by=by, since=since, until=until, terms=terms, sources=sources, langs=langs)
    for by, (since, until), terms, (sources, langs) in product(
        ("hour", "day", "week"),
        ((None, None), (START + timedelta(hours=27, minutes=30), START + timedelta(hours=101)),
         (START + timedelta(hours=5), START + timedelta(hours=17))),
        ((), ("rednote",), ("小红书", "LEMON8")),
        (((), ()), (("mastodon",), ()), (("bluesky", "lemmy"), ("zh",)), ((), ("zh-hans", "und"))),
    )
]


def assert_same(conn: psycopg.Connection, *, every: int = 1) -> None:
    """Every filter combination (or every `every`th) gives the same rows from the tables as from the posts."""
    for f in FILTERS[::every]:
        scope = post_scope(f)
        wide = _with_previous(f)
        every = scan_cooccurrence_counts(conn, unit=f.by, scope=wide)
        assert sorted(cooccurrence_counts(conn, unit=f.by, scope=wide)) == sorted(every), f
        for top in (1, 3):  # the report's ranking, from the entries each period's top needs
            assert rank_cooccurrence(cooccurrence_counts(conn, unit=f.by, scope=wide, top=top), f, top=top) == \
                rank_cooccurrence(every, f, top=top), (f, top)
        assert language_counts(conn, unit=f.by, scope=scope) == scan_language_counts(conn, unit=f.by, scope=scope), f
        for dim, model in product(KEPT_DIMS, ("m1", "m2")):  # --compare source|lang
            kept = series_from_rollups(conn, unit=f.by, dim=dim, model=model, scope=scope)
            counted = series_from_posts(conn, unit=f.by, dim=dim, model=model, scope=scope)
            assert [r[:-1] for r in kept] == [r[:-1] for r in counted], (f, dim, model)
            assert [r[-1] for r in kept] == pytest.approx([r[-1] for r in counted], abs=1e-6), (f, dim, model)
        for model, positive, limit in product(("m1", "m2"), (True, False), (1, TOP_LIMIT)):
            assert top_scored_posts(conn, model=model, scope=scope, positive=positive, limit=limit) == \
                scan_top_scored_posts(conn, model=model, scope=scope, positive=positive, limit=limit), (f, model)


def tables(conn: psycopg.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in TABLES}


def test_report_tables_equal_the_posts_through_increments_deletes_edits_and_rebuild(conn: psycopg.Connection) -> None:
    rng = random.Random(15)
    store(conn, posts(rng, "a", 400), rng)
    aggregate(conn)
    assert conn.execute("SELECT count(*) FROM report_term_sets").fetchone()[0] > 0
    assert_same(conn)

    # New posts in old and new hours, some never scored (a language no model covers), one model only.
    store(conn, posts(rng, "b", 60, hours=170), rng, models=("m1",), scored=0.5)
    run = aggregate(conn)
    assert run.report_buckets > 0
    assert_same(conn, every=3)

    # Posts only, no score: the report tables still take them in.
    store(conn, posts(rng, "c", 20, hours=170), rng, models=())
    assert aggregate(conn).scores == 0
    assert_same(conn, every=3)

    # A stream deletes posts and edits others (their scores go); a re-crawl changes tags, likes and terms.
    ids = [sid for (sid,) in conn.execute("SELECT source_id FROM posts WHERE source = 'bluesky' ORDER BY id LIMIT 12")]
    with conn.transaction():
        delete_posts(conn, "bluesky", ids[:6])
        forget_edited(conn, "bluesky", {sid: "edited " + sid for sid in ids[6:]})
    recrawl = [p for p in posts(random.Random(15), "a", 400) if p.source != "bluesky"][:30]
    for p in recrawl:
        p.tags, p.metrics, p.terms = ["brandnew", "Foo"], {"likes": 999}, [*p.terms, "Lemon8"]
    with conn.transaction():
        upsert_posts(conn, recrawl)
    aggregate(conn)
    assert_same(conn)

    incremental = tables(conn)
    aggregate(conn, rebuild=True)
    assert tables(conn) == incremental
    assert_same(conn)


def test_language_mix_honours_lang(conn: psycopg.Connection) -> None:
    rng = random.Random(3)
    store(conn, posts(rng, "a", 120), rng)
    aggregate(conn)
    mix = language_mix(conn, Filters(langs=("zh",)))
    assert mix and all(m.en == 0 and m.other == 0 and m.zh == m.posts for m in mix)
    assert sum(m.posts for m in language_mix(conn, Filters())) > sum(m.posts for m in mix)


def test_top_beyond_what_the_tables_keep_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(ReportError, match=f"--top must be from 1 to {TOP_LIMIT}"):
        top_posts(conn, Filters(), "m1", limit=TOP_LIMIT + 1)
