"""The dashboard as a Starlette application: the page (static files shipped in this package), its JSON data
views with a CSV twin each, /healthz and /metrics.

Safe to put in front of attacker-written text and, with a token, in front of a network:
- every response carries CSP (below): scripts and styles from this origin only, no inline script, no eval,
  no frames; the page builds the DOM with textContent, so a post's text is never markup;
- read-only: GET and HEAD only, a request with a body is refused;
- with a token (`service.token`, MURMUR_SERVICE__TOKEN) every route but /healthz and the page's static files
  (the same bytes for everyone, no data) asks for it, as `Authorization: Bearer` or the cookie the page sets
  once the user types it; compared in constant time, never logged;
- query strings, lists, ranges, pages and result sizes bounded (web/params.py), a clear 400 beyond them.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import queue
from collections.abc import Callable
from datetime import date, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from murmur.web import views
from murmur.web.params import MAX_QUERY, BadRequest, parse_query

if TYPE_CHECKING:
    import psycopg
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# The policy every response carries (the README states it): nothing but this origin's files, no inline script or
# style element, no eval (uPlot needs none), no plugins, no frames around the page, forms only to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
TOKEN_COOKIE = "murmur_token"
OPEN_PATHS = ("/healthz",)  # answered without the token
PUBLIC_PREFIXES = ("/static/",)  # the page's own files: no data in them
PAGE_PATHS = ("/", "/index.html")  # the page shell: static too, and where the token is typed

Health = Callable[[], tuple[bool, dict[str, Any]]]


class Connections:
    """A few read-only connections kept for the request threads (opening one per request costs more than most
    views take). A connection that failed is dropped, not reused."""

    def __init__(self, database_url: str, keep: int = 4) -> None:
        self.database_url = database_url
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue(maxsize=keep)

    def get(self) -> psycopg.Connection:
        from murmur.store.web import connect_read_only

        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return connect_read_only(self.database_url)

    def put(self, conn: psycopg.Connection, *, failed: bool = False) -> None:
        if failed or conn.closed or conn.broken:
            conn.close()
            return
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _cell(value: Any) -> Any:
    """A CSV cell: lists joined, structures as JSON, and text that a spreadsheet would run as a formula
    (attacker-written: `=HYPERLINK(...)`) prefixed with a quote."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "; ".join(value)
    elif isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_response(view: str, table: views.Table) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_cell(row.get(c)) for c in table.columns])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="murmur-{view}.csv"'})


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=_json_default, allow_nan=False).encode()


def error(status: int, message: str) -> Response:
    return JSON({"error": message}, status_code=status)


# view name -> (needs the filters, function)
VIEWS: dict[str, Callable[..., views.Table]] = {
    "trend": lambda conn, q, ctx, params: views.trend(conn, q, ctx),
    "compare": lambda conn, q, ctx, params: views.trend(conn, q, ctx),
    "share": lambda conn, q, ctx, params: views.trend(conn, q, ctx, share=True),
    "cooccurrence": lambda conn, q, ctx, params: views.cooccurrence(conn, q, ctx),
    "languages": lambda conn, q, ctx, params: views.languages(conn, q, ctx),
    "top": lambda conn, q, ctx, params: views.top_posts(conn, q, ctx),
    "posts": lambda conn, q, ctx, params: views.bucket(conn, q, ctx, params),
    "alerts": lambda conn, q, ctx, params: views.alert_list(conn, q, ctx),
    "topics": lambda conn, q, ctx, params: views.topics(conn, q, ctx),
    "search": lambda conn, q, ctx, params: views.search(conn, q, ctx, params),
    "sources": lambda conn, q, ctx, params: views.source_health(conn),
    "options": lambda conn, q, ctx, params: views.options(conn, ctx),
}


class Guard:
    """ASGI middleware: security headers on every response, GET/HEAD only, bounded query strings, the token."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        refusal = self.refuse(scope)
        if refusal is not None:
            await refusal(scope, receive, secured)
            return
        await self.app(scope, receive, secured)

    def refuse(self, scope: Scope) -> Response | None:
        headers = dict(scope.get("headers") or [])
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse("read-only: GET and HEAD only\n", status_code=405, headers={"allow": "GET, HEAD"})
        if int(headers.get(b"content-length", b"0") or 0) > 0 or b"transfer-encoding" in headers:
            return PlainTextResponse("a request body is not taken here\n", status_code=400)
        if len(scope.get("query_string", b"")) > MAX_QUERY:
            return error(400, f"the query string is longer than {MAX_QUERY} characters")
        path = scope["path"]
        if self.token is None or path in OPEN_PATHS or path in PAGE_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        if self.authorized(headers):
            return None
        return JSON({"error": "this dashboard needs its token: send `Authorization: Bearer TOKEN`, or type it in "
                              "the page"}, status_code=401, headers={"www-authenticate": "Bearer"})

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self.token is not None
        given = b""
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        elif b"cookie" in headers:
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(headers[b"cookie"].decode("latin-1"))
            except Exception:  # a malformed cookie header is no token
                return False
            if TOKEN_COOKIE in cookie:
                given = unquote(cookie[TOKEN_COOKIE].value).encode("latin-1", "replace")  # the page encodes it
        return bool(given) and hmac.compare_digest(given, self.token)


def create_app(database_url: str, *, context: views.Context | None = None, token: str | None = None,
               health: Health | None = None, registry: CollectorRegistry | None = None) -> ASGIApp:
    """The dashboard over `database_url`; `health` and `registry` are the service's (/healthz, /metrics) when
    `murmur serve` runs it, else a database check and the dashboard's own request counts."""
    ctx = context or views.Context()
    pool = Connections(database_url)
    own_registry = registry is None
    registry = registry or CollectorRegistry()
    requests = Counter("murmur_web_requests", "Dashboard data requests, by view and HTTP status",
                       ["view", "status"], registry=registry) if own_registry else None

    def check_database() -> tuple[bool, dict[str, Any]]:
        from murmur.store.web import ping

        try:
            conn = pool.get()
        except Exception as err:  # any failure to answer is "unhealthy", never an error page
            return False, {"status": "unavailable", "database": str(err).splitlines()[0] if str(err) else "down"}
        try:
            ping(conn)
        except Exception as err:
            pool.put(conn, failed=True)
            return False, {"status": "unavailable", "database": str(err).splitlines()[0] if str(err) else "down"}
        pool.put(conn)
        return True, {"status": "ok", "database": "ok", "scheduler": "none (murmur web)"}

    def healthz(request: Request) -> Response:
        ok, body = (health or check_database)()
        return JSON(body, status_code=200 if ok else 503, headers={"cache-control": "no-store"})

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST,
                        headers={"cache-control": "no-store"})

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"cache-control": "no-store"})

    def data(request: Request) -> Response:
        name = request.path_params["view"]
        as_csv = name.endswith(".csv") or request.query_params.get("format") == "csv"
        name = name.removesuffix(".csv")
        response = answer(name, request, as_csv)
        if requests is not None and name in VIEWS:
            requests.labels(name, str(response.status_code)).inc()
        response.headers["cache-control"] = "no-store"
        return response

    def answer(name: str, request: Request, as_csv: bool) -> Response:
        if name not in VIEWS:
            return error(404, f"no view {name[:40]!r}; views: {', '.join(VIEWS)}")
        params = {k: request.query_params.getlist(k) for k in request.query_params}
        params.pop("format", None)
        try:
            q = parse_query(params)
        except BadRequest as err:
            return error(400, str(err))
        try:
            conn = pool.get()
        except Exception as err:
            logger.warning("dashboard: the database did not answer: %s", err)
            return error(503, "the database did not answer; see the server's log")
        failed = False
        try:
            table = VIEWS[name](conn, q, ctx, params)
        except BadRequest as err:
            return error(400, str(err))
        except Exception as err:
            failed = True
            logger.exception("dashboard view %s failed", name)
            return error(500, f"the {name} view failed ({type(err).__name__}); see the server's log")
        finally:
            pool.put(conn, failed=failed or conn.broken)
        return csv_response(name, table) if as_csv else JSON(table.as_json(name))

    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/index.html", page, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/api/{view}", data, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.connections = pool
    return Guard(app, token)
