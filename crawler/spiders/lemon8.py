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

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from murmur.crawler.parsers.lemon8 import HOSTS, LINK_PATTERN, article_id_from_url, parse_article_page
from murmur.crawler.spiders.pages import PageSpider

if TYPE_CHECKING:
    from scrapy.http import Response

    from murmur.crawler.items import CursorUpdate
    from murmur.crawler.parsers.lemon8 import ArticlePage

PLATFORM = "www.lemon8-app.com"  # what the runner counts failures against: the platform, one "instance"


class Lemon8Spider(PageSpider):
    name = "lemon8"
    platform = PLATFORM
    hosts = HOSTS
    link_pattern = LINK_PATTERN
    id_meta = "article_id"
    id_noun = "post"
    linked_what = "Lemon8 posts"
    page_id = staticmethod(article_id_from_url)

    def parse_page(self, response: Response) -> ArticlePage:
        return parse_article_page(response.body, response.url, fetched_at=datetime.now(UTC))

    def _fallback(self, meta: dict[str, Any], outcome: str, reason: str) -> Iterator[CursorUpdate]:
        # A removed or hidden post is remembered, so links to it are not fetched again; a blocked one is not.
        if outcome == "unavailable":
            yield from self._remember_unavailable(meta, reason)
