"""Hacker News: stories and comments matching the configured terms, through HN Search by Algolia.
Builds requests and follows cursors; what a response means is
`murmur.crawler.parsers.hackernews.parse_search`.

API: GET {base_url}/api/v1/search_by_date?query=&tags=&numericFilters=&page=&hitsPerPage=
(https://hn.algolia.com/api): newest first, pages counted from 0, at most 1,000 hits per query.
No account is needed; the documented limit is 10,000 requests an hour per IP.

Incremental: one query per term, its cursor the newest `created_at_i` seen; a later run asks only for
`created_at_i>cursor`. Pages are newest first, so the cursor moves once the query is paged through
(after the posts of every page before it), never mid-way: a run cut short asks again next time.

A date window (`murmur crawl hackernews --since A --until B`) asks `numericFilters=created_at_i>=A,created_at_i<B`,
paged; its progress, kept under the window's key per term, is the upper bound to ask below next (the oldest
`created_at_i` read, plus one: hits of that second are asked again rather than lost), then "done". Past the
1,000 hits Algolia serves for one query, the next query starts below the oldest hit read.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import scrapy

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers.hackernews import parse_search
from murmur.crawler.spiders.base import WINDOW_DONE, MurmurSpider
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
    windowed = True

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
        if self.window is not None:
            self.cursors = self.window_cursors()  # term -> the upper bound to ask below next, or "done"
        else:
            self.cursors = {q: c for q, c in self.stored_cursors().items() if c.isascii() and c.isdigit()}
        # The terms are asked one after another (the next once the previous is paged through), so a
        # refusal stops the source after one request instead of one per term.
        for request in self._query(0):
            yield request

    def _query(self, index: int) -> Iterator[scrapy.Request]:
        """The first request for the term at `index`, if there is one."""
        if self.window is not None:
            yield from self._window_query(index)
        elif index < len(self.terms) and not self.refused:
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

    # --- a date window -----------------------------------------------------------------------------

    def _window_query(self, index: int) -> Iterator[scrapy.Request]:
        """The first request of the window for the first term from `index` not collected yet."""
        assert self.window is not None
        while index < len(self.terms) and not self.refused:
            progress = self.cursors.get(self.terms[index])
            if progress != WINDOW_DONE:
                upper = int(progress) if progress and progress.isdigit() else self.window.end
                yield self._window_request(index, page=0, upper=upper, fetched=0)
                return
            logger.info("hackernews: the window for %r was collected whole by an earlier run", self.terms[index])
            index += 1

    def _window_request(self, index: int, *, page: int, upper: int | None, fetched: int) -> scrapy.Request:
        assert self.window is not None
        bounds = f"created_at_i>={self.window.start}" + (f",created_at_i<{upper}" if upper is not None else "")
        params: dict[str, str | int] = {
            "query": self.terms[index],
            "tags": f"({','.join(self.tags)})" if len(self.tags) > 1 else self.tags[0],
            "numericFilters": bounds,
            "hitsPerPage": PAGE_SIZE,
            "page": page,
        }
        return scrapy.Request(
            f"{self.base_url}/api/v1/search_by_date?{urlencode(params)}",
            callback=self.parse_window,
            errback=self.failed,
            meta={"index": index, "page": page, "upper": upper, "fetched": fetched},
        )

    def parse_window(self, response: Response) -> Any:
        assert self.window is not None
        meta = response.meta
        index, term = meta["index"], self.terms[meta["index"]]
        page = self.parse_or_skip(lambda: parse_search(response.body), "hackernews: skipped a malformed page from %s",
                                  response.url)
        if page is None:
            yield from self._query(index + 1)  # this term's progress stays: the next run asks again
            return
        self.answered = True
        self.query_results["ok"] += 1
        self.count_page(len(page.posts), page.skipped)
        if page.deleted:
            self.crawler.stats.inc_value("murmur/posts/skipped_deleted", page.deleted)
        stamps = [int(p.created_at.timestamp()) for p in page.posts]
        key = self.window.key(term)
        fetched, next_page = meta["fetched"] + 1, meta["page"] + 1
        left = page.hits > 0 and (page.nb_pages is None or next_page < page.nb_pages)
        if not left:
            yield from self.emit(self.in_window(page.posts), (key, WINDOW_DONE))
            yield from self._query(index + 1)
            return
        # Hits of the oldest second are asked again next time, not lost (the store keeps each post once).
        below = min(stamps) + 1 if stamps else meta["upper"]
        yield from self.emit(self.in_window(page.posts), (key, str(below)) if below is not None else None)
        if fetched >= self.max_pages:
            logger.info("hackernews: the window for %r is not collected whole after %d pages; run the same "
                        "command again to go on from where this run stopped", term, fetched)
        elif next_page * PAGE_SIZE < MAX_HITS:
            yield self._window_request(index, page=next_page, upper=meta["upper"], fetched=fetched)
            return
        elif below is not None and (meta["upper"] is None or below < meta["upper"]):
            # Algolia serves 1,000 hits a query: a new query below the oldest hit read.
            yield self._window_request(index, page=0, upper=below, fetched=fetched)
            return
        yield from self._query(index + 1)

    # --- incremental ---------------------------------------------------------------------------------

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
