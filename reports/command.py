"""`murmur report` as a library call: options in, files and text out. The CLI only parses
arguments into `ReportOptions.build(...)`; ReportError / EmptyReport become its one-line errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from murmur.reports.build import DEFAULT_TABLE_SECTIONS, SECTIONS, build_report
from murmur.reports.filters import Filters, ReportError, split_list

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    import psycopg

FORMATS = ("table", "csv", "json", "parquet")


@dataclass(frozen=True)
class ReportOptions:
    filters: Filters
    format: str | None  # None: a table, unless only files (--chart, --html) were asked for
    sections: tuple[str, ...]
    output: Path | None = None
    chart: Path | None = None
    html: Path | None = None
    top: int = 5
    share: bool = False  # share_per_100k: the series' stream-seen posts per 100,000 of the network's

    @classmethod
    def build(
        cls,
        *,
        by: str = "day",
        since: datetime | None = None,
        until: datetime | None = None,
        term: Sequence[str] | None = None,
        source: Sequence[str] | None = None,
        lang: Sequence[str] | None = None,
        compare: str | None = None,
        model: str | None = None,
        format: str | None = None,
        output: Path | None = None,
        sections: Sequence[str] | None = None,
        chart: Path | None = None,
        html: Path | None = None,
        top: int = 5,
        share: bool = False,
        dedupe: bool = False,
    ) -> ReportOptions:
        """The options `murmur report` takes, by the names of its flags (lists may hold comma lists); with
        none given, the default report. Checks the combination before any query runs: a bad one is a
        ReportError."""
        f = Filters(by=by, since=since, until=until, terms=split_list(term), sources=split_list(source),
                    langs=split_list(lang), model=model, compare=compare, dedupe=dedupe)
        fmt = format or (None if chart or html else "table")
        if fmt == "parquet" and output is None:
            raise ReportError("parquet is a binary format; give the file to write with --output FILE")
        if output is not None and fmt is None:
            raise ReportError("--output needs --format (table, csv, json or parquet)")
        asked = split_list(sections)
        for s in asked:
            if s not in SECTIONS:
                raise ReportError(f"unknown section {s!r}; sections: {', '.join(SECTIONS)}")
        chosen = asked or (DEFAULT_TABLE_SECTIONS if fmt == "table" else ("trend",))
        if fmt in ("csv", "parquet") and len(chosen) > 1:
            raise ReportError(f"{fmt} holds one table; choose one with --sections, or use --format json for several")
        if chart is not None and chart.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ReportError(f"--chart {chart}: use a .png, .svg or .pdf file name")
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ReportError("parquet output needs pyarrow: pip install pyarrow") from None
        if top < 1:
            raise ReportError(f"--top must be at least 1, not {top}")
        return cls(f, fmt, tuple(chosen), output, chart, html, top, share)


def run_report(conn: psycopg.Connection, opts: ReportOptions, *, terms: tuple[str, ...], sources: tuple[str, ...],
               stdout: TextIO, notes: TextIO) -> None:
    """Build the report once and write every output asked for; one line on `notes` per file."""
    from murmur.reports import export, text

    needed = SECTIONS if opts.html else opts.sections
    report = build_report(conn, opts.filters, sections=needed, highlights=opts.html is not None, top=opts.top,
                          terms=terms, sources=sources, share=opts.share)
    if report.model_note and opts.format != "table":  # the table says it in its header
        print(f"report: {report.model_note}", file=notes)
    if opts.chart is not None:
        from murmur.reports.chart import MAX_PANELS, save_chart

        save_chart(report, opts.chart)
        print(f"report: chart of {min(len(report.series()), MAX_PANELS)} series written to {opts.chart}", file=notes)
    if opts.html is not None:
        from murmur.reports.html import render_html

        opts.html.write_text(render_html(report), encoding="utf-8")
        print(f"report: HTML report written to {opts.html}", file=notes)
    if opts.format == "parquet":
        assert opts.output is not None  # from_args insists
        rows = export.write_parquet(report, opts.sections, opts.output)
        print(f"report: {rows} rows written to {opts.output}", file=notes)
        return
    if opts.format is None:
        return
    content = {
        "table": lambda: text.render_table(report, opts.sections),
        "csv": lambda: export.to_csv(report, opts.sections),
        "json": lambda: export.to_json(report, opts.sections),
    }[opts.format]()
    if opts.output is None:
        stdout.write(content)
    else:
        opts.output.write_text(content, encoding="utf-8")
        print(f"report: {opts.format} written to {opts.output}", file=notes)
