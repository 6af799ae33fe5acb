"""YouTube: videos matching the terms (YouTube Data API v3 ``search.list``), newest first, and the
newest top-level comments on each (``commentThreads.list``). Builds requests and follows cursors;
what a response means is `murmur.crawler.parsers.youtube`.

API: ``GET {base_url}/search?part=snippet&q=&type=video&order=date&maxResults=50[&publishedAfter=]
[&pageToken=]`` (https://developers.google.com/youtube/v3/docs/search/list) and
``GET {base_url}/commentThreads?part=snippet&videoId=&maxResults=100&order=time&textFormat=plainText``
(https://developers.google.com/youtube/v3/docs/commentThreads/list).

The API key (``MURMUR_YOUTUBE_API_KEY``) travels in the ``X-Goog-Api-Key`` header, the header form
of the ``key`` parameter that every Google API accepts
(https://cloud.google.com/apis/docs/system-parameters): in the URL it would be printed wherever a
request URL is logged.

Quota: a project gets 10,000 units a day; ``search.list`` costs 100 units a call and
``commentThreads.list`` 1 (https://developers.google.com/youtube/v3/getting-started#quota). The
spider counts what it spent (``murmur/youtube/quota_units``) and logs it once a run; a spent quota or
a refused key stops the source for the run with one line naming the API's reason.

robots.txt: requests carry the project's API key and are governed by the YouTube API Services
terms and that quota, so they do not consult robots.txt (as the Reddit spider's OAuth requests).

Incremental: per query, the cursor is the newest ``publishedAt`` seen, sent back as
``publishedAfter`` (inclusive: the boundary video comes back once more and is stored once).

A date window (`murmur crawl youtube --since A --until B`) asks ``publishedAfter=A&publishedBefore=B``, newest
first and paged; its progress per query, under the window's key, is the oldest ``publishedAt`` read (the next
``publishedBefore``: inclusive, so that video comes back once more), then "done".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import scrapy
from scrapy.exceptions import CloseSpider

from murmur.crawler.items import CursorUpdate, Post
from murmur.crawler.parsers import iso_datetime
from murmur.crawler.parsers.youtube import ApiError, parse_comment_threads, parse_error, parse_search
from murmur.crawler.spiders.base import WINDOW_DONE, MurmurSpider
from murmur.crawler.spiders.common import UNREACHABLE, as_bool, error_response, failed_request

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.googleapis.com/youtube/v3"
KEY_VAR = "MURMUR_YOUTUBE_API_KEY"

SEARCH_PAGE_SIZE = 50  # search.list's maximum maxResults
COMMENTS_PAGE_SIZE = 100  # commentThreads.list's maximum maxResults
# Quota cost of a call, as the API documents it.
SEARCH_COST = 100
COMMENT_THREADS_COST = 1

# Errors that say the key or the project cannot be used now: every request would get the same.
# https://developers.google.com/youtube/v3/docs/errors (reasons), and google.rpc.ErrorInfo reasons
# in error.details (an invalid key answers 400 badRequest with API_KEY_INVALID there).
_STOPPING_REASONS = {
    "quotaExceeded", "dailyLimitExceeded", "rateLimitExceeded", "userRateLimitExceeded", "keyInvalid",
    "keyExpired", "accessNotConfigured", "ipRefererBlocked",
}
_STOPPING_DETAILS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "SERVICE_DISABLED", "API_KEY_SERVICE_BLOCKED"}
# commentThreads.list errors that concern one video only: skip it ("forbidden": "insufficient
# permissions" for that thread, e.g. a video made private since it was found).
_VIDEO_ONLY_REASONS = {"commentsDisabled", "videoNotFound", "commentThreadNotFound", "processingFailure", "forbidden"}
HANDLED_STATUSES = [400, 401, 403, 404]


def default_queries(terms: list[str]) -> list[str]:
    """All terms as one query, ``"TikTok refugee"|小红书|RedNote``: search.list takes ``|`` for OR, and
    one query costs 100 units where one per term would cost 100 each."""
    return ["|".join(f'"{t}"' if any(c.isspace() for c in t) else t for t in terms)] if terms else []


class YouTubeSpider(MurmurSpider):
    name = "youtube"
    config_keys = ("base_url", "comments", "max_pages")
    windowed = True

    def __init__(
        self,
        base_url: str | None = None,
        queries: list[str] | str | None = None,
        comments: bool | str = True,
        max_pages: int | str = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        # `-a queries=...` passes one string; a query may itself hold commas, so only lists split.
        self.queries = [queries] if isinstance(queries, str) else list(queries or [])
        self.comments = as_bool(comments)
        self.max_pages = int(max_pages)
        self.key = self.credentials.get("api_key")  # config: MURMUR_YOUTUBE_API_KEY
        self.instances = [self.base_url]
        self.failures: dict[str, str] = {}
        self.unreachable: dict[str, str] = {}
        self.quota_units = 0
        self._comment_videos: set[str] = set()
        self._warned: set[str] = set()

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        queries = list(source.tags) or default_queries(list(settings.terms))
        return {**super().config_arguments(settings, source), "queries": queries}

    async def start(self) -> AsyncIterator[Any]:
        if not self.key:
            self._fail(f"{KEY_VAR} is not set; set it to an API key of a Google Cloud project with the YouTube "
                       "Data API v3 enabled (https://developers.google.com/youtube/v3/getting-started)")
            return
        if self.window is not None:
            progress = self.window_cursors()
            for q in self.queries:
                if progress.get(q) == WINDOW_DONE:
                    logger.info("youtube: the window for %r was collected whole by an earlier run", q)
                    continue
                yield self._search(q, cursor=None, page=1, upper=progress.get(q) or _rfc3339(self.window.until))
            return
        cursors = self.stored_cursors()
        for q in self.queries:
            yield self._search(q, cursor=cursors.get(q), page=1)

    # --- requests --------------------------------------------------------------------------

    def _request(self, endpoint: str, params: dict[str, Any], callback: Any, **meta: Any) -> scrapy.Request:
        meta.update(handle_httpstatus_list=HANDLED_STATUSES, dont_obey_robotstxt=True)
        return scrapy.Request(
            f"{self.base_url}/{endpoint}?{urlencode(params)}",
            headers={"X-Goog-Api-Key": self.key or ""},
            callback=callback,
            errback=self.failed,
            meta=meta,
            priority=0 if endpoint == "search" else -1,  # search chains (and their cursors) first
        )

    def _search(self, q: str, *, cursor: str | None, page: int, token: str | None = None,
                newest: str | None = None, upper: str | None = None) -> scrapy.Request:
        params: dict[str, Any] = {
            "part": "snippet", "q": q, "type": "video", "order": "date", "maxResults": SEARCH_PAGE_SIZE,
        }
        if cursor:
            params["publishedAfter"] = cursor
        if self.window is not None:  # a date window: its start, and where to page back from
            params["publishedAfter"] = _rfc3339(self.window.since)
            if upper:
                params["publishedBefore"] = upper
        if token:
            params["pageToken"] = token
        return self._request("search", params, self.parse_search, q=q, cursor=cursor, page=page, newest=newest,
                             upper=upper)

    def _comment_threads(self, video_id: str) -> scrapy.Request:
        params = {
            "part": "snippet", "videoId": video_id, "maxResults": COMMENTS_PAGE_SIZE, "order": "time",
            "textFormat": "plainText",
        }
        return self._request("commentThreads", params, self.parse_comment_threads, video=video_id)

    # --- callbacks ---------------------------------------------------------------------------

    def parse_search(self, response: Response) -> Iterator[Any]:
        self._spend(SEARCH_COST)
        meta = response.meta
        q, cursor = meta["q"], meta["cursor"]
        if response.status != 200:
            error = parse_error(response.body, response.status)
            if response.status in (400, 401, 403):
                self._stop(error)  # a search refused is every search refused
            self._count_error(response, error, f"search {q!r}")
            return
        page = self.parse_or_skip(lambda: parse_search(response.body),
                                  "youtube: skipped a malformed search page for %r", q)
        if page is None:
            return
        self.count_page(len(page.posts), page.skipped)
        if self.window is not None:
            yield from self._window_page(meta, page.posts, page.next_page_token)
            return
        yield from page.posts

        if self.comments:
            since = _when(cursor) if cursor else None
            for post in page.posts:
                # New videos only: publishedAfter is inclusive, so the one at the cursor comes back, and
                # one video found by two queries is asked for once.
                if (since is not None and post.created_at <= since) or post.source_id in self._comment_videos:
                    continue
                self._comment_videos.add(post.source_id)
                yield self._comment_threads(post.source_id)

        newest = _later(meta["newest"], page.newest_published)
        if page.next_page_token and page.posts and meta["page"] < self.max_pages:
            yield self._search(q, cursor=cursor, page=meta["page"] + 1, token=page.next_page_token, newest=newest)
        elif newest and _later(cursor, newest) != cursor:
            # The chain is over (last page or the page cap): later runs ask for what was published
            # since the newest video seen. The videos are yielded above, so they commit first.
            yield CursorUpdate(self.name, q, newest)

    def _window_page(self, meta: dict[str, Any], posts: list[Post], token: str | None) -> Iterator[Any]:
        """A window's search page: the videos inside it (and their comments), its progress, the next page."""
        assert self.window is not None
        q, key = meta["q"], self.window.key(meta["q"])
        kept = self.in_window(posts)
        more = bool(token and posts)
        oldest = _rfc3339(min(p.created_at for p in posts)) if posts else None
        yield from self.emit(kept, (key, str(oldest) if more else WINDOW_DONE))
        for post in kept if self.comments else []:
            if post.source_id not in self._comment_videos:
                self._comment_videos.add(post.source_id)
                yield self._comment_threads(post.source_id)
        if more and meta["page"] < self.max_pages:
            yield self._search(q, cursor=None, page=meta["page"] + 1, token=token, upper=meta["upper"])
        elif more:
            logger.info("youtube: the window for %r is not collected whole after %d pages; run the same command "
                        "again to go on from where this run stopped", q, meta["page"])

    def parse_comment_threads(self, response: Response) -> Iterator[Any]:
        self._spend(COMMENT_THREADS_COST)
        video = response.meta["video"]
        stats = self.crawler.stats
        if response.status != 200:
            error = parse_error(response.body, response.status)
            if error.reason in _VIDEO_ONLY_REASONS or response.status == 404:
                stats.inc_value("murmur/youtube/comments_unavailable")
                logger.debug("youtube: no comments for %s (%s)", video, error.reason)
                return
            if response.status == 401 or _stops(error):
                self._stop(error)
            self._count_error(response, error, f"the comments of {video}")
            return
        comments = self.parse_or_skip(lambda: parse_comment_threads(response.body),
                                      "youtube: skipped a malformed comment page for %s", video)
        if comments is None:
            return
        stats.inc_value("murmur/youtube/comment_pages")
        self.count_page(len(comments.posts), comments.skipped)
        yield from comments.posts

    def failed(self, failure: Failure) -> None:
        kind, reason = self.count_failure(failure)
        if error_response(failure) is not None:  # an HTTP error after retries (429, 5xx): answered, so charged
            self._spend(SEARCH_COST if "/search?" in failed_request(failure).url else COMMENT_THREADS_COST)
        if kind in UNREACHABLE:
            self.unreachable.setdefault(self.base_url, reason)
            self.failures.setdefault(self.base_url, reason)
        elif kind not in self._warned:
            self._warned.add(kind)
            logger.warning("youtube: a request failed (%s); counted, the crawl goes on", reason)

    # --- errors, quota ------------------------------------------------------------------------

    def _spend(self, units: int) -> None:
        self.quota_units += units
        self.crawler.stats.inc_value("murmur/youtube/quota_units", units)

    def _stop(self, error: ApiError) -> None:
        # An invalid key answers "badRequest" with the precise reason (API_KEY_INVALID) in the details.
        reason = ", ".join([*([error.reason] if error.reason else []), *error.details]) or f"HTTP {error.code}"
        if error.reason in ("quotaExceeded", "dailyLimitExceeded"):
            hint = "the project's daily quota is spent; it resets at midnight Pacific Time"
        elif error.reason in ("rateLimitExceeded", "userRateLimitExceeded"):
            hint = "too many requests for now; the next run tries again"
        else:
            hint = f"check {KEY_VAR} (a key of a project with the YouTube Data API v3 enabled)"
        self._fail(f"the YouTube Data API refused the request ({reason}: {error.message}); {hint}")
        # Stop now rather than send what is queued (each refused call still costs quota). "finished" is
        # the reason the runner reads as a normal end; `failures` says why the run failed.
        raise CloseSpider("finished")

    def _fail(self, reason: str) -> None:
        if self.base_url not in self.failures:
            self.failures[self.base_url] = reason
            logger.error("youtube: %s", reason)

    def _count_error(self, response: Response, error: ApiError, what: str) -> None:
        self.crawler.stats.inc_value(f"murmur/errors/http_{response.status}")
        if what not in self._warned:
            self._warned.add(what)
            logger.warning("youtube: %s answered HTTP %d (%s: %s)", what, response.status, error.reason,
                           error.message)

    def closed(self, reason: str) -> None:
        for host, why in self.unreachable.items():
            logger.warning("youtube: %s could not be reached (%s); will retry at the next run", host, why)
        logger.info("youtube: used %d quota units", self.quota_units)


def _stops(error: ApiError) -> bool:
    return error.reason in _STOPPING_REASONS or any(d in _STOPPING_DETAILS for d in error.details)


def _later(a: str | None, b: str | None) -> str | None:
    """The later of two RFC 3339 times (either may be None)."""
    if a is None or b is None:
        return a or b
    return a if _when(a) >= _when(b) else b


def _when(value: str) -> datetime:
    return iso_datetime(value) or datetime.min.replace(tzinfo=UTC)


def _rfc3339(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
