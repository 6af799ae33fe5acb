"""Every source murmur collects from, declared once: its spider, its config keys, its credentials, its
limits and what it can do. The settings (config/settings.py), the crawl runner (crawler/runner.py),
`murmur status` and the README's sources table read this; a test checks the README against it.

Importing this module imports neither Scrapy nor any spider: `murmur crawl` start-up and the settings
check read it. Adding a source: a spider module, a parser module, an entry here, fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from murmur.config import SourceSettings

# What a source can do.
SEARCH = "search"  # asks the platform for posts matching the terms
PAGES = "pages"  # fetches public pages, configured or linked from other sources' posts
ACCOUNTS = "accounts"  # reads the posts of configured accounts, feeds or subreddits
STREAM = "stream"  # a long-lived connection (no spider: `murmur stream` and the service run it)
IMPORT = "import"  # arrives in files: captures, exports and dumps read by `murmur import` (crawler/imports/)

MB = 1024 * 1024
# Response size limits (Scrapy's DOWNLOAD_MAXSIZE and DOWNLOAD_WARNSIZE, applied to decompressed bodies
# too): an API page of JSON is a few hundred kB at most, a platform's HTML page a few MB with its inline
# state. Anything far above is not a page we can use (or a decompression bomb), so it is dropped and
# counted as `murmur/errors/oversized`.
API_LIMITS = (8 * MB, 2 * MB)
PAGE_LIMITS = (16 * MB, 6 * MB)


@dataclass(frozen=True)
class SourceKey:
    """A key only this source takes under `[sources.<name>]`; `kind` names the settings' converter."""

    name: str
    kind: str  # "bool", "str_list", "url_list", "ws_url_list", "seconds" (config/settings.py: _KEY_KINDS)
    help: str


@dataclass(frozen=True)
class Source:
    name: str
    spider: str | None  # "module:Class", imported only when a crawl needs it; None: a stream or import-only source
    capabilities: frozenset[str]
    keys: tuple[SourceKey, ...] = ()
    # Credential name -> its environment variable; read by the config layer into
    # SourceSettings.credentials (only those set), never by a spider.
    credentials: dict[str, str] = field(default_factory=dict)
    # Other environment settings of this source that are not secrets (name -> variable).
    environment: dict[str, str] = field(default_factory=dict)
    # Keys that must not be empty while the source is enabled (the settings check says so at start):
    # key -> (what to list, an example value).
    required: dict[str, tuple[str, str]] = field(default_factory=dict)
    limits: tuple[int, int] = API_LIMITS  # (DOWNLOAD_MAXSIZE, DOWNLOAD_WARNSIZE) in bytes
    # What the platform allows today and what murmur does about it, in one sentence (`murmur status`, the
    # README's sources table); the copies read, with their dates, are in docs/platforms.md.
    policy: str = ""
    # A bool key of this source that must be true before a crawl fetches anything (the platform disallows
    # crawling): while it is false, a crawl skips the source with a line saying `policy`.
    opt_in: str | None = None

    def opted_in(self, configured: SourceSettings) -> bool:
        """False while the `opt_in` key of this source's settings is off: nothing is crawled."""
        return self.opt_in is None or bool(getattr(configured, self.opt_in, False))

    @property
    def is_stream(self) -> bool:
        """A stream source has no spider: `murmur crawl` and `run --once` skip it, `murmur stream` runs it."""
        return STREAM in self.capabilities

    @property
    def is_import_only(self) -> bool:
        """No spider and no stream: its posts arrive only through `murmur import`; crawls skip it."""
        return self.spider is None and not self.is_stream

    @property
    def maxsize(self) -> int:
        return self.limits[0]

    @property
    def warnsize(self) -> int:
        return self.limits[1]


_REPLIES = SourceKey("replies", "bool", "also collect the replies to each matching post (with the thread's terms)")
_URLS = SourceKey("urls", "url_list", "page URLs to fetch every run (any http(s) host: saved pages can stand in)")
_FOLLOW = SourceKey("follow_links", "bool", "also fetch pages of this platform linked from other sources' posts")

# Dates are those of the copies read (docs/platforms.md); say "undated" rather than guess one.
_REDNOTE_POLICY = ("xiaohongshu.com's robots.txt disallows all crawling (User-agent: * Disallow: /, as fetched "
                   "2026-08-10): import Zeeschuimer or MediaCrawler captures with `murmur import`; page crawling "
                   "is off unless sources.rednote.pages = true, for pages you may fetch")
_TIKTOK_POLICY = ("tiktok.com pages mostly answer a crawler with a challenge or a login wall, and search and "
                  "comments need signed requests or the Research API (approval only): import Zeeschuimer "
                  "captures for search and comments; pages in urls and linked videos are tried, blocked ones counted")
_REDDIT_POLICY = ("Reddit's Data API needs approval since November 2025 (Responsible Builder Policy) and its "
                  "robots.txt disallows all crawling since 2024: the API with approved credentials; "
                  "import the Pushshift / Arctic Shift dumps for history")

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("mastodon", "murmur.crawler.spiders.mastodon:MastodonSpider", frozenset({SEARCH}),
               keys=(_REPLIES,),
               required={"instances": ("instance URL", '["https://mastodon.social"]')}),
        Source("bluesky", "murmur.crawler.spiders.bluesky:BlueskySpider", frozenset({SEARCH, ACCOUNTS}),
               keys=(SourceKey("accounts", "str_list", "handles whose posts are read (no credential needed)"),
                     SourceKey("feeds", "str_list", "custom feed URIs whose posts are read (no credential needed)"),
                     _REPLIES),
               credentials={"handle": "MURMUR_BLUESKY_HANDLE", "app_password": "MURMUR_BLUESKY_APP_PASSWORD"}),
        Source("reddit", "murmur.crawler.spiders.reddit:RedditSpider", frozenset({SEARCH, ACCOUNTS, IMPORT}),
               keys=(SourceKey("subreddits", "str_list", "search inside these subreddits instead of all of Reddit"),
                     SourceKey("comments", "bool", "also read the comments of new submissions (as `replies`)"),
                     _REPLIES),
               credentials={"client_id": "MURMUR_REDDIT_CLIENT_ID", "client_secret": "MURMUR_REDDIT_CLIENT_SECRET"},
               policy=_REDDIT_POLICY),
        Source("lemmy", "murmur.crawler.spiders.lemmy:LemmySpider", frozenset({SEARCH}),
               required={"instances": ("instance URL", '["https://lemmy.world"]')}),
        Source("hackernews", "murmur.crawler.spiders.hackernews:HackerNewsSpider", frozenset({SEARCH})),
        Source("youtube", "murmur.crawler.spiders.youtube:YouTubeSpider", frozenset({SEARCH}),
               keys=(SourceKey("comments", "bool", "also read the top-level comments of the videos found"),),
               credentials={"api_key": "MURMUR_YOUTUBE_API_KEY"}),
        Source("rss", "murmur.crawler.spiders.rss:RssSpider", frozenset({ACCOUNTS}),
               keys=(SourceKey("feeds", "url_list", "RSS or Atom feed URLs (RSSHub routes too)"),),
               limits=PAGE_LIMITS),
        Source("rednote", "murmur.crawler.spiders.rednote:RedNoteSpider", frozenset({PAGES, ACCOUNTS, IMPORT}),
               keys=(SourceKey("pages", "bool", "crawl pages at all (off: xiaohongshu.com's robots.txt disallows "
                               "crawling; turn on only for pages you may fetch, e.g. a mirror of your own)"),
                     _URLS, _FOLLOW),
               limits=PAGE_LIMITS, policy=_REDNOTE_POLICY, opt_in="pages"),
        Source("tiktok", "murmur.crawler.spiders.tiktok:TikTokSpider", frozenset({PAGES, IMPORT}),
               keys=(_URLS, _FOLLOW), limits=PAGE_LIMITS, policy=_TIKTOK_POLICY),
        Source("lemon8", "murmur.crawler.spiders.lemon8:Lemon8Spider", frozenset({PAGES}),
               keys=(_URLS, _FOLLOW), limits=PAGE_LIMITS),
        Source("threads", "murmur.crawler.spiders.threads:ThreadsSpider", frozenset({SEARCH, PAGES, IMPORT}),
               keys=(_URLS, _FOLLOW), credentials={"access_token": "MURMUR_THREADS_ACCESS_TOKEN"},
               environment={"pages_url": "MURMUR_THREADS_PAGES_URL"}, limits=PAGE_LIMITS),
        Source("instagram", "murmur.crawler.spiders.instagram:InstagramSpider", frozenset({SEARCH, IMPORT}),
               credentials={"access_token": "MURMUR_INSTAGRAM_ACCESS_TOKEN", "user_id": "MURMUR_INSTAGRAM_USER_ID"}),
        # Bluesky's public JSON firehose: every post of the network, live, no account (crawler/stream/).
        Source("jetstream", None, frozenset({STREAM}),
               keys=(SourceKey("instances", "ws_url_list", "Jetstream base URLs (ws:// or wss://), tried in turn"),
                     SourceKey("rewind", "seconds", "seconds re-read before the stored cursor on (re)connect"),
                     SourceKey("baseline", "bool", "count every post the stream delivers into network_volume")),
               required={"instances": ("Jetstream URL", '["wss://jetstream1.us-east.bsky.network"]')}),
        # Import only (no spider: the platforms need a logged-in, signed session; researchers capture with
        # MediaCrawler or Zeeschuimer and `murmur import` reads the files).
        Source("douyin", None, frozenset({IMPORT})),
        Source("weibo", None, frozenset({IMPORT})),
        Source("bilibili", None, frozenset({IMPORT})),
        Source("kuaishou", None, frozenset({IMPORT})),
        Source("x", None, frozenset({IMPORT})),
    )
}


def source(name: str) -> Source:
    """The registry entry of `name`; KeyError naming the known sources when there is none."""
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; available sources: {', '.join(SOURCES)}") from None


def credential_variables() -> dict[str, str]:
    """Every credential's environment variable -> the source it belongs to."""
    return {var: s.name for s in SOURCES.values() for var in s.credentials.values()}


def read_environment(name: str, environ: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(credentials, other environment settings) of source `name` that are set and not blank."""
    entry = SOURCES[name]

    def read(names: dict[str, str]) -> dict[str, str]:
        return {key: environ[var].strip() for key, var in names.items() if environ.get(var, "").strip()}

    return read(entry.credentials), read(entry.environment)
