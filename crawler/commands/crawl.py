"""`scrapy crawl NAME` inside the project: Scrapy's own command, but the exit status says how the run
ended. Scrapy exits 0 whenever the crawl started, even when every request failed; the run RecordRun
wrote in `job_runs` says `failed` then, and so does the exit status (1), as with `murmur crawl`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.commands.crawl import Command as ScrapyCrawl

if TYPE_CHECKING:
    import argparse

    from scrapy import Spider
    from scrapy.crawler import Crawler

RUN_STATUS = "murmur/run_status"  # the stats key RecordRun leaves the run's status in


class Command(ScrapyCrawl):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        self._crawlers: list[Crawler] = []
        super().run(args, opts)
        # The process forgets a crawler once it is done: the ones made here are kept to read their runs.
        if any(c.stats is not None and c.stats.get_value(RUN_STATUS) == "failed" for c in self._crawlers):
            self.exitcode = 1

    def _create_crawler(self, spidercls: type[Spider] | str) -> Crawler:
        crawler = super()._create_crawler(spidercls)
        self._crawlers.append(crawler)
        return crawler
