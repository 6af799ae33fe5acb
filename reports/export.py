"""The report for programs: JSON (any sections), CSV and Parquet (one section: one table)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from murmur.reports.filters import ReportError

if TYPE_CHECKING:
    from murmur.reports.build import Report

_TIMES = ("bucket_start", "period", "created_at")


def flat_rows(report: Report, section: str) -> list[dict[str, Any]]:
    """A section as flat records: compared series become columns named field:series."""
    rows = report.section_rows(section)
    if section != "trend" or not report.filters.compare:
        return rows
    return [
        {"bucket_start": r["bucket_start"]}
        | {f"{field}:{name}": value for name, values in r["series"].items() for field, value in values.items()}
        for r in rows
    ]


def to_json(report: Report, sections: Sequence[str]) -> str:
    """One section: its list of records (what `murmur report --format json` always gave); several:
    an object with one list per section. Each trend record names the model it was read from (`model`)."""

    def rows(section: str) -> list[dict[str, Any]]:
        records = report.section_rows(section)
        return [r | {"model": report.model} for r in records] if section == "trend" else records

    data: Any = rows(sections[0]) if len(sections) == 1 else {s: rows(s) for s in sections}
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"


def _one(sections: Sequence[str], fmt: str) -> str:
    if len(sections) != 1:
        raise ReportError(f"{fmt} holds one table; choose one with --sections (trend, cooccurrence or languages), "
                          "or use --format json for several")
    return sections[0]


def to_csv(report: Report, sections: Sequence[str]) -> str:
    rows = flat_rows(report, _one(sections, "csv"))
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def write_parquet(report: Report, sections: Sequence[str], path: Path) -> int:
    """Write the section as a Parquet file (times as UTC timestamps); returns the row count."""
    section = _one(sections, "parquet")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ReportError("parquet output needs pyarrow: pip install pyarrow") from None
    rows = [
        {k: datetime.fromisoformat(v) if k in _TIMES and isinstance(v, str) else v for k, v in r.items()}
        for r in flat_rows(report, section)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return len(rows)
