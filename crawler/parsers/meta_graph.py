"""The Meta Graph API's shared shapes (graph.facebook.com and graph.threads.net alike): the error
envelope, a ``{"data": [...], "paging": ...}`` page of entries, and Graph timestamps. Used by the
Instagram and Threads parsers.

Shapes: https://developers.facebook.com/docs/graph-api/guides/error-handling (``{"error": {"message",
"type", "code", "error_subcode", "fbtrace_id"}}``) and https://developers.facebook.com/docs/graph-api/results
(cursor paging). Pure functions only: no network, no Scrapy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers import ParseError, first_of_each, json_object, load_json

__all__ = [
    "GraphError",
    "GraphPage",
    "graph_int",
    "graph_paging",
    "graph_time",
    "load_graph_object",
    "parse_graph_error",
    "parse_graph_page",
]

# Error codes after which every further request with the same token fails too
# (https://developers.facebook.com/docs/graph-api/guides/error-handling): the token (102, 190), a
# permission or feature the app lacks (3, 10, 200-299), throttling (4, 17, 32, 341, 613), a block (368),
# and Instagram's business-use-case rate limits (80001-80014).
_TOKEN_CODES = {102, 190}
_PERMISSION_CODES = {3, 10, *range(200, 300)}
_RATE_CODES = {4, 17, 32, 341, 613, *range(80001, 80015)}
_BLOCKED_CODES = {368}


@dataclass(frozen=True)
class GraphError:
    """``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``."""

    message: str
    type: str | None = None  # OAuthException, GraphMethodException, IGApiException, ...
    code: int | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None

    @property
    def kind(self) -> str | None:
        """"token", "permission", "rate" or "blocked" when no further request can succeed this run; else None."""
        if self.code in _TOKEN_CODES:
            return "token"
        if self.code in _PERMISSION_CODES:
            return "permission"
        if self.code in _RATE_CODES:
            return "rate"
        if self.code in _BLOCKED_CODES:
            return "blocked"
        return None

    def describe(self) -> str:
        """One line for a log: the API's own message, with its type and codes."""
        codes = ", ".join(
            part for part in (self.type, f"code {self.code}" if self.code is not None else None,
                              f"subcode {self.subcode}" if self.subcode is not None else None) if part
        )
        return f"{self.message} ({codes})" if codes else self.message


@dataclass
class GraphPage:
    """One page of a Graph API edge, parsed: posts, and the cursor to ask for the next page with.

    ``after`` is None on the last page (Graph leaves ``paging.next`` out there). ``newest`` is the
    latest ``timestamp`` on the page, skipped entries included, as Unix seconds.
    """

    posts: list[Post]
    after: str | None
    newest: int | None
    entries: int = 0  # every entry in ``data``, skipped ones too
    skipped: int = 0  # entries without an id or a readable timestamp


def load_graph_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; ParseError when it is empty, HTML, truncated or not an object."""
    return json_object(load_json(body))


def parse_graph_error(body: bytes, status: int | None = None) -> GraphError:
    """The error a Graph API answered with; a body that is not the error envelope gives the HTTP status."""
    try:
        data = load_graph_object(body)
    except ParseError:
        data = {}
    error = data.get("error")
    if not isinstance(error, dict):
        return GraphError(message=f"HTTP {status}" if status else "unreadable error body")
    message = error.get("message")
    return GraphError(
        message=message.strip() if isinstance(message, str) and message.strip() else f"HTTP {status}",
        type=error.get("type") if isinstance(error.get("type"), str) else None,
        code=graph_int(error.get("code")),
        subcode=graph_int(error.get("error_subcode")),
        fbtrace_id=error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None,
    )


def graph_time(value: Any) -> datetime | None:
    """A Graph timestamp (ISO 8601 with a ``+0000`` offset, "2023-10-17T05:42:03+0000") -> tz-aware UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(text, pattern).astimezone(UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def graph_paging(data: dict[str, Any]) -> str | None:
    """The ``after`` cursor of a Graph page, when there is a next page (``paging.next`` present).

    The ``next`` URL itself is never followed: Graph writes the access token into it.
    """
    paging = data.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


def graph_entries(body: bytes) -> tuple[dict[str, Any], list[Any]]:
    """The body's object and its ``data`` list; ParseError for an error envelope or another shape."""
    data = load_graph_object(body)
    if "error" in data:
        raise ParseError(f"server returned an error: {parse_graph_error(body).describe()[:200]}")
    entries = data.get("data")
    if not isinstance(entries, list):
        raise ParseError("expected a json object with a 'data' list")
    return data, entries


def parse_graph_page(body: bytes, to_post: Callable[[Any, datetime], Post | None]) -> GraphPage:
    """A page of media entries -> one post per entry `to_post` makes one of, each id once.

    Raises ParseError when the body is not ``{"data": [...]}``; an entry without a readable ``timestamp``,
    or one `to_post` returns None for, is skipped and counted.
    """
    data, entries = graph_entries(body)
    times = [graph_time(entry.get("timestamp")) if isinstance(entry, dict) else None for entry in entries]
    posts, skipped = first_of_each(
        to_post(entry, created) if created is not None else None for entry, created in zip(entries, times, strict=True)
    )
    newest = max((int(created.timestamp()) for created in times if created is not None), default=None)
    return GraphPage(posts=posts, after=graph_paging(data), newest=newest, entries=len(entries), skipped=skipped)


def graph_int(value: Any) -> int | None:
    """An integer field (a count, an error code), also when sent as a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
