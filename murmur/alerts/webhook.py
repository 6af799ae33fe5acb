"""POSTing JSON to a webhook: a timeout per attempt, retries with exponential backoff."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from murmur import __version__

# A 4xx says the request itself is refused, so sending it again changes nothing; these few say "later".
RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class PostResult:
    ok: bool
    attempts: int
    last: str  # what the last attempt got: "HTTP 204", "HTTP 503", "timed out", "[Errno 111] ..."


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 1.0,
    wait: Callable[[float], bool] = _sleep,
) -> PostResult:
    """POST `payload` until a 2xx answer, at most `retries` times more after the first, waiting
    `backoff`, 2 x `backoff`, 4 x ... seconds in between. `wait(seconds)` returns True to give up
    early (the service stopping). Never raises for what the network or the server does."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": f"murmur/{__version__} (alerts)"}
    last = "not sent"
    for attempt in range(retries + 1):
        if attempt and wait(backoff * 2 ** (attempt - 1)):
            return PostResult(False, attempt, f"{last}; stopped before retrying")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(65536)
                return PostResult(True, attempt + 1, f"HTTP {response.status}")
        except urllib.error.HTTPError as err:
            err.close()
            last = f"HTTP {err.code}"
            if 400 <= err.code < 500 and err.code not in RETRYABLE_4XX:
                return PostResult(False, attempt + 1, last)
        except (urllib.error.URLError, OSError, ValueError) as err:  # refused, unreachable, timed out
            last = str(getattr(err, "reason", err)) or type(err).__name__
    return PostResult(False, retries + 1, last)


def safe_url(url: str) -> str:
    """The URL's scheme and host only: webhook paths and queries often hold the secret token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"
