"""The store against a real PostgreSQL: migrations, idempotent upserts, cursors, claims, aggregates,
and what `murmur status` reads (the recorded schedule, runs of any status)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from murmur.config import load_settings
from murmur.crawler.items import Post
from murmur.scheduler.status import NOT_SCHEDULED, gather, render
from murmur.sentiment.scorer import Score
from murmur.store.db import connect
from murmur.store.migrate import available_migrations, migrate
from murmur.store.posts import get_cursor, set_cursors, upsert_posts
from murmur.store.scores import claim_unscored, count_unscored, write_scores
from murmur.store.status import last_successes, next_run_times, record_next_runs
from murmur.store.trends import aggregate, trend

T0 = datetime(2025, 1, 14, 9, 30, tzinfo=UTC)


def make_post(i: int, *, text: str | None = None, lang: str | None = "en", terms: list[str] | None = None,
              created: datetime | None = None, likes: int = 0) -> Post:
    return Post(
        source="mastodon", source_id=f"https://demo.invalid/statuses/{i}", url=f"https://demo.invalid/@a/{i}",
        author="a@demo.invalid", text=text or f"post {i} about RedNote", created_at=created or T0 + timedelta(hours=i),
        lang=lang, tags=["rednote"], metrics={"replies": 0, "reposts": 0, "likes": likes}, raw={"id": str(i)},
        terms=terms or ["RedNote"],
    )


def test_migrations_apply_once_and_twice_is_a_no_op(conn: psycopg.Connection) -> None:
    assert migrate(conn) == []
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in available_migrations()]


def test_migrations_from_two_processes_at_once_apply_once(db_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connect(db_url) as c:
                results.append(migrate(c))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, len(available_migrations())]


def test_upsert_is_idempotent_and_counts_new_updated_unchanged(conn: psycopg.Connection) -> None:
    posts = [make_post(i) for i in range(5)]
    with conn.transaction():
        first = upsert_posts(conn, posts)
    assert (first.new, first.updated, first.unchanged) == (5, 0, 0)
    with conn.transaction():
        again = upsert_posts(conn, posts)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 5)
    changed = [make_post(0, likes=7), make_post(1, text="edited about RedNote"), make_post(9)]
    with conn.transaction():
        third = upsert_posts(conn, changed)
    assert (third.new, third.updated, third.unchanged) == (1, 2, 0)
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (6,)
    assert conn.execute("SELECT likes FROM posts WHERE source_id LIKE '%/0'").fetchone() == (7,)


def test_nul_and_half_surrogates_are_dropped_not_fatal_to_the_batch(conn: psycopg.Connection) -> None:
    bad = make_post(1, text="RedNote\x00 is fun \ud83d")  # a NUL, and an emoji cut in half
    bad.author = "nul\x00author"
    bad.raw = {"title": "a\x00b", "nested": [{"s": "x\udc00y"}], "ok": "小红书 😀"}
    with conn.transaction():
        result = upsert_posts(conn, [make_post(0), bad, make_post(2)])
    assert result.new == 3
    row = conn.execute("SELECT text, author, raw FROM posts WHERE source_id LIKE '%/1'").fetchone()
    assert row == ("RedNote is fun ", "nulauthor", {"title": "ab", "nested": [{"s": "xy"}], "ok": "小红书 😀"})


def test_the_same_post_twice_in_one_batch_is_stored_once_with_both_terms(conn: psycopg.Connection) -> None:
    a = make_post(1, terms=["RedNote"])
    b = make_post(1, terms=["RedNote"])
    with conn.transaction():
        result = upsert_posts(conn, [a, b])
    assert result.new == 1
    with conn.transaction():
        upsert_posts(conn, [make_post(1, terms=["小红书"])])
    assert conn.execute("SELECT terms FROM posts").fetchall() == [(["RedNote", "小红书"],)]


def test_cursor_commits_with_its_posts_or_not_at_all(conn: psycopg.Connection) -> None:
    assert get_cursor(conn, "mastodon", "q") is None
    try:
        with conn.transaction():
            upsert_posts(conn, [make_post(1)])
            set_cursors(conn, [("mastodon", "q", "100")])
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    assert get_cursor(conn, "mastodon", "q") is None
    assert conn.execute("SELECT count(*) FROM posts").fetchone() == (0,)
    with conn.transaction():
        upsert_posts(conn, [make_post(1)])
        set_cursors(conn, [("mastodon", "q", "100")])
    with conn.transaction():
        set_cursors(conn, [("mastodon", "q", "200")])
    assert get_cursor(conn, "mastodon", "q") == "200"


def test_two_workers_never_claim_the_same_post(conn: psycopg.Connection, db_url: str) -> None:
    with conn.transaction():
        upsert_posts(conn, [make_post(i) for i in range(10)])
    with connect(db_url) as other:
        with conn.transaction(), other.transaction():
            mine = claim_unscored(conn, "m", 6)
            theirs = claim_unscored(other, "m", 6)
            assert len(mine) == 6 and len(theirs) == 4
            assert not {i for i, _ in mine} & {i for i, _ in theirs}
            write_scores(conn, "m", [i for i, _ in mine], [Score("positive", 0.1, 0.2, 0.7)] * 6)
        # `other` rolled back nothing and wrote nothing: its 4 are free again.
    assert count_unscored(conn, "m") == 4
    assert count_unscored(conn, "another-model") == 10


def _score_all(conn: psycopg.Connection, label_of: dict[int, Score]) -> None:
    with conn.transaction():
        claimed = claim_unscored(conn, "m", 1000)
        write_scores(conn, "m", [i for i, _ in claimed], [label_of.get(i, Score("neutral", 0.2, 0.6, 0.2))
                                                          for i, _ in claimed])


def _rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT bucket_size, bucket_start, source, term, lang, model, posts, negative, neutral, positive,"
        " round(mean_polarity::numeric, 6), round(weighted_polarity::numeric, 6), engagement"
        " FROM aggregates ORDER BY 1, 2, 3, 4, 5, 6"
    ).fetchall()


def test_aggregating_twice_inside_one_transaction_recomputes_only_the_new_buckets(conn: psycopg.Connection) -> None:
    with conn.transaction():  # a caller's transaction: each aggregate() inside it is a savepoint
        upsert_posts(conn, [make_post(i, created=T0 + timedelta(days=i)) for i in range(5)])
        _score_all(conn, {})
        first = aggregate(conn)
        upsert_posts(conn, [make_post(9, created=T0 + timedelta(days=9))])
        _score_all(conn, {})
        second = aggregate(conn)
    assert (first.buckets, first.rows) == (10, 10)  # 5 posts on 5 days: an hour and a day bucket each
    assert (second.buckets, second.rows) == (2, 2)  # only the new post's: the first run's are not redone


def test_incremental_aggregation_equals_a_rebuild(conn: psycopg.Connection) -> None:
    with conn.transaction():
        upsert_posts(conn, [make_post(i, created=T0 + timedelta(minutes=20 * i), likes=10 * i) for i in range(6)])
        upsert_posts(conn, [make_post(100, text="小红书 好", lang="zh", terms=["小红书", "RedNote"])])
    _score_all(conn, {1: Score("positive", 0.0, 0.1, 0.9), 2: Score("negative", 0.8, 0.1, 0.1)})
    first = aggregate(conn)
    assert first.scores == 7 and first.rows > 0
    assert aggregate(conn).scores == 0  # nothing new: nothing recomputed
    with conn.transaction():  # later posts in the same buckets, a post changing language, one gaining likes
        upsert_posts(conn, [make_post(i, created=T0 + timedelta(minutes=20 * i)) for i in range(6, 9)])
        upsert_posts(conn, [make_post(1, created=T0 + timedelta(minutes=20), likes=500)])
        upsert_posts(conn, [make_post(100, text="小红书 好", lang="ja", terms=["小红书", "RedNote"])])
    _score_all(conn, {})
    aggregate(conn)
    incremental = _rows(conn)
    aggregate(conn, rebuild=True)
    assert _rows(conn) == incremental
    day = [r for r in incremental if r[0] == "day" and r[3] == "RedNote" and r[4] == "en"]
    assert len(day) == 1 and day[0][6] == 9 and (day[0][7], day[0][9]) == (1, 1)
    assert day[0][12] == 500 + 20 + 30 + 40 + 50  # engagement: likes + reposts + replies, post 1's new likes
    # The negative post (id 2) has 500 likes, weight 1 + ln 501 = 7.2: it pulls the weighted mean below the plain one.
    assert day[0][11] < 0 < day[0][10]
    assert not [r for r in incremental if r[4] == "zh"]  # the stale language row is gone


# Day buckets counted from the posts themselves, as the aggregation did before it folded days from hours.
_DAYS_FROM_POSTS = """
SELECT 'day', date_bin(INTERVAL '1 day', p.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), p.source, term,
       COALESCE(p.lang, 'und'), s.model, count(*), count(*) FILTER (WHERE s.label = 'negative'),
       count(*) FILTER (WHERE s.label = 'neutral'), count(*) FILTER (WHERE s.label = 'positive'),
       round(avg(s.positive - s.negative)::numeric, 6),
       round((sum(murmur_engagement_weight(p.likes, p.reposts, p.replies) * (s.positive - s.negative))
              / sum(murmur_engagement_weight(p.likes, p.reposts, p.replies)))::numeric, 6),
       sum(murmur_engagement(p.likes, p.reposts, p.replies))
FROM posts p
JOIN sentiment_scores s ON s.post_id = p.id
CROSS JOIN LATERAL unnest(p.terms) AS term
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 1, 2, 3, 4, 5, 6
"""


def test_days_folded_from_their_hours_equal_the_days_counted_from_the_posts(conn: psycopg.Connection) -> None:
    # Posts over two days and many hours, with likes (weights) and mixed labels, aggregated in three runs.
    with conn.transaction():
        upsert_posts(conn, [make_post(i, created=T0 + timedelta(minutes=97 * i), likes=(i * 37) % 300,
                                      lang="zh" if i % 3 == 0 else "en") for i in range(30)])
    labels = [Score("positive", 0.05, 0.15, 0.8), Score("negative", 0.7, 0.2, 0.1), Score("neutral", 0.2, 0.6, 0.2)]
    _score_all(conn, {i: labels[i % 3] for i in range(1, 31)})
    aggregate(conn)
    with conn.transaction():
        upsert_posts(conn, [make_post(i, created=T0 + timedelta(minutes=97 * i + 5)) for i in range(30, 40)])
    _score_all(conn, {})
    aggregate(conn)
    days = [r for r in _rows(conn) if r[0] == "day"]
    assert len(days) >= 4 and days == conn.execute(_DAYS_FROM_POSTS).fetchall()
    # A post changed under the aggregates with only its day marked (murmur marks the hour too; a day alone is
    # taken as all its hours): the hour rows and the day follow.
    with conn.transaction():
        conn.execute("UPDATE posts SET lang = 'es' WHERE source_id = 'https://demo.invalid/statuses/3'")
        conn.execute("INSERT INTO dirty_buckets (bucket_size, bucket_start, source, model) "
                     "SELECT 'day', date_trunc('day', created_at, 'UTC'), source, 'm' FROM posts "
                     "WHERE source_id = 'https://demo.invalid/statuses/3'")
    run = aggregate(conn)
    assert run.buckets == 25  # the day and its 24 hours
    days = [r for r in _rows(conn) if r[0] == "day"]
    assert days == conn.execute(_DAYS_FROM_POSTS).fetchall() and any(r[4] == "es" for r in days)
    hours = [r for r in _rows(conn) if r[0] == "hour"]
    assert any(r[4] == "es" for r in hours)
    aggregate(conn, rebuild=True)
    assert [r for r in _rows(conn) if r[0] == "hour"] == hours


def test_trend_sums_languages_per_bucket_term_and_source(conn: psycopg.Connection) -> None:
    with conn.transaction():
        upsert_posts(conn, [make_post(1), make_post(2, lang="zh"), make_post(30)])
    _score_all(conn, {})
    aggregate(conn)
    rows = trend(conn, by="day")
    assert [(r.bucket_start.date().isoformat(), r.term, r.posts) for r in rows] == [
        ("2025-01-14", "RedNote", 2), ("2025-01-15", "RedNote", 1)
    ]
    assert trend(conn, by="day", since=datetime(2025, 1, 15, tzinfo=UTC))[0].posts == 1
    assert trend(conn, by="day", terms=["rednote"]) and not trend(conn, by="day", terms=["Lemon8"])
    assert len(trend(conn, by="hour")) == 3


# --- what `murmur status` reads -------------------------------------------------------------------


def test_next_runs_are_what_the_service_recorded_and_a_job_no_longer_scheduled_goes(
        conn: psycopg.Connection) -> None:
    assert next_run_times(conn) == {}  # no service recorded anything: nothing scheduled
    record_next_runs(conn, {"crawl:mastodon": (T0, 3600.0), "crawl:bluesky": (T0, 600.0), "score": (None, 5)},
                     drop_others=True)
    assert next_run_times(conn) == {"crawl:mastodon": T0, "crawl:bluesky": T0, "score": None}  # None: paused
    record_next_runs(conn, {"crawl:mastodon": (T0 + timedelta(hours=1), 3600.0)})  # after a run: that job only
    assert next_run_times(conn)["crawl:mastodon"] == T0 + timedelta(hours=1)
    record_next_runs(conn, {"crawl:mastodon": (T0, 3600.0), "score": (T0, 5.0)}, drop_others=True)
    assert next_run_times(conn) == {"crawl:mastodon": T0, "score": T0}  # bluesky was disabled since
    assert conn.execute("SELECT interval_seconds FROM job_schedule WHERE job = 'score'").fetchone() == (5.0,)


def test_status_shows_the_recorded_next_runs_and_a_partial_run_as_it_is(conn: psycopg.Connection) -> None:
    settings = load_settings(environ={})
    conn.execute("INSERT INTO job_runs (job, finished_at, status, error) "
                 "VALUES ('crawl:mastodon', now(), 'partial', '1 of 3 instances failed')")
    conn.commit()
    before = gather(conn, settings)
    assert before["service"] == "never ran on this database"
    assert {j["next_run"] for j in before["jobs"]} == {NOT_SCHEDULED}
    assert "crawl:mastodon" not in last_successes(conn)  # partial: not a success (nor a failure)
    nxt = datetime.now(UTC) + timedelta(hours=1)
    record_next_runs(conn, {"crawl:mastodon": (nxt, 3600.0), "score": (None, 5.0)}, drop_others=True)
    status = gather(conn, settings)
    jobs = {j["job"]: j for j in status["jobs"]}
    assert status["service"] == "scheduled"
    assert jobs["crawl:mastodon"]["next_run"] == nxt and jobs["score"]["next_run"] == "paused"
    assert jobs["aggregate"]["next_run"] == NOT_SCHEDULED
    assert jobs["crawl:mastodon"]["last_run"]["status"] == "partial"
    table = render(status, "table", database="test")
    assert re.search(r"^crawl:mastodon\s+\S+ \S+\s+partial\s", table, re.M), table
    assert "crawl:mastodon: 1 of 3 instances failed" in table


def test_status_renders_a_status_it_does_not_know_as_it_is() -> None:
    run = {"started_at": T0, "finished_at": None, "status": "skipped", "seconds": None, "new_posts": None,
           "scored": None, "error": None}
    status = {"posts": 0, "scores": 0, "aggregate_rows": 0, "backlog": {"unscored_posts": 0, "models": []},
              "scorer": {"posts_per_second": None}, "service": "scheduled",
              "jobs": [{"job": "score", "last_run": run, "next_run": NOT_SCHEDULED}],
              "recent_runs": [run | {"job": "score"}]}
    table = render(status, "table", database="test")
    assert re.search(r"^score\s+\S+ \S+\s+skipped\s", table, re.M) and "score            skipped" in table
    assert '"status": "skipped"' in render(status, "json", database="test")


def test_status_says_from_the_registry_what_a_source_collects_and_which_credentials_are_unset(
        conn: psycopg.Connection, tmp_path: Path) -> None:
    config = tmp_path / "murmur.toml"
    config.write_text("[sources.reddit]\nenabled = true\n[sources.youtube]\nenabled = true\n")
    env = {"MURMUR_REDDIT_CLIENT_ID": "id-123456", "MURMUR_REDDIT_CLIENT_SECRET": "secret-123456"}
    settings = load_settings(config, environ=env)
    jobs = {j["job"]: j for j in gather(conn, settings)["jobs"]}
    assert jobs["crawl:reddit"]["credentials_unset"] == [] and "search" in jobs["crawl:reddit"]["collects"]
    assert jobs["crawl:youtube"]["credentials_unset"] == ["MURMUR_YOUTUBE_API_KEY"]
    table = render(gather(conn, settings), "table", database="test")
    assert "crawl:youtube: credentials not set: MURMUR_YOUTUBE_API_KEY" in table
    assert "crawl:reddit: credentials" not in table


def test_a_stream_row_never_erases_what_a_crawl_stored(conn: psycopg.Connection) -> None:
    uri = "at://did:plc:abc/app.bsky.feed.post/3k"
    crawled = Post(source="bluesky", source_id=uri, url="https://bsky.app/profile/amy.bsky.social/post/3k",
                   author="amy.bsky.social", text="RedNote is fun", created_at=T0, lang="en", terms=["RedNote"],
                   metrics={"likes": 5, "reposts": 1, "replies": 2}, raw={"uri": uri})
    upsert_posts(conn, [crawled])
    streamed = Post(source="bluesky", source_id=uri, url="https://bsky.app/profile/did:plc:abc/post/3k",
                    author="did:plc:abc", text="RedNote is fun", created_at=T0, lang=None, terms=["RedNote"],
                    parent_source_id="at://did:plc:xyz/app.bsky.feed.post/1a", via="stream")
    upsert_posts(conn, [streamed])
    row = conn.execute("SELECT url, author, lang, likes, reposts, replies, raw, parent_source_id, via FROM posts"
                       ).fetchone()
    assert row == (crawled.url, "amy.bsky.social", "en", 5, 1, 2, {"uri": uri},
                   "at://did:plc:xyz/app.bsky.feed.post/1a", "crawl")
    # and a handle, once known, replaces the DID
    upsert_posts(conn, [streamed])
    conn.execute("UPDATE posts SET author = 'did:plc:abc', url = %s", (streamed.url,))
    upsert_posts(conn, [crawled])
    assert conn.execute("SELECT author, url FROM posts").fetchone() == ("amy.bsky.social", crawled.url)
