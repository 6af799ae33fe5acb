"""The report for people: aligned tables (CJK-aware), sparklines, polarity bars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from typing import TYPE_CHECKING

from murmur.reports.filters import FROM_POSTS

if TYPE_CHECKING:
    from murmur.reports.build import Report
    from murmur.topics import Topic

_BARS = "▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 60  # a longer series is summed into this many cells


def polarity_bar(value: float, width: int = 10) -> str:
    """-1..1 as a bar centred on '|': negative grows left, positive right."""
    half = width // 2
    n = min(half, round(abs(value) * half))
    left = " " * (half - n) + ("-" * n if value < 0 else "")
    right = ("+" * n if value > 0 else "") + " " * (half - (n if value > 0 else 0))
    return f"{left.rjust(half)}|{right}"


def sparkline(values: Sequence[int]) -> str:
    """Volume as block characters, scaled to the largest; long series are summed into 60 cells."""
    if not values:
        return ""
    step = -(-len(values) // _SPARK_WIDTH)
    cells = [sum(values[i : i + step]) for i in range(0, len(values), step)]
    top = max(cells) or 1
    # the lowest bar only for nothing at all: a quiet period stays visible beside a busy one
    return "".join(_BARS[0 if v <= 0 else max(1, min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1))))]
                   for v in cells)


def display_width(text: str) -> int:
    """Columns in a terminal: CJK characters take two."""
    return sum(2 if "\u2e80" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uff60" else 1 for ch in text)


def table(header: Sequence[str], body: Sequence[Sequence[str]], numeric: set[int]) -> list[str]:
    """Aligned columns, a rule under the header; `numeric` columns are right-aligned."""
    widths = [max(display_width(row[i]) for row in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths, strict=True)):
            pad = " " * (w - display_width(c))
            out.append(pad + c if i in numeric else c + pad)
        return "  ".join(out).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in body)]


def when_format(by: str) -> str:
    return "%Y-%m-%d %H:00" if by == "hour" else "%Y-%m-%d"


def _when(t: datetime, by: str) -> str:
    return t.strftime(when_format(by))


def trend_table(report: Report) -> list[str]:
    """The trend: one row per period and series, or the compared series side by side."""
    f = report.filters
    share = report.shares is not None  # --share: a column "per 100k" (empty where it cannot be said)
    if not f.compare:
        # "unique": the posts no copy of an earlier one (aggregates.unique_posts), last so the columns before it
        # stay where they were; --dedupe shows them as the posts instead.
        unique = not f.dedupe and any(p.unique_posts is not None for p in report.points)
        header = (f.by, *f.dims, "posts", "neg", "neu", "pos", "polarity", "", *(("per 100k",) if share else ()),
                  *(("unique",) if unique else ()))
        rows = [
            [_when(p.bucket_start, f.by), *p.key, str(p.posts), str(p.negative), str(p.neutral), str(p.positive),
             f"{p.mean_polarity:+.2f}", polarity_bar(p.mean_polarity), *((_share(report.share(p)),) if share else ()),
             *((str(p.unique_posts or 0),) if unique else ())]
            for p in report.points
        ]
        n = len(f.dims)
        numeric = set(range(1 + n, 6 + n)) | ({7 + n} if share else set())
        return table(header, rows, numeric | ({7 + n + share} if unique else set()))
    series = report.series()
    per_series = ("polarity", "per 100k") if share else ("polarity",)
    columns = [f.by] + [c for s in series for c in (s.key[0], *per_series)]
    body: list[list[str]] = []
    for i, start in enumerate(report.periods):
        row = [_when(start, f.by)]
        for s in series:
            p = s.points[i]
            row += [str(p.posts), f"{p.mean_polarity:+.2f}"] if p else ["0", ""]
            if share:
                row.append(_share(report.share(p)) if p else "")
        body.append(row)
    return table(columns, body, set(range(1, len(columns))))


def _share(value: float | None) -> str:
    """A share per 100,000: two decimals below 10, none above; empty where there is none."""
    if value is None:
        return ""
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def summary(report: Report) -> list[str]:
    """One line per series: its volume over the whole axis as a sparkline, total and mean."""
    series = report.series()
    n = len(report.periods)
    head = f"{len(series)} series over {n} {report.filters.by}{'s' if n != 1 else ''}"
    if report.filters.compare in FROM_POSTS:  # series by term share the posts matching two terms
        head += f", {sum(s.posts for s in series)} posts"
    lines = [f"{head} (model {report.model})"]
    if report.model_note:
        lines.append(f"  {report.model_note}")
    width = max(display_width(s.label) for s in series)
    for s in series:
        pts = [p for p in s.points if p]
        mean = sum(p.mean_polarity * p.posts for p in pts) / max(1, s.posts)
        spark = sparkline([p.posts if p else 0 for p in s.points])
        pad = " " * (width - display_width(s.label))
        lines.append(f"  {s.label}{pad}  {spark}  {s.posts} post{'s' if s.posts != 1 else ''}, polarity {mean:+.2f}")
    return lines


def cooccurrence_table(report: Report) -> list[str]:
    if not report.cooccurrence:
        return []
    by = report.filters.by
    lines = ["Rising alongside: hashtags and other terms in the matching posts (share of them; * new)"]
    body = []
    for period, group in groupby(report.cooccurrence, key=lambda c: c.period):
        entries = [f"{c.entry} {c.posts} ({c.share:.0%}){'*' if c.new else ''}" for c in group]
        body.append((_when(period, by), ", ".join(entries)))
    return lines + table((by, "top"), body, set())


def languages_table(report: Report) -> list[str]:
    if not report.languages:
        return []
    by = report.filters.by
    body = []
    for m in report.languages:
        en, zh, other = m.shares()
        cells = round(en * 12), round((en + zh) * 12)
        bar = "█" * cells[0] + "▓" * (cells[1] - cells[0]) + "░" * (12 - cells[1])
        body.append((_when(m.period, by), m.source, str(m.posts), f"{en:.0%}", f"{zh:.0%}", f"{other:.0%}", bar))
    lines = ["Language mix: share of the matching posts (█ English, ▓ Chinese, ░ other or unknown)"]
    return lines + table((by, "source", "posts", "en", "zh", "other", ""), body, {2, 3, 4, 5})


def topics_table(topics: Sequence[Topic], *, by: str) -> list[str]:
    """Topics, one line each: its size, mean polarity, change, words and the post nearest its centre."""
    fmt = "%Y-%m-%d" if by == "day" else "week of %Y-%m-%d"
    body = []
    for t in topics:
        example = " ".join(t.posts[0].text.split()) if t.posts else ""
        body.append((t.period.strftime(fmt), str(t.size), "-" if t.mean_polarity is None else f"{t.mean_polarity:+.2f}",
                     t.change, ", ".join(t.words[:6]), example if len(example) <= 60 else example[:59] + "…"))
    return table((by, "posts", "polarity", "change", "words", "e.g."), body, {1, 2})


def topics_lines(report: Report) -> list[str]:
    from murmur.reports.topics import NO_EMBEDDINGS, NO_TOPICS, topics_by, topics_heading

    if not report.topics:
        return ["Topics: " + (NO_EMBEDDINGS if report.topics is None else NO_TOPICS)]
    return [topics_heading(report.filters), *topics_table(report.topics, by=topics_by(report.filters))]


def render_table(report: Report, sections: Sequence[str]) -> str:
    """The report as text: the trend table and per-series sparklines, then the extra sections."""
    blocks = []
    if "trend" in sections:
        blocks.append(trend_table(report) + [""] + summary(report))
    if "cooccurrence" in sections and report.cooccurrence:
        blocks.append(cooccurrence_table(report))
    if "languages" in sections and report.languages:
        blocks.append(languages_table(report))
    if "topics" in sections:
        blocks.append(topics_lines(report))
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"
