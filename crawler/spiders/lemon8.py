"""Lemon8: public post pages, from `sources.lemon8.urls` and from links to Lemon8 posts found in other
sources' posts (crawler/links.py). Builds requests only; what a page means is
`murmur.crawler.parsers.lemon8`.

Lemon8 has no public API or search a crawler may use (its app API signs requests), so the pages come
from configuration and from links; each is one plain GET of the public HTML, with the identifying user
agent and robots.txt obeyed. A challenge page, a captcha or a login wall is counted (`murmur/blocked`),
said once in the run's log line, and stores nothing.

Incremental: every page leaves a `crawl_state` entry (query: the article id; cursor: what came of it);
a linked post that is stored or has an entry is not fetched again, while pages in `urls` are fetched
every run (their counts move). A blocked page leaves no entry, so the next run tries it again. At most
`max_pages` pages a run, config URLs first.

`base_url`, when set, replaces the scheme and host of every lemon8-app.com URL fetched (a mirror, or
the local server the tests run); a URL of any other host is fetched as it is.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.lemon8 import HOSTS, LINK_PATTERN, article_id_from_url, parse_article_page
from murmur.crawler.pipelines import database_url, murmur_settings
from murmur.crawler.spiders.common import as_list, describe_failure

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

PLATFORM = "www.lemon8-app.com"  # what the runner counts failures against: the platform, one "instance"
DEFAULT_MAX_PAGES = 20
HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


@dataclass(frozen=True)
class Target:
    url: str  # the page as linked or configured
    article_id: str | None
    origin: str  # "config" or "link"


class Lemon8Spider(scrapy.Spider):
    name = "lemon8"

    def __init__(
        self,
        urls: list[str] | str | None = None,
        base_url: str | None = None,
        follow_links: bool | str = True,
        max_pages: int | str = DEFAULT_MAX_PAGES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl lemon8 -a urls=https://www.lemon8-app.com/@a/1,... -a follow_links=false` passes strings.
        self.urls = list(dict.fromkeys(as_list(urls)))
        self.base_url = base_url.rstrip("/") if base_url else None
        self.follow_links = follow_links if isinstance(follow_links, bool) else follow_links.lower() in ("1", "true")
        self.max_pages = max(1, int(max_pages))
        self.instances = [PLATFORM]
        self.failures: dict[str, str] = {}
        self.requested = 0
        self.answered = False  # some page gave a post, or a definite "this post is gone"
        self.blocks: Counter[str] = Counter()
        self.tally: Counter[str] = Counter()

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Lemon8Spider:
        source = murmur_settings(crawler).sources.get("lemon8")
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
                meta={"page": target.url, "article_id": target.article_id, "origin": target.origin},
            )

    def _targets(self) -> list[Target]:
        """Config URLs, then linked posts not seen before; at most max_pages."""
        targets: list[Target] = []
        seen: set[str] = set()
        for url in self.urls:
            article_id = article_id_from_url(url)
            if (article_id or url) not in seen:
                seen.add(article_id or url)
                targets.append(Target(url, article_id, "config"))
        if self.follow_links:
            targets += self._linked(seen)
        if len(targets) > self.max_pages:
            waiting = len(targets) - self.max_pages
            self.crawler.stats.inc_value("murmur/pages/deferred", waiting)
            logger.info("lemon8: %d more pages wait for the next run (max_pages = %d)", waiting, self.max_pages)
            targets = targets[: self.max_pages]
        if not targets:
            logger.info(
                "lemon8: nothing to fetch: sources.lemon8.urls is empty and other sources' posts hold no new "
                "links to Lemon8 posts"
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
        for url, article_id in found:
            if article_id not in done and article_id not in seen:
                seen.add(article_id)
                targets.append(Target(url, article_id, "link"))
        self.crawler.stats.inc_value("murmur/links/found", len(found))
        self.crawler.stats.inc_value("murmur/links/new", len(targets))
        return targets

    def _fetch_url(self, url: str) -> str:
        """`url` with base_url in place of a Lemon8 host, when base_url is set."""
        parts = urlsplit(url)
        if not self.base_url or (parts.hostname or "").lower() not in HOSTS:
            return url
        return self.base_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def parse(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        stats = self.crawler.stats
        stats.inc_value("murmur/pages")
        try:
            page = parse_article_page(response.body, response.url, fetched_at=datetime.now(UTC))
        except ParseError as err:
            # No crawl_state entry: the next run asks again (a cut-off body is usually transient).
            stats.inc_value("murmur/errors/malformed")
            self.tally["malformed"] += 1
            logger.warning("lemon8: skipped a malformed page %s (%s)", meta["page"], err)
            return
        if page.blocked:
            self._blocked(meta, page.blocked)
            return
        if page.unavailable:
            yield from self._unavailable(meta, page.unavailable)
            return
        post = page.post
        assert post is not None
        self.answered = True
        self.tally["posts"] += 1
        stats.inc_value("murmur/posts/parsed")
        yield post
        # After the post, so the store commits them together.
        yield CursorUpdate(self.name, post.source_id, f"page {_now()}")
        if meta["article_id"] and meta["article_id"] != post.source_id:  # the link led to another post
            yield CursorUpdate(self.name, meta["article_id"], f"page: post {post.source_id} ({_now()})")

    def _blocked(self, meta: dict[str, Any], reason: str) -> None:
        self.blocks[reason] += 1
        self.crawler.stats.inc_value("murmur/blocked")
        self.crawler.stats.inc_value("murmur/blocked/" + reason.split(" (")[0].replace(" ", "_"))
        logger.debug("lemon8: %s is blocked (%s)", meta["page"], reason)

    def _unavailable(self, meta: dict[str, Any], reason: str) -> Iterator[CursorUpdate]:
        """A removed or hidden post: remembered, so links to it are not fetched again."""
        self.answered = True
        self.tally["unavailable"] += 1
        self.crawler.stats.inc_value("murmur/unavailable")
        logger.debug("lemon8: %s is not shown: %s", meta["page"], reason)
        if meta["article_id"]:
            yield CursorUpdate(self.name, meta["article_id"], f"unavailable: {reason} ({_now()})")

    def failed(self, failure: Failure) -> Iterator[Any]:
        meta = failure.request.meta
        kind, reason = describe_failure(failure)
        if failure.check(HttpError):
            status = failure.value.response.status
            if status in (401, 403):  # the WAF's refusal
                self._blocked(meta, f"HTTP {status}")
                return
            if status in (404, 410):
                yield from self._unavailable(meta, f"HTTP {status}")
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
        problems = {what: n for what, n in self.tally.items() if what != "posts"}
        parts = [f"{self.crawler.stats.get_value('murmur/pages', 0)} pages fetched"]
        parts.append(f"{blocked} blocked ({why})" if blocked else "0 blocked")
        parts += [f"{n} {what}" for what, n in sorted(problems.items())]
        line = f"lemon8: {', '.join(parts)}; {self.tally['posts']} posts"
        if not self.answered:
            # Nothing usable from any page: the run failed (the service tries again at the next run).
            self.failures[PLATFORM] = line.removeprefix("lemon8: ")
        if blocked or problems or not self.answered:
            logger.warning(line)
        else:
            logger.info(line)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
