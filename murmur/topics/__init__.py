"""Topics per period (`murmur topics`, the report's topics section, the `topic_emerging` alert): each period's
post embeddings grouped by k-means (cluster.py), each topic named by its c-TF-IDF words (words.py), with its
size, mean polarity and the posts nearest its centre; a topic is the same as one of the previous period when
their centroids' cosine similarity is at least SAME_TOPIC, and is marked new when none is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from murmur.topics.cluster import cluster
from murmur.topics.words import label, topic_words

if TYPE_CHECKING:
    import psycopg

    from murmur.store.embeddings import SearchFilters
    from murmur.store.topics import PeriodPosts

BY = ("day", "week")
STEP = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
# Centroids of one subject's posts on different days (the bilingual fixture, halves of it) are 0.72-0.83
# apart in cosine, of different subjects at most 0.27; 0.6 keeps a topic whose wording drifts and splits
# neighbours that merely share a theme.
SAME_TOPIC = 0.6
STRONG_GROWTH = 2.0  # a topic at least this many times its size in the previous period is rising
REPRESENTATIVE_POSTS = 3
LABEL_SAMPLE = 500  # posts per topic read for its words (a seeded sample): jieba is the slow part at 100,000


@dataclass(frozen=True)
class TopicPost:
    text: str
    url: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "url": self.url, "created_at": self.created_at.isoformat()}


@dataclass
class Topic:
    period: datetime  # the start of its day or week (UTC)
    label: str
    words: list[str]
    size: int  # posts
    mean_polarity: float | None  # mean P(positive) - P(negative) of its scored posts; None when none is scored
    posts: list[TopicPost]  # the posts nearest its centre
    centroid: np.ndarray = field(repr=False)
    new: bool = False  # no topic of the previous period is the same (and that period had posts)
    growth: float | None = None  # size / the same topic's size in the previous period; None when new or unknown
    members: list[int] = field(default_factory=list, repr=False)  # its posts' ids

    @property
    def rising(self) -> bool:
        """New, or at least STRONG_GROWTH times its size in the previous period."""
        return self.new or (self.growth is not None and self.growth >= STRONG_GROWTH)

    @property
    def change(self) -> str:
        """For people: 'new', '×2.1' (its size against the same topic's in the previous period) or ''."""
        if self.new:
            return "new"
        return f"×{self.growth:.1f}" if self.growth is not None else ""

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period.isoformat(), "label": self.label, "words": self.words, "size": self.size,
                "mean_polarity": None if self.mean_polarity is None else round(self.mean_polarity, 4),
                "new": self.new, "growth": None if self.growth is None else round(self.growth, 2),
                "posts": [p.as_dict() for p in self.posts]}


def floor_period(t: datetime, by: str) -> datetime:
    """The start of the UTC day, or ISO week (Monday), holding `t`."""
    from murmur.reports.filters import floor_to

    return floor_to(t, by)


def period_topics(posts: PeriodPosts, period: datetime) -> list[Topic]:
    """The topics of one period's posts, biggest first."""
    n = len(posts)
    if n == 0:
        return []
    found = cluster(posts.vectors)
    members = [np.flatnonzero(found.labels == k) for k in range(len(found.centroids))]
    rng = np.random.default_rng(0)
    samples = [m if len(m) <= LABEL_SAMPLE else np.sort(rng.choice(m, LABEL_SAMPLE, replace=False)) for m in members]
    words = topic_words([[posts.texts[i] for i in s] for s in samples])
    topics, labels = [], set()
    for k, idx in enumerate(members):
        name = label(words[k])
        while name in labels:  # two topics of a period never share a name (it keys their alerts)
            name += " ·"
        labels.add(name)
        scored = [p for p in (posts.polarity[i] for i in idx) if p is not None]
        topics.append(Topic(period, name, words[k], len(idx), sum(scored) / len(scored) if scored else None,
                            _representatives(posts, idx, found.centroids[k]), found.centroids[k],
                            members=[posts.ids[i] for i in idx]))
    return topics


def _representatives(posts: PeriodPosts, idx: np.ndarray, centroid: np.ndarray) -> list[TopicPost]:
    order = idx[np.argsort(-(posts.vectors[idx] @ centroid), kind="stable")]
    out: list[TopicPost] = []
    seen: set[str] = set()
    for i in order:
        text = " ".join(posts.texts[i].split())
        if text.lower() in seen:  # a copy-pasted post shows once
            continue
        seen.add(text.lower())
        out.append(TopicPost(posts.texts[i], posts.urls[i], posts.created_at[i]))
        if len(out) == REPRESENTATIVE_POSTS:
            break
    return out


def mark_changes(topics: list[Topic], previous: list[Topic]) -> None:
    """Mark each of `topics` new, or give its growth against the previous period's same topic (the one whose
    centroid is closest, when at least SAME_TOPIC). Nothing to compare with (no posts before): neither."""
    if not previous:
        return
    before = np.stack([t.centroid for t in previous])
    for topic in topics:
        similarity = before @ topic.centroid
        best = int(np.argmax(similarity))
        if float(similarity[best]) >= SAME_TOPIC:
            topic.new, topic.growth = False, topic.size / previous[best].size
        else:
            topic.new, topic.growth = True, None


def find_topics(conn: psycopg.Connection, filters: SearchFilters, *, by: str = "week", score_model: str | None,
                model: str | None = None, last: int | None = None) -> list[Topic]:
    """The topics of every `by` period from filters.since (else the first embedded post) to filters.until
    (else the last), each compared with the period before it; `last`: only the last so many periods.
    `score_model`: whose scores give the mean polarity. Raises EmbeddingsUnavailable without pgvector."""
    from murmur.search import EmbeddingsUnavailable
    from murmur.sentiment.embedding_id import EMBEDDING_MODEL
    from murmur.store.embeddings import embeddings_available
    from murmur.store.topics import embedded_span, period_posts

    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, not {by!r}")
    if not embeddings_available(conn):
        raise EmbeddingsUnavailable()
    model = model or EMBEDDING_MODEL
    span = embedded_span(conn, model, filters)
    if span is None:
        return []
    starts = []
    t = floor_period(span[0], by)
    while t <= span[1]:
        starts.append(t)
        t += STEP[by]
    if last is not None:
        starts = starts[-last:]
    out: list[Topic] = []
    previous: list[Topic] | None = None
    for start in starts:
        if previous is None:  # the period before the first shown: only to compare with
            before = start - STEP[by]
            previous = period_topics(period_posts(conn, model, score_model, before, start, filters), before)
        # A period cut by --since/--until counts only its posts inside them.
        lo = max(start, filters.since) if filters.since else start
        hi = min(start + STEP[by], filters.until) if filters.until else start + STEP[by]
        topics = period_topics(period_posts(conn, model, score_model, lo, hi, filters), start)
        mark_changes(topics, previous)
        out.extend(topics)
        previous = topics
    return out
