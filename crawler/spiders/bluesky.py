"""Bluesky: post search (with an app password) and public author feeds and custom feeds. Builds
requests and follows cursors; what a response means is `murmur.crawler.parsers.bluesky`.

API (XRPC, https://docs.bsky.app/docs/category/http-reference):
- `app.bsky.feed.searchPosts` (q, sort=latest, since, limit <= 100, cursor) on `base_url`
  (https://bsky.social), with a session from `com.atproto.server.createSession`: Bluesky answers
  logged-out search with 403 on its public AppView and refuses cursors there (bluesky-social/atproto
  #3423, #3891; bluesky-social/bsky-docs#296). An expired access token (HTTP 400 `ExpiredToken`) is
  renewed with `com.atproto.server.refreshSession`.
- `app.bsky.feed.getAuthorFeed` (actor) and `app.bsky.feed.getFeed` (feed = at:// URI of a feed
  generator), which the public AppView (`instances[0]`, https://public.api.bsky.app) answers without
  a session.

With `replies = true`, each matching post that has replies (``replyCount`` > 0) also has its thread read from
the public AppView, `app.bsky.feed.getPostThread` (uri, depth=THREAD_DEPTH, parentHeight=0; no session needed,
https://docs.bsky.app/docs/api/app-bsky-feed-get-post-thread): the replies below it are stored with its terms
and their own reply refs. At most MAX_THREADS such requests a run.

Incremental: a search asks only for posts since the newest one stored (`since` is inclusive, so that
one comes back and the upsert keeps it once); a feed is read newest first until a page reaches a post
older than the newest stored. Either way the cursor is the newest post's sort time. A date window (`--since A
--until B`) is searched with `since=A&until=B` only, never moving these cursors: see `bluesky_window`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import JsonRequest

from murmur.crawler.items import CursorUpdate, Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.bluesky import (
    FeedPage,
    Session,
    format_datetime,
    parse_datetime,
    parse_feed,
    parse_search,
    parse_session,
    xrpc_error,
)
from murmur.crawler.parsers.bluesky_thread import parse_thread
from murmur.crawler.pipelines import post_terms, term_matcher
from murmur.crawler.spiders import bluesky_window
from murmur.crawler.spiders.base import WINDOW_DONE, MurmurSpider
from murmur.crawler.spiders.common import (
    as_bool,
    as_list,
    describe_failure,
    error_response,
    error_status,
    failed_request,
)

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings
    from murmur.crawler.text import TermMatcher

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://bsky.social"
DEFAULT_APPVIEW = "https://public.api.bsky.app"
PAGE_SIZE = 100  # the most searchPosts, getAuthorFeed and getFeed return per page
HANDLE_ENV = "MURMUR_BLUESKY_HANDLE"
PASSWORD_ENV = "MURMUR_BLUESKY_APP_PASSWORD"
HOW_TO = (
    f"set {HANDLE_ENV} (e.g. you.bsky.social) and {PASSWORD_ENV} "
    "(an app password: Bluesky Settings > Privacy and security > App passwords)"
)
MAX_REFRESHES = 3  # a session refreshed more often than this in one run is not working
# Thread requests a run at most (one per matching post with replies), and reply levels asked for each
# (the lexicon's default; deeper replies are left out).
MAX_THREADS = 100
THREAD_DEPTH = 6


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


class BlueskySpider(MurmurSpider):
    name = "bluesky"
    config_keys = ("base_url", "accounts", "feeds", "max_pages", "replies")
    windowed = True  # search only (bluesky_window)

    def __init__(
        self,
        base_url: str | None = None,
        appview: str | None = None,
        queries: list[str] | str | None = None,
        accounts: list[str] | str | None = None,
        feeds: list[str] | str | None = None,
        max_pages: int | str = 10,
        replies: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.replies = as_bool(replies)
        self.threads: set[str] = set()  # posts whose thread was asked for this run
        self._matcher: TermMatcher | None = None
        # `scrapy crawl bluesky -a queries=RedNote,Lemon8 -a accounts=a.bsky.social` passes strings.
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.appview = (appview or DEFAULT_APPVIEW).rstrip("/")
        self.queries = as_list(queries)
        self.accounts = [a.lstrip("@") for a in as_list(accounts)]
        self.feeds = as_list(feeds)
        self.max_pages = int(max_pages)
        # For the runner (crawler/runner.py `_outcome`): the hosts this run reads from, and why any failed.
        self.instances: list[str] = []
        self.failures: dict[str, str] = {}
        self._cursors: dict[str, str] = {}
        self._session: Session | None = None
        self._refreshing = False
        self._refreshes = 0
        self._waiting: list[scrapy.Request] = []
        self._stopped: str | None = None  # why this source stopped for the run (already logged)
        self._windows: dict[str, str | None] = {}  # with a window: query -> the `until` to ask first

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        return {
            **super().config_arguments(settings, source),
            "appview": source.instances[0] if source.instances else DEFAULT_APPVIEW,
            "queries": list(source.tags) or list(settings.terms),
        }

    async def start(self) -> AsyncIterator[Any]:
        # Config: MURMUR_BLUESKY_HANDLE and MURMUR_BLUESKY_APP_PASSWORD.
        handle = self.credentials.get("handle", "")
        password = self.credentials.get("app_password", "")
        searching = bool(self.queries and handle and password)
        if self.window is not None and not (handle and password):
            self._stop("credentials", f"bluesky: a date window is read through search, which needs an app password; "
                       f"{HOW_TO}")
            return
        if self.window is not None:  # the queries whose window is not collected whole yet, if any
            self._windows = bluesky_window.pending(self.window, self.queries, self.window_cursors(),
                                                   accounts=len(self.accounts), feeds=len(self.feeds))
            self.accounts, self.feeds = [], []  # they take no dates: skipped (said in `pending`)
            if not (searching := bool(self._windows)):
                return
        elif not (searching or self.accounts or self.feeds):
            self._stop(
                "credentials",
                f"bluesky: search needs an app password and no accounts or feeds are configured; {HOW_TO}, "
                "or list handles in sources.bluesky.accounts or feed URIs in sources.bluesky.feeds",
            )
            return
        self._cursors = self.stored_cursors()
        if searching:
            # Search first needs a session; the feeds follow once the login has an answer, so a refused
            # app password stops the whole source before anything else is asked.
            self.instances.append(self.base_url)
            yield JsonRequest(
                f"{self.base_url}/xrpc/com.atproto.server.createSession",
                data={"identifier": handle, "password": password},
                callback=self._logged_in,
                errback=self._login_failed,
                dont_filter=True,
                meta={"step": "login", "endpoint": self.base_url, "key": "login"},
            )
            return
        if self.queries:
            logger.warning(
                "bluesky: search needs an app password, so this run reads only the configured accounts and "
                "feeds; to search, %s", HOW_TO,
            )
        for request in self._feed_requests():
            yield request

    # --- the session ---------------------------------------------------------------------------

    def _logged_in(self, response: Response) -> Iterator[Any]:
        try:
            self._session = parse_session(response.body)
        except ParseError as err:
            self.crawler.stats.inc_value("murmur/errors/malformed")
            self._fail(self.base_url, f"login answer unusable ({err}); search skipped")
            logger.warning("bluesky: %s answered the login with something unusable (%s)", self.base_url, err)
            yield from self._feed_requests()
            return
        self.crawler.stats.inc_value("murmur/bluesky/logins")
        if self.window is not None:  # the window's searches only; accounts and feeds take no dates
            for query, until in self._windows.items():
                yield self._search_request(query, since=format_datetime(self.window.since), until=until, page=1)
            return
        for query in self.queries:
            yield self._search_request(query, since=self._cursors.get(f"search:{query}"), page=1)
        yield from self._feed_requests()

    def _login_failed(self, failure: Failure) -> Iterator[Any]:
        kind, reason = self.count_failure(failure)
        if error_status(failure) in (400, 401, 403):
            # createSession answers a wrong handle or password with 401 AuthenticationRequired.
            self._stop(
                self.base_url,
                f"bluesky: {self.base_url} refused the login ({reason}{_detail(failure)}); "
                f"check {HANDLE_ENV} and {PASSWORD_ENV} (use an app password, not the account password)",
            )
            return
        self._fail(self.base_url, f"login: {reason}; search skipped")
        yield from self._feed_requests()

    def _auth(self) -> dict[str, str]:
        assert self._session is not None, "search before login"
        return {"Authorization": f"Bearer {self._session.access_jwt}"}

    def _expired(self, request: scrapy.Request) -> Iterator[Any]:
        """An access token expired mid-run: refresh the session once, then ask again."""
        assert self._session is not None
        if request.meta.get("token") != self._session.access_jwt:
            yield self._with_current_token(request)  # already refreshed since this request was sent
            return
        self._waiting.append(request)
        if self._refreshing:
            return
        if self._refreshes >= MAX_REFRESHES:
            self._stop(self.base_url, f"bluesky: {self.base_url} keeps expiring the session; {HOW_TO}")
            return
        self._refreshing = True
        self._refreshes += 1
        yield scrapy.Request(
            f"{self.base_url}/xrpc/com.atproto.server.refreshSession",
            method="POST",
            headers={"Authorization": f"Bearer {self._session.refresh_jwt}"},
            callback=self._refreshed,
            errback=self._refresh_failed,
            dont_filter=True,
            meta={"step": "refresh", "endpoint": self.base_url, "key": "refresh"},
        )

    def _refreshed(self, response: Response) -> Iterator[Any]:
        self._refreshing = False
        try:
            self._session = parse_session(response.body)
        except ParseError as err:
            self._stop(self.base_url, f"bluesky: {self.base_url} answered the session refresh unusably ({err})")
            return
        self.crawler.stats.inc_value("murmur/bluesky/refreshes")
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            yield self._with_current_token(request)

    def _refresh_failed(self, failure: Failure) -> None:
        self._refreshing = False
        kind, reason = self.count_failure(failure)
        self._stop(self.base_url, f"bluesky: the session expired and {self.base_url} did not renew it ({reason}"
                   f"{_detail(failure)}); if this repeats, {HOW_TO}")

    def _with_current_token(self, request: scrapy.Request) -> scrapy.Request:
        retry = request.replace(dont_filter=True)
        retry.headers.update(self._auth())
        retry.meta["token"] = self._session.access_jwt if self._session else None
        return retry

    # --- requests ----------------------------------------------------------------------------------

    def _search_request(
        self, query: str, *, since: str | None, page: int, cursor: str | None = None,
        newest: datetime | None = None, until: str | None = None,
    ) -> scrapy.Request:
        # https://docs.bsky.app/docs/api/app-bsky-feed-search-posts; `since` (included) and `until` (excluded)
        # compare with a post's sortAt. With a date window, its pages go to parse_window.
        params: dict[str, str | int] = {"q": query, "sort": "latest", "limit": PAGE_SIZE}
        for name, value in (("since", since), ("until", until), ("cursor", cursor)):
            if value:
                params[name] = value
        key = f"search:{query}"
        return scrapy.Request(
            f"{self.base_url}/xrpc/app.bsky.feed.searchPosts?{urlencode(params)}",
            headers=self._auth(),
            callback=self.parse_search if self.window is None else self.parse_window,
            errback=self.failed,
            meta={
                "step": "search", "endpoint": self.base_url, "key": self.window.key(key) if self.window else key,
                "query": query, "since": since, "until": until, "page": page, "newest": newest,
                "token": self._session and self._session.access_jwt,
            },
        )

    def _feed_requests(self) -> Iterator[scrapy.Request]:
        if (self.accounts or self.feeds) and self.appview not in self.instances:
            self.instances.append(self.appview)
        for actor in self.accounts:
            yield self._feed_request("author", actor, page=1)
        for uri in self.feeds:
            yield self._feed_request("feed", uri, page=1)

    def _feed_request(
        self, kind: str, target: str, *, page: int, cursor: str | None = None, newest: datetime | None = None
    ) -> scrapy.Request:
        if kind == "author":  # https://docs.bsky.app/docs/api/app-bsky-feed-get-author-feed
            method, params = "app.bsky.feed.getAuthorFeed", {"actor": target, "limit": PAGE_SIZE}
        else:  # https://docs.bsky.app/docs/api/app-bsky-feed-get-feed
            method, params = "app.bsky.feed.getFeed", {"feed": target, "limit": PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        key = f"{kind}:{target}"
        return scrapy.Request(
            f"{self.appview}/xrpc/{method}?{urlencode(params)}",
            callback=self.parse_feed,
            errback=self.failed,
            meta={
                "step": kind, "endpoint": self.appview, "key": key, "target": target, "page": page,
                "newest": newest, "seen": parse_datetime(self._cursors.get(key)),
            },
        )

    # --- responses ---------------------------------------------------------------------------------

    def _read(self, response: Response, parse: Callable[[bytes], FeedPage]) -> FeedPage | None:
        page = self.parse_or_skip(lambda: parse(response.body), "bluesky: skipped a malformed page from %s",
                                  response.url)
        if page is None:
            return None
        self.count_page(len(page.posts), page.skipped)
        return page

    def parse_search(self, response: Response) -> Iterator[Any]:
        if self._stopped:
            return
        meta = response.meta
        page = self._read(response, parse_search)
        if page is None:
            return
        yield from page.posts
        yield from self._thread_requests(page.posts)
        newest = _later(meta["newest"], page.newest)
        if page.cursor and (page.posts or page.skipped) and meta["page"] < self.max_pages:
            yield self._search_request(
                meta["query"], since=meta["since"], page=meta["page"] + 1, cursor=page.cursor, newest=newest
            )
            return
        newest = _later(newest, parse_datetime(meta["since"]))
        if newest:
            # The chain is over (last page or page cap); the posts before are yielded, so the store
            # commits them first. A later run asks `since` this time.
            yield CursorUpdate(self.name, meta["key"], format_datetime(newest))

    def parse_window(self, response: Response) -> Iterator[Any]:
        """A window's search page: the posts inside it, then its progress; the next page while the run may."""
        if self._stopped:
            return
        meta = response.meta
        page = self._read(response, parse_search)
        if page is None:
            return  # the progress stays: the next run asks this page again
        kept, progress = self.in_window(page.posts), bluesky_window.progress(page)
        yield from self.emit(kept, (meta["key"], progress) if progress else None)
        yield from self._thread_requests(kept)
        if progress == WINDOW_DONE:
            return
        if meta["page"] < self.max_pages:
            yield self._search_request(meta["query"], since=meta["since"], until=meta["until"], page=meta["page"] + 1,
                                       cursor=page.cursor)
            return
        logger.info("bluesky: the window for %r is not collected whole after %d pages; run the same command "
                    "again to go on from where this run stopped", meta["query"], meta["page"])

    def parse_feed(self, response: Response) -> Iterator[Any]:
        if self._stopped:
            return
        meta = response.meta
        page = self._read(response, parse_feed)
        if page is None:
            return
        yield from page.posts
        yield from self._thread_requests(page.posts)
        seen: datetime | None = meta["seen"]
        newest = _later(meta["newest"], page.newest)
        # Feeds are newest first: a page that reaches back to the newest post stored is the last one needed.
        reached_seen = seen is not None and page.oldest is not None and page.oldest <= seen
        if page.cursor and (page.posts or page.skipped) and not reached_seen and meta["page"] < self.max_pages:
            yield self._feed_request(
                meta["step"], meta["target"], page=meta["page"] + 1, cursor=page.cursor, newest=newest
            )
            return
        newest = _later(newest, seen)
        if newest:
            yield CursorUpdate(self.name, meta["key"], format_datetime(newest))

    # --- conversations -------------------------------------------------------------------------------

    def _thread_requests(self, posts: list[Post]) -> Iterator[scrapy.Request]:
        if not self.replies:
            return
        if self._matcher is None:
            self._matcher = term_matcher(self.crawler)
        for post in posts:
            if post.metrics.get("replies", 0) <= 0 or post.source_id in self.threads:
                continue
            terms = post_terms(self._matcher, post)
            if not terms:
                continue
            if len(self.threads) >= MAX_THREADS:
                self.crawler.stats.inc_value("murmur/bluesky/threads_capped")
                return
            self.threads.add(post.source_id)
            if self.appview not in self.instances:
                self.instances.append(self.appview)
            params = {"uri": post.source_id, "depth": THREAD_DEPTH, "parentHeight": 0}
            yield scrapy.Request(
                f"{self.appview}/xrpc/app.bsky.feed.getPostThread?{urlencode(params)}",
                callback=self.parse_thread,
                errback=self.failed,
                priority=-1,  # after the pages, so their cursors are committed first
                meta={"step": "thread", "endpoint": self.appview, "key": f"thread:{post.source_id}",
                      "terms": terms},
            )

    def parse_thread(self, response: Response) -> Iterator[Any]:
        if self._stopped:
            return
        thread = self.parse_or_skip(lambda: parse_thread(response.body), "bluesky: skipped a malformed thread from %s",
                                    response.url)
        if thread is None:
            return
        self.crawler.stats.inc_value("murmur/bluesky/threads")
        self.count_page(len(thread.replies), thread.skipped)
        for reply in thread.replies:
            reply.terms = list(response.meta["terms"])  # the thread's: kept by the term pipeline as a reply
            yield reply

    def failed(self, failure: Failure) -> Iterator[Any]:
        if self._stopped:
            return
        request = failed_request(failure)
        meta = request.meta
        kind, reason = describe_failure(failure)
        response = error_response(failure)
        if response is not None:
            error = xrpc_error(response.body)
            if meta.get("step") == "thread" and error and error[0] == "NotFound":
                # The post was deleted since it was found: no thread to read, nothing failed.
                self.crawler.stats.inc_value("murmur/bluesky/threads_gone")
                return
            if meta.get("step") == "search" and error and error[0] == "ExpiredToken":
                self.crawler.stats.inc_value("murmur/bluesky/expired_tokens")
                yield from self._expired(request)
                return
            if response.status in (401, 403):
                self.crawler.stats.inc_value(f"murmur/errors/{kind}")
                what = "search" if meta.get("step") == "search" else "public feeds"
                fix = HOW_TO if meta.get("step") == "search" else f"check sources.bluesky.instances ({self.appview})"
                self._stop(
                    meta["endpoint"],
                    f"bluesky: {meta['endpoint']} refused {what} ({reason}{_detail(failure)}); {fix}",
                )
                return
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")
        self._fail(meta.get("endpoint", "?"), f"{meta.get('key', '?')}: {reason}{_detail(failure)}")

    # --- outcome ------------------------------------------------------------------------------------

    def _fail(self, endpoint: str, reason: str) -> None:
        self.failures.setdefault(endpoint, reason)

    def _stop(self, endpoint: str, line: str) -> None:
        """A refused credential or access: one clear line, and this source does nothing more this run."""
        self._stopped = line
        logger.error("%s", line)
        reason = line.removeprefix("bluesky: ")
        self.failures = {endpoint: reason}
        for other in self.instances:  # nothing more is collected from any of them: the run failed
            self.failures.setdefault(other, "stopped: " + reason)

    def closed(self, reason: str) -> None:
        if self.failures and not self._stopped:
            # One line per source and run, however many requests failed; the next run tries again.
            listed = "; ".join(f"{host}: {why}" for host, why in sorted(self.failures.items()))
            logger.warning(
                "bluesky: %d of %d hosts answered with errors (%s); will retry at the next run",
                len(self.failures), max(len(self.instances), 1), listed,
            )


def _detail(failure: Failure) -> str:
    """' AuthenticationRequired: Invalid identifier or password' from an XRPC error body, else ''."""
    response = error_response(failure)
    if response is None:
        return ""
    error = xrpc_error(response.body)
    if error is None:
        return ""
    name, message = error
    return f" {name}: {message[:200]}" if message else f" {name}"
