"""Hacker News: stories and comments matching the configured terms, through HN Search by Algolia.
Builds requests and follows cursors; what a response means is
`murmur.crawler.parsers.hackernews.parse_search`.

API: GET {base_url}/api/v1/search_by_date?query=&tags=&numericFilters=&page=&hitsPerPage=
(https://hn.algolia.com/api): newest first, pages counted from 0, at most 1,000 hits per query.
No account is needed; the documented limit is 10,000 requests an hour per IP.

Incremental: one query per term, its cursor the newest `created_at_i` seen; a later run asks only for
`created_at_i>cursor`. Pages are newest first, so the cursor moves once the query is paged through
(after the posts of every page before it), never mid-way: a run cut short asks again next time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import scrapy

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers.hackernews import parse_search
from murmur.crawler.spiders.base import MurmurSpider
from murmur.crawler.spiders.common import UNREACHABLE, as_list, error_status, failed_request

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://hn.algolia.com"
DEFAULT_TAGS = ("story", "comment")
PAGE_SIZE = 100
MAX_HITS = 1000  # Algolia serves at most this many hits for one query, however it is paged


class HackerNewsSpider(MurmurSpider):
    name = "hackernews"
    config_keys = ("base_url", "max_pages")

    def __init__(
        self,
        base_url: str | None = None,
        terms: list[str] | str | None = None,
        tags: list[str] | str | None = None,
        max_pages: int | str = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl hackernews -a base_url=http://... -a terms=RedNote,Lemon8` passes strings.
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.terms = as_list(terms)
        self.tags = as_list(tags) or list(DEFAULT_TAGS)
        self.max_pages = max(1, min(int(max_pages), MAX_HITS // PAGE_SIZE))
        self.instances = [self.base_url]  # what the runner counts failures against
        self.failures: dict[str, str] = {}  # base URL -> why it gave nothing (or refused) this run
        self.errors: dict[str, int] = {}  # error kind -> count, for requests that failed mid-run
        self.answered = False  # some query got a usable page
        self.refused = False
        self.cursors: dict[str, str] = {}

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        return {**super().config_arguments(settings, source), "terms": list(settings.terms),
                "tags": list(source.tags) or list(DEFAULT_TAGS)}

    async def start(self) -> AsyncIterator[Any]:
        # A cursor is a Unix time; anything else is not ours, and the term starts over.
        self.cursors = {q: c for q, c in self.stored_cursors().items() if c.isascii() and c.isdigit()}
        # The terms are asked one after another (the next once the previous is paged through), so a
        # refusal stops the source after one request instead of one per term.
        for request in self._query(0):
            yield request

    def _query(self, index: int) -> Iterator[scrapy.Request]:
        """The first request for the term at `index`, if there is one."""
        if index < len(self.terms) and not self.refused:
            yield self._request(index, page=0, newest=None)

    def _request(self, index: int, *, page: int, newest: int | None) -> scrapy.Request:
        term = self.terms[index]
        params: dict[str, str | int] = {
            "query": term,
            # Tags are ANDed, and ORed inside parentheses: "(story,comment)" is stories or comments.
            "tags": f"({','.join(self.tags)})" if len(self.tags) > 1 else self.tags[0],
            "hitsPerPage": PAGE_SIZE,
            "page": page,
        }
        cursor = self.cursors.get(term)
        if cursor:
            params["numericFilters"] = f"created_at_i>{cursor}"
        return scrapy.Request(
            f"{self.base_url}/api/v1/search_by_date?{urlencode(params)}",
            callback=self.parse,
            errback=self.failed,
            meta={"index": index, "page": page, "newest": newest},
        )

    def parse(self, response: Response) -> Any:
        meta = response.meta
        index, term = meta["index"], self.terms[meta["index"]]
        stats = self.crawler.stats
        page = self.parse_or_skip(lambda: parse_search(response.body), "hackernews: skipped a malformed page from %s",
                                  response.url)
        if page is None:
            yield from self._query(index + 1)
            return
        self.answered = True
        self.query_results["ok"] += 1
        self.count_page(len(page.posts), page.skipped)
        if page.deleted:
            stats.inc_value("murmur/posts/skipped_deleted", page.deleted)
        yield from page.posts

        seen = [n for n in (meta["newest"], page.newest) if n is not None]
        newest = max(seen) if seen else None
        next_page = meta["page"] + 1
        left = page.hits > 0 and (page.nb_pages is None or next_page < page.nb_pages)
        if left and next_page < self.max_pages and next_page * PAGE_SIZE < MAX_HITS:
            yield self._request(index, page=next_page, newest=newest)
            return
        cursor = self.cursors.get(term)
        if left and cursor:
            # More new hits than a run may fetch: the cursor moves past the older ones left unread.
            stats.inc_value("murmur/gaps")
            logger.warning(
                "hackernews: more than %d new hits for %r since the last run; the older ones are skipped "
                "(raise sources.hackernews.max_pages or shorten its interval)",
                next_page * PAGE_SIZE, term,
            )
        if newest is not None and (not cursor or newest > int(cursor)):
            # Every page of this query was yielded above it, so the store commits them first.
            yield CursorUpdate(self.name, term, str(newest))
        yield from self._query(index + 1)

    def failed(self, failure: Failure) -> Iterator[scrapy.Request]:
        kind, reason = self.count_failure(failure)
        if error_status(failure) in (401, 403):
            self.refused = True
            self.failures[self.base_url] = reason
            logger.error(
                "hackernews: %s refused access (%s); stopping this source for this run. HN Search needs no "
                "account: check sources.hackernews.base_url, or whether this IP went over 10,000 requests "
                "an hour",
                self.base_url, reason,
            )
            return
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.failures.setdefault(self.base_url, reason)
        if kind in UNREACHABLE and not self.answered:
            return  # no answer at all (after Scrapy's retries): asking the other terms would only wait again
        # Other terms still go on; this term's cursor stays, so the next run asks for it again.
        yield from self._query(failed_request(failure).meta["index"] + 1)

    def closed(self, reason: str) -> None:
        if self.refused:
            return  # said once, when it happened
        if self.answered:
            # Reached, but some requests failed: the run is ok, the failures are in the stats.
            self.failures.pop(self.base_url, None)
            if self.errors:
                listed = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.errors.items()))
                logger.warning(
                    "hackernews: some requests to %s failed (%s); those terms are asked again at the next run",
                    self.base_url, listed,
                )
        elif self.failures:
            logger.warning(
                "hackernews: %s could not be reached (%s); will retry at the next run",
                self.base_url, self.failures[self.base_url],
            )
