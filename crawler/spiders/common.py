"""What every spider shares: reading list arguments, and naming why a request failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TCPTimedOutError, TimeoutError

if TYPE_CHECKING:
    from twisted.python.failure import Failure


def describe_failure(failure: Failure) -> tuple[str, str]:
    """(stats kind, one-line reason) for a failed request."""
    if failure.check(HttpError):
        status = failure.value.response.status
        return f"http_{status}", f"HTTP {status}"
    if failure.check(DNSLookupError, CannotResolveHostError):
        return "dns", "DNS lookup failed (no network, or a wrong host name)"
    if failure.check(ConnectionRefusedError, DownloadConnectionRefusedError):
        return "refused", "connection refused"
    if failure.check(TimeoutError, TCPTimedOutError, DownloadTimeoutError):
        return "timeout", "timed out"
    if failure.check(IgnoreRequest):
        return "ignored", failure.getErrorMessage() or "request ignored"
    name = type(failure.value).__name__
    return name.lower(), f"{name}: {failure.getErrorMessage()}".strip().rstrip(":")


def as_list(value: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """A list from a config list or a comma-separated `-a name=a,b` spider argument."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)
