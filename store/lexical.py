"""The lexical half of `murmur search --hybrid`: the posts whose text holds the query's words, most words
first, then by pg_trgm's word_similarity to the whole query (migration 0014), within the same filters as the
semantic half (store/embeddings.POST_FILTERS). Only posts with an embedding of the search's model take part,
so every hit of either half has a similarity to show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg import sql

from murmur.store.embeddings import POST_FILTERS, SEARCH_COLUMNS, SearchFilters, register

if TYPE_CHECKING:
    import numpy as np
    import psycopg

MAX_WORDS = 8  # the query's words matched at most: each is one ILIKE over the filtered posts

_LEXICAL = """
SELECT p.id
FROM posts p
JOIN post_embeddings e ON e.post_id = p.id AND e.model = %(model)s
WHERE ({any_word})
""" + POST_FILTERS + """
ORDER BY ({words_held}) DESC, word_similarity(%(query)s, p.text) DESC, p.created_at DESC, p.id
LIMIT %(limit)s
"""

# The posts of `ids`, with their similarity to the query vector, in SEARCH_COLUMNS.
_BY_IDS = """
SELECT p.id, p.text, 1 - (e.embedding <=> %(q)s) AS similarity, p.source, p.created_at, s.label, p.url, p.lang
FROM posts p
JOIN post_embeddings e ON e.post_id = p.id AND e.model = %(model)s
LEFT JOIN LATERAL (
    SELECT label FROM sentiment_scores WHERE post_id = p.id ORDER BY scored_at DESC LIMIT 1
) s ON true
WHERE p.id = ANY (%(ids)s)
"""


def lexical_available(conn: psycopg.Connection) -> bool:
    """Whether pg_trgm is installed where this database can use it (migration 0014 ran)."""
    with conn.transaction():
        row = conn.execute("SELECT to_regproc('word_similarity') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _like(word: str) -> str:
    """`word` as an ILIKE pattern matching it anywhere, its own % and _ taken literally."""
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def lexical_matches(conn: psycopg.Connection, model: str, query: str, words: Sequence[str],
                    filters: SearchFilters, limit: int) -> list[int]:
    """Ids of up to `limit` posts (with a `model` embedding, within `filters`) holding any of `words`, ranked
    by how many they hold, then by word_similarity to `query`."""
    words = list(dict.fromkeys(words))[:MAX_WORDS]
    if not words:
        return []
    patterns = {f"w{i}": _like(w) for i, w in enumerate(words)}
    held = [sql.SQL("p.text ILIKE {}").format(sql.Placeholder(name)) for name in patterns]
    query_sql = sql.SQL(_LEXICAL).format(
        any_word=sql.SQL(" OR ").join(held),
        words_held=sql.SQL(" + ").join(sql.SQL("({})::int").format(h) for h in held),
    )
    params: dict[str, Any] = {
        "model": model, "query": query, "limit": limit, **filters.params(), **patterns,
    }
    with conn.transaction():
        return [int(r[0]) for r in conn.execute(query_sql, params)]


def posts_with_similarity(conn: psycopg.Connection, model: str, query: np.ndarray,
                          ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The posts `ids` (those with a `model` embedding) as dicts of SEARCH_COLUMNS, by id."""
    if not ids:
        return {}
    register(conn)
    with conn.transaction():
        rows = conn.execute(_BY_IDS, {"q": query, "model": model, "ids": list(ids)}).fetchall()
    return {int(r[0]): dict(zip(SEARCH_COLUMNS, r, strict=True)) for r in rows}
