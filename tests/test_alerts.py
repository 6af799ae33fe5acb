"""Alerts: the detector on synthetic series, storage after aggregation, webhook delivery to a local
HTTP receiver, the [alerts] config, and `murmur aggregate` with a webhook that fails."""

from __future__ import annotations

import json
import logging
import math
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest

from murmur.alerts import deliver_in_background, deliver_pending, detector
from murmur.alerts.detection import SENTIMENT_SHIFT, VOLUME_SPIKE, Thresholds, detect
from murmur.alerts.webhook import post_json
from murmur.app import App
from murmur.config import ConfigError, load_settings
from murmur.config.settings import AlertSettings
from murmur.crawler.items import Post
from murmur.store.alerts import recent_alerts
from murmur.store.posts import upsert_posts
from murmur.store.trends import aggregate
from tests.conftest import run_murmur

T0 = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday, 00:00 UTC
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
THRESHOLDS = Thresholds(spike=5.0, shift=4.0, min_posts=10, baseline_days=7)


@dataclass(frozen=True)
class B:
    """A synthetic bucket."""

    start: datetime
    posts: int
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    mean_polarity: float = 0.0


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones: enough for test series."""
    if mean > 60:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def daily_rhythm(hour: int) -> float:
    """A quiet night (2 posts an hour at 08:00 UTC: night in the US), a busy evening (40 at 20:00)."""
    return 2 + 38 * (1 + math.cos((hour - 20) / 24 * 2 * math.pi)) / 2


def hourly_series(days: int, seed: int, mean: Callable[[int], float] = daily_rhythm) -> dict[datetime, B]:
    rng = random.Random(seed)
    out = {}
    for h in range(days * 24):
        start = T0 + h * HOUR
        n = poisson(rng, mean(start.hour))
        if n:
            out[start] = B(start, n)
    return out


def sentiment_bucket(start: datetime, rng: random.Random, posts: int, p_pos: float, p_neg: float) -> B:
    """`posts` posts with labels drawn at these rates; each post's polarity is +-0.8 or its neutral 0."""
    labels = rng.choices(["positive", "negative", "neutral"], [p_pos, p_neg, 1 - p_pos - p_neg], k=posts)
    pos, neg = labels.count("positive"), labels.count("negative")
    return B(start, posts, neg, posts - pos - neg, pos, 0.8 * (pos - neg) / posts)


def kinds_at(findings: list, kind: str) -> list[datetime]:
    return sorted(f.bucket_start for f in findings if f.kind == kind)


# --- the detector, pure ------------------------------------------------------------------------


def test_spikes_in_a_quiet_and_a_busy_hour_are_flagged_and_nothing_else() -> None:
    series = hourly_series(14, seed=1)
    quiet = T0 + 10 * DAY + 8 * HOUR  # ~2 posts at 08:00 usually
    busy = T0 + 11 * DAY + 20 * HOUR  # ~40 posts at 20:00 usually
    series[quiet] = B(quiet, 30)
    series[busy] = B(busy, 160)
    found = detect(series.values(), THRESHOLDS)
    assert kinds_at(found, VOLUME_SPIKE) == [quiet, busy]
    spike = next(f for f in found if f.bucket_start == quiet)
    assert spike.value == 30 and spike.baseline <= 4 and spike.score >= 5
    assert spike.details["baseline_days"] == 7 and len(spike.details["baseline_counts"]) == 7


def test_a_daily_rhythm_alone_never_alerts() -> None:
    # Evenings have 20 times the posts of nights: a baseline of the hours just before would call
    # every evening a spike; the same hour of the previous days does not.
    for seed in range(5):
        assert detect(hourly_series(30, seed=seed).values(), THRESHOLDS) == []


def test_a_quiet_series_never_alerts() -> None:
    for seed in range(5):
        series = hourly_series(30, seed=seed, mean=lambda hour: 1.5)
        assert max(b.posts for b in series.values()) < THRESHOLDS.min_posts + 5
        assert detect(series.values(), THRESHOLDS) == []


def test_an_overdispersed_noisy_series_does_not_alert() -> None:
    # Counts whose day-to-day spread is far above Poisson (a gamma-distributed rate, sd 35% of the
    # mean): the MAD of the same hours widens the noise so ordinary busy days are not spikes.
    for seed in range(5):
        rng = random.Random(seed)
        series = {}
        for h in range(30 * 24):
            start = T0 + h * HOUR
            rate = rng.gammavariate(8, daily_rhythm(start.hour) / 8)
            series[start] = B(start, poisson(rng, rate))
        assert kinds_at(detect(series.values(), THRESHOLDS), VOLUME_SPIKE) == []


def test_no_spike_before_enough_days_were_watched() -> None:
    first = T0 + 2 * DAY + 15 * HOUR
    series = [B(first, 50)]  # the stream's very first hour: nothing to compare it with
    assert detect(series, THRESHOLDS) == []
    # Watched (and silent) for three days: enough baseline days, but no day yet to know the spread by.
    assert detect(series, THRESHOLDS, watched_since=first - 3 * DAY) == []
    # Four days: the same 50 posts are a spike against zeros.
    found = detect(series, THRESHOLDS, watched_since=first - 4 * DAY)
    assert kinds_at(found, VOLUME_SPIKE) == [first] and found[0].baseline == 0
    assert found[0].details["baseline_days"] == 4


def test_only_the_buckets_asked_for_are_checked() -> None:
    series = hourly_series(14, seed=2)
    spike = T0 + 12 * DAY + 8 * HOUR
    series[spike] = B(spike, 40)
    assert detect(series.values(), THRESHOLDS, check=[spike - HOUR]) == []
    assert kinds_at(detect(series.values(), THRESHOLDS, check=[spike]), VOLUME_SPIKE) == [spike]


def daily_sentiment(days: int, seed: int, posts: int = 200) -> dict[datetime, B]:
    rng = random.Random(seed)
    return {T0 + d * DAY: sentiment_bucket(T0 + d * DAY, rng, posts, 0.35, 0.25) for d in range(days)}


def test_sentiment_shifts_down_and_up_are_flagged_with_their_sign() -> None:
    series = daily_sentiment(20, seed=3)
    rng = random.Random(99)
    down, up = T0 + 10 * DAY, T0 + 17 * DAY
    series[down] = sentiment_bucket(down, rng, 200, 0.15, 0.55)  # polarity ~ +0.08 -> -0.32
    series[up] = sentiment_bucket(up, rng, 200, 0.65, 0.10)  # -> +0.44
    found = detect(series.values(), Thresholds(baseline_days=7), step=DAY)
    assert kinds_at(found, SENTIMENT_SHIFT) == [down, up]
    by_start = {f.bucket_start: f for f in found if f.kind == SENTIMENT_SHIFT}
    assert by_start[down].score <= -4 and by_start[down].value < by_start[down].baseline
    assert by_start[down].details["direction"] == "down" and by_start[down].details["posts"] == 200
    assert by_start[up].score >= 4 and by_start[up].details["direction"] == "up"
    assert kinds_at(found, VOLUME_SPIKE) == []  # 200 posts a day throughout


def test_sentiment_noise_and_small_buckets_never_alert() -> None:
    for seed in range(5):
        assert detect(daily_sentiment(40, seed=seed).values(), THRESHOLDS, step=DAY) == []
    series = daily_sentiment(10, seed=4)
    few = T0 + 10 * DAY
    series[few] = B(few, THRESHOLDS.min_posts - 1, negative=9, mean_polarity=-0.9)  # all negative, too few posts
    assert detect(series.values(), THRESHOLDS, step=DAY) == []


def test_a_shift_within_the_noise_of_small_buckets_is_not_flagged() -> None:
    # Hour buckets of 12 posts: a swing from +0.1 to -0.2 is well within their noise.
    rng = random.Random(5)
    series = {T0 + h * HOUR: sentiment_bucket(T0 + h * HOUR, rng, 12, 0.4, 0.25) for h in range(24 * 8)}
    dip = T0 + 24 * 8 * HOUR
    series[dip] = B(dip, 12, negative=5, neutral=4, positive=3, mean_polarity=-0.2)
    assert kinds_at(detect(series.values(), THRESHOLDS), SENTIMENT_SHIFT) == []


# --- after aggregation, in PostgreSQL ------------------------------------------------------------


def seed_posts(conn: psycopg.Connection, per_hour: dict[datetime, int], *, term: str = "RedNote",
               label: str = "neutral", start_id: int = 0) -> int:
    """Posts at each hour (second k), scored `label` by model 'm'; returns the next free id."""
    probs = {"negative": (0.9, 0.05, 0.05), "neutral": (0.1, 0.8, 0.1), "positive": (0.05, 0.05, 0.9)}
    posts, i = [], start_id
    for hour, n in per_hour.items():
        for k in range(n):
            posts.append(Post(source="mastodon", source_id=f"s{i}", url=f"https://demo.invalid/{i}", author="a",
                              text=f"{term} {i}", created_at=hour + timedelta(seconds=k), lang="en",
                              terms=[term], metrics={"likes": k % 3, "reposts": 0, "replies": 0}))
            i += 1
    with conn.transaction():
        upsert_posts(conn, posts)
        # Written as the scoring worker writes them (importing the worker would load torch: seconds).
        conn.execute(
            """
            INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive)
            SELECT id, 'm', %s, %s, %s, %s FROM posts p
            WHERE NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id)
            """,
            (label, *probs[label]),
        )
    return i


def spike_data(conn: psycopg.Connection) -> datetime:
    """Two weeks of 2 posts at noon, then 40 at noon on the fifteenth day: returns that hour."""
    next_id = seed_posts(conn, {T0 + d * DAY + 12 * HOUR: 2 for d in range(14)})
    spike = T0 + 14 * DAY + 12 * HOUR
    seed_posts(conn, {spike: 40}, start_id=next_id)
    return spike


def alert_rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT kind, bucket_size, bucket_start, source, term, model, value, baseline, delivered_at"
        " FROM alerts ORDER BY bucket_size, bucket_start, kind"
    ).fetchall()


def test_aggregation_stores_each_alert_once_and_logs_it_once(conn: psycopg.Connection,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    spike = spike_data(conn)
    caplog.set_level(logging.WARNING, logger="murmur.alerts")
    run = aggregate(conn, detect=detector(AlertSettings()))
    rows = alert_rows(conn)
    assert [(r[0], r[1], r[2], r[4], r[6], r[7], r[8]) for r in rows] == [
        ("volume_spike", "day", T0 + 14 * DAY, "RedNote", 40.0, 2.0, None),
        ("volume_spike", "hour", spike, "RedNote", 40.0, 2.0, None),
    ]
    assert run.alerts == 2
    newest = recent_alerts(conn, since=spike)
    assert [(a.bucket_size, a.bucket_start) for a in newest] == [("hour", spike)] and newest[0].id is not None
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert:")]
    assert len(logged) == 2 and "volume spike: 'RedNote' on mastodon, 40 posts" in logged[1]
    caplog.clear()
    # A later post in the same hour re-checks it: the stored alert is refreshed, not duplicated or re-logged.
    seed_posts(conn, {spike + 30 * timedelta(minutes=1): 5}, start_id=10_000)
    again = aggregate(conn, detect=detector(AlertSettings()))
    assert again.alerts == 0 and [r[6] for r in alert_rows(conn)] == [45.0, 45.0]
    assert aggregate(conn, rebuild=True, detect=detector(AlertSettings())).alerts == 0
    assert len(alert_rows(conn)) == 2 and not [r for r in caplog.records if r.getMessage().startswith("alert:")]


def test_an_alert_another_model_raised_is_stored_as_told_not_raised_again(conn: psycopg.Connection) -> None:
    # A new default model re-scoring the history finds the spikes the old one found: told once is enough.
    from murmur.store.alerts import AlertRow, store_alerts

    def row(model: str, term: str = "RedNote") -> AlertRow:
        return AlertRow("volume_spike", "hour", T0, "mastodon", term, model, 40.0, 2.0, 9.0, {})

    assert [a.model for a in store_alerts(conn, [row("old@1")])] == ["old@1"]
    assert store_alerts(conn, [row("new@2")]) == []  # stored, delivered, not logged or posted
    assert [a.model for a in store_alerts(conn, [row("new@2", term="Lemon8")])] == ["new@2"]  # a new finding
    told = dict(conn.execute("SELECT model, delivered_at IS NOT NULL FROM alerts WHERE term = 'RedNote'").fetchall())
    assert told == {"old@1": False, "new@2": True}


def test_a_spike_in_the_latest_hour_is_found_by_an_incremental_run(conn: psycopg.Connection) -> None:
    # Two weeks of 20 posts every hour are aggregated first; then 200 more arrive in one hour. The
    # incremental run must read enough history to know the series' spread (reading too little
    # takes the missing days for silent ones, and the spread for huge).
    def add(start: datetime, hours: int, per_hour: int, tag: str) -> None:
        with conn.transaction():
            conn.execute(
                """
                INSERT INTO posts (source, source_id, text, lang, created_at, terms)
                SELECT 'mastodon', %(tag)s || h || '-' || k, 'RedNote', 'en',
                       %(start)s::timestamptz + h * INTERVAL '1 hour' + k * INTERVAL '1 second', ARRAY['RedNote']
                FROM generate_series(0, %(hours)s - 1) AS h, generate_series(1, %(n)s) AS k
                """,
                {"tag": tag, "start": start, "hours": hours, "n": per_hour},
            )
            conn.execute(
                """
                INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive)
                SELECT id, 'm', 'neutral', 0.1, 0.8, 0.1 FROM posts p
                WHERE NOT EXISTS (SELECT 1 FROM sentiment_scores s WHERE s.post_id = p.id)
                """
            )

    add(T0, 14 * 24 + 12, 20, "old")
    aggregate(conn, detect=detector(AlertSettings()))
    assert alert_rows(conn) == []  # a steady series: nothing to flag
    add(T0 + 14 * DAY + 11 * HOUR, 1, 200, "new")
    run = aggregate(conn, detect=detector(AlertSettings()))
    assert [(r[0], r[1], r[2], r[6], r[7]) for r in alert_rows(conn)] == [
        ("volume_spike", "hour", T0 + 14 * DAY + 11 * HOUR, 220.0, 20.0)
    ] and run.alerts == 1


def test_disabled_alerts_detect_nothing(conn: psycopg.Connection) -> None:
    spike_data(conn)
    assert detector(AlertSettings(enabled=False)) is None
    aggregate(conn, detect=detector(AlertSettings(enabled=False)))
    assert alert_rows(conn) == []


def test_a_failing_detector_never_loses_the_aggregation(conn: psycopg.Connection,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    spike_data(conn)

    def broken(c: psycopg.Connection) -> int:
        c.execute("SELECT * FROM no_such_table")
        return 0

    run = aggregate(conn, detect=broken)
    assert run.rows > 0 and conn.execute("SELECT count(*) FROM aggregates").fetchone()[0] == run.rows
    assert "alert detection failed" in caplog.text


def test_a_sentiment_shift_after_aggregation_is_stored_with_its_sign(conn: psycopg.Connection) -> None:
    next_id = 0
    for d in range(7):  # a week of 20 neutral posts a day, spread over the day
        next_id = seed_posts(conn, {T0 + d * DAY + h * HOUR: 1 for h in range(20)}, start_id=next_id)
    seed_posts(conn, {T0 + 7 * DAY + h * HOUR: 1 for h in range(20)}, label="negative", start_id=next_id)
    aggregate(conn, detect=detector(AlertSettings()))
    rows = conn.execute(
        "SELECT kind, bucket_size, bucket_start, value, baseline, score, details FROM alerts"
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("sentiment_shift", "day", T0 + 7 * DAY)]
    assert rows[0][3] == pytest.approx(-0.85) and rows[0][4] == pytest.approx(0.0, abs=1e-6) and rows[0][5] < -4
    assert rows[0][6]["posts"] == 20 and rows[0][6]["baseline_posts"] == 140


# --- the webhook ---------------------------------------------------------------------------------


class Receiver:
    """A local webhook on 127.0.0.1 (port 0): answers with `statuses` in turn (the last one repeats)."""

    def __init__(self, *statuses: int, delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.bodies: list[dict] = []
        self.hits = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses[min(receiver.hits, len(receiver.statuses) - 1)]
                receiver.hits += 1
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                if 200 <= status < 300:
                    assert self.headers["Content-Type"] == "application/json"
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN/"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fast() -> Iterator[Callable[[str], AlertSettings]]:
    yield lambda url: AlertSettings(webhook_url=url, timeout=2.0, retries=3, backoff=0.01)


def test_each_alert_is_posted_once_as_json(conn: psycopg.Connection,
                                           fast: Callable[[str], AlertSettings]) -> None:
    spike = spike_data(conn)
    with Receiver(204) as hook:
        outcome = App(load_settings(environ={}), conn.info.dsn).aggregate(conn, alerts=fast(hook.url))
        sent = outcome.delivery
        assert sent is not None and (outcome.result.alerts, sent.delivered, sent.waiting) == (2, 2, 0)
        assert outcome.status == "ok"
        assert deliver_pending(conn, fast(hook.url)).delivered == 0  # nothing left: nothing sent again
    assert hook.hits == 2
    hourly = next(b for b in hook.bodies if b["bucket_size"] == "hour")
    assert hourly["kind"] == "volume_spike" and hourly["bucket_start"] == spike.isoformat()
    assert (hourly["source"], hourly["term"], hourly["model"], hourly["value"], hourly["baseline"]) == \
        ("mastodon", "RedNote", "m", 40.0, 2.0)
    assert hourly["text"].startswith("volume spike: 'RedNote' on mastodon") and hourly["details"]["baseline_days"] == 7
    assert all(r[8] is not None for r in alert_rows(conn))


def test_a_webhook_failing_twice_then_answering_gets_the_alert(conn: psycopg.Connection,
                                                                fast: Callable[[str], AlertSettings]) -> None:
    spike_data(conn)
    aggregate(conn, detect=detector(AlertSettings()))
    with Receiver(503, 500, 200) as hook:
        sent = deliver_pending(conn, fast(hook.url))
    assert (sent.delivered, sent.waiting) == (2, 0)
    assert hook.hits == 4 and len(hook.bodies) == 2  # 503, 500, then 200 for the first; 200 for the second


def test_a_webhook_that_always_fails_leaves_alerts_for_the_next_run(conn: psycopg.Connection,
                                                                     fast: Callable[[str], AlertSettings],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    spike_data(conn)
    aggregate(conn, detect=detector(AlertSettings()))
    with Receiver(500) as hook:
        sent = deliver_pending(conn, fast(hook.url))
    assert (sent.delivered, sent.waiting, sent.error) == (0, 2, "HTTP 500")
    assert hook.hits == 4  # the first alert's 1 + 3 retries; the second is not tried against a dead endpoint
    assert all(r[8] is None for r in alert_rows(conn))
    warning = [r.getMessage() for r in caplog.records if "did not take" in r.getMessage()]
    assert len(warning) == 1 and "T0KEN" not in warning[0] and "http://127.0.0.1:" in warning[0]
    with Receiver(200) as hook:  # the next run, the endpoint back
        assert deliver_pending(conn, fast(hook.url)).delivered == 2


def test_retries_wait_exponentially_longer() -> None:
    waits: list[float] = []
    with Receiver(503) as hook:
        result = post_json(hook.url, {"x": 1}, timeout=2, retries=3, backoff=0.5,
                           wait=lambda s: waits.append(s) or False)
    assert waits == [0.5, 1.0, 2.0] and (result.ok, result.attempts, result.last) == (False, 4, "HTTP 503")


def test_a_refused_request_is_not_retried_and_a_hanging_webhook_times_out() -> None:
    with Receiver(404) as hook:
        assert post_json(hook.url, {}, retries=3, backoff=0).attempts == 1
    with Receiver(200, delay=1.0) as hook:
        result = post_json(hook.url, {}, timeout=0.2, retries=1, backoff=0)
    assert not result.ok and result.attempts == 2 and "timed out" in result.last
    refused = post_json("http://127.0.0.1:9/", {}, timeout=1, retries=0)  # nothing listens on the discard port
    assert not refused.ok and refused.last


def test_the_service_delivers_in_a_thread_of_its_own(conn: psycopg.Connection, db_url: str,
                                                     fast: Callable[[str], AlertSettings]) -> None:
    spike_data(conn)
    run = aggregate(conn, detect=detector(AlertSettings()))
    conn.commit()
    with Receiver(200) as hook:
        sender = deliver_in_background(db_url, fast(hook.url), new_alerts=run.alerts)
        assert sender is not None
        sender.join(timeout=20)
    assert hook.hits == 2 and all(r[8] is not None for r in alert_rows(conn))


# --- config and the command ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key", "hint"),
    [
        ("spike_threshold = 0", "alerts.spike_threshold", "above 0"),
        ('shift_threshold = "high"', "alerts.shift_threshold", "above 0"),
        ("min_posts = 0", "alerts.min_posts", "above 0"),
        ("baseline_days = 400", "alerts.baseline_days", "1 to 366"),
        ('webhook_url = "hooks.example/T0KEN"', "alerts.webhook_url", "http:// or https://"),
        ("retries = -1", "alerts.retries", "0 or more"),
        ('timeout = "soon"', "alerts.timeout", "duration"),
        ('enabled = "perhaps"', "alerts.enabled", "true or false"),
        ("spike = 3", "alerts.spike", "known keys"),
    ],
)
def test_a_bad_alerts_value_names_the_key_and_the_fix(tmp_path: Path, toml: str, key: str, hint: str) -> None:
    user = tmp_path / "bad.toml"
    user.write_text(f"[alerts]\n{toml}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(user, environ={})
    message = str(err.value)
    assert key in message and hint in message and "\n" not in message and "T0KEN" not in message


def test_the_webhook_url_comes_from_the_environment() -> None:
    settings = load_settings(environ={"MURMUR_ALERTS__WEBHOOK_URL": "https://hooks.example/T/B/x/",
                                      "MURMUR_ALERTS__MIN_POSTS": "25"})
    assert settings.alerts.webhook_url == "https://hooks.example/T/B/x/" and settings.alerts.min_posts == 25
    assert load_settings(environ={}).alerts == AlertSettings()


def test_murmur_aggregate_exits_0_when_the_webhook_fails_and_delivers_next_time(conn: psycopg.Connection,
                                                                                db_url: str) -> None:
    spike_data(conn)
    conn.commit()
    env = {"MURMUR_ALERTS__RETRIES": "1", "MURMUR_ALERTS__BACKOFF": "0.01", "MURMUR_ALERTS__TIMEOUT": "2"}
    with Receiver(500) as hook:
        failed = run_murmur("aggregate", db_url=db_url, MURMUR_ALERTS__WEBHOOK_URL=hook.url, **env)
    assert failed.returncode == 0, failed.stderr
    assert "2 new alerts" in failed.stdout and "0 delivered to the webhook, 2 waiting" in failed.stdout
    assert "alert: volume spike: 'RedNote'" in failed.stderr and "T0KEN" not in failed.stderr + failed.stdout
    assert hook.hits == 2 and all(r[8] is None for r in alert_rows(conn))
    with Receiver(503, 200) as hook:  # fails once, then takes both
        ok = run_murmur("aggregate", db_url=db_url, MURMUR_ALERTS__WEBHOOK_URL=hook.url, **env)
    assert ok.returncode == 0 and "2 delivered to the webhook" in ok.stdout
    assert "alert:" not in ok.stderr  # logged once, by the run that found them
    conn.rollback()
    assert hook.hits == 3 and all(r[8] is not None for r in alert_rows(conn))
