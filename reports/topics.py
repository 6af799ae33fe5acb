"""The report's topics section: murmur/topics/ over the report's window and filters (its last few periods)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from murmur.reports.filters import Filters
    from murmur.topics import Topic

REPORT_PERIODS = 4  # the report shows the topics of its last few periods: clustering is not free


def topics_by(f: Filters) -> str:
    """Topics per day or week: an hourly report shows them per day."""
    return "week" if f.by == "week" else "day"


def report_topics(conn: psycopg.Connection, f: Filters, score_model: str) -> list[Topic] | None:
    """The topics of the report's last REPORT_PERIODS periods; None when the database keeps no embeddings."""
    from murmur.search import EmbeddingsUnavailable
    from murmur.store.embeddings import SearchFilters
    from murmur.topics import find_topics

    filters = SearchFilters(since=f.since, until=f.until, sources=f.sources, langs=f.langs, terms=f.terms)
    try:
        return find_topics(conn, filters, by=topics_by(f), score_model=score_model, last=REPORT_PERIODS)
    except EmbeddingsUnavailable:
        return None


def topics_heading(f: Filters) -> str:
    return (f"Topics per {topics_by(f)} (the last {REPORT_PERIODS} at most; change: new since the period before, "
            "or its size against the same topic's then)")


NO_EMBEDDINGS = "This database keeps no embeddings (the PostgreSQL server lacks pgvector): no topics."
NO_TOPICS = "No embedded posts in this range (`murmur embed` embeds the stored posts)."
