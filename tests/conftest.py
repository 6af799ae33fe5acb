"""Shared fixtures: a real PostgreSQL (embedded, or MURMUR_TEST_DATABASE_URL), a fresh schema
per test, and helpers to run the real `murmur` command."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from murmur.store.db import DatabaseError, connect, embedded_server_url
from murmur.store.migrate import migrate

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
_counter = itertools.count()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """One PostgreSQL for the whole run: MURMUR_TEST_DATABASE_URL, else an embedded server in a temp dir."""
    url = os.environ.get("MURMUR_TEST_DATABASE_URL")
    if url:
        try:
            with psycopg.connect(url, connect_timeout=5):
                pass
        except psycopg.OperationalError as err:
            pytest.exit(f"MURMUR_TEST_DATABASE_URL is set but unreachable: {err}", returncode=3)
        yield url
        return
    data = Path(tempfile.mkdtemp(prefix="murmur-test-pg-"))
    os.chmod(data, 0o755)  # the embedded server runs as its own user when we are root
    try:
        yield embedded_server_url(data / "pgdata", "murmur_test")
    except DatabaseError as err:
        pytest.exit(f"cannot start the embedded PostgreSQL: {err}", returncode=3)


@pytest.fixture(scope="session")
def extensions(server_url: str) -> None:
    """pgvector and pg_trgm in the schema `public`, once: created from a test's own schema (first on its
    search_path), one would be dropped with that schema, taking the other tests' vector columns with it."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        for extension in ("vector", "pg_trgm"):
            try:
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension} SCHEMA public")
            except psycopg.Error:
                pass  # a server without it: the migration needing it is skipped, as for users


@pytest.fixture
def db_url(server_url: str, extensions: None) -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema (then `public`, for the extensions' types): every test
    starts from nothing, and the URL carries the schema to the `murmur` child processes a test starts."""
    schema = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in server_url else "?"
    yield f"{server_url}{sep}options={quote(f'-csearch_path={schema},public')}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """A migrated connection to the test's schema."""
    with connect(db_url) as c:
        migrate(c)
        yield c


def murmur_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment for a `murmur` child: no user config, the test database, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MURMUR_")}
    env.update({"MURMUR_DATABASE_URL": db_url, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def only_sources(*names: str) -> str:
    """TOML that turns off every source the shipped config enables, except `names`: a test's config
    then crawls only its local server, never the real platforms."""
    from murmur.config import load_settings

    others = [s.name for s in load_settings(environ={}).enabled_sources() if s.name not in names]
    return "".join(f"\n[sources.{name}]\nenabled = false\n" for name in others)


def run_murmur(*args: str, db_url: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process (a Scrapy reactor cannot restart inside pytest)."""
    return subprocess.run(
        [sys.executable, "-m", "murmur", *args],
        env=murmur_env(db_url, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
