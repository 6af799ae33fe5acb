"""Mastodon: public hashtag timelines on configured instances. Builds requests and follows
cursors; what a response means is `murmur.crawler.parsers.mastodon.parse_timeline`.

API: GET /api/v1/timelines/tag/:hashtag (https://docs.joinmastodon.org/methods/timelines/#tag),
public on most instances, 40 statuses a page at most, paged with max_id (older) and min_id
(immediately newer).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import scrapy
from scrapy.spidermiddlewares.httperror import HttpError

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.mastodon import parse_timeline
from murmur.crawler.pipelines import database_url, murmur_settings
from murmur.crawler.spiders.common import as_list, describe_failure
from murmur.crawler.text import term_to_tag

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

PAGE_SIZE = 40  # the most Mastodon returns per page


class MastodonSpider(scrapy.Spider):
    name = "mastodon"

    def __init__(
        self,
        instances: list[str] | str | None = None,
        tags: list[str] | str | None = None,
        max_pages: int | str = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl mastodon -a instances=https://a,https://b -a tags=x,y` passes strings.
        self.instances = [i.rstrip("/") for i in as_list(instances)]
        self.tags = [t.lstrip("#") for t in as_list(tags)]
        self.max_pages = int(max_pages)
        self.failures: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> MastodonSpider:
        settings = murmur_settings(crawler)
        source = settings.sources.get("mastodon")
        if source is not None:
            kwargs.setdefault("instances", list(source.instances))
            kwargs.setdefault("tags", list(source.tags) or [term_to_tag(t) for t in settings.terms])
            kwargs.setdefault("max_pages", source.max_pages)
        if crawler.settings.getint("MURMUR_MAX_PAGES"):  # `murmur crawl --max-pages N`
            kwargs["max_pages"] = crawler.settings.getint("MURMUR_MAX_PAGES")
        return super().from_crawler(crawler, *args, **kwargs)

    async def start(self) -> AsyncIterator[Any]:
        cursors = self._stored_cursors()
        for instance in self.instances:
            for tag in self.tags:
                query = f"{instance}#{tag}"
                cursor = cursors.get(query)
                if cursor:  # incremental: page forward from where the last run stopped
                    yield self._request(instance, tag, {"min_id": cursor}, mode="forward", page=1)
                else:  # first run: newest first, back at most max_pages pages
                    yield self._request(instance, tag, {}, mode="backward", page=1)

    def _stored_cursors(self) -> dict[str, str]:
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            rows = conn.execute("SELECT query, cursor FROM crawl_state WHERE source = %s", (self.name,))
            return {query: cursor for query, cursor in rows}

    def _request(
        self, instance: str, tag: str, params: dict[str, str], *, mode: str, page: int, newest: str | None = None
    ) -> scrapy.Request:
        url = f"{instance}/api/v1/timelines/tag/{quote(tag, safe='')}?" + urlencode({"limit": PAGE_SIZE, **params})
        return scrapy.Request(
            url,
            callback=self.parse,
            errback=self.failed,
            meta={"instance": instance, "tag": tag, "mode": mode, "page": page, "newest": newest},
        )

    def parse(self, response: Response) -> Any:
        meta = response.meta
        instance, tag = meta["instance"], meta["tag"]
        query = f"{instance}#{tag}"
        stats = self.crawler.stats
        try:
            page = parse_timeline(response.body, instance=urlsplit(instance).netloc)
        except ParseError as err:
            stats.inc_value("murmur/errors/malformed")
            logger.warning("mastodon: skipped a malformed page from %s (%s)", response.url, err)
            return
        stats.inc_value("murmur/pages")
        stats.inc_value("murmur/posts/parsed", len(page.posts))
        if page.skipped:
            stats.inc_value("murmur/posts/skipped_malformed", page.skipped)
        yield from page.posts

        more = bool(page.posts or page.oldest_id) and meta["page"] < self.max_pages
        if meta["mode"] == "forward":
            if page.newest_id:
                # Posts of this page are yielded above, so the store commits them before the cursor.
                yield CursorUpdate(self.name, query, page.newest_id)
                if more:
                    yield self._request(
                        instance, tag, {"min_id": page.newest_id}, mode="forward", page=meta["page"] + 1
                    )
            return
        newest = meta["newest"] or page.newest_id
        if more and page.oldest_id:
            yield self._request(
                instance, tag, {"max_id": page.oldest_id}, mode="backward", page=meta["page"] + 1, newest=newest
            )
        elif newest:
            # The back-fill is over (empty page or page cap): later runs start from the newest post.
            yield CursorUpdate(self.name, query, newest)

    def failed(self, failure: Failure) -> None:
        kind, reason = describe_failure(failure)
        instance = failure.request.meta.get("instance", "?")
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")
        self.failures.setdefault(instance, reason)
        if failure.check(HttpError) and failure.value.response.status in (401, 403):
            logger.warning(
                "mastodon: %s refused access (%s); check that its tag timelines are public", instance, reason
            )

    def closed(self, reason: str) -> None:
        if self.failures:
            # One line per source and run, however many requests failed: the service keeps going
            # and tries again at the next run.
            listed = "; ".join(f"{inst}: {why}" for inst, why in sorted(self.failures.items()))
            logger.warning(
                "mastodon: %d of %d instances could not be reached (%s); will retry at the next run",
                len(self.failures), len(self.instances), listed,
            )
