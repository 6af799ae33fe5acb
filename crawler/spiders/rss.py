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
from scrapy.spidermiddlewares.httperror import HttpError

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.rss import parse_feed
from murmur.crawler.pipelines import database_url, murmur_settings
from murmur.crawler.spiders.common import as_list, describe_failure

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
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


class RssSpider(scrapy.Spider):
    name = "rss"

    def __init__(self, feeds: list[str] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl rss -a feeds=https://a/feed.xml,https://b/atom` passes a string.
        self.feeds = list(dict.fromkeys(as_list(feeds)))
        # For the runner (crawler/runner.py `_outcome`): the feeds asked for, and why any failed.
        self.instances = list(self.feeds)
        self.failures: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> RssSpider:
        source = murmur_settings(crawler).sources.get("rss")
        if source is not None:
            kwargs.setdefault("feeds", list(source.feeds))
        return super().from_crawler(crawler, *args, **kwargs)

    async def start(self) -> AsyncIterator[Any]:
        if not self.feeds:
            self.failures["feeds"] = "no feeds configured; list feed URLs in sources.rss.feeds"
            logger.error("rss: no feeds configured; list feed URLs in sources.rss.feeds")
            return
        cursors = self._stored_cursors()
        for url in self.feeds:
            yield scrapy.Request(
                url,
                headers={"Accept": ACCEPT, **validators(cursors.get(url))},
                callback=self.parse,
                errback=self.failed,
                # 304 Not Modified is an answer, not an error.
                meta={"feed": url, "handle_httpstatus_list": [304]},
            )

    def _stored_cursors(self) -> dict[str, str]:
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            rows = conn.execute("SELECT query, cursor FROM crawl_state WHERE source = %s", (self.name,))
            return {query: cursor for query, cursor in rows}

    def parse(self, response: Response) -> Iterator[Any]:
        url = response.meta["feed"]
        stats = self.crawler.stats
        if response.status == 304:
            stats.inc_value("murmur/feeds/not_modified")
            return
        headers = {
            name: response.headers.get(name, b"").decode("latin-1")
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
        stats.inc_value("murmur/pages")
        stats.inc_value("murmur/posts/parsed", len(result.posts))
        if result.skipped:
            stats.inc_value("murmur/posts/skipped_malformed", result.skipped)
        yield from result.posts
        # After the posts, so the store commits them first: the next run asks "anything newer?".
        cursor = {
            "etag": response.headers.get("ETag", b"").decode("latin-1") or None,
            "last_modified": response.headers.get("Last-Modified", b"").decode("latin-1") or None,
        }
        yield CursorUpdate(self.name, url, json.dumps(cursor, sort_keys=True))

    def failed(self, failure: Failure) -> None:
        url = failure.request.meta.get("feed", failure.request.url)
        kind, reason = describe_failure(failure)
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")
        if failure.check(HttpError) and failure.value.response.status in (401, 403):
            # Per feed, not per source: one feed's host refusing us says nothing about the others.
            reason = f"{reason}, forbidden (a login wall, or the host blocks crawlers)"
            logger.error("rss: %s refused access (%s); check the URL in a browser or remove it from "
                         "sources.rss.feeds", url, failure.value.response.status)
        self.failures.setdefault(url, reason)

    def closed(self, reason: str) -> None:
        if self.failures and self.feeds:
            listed = "; ".join(f"{url}: {why}" for url, why in sorted(self.failures.items()))
            logger.warning(
                "rss: %d of %d feeds could not be read (%s); will retry at the next run",
                len(self.failures), len(self.feeds), listed,
            )
