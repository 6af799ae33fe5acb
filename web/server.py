"""Serving the dashboard: uvicorn on a socket bound up front (so a taken port is known before anything starts,
and port 0 tells which port it got), in the foreground (`murmur web`) or on a daemon thread (`murmur serve`).

Loopback by default; an address other machines can reach refuses to start without a token, since the
dashboard shows every stored post and the service's state."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from typing import TYPE_CHECKING

from murmur.errors import EXIT_USAGE, MurmurError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

logger = logging.getLogger(__name__)


class ListenError(MurmurError):
    """An address the dashboard will not listen on as configured."""

    exit_code = EXIT_USAGE


def parse_address(address: str) -> tuple[str, int]:
    """"127.0.0.1:9464" or "[::1]:9464" -> (host, port); raises ValueError."""
    import re

    match = re.match(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[\w.-]+)):(?P<port>\d{1,5})$", address.strip())
    if not match or int(match.group("port")) > 65535:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return match.group("v6") or match.group("host"), int(match.group("port"))


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` ("localhost" and 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_listen(address: str, token: str | None, *, key: str) -> tuple[str, int]:
    """(host, port) to listen on; refuses an address beyond loopback when no token is set. `key` names the
    setting or option the address came from, for the message."""
    try:
        host, port = parse_address(address)
    except ValueError:
        raise ListenError(f"{key} is {address!r}: use HOST:PORT, e.g. 127.0.0.1:9464") from None
    if not is_loopback(host) and not token:
        raise ListenError(f"{key} is {address!r}, which other machines can reach, and no token is set: set "
                          "MURMUR_SERVICE__TOKEN (e.g. to the output of `openssl rand -hex 24`) to serve the "
                          "dashboard there, or listen on 127.0.0.1")
    return host, port


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; raises OSError (errno EADDRINUSE when the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=128)
    sock.set_inheritable(False)
    return sock


class WebServer:
    """uvicorn serving `app` on `address` (bound at construction: OSError when it cannot be)."""

    def __init__(self, address: str, app: ASGIApp) -> None:
        import uvicorn

        host, port = parse_address(address)
        self.socket = bind(host, port)
        # log_config None: murmur's logging stays as it is; no access log (a URL can carry filters someone would
        # rather not see in a log, and the token never travels in one anyway); no Server header; headers bounded.
        config = uvicorn.Config(app, log_config=None, access_log=False, server_header=False, lifespan="off",
                                limit_concurrency=64, timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve(self) -> None:
        """In the foreground until SIGINT or SIGTERM (uvicorn handles both on the main thread)."""
        self.server.run(sockets=[self.socket])

    def start(self) -> None:
        """On a daemon thread: a slow request never blocks the scheduler."""
        self._thread = threading.Thread(target=self.serve, name="murmur-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.socket.close()
