"""The `topic_emerging` alert: after an aggregation, the latest complete UTC day's topics against the day
before's; a topic that is new, or at least STRONG_GROWTH times its size, with at least `alerts.min_posts`
posts, is stored as an alert (term: its label, source: 'all', model: the embedding model) and delivered like
the spike and shift alerts. Each day is checked once (`topic_checks`), the first aggregation after it ends.

"Latest complete day": the day before the one holding the newest post (or now, when earlier), so a
crawl that lags or an import of old posts is judged on its own days."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from murmur.topics import Topic, floor_period, mark_changes, period_topics

if TYPE_CHECKING:
    import psycopg

    from murmur.config.settings import AlertSettings
    from murmur.store.alerts import AlertRow

logger = logging.getLogger("murmur.alerts")

TOPIC_EMERGING = "topic_emerging"
PERIOD = "day"
ALL_SOURCES = "all"


def emerging(topics: list[Topic], min_posts: int) -> list[Topic]:
    """The topics an alert is raised for: rising, with at least `min_posts` posts."""
    return [t for t in topics if t.rising and t.size >= min_posts]


def as_alert(topic: Topic, model: str, period_posts: int) -> AlertRow:
    """The alert row of an emerging topic: value its size, baseline the same topic's size the day before
    (0 when new), score its growth (0 when new)."""
    from murmur.store.alerts import AlertRow

    before = 0.0 if topic.growth is None else round(topic.size / topic.growth, 6)
    return AlertRow(TOPIC_EMERGING, PERIOD, topic.period, ALL_SOURCES, topic.label, model, float(topic.size),
                    before, round(topic.growth or 0.0, 6),
                    {"words": topic.words, "new": topic.new, "posts": period_posts,
                     "mean_polarity": None if topic.mean_polarity is None else round(topic.mean_polarity, 6),
                     "examples": [p.as_dict() for p in topic.posts]})


def check_topics(conn: psycopg.Connection, settings: AlertSettings, *, now: datetime | None = None) -> list[AlertRow]:
    """Check the latest complete day once (inside the caller's transaction); the alerts it found, unstored."""
    from murmur.sentiment.embedding_id import EMBEDDING_MODEL
    from murmur.store.embeddings import SearchFilters, embeddings_available
    from murmur.store.topics import claim_topic_check, newest_post_at, period_posts, topic_checks_available
    from murmur.store.trends import latest_model

    if not embeddings_available(conn) or not topic_checks_available(conn):
        return []
    newest = newest_post_at(conn)
    if newest is None:
        return []
    anchor = min(newest, now or datetime.now(UTC))
    day = floor_period(anchor, PERIOD) - timedelta(days=1)
    if not claim_topic_check(conn, PERIOD, day, EMBEDDING_MODEL):
        return []
    score_model = latest_model(conn)
    latest = period_posts(conn, EMBEDDING_MODEL, score_model, day, day + timedelta(days=1), SearchFilters())
    before = period_posts(conn, EMBEDDING_MODEL, score_model, day - timedelta(days=1), day, SearchFilters())
    topics = period_topics(latest, day)
    mark_changes(topics, period_topics(before, day - timedelta(days=1)))
    return [as_alert(t, EMBEDDING_MODEL, len(latest)) for t in emerging(topics, settings.min_posts)]


def with_topics(detect: Callable[[psycopg.Connection], int] | None,
                settings: AlertSettings) -> Callable[[psycopg.Connection], int] | None:
    """The aggregation's detector (murmur.alerts.detector) followed by the topic check; None when alerts are
    off. A failing topic check is logged and leaves the spike and shift alerts stored (its day is checked
    again at the next aggregation)."""
    if detect is None:
        return None

    def detect_all(conn: psycopg.Connection) -> int:
        from murmur.alerts import describe
        from murmur.store.alerts import store_alerts

        stored = detect(conn)
        try:
            with conn.transaction():
                new = store_alerts(conn, check_topics(conn, settings))
        except Exception:  # a clustering or label bug must not cost the spikes found above
            logger.exception("topic check failed; the other alerts are stored, the day is checked next time")
            return stored
        for alert in new:
            logger.warning("alert: %s", describe(alert))
        return stored + len(new)

    return detect_all
