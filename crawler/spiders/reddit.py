"""Reddit: search results (submissions), newest first, and optionally their comments. Builds requests
and follows cursors; what a response means is `murmur.crawler.parsers.reddit`.

API (https://www.reddit.com/dev/api#GET_search): ``GET [/r/<sub>]/search?q=&sort=new&limit=100&after=``
(``restrict_sr=1`` inside a subreddit), and ``GET /comments/<id>`` for a submission's comment tree.

Two ways in:

- With ``MURMUR_REDDIT_CLIENT_ID`` and ``MURMUR_REDDIT_CLIENT_SECRET`` set: app-only OAuth
  (https://github.com/reddit-archive/reddit/wiki/OAuth2#application-only-oauth): one
  ``POST {base_url}/api/v1/access_token`` with ``grant_type=client_credentials`` and HTTP basic
  auth, then every request to the OAuth host with ``Authorization: bearer <token>``. The OAuth host
  is https://oauth.reddit.com when ``base_url`` is Reddit's own, else ``base_url`` itself (a test
  server or a proxy serves both). Reddit allows 100 requests a minute per client id and reports
  what is left in ``X-Ratelimit-Remaining``/``X-Ratelimit-Reset``, which the spider waits on.
- Without them: the public JSON listings (``/search.json``) on ``base_url``, at a tenth of the
  OAuth rate (Reddit's figure for unauthenticated clients was 10 a minute).

robots.txt: since July 2024 https://www.reddit.com/robots.txt disallows everything and points
automated agents to Reddit's Public Content Policy and Data API terms. The public JSON path obeys
it (so it is refused on reddit.com itself, with a line saying what to set); OAuth requests are the
registered-client access those terms provide for, governed by them and by the rate-limit headers,
so they do not consult robots.txt.

Incremental: per query, the cursor is the newest ``created_utc`` seen; a later run pages the
newest-first results only until it reaches older posts.

The app-only token lives an hour (``expires_in``); a run is bounded by ``max_pages`` per query and
``MAX_COMMENT_THREADS``, minutes at the OAuth rate, so one token a run is enough. Should Reddit refuse
it anyway (401), the source stops for the run with one line and the next run gets a new token.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import scrapy
from scrapy.exceptions import CloseSpider
from w3lib.http import basic_auth_header

from murmur.crawler.items import CursorUpdate, Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.reddit import parse_comments, parse_error, parse_listing, parse_token
from murmur.crawler.pipelines import post_terms, term_matcher
from murmur.crawler.spiders.base import MurmurSpider
from murmur.crawler.spiders.common import UNREACHABLE, as_bool, as_list, failed_request

if TYPE_CHECKING:
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings
    from murmur.crawler.text import TermMatcher

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BASE_URL = "https://www.reddit.com"
OAUTH_HOST = "https://oauth.reddit.com"
CLIENT_ID_VAR = "MURMUR_REDDIT_CLIENT_ID"
CLIENT_SECRET_VAR = "MURMUR_REDDIT_CLIENT_SECRET"

PAGE_SIZE = 100  # the most a listing returns
COMMENT_LIMIT = 100  # newest comments per submission (sort=new); "more" stubs beyond are not followed
# One comment tree is one request; this bounds a run that finds many new submissions at once
# (250 requests: about 2.5 minutes at the OAuth rate).
MAX_COMMENT_THREADS = 250
# Without OAuth Reddit allowed a tenth of the OAuth rate (10 vs 100 requests a minute).
PUBLIC_SLOWDOWN = 10.0
# Wait for the rate-limit window to reset when this few requests are left in it; the wait is capped
# at Reddit's 10-minute window.
RATELIMIT_FLOOR = 2.0
RATELIMIT_MAX_WAIT = 600.0
# Error statuses the callbacks read themselves (the body says whether a subreddit is private, or
# the token is refused); 429 and 5xx go through Retry-After and Scrapy's retries first.
HANDLED_STATUSES = [400, 401, 403, 404]


def credentials(values: dict[str, str]) -> tuple[str | None, str | None]:
    """(client id, client secret) from the source's credentials (config: MURMUR_REDDIT_CLIENT_ID and
    MURMUR_REDDIT_CLIENT_SECRET), each None when unset or blank."""
    return (values.get("client_id", "").strip() or None, values.get("client_secret", "").strip() or None)


def api_base(base_url: str) -> str:
    """Where OAuth requests go: oauth.reddit.com for Reddit's own hosts, else ``base_url`` itself."""
    host = (urlsplit(base_url).hostname or "").lower()
    return OAUTH_HOST if host == "reddit.com" or host.endswith(".reddit.com") else base_url


class RedditSpider(MurmurSpider):
    name = "reddit"
    config_keys = ("base_url", "subreddits", "comments", "replies", "max_pages")

    def __init__(
        self,
        base_url: str | None = None,
        queries: list[str] | str | None = None,
        subreddits: list[str] | str | None = None,
        comments: bool | str = False,
        replies: bool | str = False,
        max_pages: int | str = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.queries = as_list(queries)
        self.subreddits = [s.strip().removeprefix("/").removeprefix("r/") for s in as_list(subreddits)]
        # `replies` (every source's key for a thread's replies) and `comments` (its older name) are one switch.
        self.comments = as_bool(comments) or as_bool(replies)
        self._matcher: TermMatcher | None = None
        self.max_pages = int(max_pages)
        self.client_id, self.client_secret = credentials(self.credentials)
        self.oauth = bool(self.client_id and self.client_secret)
        self.api_url = api_base(self.base_url) if self.oauth else self.base_url
        self.instances = [self.api_url]
        self.failures: dict[str, str] = {}
        self.token: str | None = None
        self.cursors: dict[str, str] = {}
        self.comment_threads = 0
        self._resume_at = 0.0
        self._warned: set[str] = set()
        self.unreachable: dict[str, str] = {}

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        murmur = settings.get("MURMUR_SETTINGS")  # handed in by `murmur crawl`
        if murmur is None:  # `scrapy crawl reddit`: loaded as the CLI would
            from murmur.config import load_settings

            murmur = load_settings()
        source = murmur.sources.get("reddit")
        if not all(credentials(source.credentials if source else {})):
            # The public listings get a tenth of the OAuth rate; DOWNLOAD_DELAY is set per source by
            # the runner (config: sources.reddit.download_delay, the OAuth figure).
            priority = settings.getpriority("DOWNLOAD_DELAY") or 0
            settings.set("DOWNLOAD_DELAY", settings.getfloat("DOWNLOAD_DELAY") * PUBLIC_SLOWDOWN, priority=priority)

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        return {**super().config_arguments(settings, source), "queries": list(source.tags) or list(settings.terms)}

    # --- start: credentials, then one search chain per (scope, query) ---------------------------

    async def start(self) -> AsyncIterator[Any]:
        if bool(self.client_id) != bool(self.client_secret):
            missing = CLIENT_SECRET_VAR if self.client_id else CLIENT_ID_VAR
            present = CLIENT_ID_VAR if self.client_id else CLIENT_SECRET_VAR
            self._fail(f"{present} is set but {missing} is not; set both (an app from "
                       "https://www.reddit.com/prefs/apps), or neither to read the public JSON listings")
            return
        self.cursors = self.stored_cursors()
        if self.oauth:
            yield scrapy.FormRequest(
                f"{self.base_url}/api/v1/access_token",
                formdata={"grant_type": "client_credentials"},
                headers={"Authorization": basic_auth_header(self.client_id or "", self.client_secret or "")},
                callback=self.got_token,
                errback=self.failed,
                dont_filter=True,
                meta={"dont_obey_robotstxt": True, "handle_httpstatus_list": HANDLED_STATUSES},
            )
            return
        for request in self._first_searches():
            yield request

    def got_token(self, response: Response) -> Any:
        if response.status != 200:
            error = parse_error(response.body, response.status)
            self._fail(f"Reddit refused the client credentials (HTTP {response.status}: {error.message}); "
                       f"check {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR}")
            return
        try:
            token = parse_token(response.body)
        except ParseError as err:
            self._fail(f"Reddit refused the client credentials ({err}); check {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR}")
            return
        self.token = token.access_token
        yield from self._first_searches()

    def _first_searches(self) -> list[scrapy.Request]:
        requests = []
        for scope in [f"r/{s}" for s in self.subreddits] or ["all"]:
            for q in self.queries:
                query = f"{scope}:{q}"
                cursor = _cursor_value(self.cursors.get(query))
                requests.append(self._search(scope, q, cursor=cursor, page=1))
        return requests

    # --- requests --------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"bearer {self.token}"} if self.token else {}

    def _meta(self, **meta: Any) -> dict[str, Any]:
        meta["handle_httpstatus_list"] = HANDLED_STATUSES
        if self.oauth:
            meta["dont_obey_robotstxt"] = True  # governed by the Data API terms (module docstring)
        return meta

    def _search(
        self, scope: str, q: str, *, cursor: float | None, page: int, after: str | None = None,
        newest: float | None = None,
    ) -> scrapy.Request:
        path = "/search" if scope == "all" else f"/r/{quote(scope[2:], safe='')}/search"
        if not self.oauth:
            path += ".json"
        params: dict[str, Any] = {"q": q, "sort": "new", "limit": PAGE_SIZE, "type": "link", "raw_json": 1}
        if scope != "all":
            params["restrict_sr"] = 1
        if after:
            params["after"] = after
        return scrapy.Request(
            f"{self.api_url}{path}?{urlencode(params)}",
            headers=self._headers(),
            callback=self.parse_search,
            errback=self.failed,
            meta=self._meta(scope=scope, q=q, cursor=cursor, page=page, newest=newest),
        )

    def _thread_terms(self, post: Post) -> list[str]:
        """The terms a submission matches: the terms its comments are stored with."""
        if self._matcher is None:
            self._matcher = term_matcher(self.crawler)
        return post_terms(self._matcher, post)

    def _comments(self, submission_id: str, terms: list[str]) -> scrapy.Request:
        path = f"/comments/{quote(submission_id, safe='')}" + ("" if self.oauth else ".json")
        params = {"sort": "new", "limit": COMMENT_LIMIT, "raw_json": 1}
        return scrapy.Request(
            f"{self.api_url}{path}?{urlencode(params)}",
            headers=self._headers(),
            callback=self.parse_comment_tree,
            errback=self.failed,
            priority=-1,  # after the search pages, so their cursors are committed first
            meta=self._meta(submission=submission_id, terms=terms),
        )

    # --- callbacks ---------------------------------------------------------------------------

    async def parse_search(self, response: Response) -> AsyncIterator[Any]:
        meta = response.meta
        scope, q = meta["scope"], meta["q"]
        page = self._answer(response, scope, parse_listing, "page")
        if page is None:
            return
        stats = self.crawler.stats
        self.count_page(len(page.posts), page.skipped)
        if page.removed:
            stats.inc_value("murmur/reddit/removed", page.removed)

        cursor: float | None = meta["cursor"]
        fresh = [p for p in page.posts if cursor is None or p.created_at.timestamp() >= cursor]
        for post in fresh:
            yield post

        # Comments of matching submissions new to us (the one at the cursor had its comments read last run),
        # stored with the submission's terms: the thread's.
        commented = [
            (p, terms) for p in fresh
            if p.metrics.get("replies", 0) > 0 and (cursor is None or p.created_at.timestamp() > cursor)
            and (terms := self._thread_terms(p))
        ][: max(MAX_COMMENT_THREADS - self.comment_threads, 0)] if self.comments else []
        newest = max((v for v in (meta["newest"], page.newest_utc) if v is not None), default=None)
        reached_seen = cursor is not None and page.oldest_utc is not None and page.oldest_utc < cursor
        more = bool(page.after) and not reached_seen and meta["page"] < self.max_pages
        if commented or more:
            await self._respect_rate_limit()
        for post, terms in commented:
            self.comment_threads += 1
            yield self._comments(str(post.raw.get("id") or post.source_id.removeprefix("t3_")), terms)
        if more:
            yield self._search(scope, q, cursor=cursor, page=meta["page"] + 1, after=page.after, newest=newest)
        elif newest is not None and (cursor is None or newest > cursor):
            # This query's chain is over (older posts reached, last page, or the page cap): later runs
            # stop at the newest post seen. Its posts are yielded above, so they commit first.
            yield CursorUpdate(self.name, f"{scope}:{q}", _cursor_text(newest))

    async def parse_comment_tree(self, response: Response) -> AsyncIterator[Any]:
        page = self._answer(response, f"comments of {response.meta['submission']}", parse_comments, "comment tree")
        if page is None:
            return
        stats = self.crawler.stats
        stats.inc_value("murmur/reddit/comment_trees")
        self.count_page(len(page.posts), page.skipped)
        if page.removed:
            stats.inc_value("murmur/reddit/removed", page.removed)
        if page.more:
            stats.inc_value("murmur/reddit/more_skipped", page.more)
        for post in page.posts:
            post.terms = list(response.meta["terms"])  # the thread's: kept by the term pipeline as a reply
            yield post

    def failed(self, failure: Failure) -> None:
        kind, reason = self.count_failure(failure)
        if kind == "ignored" and "robots.txt" in reason:
            self._fail(f"{self.base_url}/robots.txt forbids the public JSON listings; set {CLIENT_ID_VAR} and "
                       f"{CLIENT_SECRET_VAR} to use Reddit's Data API (https://www.reddit.com/prefs/apps)")
        elif kind in UNREACHABLE or "access_token" in failed_request(failure).url:
            # The host cannot be reached (or no token came back): the source did not run.
            self.unreachable.setdefault(self.api_url, reason)
            self.failures.setdefault(self.api_url, reason)
        elif kind not in self._warned:  # an error after retries: counted, reported once a run
            self._warned.add(kind)
            url = _without_query(failed_request(failure).url)
            logger.warning("reddit: %s failed (%s); counted, the crawl goes on", url, reason)

    def _answer(self, response: Response, what: str, parse: Callable[[bytes], T], kind: str) -> T | None:
        """The parsed body of a 200 answer; None for an error status (`_refused(response, what)`) or a body
        that is no `kind` (counted as malformed)."""
        if response.status != 200:
            self._refused(response, what)
            return None
        self._note_rate_limit(response)
        return self.parse_or_skip(lambda: parse(response.body), f"reddit: skipped a malformed {kind} from %s",
                                  _without_query(response.url))

    # --- errors, rate limit ----------------------------------------------------------------

    def _refused(self, response: Response, what: str) -> None:
        """An error status the callbacks handle: a private or banned subreddit (or a vanished
        submission) is skipped with a line; a refused token or client stops the source."""
        status = response.status
        self.crawler.stats.inc_value(f"murmur/errors/http_{status}")
        error = parse_error(response.body, status)
        if status == 404 or error.reason is not None:
            # {"reason": "private"|"quarantined"|"banned"|..., "error": 403}: that subreddit only.
            if what not in self._warned:
                self._warned.add(what)
                logger.warning("reddit: skipped %s (HTTP %d: %s)", what, status, error.reason or error.message)
            return
        if status in (401, 403):
            hint = (f"check {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR}" if self.oauth else
                    f"set {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR} to use Reddit's Data API")
            self._fail(f"Reddit refused the request (HTTP {status}: {error.message}); {hint}")
            # Stop now rather than send what is queued: every request would be refused the same way.
            # "finished" is the reason the runner reads as a normal end; `failures` says why it failed.
            raise CloseSpider("finished")
        logger.warning("reddit: %s answered HTTP %d for %s (%s)", self.api_url, status, what, error.message)

    def _fail(self, reason: str) -> None:
        """The one line for a source that cannot go on this run; the runner marks it failed."""
        if self.api_url not in self.failures:
            self.failures[self.api_url] = reason
            logger.error("reddit: %s", reason)

    def _note_rate_limit(self, response: Response) -> None:
        remaining = _header_number(response, b"X-Ratelimit-Remaining")
        reset = _header_number(response, b"X-Ratelimit-Reset")
        if remaining is not None and reset is not None and remaining <= RATELIMIT_FLOOR:
            self._resume_at = max(self._resume_at, time.monotonic() + min(max(reset, 0.0), RATELIMIT_MAX_WAIT))

    async def _respect_rate_limit(self) -> None:
        """Before a new request: when the window is (nearly) spent, wait until Reddit resets it."""
        wait = self._resume_at - time.monotonic()
        if wait <= 0:
            return
        if "ratelimit" not in self._warned:
            self._warned.add("ratelimit")
            logger.info("reddit: the rate-limit window is nearly spent; waiting %.0fs for it to reset", wait)
        self.crawler.stats.inc_value("murmur/reddit/ratelimit_waits")
        await asyncio.sleep(wait)

    def closed(self, reason: str) -> None:
        for host, why in self.unreachable.items():
            logger.warning("reddit: %s could not be reached (%s); will retry at the next run", host, why)
        if self.comment_threads >= MAX_COMMENT_THREADS:
            logger.info("reddit: fetched the comments of %d submissions, the most one run takes", MAX_COMMENT_THREADS)


def _cursor_value(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cursor_text(stamp: float) -> str:
    # Whole seconds (created_utc carries no fraction), rounded down so the boundary post is seen again
    # rather than missed; the store keeps it once.
    return str(math.floor(stamp))


def _header_number(response: Response, name: bytes) -> float | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        number = float(value.decode("latin-1").strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]

