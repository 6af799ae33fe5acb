"""What a report covers: the period size, the time range, the filters, and the series compared."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from murmur.errors import EXIT_USAGE, MurmurError

PERIODS = ("hour", "day", "week")
COMPARE = ("source", "term", "lang", "region")
# Compared series counted from the posts, each post once (the aggregates count a post once per term it
# matched, and hold no region).
FROM_POSTS = ("source", "lang", "region")
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
# Weeks are folded from day buckets: the aggregates keep hours and days only.
BASE = {"hour": "hour", "day": "day", "week": "day"}


class ReportError(MurmurError):
    """A filter the data cannot answer (an unknown term or source): the user fixes the command."""

    exit_code = EXIT_USAGE


class EmptyReport(MurmurError):
    """The filters are valid but select no scored posts."""


@dataclass(frozen=True)
class Filters:
    by: str = "day"
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    terms: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    model: str | None = None  # None: the model that scored last
    compare: str | None = None  # put the series of this dimension side by side
    dedupe: bool = False  # --dedupe: the volume counts each text once (aggregates.unique_posts)

    def __post_init__(self) -> None:
        if self.by not in PERIODS:
            raise ReportError(f"--by must be one of {', '.join(PERIODS)}, not {self.by!r}")
        if self.compare is not None and self.compare not in COMPARE:
            raise ReportError(f"--compare must be one of {', '.join(COMPARE)}, not {self.compare!r}")
        if self.since and self.until and self.since >= self.until:
            raise ReportError(f"--since {self.since:%Y-%m-%d %H:%M} is not before --until {self.until:%Y-%m-%d %H:%M}")
        if self.dedupe and self.compare in FROM_POSTS:
            raise ReportError(f"--dedupe counts from the aggregates; it works without --compare or with --compare "
                              f"term, not --compare {self.compare}")

    @property
    def dims(self) -> tuple[str, ...]:
        """The columns that name a series: (source, term) by default, the compared one otherwise."""
        return (self.compare,) if self.compare else ("source", "term")

    def params(self) -> dict[str, Any]:
        """The SQL parameters every report query shares (terms and languages compared lower-case)."""
        base = BASE[self.by]
        return {
            "unit": self.by,
            "base": base,
            "since": self.since,
            "until": self.until,
            # the same range on posts.created_at: bucket_start >= since <=> created_at >= since rounded up
            "since_at": ceil_to(self.since, base) if self.since else None,
            "until_at": ceil_to(self.until, base) if self.until else None,
            "terms": [t.lower() for t in self.terms] or None,
            "sources": list(self.sources) or None,
            "langs": [lang.lower() for lang in self.langs] or None,
        }


def floor_to(t: datetime, unit: str) -> datetime:
    """The start of the UTC hour, day or ISO week (Monday) holding `t`."""
    t = t.astimezone(UTC)
    if unit == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if unit == "week" else day


def ceil_to(t: datetime, unit: str) -> datetime:
    start = floor_to(t, unit)
    return start if start == t.astimezone(UTC) else start + STEP[unit]


def periods(first: datetime, last: datetime, unit: str) -> list[datetime]:
    """Every period start from `first` to `last`, both included: the time axis, gaps and all."""
    out, t = [], floor_to(first, unit)
    while t <= last:
        out.append(t)
        t += STEP[unit]
    return out


def split_list(values: Sequence[str] | None) -> tuple[str, ...]:
    """Repeatable options that also take comma lists: --term a --term b,c -> (a, b, c)."""
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(dict.fromkeys(out))
