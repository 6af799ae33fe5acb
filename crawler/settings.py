"""Scrapy settings for murmur's crawler (also what `scrapy crawl mastodon` uses in the project).

`murmur crawl` starts from these and overrides per source from the murmur config
(crawler/runner.py): user agent, robots.txt, AutoThrottle, delay and concurrency.
"""

BOT_NAME = "murmur"
SPIDER_MODULES = ["murmur.crawler.spiders"]
NEWSPIDER_MODULE = "murmur.crawler.spiders"

# Polite by default: say who we are, obey robots.txt, one request at a time per host with a
# delay, and let AutoThrottle back off further when a platform slows down.
USER_AGENT = "murmur/0.1 (+https://github.com/murmur-social/murmur; social-listening research)"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = 1.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 20
RETRY_TIMES = 2
# A request that fails for good is reported once per source by the spider, not once per try.
RETRY_GIVE_UP_LOG_LEVEL = "INFO"

DOWNLOADER_MIDDLEWARES = {
    "murmur.crawler.middlewares.RetryAfterMiddleware": 560,
}
ITEM_PIPELINES = {
    "murmur.crawler.pipelines.NormalisePipeline": 100,
    "murmur.crawler.pipelines.MatchTermsPipeline": 200,
    "murmur.crawler.pipelines.DetectLanguagePipeline": 300,
    "murmur.crawler.pipelines.StorePipeline": 900,
}
# Posts matching no term are counted in the stats (murmur/posts/dropped/*), not logged one by one.
DEFAULT_DROPITEM_LOG_LEVEL = "DEBUG"

# RetryAfterMiddleware sleeps with asyncio; this is Scrapy's default reactor, pinned here.
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
TELNETCONSOLE_ENABLED = False
LOG_LEVEL = "INFO"

# A run started by `scrapy crawl NAME` is recorded in job_runs like one of `murmur crawl` (which records
# its own, and turns this off).
MURMUR_RECORD_RUN = True
EXTENSIONS = {"murmur.crawler.runner.RecordRun": 500}
# `scrapy crawl` exits 1 when the run it recorded failed (Scrapy itself exits 0 once a crawl started).
COMMANDS_MODULE = "murmur.crawler.commands"
