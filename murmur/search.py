"""Search by meaning (`murmur search`): the query's e5 embedding, centred with its language's mean like the
stored posts' (sentiment/centring.py), against the HNSW index of post_embeddings, filters inside the scan."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from murmur.errors import MurmurError, UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from murmur.sentiment.centring import Centring
    from murmur.sentiment.embeddings import Embedder
    from murmur.store.embeddings import SearchFilters

MAX_LIMIT = 1000  # pgvector's largest hnsw.ef_search: a bigger page could not be served by the index


class EmbeddingsUnavailable(MurmurError):
    """The database has no post_embeddings table: the server lacks the pgvector extension."""

    def __init__(self) -> None:
        super().__init__("this database has no embeddings: the PostgreSQL server lacks the pgvector extension "
                         "(or murmur's role may not create it); install pgvector there (CREATE EXTENSION vector "
                         "as a superuser), then run `murmur embed`")


@dataclass(frozen=True)
class Hit:
    """One post found, with its cosine similarity to the query (1: the same direction)."""

    text: str
    similarity: float
    source: str
    created_at: datetime
    label: str | None  # the post's latest sentiment label; None when no model scored it
    url: str | None
    lang: str | None
    id: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def query_language(query: str) -> str | None:
    """The language the query is centred with: murmur's detector's, else None (the mean of the means)."""
    from murmur.crawler.language import detect_language

    return detect_language(query)


def search_posts(conn: psycopg.Connection, embedder: Callable[[], Embedder], centring: Centring, model: str,
                 query: str,
                 filters: SearchFilters, *, limit: int = 20, hybrid: bool = False) -> list[Hit]:
    """The `limit` posts closest in meaning to `query`, in any language, within `filters`; `hybrid` mixes in
    the posts that hold the query's words (hybrid_ranking). `embedder` loads the model, called once the
    database is known to be able to answer (a missing extension is said without loading it)."""
    from murmur.store.embeddings import embeddings_available, search_nearest
    from murmur.store.lexical import lexical_available

    if not query.strip():
        raise UserError("the query is empty; give a few words, e.g. murmur search \"cooking at home\"")
    if not 1 <= limit <= MAX_LIMIT:
        raise UserError(f"--limit must be between 1 and {MAX_LIMIT}")
    if not embeddings_available(conn):
        raise EmbeddingsUnavailable()
    if hybrid and not lexical_available(conn):
        raise LexicalUnavailable()
    vector = centring.apply(embedder().embed([query]), [query_language(query)])[0]
    if hybrid:
        rows = _hybrid_rows(conn, model, query, vector, filters, limit)
    else:
        rows = search_nearest(conn, model, vector, filters, limit)
    return [Hit(text=r["text"], similarity=round(float(r["similarity"]), 4), source=r["source"],
                created_at=r["created_at"], label=r["label"], url=r["url"], lang=r["lang"], id=int(r["id"]))
            for r in rows]


# Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009): a post scores the sum of 1 / (K + rank)
# over the two rankings it appears in. Ranks, not scores, are fused: a cosine similarity and a trigram
# similarity are not on one scale. K = 60 is the paper's constant; each half offers CANDIDATES x the limit.
RRF_K = 60
CANDIDATES = 3


class LexicalUnavailable(MurmurError):
    """--hybrid on a database without pg_trgm."""

    def __init__(self) -> None:
        super().__init__("--hybrid needs the pg_trgm extension, which this PostgreSQL server lacks (or murmur's "
                         "role may not create it): install it there (CREATE EXTENSION pg_trgm as a superuser), "
                         "or search without --hybrid")


def hybrid_ranking(semantic: list[int], lexical: list[int], limit: int) -> list[int]:
    """The `limit` best ids by reciprocal rank fusion of two rankings (best first); ties to the semantic
    order, then the lexical."""
    score: dict[int, float] = {}
    for ranking in (semantic, lexical):
        for rank, post_id in enumerate(ranking, start=1):
            score[post_id] = score.get(post_id, 0.0) + 1.0 / (RRF_K + rank)
    order = {post_id: i for i, post_id in enumerate(dict.fromkeys(semantic + lexical))}
    return sorted(score, key=lambda i: (-score[i], order[i]))[:limit]


def _hybrid_rows(conn: psycopg.Connection, model: str, query: str, vector: Any, filters: SearchFilters,
                 limit: int) -> list[dict[str, Any]]:
    from murmur.store.embeddings import search_nearest
    from murmur.store.lexical import lexical_matches, posts_with_similarity
    from murmur.topics.words import tokenize

    wanted = min(MAX_LIMIT, CANDIDATES * limit)
    semantic = search_nearest(conn, model, vector, filters, wanted)
    words = tokenize(query) or query.split()
    lexical = lexical_matches(conn, model, query, words, filters, wanted)
    best = hybrid_ranking([int(r["id"]) for r in semantic], lexical, limit)
    rows = {int(r["id"]): r for r in semantic}
    rows |= posts_with_similarity(conn, model, vector, [i for i in best if i not in rows])
    return [rows[i] for i in best if i in rows]
