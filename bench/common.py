"""What the benchmarks share: a PostgreSQL to write to, and a fresh schema in it per run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import quote


def server_url(database_url: str | None) -> str:
    """`database_url`, else an embedded PostgreSQL started in a new temporary directory."""
    if database_url:
        return database_url
    from murmur.store.db import embedded_server_url

    data = Path(tempfile.mkdtemp(prefix="murmur-bench-pg-"))
    os.chmod(data, 0o755)  # the embedded server runs as its own user when we are root
    return embedded_server_url(data / "pgdata", "murmur_bench")


def fresh_schema(server_url: str, name: str) -> str:
    """A URL whose search_path is schema `name`, dropped and created empty."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in server_url else "?"
    return f"{server_url}{sep}options={quote(f'-csearch_path={name}')}"
