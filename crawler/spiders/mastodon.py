"""Mastodon: public hashtag timelines on configured instances. Builds requests and follows
cursors; what a response means is `murmur.crawler.parsers.mastodon.parse_timeline`.

API: GET /api/v1/timelines/tag/:hashtag (https://docs.joinmastodon.org/methods/timelines/#tag),
public on most instances, 40 statuses a page at most, paged with max_id (older) and min_id
(immediately newer).

With `replies = true`, each matching status that has replies (``replies_count`` > 0) also has its
conversation read, ``GET /api/v1/statuses/:id/context`` (https://docs.joinmastodon.org/methods/statuses/#context,
public for public statuses): the descendants are stored with the status's terms, parents resolved to URIs and
the root from the ancestors. At most MAX_CONTEXTS such requests a run, at the source's download delay.

A date window (`murmur crawl mastodon --since A --until B`) pages back with max_id: from the id a status made
at B would have (ids are time-ordered snowflakes, milliseconds << 16:
https://github.com/mastodon/mastodon/blob/main/lib/mastodon/snowflake.rb; `max_id` need not be a real status),
or from the newest without B, until a page reaches past A. Its progress per instance and tag, kept under the
window's key, is the max_id to page back from next, then "done".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import scrapy

from murmur.crawler.items import CursorUpdate, Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.mastodon import local_ref, parse_context, parse_timeline
from murmur.crawler.pipelines import database_url, post_terms, term_matcher
from murmur.crawler.spiders.base import WINDOW_DONE, MurmurSpider
from murmur.crawler.spiders.common import as_bool, as_list, error_status, failed_request
from murmur.crawler.text import term_to_tag

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings
    from murmur.crawler.text import TermMatcher

logger = logging.getLogger(__name__)

PAGE_SIZE = 40  # the most Mastodon returns per page
# Context requests a run at most (one per matching status with replies): 100 at the default delay of a
# second is under two minutes, well within Mastodon's 300 requests per 5 minutes.
MAX_CONTEXTS = 100


class MastodonSpider(MurmurSpider):
    name = "mastodon"
    config_keys = ("instances", "max_pages", "replies")
    windowed = True

    def __init__(
        self,
        instances: list[str] | str | None = None,
        tags: list[str] | str | None = None,
        max_pages: int | str = 10,
        replies: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.replies = as_bool(replies)
        self.contexts: set[str] = set()  # statuses whose context was asked for this run (by URI)
        self.local_uris: dict[str, str] = {}  # "<host>:<id>" -> URI of every status read this run
        self._matcher: TermMatcher | None = None
        # `scrapy crawl mastodon -a instances=https://a,https://b -a tags=x,y` passes strings.
        self.instances = [i.rstrip("/") for i in as_list(instances)]
        self.tags = [t.lstrip("#") for t in as_list(tags)]
        self.max_pages = int(max_pages)

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        tags = list(source.tags) or [term_to_tag(t) for t in settings.terms]
        return {**super().config_arguments(settings, source), "tags": tags}

    async def start(self) -> AsyncIterator[Any]:
        if self.window is not None:
            for request in self._window_starts():
                yield request
            return
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

    def _window_starts(self) -> list[scrapy.Request]:
        """The first request of the window for each instance and tag not collected whole yet."""
        assert self.window is not None
        progress = self.window_cursors()
        requests = []
        for instance in self.instances:
            for tag in self.tags:
                done = progress.get(f"{instance}#{tag}")
                if done == WINDOW_DONE:
                    logger.info("mastodon: the window for #%s on %s was collected whole by an earlier run",
                                tag, instance)
                    continue
                if not done and self.window.until is not None:
                    done = str(int(self.window.until.timestamp() * 1000) << 16)  # a snowflake id at `until`
                requests.append(self._request(instance, tag, {"max_id": done} if done else {}, mode="window", page=1))
        return requests

    def _window_page(self, meta: dict[str, Any], oldest_id: str | None, posts: list[Post]) -> Any:
        """A window's page: the posts inside it, its progress, and the next page back unless past the start."""
        assert self.window is not None
        instance, tag = meta["instance"], meta["tag"]
        host = urlsplit(instance).netloc.lower()
        kept = self._placed(self.in_window(posts), host)
        past_start = not oldest_id or any(p.created_at < self.window.since for p in posts)
        progress = WINDOW_DONE if past_start else oldest_id
        yield from self.emit(kept, (self.window.key(f"{instance}#{tag}"), str(progress)))
        if self.replies:
            yield from self._context_requests(instance, kept)
        if past_start:
            return
        if meta["page"] < self.max_pages:
            yield self._request(instance, tag, {"max_id": str(oldest_id)}, mode="window", page=meta["page"] + 1)
        else:
            logger.info("mastodon: the window for #%s on %s is not collected whole after %d pages; run the same "
                        "command again to go on from where this run stopped", tag, instance, meta["page"])

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
        if meta["mode"] == "window":
            yield from self._window_page(meta, page.oldest_id, page.posts)
            return
        yield from self._placed(page.posts, urlsplit(instance).netloc.lower())
        if self.replies:
            yield from self._context_requests(instance, page.posts)

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

    # --- conversations ---------------------------------------------------------------------------

    def _placed(self, posts: list[Post], host: str) -> list[Post]:
        """Posts with their parent as a URI where the parent was read this run; each noted by local id."""
        for post in posts:
            local = local_ref(host, post.raw.get("id"))
            if local is not None:
                self.local_uris[local] = post.source_id
        for post in posts:
            post.parent_source_id = self.local_uris.get(post.parent_source_id or "", post.parent_source_id)
        return posts

    def _context_requests(self, instance: str, posts: list[Post]) -> list[scrapy.Request]:
        if self._matcher is None:
            self._matcher = term_matcher(self.crawler)
        requests = []
        for post in posts:
            if len(self.contexts) >= MAX_CONTEXTS:
                self.crawler.stats.inc_value("murmur/mastodon/contexts_capped")
                break
            terms = post_terms(self._matcher, post)
            if post.metrics.get("replies", 0) <= 0 or not terms or post.source_id in self.contexts:
                continue
            self.contexts.add(post.source_id)
            local = quote(str(post.raw.get("id")), safe="")
            requests.append(scrapy.Request(
                f"{instance}/api/v1/statuses/{local}/context",
                callback=self.parse_context,
                errback=self.failed,
                priority=-1,  # after the timeline pages, so their cursors are committed first
                meta={"instance": instance, "focus": post, "terms": terms},
            ))
        return requests

    def parse_context(self, response: Response) -> Any:
        meta = response.meta
        focus: Post = meta["focus"]
        host = urlsplit(meta["instance"]).netloc.lower()
        context = self.parse_or_skip(lambda: parse_context(response.body, instance=host, focus=focus),
                                     "mastodon: skipped a malformed context from %s", response.url)
        if context is None:
            return
        self.crawler.stats.inc_value("murmur/mastodon/contexts")
        self.count_page(len(context.replies), context.skipped)
        context.focus.terms = []  # the focus matched on its own: not a reply kept for its thread
        yield context.focus  # again, with its parent as a URI and its thread's root
        for reply in self._placed(context.replies, host):
            reply.terms = list(meta["terms"])
            yield reply

    def failed(self, failure: Failure) -> None:
        kind, reason = self.count_failure(failure)
        instance = failed_request(failure).meta.get("instance", "?")
        self.fail(instance, reason)
        if error_status(failure) in (401, 403):
            logger.warning(
                "mastodon: %s refused access (%s); check that its tag timelines are public", instance, reason
            )

    def closed(self, reason: str) -> None:
        if self.local_uris:
            # A reply stored before its parent was read (another page, tag or run) keeps the parent's
            # local id until now: rewrite those to the URIs read this run.
            from murmur.store.db import connect
            from murmur.store.threads import resolve_parents

            with connect(database_url(self.crawler)) as conn:
                resolved = resolve_parents(conn, self.name, self.local_uris)
            if resolved:
                self.crawler.stats.inc_value("murmur/mastodon/parents_resolved", resolved)
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
