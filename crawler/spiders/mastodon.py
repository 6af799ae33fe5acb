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

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.mastodon import parse_timeline
from murmur.crawler.spiders.base import MurmurSpider
from murmur.crawler.spiders.common import as_list, error_status, failed_request
from murmur.crawler.text import term_to_tag

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

PAGE_SIZE = 40  # the most Mastodon returns per page


class MastodonSpider(MurmurSpider):
    name = "mastodon"
    config_keys = ("instances", "max_pages")

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

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        tags = list(source.tags) or [term_to_tag(t) for t in settings.terms]
        return {**super().config_arguments(settings, source), "tags": tags}

    async def start(self) -> AsyncIterator[Any]:
        cursors = self.stored_cursors()
        for instance in self.instances:
            for tag in self.tags:
                query = f"{instance}#{tag}"
                cursor = cursors.get(query)
                if cursor:  # incremental: page forward from where the last run stopped
                    yield self._request(instance, tag, {"min_id": cursor}, mode="forward", page=1)
                else:  # first run: newest first, back at most max_pages pages
                    yield self._request(instance, tag, {}, mode="backward", page=1)

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
        try:
            page = parse_timeline(response.body, instance=urlsplit(instance).netloc)
        except ParseError as err:
            self.count_malformed(response.url, err)
            return
        self.mark_answered(instance)
        self.count_page(len(page.posts), page.skipped)
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
        kind, reason = self.count_failure(failure)
        instance = failed_request(failure).meta.get("instance", "?")
        self.fail(instance, reason)
        if error_status(failure) in (401, 403):
            logger.warning(
                "mastodon: %s refused access (%s); check that its tag timelines are public", instance, reason
            )

    def closed(self, reason: str) -> None:
        # One line per source and run, however many requests failed: the service keeps going and
        # tries again at the next run. An instance that answered some tag was reached, whatever else failed.
        answered = {inst: why for inst, why in self.failures.items() if inst in self.reached}
        if answered:
            listed = "; ".join(f"{inst}: {why}" for inst, why in sorted(answered.items()))
            logger.warning("mastodon: some requests failed (%s); those tags are asked again at the next run", listed)
        unreached = self.unreached()
        if unreached:
            listed = "; ".join(f"{inst}: {why}" for inst, why in sorted(unreached.items()))
            logger.warning(
                "mastodon: %d of %d instances could not be reached (%s); will retry at the next run",
                len(unreached), len(self.instances), listed,
            )
