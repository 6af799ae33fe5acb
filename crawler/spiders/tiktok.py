"""TikTok: public video pages, from `sources.tiktok.urls` and from links to TikTok videos found in other
sources' posts (crawler/links.py: Mastodon, Bluesky, Reddit, RSSHub feeds, ...), with TikTok's oEmbed
endpoint as the fallback for the caption and author when a page is blocked or withheld. Builds requests
only; what a page means is `murmur.crawler.parsers.tiktok`.

TikTok offers no search a crawler may use: the Research API needs an approved application, and the web
app's search and list endpoints need signed requests (X-Bogus, msToken), a signature scheme murmur does
not bypass. So the pages come from configuration and from links. Each page is one plain GET of the public
HTML, with the identifying user agent, robots.txt obeyed and no cookies kept from a challenge.

A page that is a login wall or a WAF challenge is counted (`murmur/blocked`), said once in the run's log
line, and stores nothing; the caption then comes from oEmbed when TikTok still embeds the video.

Incremental: every page leaves a `crawl_state` entry (query: the video id; cursor: what came of it), and
a linked video that is stored or has an entry is not fetched again; pages in `urls` are fetched every
run (their counts move). A blocked page leaves no entry, so the next run tries it again. At most
`max_pages` pages a run, config URLs first.

`base_url`, when set, replaces the scheme and host of every TikTok URL fetched (video pages on
tiktok.com, www.tiktok.com, m.tiktok.com, and the oEmbed endpoint): for a mirror, or the local server
the tests run; a URL of any other host is fetched as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import scrapy

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.tiktok import (
    HOSTS,
    LINK_PATTERN,
    WEB,
    VideoPage,
    canonical_url,
    parse_oembed,
    parse_video_page,
    video_id_from_url,
)
from murmur.crawler.spiders.common import describe_failure, failed_request
from murmur.crawler.spiders.pages import PageSpider, now

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

PLATFORM = "www.tiktok.com"  # what the runner counts failures against: the platform, one "instance"


class TikTokSpider(PageSpider):
    name = "tiktok"
    platform = PLATFORM
    hosts = HOSTS
    link_pattern = LINK_PATTERN
    id_meta = "video_id"
    id_noun = "video"
    linked_what = "TikTok videos"
    page_id = staticmethod(video_id_from_url)
    outputs = ("posts", "oembed")

    # --- pages ------------------------------------------------------------------------------------

    def parse_page(self, response: Response) -> VideoPage:
        return parse_video_page(response.body, response.url)

    def _parsed(self, page: VideoPage) -> None:
        self.crawler.stats.inc_value(f"murmur/tiktok/state/{page.state}")

    def _fallback(self, meta: dict[str, Any], outcome: str, reason: str) -> Iterator[scrapy.Request]:
        # A blocked page, or a video withheld from this region, may still be embeddable: oEmbed then has
        # its caption. The crawl_state entry of an unavailable video is written once oEmbed has answered.
        return self._oembed(meta, outcome, reason)

    def _http_gone(self, meta: dict[str, Any], status: int) -> Iterator[CursorUpdate]:
        self._count_unavailable()
        yield from self._remember_unavailable(meta, f"HTTP {status}")

    # --- oEmbed -----------------------------------------------------------------------------------

    def _oembed(self, meta: dict[str, Any], outcome: str, reason: str) -> Iterator[scrapy.Request]:
        vid = meta["video_id"]
        if not vid:
            return  # oEmbed needs the video's URL, and the post an id
        page = canonical_url(vid, _handle(meta["page"]))  # the real TikTok URL, whatever host served the page
        yield scrapy.Request(
            f"{self.base_url or WEB}/oembed?url={quote(page, safe='')}",
            headers={"Accept": "application/json"},
            callback=self.parse_oembed,
            errback=self.oembed_failed,
            # Only our own keys: Scrapy's (download_latency, redirect_urls, ...) belong to the page's request.
            meta={"page": meta["page"], "video_id": vid, "origin": meta["origin"], "outcome": outcome,
                  "reason": reason},
        )

    def parse_oembed(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        try:
            post = parse_oembed(response.body, video_id=meta["video_id"], fetched_at=datetime.now(UTC))
        except ParseError as err:
            self.crawler.stats.inc_value("murmur/oembed/malformed")
            logger.warning("tiktok: skipped a malformed oEmbed answer for %s (%s)", meta["page"], err)
            yield from self._settled(meta)
            return
        self.answered = True
        self.tally["oembed"] += 1
        self.crawler.stats.inc_value("murmur/oembed/posts")
        post.raw["page"] = f"{meta['outcome']}: {meta['reason']}"  # why the page itself gave no post
        yield post
        yield CursorUpdate(self.name, post.source_id, f"oembed, page {meta['outcome']} ({now()})")

    def oembed_failed(self, failure: Failure) -> Iterator[Any]:
        kind, _ = describe_failure(failure)
        self.crawler.stats.inc_value(f"murmur/oembed/{kind}")
        # oEmbed answers 400/404 for a video it does not embed (removed, private).
        yield from self._settled(failed_request(failure).meta)

    def _settled(self, meta: dict[str, Any]) -> Iterator[CursorUpdate]:
        """An unavailable video that oEmbed does not give either: remembered, so links to it are not
        fetched again. A blocked page is not: the next run tries it again."""
        if meta["outcome"] == "unavailable":
            yield from self._remember_unavailable(meta, meta["reason"])

    def _posts_line(self) -> str:
        return f"{self.tally['posts']} posts from pages, {self.tally['oembed']} from oEmbed"


def _handle(url: str) -> str | None:
    path = urlsplit(url).path
    if path.startswith("/@"):
        handle = path[2:].split("/", 1)[0]
        return handle or None
    return None
