"""Grouping one period's post embeddings into topics: scikit-learn's PCA then MiniBatchKMeans, the number of
topics chosen by silhouette over a few candidates, tiny clusters folded into their nearest neighbour.

Why this and not HDBSCAN: a week of 100,000 posts must cluster in well under a minute on 2 cores. k-means on
50 PCA dimensions does (a few seconds per candidate k, the silhouette read on a sample), and it assigns every
post, so a topic's size is a count of posts; HDBSCAN's density tree over 100,000 points takes minutes there and
calls a large share of short posts noise. Seeded throughout: the same posts give the same topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SEED = 0
PCA_DIMS = 50  # e5's 384 dimensions keep their neighbourhoods in ~50 principal ones; k-means runs 8x faster
MAX_TOPICS = 30  # more than this per period is more than people read
MIN_POSTS_PER_TOPIC = 4  # the smallest candidate k keeps at least this many posts per cluster on average
EXACT_UP_TO = 20_000  # posts; above, MiniBatchKMeans (a week of 100,000 posts)
SILHOUETTE_SAMPLE = 3000
PARSIMONY = 0.95  # silhouette is quadratic: read it on a sample of the period's posts


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # per post, its topic (0..k-1, by size, biggest first)
    centroids: np.ndarray  # per topic, the normalised mean of its posts' (unit) vectors, in the original space


def candidate_ks(n: int) -> list[int]:
    """The numbers of topics tried for `n` posts: 2 up to about sqrt(n) (at most MAX_TOPICS), on a geometric
    grid so that 100,000 posts try eleven values, not twenty-nine."""
    top = min(MAX_TOPICS, n // MIN_POSTS_PER_TOPIC, max(2, round(n ** 0.5)))
    if top < 2:
        return []
    ks = sorted({k for k in (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 30) if k <= top} | {top})
    return ks


def min_topic_size(n: int) -> int:
    """Clusters smaller than this are folded into their nearest one: 1% of the period's posts, 3 at least."""
    return max(3, n // 100)


def cluster(vectors: np.ndarray) -> Clustering:
    """Topics of `vectors` (n x d, unit rows): the labels, biggest topic first, and each topic's centroid."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    ks = candidate_ks(n)
    if not ks:
        labels = np.zeros(n, dtype=int)
        return Clustering(labels, _centroids(vectors, labels, 1 if n else 0))
    dims = min(PCA_DIMS, n - 1, vectors.shape[1])
    reduced = PCA(n_components=dims, random_state=SEED).fit_transform(vectors)
    sample = min(SILHOUETTE_SAMPLE, n)
    tried: list[tuple[float, np.ndarray]] = []
    for k in ks:
        labels = _kmeans(k, n).fit_predict(reduced)
        if len(set(labels.tolist())) > 1:
            tried.append((float(silhouette_score(reduced, labels, sample_size=sample, random_state=SEED)), labels))
    if tried:
        # The fewest topics whose silhouette is within PARSIMONY of the best: the curve is flat near its top, and
        # there one more cluster mostly splits a subject in two (cats and dogs out of pets).
        best = max(score for score, _ in tried)
        labels = next(labels for score, labels in tried if score >= PARSIMONY * best)
    else:
        labels = np.zeros(n, dtype=int)
    labels = _fold_small(reduced, labels, min_topic_size(n))
    k = int(labels.max()) + 1
    return Clustering(labels, _centroids(vectors, labels, k))


def _kmeans(k: int, n: int) -> Any:
    """Exact k-means (several starts) while it is quick; mini-batches past EXACT_UP_TO posts."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n <= EXACT_UP_TO:
        return KMeans(n_clusters=k, random_state=SEED, n_init=20 if n <= 2000 else 3)
    return MiniBatchKMeans(n_clusters=k, random_state=SEED, n_init=3, batch_size=4096)


def _fold_small(points: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Move the posts of clusters under `min_size` to the nearest kept cluster's centre, then renumber the
    clusters by size (biggest first; ties by first post) so that the numbering is stable."""
    ids, counts = np.unique(labels, return_counts=True)
    kept = ids[counts >= min_size]
    if len(kept) == 0:
        kept = ids[[int(np.argmax(counts))]]
    centres = np.stack([points[labels == i].mean(axis=0) for i in kept])
    out = labels.copy()
    small = ~np.isin(labels, kept)
    if small.any():
        distances = ((points[small, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        out[small] = kept[np.argmin(distances, axis=1)]
    ids, first, counts = np.unique(out, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda j: (-counts[j], first[j]))
    renumber = {int(ids[j]): rank for rank, j in enumerate(order)}
    return np.array([renumber[int(v)] for v in out], dtype=int)


def _centroids(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((k, vectors.shape[1]), dtype=np.float32)
    for i in range(k):
        mean = vectors[labels == i].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        out[i] = mean / norm if norm else mean
    return out
