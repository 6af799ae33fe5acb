"""What every murmur spider shares, so that a spider keeps only its requests and its parser calls:

- its arguments from the config, with ONE precedence: a spider argument given on the command line
  (`scrapy crawl NAME -a max_pages=3`) > `murmur crawl --max-pages N` (the Scrapy setting
  MURMUR_MAX_PAGES; `--since/--until`: MURMUR_SINCE/MURMUR_UNTIL) > `[sources.NAME]` in the config > the
  spider's own default;
- its credentials and environment settings, read by the config layer (SourceSettings.credentials), never
  from os.environ here;
- the cursors stored for it (store/crawl_state.py);
- failure bookkeeping: `murmur/errors/<kind>` counted, a reason kept per instance, and which instances
  answered at all, so the runner tells a failed run from a partial one;
- a page's stats and the yield of its posts before the cursor that covers them (`emit`);
- the date window of a back-fill (`murmur crawl --since D [--until D]`, or `-a since=D -a until=D`): a spider
  that can ask its platform for one sets `windowed`, keeps only the posts inside it (`in_window`) and keeps its
  progress under the window's own keys (`Window.key`), never the incremental cursors; any other spider crawls
  nothing when given a window, and says so.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import scrapy

from murmur.crawler.items import CursorUpdate
from murmur.crawler.parsers import ParseError
from murmur.crawler.pipelines import database_url, murmur_settings
from murmur.crawler.spiders.common import describe_failure, failure_class

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from twisted.python.failure import Failure

    from murmur.config import Settings, SourceSettings
    from murmur.crawler.items import Post

T = TypeVar("T")


def as_time(value: str | datetime) -> datetime:
    """A date or ISO 8601 time (a spider argument or setting) as an aware datetime, UTC when none is given."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d" if moment.time() == datetime.min.time() else "%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """A back-fill's dates, UTC: `since` included, `until` excluded (None: up to now), as in `murmur report`."""

    since: datetime
    until: datetime | None = None

    def key(self, query: str) -> str:
        """The `crawl_state` query under which this window's progress on `query` is kept."""
        return f"window:{_stamp(self.since)}/{_stamp(self.until) if self.until else ''}:{query}"

    def contains(self, moment: datetime) -> bool:
        return moment >= self.since and (self.until is None or moment < self.until)

    @property
    def start(self) -> int:
        """`since` as a Unix time."""
        return int(self.since.timestamp())

    @property
    def end(self) -> int | None:
        """`until` as a Unix time (None: no end)."""
        return int(self.until.timestamp()) if self.until else None


# A window's progress once it is collected whole: a later run with the same window asks nothing again.
WINDOW_DONE = "done"


class MurmurSpider(scrapy.Spider):
    """A murmur spider: the subclass names its config keys and writes its requests and callbacks."""

    # SourceSettings fields handed to the spider under the same name (tuples become lists).
    config_keys: ClassVar[tuple[str, ...]] = ()
    # Whether the spider can collect a date window (`--since/--until`); one that cannot crawls nothing then.
    windowed: ClassVar[bool] = False

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        environment: dict[str, str] | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if since is None and until is not None:
            raise ValueError(f"{self.name}: until={until} needs since= too (a window has a start)")
        self.window: Window | None = Window(as_time(since), as_time(until) if until else None) if since else None
        if self.window and self.window.until and self.window.until <= self.window.since:
            raise ValueError(f"{self.name}: the window's until ({until}) must be after its since ({since})")
        self.credentials: dict[str, str] = dict(credentials or {})
        self.environment: dict[str, str] = dict(environment or {})
        self.instances: list[str] = []  # what the runner counts failures against
        self.failures: dict[str, str] = {}  # instance -> why it gave nothing this run
        self.reached: set[str] = set()  # instances that answered some query usably
        self.query_results: Counter[str] = Counter()  # "ok" / "failed": queries that worked and did not
        self.failure_classes: Counter[str] = Counter()  # unreachable, refused, oversized, malformed, other

    @property
    def _log(self) -> logging.Logger:
        # The subclass's module logger, so log records keep the names they always had.
        return logging.getLogger(type(self).__module__)

    # --- arguments ---------------------------------------------------------------------------------

    @classmethod
    def config_arguments(cls, settings: Settings, source: SourceSettings) -> dict[str, Any]:
        """The spider's arguments from its `[sources.<name>]` table; a subclass adds computed ones."""
        out: dict[str, Any] = {}
        for key in cls.config_keys:
            value = getattr(source, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> MurmurSpider:
        kwargs = {**arguments(cls, crawler), **kwargs}  # `-a name=value` wins over everything
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider.window is not None and not cls.windowed:
            logging.getLogger(cls.__module__).warning(
                "%s: %s; nothing crawled for it", cls.name, no_window_reason(cls.name))
            spider.start = _nothing  # type: ignore[method-assign]
        return spider

    # --- state -------------------------------------------------------------------------------------

    def stored_cursors(self) -> dict[str, str]:
        """Query -> cursor of this source, as the last runs left them."""
        from murmur.store.crawl_state import cursors
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            return cursors(conn, self.name)

    def window_cursors(self) -> dict[str, str]:
        """Query -> progress of this run's window (`Window.key`), as the last run with the same window left it."""
        assert self.window is not None
        prefix = self.window.key("")
        return {q.removeprefix(prefix): c for q, c in self.stored_cursors().items() if q.startswith(prefix)}

    def in_window(self, posts: list[Post]) -> list[Post]:
        """The posts inside the window (all of them without one); the others counted as
        `murmur/posts/outside_window`."""
        if self.window is None:
            return posts
        kept = [p for p in posts if self.window.contains(p.created_at)]
        if len(kept) < len(posts):
            self.crawler.stats.inc_value("murmur/posts/outside_window", len(posts) - len(kept))
        return kept

    # --- pages -------------------------------------------------------------------------------------

    def count_page(self, posts: int, skipped: int = 0) -> None:
        """A parsed page: `murmur/pages`, `murmur/posts/parsed` and `murmur/posts/skipped_malformed`."""
        stats = self.crawler.stats
        stats.inc_value("murmur/pages")
        stats.inc_value("murmur/posts/parsed", posts)
        if skipped:
            stats.inc_value("murmur/posts/skipped_malformed", skipped)

    def emit(self, posts: list[Post], cursor: CursorUpdate | tuple[str, str] | None = None) -> Iterator[Any]:
        """The posts of a page, then the cursor that covers them: the store commits them first."""
        yield from posts
        if isinstance(cursor, tuple):
            cursor = CursorUpdate(self.name, *cursor)
        if cursor is not None:
            yield cursor

    def count_malformed(self, where: str, err: Exception, what: str = "page") -> None:
        """A page that could not be read: counted (also as a failure of the run) and logged, the rest goes on."""
        self.skip_malformed("%s: skipped a malformed %s from %s", self.name, what, where, err=err)

    def skip_malformed(self, message: str, *args: Any, err: Exception) -> None:
        """An answer that could not be read: `murmur/errors/malformed` counted, `message % args` logged with
        the reason after it; the caller goes on with its next request."""
        self.crawler.stats.inc_value("murmur/errors/malformed")
        self.failure_classes["malformed"] += 1  # the run's summary: a malformed answer, not an unreachable host
        self._log.warning(message + " (%s)", *args, err)

    def parse_or_skip(self, parse: Callable[[], T], message: str, *args: Any) -> T | None:
        """What `parse()` reads from an answer; None when the answer is unusable (ParseError), after
        `skip_malformed(message, *args)`: the cursor stays, so the next run asks again."""
        try:
            return parse()
        except ParseError as err:
            self.skip_malformed(message, *args, err=err)
            return None

    def mark_answered(self, instance: str) -> None:
        """`instance` gave a usable answer to some query this run."""
        self.reached.add(instance)
        self.query_results["ok"] += 1

    # --- failures ----------------------------------------------------------------------------------

    def count_failure(self, failure: Failure) -> tuple[str, str]:
        """(kind, reason) of a failed request, counted as `murmur/errors/<kind>`."""
        kind, reason = describe_failure(failure)
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")
        self.failure_classes[failure_class(kind)] += 1
        self.query_results["failed"] += 1
        return kind, reason

    def fail(self, instance: str, reason: str) -> None:
        """`instance` failed for `reason` (the first reason of a run is kept)."""
        self.failures.setdefault(instance, reason)

    def unreached(self) -> dict[str, str]:
        """The instances that failed and never answered a query this run."""
        return {inst: why for inst, why in self.failures.items() if inst not in self.reached}


async def _nothing() -> AsyncIterator[Any]:
    """The start of a spider given a window its platform cannot serve: no request."""
    return
    yield


# Where a platform has no date window, what to do instead (one line; the default says only that).
NO_WINDOW = {
    "reddit": "its search has no date window; read its history from the dumps instead: "
              "`murmur import RS_YYYY-MM.zst` (submissions) and `RC_YYYY-MM.zst` (comments)",
}


def no_window_reason(name: str) -> str:
    """Why source `name` collects no date window, and what to do instead."""
    return NO_WINDOW.get(name, "its platform offers no date window (`--since/--until`)")


def arguments(cls: type[MurmurSpider], crawler: Crawler) -> dict[str, Any]:
    """A spider's arguments from the murmur config and `murmur crawl --max-pages/--since/--until` (spider
    arguments given on the command line are laid over these by the caller)."""
    from murmur.config import SourceSettings

    settings = murmur_settings(crawler)
    source = settings.sources.get(cls.name) or SourceSettings(name=cls.name)
    out = cls.config_arguments(settings, source)
    max_pages = crawler.settings.getint("MURMUR_MAX_PAGES")
    if max_pages > 0 and "max_pages" in out:  # `murmur crawl --max-pages N` is above the config
        out["max_pages"] = max_pages
    for key in ("since", "until"):  # `murmur crawl --since D --until D`: MURMUR_SINCE, MURMUR_UNTIL
        if crawler.settings.get(f"MURMUR_{key.upper()}"):
            out[key] = crawler.settings.get(f"MURMUR_{key.upper()}")
    out["credentials"] = dict(source.credentials)
    out["environment"] = dict(source.environment)
    return out
