"""PostgreSQL advisory locks: a job never runs twice at once across murmur processes on one database."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg


def job_lock_key(job: str) -> int:
    """The advisory lock key of a job: the same in every murmur process on the database."""
    return zlib.crc32(f"murmur-job:{job}".encode())


def try_lock(conn: psycopg.Connection, key: int) -> bool:
    """Take the session-level advisory lock `key` if it is free (never waits)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, key: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
