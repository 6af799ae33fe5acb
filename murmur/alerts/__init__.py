"""Alerts after aggregation: detect volume spikes and sentiment shifts in the buckets just
recomputed (detection.py), store them in `alerts` (store/alerts.py), log each once, and POST them to
a webhook when one is configured (webhook.py). README: Alerts; thresholds: config [alerts].

Detection runs inside the aggregation's transaction, so buckets are never aggregated without being
checked; delivery runs after it commits, and what the webhook did not take is retried next time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from murmur.alerts.detection import DAY, HOUR, SENTIMENT_SHIFT, Thresholds, detect, history_days
from murmur.alerts.webhook import post_json, safe_url
from murmur.store.alerts import (
    AlertRow,
    claim_undelivered,
    count_undelivered,
    mark_delivered,
    store_alerts,
    touched_series,
)

if TYPE_CHECKING:
    from murmur.config.settings import AlertSettings

logger = logging.getLogger(__name__)


def detector(settings: AlertSettings) -> Callable[[psycopg.Connection], int] | None:
    """The hook `store.trends.aggregate(detect=...)` runs on the buckets it recomputed; None when
    alerts are off. It returns how many new alerts it stored."""
    if not settings.enabled:
        return None
    thresholds = Thresholds.from_settings(settings)

    def detect_touched(conn: psycopg.Connection) -> int:
        data = touched_series(conn, hour_days=history_days(HOUR, settings.baseline_days),
                              day_days=history_days(DAY, settings.baseline_days))
        found: list[AlertRow] = []
        for (size, source, term, model), rows in data.series.items():
            stream = (size, source, model)
            for f in detect(rows, thresholds, step=HOUR if size == "hour" else DAY,
                            watched_since=data.watched_since.get(stream), check=data.touched.get(stream, ())):
                # Rounded, so recomputing the same bucket (a rebuild sums in another order) stores the same figures.
                found.append(AlertRow(f.kind, size, f.bucket_start, source, term, model, round(f.value, 6),
                                      round(f.baseline, 6), round(f.score, 6), f.details))
        new = store_alerts(conn, found)
        for alert in new:
            logger.warning("alert: %s", describe(alert))
        return len(new)

    return detect_touched


def describe(alert: AlertRow) -> str:
    """One line for people: the log, and the payload's `text` (what Slack-style webhooks show)."""
    when = (f"the hour from {alert.bucket_start:%Y-%m-%d %H:%M} UTC" if alert.bucket_size == "hour"
            else f"the day {alert.bucket_start:%Y-%m-%d} (UTC)")
    if alert.kind == "topic_emerging":  # murmur/topics/alert.py; term: the topic's label
        change = "a new topic" if alert.details.get("new") else f"a topic {alert.score:.1f}x its size the day before"
        return (f"{change}: {alert.term!r}, {alert.value:.0f} of {alert.details.get('posts', '?')} posts in {when} "
                f"(words: {', '.join(alert.details.get('words', []))})")
    days = alert.details.get("baseline_days", "?")
    if alert.kind == SENTIMENT_SHIFT:
        return (f"sentiment shift: {alert.term!r} on {alert.source}, mean polarity {alert.value:+.2f} in {when} "
                f"against {alert.baseline:+.2f} over the previous {days} days "
                f"({alert.details.get('posts', '?')} posts, z {alert.score:+.1f}, model {alert.model})")
    usual = (f"median of the same hour on {days} previous days" if alert.bucket_size == "hour"
             else f"median of the {days} previous days")
    return (f"volume spike: {alert.term!r} on {alert.source}, {alert.value:.0f} posts in {when} against "
            f"{alert.baseline:g} usually ({usual}; score {alert.score:.1f})")


def payload(alert: AlertRow) -> dict[str, Any]:
    """The JSON POSTed for an alert: its row, plus `text` for chat webhooks."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "bucket_size": alert.bucket_size,
        "bucket_start": alert.bucket_start.isoformat(),
        "source": alert.source,
        "term": alert.term,
        "model": alert.model,
        "value": alert.value,
        "baseline": alert.baseline,
        "score": alert.score,
        "details": alert.details,
        "detected_at": alert.detected_at.isoformat() if alert.detected_at else None,
        "text": describe(alert),
    }


@dataclass(frozen=True)
class Delivery:
    delivered: int = 0  # alerts the webhook took in this run
    waiting: int = 0  # alerts still undelivered (retried at the next run)
    error: str | None = None  # why the last attempt failed


def deliver_pending(
    conn: psycopg.Connection, settings: AlertSettings, *, stop: threading.Event | None = None
) -> Delivery:
    """POST every undelivered alert, oldest first, marking each delivered as the webhook takes it.

    At the first alert the webhook does not take (after its retries) the run stops: the endpoint is
    down, and the rest wait for the next run. Never raises: a failing webhook or a lost database
    connection is logged in one line and the caller goes on.
    """
    if not settings.enabled or not settings.webhook_url:
        return Delivery()
    url = settings.webhook_url

    def wait(seconds: float) -> bool:
        if stop is None:
            return threading.Event().wait(seconds)
        return stop.wait(seconds)

    delivered = 0
    try:
        while not (stop is not None and stop.is_set()):
            with conn.transaction():  # the alert stays locked while it is being POSTed
                alert = claim_undelivered(conn)
                if alert is None:
                    break
                assert alert.id is not None
                result = post_json(url, payload(alert), timeout=settings.timeout, retries=settings.retries,
                                   backoff=settings.backoff, wait=wait)
                if result.ok:
                    mark_delivered(conn, alert.id)
                    delivered += 1
                    continue
            with conn.transaction():
                waiting = count_undelivered(conn)
            logger.warning("alerts: the webhook at %s did not take alert %d (%s, %d attempts); %d alerts "
                           "wait for the next run", safe_url(url), alert.id, result.last, result.attempts, waiting)
            return Delivery(delivered, waiting, result.last)
        with conn.transaction():
            waiting = count_undelivered(conn)
    except psycopg.Error as err:
        logger.error("alerts: delivery stopped, the database failed (%s); undelivered alerts are retried "
                     "at the next run", str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        return Delivery(delivered, 0, type(err).__name__)
    if delivered:
        logger.info("alerts: %d delivered to %s", delivered, safe_url(url))
    return Delivery(delivered, waiting)


_sender_lock = threading.Lock()
_sender: threading.Thread | None = None
_maybe_waiting = True  # undelivered alerts may exist (unknown at start: look once)


def deliver_in_background(
    database_url: str, settings: AlertSettings, *, new_alerts: int = 0, stop: threading.Event | None = None
) -> threading.Thread | None:
    """The service's delivery: in a thread of its own with its own connection, so a webhook that is
    down (each alert's retries can take a minute) never holds up aggregation or scoring. At most one
    such thread runs; it starts only when there are new alerts or some are still waiting."""
    global _sender, _maybe_waiting
    if not settings.enabled or not settings.webhook_url:
        return None
    with _sender_lock:
        if _sender is not None and _sender.is_alive():
            return None  # the running one claims alerts until none is left, new ones included
        if not (new_alerts or _maybe_waiting):
            return None

        def run() -> None:
            global _maybe_waiting
            from murmur.store.db import DatabaseError, connect

            try:
                with connect(database_url) as conn:
                    _maybe_waiting = deliver_pending(conn, settings, stop=stop).waiting > 0
            except DatabaseError as err:
                logger.error("alerts: %s; undelivered alerts are retried at the next run", err)

        _sender = threading.Thread(target=run, name="murmur-alerts", daemon=True)
        _sender.start()
        return _sender
