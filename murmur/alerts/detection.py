"""The detector: pure functions over one series of buckets (one term, source and model; hour or day).

Volume spike. A bucket's post count is compared with the same hour (or day) of the previous
`baseline_days` days: 08:00 with earlier 08:00s, never with the hours just before, so the daily
rhythm (quiet nights, busy evenings) is not a spike. Counts are compared on the Anscombe scale,
a(x) = 2 sqrt(x + 3/8), where a Poisson count's noise is about 1 whatever its size; the baseline
is the median of a() over those days. The noise is the larger of
  - sqrt(1 + pi/2 / n): a count's own Poisson noise plus that of a median of n days, and
  - 1.4826 x the median |residual| of every bucket of the trailing window (each bucket against its
    own same-hour median): the series' real day-to-day spread, pooled over all hours of the
    previous `baseline_days` days (for day buckets, the previous 4 x baseline_days days, at least
    14) because seven values of one hour are too few to estimate a spread from: measured on
    synthetic overdispersed series, they let through false spikes that the pooled spread does not;
and score = (a(posts) - baseline) / noise. Days before the stream was first watched are unknown,
not zero. A spike needs at least three known days of baseline (fewer only if baseline_days is
smaller) and seven residuals in the pooling window: with the defaults, hour buckets are judged
from the stream's fifth day on, day buckets from its eleventh.

Sentiment shift. A bucket's mean polarity against that of every post of the previous
`baseline_days` days (pooled), as a two-sample z-test: z = (m1 - m0) / sqrt(v1/n1 + v0/n0). The
per-post variance v comes from the label counts, (pos + neg)/n - m^2, i.e. as if each post's
polarity were its label's -1, 0 or +1: that overstates the spread of probabilities (they are rarely
0 or +-1), so the test errs towards silence. It is floored at 0.05 (a polarity standard deviation
of about 0.22) for buckets of one label only. Both sides need `min_posts` posts.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from murmur.config.settings import AlertSettings

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MIN_BASELINE_DAYS = 3
MIN_POOLED = 7  # residuals needed before the pooled spread is trusted over the bucket's own days
MAD_TO_SIGMA = 1.4826  # MAD x this estimates the standard deviation of normal data
MEDIAN_VARIANCE = math.pi / 2  # the variance of a median of n normal values is this x sigma^2 / n
VARIANCE_FLOOR = 0.05

VOLUME_SPIKE = "volume_spike"
SENTIMENT_SHIFT = "sentiment_shift"


class Bucket(Protocol):
    """What the detector reads of a bucket (store.alerts.SeriesRow is one)."""

    @property
    def start(self) -> datetime: ...
    @property
    def posts(self) -> int: ...
    @property
    def negative(self) -> int: ...
    @property
    def positive(self) -> int: ...
    @property
    def mean_polarity(self) -> float: ...


@dataclass(frozen=True)
class Thresholds:
    spike: float = 5.0
    shift: float = 4.0
    min_posts: int = 10
    baseline_days: int = 7

    @classmethod
    def from_settings(cls, settings: AlertSettings) -> Thresholds:
        return cls(spike=settings.spike_threshold, shift=settings.shift_threshold,
                   min_posts=settings.min_posts, baseline_days=settings.baseline_days)


@dataclass(frozen=True)
class Finding:
    kind: str  # VOLUME_SPIKE or SENTIMENT_SHIFT
    bucket_start: datetime
    value: float  # posts in the bucket, or its mean polarity
    baseline: float  # the median count of the same hour, or the baseline's mean polarity
    score: float  # noise units above the baseline, or the z of the difference (negative: a turn for the worse)
    details: dict[str, Any] = field(default_factory=dict)


def anscombe(count: float) -> float:
    """2 sqrt(x + 3/8): a Poisson count's noise is about 1 on this scale, whatever the count."""
    return 2.0 * math.sqrt(count + 0.375)


def volume_spike(start: datetime, posts: int, baseline_counts: Sequence[int], spread: float,
                 thresholds: Thresholds) -> Finding | None:
    """A spike when `posts` is `thresholds.spike` noise units above the same hour of the previous
    days (`baseline_counts`), `spread` being the series' pooled residual spread (see the module
    docstring); None otherwise, or with too few baseline days to judge by."""
    n = len(baseline_counts)
    if posts < thresholds.min_posts or n < min(MIN_BASELINE_DAYS, thresholds.baseline_days):
        return None
    center = statistics.median(anscombe(c) for c in baseline_counts)
    noise = max(math.sqrt(1 + MEDIAN_VARIANCE / n), spread)
    score = (anscombe(posts) - center) / noise
    if score < thresholds.spike:
        return None
    median = float(statistics.median(baseline_counts))
    return Finding(VOLUME_SPIKE, start, float(posts), median, score, {
        "posts": posts,
        "baseline_days": n,
        "baseline_counts": list(baseline_counts),
        "noise": round(noise, 4),
        "ratio": round(posts / median, 2) if median else None,
    })


@dataclass(frozen=True)
class Pool:
    """Posts pooled over buckets: how many, how many labelled negative or positive, polarity sum."""

    posts: int
    polar: int  # labelled negative or positive
    polarity_sum: float

    @property
    def mean(self) -> float:
        return self.polarity_sum / self.posts if self.posts else 0.0

    @property
    def variance(self) -> float:
        """Per-post variance of polarity, from the labels (see the module docstring)."""
        if not self.posts:
            return 1.0
        return max(self.polar / self.posts - self.mean**2, VARIANCE_FLOOR)


def sentiment_shift(start: datetime, bucket: Pool, baseline: Pool, thresholds: Thresholds) -> Finding | None:
    """A shift when the bucket's mean polarity is `thresholds.shift` standard errors from the
    baseline's; None otherwise, or when either side has fewer than `min_posts` posts."""
    if bucket.posts < thresholds.min_posts or baseline.posts < thresholds.min_posts:
        return None
    error = math.sqrt(bucket.variance / bucket.posts + baseline.variance / baseline.posts)
    score = (bucket.mean - baseline.mean) / error
    if abs(score) < thresholds.shift:
        return None
    return Finding(SENTIMENT_SHIFT, start, bucket.mean, baseline.mean, score, {
        "posts": bucket.posts,
        "baseline_posts": baseline.posts,
        "baseline_days": thresholds.baseline_days,
        "delta": round(bucket.mean - baseline.mean, 4),
        "std_error": round(error, 4),
        "direction": "up" if score > 0 else "down",
    })


def history_days(step: timedelta, baseline_days: int) -> int:
    """Days of buckets before a checked one that `detect` reads: the pooling window, and the
    baseline days of each bucket in it. A caller that gives less makes the missing days zeros."""
    pool_days = baseline_days if step < DAY else max(4 * baseline_days, 14)
    return pool_days + baseline_days


class _Counts:
    """A series' counts on its grid (absent buckets are 0 once watched), with each bucket's
    same-hour baseline and residual computed once, and the pooled spread once per day."""

    def __init__(self, counts: dict[datetime, int], step: timedelta, since: datetime, days: int) -> None:
        self.counts, self.step, self.since, self.days = counts, step, since, days
        self.pool_span = (history_days(step, days) - days) * DAY
        self._residual: dict[datetime, float | None] = {}
        self._spread: dict[datetime, float | None] = {}

    def baseline(self, t: datetime) -> list[int]:
        earlier = (t - k * DAY for k in range(1, self.days + 1))
        return [self.counts.get(u, 0) for u in earlier if u >= self.since]

    def residual(self, u: datetime) -> float | None:
        if u not in self._residual:
            base = self.baseline(u)
            self._residual[u] = (anscombe(self.counts.get(u, 0)) - statistics.median(anscombe(c) for c in base)
                                 if len(base) >= min(MIN_BASELINE_DAYS, self.days) else None)
        return self._residual[u]

    def spread(self, t: datetime) -> float | None:
        """1.4826 x median |residual| over the pooling window that ends at t's day (hour buckets)."""
        end = t - (t - self.since) % DAY if self.step < DAY else t
        if end not in self._spread:
            u, found = max(end - self.pool_span, self.since), []
            while u < end:
                r = self.residual(u)
                if r is not None:
                    found.append(abs(r))
                u += self.step
            self._spread[end] = MAD_TO_SIGMA * statistics.median(found) if len(found) >= MIN_POOLED else None
        return self._spread[end]


def distinct_posts(bucket: Bucket) -> int:
    """The bucket's posts, each text once (its `unique_posts`), or all its posts where it has no such count."""
    unique = getattr(bucket, "unique_posts", None)
    return bucket.posts if unique is None else int(unique)


def detect(
    series: Iterable[Bucket],
    thresholds: Thresholds,
    *,
    step: timedelta = HOUR,
    watched_since: datetime | None = None,
    check: Iterable[datetime] | None = None,
) -> list[Finding]:
    """Volume spikes and sentiment shifts of one series of `step`-long buckets at the buckets
    `check` (default: all).

    Buckets absent from `series` had no posts. `watched_since` is when the stream began (default
    the series' first bucket): earlier days count as unknown, not as zero.
    """
    ordered = sorted(series, key=lambda b: b.start)
    if not ordered:
        return []
    starts = [b.start for b in ordered]
    by_start = {b.start: b for b in ordered}
    # Volume counts distinct texts (unique_posts, where the bucket has them): a thousand copies of one post are
    # one voice, not a spike. Sentiment pools every post.
    voices = {b.start: distinct_posts(b) for b in ordered}
    counts = _Counts(voices, step, watched_since or starts[0],
                     thresholds.baseline_days)
    # Prefix sums: a window's pooled sentiment in O(log n), so checking every bucket (a rebuild) stays linear.
    cum_posts = [0, *accumulate(b.posts for b in ordered)]
    cum_polar = [0, *accumulate(b.negative + b.positive for b in ordered)]
    cum_polarity = [0.0, *accumulate(b.mean_polarity * b.posts for b in ordered)]
    window = thresholds.baseline_days * DAY

    found: list[Finding] = []
    for start in sorted(set(check)) if check is not None else starts:
        bucket = by_start.get(start)
        if bucket is None:
            continue
        spread = counts.spread(start) if voices[start] >= thresholds.min_posts else None
        if spread is not None:  # None: too little history to know the series' spread yet
            spike = volume_spike(start, voices[start], counts.baseline(start), spread, thresholds)
            if spike:
                found.append(spike)
        lo, hi = bisect_left(starts, start - window), bisect_left(starts, start)
        baseline = Pool(cum_posts[hi] - cum_posts[lo], cum_polar[hi] - cum_polar[lo],
                        cum_polarity[hi] - cum_polarity[lo])
        here = Pool(bucket.posts, bucket.negative + bucket.positive, bucket.mean_polarity * bucket.posts)
        shift = sentiment_shift(start, here, baseline, thresholds)
        if shift:
            found.append(shift)
    return found
