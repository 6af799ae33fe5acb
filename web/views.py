"""The dashboard's data views: each turns a request's Query into a Table (the rows its CSV twin writes, and
what the page needs beside them to draw), from the report builders (reports/) and store/ queries. No SQL here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.reports.build import Report, build_report
from murmur.reports.filters import STEP, EmptyReport, ReportError, floor_to
from murmur.reports.highlights import alerts
from murmur.reports.series import check_filters, choose_model
from murmur.web.params import (
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    MAX_PERIODS,
    MAX_SEARCH_LIMIT,
    BadRequest,
    Query,
    date,
    integer,
    one,
)

if TYPE_CHECKING:
    import psycopg

    from murmur.search import Hit
    from murmur.store.embeddings import SearchFilters

Params = Mapping[str, Sequence[str]]
# search(conn, query, filters, limit) -> hits: App.search where the caller can load the embedder, else None.
Searcher = Callable[["psycopg.Connection", str, "SearchFilters", int], "list[Hit]"]


@dataclass
class Table:
    """A view's answer: `rows` (each with the `columns`) are what its CSV holds; `meta` is what else the page
    needs (the chart's series, the model, a note on why nothing matched)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self, view: str) -> dict[str, Any]:
        return {"view": view, "columns": self.columns, "rows": self.rows, **self.meta}


@dataclass(frozen=True)
class Context:
    """What every view gets besides the request: the configured terms and sources (a filter naming neither
    these nor anything in the data is refused, as `murmur report` refuses it) and the searcher, if any."""

    terms: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    search: Searcher | None = None


TREND_COLUMNS = ["bucket_start", "posts", "negative", "neutral", "positive", "mean_polarity", "polarity_se"]


def _report(conn: psycopg.Connection, q: Query, ctx: Context, **kwargs: Any) -> Report:
    """build_report with the request's filters; ReportError -> BadRequest; the region filter keeps its series."""
    try:
        report = build_report(conn, q.filters, terms=ctx.terms, sources=ctx.sources, top=q.top, **kwargs)
    except ReportError as err:
        raise BadRequest(str(err).replace("--", "")) from None
    if q.region is not None:
        report.points = [p for p in report.points if p.key == (q.region,)]
        if not report.points:
            raise EmptyReport(f"no scored posts from region {q.region!r} in this range")
    if len(report.periods) > MAX_PERIODS:
        raise BadRequest(f"this range has {len(report.periods)} periods of one {q.filters.by}, more than "
                         f"{MAX_PERIODS}; narrow since/until or use a longer period")
    return report


def _empty(columns: list[str], err: EmptyReport) -> Table:
    return Table(columns, [], {"note": str(err).replace("--", "")})


def trend(conn: psycopg.Connection, q: Query, ctx: Context, *, share: bool = False) -> Table:
    """Volume and sentiment per period and series (with share_per_100k when `share`)."""
    dims = list(q.filters.dims)
    columns = ["bucket_start", *dims, *TREND_COLUMNS[1:]] + (["share_per_100k"] if share else [])
    try:
        report = _report(conn, q, ctx, share=share)
    except EmptyReport as err:
        return _empty(columns, err)
    rows = [report.row(p) for p in report.points]
    if q.filters.dedupe:
        columns.append("unique_posts")
    series = []
    for s in report.series():
        line = {"label": s.label, "key": dict(zip(dims, s.key, strict=True)),
                "posts": [p.posts if p else None for p in s.points],
                "mean_polarity": [round(p.mean_polarity, 4) if p else None for p in s.points]}
        if share:
            line["share_per_100k"] = [report.share(p) if p else None for p in s.points]
        series.append(line)
    meta = {"model": report.model, "by": q.filters.by, "dims": dims,
            "periods": [t.isoformat() for t in report.periods], "series": series}
    if report.model_note:
        meta["note"] = report.model_note
    if share and all(v is None for r in rows for v in [r.get("share_per_100k")]):
        meta["note"] = ("no share of the network here: it needs the Bluesky stream's baseline (the jetstream "
                        "source) for the periods and the bluesky source in the filters")
    return Table(columns, rows, meta)


def cooccurrence(conn: psycopg.Connection, q: Query, ctx: Context) -> Table:
    columns = ["period", "entry", "kind", "posts", "share", "previous", "new"]
    try:
        report = _report(conn, q, ctx, sections=("trend", "cooccurrence"))
    except EmptyReport as err:
        return _empty(columns, err)
    return Table(columns, [c.as_dict() for c in report.cooccurrence], {"model": report.model})


def languages(conn: psycopg.Connection, q: Query, ctx: Context) -> Table:
    columns = ["period", "source", "posts", "en", "zh", "other", "en_share", "zh_share", "other_share"]
    try:
        report = _report(conn, q, ctx, sections=("trend", "languages"))
    except EmptyReport as err:
        return _empty(columns, err)
    return Table(columns, [m.as_dict() for m in report.languages], {"model": report.model})


POST_COLUMNS = ["source", "created_at", "author", "text", "url", "lang", "terms", "label", "polarity", "engagement"]


def top_posts(conn: psycopg.Connection, q: Query, ctx: Context) -> Table:
    """The most positive and most negative posts of the range (`side` says which)."""
    columns = ["side", *POST_COLUMNS]
    try:
        report = _report(conn, q, ctx, highlights=True)
    except EmptyReport as err:
        return _empty(columns, err)
    rows = [{"side": side, **p.as_dict()} for side, posts in (("positive", report.top_positive),
                                                               ("negative", report.top_negative)) for p in posts]
    return Table(columns, rows, {"model": report.model})


def alert_list(conn: psycopg.Connection, q: Query, ctx: Context) -> Table:
    columns = ["bucket_start", "kind", "bucket_size", "source", "term", "value", "baseline", "score", "details"]
    try:
        model, _ = choose_model(conn, q.filters)
        check_filters(conn, q.filters, terms=ctx.terms, sources=ctx.sources)
    except EmptyReport as err:
        return _empty(columns, err)
    except ReportError as err:
        raise BadRequest(str(err).replace("--", "")) from None
    found = alerts(conn, q.filters, model, limit=200)
    meta: dict[str, Any] = {"model": model}
    if found is None:
        meta["note"] = "this database keeps no alerts"
    return Table(columns, [a.as_dict() for a in found or []], meta)


def bucket(conn: psycopg.Connection, q: Query, ctx: Context, params: Params) -> Table:
    """The posts of one period (`bucket`, its start) of one series (the filters name it), a page at a time."""
    from murmur.store.web import bucket_posts

    columns = ["id", *POST_COLUMNS, "tags"]
    start = date(params, "bucket")
    if start is None:
        raise BadRequest("bucket: give the start of the period, e.g. bucket=2025-01-13")
    f = q.filters
    start = floor_to(start, f.by)
    size = integer(params, "page_size", 50, 1, MAX_PAGE_SIZE)
    page = integer(params, "page", 1, 1, MAX_OFFSET)
    if page * size > MAX_OFFSET:
        raise BadRequest(f"page: at most {MAX_OFFSET} posts deep; narrow the filters")
    try:
        model, _ = choose_model(conn, f)
        check_filters(conn, f, terms=ctx.terms, sources=ctx.sources)
    except EmptyReport as err:
        return _empty(columns, err)
    except ReportError as err:
        raise BadRequest(str(err).replace("--", "")) from None
    found = bucket_posts(conn, model=model, start=start, end=start + STEP[f.by], terms=f.terms, sources=f.sources,
                         langs=f.langs, region=q.region, dedupe=f.dedupe, page=page, page_size=size)
    rows = [r | {"created_at": r["created_at"].isoformat(), "polarity": round(r["polarity"], 4)} for r in found.rows]
    return Table(columns, rows, {"model": model, "bucket": start.isoformat(), "by": f.by, "page": page,
                                 "page_size": size, "more": found.more})


def topics(conn: psycopg.Connection, q: Query, ctx: Context) -> Table:
    """The topics of the range's last periods (reports/topics.py); a note where no embeddings are kept."""
    from murmur.reports.topics import report_topics

    columns = ["period", "label", "words", "size", "mean_polarity", "new", "growth", "posts"]
    try:
        report = _report(conn, q, ctx)
    except EmptyReport as err:
        return _empty(columns, err)
    found = report_topics(conn, replace(q.filters, compare=None), report.model)
    if found is None:
        return Table(columns, [], {"note": "this database keeps no embeddings (no pgvector): no topics"})
    rows = [t.as_dict() for t in found]
    return Table(columns, [{k: r.get(k) for k in columns} for r in rows], {"model": report.model})


def search(conn: psycopg.Connection, q: Query, ctx: Context, params: Params) -> Table:
    """The posts closest in meaning to `q` (murmur/search.py) within the filters."""
    from murmur.search import EmbeddingsUnavailable
    from murmur.store.embeddings import SearchFilters

    columns = ["similarity", "source", "created_at", "label", "text", "url", "lang"]
    text = one(params, "q")
    if ctx.search is None:
        return Table(columns, [], {"note": "search is not served here"})
    if text is None:
        return Table(columns, [], {"note": "type a few words to search by meaning"})
    limit = integer(params, "limit", 20, 1, MAX_SEARCH_LIMIT)
    f = q.filters
    filters = SearchFilters(since=f.since, until=f.until, sources=f.sources, langs=f.langs, terms=f.terms)
    try:
        hits = ctx.search(conn, text, filters, limit)
    except EmbeddingsUnavailable:
        return Table(columns, [], {"note": "this database keeps no embeddings (no pgvector): no search"})
    return Table(columns, [{**h.as_dict(), "created_at": h.created_at.isoformat()} for h in hits])


def source_health(conn: psycopg.Connection) -> Table:
    """Per job (each source's crawl or stream, scoring, aggregation): its last run, errors, posts in the last
    day, and for a stream whether it is connected and how far behind real time it reads."""
    from murmur.store.status import latest_runs, posts_collected, stream_health

    columns = ["job", "source", "status", "started_at", "finished_at", "error", "posts_24h", "connected_since",
               "lag_seconds", "events_per_second", "reconnects_24h"]
    runs, day, streams = latest_runs(conn), posts_collected(conn, hours=24), stream_health(conn)
    jobs = sorted(set(runs) | {f"stream:{s}" for s in streams} | {f"crawl:{s}" for s in day
                                                                 if s not in streams and f"import:{s}" not in runs})
    rows = []
    for job in jobs:
        run, source = runs.get(job) or {}, job.split(":", 1)[1] if ":" in job else None
        stream = streams.get(source or "") if job.startswith("stream:") else None
        error = (run.get("error") or "").strip().splitlines()
        rows.append({"job": job, "source": source, "status": run.get("status"),
                     "started_at": when(run.get("started_at")),
                     "finished_at": when(run.get("finished_at")), "error": error[0][:300] if error else None,
                     "posts_24h": day.get(source, 0) if source else None,
                     "connected_since": when(stream.get("connected_since")) if stream else None,
                     "lag_seconds": stream.get("lag_seconds") if stream else None,
                     "events_per_second": stream.get("events_per_second") if stream else None,
                     "reconnects_24h": stream.get("reconnects_24h") if stream else None})
    return Table(columns, rows)


def options(conn: psycopg.Connection, ctx: Context) -> Table:
    """What the filters can choose from: the terms, sources, languages and models with trends, and their span."""
    from murmur.store.reports import trend_langs, trend_models, trend_sources, trend_span, trend_terms
    from murmur.store.trends import latest_model

    models = trend_models(conn)
    model = latest_model(conn)
    span = trend_span(conn, model) if model else (None, None)
    meta = {"terms": list(dict.fromkeys((*ctx.terms, *trend_terms(conn)))),
            "sources": list(dict.fromkeys((*trend_sources(conn), *ctx.sources))),
            "langs": trend_langs(conn, model) if model else [], "models": models, "model": model,
            "first": when(span[0]), "last": when(span[1]), "search": ctx.search is not None}
    return Table(["name"], [], meta)


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
