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
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.tiktok import (
    HOSTS,
    LINK_PATTERN,
    WEB,
    canonical_url,
    parse_oembed,
    parse_video_page,
    video_id_from_url,
)
from murmur.crawler.pipelines import database_url, murmur_settings
from murmur.crawler.spiders.common import as_list, describe_failure

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

PLATFORM = "www.tiktok.com"  # what the runner counts failures against: the platform, one "instance"
DEFAULT_MAX_PAGES = 20
HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


@dataclass(frozen=True)
class Target:
    url: str  # the page as linked or configured (a real TikTok URL, or any URL from config)
    video_id: str | None
    origin: str  # "config" or "link"


class TikTokSpider(scrapy.Spider):
    name = "tiktok"

    def __init__(
        self,
        urls: list[str] | str | None = None,
        base_url: str | None = None,
        follow_links: bool | str = True,
        max_pages: int | str = DEFAULT_MAX_PAGES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl tiktok -a urls=https://www.tiktok.com/@a/video/1,... -a follow_links=false` passes strings.
        self.urls = list(dict.fromkeys(as_list(urls)))
        self.base_url = base_url.rstrip("/") if base_url else None
        self.follow_links = follow_links if isinstance(follow_links, bool) else follow_links.lower() in ("1", "true")
        self.max_pages = max(1, int(max_pages))
        self.instances = [PLATFORM]
        self.failures: dict[str, str] = {}
        self.requested = 0
        self.answered = False  # some page gave a post, or a definite "this video is gone"
        self.blocks: Counter[str] = Counter()  # why pages were blocked
        self.tally: Counter[str] = Counter()  # posts from pages / oEmbed, unavailable, malformed, errors

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> TikTokSpider:
        source = murmur_settings(crawler).sources.get("tiktok")
        if source is not None:
            kwargs.setdefault("urls", list(source.urls))
            kwargs.setdefault("base_url", source.base_url)
            kwargs.setdefault("follow_links", source.follow_links)
            kwargs.setdefault("max_pages", source.max_pages)
        if crawler.settings.getint("MURMUR_MAX_PAGES"):  # `murmur crawl --max-pages N`
            kwargs["max_pages"] = crawler.settings.getint("MURMUR_MAX_PAGES")
        return super().from_crawler(crawler, *args, **kwargs)

    async def start(self) -> AsyncIterator[Any]:
        for target in self._targets():
            self.requested += 1
            yield scrapy.Request(
                self._fetch_url(target.url),
                headers={"Accept": HTML},
                callback=self.parse,
                errback=self.failed,
                meta={"page": target.url, "video_id": target.video_id, "origin": target.origin},
            )

    def _targets(self) -> list[Target]:
        """Config URLs, then linked videos not seen before; at most max_pages."""
        targets: list[Target] = []
        seen: set[str] = set()
        for url in self.urls:
            vid = video_id_from_url(url)
            if (vid or url) not in seen:
                seen.add(vid or url)
                targets.append(Target(url, vid, "config"))
        if self.follow_links:
            targets += self._linked(seen)
        if len(targets) > self.max_pages:
            waiting = len(targets) - self.max_pages
            self.crawler.stats.inc_value("murmur/pages/deferred", waiting)
            logger.info("tiktok: %d more pages wait for the next run (max_pages = %d)", waiting, self.max_pages)
            targets = targets[: self.max_pages]
        if not targets:
            logger.info(
                "tiktok: nothing to fetch: sources.tiktok.urls is empty and other sources' posts hold no new "
                "links to TikTok videos"
            )
        return targets

    def _linked(self, seen: set[str]) -> list[Target]:
        from murmur.crawler.links import linked_urls
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            done = {q for (q,) in conn.execute("SELECT query FROM crawl_state WHERE source = %s", (self.name,))}
            # Ask for enough links that the ones already seen cannot crowd out the new ones.
            found = linked_urls(conn, source=self.name, pattern=LINK_PATTERN,
                                limit=self.max_pages + len(done) + len(seen))
        targets = []
        for url, vid in found:
            if vid not in done and vid not in seen:
                seen.add(vid)
                targets.append(Target(url, vid, "link"))
        self.crawler.stats.inc_value("murmur/links/found", len(found))
        self.crawler.stats.inc_value("murmur/links/new", len(targets))
        return targets

    def _fetch_url(self, url: str) -> str:
        """`url` with base_url in place of a TikTok host, when base_url is set."""
        parts = urlsplit(url)
        if not self.base_url or (parts.hostname or "").lower() not in HOSTS:
            return url
        return self.base_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    # --- pages ------------------------------------------------------------------------------------

    def parse(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        stats = self.crawler.stats
        stats.inc_value("murmur/pages")
        try:
            page = parse_video_page(response.body, response.url)
        except ParseError as err:
            # No crawl_state entry: the next run asks again (a cut-off body is usually transient).
            stats.inc_value("murmur/errors/malformed")
            self.tally["malformed"] += 1
            logger.warning("tiktok: skipped a malformed page %s (%s)", meta["page"], err)
            return
        if page.blocked:
            yield from self._blocked(meta, page.blocked)
            return
        if page.unavailable:
            yield from self._unavailable(meta, page.unavailable)
            return
        post = page.post
        assert post is not None
        self.answered = True
        self.tally["posts"] += 1
        stats.inc_value("murmur/posts/parsed")
        stats.inc_value(f"murmur/tiktok/state/{page.state}")
        yield post
        # After the post, so the store commits them together.
        yield CursorUpdate(self.name, post.source_id, f"page {_now()}")
        if meta["video_id"] and meta["video_id"] != post.source_id:  # the link led to another video
            yield CursorUpdate(self.name, meta["video_id"], f"page: video {post.source_id} ({_now()})")

    def _blocked(self, meta: dict[str, Any], reason: str) -> Iterator[Any]:
        self.blocks[reason] += 1
        self.crawler.stats.inc_value("murmur/blocked")
        self.crawler.stats.inc_value("murmur/blocked/" + reason.split(" (")[0].replace(" ", "_"))
        logger.debug("tiktok: %s is blocked (%s)", meta["page"], reason)
        yield from self._oembed(meta, "blocked", reason)

    def _unavailable(self, meta: dict[str, Any], reason: str) -> Iterator[Any]:
        self.answered = True
        self.tally["unavailable"] += 1
        self.crawler.stats.inc_value("murmur/unavailable")
        logger.debug("tiktok: %s is not shown: %s", meta["page"], reason)
        # A video withheld from this region may still be embeddable: oEmbed then has its caption.
        # The crawl_state entry is written once oEmbed has answered (below).
        yield from self._oembed(meta, "unavailable", reason)

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
        yield CursorUpdate(self.name, post.source_id, f"oembed, page {meta['outcome']} ({_now()})")

    def oembed_failed(self, failure: Failure) -> Iterator[Any]:
        kind, _ = describe_failure(failure)
        self.crawler.stats.inc_value(f"murmur/oembed/{kind}")
        # oEmbed answers 400/404 for a video it does not embed (removed, private).
        yield from self._settled(failure.request.meta)

    def _settled(self, meta: dict[str, Any]) -> Iterator[CursorUpdate]:
        """An unavailable video that oEmbed does not give either: remembered, so links to it are not
        fetched again. A blocked page is not: the next run tries it again."""
        if meta["outcome"] == "unavailable" and meta["video_id"]:
            yield CursorUpdate(self.name, meta["video_id"], f"unavailable: {meta['reason']} ({_now()})")

    # --- failures ---------------------------------------------------------------------------------

    def failed(self, failure: Failure) -> Iterator[Any]:
        meta = failure.request.meta
        kind, reason = describe_failure(failure)
        if failure.check(HttpError):
            status = failure.value.response.status
            if status in (401, 403):  # the WAF's refusal
                yield from self._blocked(meta, f"HTTP {status}")
                return
            if status in (404, 410):
                self.answered = True
                self.tally["unavailable"] += 1
                self.crawler.stats.inc_value("murmur/unavailable")
                if meta["video_id"]:
                    yield CursorUpdate(self.name, meta["video_id"], f"unavailable: HTTP {status} ({_now()})")
                return
        if failure.check(IgnoreRequest) and "robots.txt" in reason:
            kind = "robots"
        self.tally[f"failed ({kind})"] += 1
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")

    def closed(self, reason: str) -> None:
        if not self.requested:
            return
        blocked = sum(self.blocks.values())
        why = ", ".join(f"{why}: {n}" if len(self.blocks) > 1 else why for why, n in self.blocks.most_common())
        problems = {what: n for what, n in self.tally.items() if what not in ("posts", "oembed")}
        parts = [f"{self.crawler.stats.get_value('murmur/pages', 0)} pages fetched"]
        parts.append(f"{blocked} blocked ({why})" if blocked else "0 blocked")
        parts += [f"{n} {what}" for what, n in sorted(problems.items())]
        line = (f"tiktok: {', '.join(parts)}; {self.tally['posts']} posts from pages, "
                f"{self.tally['oembed']} from oEmbed")
        if not self.answered:
            # Nothing usable from any page: the run failed (the service tries again at the next run).
            self.failures[PLATFORM] = line.removeprefix("tiktok: ")
        if blocked or problems or not self.answered:
            logger.warning(line)
        else:
            logger.info(line)


def _handle(url: str) -> str | None:
    path = urlsplit(url).path
    if path.startswith("/@"):
        handle = path[2:].split("/", 1)[0]
        return handle or None
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
