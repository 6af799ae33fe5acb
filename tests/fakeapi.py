"""A small local HTTP server for spider tests: each test routes paths to handlers that answer from
recorded fixture files, so a real Scrapy crawl runs against something shaped like the platform.

    with FakeAPI() as api:
        api.route("/api/v3/search", lambda req: Reply.json(page_for(req.query)))
        ... crawl with base_url = api.url ...
        assert api.requests[0].query["q"] == ["RedNote"]

Bound to 127.0.0.1 on a free port; robots.txt allows everything unless `robots` is given.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter, or `default`."""
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, list[str]]:
        """The body as an application/x-www-form-urlencoded form."""
        return parse_qs(self.body.decode("utf-8"))

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        body = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def text(cls, text: str | bytes, status: int = 200, content_type: str = "text/plain; charset=utf-8",
             headers: dict[str, str] | None = None) -> Reply:
        body = text.encode("utf-8") if isinstance(text, str) else text
        return cls(status, body, {"Content-Type": content_type, **(headers or {})})


Handler = Callable[[Request], Reply]


class FakeAPI:
    """Routes (method, path) to handlers; unknown paths answer 404. Thread-safe request log."""

    def __init__(self, robots: str = "User-agent: *\nDisallow:\n") -> None:
        self.robots = robots
        self._routes: dict[tuple[str, str], Handler] = {}
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, path: str, handler: Handler, method: str = "GET") -> FakeAPI:
        self._routes[(method.upper(), path)] = handler
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Request]:
        """Requests received so far, robots.txt excluded."""
        with self._lock:
            return [r for r in self._requests if r.path != "/robots.txt"]

    def start(self) -> FakeAPI:
        if self._server is not None:
            return self
        api = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server dispatches to
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(method, parts.path, parse_qs(parts.query, keep_blank_values=True),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                with api._lock:
                    api._requests.append(request)
                reply = api._dispatch(request)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # tests read `requests`, not stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _dispatch(self, request: Request) -> Reply:
        if request.path == "/robots.txt":
            return Reply.text(self.robots)
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            return Reply.json({"error": "not found"}, status=404)
        return handler(request)
