"""The one local HTTP server for tests and benchmarks: each test routes paths to handlers that answer
from recorded fixture files, so a real Scrapy crawl runs against something shaped like the platform.

    with FakeAPI() as api:
        api.route("/api/v3/search", lambda req: Reply.json(page_for(req.query)))
        api.add_fault("/api/v3/search", "429", times=2)
        ... crawl with base_url = api.url ...
        assert api.requests[0].query["q"] == ["RedNote"]

Bound to 127.0.0.1 on a free port; robots.txt allows everything unless `robots` is given. A platform
with paths that a fixed route cannot name (tests/fakemastodon.py) answers through `fallback`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = frozenset({"500", "429", "truncated", "garbage"})

_GARBAGE_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    target: str = ""  # the request target as sent: path and query

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


@dataclass
class _Fault:
    target_prefix: str
    kind: str
    remaining: int
    retry_after: int


def _faulty(fault: _Fault, reply: Reply) -> Reply:
    """What a struggling platform answers instead of `reply`."""
    if fault.kind == "500":
        return Reply.json(b'{"error":"Internal Server Error"}', status=500)
    if fault.kind == "429":
        # A rate-limit answer with Retry-After, which polite clients (Scrapy's retry, our throttle) honour,
        # and the X-RateLimit-* headers Mastodon and Reddit send (Mastodon: config/initializers/rack_attack.rb).
        reset = datetime.now(UTC) + timedelta(seconds=fault.retry_after)
        return Reply.json(b'{"error":"Too many requests"}', status=429, headers={
            "Retry-After": str(fault.retry_after),
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        })
    if fault.kind == "truncated":
        return Reply(200, reply.body[: len(reply.body) // 2], reply.headers)
    return Reply.text(_GARBAGE_HTML, content_type="text/html; charset=utf-8")


class FakeAPI:
    """Routes (method, path) to handlers; other paths go to `fallback` (default: 404). Thread-safe
    request log and fault queue, so tests may change it while a crawl runs in another thread."""

    def __init__(self, robots: str = "User-agent: *\nDisallow:\n", fallback: Handler | None = None) -> None:
        self.robots = robots
        self._fallback = fallback
        self._routes: dict[tuple[str, str], Handler] = {}
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, path: str, handler: Handler, method: str = "GET") -> FakeAPI:
        self._routes[(method.upper(), path)] = handler
        return self

    def add_fault(self, target_prefix: str, kind: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` requests whose target (path and query) starts with `target_prefix`
        with a fault, then serve normally again.

        kind: "500"; "429" (with `Retry-After: retry_after`); "truncated" (200, the real body cut in
        half); "garbage" (200, an HTML error page).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(sorted(FAULT_KINDS))}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self._lock:
            self._faults.append(_Fault(target_prefix, kind, times, retry_after))

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8731`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the fake server is not running; call start() or use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def requests(self) -> list[Request]:
        """Requests received so far, robots.txt excluded."""
        return [r for r in self.received if r.path != "/robots.txt"]

    @property
    def received(self) -> list[Request]:
        """Every request received so far, robots.txt included, oldest first; a copy."""
        with self._lock:
            return list(self._requests)

    def start(self) -> FakeAPI:
        """Bind and serve in a daemon thread; calling it on a running server does nothing."""
        if self._server is not None:
            return self
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so a benchmark measures the crawler, not TCP set-up

            def do_GET(self) -> None:  # the name http.server dispatches to
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(method, parts.path, parse_qs(parts.query, keep_blank_values=True),
                                  {k.lower(): v for k, v in self.headers.items()}, body, self.path)
                reply = api._respond(request)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # tests read `requests`, not stderr

        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        self._server = server
        # A short poll interval makes stop() (shutdown waits for the next poll) near instant.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _respond(self, request: Request) -> Reply:
        with self._lock:
            self._requests.append(request)
            fault = self._take_fault(request.target)
        reply = self._dispatch(request)  # also when faulted: "truncated" cuts the real body
        return reply if fault is None else _faulty(fault, reply)

    def _take_fault(self, target: str) -> _Fault | None:
        for fault in self._faults:
            if target.startswith(fault.target_prefix):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _dispatch(self, request: Request) -> Reply:
        if request.path == "/robots.txt":
            return Reply.text(self.robots)
        handler = self._routes.get((request.method, request.path))
        if handler is not None:
            return handler(request)
        if self._fallback is not None:
            return self._fallback(request)
        return Reply.json({"error": "not found"}, status=404)
