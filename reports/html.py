"""The report as one self-contained HTML page: the chart inlined as SVG, the tables, the top
posts with links, and the alerts. Nothing is fetched from anywhere; every post text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from murmur.reports.chart import chart_svg
from murmur.reports.text import when_format

if TYPE_CHECKING:
    from murmur.reports.build import Report
    from murmur.reports.highlights import TopPost

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", sans-serif;
       color: #1f2328; margin: 0 auto; max-width: 1100px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #57606a; margin: 0; }
svg.chart { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 4px 0; }
th, td { white-space: nowrap; padding: 3px 10px; border-bottom: 1px solid #d8dee4; text-align: left;
         vertical-align: top; }
td.n, th.n { text-align: right; }
.pos { color: #1a7f37; } .neg { color: #b42318; } .new { color: #8250df; font-weight: 600; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid #d8dee4; }
.mix { display: flex; width: 180px; height: 12px; background: #eaeef2; }
.mix span { display: block; height: 12px; }
.mix .en { background: #2e8b57; } .mix .zh { background: #e3a008; } .mix .other { background: #a0a7b0; }
ol.posts { padding-left: 20px; } ol.posts li { margin-bottom: 10px; }
ol.posts blockquote { margin: 2px 0 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.empty { color: #57606a; font-style: italic; }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _pol(value: float | None) -> str:
    if value is None:
        return "<td class='n'></td>"
    cls = "pos" if value > 0.05 else "neg" if value < -0.05 else ""
    return f"<td class='n {cls}'>{value:+.2f}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th class='{'n' if i in numeric else ''}'>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _cell(value: Any, numeric: bool = False) -> str:
    return f"<td class='n'>{_e(value)}</td>" if numeric else f"<td>{_e(value)}</td>"


def _trend(report: Report) -> str:
    """Per period and series: posts, labels and mean polarity; compared series side by side
    (posts and polarity each)."""
    f = report.filters
    fmt = when_format(f.by)
    if not f.compare:
        # "distinct": each text once (aggregates.unique_posts), as the terminal table's "unique"; under --dedupe
        # the posts column already counts that way.
        distinct = not f.dedupe and any(p.unique_posts is not None for p in report.points)
        body = [
            [_cell(p.bucket_start.strftime(fmt)), *(_cell(k) for k in p.key), _cell(p.posts, True),
             *((_cell(p.unique_posts or 0, True),) if distinct else ()),
             _cell(p.negative, True), _cell(p.neutral, True), _cell(p.positive, True), _pol(p.mean_polarity),
             _cell(f"±{1.96 * p.polarity_se:.2f}", True)]
            for p in report.points
        ]
        n = len(f.dims)
        header = [f.by, *f.dims, "posts", *(("distinct",) if distinct else ()), "negative", "neutral", "positive",
                  "polarity", "95% band"]
        return _table(header, body, set(range(1 + n, len(header))))
    series = report.series()
    body = []
    for i, start in enumerate(report.periods):
        cells = [_cell(start.strftime(fmt))]
        for s in series:
            p = s.points[i]
            cells += [_cell(p.posts if p else 0, True), _pol(p.mean_polarity if p else None)]
        body.append(cells)
    header = [f.by, *(c for s in series for c in (f"{s.key[0]} posts", "polarity"))]
    return _table(header, body, set(range(1, len(header))))


def _cooccurrence(report: Report) -> str:
    if not report.cooccurrence:
        return "<p class='empty'>No hashtags or other terms share posts with the tracked terms in this range.</p>"
    fmt = when_format(report.filters.by)
    body = [
        [_cell(c.period.strftime(fmt)), _cell(c.entry), _cell(c.posts, True), _cell(f"{c.share:.0%}", True),
         _cell(c.previous, True), "<td class='new'>new</td>" if c.new else "<td></td>"]
        for c in report.cooccurrence
    ]
    return _table([report.filters.by, "hashtag or term", "posts", "share", "period before", ""], body, {2, 3, 4})


def _languages(report: Report) -> str:
    if not report.languages:
        return "<p class='empty'>No posts in this range.</p>"
    fmt = when_format(report.filters.by)
    body = []
    for m in report.languages:
        en, zh, other = m.shares()
        bar = "".join(f"<span class='{k}' style='width:{share * 100:.1f}%'></span>"
                      for k, share in (("en", en), ("zh", zh), ("other", other)))
        body.append([_cell(m.period.strftime(fmt)), _cell(m.source), _cell(m.posts, True), _cell(f"{en:.0%}", True),
                     _cell(f"{zh:.0%}", True), _cell(f"{other:.0%}", True), f"<td><div class='mix'>{bar}</div></td>"])
    return _table([report.filters.by, "source", "posts", "English", "Chinese", "other", ""], body, {2, 3, 4, 5})


def _link(url: str | None, text: str) -> str:
    if url and url.lower().startswith(("https://", "http://")):
        return f"<a href='{_e(url)}' rel='noopener noreferrer nofollow'>{_e(text)}</a>"
    return _e(text)


def _posts(posts: list[TopPost]) -> str:
    if not posts:
        return "<p class='empty'>None in this range.</p>"
    items = []
    for p in posts:
        text = p.text if len(p.text) <= 600 else p.text[:600] + "…"
        head = f"{p.source} · {p.author or 'unknown'} · {p.created_at:%Y-%m-%d %H:%M}"
        items.append(
            f"<li>{_link(p.url, head)} <span class='{'pos' if p.polarity > 0 else 'neg'}'>{p.polarity:+.2f}</span>"
            f" · {_e(', '.join(p.terms))} · {p.engagement} interactions<blockquote>{_e(text)}</blockquote></li>"
        )
    return f"<ol class='posts'>{''.join(items)}</ol>"


def _alerts(report: Report) -> str:
    if report.alerts is None:
        return "<p class='empty'>This database records no alerts (no alerts table).</p>"
    if not report.alerts:
        return "<p class='empty'>No alerts in this range.</p>"
    body = [
        [_cell(a.bucket_start.strftime("%Y-%m-%d %H:%M")), _cell(a.kind.replace("_", " ")), _cell(a.bucket_size),
         _cell(a.source), _cell(a.term), _cell(_num(a.value), True), _cell(_num(a.baseline), True),
         _cell(_num(a.score), True)]
        for a in report.alerts
    ]
    return _table(["bucket", "alert", "size", "source", "term", "value", "baseline", "score"], body, {5, 6, 7})


def _topics(report: Report) -> str:
    """Each topic: period, size, polarity, change, its words, and the posts nearest its centre (all escaped)."""
    from murmur.reports.topics import NO_EMBEDDINGS, NO_TOPICS, topics_by, topics_heading

    if not report.topics:
        return f"<p class='empty'>{_e(NO_EMBEDDINGS if report.topics is None else NO_TOPICS)}</p>"
    fmt = "%Y-%m-%d" if topics_by(report.filters) == "day" else "week of %Y-%m-%d"
    body = []
    for t in report.topics:
        posts = "".join(f"<li>{_link(p.url, f'{p.created_at:%Y-%m-%d %H:%M}')}<blockquote>"
                        f"{_e(p.text if len(p.text) <= 300 else p.text[:300] + '…')}</blockquote></li>"
                        for p in t.posts)
        change = f"<td class='new'>{_e(t.change)}</td>" if t.rising else _cell(t.change)
        topic = (f"<td style='white-space: normal'><b>{_e(t.label)}</b><br>{_e(', '.join(t.words))}"
                 f"<ol class='posts'>{posts}</ol></td>")
        body.append([_cell(t.period.strftime(fmt)), _cell(t.size, True), _pol(t.mean_polarity), change, topic])
    return f"<p class='meta'>{_e(topics_heading(report.filters))}</p>" + _table(
        [topics_by(report.filters), "posts", "polarity", "change", "topic"], body, {1, 2})


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _scope(report: Report) -> str:
    f = report.filters
    first, last = report.periods[0], report.periods[-1]
    fmt = when_format(f.by)
    parts = [f"per {f.by}, {first.strftime(fmt)} to {last.strftime(fmt)} (UTC)"]
    for name, values in (("terms", f.terms), ("sources", f.sources), ("languages", f.langs)):
        if values:
            parts.append(f"{name}: {', '.join(values)}")
    if f.compare:
        parts.append(f"compared by {f.compare}")
    parts.append(f"model {report.model}" + (f" ({report.model_note})" if report.model_note else ""))
    parts.append(f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    return " · ".join(parts)


def render_html(report: Report) -> str:
    """The whole page as one string."""
    title = "murmur trend report"
    sections = [
        ("charts", "Volume and sentiment", f"{chart_svg(report)}<p class='meta'>Bars: posts per "
         f"{report.filters.by}. Line: mean polarity, P(positive) − P(negative), with a band of ±1.96 "
         "standard errors (from the label counts).</p>"),
        ("trend", "Trend", _trend(report)),
        ("cooccurrence", "Rising alongside the tracked terms", _cooccurrence(report)),
        ("languages", "Language mix", _languages(report)),
        ("positive", "Most positive posts", _posts(report.top_positive)),
        ("negative", "Most negative posts", _posts(report.top_negative)),
        ("topics", "Topics", _topics(report)),
        ("alerts", "Alerts", _alerts(report)),
    ]
    body = "".join(f"<section id='{key}'><h2>{_e(name)}</h2>{content}</section>" for key, name, content in sections)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p class='meta'>{_e(_scope(report))}</p></header>"
        f"{body}</body></html>\n"
    )
