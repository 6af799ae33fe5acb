"""RSS and Atom feeds: every URL in `sources.rss.feeds`, one request per feed and run. Builds requests
and remembers validators; what a feed means is `murmur.crawler.parsers.rss.parse_feed`.

Any feed works, so RSSHub routes (https://docs.rsshub.app) turn Xiaohongshu, TikTok, Threads,
Instagram or Weibo accounts into sources with no code: list e.g.
https://rsshub.app/xiaohongshu/user/<id>/notes.

Incremental: the feed's ETag and Last-Modified are the cursor (one per feed URL), sent back as
If-None-Match / If-Modified-Since (RFC 9110 13.1); a 304 means nothing new. Feeds without
validators are fetched whole, and the upsert on (source, source_id) keeps each entry once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import scrapy

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.rss import parse_feed
from murmur.crawler.spiders.base import MurmurSpider
from murmur.crawler.spiders.common import as_list, error_status, failed_request, header_text

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

# Feeds first; a server that cannot serve them may still send its generic XML or anything.
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, application/xml;q=0.8, "
    "text/xml;q=0.8, */*;q=0.5"
)


def validators(cursor: str | None) -> dict[str, str]:
    """The stored cursor of a feed -> conditional request headers (If-None-Match, If-Modified-Since)."""
    if not cursor:
        return {}
    try:
        stored = json.loads(cursor)
    except ValueError:
        return {}
    if not isinstance(stored, dict):
        return {}
    headers = {}
    if isinstance(stored.get("etag"), str) and stored["etag"]:
        headers["If-None-Match"] = stored["etag"]
    if isinstance(stored.get("last_modified"), str) and stored["last_modified"]:
        headers["If-Modified-Since"] = stored["last_modified"]
    return headers


class RssSpider(MurmurSpider):
    name = "rss"
    config_keys = ("feeds",)

    def __init__(self, feeds: list[str] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl rss -a feeds=https://a/feed.xml,https://b/atom` passes a string.
        self.feeds = list(dict.fromkeys(as_list(feeds)))
        # For the runner (crawler/runner.py `_outcome`): the feeds asked for, and why any failed.
        self.instances = list(self.feeds)
        self.failures: dict[str, str] = {}

    async def start(self) -> AsyncIterator[Any]:
        if not self.feeds:
            self.failures["feeds"] = "no feeds configured; list feed URLs in sources.rss.feeds"
            logger.error("rss: no feeds configured; list feed URLs in sources.rss.feeds")
            return
        cursors = self.stored_cursors()
        for url in self.feeds:
            yield scrapy.Request(
                url,
                headers={"Accept": ACCEPT, **validators(cursors.get(url))},
                callback=self.parse,
                errback=self.failed,
                # 304 Not Modified is an answer, not an error.
                meta={"feed": url, "handle_httpstatus_list": [304]},
            )

    def parse(self, response: Response) -> Iterator[Any]:
        url = response.meta["feed"]
        stats = self.crawler.stats
        if response.status == 304:
            stats.inc_value("murmur/feeds/not_modified")
            return
        headers = {
            name: header_text(response, name)
            for name in ("Content-Type", "Content-Language")
            if response.headers.get(name)
        }
        try:
            result = parse_feed(response.body, feed_url=url, fetched_at=datetime.now(UTC), headers=headers)
        except ParseError as err:
            stats.inc_value("murmur/errors/malformed")
            self.failures.setdefault(url, f"not a feed ({err})")
            logger.warning("rss: skipped %s: %s", url, err)
            return
        self.query_results["ok"] += 1
        self.count_page(len(result.posts), result.skipped)
        yield from result.posts
        # After the posts, so the store commits them first: the next run asks "anything newer?".
        cursor = {
            "etag": header_text(response, "ETag") or None,
            "last_modified": header_text(response, "Last-Modified") or None,
        }
        yield CursorUpdate(self.name, url, json.dumps(cursor, sort_keys=True))

    def failed(self, failure: Failure) -> None:
        request = failed_request(failure)
        url = request.meta.get("feed", request.url)
        kind, reason = self.count_failure(failure)
        status = error_status(failure)
        if status in (401, 403):
            # Per feed, not per source: one feed's host refusing us says nothing about the others.
            reason = f"{reason}, forbidden (a login wall, or the host blocks crawlers)"
            logger.error("rss: %s refused access (%s); check the URL in a browser or remove it from "
                         "sources.rss.feeds", url, status)
        self.failures.setdefault(url, reason)

    def closed(self, reason: str) -> None:
        if self.failures and self.feeds:
            listed = "; ".join(f"{url}: {why}" for url, why in sorted(self.failures.items()))
            logger.warning(
                "rss: %d of %d feeds could not be read (%s); will retry at the next run",
                len(self.failures), len(self.feeds), listed,
            )
