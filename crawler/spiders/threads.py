"""Threads: posts matching the terms through the Threads API's keyword search, and public post pages
linked from other sources' posts. Builds requests and follows cursors; what a response means is
`murmur.crawler.parsers.threads`.

API: ``GET {base_url}/v1.0/keyword_search?q=&search_type=RECENT&fields=&limit=&since=&after=``
(https://developers.facebook.com/docs/threads/keyword-search). It needs a Threads user access token
(``MURMUR_THREADS_ACCESS_TOKEN``) of an app granted ``threads_basic`` and ``threads_keyword_search``;
without App Review approval of the latter it searches only the token owner's own posts. The token
travels in an ``Authorization: Bearer`` header, which Meta's Graph APIs accept in place of the
``access_token`` parameter (restfb/restfb#1107, huandu/facebook#205), so no request URL (and no log line
Scrapy writes about one) carries it; paging builds its own URLs from ``paging.cursors.after`` rather
than following ``paging.next``, which Graph writes the token into.

Limit: a user may send 2,200 keyword queries in a rolling 24 hours (each page is a query; one that
finds nothing does not count). The defaults (hourly runs, at most 2 pages a query, 6 terms) send at
most 288 a day. A refused or expired token, a missing permission or a spent limit is one line, and the
source stops for the run.

Incremental: per query, the cursor is the newest ``timestamp`` seen (Unix seconds), sent back as
``since``; it moves once the query is paged through, after the posts before it are stored.

Post pages: links to threads.net / threads.com posts found in other sources' posts
(`murmur.crawler.links.linked_urls`, when ``follow_links``) and the pages in ``urls`` are fetched as
any browser would, obeying robots.txt, with murmur's own user agent: nothing is disguised and no login
is attempted. A page that redirects to a login or challenge is counted as blocked (``murmur/blocked``)
and stores nothing. Pages whose post is stored already are not fetched again (the shortcode in the URL
is the post's pk in base 64, and the pk is what page posts are stored under); pages in ``urls`` always
are. ``MURMUR_THREADS_PAGES_URL`` (tests, or a mirror) names a host that serves the real hosts' post
pages instead; it is used only when set.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import scrapy

from murmur.crawler.items import CursorUpdate
from murmur.crawler.links import linked_urls
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.threads import (
    POST_LINK,
    parse_keyword_search,
    parse_post_page,
    shortcode_of,
    shortcode_to_pk,
)
from murmur.crawler.pipelines import database_url
from murmur.crawler.spiders.common import as_list, describe_failure, error_response, failed_request
from murmur.crawler.spiders.meta_graph import GraphApiSpider
from murmur.store.crawl_state import stored_ids

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.threads.net"
API_VERSION = "v1.0"
TOKEN_VAR = "MURMUR_THREADS_ACCESS_TOKEN"
PAGES_VAR = "MURMUR_THREADS_PAGES_URL"
PAGE_SIZE = 100  # the most a Threads list endpoint returns per page (25 when not asked)
FIELDS = ",".join((
    "id", "text", "media_type", "media_product_type", "permalink", "shortcode", "timestamp", "username",
    "topic_tag", "has_replies", "is_reply", "is_quote_post", "link_attachment_url",
))
DAILY_QUERIES = 2200  # keyword queries a user may send in a rolling 24 hours
# Linked post pages fetched in one run, the most recently seen links first; the rest wait for later runs.
LINKED_PAGES_PER_RUN = 30
REAL_HOSTS = ("threads.net", "www.threads.net", "threads.com", "www.threads.com")
HANDLED_STATUSES = [400, 401, 403, 404]  # the Graph error body says why; 429 and 5xx are retried first
_LOGIN_PATHS = ("/login", "/accounts/login")
_CHALLENGE_PATHS = ("/challenge", "/checkpoint", "/accounts/suspended")

_HINTS = {
    "token": f"check {TOKEN_VAR} (a Threads user access token; long-lived tokens last 60 days unless refreshed)",
    "permission": "the app needs the threads_keyword_search permission (App Review) to search public posts",
    "rate": f"the keyword search limit ({DAILY_QUERIES:,} queries per 24 hours per user) is spent; "
            "the next run tries again",
    "blocked": "Meta has blocked this account's calls for now; the next run tries again",
}


class ThreadsSpider(GraphApiSpider):
    name = "threads"
    api = "the Threads API"
    hints = _HINTS
    config_keys = ("base_url", "urls", "follow_links", "max_pages")

    def __init__(
        self,
        base_url: str | None = None,
        queries: list[str] | str | None = None,
        urls: list[str] | str | None = None,
        follow_links: bool | str = True,
        max_pages: int | str = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.queries = [queries] if isinstance(queries, str) else list(queries or [])
        self.urls = as_list(urls)
        self.follow_links = (follow_links if isinstance(follow_links, bool)
                             else str(follow_links).lower() in ("1", "true", "yes"))
        self.max_pages = max(1, int(max_pages))
        self.token = self.credentials.get("access_token")  # config: MURMUR_THREADS_ACCESS_TOKEN
        # Config: MURMUR_THREADS_PAGES_URL, a mirror of saved pages standing in for the real hosts.
        self.pages_url = self.environment.get("pages_url", "").rstrip("/") or None
        self.instances = [self.base_url]  # what the runner counts failures against
        self.failures: dict[str, str] = {}
        self.cursors: dict[str, str] = {}
        self.answered = False
        self.stopped = False
        self.queries_sent = 0
        self.pages_fetched = 0
        self.blocked: Counter[str] = Counter()
        self.unreadable = 0
        self._warned: set[str] = set()

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        return {**super().config_arguments(settings, source), "queries": list(source.tags) or list(settings.terms)}

    async def start(self) -> AsyncIterator[Any]:
        if not self.token:
            self._fail(f"{TOKEN_VAR} is not set; set it to a Threads user access token of an app with the "
                       "threads_basic and threads_keyword_search permissions "
                       "(https://developers.facebook.com/docs/threads/keyword-search)")
            return
        # A cursor is a Unix time; anything else is not ours, and the query starts over.
        self.cursors = {q: c for q, c in self.stored_cursors().items() if c.isascii() and c.isdigit()}
        pages = self._pages_to_fetch()
        # Queries go one after another (the next once the previous is paged through), so a refused
        # token stops the source after one request instead of one per query.
        for request in self._query(0):
            yield request
        for url in pages:
            yield self._page(url)

    def _pages_to_fetch(self) -> list[str]:
        """The pages in ``urls`` (always), then linked post pages not stored yet, newest links first."""
        pages = list(self.urls)
        if not self.follow_links:
            return pages
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            found = linked_urls(conn, source=self.name, pattern=POST_LINK)
            # Page posts are stored under their pk; the link carries the shortcode, which encodes it.
            pks = {code: shortcode_to_pk(code) for _, code in found}
            stored = stored_ids(conn, self.name, [pk for pk in pks.values() if pk])
        seen = {shortcode_of(url) for url in pages}
        linked = 0
        for url, code in found:
            if code in seen or pks.get(code) in stored or pks.get(code) is None:
                continue
            seen.add(code)
            pages.append(url)
            linked += 1
            if linked >= LINKED_PAGES_PER_RUN:
                break
        return pages

    # --- the API -----------------------------------------------------------------------------

    def _query(self, index: int) -> Iterator[scrapy.Request]:
        """The first request for the query at `index`, if there is one."""
        if index < len(self.queries) and not self.stopped:
            yield self._search(index, after=None, page=1, newest=None)

    def _search(self, index: int, *, after: str | None, page: int, newest: int | None) -> scrapy.Request:
        q = self.queries[index]
        params: dict[str, str | int] = {"q": q, "search_type": "RECENT", "fields": FIELDS, "limit": PAGE_SIZE}
        cursor = self.cursors.get(q)
        if cursor:
            params["since"] = cursor
        if after:
            params["after"] = after
        return scrapy.Request(
            f"{self.base_url}/{API_VERSION}/keyword_search?{urlencode(params)}",
            headers={"Authorization": f"Bearer {self.token}"},
            callback=self.parse_search,
            errback=self.search_failed,
            # Governed by the Threads API terms and its query limit, like other token APIs here.
            meta={"index": index, "page": page, "newest": newest, "dont_obey_robotstxt": True,
                  "handle_httpstatus_list": HANDLED_STATUSES},
        )

    def parse_search(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        index = meta["index"]
        q = self.queries[index]
        stats = self.crawler.stats
        self.queries_sent += 1
        stats.inc_value("murmur/threads/queries")
        if response.status != 200:
            self._api_error(response, f"q:{q}", "threads: the search for %r failed (%s); the next run asks again", q)
            yield from self._query(index + 1)
            return
        page = self.parse_or_skip(lambda: parse_keyword_search(response.body),
                                  "threads: skipped a malformed search page for %r", q)
        if page is None:
            yield from self._query(index + 1)
            return
        newest = self._took(page, meta["newest"])
        yield from page.posts

        cursor = self.cursors.get(q)
        more = bool(page.after) and page.entries > 0
        if more and meta["page"] < self.max_pages:
            yield self._search(index, after=page.after, page=meta["page"] + 1, newest=newest)
            return
        if more and cursor:
            # More new posts than a run may fetch: the cursor moves past the older ones left unread.
            stats.inc_value("murmur/gaps")
            logger.warning("threads: more than %d pages of new posts for %r since the last run; the older ones "
                           "are skipped (raise sources.threads.max_pages or shorten its interval)",
                           self.max_pages, q)
        if newest is not None and (not cursor or newest > int(cursor)):
            # Every page of this query was yielded above it, so the store commits them first.
            yield CursorUpdate(self.name, q, str(newest))
        yield from self._query(index + 1)

    def search_failed(self, failure: Failure) -> Iterator[scrapy.Request]:
        if self._request_failed(failure, "a search request"):
            yield from self._query(failed_request(failure).meta["index"] + 1)

    # --- post pages ----------------------------------------------------------------------------

    def _page(self, url: str) -> scrapy.Request:
        return scrapy.Request(self._fetch_url(url), callback=self.parse_page, errback=self.page_failed,
                              meta={"page": url}, priority=-1)

    def _fetch_url(self, url: str) -> str:
        """Where a page is fetched from: itself, or the stand-in host for the real hosts when one is set."""
        parts = urlsplit(url)
        if self.pages_url and parts.netloc.lower() in REAL_HOSTS:
            base = urlsplit(self.pages_url)
            return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
        return url

    def parse_page(self, response: Response) -> Iterator[Any]:
        stats = self.crawler.stats
        self.pages_fetched += 1
        stats.inc_value("murmur/threads/post_pages")
        try:
            page = parse_post_page(response.body, response.url)
        except ParseError as err:
            self.unreadable += 1
            self.skip_malformed("threads: skipped an unreadable post page %s", response.meta["page"], err=err)
            return
        if page.blocked:
            self._count_blocked(page.blocked)
            return
        self._count_posts(page.posts, page.skipped)
        yield from page.posts

    def page_failed(self, failure: Failure) -> None:
        kind, reason = describe_failure(failure)
        request = failed_request(failure)
        response = error_response(failure)
        where = urlsplit(response.url if response is not None else request.url).path.lower()
        if where.startswith(_LOGIN_PATHS) or where.startswith(_CHALLENGE_PATHS):
            # Redirected to a login or challenge page that itself answered an error (or is off limits).
            self.pages_fetched += 1
            self._count_blocked("login wall" if where.startswith(_LOGIN_PATHS) else "challenge")
            return
        if kind == "ignored" and "robots.txt" in reason:
            self._count_blocked("robots.txt")
            return
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")
        if response is not None:
            self.pages_fetched += 1
        self._warn(f"page:{kind}", "threads: a post page failed (%s: %s); counted, the crawl goes on",
                   request.meta.get("page", request.url), reason)

    def _count_blocked(self, reason: str) -> None:
        self.blocked[reason] += 1
        self.crawler.stats.inc_value("murmur/blocked")
        self.crawler.stats.inc_value(f"murmur/blocked/{reason.replace(' ', '_').replace('.', '_')}")

    # --- reporting -----------------------------------------------------------------------------

    def closed(self, reason: str) -> None:
        self._closed_reach(bool(self.token))
        if self.queries_sent:
            logger.info("threads: sent %d keyword queries (a user may send %s in 24 hours)",
                        self.queries_sent, f"{DAILY_QUERIES:,}")
        if self.pages_fetched or self.blocked:
            blocked = sum(self.blocked.values())
            why = ", ".join(f"{r}: {n}" if len(self.blocked) > 1 else r for r, n in sorted(self.blocked.items()))
            logger.log(
                logging.WARNING if blocked or self.unreadable else logging.INFO,
                "threads: %d post pages fetched, %d blocked%s, %d unreadable",
                self.pages_fetched, blocked, f" ({why})" if blocked else "", self.unreadable,
            )
