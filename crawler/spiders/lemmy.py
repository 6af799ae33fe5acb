"""Lemmy: posts and comments matching the configured terms, searched on configured instances.
Builds requests and follows cursors; what a response means is `murmur.crawler.parsers.lemmy.parse_search`.

API: GET {instance}/api/v3/search?q=&type_=Posts|Comments&sort=New&listing_type=All&page=&limit=
(LemmyNet/lemmy `crates/api_common/src/site.rs`, `Search`): public on open instances, pages counted
from 1, at most 50 a page. An instance's default limit for searches is 60 per 10 minutes per IP
(`local_site_rate_limit.search`), hence the 10 s delay in default.toml.

Incremental: a cursor per (instance, term, type), the newest `published` seen. Search has no "since"
parameter, so a run pages newest first until a page reaches posts at or before the cursor, keeps only
the newer ones, and moves the cursor when the query is paged through (never mid-way).

A date window (`murmur crawl lemmy --since A --until B`): search has no date parameter either, so newest-first
pages are read until one reaches before A, keeping the posts from A to before B. Its progress per query, under
the window's key, is the next page to ask (new posts only push older ones to later pages, so resuming there
reads some again, never skips one), then "done".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import scrapy

from murmur.crawler.items import CursorUpdate, Post
from murmur.crawler.parsers import iso_datetime
from murmur.crawler.parsers.lemmy import KINDS, parse_search
from murmur.crawler.spiders.base import WINDOW_DONE, MurmurSpider
from murmur.crawler.spiders.common import UNREACHABLE, as_list, error_status, failed_request

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

PAGE_SIZE = 50  # the most Lemmy returns per page (FETCH_LIMIT_MAX in lemmy_db_schema::utils)


class LemmySpider(MurmurSpider):
    name = "lemmy"
    config_keys = ("instances", "max_pages")
    windowed = True

    def __init__(
        self,
        instances: list[str] | str | None = None,
        terms: list[str] | str | None = None,
        max_pages: int | str = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl lemmy -a instances=https://a,https://b -a terms=RedNote,Lemon8` passes strings.
        self.instances = [i.rstrip("/") for i in as_list(instances)]
        self.terms = as_list(terms)
        self.max_pages = max(1, int(max_pages))
        # Every instance asks each term for posts, then for comments, one query after another.
        self.plan = [(term, kind) for term in self.terms for kind in KINDS]
        self.failures: dict[str, str] = {}  # instance -> why it gave nothing (or refused) this run
        self.errors: dict[str, dict[str, int]] = {}  # instance -> error kind -> count, mid-run failures
        self.answered: set[str] = set()
        self.refused: set[str] = set()
        self.cursors: dict[str, str] = {}

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        return {**super().config_arguments(settings, source), "terms": list(settings.terms)}

    async def start(self) -> AsyncIterator[Any]:
        if not self.instances:
            logger.error("lemmy: no instance to search; set sources.lemmy.instances, e.g. [\"https://lemmy.world\"]")
            return
        # With a window, its progress per query (the next page to ask, or "done"), not the incremental cursors.
        self.cursors = self.window_cursors() if self.window is not None else self.stored_cursors()
        # One query at a time per instance (the next once the previous is paged through): the instance
        # rate-limits searches per IP anyway, and a refusal stops it after one request.
        for instance in self.instances:
            for request in self._query(instance, 0):
                yield request

    @staticmethod
    def query_key(instance: str, term: str, kind: str) -> str:
        """The crawl_state query of one (instance, term, type)."""
        return f"{instance}#{kind}#{term}"

    def _query(self, instance: str, index: int) -> Iterator[scrapy.Request]:
        """The first request of query `index` on `instance`, if there is one."""
        while index < len(self.plan) and instance not in self.refused:
            if self.window is None:
                yield self._request(instance, index, page=1, newest=None)
                return
            progress = self.cursors.get(self.query_key(instance, *self.plan[index]))
            if progress != WINDOW_DONE:
                page = int(progress) if progress and progress.isdigit() else 1
                yield self._request(instance, index, page=page, newest=None)
                return
            logger.info("lemmy: the window for %s %r on %s was collected whole by an earlier run",
                        self.plan[index][1], self.plan[index][0], instance)
            index += 1

    def _request(self, instance: str, index: int, *, page: int, newest: datetime | None,
                 fetched: int = 1) -> scrapy.Request:
        term, kind = self.plan[index]
        params = {
            "q": term,
            "type_": KINDS[kind],
            "sort": "New",
            # Everything the instance knows, federated content included (the default may be Local).
            "listing_type": "All",
            "page": page,
            "limit": PAGE_SIZE,
        }
        return scrapy.Request(
            f"{instance}/api/v3/search?{urlencode(params)}",
            callback=self.parse,
            errback=self.failed,
            meta={"instance": instance, "index": index, "page": page, "newest": newest, "fetched": fetched},
        )

    def parse(self, response: Response) -> Any:
        meta = response.meta
        instance, index = meta["instance"], meta["index"]
        term, kind = self.plan[index]
        query = self.query_key(instance, term, kind)
        stats = self.crawler.stats
        page = self.parse_or_skip(lambda: parse_search(response.body, kind=kind, instance=instance),
                                  "lemmy: skipped a malformed page from %s", response.url)
        if page is None:
            yield from self._query(instance, index + 1)
            return
        self.answered.add(instance)
        self.query_results["ok"] += 1
        self.count_page(len(page.posts), page.skipped)
        if page.removed:
            stats.inc_value("murmur/posts/skipped_deleted", page.removed)
        if self.window is not None:
            yield from self._window_page(meta, page.posts, page.oldest, page.count, query)
            return
        cursor = _parse_cursor(self.cursors.get(query))
        # Posts at or before the cursor were stored by an earlier run.
        yield from (p for p in page.posts if cursor is None or p.created_at > cursor)

        seen = [t for t in (meta["newest"], page.newest) if t is not None]
        newest = max(seen) if seen else None
        reached_cursor = cursor is not None and page.oldest is not None and page.oldest <= cursor
        # A page shorter than the limit is the last one.
        left = page.count >= PAGE_SIZE and not reached_cursor
        if left and meta["page"] < self.max_pages:
            yield self._request(instance, index, page=meta["page"] + 1, newest=newest)
            return
        if left and cursor is not None:
            # More new posts than a run may fetch: the cursor moves past the older ones left unread.
            stats.inc_value("murmur/gaps")
            logger.warning(
                "lemmy: more than %d new %s for %r on %s since the last run; the older ones are skipped "
                "(raise sources.lemmy.max_pages or shorten its interval)",
                meta["page"] * PAGE_SIZE, kind, term, instance,
            )
        if newest is not None and (cursor is None or newest > cursor):
            # Every page of this query was yielded above it, so the store commits them first.
            yield CursorUpdate(self.name, query, newest.isoformat())
        yield from self._query(instance, index + 1)

    def _window_page(self, meta: dict[str, Any], posts: list[Post], oldest: datetime | None, count: int,
                     query: str) -> Iterator[Any]:
        """A window's page: the posts inside it, its progress, and the next page unless past the start."""
        assert self.window is not None
        instance, index = meta["instance"], meta["index"]
        term, kind = self.plan[index]
        done = count < PAGE_SIZE or (oldest is not None and oldest < self.window.since)  # short: the last
        yield from self.emit(self.in_window(posts),
                             (self.window.key(query), WINDOW_DONE if done else str(meta["page"] + 1)))
        if not done and meta["fetched"] < self.max_pages:
            yield self._request(instance, index, page=meta["page"] + 1, newest=None, fetched=meta["fetched"] + 1)
            return
        if not done:
            logger.info("lemmy: the window for %s %r on %s is not collected whole after %d pages; run the same "
                        "command again to go on from where this run stopped", kind, term, instance, meta["fetched"])
        yield from self._query(instance, index + 1)

    def failed(self, failure: Failure) -> Iterator[scrapy.Request]:
        kind, reason = self.count_failure(failure)
        meta = failed_request(failure).meta
        instance = meta.get("instance", "?")
        if error_status(failure) in (401, 403):
            self.refused.add(instance)
            self.failures[instance] = reason
            logger.error(
                "lemmy: %s refused access (%s); no more requests to it this run. Its search needs no account "
                "on an open instance: it may be private, or have blocked this IP; remove it from "
                "sources.lemmy.instances if it stays so",
                instance, reason,
            )
            return
        counts = self.errors.setdefault(instance, {})
        counts[kind] = counts.get(kind, 0) + 1
        self.failures.setdefault(instance, reason)
        if kind in UNREACHABLE and instance not in self.answered:
            return  # no answer at all (after Scrapy's retries): its other queries would only wait again
        # The other queries still go on; this one's cursor stays, so the next run asks again.
        yield from self._query(instance, meta["index"] + 1)

    def closed(self, reason: str) -> None:
        for instance in sorted(self.answered - self.refused):
            # Reached, but some requests failed: the failures are in the stats, not a failed instance.
            self.failures.pop(instance, None)
            if instance in self.errors:
                counts = self.errors[instance]
                listed = ", ".join(f"{kind}: {count}" for kind, count in sorted(counts.items()))
                logger.warning(
                    "lemmy: some requests to %s failed (%s); those queries are asked again at the next run",
                    instance, listed,
                )
        unreached = {i: why for i, why in self.failures.items() if i not in self.refused}
        if unreached:
            # One line per source and run, however many requests failed (refusals were said already).
            listed = "; ".join(f"{inst}: {why}" for inst, why in sorted(unreached.items()))
            logger.warning(
                "lemmy: %d of %d instances could not be reached (%s); will retry at the next run",
                len(unreached), len(self.instances), listed,
            )


def _parse_cursor(value: str | None) -> datetime | None:
    return iso_datetime(value)  # None when not ours: page from the newest, as on a first run
