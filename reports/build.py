"""One report: the trend series and, as asked, what co-occurs, the language mix, top posts, alerts.
Every renderer (table, CSV, JSON, Parquet, chart, HTML) reads this one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.reports.extras import Cooccurrence, LanguageMix, cooccurrence, language_mix
from murmur.reports.filters import Filters, periods
from murmur.reports.highlights import Alert, TopPost, alerts, top_posts
from murmur.reports.series import Point, as_row, trend_points_noted

if TYPE_CHECKING:
    import psycopg

    from murmur.topics import Topic

SECTIONS = ("trend", "cooccurrence", "languages", "topics")
# What a table shows when no --sections is given: topics cluster the embeddings, so only when asked (and in HTML).
DEFAULT_TABLE_SECTIONS = ("trend", "cooccurrence", "languages")


@dataclass(frozen=True)
class Series:
    key: tuple[str, ...]
    points: list[Point | None]  # one per Report.periods; None where the series had no posts

    @property
    def label(self) -> str:
        return " · ".join(self.key)

    @property
    def posts(self) -> int:
        return sum(p.posts for p in self.points if p)


@dataclass
class Report:
    filters: Filters
    model: str
    points: list[Point]
    model_note: str | None = None  # while the configured model re-scores the history: how far it has come
    cooccurrence: list[Cooccurrence] = field(default_factory=list)
    languages: list[LanguageMix] = field(default_factory=list)
    top_positive: list[TopPost] = field(default_factory=list)
    top_negative: list[TopPost] = field(default_factory=list)
    alerts: list[Alert] | None = None  # None: the database has no alerts table
    topics: list[Topic] | None = None  # None: not asked for, or the database keeps no embeddings (no pgvector)
    # --share: (period start, series key) -> share_per_100k (reports/share.py); None: not asked for
    shares: dict[tuple[datetime, tuple[str, ...]], float | None] | None = None

    def share(self, p: Point) -> float | None:
        """The point's share_per_100k (None: not asked for, not applicable, or no baseline)."""
        return self.shares.get((p.bucket_start, p.key)) if self.shares is not None else None

    def row(self, p: Point) -> dict[str, Any]:
        """A point as a flat record, with share_per_100k when --share asked for it."""
        row = as_row(p, self.filters.dims)
        if self.shares is not None:
            share = self.share(p)
            row["share_per_100k"] = round(share, 4) if share is not None else None
        return row

    @property
    def periods(self) -> list[datetime]:
        """The time axis, gaps included: from the first period with posts to the last."""
        starts = [p.bucket_start for p in self.points]
        return periods(min(starts), max(starts), self.filters.by) if starts else []

    def series(self) -> list[Series]:
        """Every series on the full time axis, the biggest first."""
        index = {t: i for i, t in enumerate(self.periods)}
        by_key: dict[tuple[str, ...], list[Point | None]] = {}
        for p in self.points:
            by_key.setdefault(p.key, [None] * len(index))[index[p.bucket_start]] = p
        return sorted((Series(k, v) for k, v in by_key.items()), key=lambda s: (-s.posts, s.key))

    def trend_rows(self) -> list[dict[str, Any]]:
        """The trend as records: one per period and series, or with --compare one per period with
        the series side by side."""
        dims = self.filters.dims
        if not self.filters.compare:
            return [self.row(p) for p in self.points]
        series = self.series()
        rows = []
        for i, start in enumerate(self.periods):
            side: dict[str, Any] = {}
            for s in series:
                p = s.points[i]
                side[s.key[0]] = {k: v for k, v in self.row(p).items() if k not in ("bucket_start", *dims)} \
                    if p else {"posts": 0, "negative": 0, "neutral": 0, "positive": 0, "mean_polarity": None,
                               "polarity_se": None} | ({"share_per_100k": None} if self.shares is not None else {})
            rows.append({"bucket_start": start.isoformat(), "series": side})
        return rows

    def section_rows(self, section: str) -> list[dict[str, Any]]:
        if section == "trend":
            return self.trend_rows()
        if section == "cooccurrence":
            return [c.as_dict() for c in self.cooccurrence]
        if section == "languages":
            return [m.as_dict() for m in self.languages]
        if section == "topics":
            return [t.as_dict() for t in self.topics or []]
        raise ValueError(f"unknown section {section!r}; use {', '.join(SECTIONS)}")


def build_report(
    conn: psycopg.Connection,
    f: Filters,
    *,
    sections: tuple[str, ...] = ("trend",),
    highlights: bool = False,
    top: int = 5,
    terms: tuple[str, ...] = (),
    sources: tuple[str, ...] = (),
    share: bool = False,
) -> Report:
    """Run the queries the sections need; `terms` and `sources` are the configured ones (a filter
    naming neither those nor anything in the data is refused); `share`: each point's share of the network
    (reports/share.py). Raises ReportError, EmptyReport."""
    model, points, note = trend_points_noted(conn, f, terms=terms, sources=sources)
    report = Report(f, model, points, model_note=note)
    if share:
        from murmur.reports.share import shares

        report.shares = shares(conn, f, points)
    if "cooccurrence" in sections:
        report.cooccurrence = cooccurrence(conn, f, top=top)
    if "languages" in sections:
        report.languages = language_mix(conn, f)
    if "topics" in sections:
        from murmur.reports.topics import report_topics

        report.topics = report_topics(conn, f, model)
    if highlights:
        report.top_positive, report.top_negative = top_posts(conn, f, model, limit=top)
        report.alerts = alerts(conn, f, model)
    return report
