"""Rendering trend rows for people (a table) and programs (CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from murmur.store.trends import TrendRow

_BARS = "▁▂▃▄▅▆▇█"


def polarity_bar(value: float, width: int = 10) -> str:
    """-1..1 as a bar centred on '|': negative grows left, positive right."""
    half = width // 2
    n = min(half, round(abs(value) * half))
    left = " " * (half - n) + ("-" * n if value < 0 else "")
    right = ("+" * n if value > 0 else "") + " " * (half - (n if value > 0 else 0))
    return f"{left.rjust(half)}|{right}"


def render_trend(rows: Sequence[TrendRow], fmt: str, *, by: str = "day") -> str:
    """Rows as 'table', 'csv' or 'json' text."""
    if fmt == "json":
        return json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["bucket_start", "source", "term", "posts", "negative", "neutral", "positive", "mean_polarity"])
        for r in rows:
            d = r.as_dict()
            writer.writerow([d[k] for k in ("bucket_start", "source", "term", "posts", "negative", "neutral",
                                            "positive", "mean_polarity")])
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use table, csv or json")
    when = "%Y-%m-%d" if by == "day" else "%Y-%m-%d %H:00"
    header = (by, "source", "term", "posts", "neg", "neu", "pos", "polarity", "")
    body = [
        (
            r.bucket_start.strftime(when), r.source, r.term, str(r.posts), str(r.negative), str(r.neutral),
            str(r.positive), f"{r.mean_polarity:+.2f}", polarity_bar(r.mean_polarity),
        )
        for r in rows
    ]
    widths = [max(len(_cell(row[i])) for row in (header, *body)) for i in range(len(header))]
    numeric = {3, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w + len(c) - len(_cell(c))) if i in numeric else c.ljust(w + len(c) - len(_cell(c)))
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    volume = _sparkline([r.posts for r in rows])
    lines = [line(header), line(["-" * w for w in widths]), *(line(row) for row in body)]
    total = sum(r.posts for r in rows)
    lines.append(f"\n{len(rows)} rows, {total} posts; volume {volume}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Display width: CJK characters take two columns in a terminal."""
    return "".join(ch * (2 if "\u2e80" <= ch <= "\ufaff" else 1) for ch in text)


def _sparkline(values: Sequence[int]) -> str:
    if not values:
        return ""
    top = max(values) or 1
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1)))] for v in values)
