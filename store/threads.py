"""Conversations: parent references a platform gives only as an instance-local id (Mastodon's
`in_reply_to_id`, Lemmy's comment `path`), stored as ``<host>:<id>`` until the parent is fetched and its
URI is known; then rewritten to that URI (docs/sql.md, "Conversations")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

_RESOLVE = """
UPDATE posts AS p SET parent_source_id = m.uri, updated_at = now()
FROM unnest(%(refs)s::text[], %(uris)s::text[]) AS m(ref, uri)
WHERE p.source = %(source)s AND p.parent_source_id = m.ref
"""


def resolve_parents(conn: psycopg.Connection, source: str, uris: Mapping[str, str]) -> int:
    """Rewrite the parent of every `source` post whose parent is one of the local references in `uris`
    (``<host>:<id>`` -> the status's URI), in one transaction; how many posts changed."""
    if not uris:
        return 0
    refs = list(uris)
    with conn.transaction():
        cursor = conn.execute(_RESOLVE, {"refs": refs, "uris": [uris[r] for r in refs], "source": source})
    return max(cursor.rowcount, 0)
