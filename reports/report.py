"""Rendering store.trends.TrendRow rows (the service's log of recent trends) as a table, CSV or JSON.
`murmur report` itself builds a reports.build.Report; see reports/text.py and reports/export.py."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from murmur.reports.text import polarity_bar, sparkline, table, when_format

if TYPE_CHECKING:
    from murmur.store.trends import TrendRow

__all__ = ["polarity_bar", "render_trend"]

_COLUMNS = ("bucket_start", "source", "term", "posts", "negative", "neutral", "positive", "mean_polarity")


def render_trend(rows: Sequence[TrendRow], fmt: str, *, by: str = "day") -> str:
    """Rows as 'table', 'csv' or 'json' text."""
    if fmt == "json":
        return json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_COLUMNS)
        for r in rows:
            d = r.as_dict()
            writer.writerow([d[k] for k in _COLUMNS])
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use table, csv or json")
    body = [
        (
            r.bucket_start.strftime(when_format(by)), r.source, r.term, str(r.posts), str(r.negative),
            str(r.neutral), str(r.positive), f"{r.mean_polarity:+.2f}", polarity_bar(r.mean_polarity),
        )
        for r in rows
    ]
    lines = table((by, "source", "term", "posts", "neg", "neu", "pos", "polarity", ""), body, {3, 4, 5, 6, 7})
    lines.append(f"\n{len(rows)} rows, {sum(r.posts for r in rows)} posts; volume {sparkline([r.posts for r in rows])}")
    return "\n".join(lines) + "\n"
