"""Running the configured spiders once, in this process, and recording each run in `job_runs`.

Scrapy's Twisted reactor cannot be started twice in one process, so one process runs one crawl
(`murmur crawl`, `murmur run --once`); the service starts a child process per crawl
(scheduler/service.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings as ScrapySettings

from murmur.crawler.registry import SOURCES
from murmur.store.db import connect
from murmur.store.migrate import migrate
from murmur.store.runs import finish_run, start_run

if TYPE_CHECKING:
    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

# Stats worth keeping in job_runs (Scrapy collects many more).
_KEPT_STATS = (
    "murmur/",
    "downloader/request_count",
    "downloader/response_status_count/",
    "retry/",
    "item_dropped_count",
    "elapsed_time_seconds",
    "finish_reason",
)


# Source name -> "module:class" of its spider (crawler/registry.py); imported only when a crawl needs it.
# Stream sources have none (`murmur stream` runs them, crawler/stream/), nor import-only ones (`murmur import`).
SPIDERS = {name: entry.spider for name, entry in SOURCES.items() if entry.spider is not None}


def spider_classes() -> dict[str, type]:
    """Source name -> spider class."""
    import importlib

    classes = {}
    for name, ref in SPIDERS.items():
        module, _, attr = ref.partition(":")
        classes[name] = getattr(importlib.import_module(module), attr)
    return classes


@dataclass
class CrawlOutcome:
    source: str
    status: str  # ok | partial | failed | interrupted
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def new_posts(self) -> int:
        return int(self.stats.get("murmur/posts/new", 0))


def scrapy_settings(settings: Settings, source: SourceSettings, database_url: str) -> ScrapySettings:
    """Scrapy settings for one source: the project's, then the murmur config for that source."""
    scrapy_settings = ScrapySettings()
    scrapy_settings.setmodule("murmur.crawler.settings", priority="project")
    scrapy_settings.setdict(
        {
            "MURMUR_SETTINGS": settings,
            "MURMUR_DATABASE_URL": database_url,
            "USER_AGENT": settings.crawler.user_agent,
            "ROBOTSTXT_OBEY": settings.crawler.obey_robots,
            "AUTOTHROTTLE_ENABLED": settings.crawler.autothrottle,
            "DOWNLOAD_TIMEOUT": settings.crawler.timeout,
            # The platform's own rate limit, per source (config: sources.<name>.download_delay).
            "DOWNLOAD_DELAY": source.download_delay,
            "AUTOTHROTTLE_START_DELAY": max(source.download_delay, 0.1),
            "CONCURRENT_REQUESTS_PER_DOMAIN": source.concurrency,
            # What an answer may weigh, decompressed too (crawler/registry.py: API JSON vs pages).
            "DOWNLOAD_MAXSIZE": SOURCES[source.name].maxsize,
            "DOWNLOAD_WARNSIZE": SOURCES[source.name].warnsize,
            "MURMUR_RECORD_RUN": False,  # run_crawl records the run itself
        },
        priority="cmdline",
    )
    return scrapy_settings


def run_crawl(
    settings: Settings,
    sources: list[str],
    database_url: str,
    *,
    extra: dict[str, Any] | None = None,
) -> list[CrawlOutcome]:
    """Crawl `sources` once, side by side in one reactor; one failing never stops the others. A source with
    no spider (a stream, or import only) is skipped, with a line saying so."""
    for name in [n for n in sources if n not in SPIDERS]:
        if SOURCES[name].is_import_only:
            logger.info("%s is import only: a crawl skips it (`murmur import` reads its files)", name)
        else:
            logger.info("%s is a stream source: a crawl skips it (`murmur stream` or `murmur serve` runs it)", name)
    sources = [n for n in sources if n in SPIDERS]
    # A platform that disallows crawling (registry: Source.opt_in) is crawled only once its key opts in.
    for name in [n for n in sources if not SOURCES[n].opted_in(settings.sources[n])]:
        logger.info("%s: not crawled: %s", name, SOURCES[name].policy)
    sources = [n for n in sources if SOURCES[n].opted_in(settings.sources[n])]
    if not sources:
        return []
    classes = spider_classes()
    if extra and extra.get("MURMUR_SINCE"):  # a date window: only the spiders whose platform serves one
        from murmur.crawler.spiders.base import no_window_reason

        for name in [n for n in sources if not getattr(classes[n], "windowed", False)]:
            logger.warning("%s: %s; nothing crawled for it", name, no_window_reason(name))
        sources = [n for n in sources if getattr(classes[n], "windowed", False)]
        if not sources:
            return []
    with connect(database_url) as conn:
        migrate(conn)
        base = ScrapySettings()
        base.setmodule("murmur.crawler.settings", priority="project")
        base.set("LOG_INSTALL_ROOT_HANDLER", False)  # murmur's CLI owns the log handlers
        # Scrapy's logging set-up resets the levels of "scrapy", "twisted" and their children
        # (dictConfig); the CLI's -v decides them, so they are put back afterwards.
        names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("scrapy", "twisted", "filelock")]
        levels = {name: logging.getLogger(name).level for name in {"scrapy", "twisted", "filelock", *names}}
        quiet = levels["scrapy"] > logging.INFO
        if quiet:  # Scrapy's start-up banner (versions, settings) is noise unless asked for with -vv
            logging.disable(logging.INFO)
        try:
            process = CrawlerProcess(base)
        finally:
            logging.disable(logging.NOTSET)
        for name, level in levels.items():  # Scrapy resets these to its own; the CLI's -v decides
            logging.getLogger(name).setLevel(level)
        crawlers: list[tuple[str, Crawler, int]] = []
        for i, name in enumerate(sources):
            scrapy_cfg = scrapy_settings(settings, settings.sources[name], database_url)
            if extra:
                scrapy_cfg.setdict(extra, priority="cmdline")
            # The first crawler installs the reactor its settings name (asyncio); the others join it.
            crawler = Crawler(classes[name], scrapy_cfg, init_reactor=i == 0)
            crawlers.append((name, crawler, start_run(conn, f"crawl:{name}")))
            process.crawl(crawler)
        interrupted = False
        try:
            process.start()
        except (KeyboardInterrupt, SystemExit):
            interrupted = True  # a signal before Scrapy's own handlers were in place
            raise
        finally:
            outcomes = [_outcome(name, crawler, interrupted) for name, crawler, _ in crawlers]
            for outcome, (_, _, run_id) in zip(outcomes, crawlers, strict=True):
                finish_run(conn, run_id, status=outcome.status, stats=outcome.stats, error=outcome.error)
    return outcomes


def _outcome(name: str, crawler: Crawler, interrupted: bool = False) -> CrawlOutcome:
    """How a crawl ended: ok; partial (some instances or queries answered, some failed: what came is
    stored); failed (nothing answered); interrupted. The stats say how many queries worked and did not
    (`murmur/queries/ok`, `murmur/queries/failed`) and what the failures were (`murmur/failures/<class>`:
    unreachable, refused, oversized, malformed, other)."""
    raw = crawler.stats.get_stats() if crawler.stats else {}
    stats = {k: v for k, v in raw.items() if k.startswith(_KEPT_STATS)}
    reason = raw.get("finish_reason")
    spider = crawler.spider
    failures: dict[str, str] = getattr(spider, "failures", {}) or {}
    instances = getattr(spider, "instances", []) or []
    reached: set[str] = getattr(spider, "reached", set()) or set()
    for key, count in (getattr(spider, "query_results", None) or {}).items():
        stats[f"murmur/queries/{key}"] = count
    for key, count in (getattr(spider, "failure_classes", None) or {}).items():
        stats[f"murmur/failures/{key}"] = count
    if reason == "shutdown" or interrupted:
        return CrawlOutcome(name, "interrupted", stats, "stopped by a signal")
    if reason != "finished":
        return CrawlOutcome(name, "failed", stats, f"crawl ended: {reason or 'did not start'}")
    error = "; ".join(f"{k}: {v}" for k, v in sorted(failures.items())) or None
    unreached = [k for k in failures if k not in reached]
    if failures and not reached and len(unreached) >= max(len(instances), 1):
        return CrawlOutcome(name, "failed", stats, error)
    return CrawlOutcome(name, "partial" if failures else "ok", stats, error)


class RecordRun:
    """Records a `job_runs` row for a crawl started by `scrapy crawl NAME` in the project, as `murmur
    crawl` does for its own (which turns this off: MURMUR_RECORD_RUN = False)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.run_id: int | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RecordRun:
        if not crawler.settings.getbool("MURMUR_RECORD_RUN"):
            raise NotConfigured("MURMUR_RECORD_RUN is off: the murmur runner records this run")
        extension = cls(crawler)
        if crawler.settings.get("LOG_LEVEL") != "DEBUG":
            # A robots.txt that cannot be fetched is logged with a traceback per host; the spider reports an
            # unreachable host in one line already (as `murmur crawl` does, which sets the same level).
            logging.getLogger("scrapy.downloadermiddlewares.robotstxt").setLevel(logging.CRITICAL)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Any) -> None:
        from murmur.crawler.pipelines import database_url

        with connect(database_url(self.crawler)) as conn:
            migrate(conn)
            self.run_id = start_run(conn, f"crawl:{spider.name}")

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.run_id is None:
            return
        from murmur.crawler.pipelines import database_url

        self.crawler.stats.set_value("finish_reason", reason)
        outcome = _outcome(spider.name, self.crawler)
        self.crawler.stats.set_value("murmur/run_status", outcome.status)  # `scrapy crawl`'s exit status reads it
        with connect(database_url(self.crawler)) as conn:
            finish_run(conn, self.run_id, status=outcome.status, stats=outcome.stats, error=outcome.error)
        log = logger.error if outcome.status == "failed" else logger.info
        log("%s: %s%s", spider.name, outcome.status, f" ({outcome.error})" if outcome.error else "")
