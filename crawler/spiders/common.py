"""What every spider shares: reading list arguments, and what a failed request was and why it failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TCPTimedOutError, TimeoutError

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.http import Response
    from twisted.python.failure import Failure


def failed_request(failure: Failure) -> Request:
    """The request an errback's failure is about: Scrapy sets `failure.request` before it calls the errback."""
    # Twisted's Failure does not declare the attribute Scrapy adds at run time.
    request: Request = failure.request  # type: ignore[attr-defined]
    return request


def error_response(failure: Failure) -> Response | None:
    """The answer of a request that failed on its HTTP status (Scrapy's HttpError); None when no answer came."""
    error = failure.value
    return error.response if isinstance(error, HttpError) else None


def error_status(failure: Failure) -> int | None:
    """The HTTP status of a request that failed on it (Scrapy's HttpError); None for any other failure."""
    response = error_response(failure)
    return None if response is None else response.status


def header_text(response: Response, name: str) -> str:
    """A response header's (last) value as text; "" when it is absent."""
    return (response.headers.get(name) or b"").decode("latin-1")


def describe_failure(failure: Failure) -> tuple[str, str]:
    """(stats kind, one-line reason) for a failed request."""
    status = error_status(failure)
    if status is not None:
        return f"http_{status}", f"HTTP {status}"
    if failure.check(DNSLookupError, CannotResolveHostError):
        return "dns", "DNS lookup failed (no network, or a wrong host name)"
    if failure.check(ConnectionRefusedError, DownloadConnectionRefusedError):
        return "refused", "connection refused"
    if failure.check(TimeoutError, TCPTimedOutError, DownloadTimeoutError):
        return "timeout", "timed out"
    if failure.check(DownloadCancelledError, CancelledError) or (
        failure.check(IgnoreRequest) and "DOWNLOAD_MAXSIZE" in failure.getErrorMessage()
    ):
        # Scrapy cancels a download past DOWNLOAD_MAXSIZE (crawler/registry.py sets it per source), and
        # HttpCompressionMiddleware ignores a body that inflates past it.
        return "oversized", "answer larger than the size limit (DOWNLOAD_MAXSIZE)"
    if failure.check(IgnoreRequest):
        return "ignored", failure.getErrorMessage() or "request ignored"
    name = type(failure.value).__name__
    return name.lower(), f"{name}: {failure.getErrorMessage()}".strip().rstrip(":")


UNREACHABLE = ("dns", "refused", "timeout")  # kinds that mean no server answered at all


def failure_class(kind: str) -> str:
    """What a failure kind says about the run: unreachable (no answer), refused (HTTP 4xx), oversized,
    malformed, or other (5xx after retries, robots.txt, anything else)."""
    if kind in UNREACHABLE:
        return "unreachable"
    if kind.startswith("http_4"):
        return "refused"
    if kind in ("oversized", "malformed"):
        return kind
    return "other"


def as_list(value: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """A list from a config list or a comma-separated `-a name=a,b` spider argument."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def as_bool(value: bool | str) -> bool:
    """A config boolean, or a `-a name=value` spider argument string: 1, true and yes (any case) are true."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")
