"""`--database-name NAME`: another database on the configured or embedded server, and `--database`
kept as the spelled-out alias of `--database-url` it used to abbreviate."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from murmur.cli import build_parser, main
from murmur.store.db import with_database
from tests.conftest import run_murmur


def test_database_stays_an_alias_of_database_url_beside_database_name() -> None:
    parser = build_parser()
    args = parser.parse_args(["--database", "postgresql://h/x", "--database-name", "murmur_demo", "status"])
    assert args.database_url == "postgresql://h/x" and args.database_name == "murmur_demo"
    assert parser.parse_args(["--database-url", "postgresql://h/y", "status"]).database_url == "postgresql://h/y"


@pytest.mark.parametrize("name", ["", "x" * 64])
def test_a_database_name_postgresql_would_refuse_or_cut_is_a_usage_error(name: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--database-name", name, "status"])
    assert exit_.value.code == 2
    assert "is not a database name" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:p@db.example:5432/murmur?sslmode=require", "postgresql://u:p@db.example:5432/other?sslmode=require"),
    ("postgresql://postgres:@/murmur?host=/tmp/pg", "postgresql://postgres:@/other?host=/tmp/pg"),
    ("postgres://db.example", "postgres://db.example/other"),
])
def test_a_urls_database_is_replaced_and_the_rest_kept(url: str, expected: str) -> None:
    assert with_database(url, "other") == expected


def test_odd_database_names_survive_in_urls_and_key_value_strings() -> None:
    assert psycopg.conninfo.conninfo_to_dict(with_database("postgresql://h/a", "my db/ü"))["dbname"] == "my db/ü"
    kv = psycopg.conninfo.conninfo_to_dict(with_database("host=h dbname=a user=u", "b c"))
    assert kv == {"host": "h", "dbname": "b c", "user": "u"}


@pytest.fixture
def other_database(server_url: str) -> Iterator[str]:
    """A second database on the test server, as a user would have one beside murmur's."""
    name = f"murmur_other_{os.getpid()}"
    admin = psycopg.conninfo.make_conninfo(server_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_database_name_on_a_configured_server_uses_that_database(other_database: str, server_url: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", server_url, "--database-name", other_database, "status", "--format", "json"]) == 0
    capsys.readouterr()
    with psycopg.connect(with_database(server_url, other_database)) as conn:  # status migrated that database
        assert conn.execute("SELECT to_regclass('posts') IS NOT NULL").fetchone() == (True,)
    # the environment's URL too, as the demo's printed commands run it
    result = run_murmur("--database-name", other_database, "psql", "-tAc", "select current_database()",
                        db_url=server_url, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == other_database


def test_a_missing_database_on_a_configured_server_is_one_clear_line(server_url: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", server_url, "--database-name", "murmur_no_such_db", "status"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("murmur: error: cannot connect to PostgreSQL") and "murmur_no_such_db" in err
    assert "\n" not in err and "Traceback" not in err
