"""Downloader middleware: honour `Retry-After` on 429 and 503 answers (and `RateLimit-Reset` on a 429
that has no Retry-After, as Bluesky sends)."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import NotConfigured

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response


def retry_after_seconds(value: bytes | str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3);
    None when absent or unreadable."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def rate_limit_reset_seconds(value: bytes | str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a RateLimit-Reset header: a Unix time (Bluesky's, per its rate-limit docs) or
    delta-seconds (the IETF RateLimit draft's); None when absent or unreadable."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    try:
        number = float(text)
    except ValueError:
        return None
    if number >= 1_000_000_000:  # a Unix time (2001 or later), not a number of seconds
        return max(0.0, number - (time.time() if now is None else now))
    return max(0.0, number)


class RetryAfterMiddleware:
    """On 429/503 with Retry-After, wait what the platform asked (capped), then retry.

    Scrapy's RetryMiddleware retries 429 at once, which is exactly what a rate-limited platform
    asks us not to do. This sits just before it (priority 560 > 550: process_response runs from
    high to low), so it sees the answer first; without the header it leaves it to Scrapy.
    """

    def __init__(self, crawler: Crawler, max_wait: float) -> None:
        self.crawler = crawler
        self.max_wait = max_wait

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        if not crawler.settings.getbool("RETRY_ENABLED"):
            raise NotConfigured("RETRY_ENABLED is off")
        return cls(crawler, crawler.settings.getfloat("MURMUR_RETRY_AFTER_MAX", 300.0))

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if response.status not in (429, 503) or request.meta.get("dont_retry"):
            return response
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        header = "Retry-After"
        if wait is None and response.status == 429:
            wait, header = rate_limit_reset_seconds(response.headers.get("RateLimit-Reset")), "RateLimit-Reset"
        if wait is None:
            return response
        spider = self.crawler.spider
        assert spider is not None, "a response before the spider opened"
        retry = get_retry_request(request, spider=spider, reason=f"{response.status} {header} {wait:g}s")
        if retry is None:
            return response  # out of retries: let the spider's errback count it
        self.crawler.stats.inc_value("murmur/retry_after/waits")
        # Scrapy's inc_value adds any number; its hint says int.
        self.crawler.stats.inc_value("murmur/retry_after/seconds", min(wait, self.max_wait))  # type: ignore[arg-type]
        logging.getLogger(__name__).info(
            "%s answered %d; waiting %.0fs as its %s asks", request.url, response.status,
            min(wait, self.max_wait), header,
        )
        # The asyncio reactor is murmur's setting (crawler/settings.py), so asyncio.sleep pauses this
        # request only; other requests and the item pipelines go on meanwhile.
        await asyncio.sleep(min(wait, self.max_wait))
        return retry
