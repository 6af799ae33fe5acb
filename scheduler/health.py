"""The service's optional HTTP endpoint (config `service.http`): `/healthz` and Prometheus `/metrics`.

A standard-library threading server on its own daemon thread: two read-only routes need no
framework, and a slow scrape never blocks the scheduler.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[\w.-]+)):(?P<port>\d{1,5})$")


def parse_address(address: str) -> tuple[str, int]:
    """"127.0.0.1:9464" or "[::1]:9464" -> (host, port); raises ValueError."""
    match = _ADDRESS.match(address.strip())
    if not match or int(match.group("port")) > 65535:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return match.group("v6") or match.group("host"), int(match.group("port"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _v6_server() -> type[_Server]:
    class V6(_Server):
        address_family = socket.AF_INET6

    return V6


class HealthServer:
    """Serves `health()` at /healthz (200 when it says ok, else 503) and `registry` at /metrics."""

    def __init__(self, address: str, health: Callable[[], tuple[bool, dict[str, Any]]],
                 registry: CollectorRegistry) -> None:
        host, port = parse_address(address)

        class Handler(BaseHTTPRequestHandler):
            server_version = "murmur"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, body = health()
                    self._send(200 if ok else 503, "application/json", json.dumps(body, default=str).encode())
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found; try /healthz or /metrics\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("http: " + format, *args)

        server_class = _v6_server() if ":" in host else _Server
        self.server = server_class((host, port), Handler)  # raises OSError when the port is taken
        self._thread = threading.Thread(target=self.server.serve_forever, name="murmur-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
