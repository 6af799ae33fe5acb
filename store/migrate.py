"""Numbered SQL migrations, applied in order, each once, safe from two processes at once."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import resources

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every murmur process sharing a database.
MIGRATION_LOCK_KEY = 0x6D75726D  # "murm"

_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")
# A migration whose first line is `-- requires: ext[, ext]` needs those PostgreSQL extensions: on a server
# without them (or a role that may not create them) it is skipped, not recorded, and tried again next time.
_REQUIRES = re.compile(r"^--\s*requires:\s*([\w, ]+)$")
_skipped_logged: set[str] = set()  # one warning per migration per process: every connect() migrates


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every shipped migration, in order."""
    folder = resources.files("murmur.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def required_extensions(text: str) -> list[str]:
    """The extensions a migration's first line (`-- requires: vector`) names."""
    match = _REQUIRES.match(text.split("\n", 1)[0].strip())
    return [name.strip() for name in match.group(1).split(",") if name.strip()] if match else []


def _extensions_missing(conn: psycopg.Connection, names: list[str]) -> str | None:
    """Create the extensions `names` where missing (inside a savepoint); why that failed, else None."""
    for name in names:
        try:
            with conn.transaction():  # a savepoint: a failure leaves the outer transaction usable
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
        except psycopg.Error as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return f"extension {name!r}: {first}"
    return None


def migrate(conn: psycopg.Connection, migrations: Sequence[tuple[int, str, str]] | None = None) -> list[str]:
    """Apply the migrations this database lacks (`migrations`: (version, name, SQL); default the shipped
    ones); return the names applied. One that requires a missing extension is skipped (see _REQUIRES).

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
        for version, name, text in (available_migrations() if migrations is None else migrations):
            if version in done:
                continue
            missing = _extensions_missing(conn, required_extensions(text))
            if missing is not None:
                level = logging.DEBUG if name in _skipped_logged else logging.WARNING
                _skipped_logged.add(name)
                logger.log(level, "migration %s skipped (%s); install the extension on the server to use what "
                           "it adds (search, topics); everything else works", name, missing)
                continue
            logger.info("applying migration %s", name)
            conn.execute(text)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(name)
    return applied
