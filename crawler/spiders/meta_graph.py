"""What the Meta Graph API spiders (Instagram, Threads) share: an error answer that stops the run or only
the request, a failed request, warnings said once, the token kept out of every log line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.exceptions import CloseSpider

from murmur.crawler.parsers.meta_graph import GraphError, GraphPage, parse_graph_error
from murmur.crawler.spiders.base import MurmurSpider
from murmur.crawler.spiders.common import UNREACHABLE

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from murmur.crawler.items import Post


class GraphApiSpider(MurmurSpider):
    """A spider of a token API on the Graph: the subclass sets `api`, `hints` and, in `__init__`, `base_url`,
    `token`, `failures`, `answered`, `stopped` and `_warned`."""

    api: str  # how the refusal names the API: "the Threads API"
    hints: dict[str, str]  # what to do, by GraphError.kind ("token", "permission", "rate", "blocked")
    base_url: str
    token: str | None
    failures: dict[str, str]
    answered: bool
    stopped: bool
    _warned: set[str]

    def _api_error(self, response: Response, key: str, message: str, *args: Any) -> None:
        """An error answer: stops the run when no request can succeed, else warns with `message` % (*args, why)."""
        error = parse_graph_error(response.body, response.status)
        if error.kind or response.status == 401:
            self._stop(error)
        self.answered = True  # the API answered: this request is at fault, not the token
        self.crawler.stats.inc_value(f"murmur/errors/http_{response.status}")
        self._warn(key, message, *args, self._redact(error.describe()))

    def _took(self, page: GraphPage, newest: int | None) -> int | None:
        """Counts a page the API answered with; the newest timestamp of the pages so far (`newest` before it)."""
        self.answered = True
        self._count_posts(page.posts, page.skipped)
        seen = [n for n in (newest, page.newest) if n is not None]
        return max(seen) if seen else None

    def _count_posts(self, posts: list[Post], skipped: int) -> None:
        stats = self.crawler.stats
        stats.inc_value("murmur/pages")
        stats.inc_value("murmur/posts/parsed", len(posts))
        if skipped:
            stats.inc_value("murmur/posts/skipped_malformed", skipped)

    def _request_failed(self, failure: Failure, what: str) -> bool:
        """Counts a request that got no answer; whether the crawl should go on to the next request."""
        kind, reason = self.count_failure(failure)
        self.failures.setdefault(self.base_url, reason)
        if kind in UNREACHABLE and not self.answered:
            return False  # no answer at all (after Scrapy's retries): asking the next would only wait again
        self._warn(f"kind:{kind}", f"{self.name}: {what} failed (%s); counted, the crawl goes on", reason)
        return True

    def _stop(self, error: GraphError) -> None:
        hint = self.hints.get(error.kind or "token", self.hints["token"])
        self._fail(f"{self.api} refused the request ({self._redact(error.describe())}); {hint}")
        self.stopped = True
        # Every request with this token would be refused too: stop rather than send what is queued.
        # "finished" is the reason the runner reads as a normal end; `failures` says why the run failed.
        raise CloseSpider("finished")

    def _fail(self, reason: str) -> None:
        self.failures[self.base_url] = reason
        self._log.error(f"{self.name}: %s", reason)

    def _warn(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:  # once per key (a query, a hashtag, an error kind) and run
            self._warned.add(key)
            self._log.warning(message, *args)

    def _redact(self, text: str) -> str:
        return text.replace(self.token, "<token>") if self.token else text

    def _closed_reach(self, configured: bool) -> None:
        """At the end: the API reached clears the failures of single requests; not reached, says so."""
        if self.answered and not self.stopped:
            self.failures.pop(self.base_url, None)  # reached: failed requests are counted, not fatal
        elif self.failures.get(self.base_url) and not self.stopped and configured:
            self._log.warning(f"{self.name}: %s could not be reached (%s); will retry at the next run",
                              self.base_url, self.failures[self.base_url])
