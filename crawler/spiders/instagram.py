"""Instagram: media tagged with the configured hashtags, through the Instagram Graph API's hashtag search
for professional (business or creator) accounts. Builds requests and follows cursors; what a response
means is `murmur.crawler.parsers.instagram`.

API (https://developers.facebook.com/docs/instagram-platform/instagram-api-with-facebook-login/hashtag-search):
``GET {base_url}/v24.0/ig_hashtag_search?user_id=&q=<tag>`` gives a hashtag's id, then
``GET {base_url}/v24.0/<hashtag-id>/recent_media?user_id=&fields=&limit=50&after=`` the public photos and
videos tagged with it in the last 24 hours (not always in order; no ``username``). It needs a Facebook user
access token (``MURMUR_INSTAGRAM_ACCESS_TOKEN``) of an app with the Instagram Public Content Access feature
and ``instagram_basic``, and the id of the Instagram professional account it acts for
(``MURMUR_INSTAGRAM_USER_ID``). The token travels in an ``Authorization: Bearer`` header
(restfb/restfb#1107), never in a URL; ``paging.next``, which Graph writes the token into, is not followed.

Limits: an account may query 30 unique hashtags in a rolling 7 days (asking for the same one again does
not count again). Hashtag ids are static and global, so each is looked up once and kept in
``crawl_state`` (query ``hashtag-id:<tag>``); tags beyond the first 30 are left out with a warning.
Throttling, a refused token or a missing feature is one line, and the source stops for the run.

Incremental: recent_media has no "since", and only spans a day, so runs should come at least daily. Per
hashtag the cursor (query ``#<tag>``) is the newest ``timestamp`` seen (Unix seconds); a later run stops
paging at a page with nothing newer. Media seen twice are stored once.

robots.txt: Graph API requests carry the app's token and are governed by Meta's Platform Terms and
rate limits, so they do not consult robots.txt (as the other token sources). Nothing else of Instagram
is fetched: no pages, no scraping.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import scrapy

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.instagram import parse_hashtag_search, parse_recent_media
from murmur.crawler.spiders.common import failed_request
from murmur.crawler.spiders.meta_graph import GraphApiSpider
from murmur.crawler.text import term_to_tag

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
API_VERSION = "v24.0"  # released October 2025; Meta keeps a version available for about two years
TOKEN_VAR = "MURMUR_INSTAGRAM_ACCESS_TOKEN"
USER_VAR = "MURMUR_INSTAGRAM_USER_ID"
PAGE_SIZE = 50  # the most recent_media returns per page
FIELDS = "id,caption,media_type,permalink,timestamp,like_count,comments_count"
WEEKLY_HASHTAGS = 30  # unique hashtags an account may query in a rolling 7 days
HASHTAG_ID = "hashtag-id:"  # crawl_state query prefix of a cached hashtag id
HANDLED_STATUSES = [400, 401, 403, 404]  # the Graph error body says why; 429 and 5xx are retried first

_HINTS = {
    "token": f"check {TOKEN_VAR} (a Facebook user access token with instagram_basic) and {USER_VAR} "
             "(the Instagram professional account it acts for)",
    "permission": "the app needs the Instagram Public Content Access feature and the instagram_basic "
                  "permission (App Review)",
    "rate": "Meta's rate limit for this app or account is reached; the next run tries again",
    "blocked": "Meta has blocked this account's calls for now; the next run tries again",
}


def credentials(values: dict[str, str]) -> tuple[str | None, str | None]:
    """(access token, user id) from the source's credentials (config: MURMUR_INSTAGRAM_ACCESS_TOKEN and
    MURMUR_INSTAGRAM_USER_ID), each None when unset or blank."""
    return values.get("access_token", "").strip() or None, values.get("user_id", "").strip() or None


def default_tags(terms: list[str]) -> list[str]:
    """The terms written as hashtags (``TikTok refugee`` -> ``tiktokrefugee``), each once."""
    return list(dict.fromkeys(tag for tag in (term_to_tag(t) for t in terms) if tag))


class InstagramSpider(GraphApiSpider):
    name = "instagram"
    api = "the Instagram Graph API"
    hints = _HINTS
    config_keys = ("base_url", "max_pages")

    def __init__(
        self,
        base_url: str | None = None,
        tags: list[str] | str | None = None,
        max_pages: int | str = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.tags = self._usable_tags([tags] if isinstance(tags, str) else list(tags or []))
        self.max_pages = max(1, int(max_pages))
        self.token, self.user_id = credentials(self.credentials)
        self.instances = [self.base_url]  # what the runner counts failures against
        self.failures: dict[str, str] = {}
        self.hashtag_ids: dict[str, str] = {}
        self.cursors: dict[str, str] = {}
        self.answered = False
        self.stopped = False
        self.lookups = 0
        self._warned: set[str] = set()

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        tags = list(source.tags) or default_tags(list(settings.terms))
        return {**super().config_arguments(settings, source), "tags": tags}

    @staticmethod
    def _usable_tags(tags: list[str]) -> list[str]:
        usable: list[str] = []
        for raw in tags:
            tag = raw.strip().lstrip("#").lower()  # Instagram hashtags are case-insensitive
            if not tag or any(c.isspace() for c in tag):
                logger.warning("instagram: %r is not a hashtag (hashtags have no spaces); left out", raw)
            elif tag not in usable:
                usable.append(tag)
        if len(usable) > WEEKLY_HASHTAGS:
            logger.warning("instagram: %d hashtags configured, but an account may query %d unique hashtags in 7 "
                           "days; only the first %d are asked for", len(usable), WEEKLY_HASHTAGS, WEEKLY_HASHTAGS)
            usable = usable[:WEEKLY_HASHTAGS]
        return usable

    async def start(self) -> AsyncIterator[Any]:
        missing = [var for var, value in ((TOKEN_VAR, self.token), (USER_VAR, self.user_id)) if not value]
        if missing:
            self._fail(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; set "
                       f"{TOKEN_VAR} to a Facebook user access token of an app with Instagram Public Content "
                       f"Access and {USER_VAR} to the id of the Instagram professional account it acts for "
                       "(https://developers.facebook.com/docs/instagram-platform/instagram-api-with-facebook-login"
                       "/hashtag-search)")
            return
        self._load_state()
        # Hashtags go one after another, so a refused token stops the source after one request.
        for request in self._next_tag(0):
            yield request

    def _load_state(self) -> None:
        for query, cursor in self.stored_cursors().items():
            if query.startswith(HASHTAG_ID) and cursor.isascii() and cursor.isdigit():
                self.hashtag_ids[query.removeprefix(HASHTAG_ID)] = cursor
            elif query.startswith("#") and cursor.isascii() and cursor.isdigit():
                self.cursors[query.removeprefix("#")] = cursor

    # --- requests ------------------------------------------------------------------------------

    def _request(self, path: str, params: dict[str, Any], callback: Any, **meta: Any) -> scrapy.Request:
        meta.update(handle_httpstatus_list=HANDLED_STATUSES, dont_obey_robotstxt=True)
        return scrapy.Request(
            f"{self.base_url}/{API_VERSION}/{path}?{urlencode({'user_id': self.user_id, **params})}",
            headers={"Authorization": f"Bearer {self.token}"},
            callback=callback,
            errback=self.failed,
            meta=meta,
        )

    def _next_tag(self, index: int) -> Iterator[scrapy.Request]:
        """The first request for the hashtag at `index`: its recent media when its id is known, else the lookup."""
        if index >= len(self.tags) or self.stopped:
            return
        tag = self.tags[index]
        hashtag_id = self.hashtag_ids.get(tag)
        if hashtag_id:
            yield self._recent_media(index, hashtag_id, after=None, page=1, newest=None)
        else:
            yield self._request("ig_hashtag_search", {"q": tag}, self.parse_hashtag, index=index)

    def _recent_media(self, index: int, hashtag_id: str, *, after: str | None, page: int,
                      newest: int | None) -> scrapy.Request:
        params: dict[str, Any] = {"fields": FIELDS, "limit": PAGE_SIZE}
        if after:
            params["after"] = after
        return self._request(f"{quote(hashtag_id, safe='')}/recent_media", params, self.parse_media,
                             index=index, hashtag_id=hashtag_id, page=page, newest=newest)

    # --- callbacks -----------------------------------------------------------------------------

    def parse_hashtag(self, response: Response) -> Iterator[Any]:
        index = response.meta["index"]
        tag = self.tags[index]
        self.lookups += 1
        self.crawler.stats.inc_value("murmur/instagram/hashtag_lookups")
        if response.status != 200:
            self._left_out(response, f"the lookup of #{tag}")
            yield from self._next_tag(index + 1)
            return
        try:
            hashtag_id = parse_hashtag_search(response.body)
        except ParseError as err:
            self.skip_malformed("instagram: skipped a malformed hashtag lookup for #%s", tag, err=err)
            yield from self._next_tag(index + 1)
            return
        self.answered = True
        if hashtag_id is None:
            self.crawler.stats.inc_value("murmur/instagram/unknown_hashtags")
            self._warn(f"unknown:{tag}", "instagram: Instagram knows no hashtag #%s; left out this run", tag)
            yield from self._next_tag(index + 1)
            return
        # Ids are static and global: kept, so later runs skip the lookup.
        self.hashtag_ids[tag] = hashtag_id
        yield CursorUpdate(self.name, f"{HASHTAG_ID}{tag}", hashtag_id)
        yield self._recent_media(index, hashtag_id, after=None, page=1, newest=None)

    def parse_media(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        index = meta["index"]
        tag = self.tags[index]
        if response.status != 200:
            self._left_out(response, f"the recent media of #{tag}")
            yield from self._next_tag(index + 1)
            return
        # Unreadable: the media are asked for again next run (while a day old).
        page = self.parse_or_skip(lambda: parse_recent_media(response.body, tag=tag),
                                  "instagram: skipped a malformed recent-media page for #%s", tag)
        if page is None:
            yield from self._next_tag(index + 1)
            return
        newest = self._took(page, meta["newest"])
        yield from page.posts

        cursor = self.cursors.get(tag)
        # Pages are not strictly newest first, but a page with nothing newer than the last run's newest
        # means the rest was seen then.
        caught_up = cursor is not None and page.newest is not None and page.newest <= int(cursor)
        if page.after and page.entries and not caught_up and meta["page"] < self.max_pages:
            yield self._recent_media(index, meta["hashtag_id"], after=page.after, page=meta["page"] + 1,
                                     newest=newest)
            return
        if newest is not None and (cursor is None or newest > int(cursor)):
            # Every page of this hashtag was yielded above it, so the store commits them first.
            yield CursorUpdate(self.name, f"#{tag}", str(newest))
        yield from self._next_tag(index + 1)

    def failed(self, failure: Failure) -> Iterator[scrapy.Request]:
        if self._request_failed(failure, "a request"):
            yield from self._next_tag(failed_request(failure).meta["index"] + 1)

    def _left_out(self, response: Response, what: str) -> None:
        """An error answer for one hashtag (`what`: "the lookup of #tag"): said once, the hashtag left out."""
        self._api_error(response, what, "instagram: %s failed (%s); left out this run", what)

    def closed(self, reason: str) -> None:
        self._closed_reach(bool(self.token and self.user_id))
        if self.lookups:
            logger.info("instagram: looked up %d new hashtags (an account may query %d unique hashtags in 7 days)",
                        self.lookups, WEEKLY_HASHTAGS)
