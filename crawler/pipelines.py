"""Item pipelines: normalise -> match terms -> detect language -> store (batched).
One small class per job."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import DropItem, NotConfigured

from murmur.crawler.items import CursorUpdate, Post
from murmur.crawler.language import detect_language
from murmur.crawler.text import TermMatcher, normalise_text
from murmur.store.posts import UpsertResult

if TYPE_CHECKING:
    import psycopg
    from scrapy.crawler import Crawler

    from murmur.config import Settings

logger = logging.getLogger(__name__)


def murmur_settings(crawler: Crawler) -> Settings:
    """The murmur settings a crawl runs with: handed in by `murmur crawl`, else loaded as the CLI
    would (so `scrapy crawl mastodon` inside the project works too)."""
    settings = crawler.settings.get("MURMUR_SETTINGS")
    if settings is None:
        from murmur.config import load_settings

        settings = load_settings()
    return settings


def database_url(crawler: Crawler) -> str:
    """The database a crawl writes to: handed in by `murmur crawl`, else the config's (embedded by default)."""
    url = crawler.settings.get("MURMUR_DATABASE_URL")
    if url:
        return str(url)
    from murmur.store.db import resolve_url

    settings = murmur_settings(crawler)
    return resolve_url(settings.database.url, settings.database.data_dir)


class NormalisePipeline:
    """Unicode NFC, invisible characters out, whitespace folded; a post with no text is dropped."""

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> NormalisePipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, Post):
            return item
        item.text = normalise_text(item.text)
        if not item.text:
            self.stats.inc_value("murmur/posts/dropped/empty")
            raise DropItem(f"{item.source} {item.source_id}: no text after normalisation")
        return item


def term_matcher(crawler: Crawler) -> TermMatcher:
    """A matcher of the crawl's configured terms, for a spider that picks the posts whose replies it reads."""
    return TermMatcher(list(murmur_settings(crawler).terms))


def post_terms(matcher: TermMatcher, post: Post) -> list[str]:
    """The terms `post` matches, found as MatchTermsPipeline finds them (on its normalised text)."""
    return matcher.match(normalise_text(post.text), post.tags)


class MatchTermsPipeline:
    """Keeps the posts that match a configured term and records which; drops and counts the rest.

    A reply a spider collected for its thread (`sources.<name>.replies`) comes with `terms` already set,
    to its thread's: it is kept whether or not it names a term itself (the replies to a matching post
    rarely repeat the term), with its own matches first, and counted as `murmur/posts/replies`.
    """

    def __init__(self, crawler: Crawler, terms: list[str]) -> None:
        self.stats = crawler.stats
        self.matcher = TermMatcher(terms)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MatchTermsPipeline:
        terms = list(murmur_settings(crawler).terms)
        if not terms:
            raise NotConfigured("no terms configured (config key 'terms')")
        return cls(crawler, terms)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, Post):
            return item
        thread = list(item.terms)  # set by the spider for a reply: its thread's terms
        own = self.matcher.match(item.text, item.tags)
        item.terms = own + [term for term in thread if term not in own]
        if thread:
            self.stats.inc_value("murmur/posts/replies")
        if not item.terms:
            self.stats.inc_value("murmur/posts/dropped/no_term")
            raise DropItem(f"{item.source} {item.source_id}: matches no configured term")
        return item


class DetectLanguagePipeline:
    """Sets each post's `lang` to the language its text is written in (the platform's own value
    only when the text is too short to tell), so scoring can route it to a model that covers it."""

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DetectLanguagePipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, Post):
            item.lang = detect_language(item.text, item.lang)
            self.stats.inc_value(f"murmur/lang/{item.lang or 'unknown'}")
        return item


class StorePipeline:
    """Writes posts to PostgreSQL in batches (one COPY + merge per batch) and moves cursors only
    in the transaction that commits the posts before them.

    Batches are flushed when full, when a cursor arrives, and when the spider closes (including
    a SIGTERM shutdown, which Scrapy turns into a graceful close), so nothing is left in memory.

    Writes run on one writer thread, so the reactor keeps downloading and parsing while
    PostgreSQL merges a batch. One thread keeps them in order: a cursor's transaction always runs
    after the batches before it, and after a failed batch nothing more is written (a cursor must
    never pass posts that were not stored). The item that fills a batch waits for its write, which
    bounds what is held in memory.
    """

    def __init__(self, crawler: Crawler, url: str, batch_size: int) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.url = url
        self.batch_size = batch_size
        self.conn: psycopg.Connection | None = None
        self.posts: list[Post] = []
        self.cursors: list[tuple[str, str, str]] = []
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="murmur-store")
        self.failed: BaseException | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler, database_url(crawler), crawler.settings.getint("MURMUR_BATCH_SIZE", 500))

    def open_spider(self) -> None:
        from murmur.store.db import connect
        from murmur.store.migrate import migrate

        self.conn = connect(self.url)
        migrate(self.conn)

    async def close_spider(self) -> None:
        try:
            await self.flush()
        finally:
            self.writer.shutdown(wait=True)
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    async def process_item(self, item: Any) -> Any:
        if isinstance(item, CursorUpdate):
            self.cursors.append((item.source, item.query, item.cursor))
            await self.flush()
        elif isinstance(item, Post):
            self.posts.append(item)
            if len(self.posts) >= self.batch_size:
                await self.flush()
        return item

    async def flush(self) -> None:
        """Commit the pending posts, then the cursors that follow them, in one transaction."""
        if not self.posts and not self.cursors:
            return
        posts, cursors = self.posts, self.cursors
        self.posts, self.cursors = [], []
        result, seconds = await asyncio.wrap_future(self.writer.submit(self._write, posts, cursors))
        self.stats.inc_value("murmur/posts/new", result.new)
        self.stats.inc_value("murmur/posts/updated", result.updated)
        self.stats.inc_value("murmur/posts/unchanged", result.unchanged)
        self.stats.inc_value("murmur/store/batches")
        # Scrapy's inc_value adds any number; its hint says int.
        self.stats.inc_value("murmur/store/seconds", round(seconds, 4))  # type: ignore[arg-type]
        logger.debug("stored %d posts (%d new, %d updated) and %d cursors in %.3fs",
                     len(posts), result.new, result.updated, len(cursors), seconds)

    def _write(self, posts: list[Post], cursors: list[tuple[str, str, str]]) -> tuple[UpsertResult, float]:
        """On the writer thread: one transaction for a batch and the cursors after it."""
        from murmur.store.posts import set_cursors, upsert_posts

        if self.failed is not None:
            raise RuntimeError(f"not written: an earlier batch failed ({self.failed})")
        assert self.conn is not None, "flush() before open_spider()"
        started = time.monotonic()
        try:
            with self.conn.transaction():
                result = upsert_posts(self.conn, posts)
                set_cursors(self.conn, cursors)
        except Exception as err:
            self.failed = err
            self.stats.inc_value("murmur/errors/store")
            logger.error("could not store %d posts (%s); this crawl stores nothing more", len(posts), err)
            raise
        return result, time.monotonic() - started
