"""A dashboard request's query string as report Filters, with every size and range bounded: the page is served
to whoever reaches the port, so a request must not be able to ask for a year of hours or a million rows.

The names are the report's options (`term`, `source`, `lang`, `model`, `since`, `until`, `by`, `compare`,
`dedupe`, `top`) plus `region`, so a dashboard URL reads like the `murmur report` command that prints the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from murmur.errors import EXIT_USAGE, MurmurError
from murmur.reports.filters import COMPARE, PERIODS, Filters, ReportError
from murmur.store.reports import TOP_LIMIT

MAX_QUERY = 2000  # characters in a query string
MAX_VALUES = 50  # values of one list parameter (terms, sources, languages)
MAX_VALUE = 200  # characters in one value
MAX_SEARCH = 500  # characters in a search query
# The widest range a request may ask for, per period: every period of it is a point on the chart.
MAX_SPAN = {"hour": timedelta(days=92), "day": timedelta(days=3 * 366), "week": timedelta(days=20 * 366)}
MAX_PERIODS = 92 * 24  # points per series in one answer (an open range is checked once its span is known)
MAX_TOP = TOP_LIMIT  # top posts and co-occurring entries per period: what the report tables keep
MAX_PAGE_SIZE = 200
MAX_OFFSET = 10_000  # page * page_size: deeper than this, narrow the filters
MAX_SEARCH_LIMIT = 100

LISTS = ("term", "source", "lang")
KNOWN = {*LISTS, "model", "since", "until", "by", "compare", "region", "dedupe", "top", "share", "bucket", "page",
         "page_size", "q", "limit", "format", "view", "key"}


class BadRequest(MurmurError):
    """A request the dashboard refuses: answered 400 with this one line."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Query:
    """What a data request asks for: the report's filters, and the few things some views add."""

    filters: Filters
    region: str | None = None
    top: int = 5

    @property
    def compare(self) -> str | None:
        return self.filters.compare


def values(params: Mapping[str, Sequence[str]], name: str) -> tuple[str, ...]:
    """A list parameter, repeated (`term=a&term=b`) or comma-separated (`term=a,b`), each value bounded."""
    out: list[str] = []
    for raw in params.get(name, ()):
        out.extend(v.strip() for v in raw.split(",") if v.strip())
    if len(out) > MAX_VALUES:
        raise BadRequest(f"{name}: at most {MAX_VALUES} values")
    for v in out:
        if len(v) > MAX_VALUE:
            raise BadRequest(f"{name}: a value is longer than {MAX_VALUE} characters")
    return tuple(dict.fromkeys(out))


def one(params: Mapping[str, Sequence[str]], name: str, default: str | None = None) -> str | None:
    """A single-valued parameter (the last one given), bounded; empty counts as absent."""
    given = [v for v in params.get(name, ()) if v.strip()]
    if not given:
        return default
    value = given[-1].strip()
    if len(value) > (MAX_SEARCH if name == "q" else MAX_VALUE):
        raise BadRequest(f"{name}: longer than {MAX_SEARCH if name == 'q' else MAX_VALUE} characters")
    return value


def date(params: Mapping[str, Sequence[str]], name: str) -> datetime | None:
    """`2025-01-13` or an ISO 8601 time; UTC unless it says otherwise."""
    value = one(params, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}: {value[:40]!r} is not a date; use YYYY-MM-DD or an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def integer(params: Mapping[str, Sequence[str]], name: str, default: int, low: int, high: int) -> int:
    value = one(params, name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadRequest(f"{name}: use a whole number from {low} to {high}")
    return int(value)


def flag(params: Mapping[str, Sequence[str]], name: str) -> bool:
    value = (one(params, name) or "").lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise BadRequest(f"{name}: use 1 or 0")


def parse_query(params: Mapping[str, Sequence[str]]) -> Query:
    """The filters of a data request; raises BadRequest naming the parameter and what it takes."""
    unknown = sorted(set(params) - KNOWN)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0][:40]!r}; known: {', '.join(sorted(KNOWN))}")
    by = one(params, "by", "day") or "day"
    if by not in PERIODS:
        raise BadRequest(f"by: use one of {', '.join(PERIODS)}")
    compare = one(params, "compare")
    if compare is not None and compare not in COMPARE:
        raise BadRequest(f"compare: use one of {', '.join(COMPARE)}")
    since, until = date(params, "since"), date(params, "until")
    if since and until and until - since > MAX_SPAN[by]:
        raise BadRequest(f"since..until spans more than {MAX_SPAN[by].days} days, the most by {by}; narrow the "
                         "dates or use a longer period (by=day, by=week)")
    region = one(params, "region")
    if region is not None and compare not in (None, "region"):
        raise BadRequest("region: a region filter works with compare=region or without compare")
    if region is not None:
        compare = "region"  # the region series, of which the view keeps the one asked for
    try:
        filters = Filters(by=by, since=since, until=until, terms=values(params, "term"),
                          sources=values(params, "source"), langs=values(params, "lang"), model=one(params, "model"),
                          compare=compare, dedupe=flag(params, "dedupe"))
    except ReportError as err:
        raise BadRequest(str(err).replace("--", "")) from None
    return Query(filters, region=region, top=integer(params, "top", 5, 1, MAX_TOP))
