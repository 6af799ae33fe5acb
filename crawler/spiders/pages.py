"""What the page spiders share (TikTok, Lemon8; RedNote in part): pages from `sources.<name>.urls` plus links
found in other sources' posts (crawler/links.py), blocked pages counted (`murmur/blocked`,
`murmur/blocked/<why>`), a `crawl_state` entry per page, one summary line a run, and `base_url` standing in
for the platform's real hosts."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest

from murmur.crawler.items import CursorUpdate, Post
from murmur.crawler.parsers import ParseError
from murmur.crawler.pipelines import database_url
from murmur.crawler.spiders.base import MurmurSpider
from murmur.crawler.spiders.common import as_bool, as_list, describe_failure, error_status, failed_request

if TYPE_CHECKING:
    from collections.abc import Collection

    from scrapy.http import Response
    from twisted.python.failure import Failure

DEFAULT_MAX_PAGES = 20
HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


# What a page spider takes from `sources.<name>` (crawler/spiders/base.py: MurmurSpider.config_keys).
PAGE_CONFIG_KEYS = ("urls", "base_url", "follow_links", "max_pages")


def rebased(url: str, base_url: str | None, hosts: Collection[str]) -> str:
    """`url` with base_url in place of its scheme and host when that host is one of `hosts`."""
    parts = urlsplit(url)
    if not base_url or (parts.hostname or "").lower() not in hosts:
        return url
    return base_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Target:
    url: str  # the page as linked or configured (a real platform URL, or any URL from config)
    page_id: str | None  # the platform's id of what the page shows (a video id, an article id)
    origin: str  # "config" or "link"


class ParsedPage(Protocol):
    blocked: str | None
    unavailable: str | None
    post: Post | None


class PageSpider(MurmurSpider):
    """A spider of public pages, one plain GET each; the subclass names the platform and parses a page."""

    platform: str  # what the runner counts failures against: the platform, one "instance"
    hosts: Collection[str]  # the real hosts, which base_url stands in for
    link_pattern: str  # for crawler/links.py: group 1 the URL, group 2 the page id
    id_meta: str  # the request meta key of the page id: "video_id"
    id_noun: str  # what the id names, in a crawl_state cursor: "video"
    linked_what: str  # what links lead to, in the "nothing to fetch" line: "TikTok videos"
    page_id: Callable[[str], str | None]  # the page id in a URL, or None (a staticmethod)
    outputs: tuple[str, ...] = ("posts",)  # tally keys that count posts, not problems
    config_keys = PAGE_CONFIG_KEYS

    def __init__(
        self,
        urls: list[str] | str | None = None,
        base_url: str | None = None,
        follow_links: bool | str = True,
        max_pages: int | str = DEFAULT_MAX_PAGES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl <name> -a urls=https://...,... -a follow_links=false` passes strings.
        self.urls = list(dict.fromkeys(as_list(urls)))
        self.base_url = base_url.rstrip("/") if base_url else None
        self.follow_links = as_bool(follow_links)
        self.max_pages = max(1, int(max_pages))
        self.instances = [self.platform]
        self.failures: dict[str, str] = {}
        self.requested = 0
        self.answered = False  # some page gave a post, or a definite "this page is gone"
        self.blocks: Counter[str] = Counter()  # why pages were blocked
        self.tally: Counter[str] = Counter()  # posts, unavailable, malformed, errors

    async def start(self) -> AsyncIterator[Any]:
        for target in self._targets():
            self.requested += 1
            yield scrapy.Request(
                self._fetch_url(target.url),
                headers={"Accept": HTML},
                callback=self.parse,
                errback=self.failed,
                meta={"page": target.url, self.id_meta: target.page_id, "origin": target.origin},
            )

    def _targets(self) -> list[Target]:
        """Config URLs, then linked pages not seen before; at most max_pages."""
        targets: list[Target] = []
        seen: set[str] = set()
        for url in self.urls:
            page_id = self.page_id(url)
            if (page_id or url) not in seen:
                seen.add(page_id or url)
                targets.append(Target(url, page_id, "config"))
        if self.follow_links:
            targets += self._linked(seen)
        if len(targets) > self.max_pages:
            waiting = len(targets) - self.max_pages
            self.crawler.stats.inc_value("murmur/pages/deferred", waiting)
            self._log.info(f"{self.name}: %d more pages wait for the next run (max_pages = %d)", waiting,
                           self.max_pages)
            targets = targets[: self.max_pages]
        if not targets:
            self._log.info(
                f"{self.name}: nothing to fetch: sources.{self.name}.urls is empty and other sources' posts hold "
                f"no new links to {self.linked_what}"
            )
        return targets

    def _linked(self, seen: set[str]) -> list[Target]:
        from murmur.crawler.links import linked_urls
        from murmur.store.crawl_state import cursors
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            done = set(cursors(conn, self.name))
            # Ask for enough links that the ones already seen cannot crowd out the new ones.
            found = linked_urls(conn, source=self.name, pattern=self.link_pattern,
                                limit=self.max_pages + len(done) + len(seen))
        targets = []
        for url, page_id in found:
            if page_id not in done and page_id not in seen:
                seen.add(page_id)
                targets.append(Target(url, page_id, "link"))
        self.crawler.stats.inc_value("murmur/links/found", len(found))
        self.crawler.stats.inc_value("murmur/links/new", len(targets))
        return targets

    def _fetch_url(self, url: str) -> str:
        """`url` with base_url in place of a real platform host, when base_url is set."""
        return rebased(url, self.base_url, self.hosts)

    # --- pages ------------------------------------------------------------------------------------

    def parse_page(self, response: Response) -> ParsedPage:
        """The page's post, or why it has none; ParseError when the page is unreadable."""
        raise NotImplementedError

    def _parsed(self, page: Any) -> None:
        """Counts what only this platform's pages say (called before the post is yielded)."""

    def _fallback(self, meta: dict[str, Any], outcome: str, reason: str) -> Iterator[Any]:
        """What follows a page that is "blocked" or "unavailable" (`outcome`): by default, nothing."""
        return iter(())

    def parse(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        stats = self.crawler.stats
        stats.inc_value("murmur/pages")
        try:
            page = self.parse_page(response)
        except ParseError as err:
            # No crawl_state entry: the next run asks again (a cut-off body is usually transient).
            stats.inc_value("murmur/errors/malformed")
            self.tally["malformed"] += 1
            self._log.warning(f"{self.name}: skipped a malformed page %s (%s)", meta["page"], err)
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
        self._parsed(page)
        yield post
        # After the post, so the store commits them together.
        yield CursorUpdate(self.name, post.source_id, f"page {now()}")
        page_id = meta[self.id_meta]
        if page_id and page_id != post.source_id:  # the link led to another page
            yield CursorUpdate(self.name, page_id, f"page: {self.id_noun} {post.source_id} ({now()})")

    def _blocked(self, meta: dict[str, Any], reason: str) -> Iterator[Any]:
        """A login wall, a challenge or a WAF's refusal: counted, and no crawl_state entry (tried again)."""
        self.blocks[reason] += 1
        self.crawler.stats.inc_value("murmur/blocked")
        self.crawler.stats.inc_value("murmur/blocked/" + reason.split(" (")[0].replace(" ", "_"))
        self._log.debug(f"{self.name}: %s is blocked (%s)", meta["page"], reason)
        yield from self._fallback(meta, "blocked", reason)

    def _count_unavailable(self) -> None:
        self.answered = True
        self.tally["unavailable"] += 1
        self.crawler.stats.inc_value("murmur/unavailable")

    def _unavailable(self, meta: dict[str, Any], reason: str) -> Iterator[Any]:
        self._count_unavailable()
        self._log.debug(f"{self.name}: %s is not shown: %s", meta["page"], reason)
        yield from self._fallback(meta, "unavailable", reason)

    def _remember_unavailable(self, meta: dict[str, Any], reason: str) -> Iterator[CursorUpdate]:
        """A page that is gone: remembered, so links to it are not fetched again."""
        if meta[self.id_meta]:
            yield CursorUpdate(self.name, meta[self.id_meta], f"unavailable: {reason} ({now()})")

    def _http_gone(self, meta: dict[str, Any], status: int) -> Iterator[Any]:
        """A page answered 404 or 410."""
        yield from self._unavailable(meta, f"HTTP {status}")

    # --- failures ---------------------------------------------------------------------------------

    def failed(self, failure: Failure) -> Iterator[Any]:
        meta = failed_request(failure).meta
        kind, reason = describe_failure(failure)
        status = error_status(failure)
        if status is not None:
            if status in (401, 403):  # the WAF's refusal
                yield from self._blocked(meta, f"HTTP {status}")
                return
            if status in (404, 410):
                yield from self._http_gone(meta, status)
                return
        if failure.check(IgnoreRequest) and "robots.txt" in reason:
            kind = "robots"
        self.tally[f"failed ({kind})"] += 1
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")

    def _posts_line(self) -> str:
        """The end of the summary line: how many posts came, and from where."""
        return f"{self.tally['posts']} posts"

    def closed(self, reason: str) -> None:
        if not self.requested:
            return
        blocked = sum(self.blocks.values())
        why = ", ".join(f"{why}: {n}" if len(self.blocks) > 1 else why for why, n in self.blocks.most_common())
        problems = {what: n for what, n in self.tally.items() if what not in self.outputs}
        parts = [f"{self.crawler.stats.get_value('murmur/pages', 0)} pages fetched"]
        parts.append(f"{blocked} blocked ({why})" if blocked else "0 blocked")
        parts += [f"{n} {what}" for what, n in sorted(problems.items())]
        line = f"{self.name}: {', '.join(parts)}; {self._posts_line()}"
        if not self.answered:
            # Nothing usable from any page: the run failed (the service tries again at the next run).
            self.failures[self.platform] = line.removeprefix(f"{self.name}: ")
        if blocked or problems or not self.answered:
            self._log.warning(line)
        else:
            self._log.info(line)
