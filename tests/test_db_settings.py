"""The embedded server's memory settings (store/db.py server_settings): murmur.conf in its data directory,
included from postgresql.conf, read at each start."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from murmur.store.db import SETTINGS_FILE, machine_memory, server_settings, write_server_settings

GIB = 2**30


@pytest.mark.parametrize(("memory", "shared", "cache", "maintenance"), [
    (24 * GIB, "6144MB", "12288MB", "1536MB"),   # a quarter, a half, a sixteenth
    (2 * GIB, "512MB", "1024MB", "128MB"),
    (256 * 2**20, "128MB", "256MB", "64MB"),     # never under PostgreSQL's own defaults
    (128 * GIB, "8192MB", "65536MB", "2048MB"),  # shared buffers and maintenance memory capped
])
def test_settings_follow_the_machines_memory(memory: int, shared: str, cache: str, maintenance: str) -> None:
    assert server_settings(memory) == {"shared_buffers": shared, "effective_cache_size": cache,
                                       "maintenance_work_mem": maintenance}


def test_the_settings_file_is_written_and_included_once(tmp_path: Path) -> None:
    conf = tmp_path / "postgresql.conf"
    conf.write_text("max_connections = 100\n")
    write_server_settings(tmp_path, 8 * GIB)
    write_server_settings(tmp_path, 8 * GIB)
    assert conf.read_text().count(SETTINGS_FILE) == 1
    assert conf.read_text().startswith("max_connections = 100\n")  # the rest of the file is kept
    written = (tmp_path / SETTINGS_FILE).read_text()
    assert "shared_buffers = '2048MB'" in written and "ALTER SYSTEM" in written
    write_server_settings(tmp_path, 16 * GIB)  # another machine (a copied data directory): rewritten
    assert "shared_buffers = '4096MB'" in (tmp_path / SETTINGS_FILE).read_text()


@pytest.mark.skipif(bool(os.environ.get("MURMUR_TEST_DATABASE_URL")),
                    reason="a server of the user's own keeps its own settings")
def test_the_embedded_server_runs_with_them(server_url: str) -> None:
    expected = server_settings(machine_memory())
    with psycopg.connect(server_url) as conn:
        for name, value in expected.items():
            row = conn.execute("SELECT setting::bigint * (CASE unit WHEN '8kB' THEN 8192 WHEN 'kB' THEN 1024 END)"
                               " FROM pg_settings WHERE name = %s", (name,)).fetchone()
            assert row is not None and row[0] == int(value.removesuffix("MB")) * 2**20, name
