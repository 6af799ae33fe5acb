"""What analysts ask next: which hashtags and terms rise alongside the tracked ones, and which
languages the posts are in."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql

from murmur.reports.filters import STEP, Filters, floor_to

if TYPE_CHECKING:
    import psycopg

# The posts a report covers, whatever their score: matched terms, range, source (and language).
_MATCHED = """
SELECT p.id, date_trunc(%(unit)s, p.created_at, 'UTC') AS period, p.terms, p.tags
FROM posts p
WHERE cardinality(p.terms) > 0
  AND (%(from_at)s::timestamptz IS NULL OR p.created_at >= %(from_at)s)
  AND (%(until_at)s::timestamptz IS NULL OR p.created_at < %(until_at)s)
  AND (%(terms)s::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest(p.terms) t WHERE lower(t) = ANY (%(terms)s)))
  AND (%(sources)s::text[] IS NULL OR p.source = ANY (%(sources)s))
  AND (%(langs)s::text[] IS NULL OR lower(COALESCE(p.lang, 'und')) = ANY (%(langs)s))
"""

# A hashtag that is only a matched term written as a hashtag (#rednote on a RedNote post,
# #tiktokrefugees on a "TikTok refugee" one) says nothing new, so it is left out. Other terms are
# those besides the ones asked for (--term), or, with none asked for, any term that shares a post
# with another.
_COOCCURRENCE = """
WITH matched AS ({matched}),
totals AS (SELECT period, count(*) AS posts FROM matched GROUP BY 1),
entries AS (
    SELECT m.period, m.id, '#' || lower(tag) AS entry, 'tag' AS kind
    FROM matched m CROSS JOIN LATERAL unnest(m.tags) AS tag
    WHERE NOT EXISTS (
        SELECT 1 FROM unnest(m.terms) AS t, lower(regexp_replace(t, '\\s+', '', 'g')) AS h
        WHERE lower(tag) IN (h, h || 's')
    )
    UNION
    SELECT m.period, m.id, t, 'term'
    FROM matched m CROSS JOIN LATERAL unnest(m.terms) AS t
    WHERE CASE WHEN %(terms)s::text[] IS NULL THEN cardinality(m.terms) > 1 ELSE lower(t) <> ALL (%(terms)s) END
)
SELECT t.period, t.posts, e.entry, e.kind, count(DISTINCT e.id)::int
FROM totals t LEFT JOIN entries e ON e.period = t.period
GROUP BY 1, 2, 3, 4
ORDER BY 1, 5 DESC, 3
"""

_LANGUAGES = """
WITH matched AS ({matched})
SELECT m.period, p.source, count(*)::int,
       (count(*) FILTER (WHERE lower(p.lang) = 'en' OR lower(p.lang) LIKE 'en-%%'))::int,
       (count(*) FILTER (WHERE lower(p.lang) = 'zh' OR lower(p.lang) LIKE 'zh-%%'))::int
FROM matched m JOIN posts p ON p.id = m.id
GROUP BY 1, 2
ORDER BY 1, 2
"""


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


def _matched(f: Filters, *, with_previous: bool) -> tuple[sql.SQL, dict[str, Any]]:
    params = f.params()
    since = params["since_at"]
    # one period more at the start, to tell what is new in the first one
    params["from_at"] = floor_to(since, f.by) - STEP[f.by] if since and with_previous else since
    return sql.SQL(_MATCHED), params


def cooccurrence(conn: psycopg.Connection, f: Filters, *, top: int = 5) -> list[Cooccurrence]:
    """Per period, the `top` hashtags and other terms in the posts matching the tracked terms,
    most posts first, each flagged `new` when the period before had none of it."""
    matched, params = _matched(f, with_previous=True)
    totals: dict[datetime, int] = {}
    counts: dict[datetime, dict[tuple[str, str], int]] = defaultdict(dict)
    for period, total, entry, kind, n in conn.execute(sql.SQL(_COOCCURRENCE).format(matched=matched), params):
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
    (unknown included). --lang does not narrow it: the mix is the point."""
    matched, params = _matched(replace(f, langs=()), with_previous=False)
    return [LanguageMix(*row) for row in conn.execute(sql.SQL(_LANGUAGES).format(matched=matched), params)]
