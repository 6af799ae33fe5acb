"""What analysts ask next: which hashtags and terms rise alongside the tracked ones, and which
languages the posts are in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.reports.filters import STEP, Filters, floor_to
from murmur.reports.series import post_scope
from murmur.store.reports import PostScope, cooccurrence_counts, language_counts

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Cooccurrence:
    period: datetime
    entry: str  # '#hashtag' or a tracked term
    kind: str  # 'tag' | 'term'
    posts: int  # posts of the period holding it
    share: float  # of the period's matched posts
    previous: int  # posts holding it in the period before
    new: bool  # absent in the period before, which had matched posts

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"period": self.period.isoformat(), "share": round(self.share, 4)}


@dataclass(frozen=True)
class LanguageMix:
    period: datetime
    source: str
    posts: int
    en: int
    zh: int

    @property
    def other(self) -> int:
        return self.posts - self.en - self.zh

    def shares(self) -> tuple[float, float, float]:
        return self.en / self.posts, self.zh / self.posts, self.other / self.posts

    def as_dict(self) -> dict[str, Any]:
        en, zh, other = self.shares()
        return {"period": self.period.isoformat(), "source": self.source, "posts": self.posts, "en": self.en,
                "zh": self.zh, "other": self.other, "en_share": round(en, 4), "zh_share": round(zh, 4),
                "other_share": round(other, 4)}


def _with_previous(f: Filters) -> PostScope:
    """The report's posts and one period more at the start, to tell what is new in the first one."""
    scope = post_scope(f)
    return replace(scope, since=floor_to(scope.since, f.by) - STEP[f.by]) if scope.since else scope


def cooccurrence(conn: psycopg.Connection, f: Filters, *, top: int = 5) -> list[Cooccurrence]:
    """Per period, the `top` hashtags and other terms in the posts matching the tracked terms,
    most posts first, each flagged `new` when the period before had none of it."""
    return rank_cooccurrence(cooccurrence_counts(conn, unit=f.by, scope=_with_previous(f), top=top), f, top=top)


def rank_cooccurrence(rows: Iterable[tuple[Any, ...]], f: Filters, *, top: int) -> list[Cooccurrence]:
    """`cooccurrence` from store.reports.cooccurrence_counts' rows (every entry, or at least each period's
    `top` and those of the period after it)."""
    totals: dict[datetime, int] = {}
    counts: dict[datetime, dict[tuple[str, str], int]] = defaultdict(dict)
    for period, total, entry, kind, n in rows:
        totals[period] = total
        if entry is not None:
            counts[period][(entry, kind)] = n
    first = floor_to(f.since, f.by) if f.since else None
    out: list[Cooccurrence] = []
    for period in sorted(totals):
        if first and period < first:
            continue
        before = period - STEP[f.by]
        prev = counts.get(before, {})
        ranked = sorted(counts.get(period, {}).items(), key=lambda kv: (-kv[1], kv[0][0]))[:top]
        out.extend(
            Cooccurrence(period, entry, kind, n, n / totals[period], prev.get((entry, kind), 0),
                         totals.get(before, 0) > 0 and (entry, kind) not in prev)
            for (entry, kind), n in ranked
        )
    return out


def language_mix(conn: psycopg.Connection, f: Filters) -> list[LanguageMix]:
    """Per period and source, how many posts are in English, in Chinese, and in anything else
    (unknown included), among the posts the filters select: --lang narrows it as it narrows the trend."""
    return [LanguageMix(*row) for row in language_counts(conn, unit=f.by, scope=post_scope(f))]
