"""A local Jetstream for tests and bench/stream.py: a real websocket server (the `websockets` library) on
127.0.0.1 that serves given frames to every client of `/subscribe`.

    with FakeJetstream([create_frame(...), "not json", ...]) as server:
        ... [sources.jetstream] instances = [server.url] ...
        assert server.cursors() == [None, 1736900000000000]

- Each connection gets the frames from the first one whose `time_us` is at or after its `cursor`
  parameter (as Jetstream replays; without a cursor, from the first frame), then every frame `add`ed
  later, paced at `rate` frames a second (None: as fast as the socket takes them). It stays open after
  the last frame, like the live tail, until the client leaves or the server stops.
- `connections` records each connection's query string, in order; `cursors()` its `cursor` values.
- `drop_after=N`: the first connection is cut after N frames, in the middle of the next message (half a
  frame, then the TCP connection aborted), as a dying server would.
- Frames are served as given: a dict is sent as JSON, a str or bytes verbatim (so malformed frames too).

The frame helpers (`create_frame`, `update_frame`, `delete_frame`, `identity_frame`, `account_frame`) build
events of the documented shape (tests/fixtures/jetstream/README.md says where the shape comes from).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeJetstream", "account_frame", "create_frame", "delete_frame", "identity_frame", "update_frame"]

Frame = str | bytes | dict[str, Any]


class FakeJetstream:
    """See the module docstring; `url` is "ws://127.0.0.1:<port>" once started (as a context manager)."""

    def __init__(self, frames: Iterable[Frame] = (), *, rate: float | None = None,
                 drop_after: int | None = None) -> None:
        self.rate = rate
        self.drop_after = drop_after
        self.connections: list[str] = []
        self.sent = 0  # frames sent, over all connections
        self._frames: list[str | bytes] = []
        self._times: list[int] = []  # time_us of each frame (a frame without one: the one before's)
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self.url = ""
        self.add(frames)

    # --- the frames ---

    def add(self, frames: Iterable[Frame]) -> None:
        """Append frames; connected clients get them too."""
        for frame in frames:
            if isinstance(frame, dict):
                frame = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
            self._frames.append(frame)
            self._times.append(_time_us(frame, self._times[-1] if self._times else 0))
        if self._loop is not None and self._changed is not None:
            asyncio.run_coroutine_threadsafe(self._notify(), self._loop).result(timeout=5)

    def cursors(self) -> list[int | None]:
        """The `cursor` parameter of each connection (None: live), in order."""
        found = []
        for query in self.connections:
            values = parse_qs(query).get("cursor")
            found.append(int(values[0]) if values else None)
        return found

    # --- lifecycle ---

    def __enter__(self) -> FakeJetstream:
        self._thread = threading.Thread(target=self._run, name="fake-jetstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Jetstream did not start")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    # --- the server (its own thread and event loop) ---

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._stopped = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, process_request=_only_subscribe, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            self._ready.set()
            await self._stopped.wait()
            server.close(close_connections=True)

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        query = urlsplit(ws.request.path).query
        self.connections.append(query)
        first_connection = len(self.connections) == 1
        cursor = parse_qs(query).get("cursor")
        at = 0
        if cursor:
            wanted = int(cursor[0])
            at = next((i for i, t in enumerate(self._times) if t >= wanted), len(self._times))
        started, sent_here = time.monotonic(), 0
        assert self._changed is not None
        try:
            while True:
                while at >= len(self._frames):  # the live tail: wait for frames `add`ed later
                    if self._stopped is not None and self._stopped.is_set() or ws.state.name == "CLOSED":
                        return
                    async with self._changed:
                        try:
                            await asyncio.wait_for(self._changed.wait(), 0.2)
                        except TimeoutError:
                            pass
                if first_connection and self.drop_after is not None and sent_here >= self.drop_after:
                    _cut_mid_message(ws)
                    return
                if self.rate:
                    ahead = started + sent_here / self.rate - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                await ws.send(self._frames[at])
                at += 1
                sent_here += 1
                self.sent += 1
        except ConnectionClosed:
            return


def _only_subscribe(connection: Any, request: Any) -> Any:
    if urlsplit(request.path).path != "/subscribe":
        return connection.respond(HTTPStatus.NOT_FOUND, "not found: Jetstream serves /subscribe\n")
    return None


def _cut_mid_message(ws: Any) -> None:
    """Half of a text frame announcing 1000 bytes (RFC 6455 5.2: FIN + text, 16-bit length), then the TCP
    connection aborted: the client sees a message end in the middle."""
    ws.transport.write(bytes([0x81, 126, 0x03, 0xE8]) + b'{"did":"did:plc:cut","time_us":')
    ws.transport.abort()


def _time_us(frame: str | bytes, previous: int) -> int:
    try:
        value = json.loads(frame).get("time_us")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return previous
    return value if isinstance(value, int) else previous


# --- frames of the documented shape ---------------------------------------------------------------------


def create_frame(did: str, rkey: str, text: str, time_us: int, *, created_at: str | None = None,
                 langs: Sequence[str] = ("en",), reply: tuple[str, str] | None = None,
                 operation: str = "create", collection: str = "app.bsky.feed.post") -> dict[str, Any]:
    """A commit creating (or, with operation="update", replacing) a post; `reply` = (parent, root) at:// URIs."""
    from datetime import UTC, datetime

    when = created_at or datetime.fromtimestamp(time_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    record: dict[str, Any] = {"$type": collection, "createdAt": when, "langs": list(langs), "text": text}
    if reply is not None:
        record["reply"] = {"parent": {"cid": "bafyreiparent", "uri": reply[0]},
                           "root": {"cid": "bafyreiroot", "uri": reply[1]}}
    return {"did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": f"3l{rkey[:8]}rev", "operation": operation, "collection": collection, "rkey": rkey,
                       "record": record, "cid": f"bafyrei{rkey}"}}


def update_frame(did: str, rkey: str, text: str, time_us: int, **kwargs: Any) -> dict[str, Any]:
    return create_frame(did, rkey, text, time_us, operation="update", **kwargs)


def delete_frame(did: str, rkey: str, time_us: int) -> dict[str, Any]:
    return {"did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": f"3l{rkey[:8]}del", "operation": "delete", "collection": "app.bsky.feed.post",
                       "rkey": rkey}}


def identity_frame(did: str, handle: str, time_us: int) -> dict[str, Any]:
    return {"did": did, "time_us": time_us, "kind": "identity",
            "identity": {"did": did, "handle": handle, "seq": 1409752997, "time": "2024-09-05T06:11:04.870Z"}}


def account_frame(did: str, time_us: int, *, active: bool = True) -> dict[str, Any]:
    return {"did": did, "time_us": time_us, "kind": "account",
            "account": {"active": active, "did": did, "seq": 1409753013, "time": "2024-09-05T06:11:04.870Z"}}
