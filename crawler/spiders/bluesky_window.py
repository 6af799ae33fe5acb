"""Bluesky date windows (`murmur crawl bluesky --since A [--until B]`): what the spider asks and keeps, as plain
functions over the window, the stored progress and a parsed page.

Only search can be asked for a window: `app.bsky.feed.searchPosts` takes `since` (inclusive) and `until`
(exclusive), both compared with a post's sortAt (https://docs.bsky.app/docs/api/app-bsky-feed-search-posts;
the lexicon `bluesky-social/atproto` `lexicons/app/bsky/feed/searchPosts.json`), newest first with
`sort=latest`. A query's progress, under `Window.key("search:<query>")`, is the `until` to ask next: the oldest
sortAt read plus one millisecond, so a resumed run reads that boundary post (and any of the same time) again
rather than skipping one (the store keeps each post once); then WINDOW_DONE once a page ends the chain.

Accounts and custom feeds (`app.bsky.feed.getAuthorFeed`, `app.bsky.feed.getFeed`) take no dates and page with
opaque cursors (a custom feed's generator often keeps only recent days), so a window skips them, in one line.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from murmur.crawler.parsers.bluesky import format_datetime, parse_datetime
from murmur.crawler.spiders.base import WINDOW_DONE

if TYPE_CHECKING:
    from murmur.crawler.parsers.bluesky import FeedPage
    from murmur.crawler.spiders.base import Window

logger = logging.getLogger("murmur.crawler.spiders.bluesky")  # the spider's lines, under its name

_TIE = timedelta(milliseconds=1)  # sortAt has millisecond precision


def progress_query(query: str) -> str:
    """The query whose window progress is kept (`Window.key` of it): the incremental cursor's own name."""
    return f"search:{query}"


def pending(window: Window, queries: list[str], progress: dict[str, str], *, accounts: int, feeds: int
            ) -> dict[str, str | None]:
    """Query -> the `until` to ask first (None: the window has no end), for the queries not collected whole yet
    (`progress` is `window_cursors()`); the others, and any accounts and feeds, said in a line each."""
    if accounts or feeds:
        logger.info("bluesky: accounts and feeds take no dates (getAuthorFeed, getFeed), so a date window is read "
                    "through search only; %d accounts and %d feeds skipped", accounts, feeds)
    out: dict[str, str | None] = {}
    for query in queries:
        stored = progress.get(progress_query(query))
        if stored == WINDOW_DONE:
            logger.info("bluesky: the window for %r was collected whole by an earlier run", query)
            continue
        resumed = parse_datetime(stored)  # anything not a time is not ours: the window starts over
        out[query] = format_datetime(resumed) if resumed else format_datetime(window.until) if window.until else None
    return out


def progress(page: FeedPage) -> str | None:
    """A query's progress once `page` is stored: WINDOW_DONE when the page ends the chain (no cursor to go on
    with, or nothing in it), else the `until` a resumed run asks, the page's oldest sortAt plus 1 ms (None: the
    page had no readable time, and the progress stays)."""
    if page.cursor is None or not (page.posts or page.skipped):
        return WINDOW_DONE
    return format_datetime(page.oldest + _TIE) if page.oldest else None
