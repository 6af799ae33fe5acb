"""The service's HTTP endpoint (config `service.http`): the dashboard at `/`, `/healthz` and Prometheus `/metrics`.

The dashboard's Starlette application (web/app.py) with the service's own health check and metrics registry,
served by uvicorn on a daemon thread (web/server.py): a slow request or scrape never blocks the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from murmur.web.server import WebServer, parse_address

if TYPE_CHECKING:
    from murmur.web.views import Context

__all__ = ["HealthServer", "parse_address"]


class HealthServer:
    """Serves `health()` at /healthz (200 when it says ok, else 503), `registry` at /metrics, and, given the
    database, the dashboard at / (guarded by `token` when one is set). Raises OSError when the port is taken."""

    def __init__(self, address: str, health: Callable[[], tuple[bool, dict[str, Any]]],
                 registry: CollectorRegistry, *, database_url: str | None = None, context: Context | None = None,
                 token: str | None = None) -> None:
        from murmur.web.app import create_app

        # Without a database (a bare health endpoint) the data views answer 503, as when the database is down.
        app = create_app(database_url or "postgresql:///", context=context, token=token, health=health,
                         registry=registry)
        self._web = WebServer(address, app)

    @property
    def url(self) -> str:
        return self._web.url

    def start(self) -> None:
        self._web.start()

    def stop(self) -> None:
        self._web.stop()
