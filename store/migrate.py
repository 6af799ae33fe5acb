"""Numbered SQL migrations, applied in order, each once, safe from two processes at once."""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every murmur process sharing a database.
MIGRATION_LOCK_KEY = 0x6D75726D  # "murm"

_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every shipped migration, in order."""
    folder = resources.files("murmur.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations this database lacks; return the names applied.

    A session-level advisory lock serialises concurrent callers: the second waits, then finds
    nothing left to do.
    """
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, text in available_migrations():
            if version in done:
                continue
            logger.info("applying migration %s", name)
            conn.execute(text)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(name)
    return applied
