"""The posts behind the numbers (most positive, most negative) and the alerts raised in the range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.reports.filters import Filters, ReportError
from murmur.reports.series import post_scope
from murmur.store.reports import TOP_LIMIT, alerts_in_range, top_scored_posts

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class TopPost:
    source: str
    url: str | None
    author: str | None
    text: str
    lang: str | None
    created_at: datetime
    terms: list[str]
    label: str
    polarity: float
    engagement: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"created_at": self.created_at.isoformat(), "polarity": round(self.polarity, 4)}


@dataclass(frozen=True)
class Alert:
    kind: str
    bucket_size: str
    bucket_start: datetime
    source: str | None
    term: str | None
    value: float | None
    baseline: float | None
    score: float | None
    details: Any

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"bucket_start": self.bucket_start.isoformat()}


def top_posts(conn: psycopg.Connection, f: Filters, model: str, *, limit: int = 5) -> tuple[list[TopPost],
                                                                                          list[TopPost]]:
    """(most positive, most negative) posts in the range; ties go to the most engaged. `limit` is at most
    TOP_LIMIT (50): the report tables keep that many per bucket (a ReportError beyond)."""
    if not 1 <= limit <= TOP_LIMIT:
        raise ReportError(f"--top must be from 1 to {TOP_LIMIT} (the top posts kept per bucket), not {limit}")
    scope = post_scope(f)
    positive = top_scored_posts(conn, model=model, scope=scope, positive=True, limit=limit)
    negative = top_scored_posts(conn, model=model, scope=scope, positive=False, limit=limit)
    return [TopPost(*row) for row in positive], [TopPost(*row) for row in negative]


def alerts(conn: psycopg.Connection, f: Filters, model: str, *, limit: int = 50) -> list[Alert] | None:
    """Alerts in the range, newest first; None where the database has no alerts table."""
    rows = alerts_in_range(conn, model=model, since=f.since, until=f.until, terms=f.terms, sources=f.sources,
                           limit=limit)
    return None if rows is None else [Alert(*row) for row in rows]
