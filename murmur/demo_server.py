"""The demo's stand-in for a Mastodon instance: serves the recorded statuses shipped in
murmur/demo_data/ on 127.0.0.1, as much of the hashtag timeline as murmur's spider reads
(`limit`, `max_id`, `min_id`; https://docs.joinmastodon.org/methods/timelines/#tag).

    python -m murmur.demo_server --port 8731
    curl 'http://127.0.0.1:8731/api/v1/timelines/tag/rednote?limit=2'
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from murmur.crawler.parsers import id_key

Statuses = dict[str, list[dict[str, Any]]]
_TIMELINE = "/api/v1/timelines/tag/"


def load_recorded() -> Statuses:
    """The shipped demo data (murmur/demo_data/statuses.json): hashtag -> statuses, oldest first."""
    text = resources.files("murmur").joinpath("demo_data", "statuses.json").read_text(encoding="utf-8")
    data: Statuses = json.loads(text)
    return data


def timeline_page(newest_first: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One page: up to `limit` (20, at most 40) statuses older than max_id, newest first; with min_id,
    the ones just newer than it (Mastodon's paging, so walking forward skips nothing)."""
    first = {name: values[0] for name, values in query.items() if values and values[0]}
    limit = min(abs(int(first.get("limit", "20"))), 40)
    below = id_key(first["max_id"]) if "max_id" in first else None
    chosen = [s for s in newest_first if below is None or id_key(s["id"]) < below]
    if "min_id" in first:
        above = id_key(first["min_id"])
        return [s for s in chosen if id_key(s["id"]) > above][-limit:] if limit else []
    return chosen[:limit]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    timelines: dict[str, list[dict[str, Any]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # the name http.server dispatches to
        parts = urlsplit(self.path)
        tag = unquote(parts.path.removeprefix(_TIMELINE)).casefold()
        if not parts.path.startswith(_TIMELINE) or not tag or "/" in tag:
            self._send(404, {"error": "Record not found"})
            return
        try:
            page = timeline_page(self.server.timelines.get(tag, []), parse_qs(parts.query))
        except ValueError:
            self._send(400, {"error": "limit must be a number"})
            return
        self._send(200, page)

    def _send(self, status: int, data: object) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo prints its own progress, not a line per request."""


class DemoServer:
    """`statuses_by_tag` served on 127.0.0.1 while in a `with` block; `url` is its base URL."""

    def __init__(self, statuses_by_tag: Statuses, port: int = 0) -> None:
        self._httpd = _Server(("127.0.0.1", port), _Handler, bind_and_activate=False)
        self._httpd.timelines = {
            tag.casefold(): sorted(statuses, key=lambda s: id_key(str(s["id"])), reverse=True)
            for tag, statuses in statuses_by_tag.items()
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> DemoServer:
        self._httpd.server_bind()
        self._httpd.server_activate()
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    """``python -m murmur.demo_server [--port N]``: serve the demo data until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m murmur.demo_server",
        description="Serve murmur's recorded demo statuses like a Mastodon instance's tag timelines.",
        epilog="example: python -m murmur.demo_server --port 8731 "
        "then curl 'http://127.0.0.1:8731/api/v1/timelines/tag/rednote?limit=2'",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (default: any free)")
    data = load_recorded()
    with DemoServer(data, port=parser.parse_args(argv).port) as server:
        for tag in sorted(data):
            print(f"{server.url}{_TIMELINE}{tag}  ({len(data[tag])} statuses)", flush=True)
        print("press Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)


if __name__ == "__main__":
    main()
