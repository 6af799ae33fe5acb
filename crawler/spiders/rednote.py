"""RedNote (Xiaohongshu): public note and profile pages. Builds requests only; what a page means is
`murmur.crawler.parsers.rednote` (`parse_note`, `parse_profile`).

xiaohongshu.com's robots.txt disallows all crawling (docs/platforms.md), so this spider runs only when
`sources.rednote.pages = true` (the registry's `opt_in`; otherwise the runner and the service skip it with
one line): for pages a user may fetch, e.g. a mirror of saved pages. RedNote posts otherwise come from
captures (`murmur import`). RedNote has no public API and no search for logged-out visitors, so pages come from:

- `sources.rednote.urls`: note pages (`/explore/<id>`, `/discovery/item/<id>`, their `xsec_token` kept)
  and profile pages (`/user/profile/<user id>`, whose listed notes are then fetched); any host, so a
  local copy of saved pages stands in. These are fetched at every run.
- with `follow_links`, RedNote links in other sources' posts (`crawler/links.py`): note URLs on
  www.xiaohongshu.com / xiaohongshu.com (RSSHub's Xiaohongshu routes link notes as
  `/user/profile/<user id>/<note id>`, so an `rss` source reading them feeds this one), and `xhslink.com`
  share links, resolved by reading their redirect and following it only to the real RedNote host.
  A note already stored is not fetched again; a resolved share link keeps a `crawl_state` entry
  (`xhslink.com/<code>` -> the note URL), so it is never resolved twice; a deleted note keeps one too
  (`gone:<note id>`).

Nothing here logs in, solves a captcha or signs a request: a page that answers with a captcha, a login
wall or a redirect to one is counted as blocked (`murmur/blocked`, `murmur/blocked/<why>`) and stores
nothing. Redirects are read, not followed blindly: only to RedNote note or profile pages.

`base_url` (config `sources.rednote.base_url`), when set, is where requests for www.xiaohongshu.com,
xiaohongshu.com and xhslink.com go instead (same path and query): a mirror of saved pages, or the tests'
local server. Links are still recognised by their real hosts only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest

from murmur.crawler.items import CursorUpdate
from murmur.crawler.links import linked_urls
from murmur.crawler.parsers import ParseError
from murmur.crawler.parsers.rednote import (
    HOSTS,
    SHORT_HOST,
    Blocked,
    PageRef,
    classify_url,
    note_url,
    parse_note,
    parse_profile,
    redirect_problem,
)
from murmur.crawler.pipelines import database_url
from murmur.crawler.spiders.base import MurmurSpider
from murmur.crawler.spiders.common import as_bool, as_list, describe_failure, header_text
from murmur.crawler.spiders.pages import PAGE_CONFIG_KEYS, rebased
from murmur.store.crawl_state import stored_ids

if TYPE_CHECKING:
    import psycopg
    from scrapy.http import Response
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

REAL_BASE = "https://www.xiaohongshu.com"
# PostgreSQL regular expressions for crawler/links.py: group 1 is the whole link, group 2 the id that
# a stored post's source_id is compared with. Real hosts only, anchored at "://" so that
# "evilxiaohongshu.com" or "xiaohongshu.com.example" never match. A link ends at whitespace, a quote,
# an angle bracket, a backslash (JSON escapes in posts' raw records) or a closing bracket.
NOTE_LINK = (
    r"""(https?://(?:www\.)?xiaohongshu\.com/(?:explore/|discovery/item/|user/profile/[0-9a-f]{24}/)"""
    r"""([0-9a-f]{24})[^\s"'<>\\)\]}]*)"""
)
SHORT_LINK = r"""(https?://xhslink\.com/((?:[A-Za-z]/)?[0-9A-Za-z]+))"""
MAX_REDIRECTS = 3
# Redirects are read by the callback (never followed to another host); 461 is RedNote's own
# "verification required" status (the tests of a MediaCrawler-based client answer captchas with it).
_HANDLED = [301, 302, 303, 307, 308, 403, 461]
_HEADERS = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5", "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


class RedNoteSpider(MurmurSpider):
    name = "rednote"
    config_keys = PAGE_CONFIG_KEYS

    def __init__(
        self,
        urls: list[str] | str | None = None,
        base_url: str | None = None,
        follow_links: bool | str = True,
        max_pages: int | str = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # `scrapy crawl rednote -a urls=https://...,https://... -a follow_links=false` passes strings.
        self.urls = list(dict.fromkeys(as_list(urls)))
        self.base_url = base_url.rstrip("/") if base_url else None
        self.follow_links = as_bool(follow_links)
        self.max_pages = max(1, int(max_pages))
        self.site = urlsplit(self.base_url or REAL_BASE).netloc
        # For the runner (crawler/runner.py `_outcome`): one site; it fails when nothing usable came back.
        self.instances = [self.site]
        self.failures: dict[str, str] = {}
        self.budget = self.max_pages  # pages a run may still request (notes, profiles, share links)
        self.left_over = 0  # pages not requested because the budget ran out
        self.scheduled: set[str] = set()  # note ids requested this run
        self.stored_state: dict[str, str] = {}  # this source's crawl_state: share links, deleted notes
        self.fetched = 0  # responses received
        self.usable = 0  # pages that answered with a note, a profile or a deletion
        self.parsed = 0
        self.deleted = 0
        self.malformed = 0
        self.blocked: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.robots_forbidden = 0

    # --- planning ---

    async def start(self) -> AsyncIterator[Any]:
        for request in self._plan():
            yield request

    def _plan(self) -> Iterator[scrapy.Request]:
        """Configured pages first (always fetched), then links found in other sources' posts."""
        from murmur.store.crawl_state import cursors
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            self.stored_state = cursors(conn, self.name)
            notes: list[tuple[str, str]] = []
            shorts: list[tuple[str, str]] = []
            if self.follow_links:
                notes = linked_urls(conn, source=self.name, pattern=NOTE_LINK)
                shorts = linked_urls(conn, source=self.name, pattern=SHORT_LINK)
            # A share link resolved by an earlier run: its note (or None: it led off RedNote).
            resolved = {code: _resolved(self.stored_state[_short_key(code)]) for _, code in shorts
                        if self.stored_state.get(_short_key(code))}
            stored = _stored_ids(conn, self.name, [r.id for r in resolved.values() if r is not None])

        for url in self.urls:
            ref = classify_url(url)
            if ref is None:
                self.crawler.stats.inc_value("murmur/errors/bad_url")
                logger.warning("rednote: %s is not a note (/explore/<id>) or profile (/user/profile/<id>) URL; "
                               "skipped (check sources.rednote.urls)", url)
                continue
            yield from self._request(self._fetch_url(url), ref)
        for url, note_id in notes:
            ref = classify_url(url)
            if ref is None or f"gone:{note_id}" in self.stored_state:
                continue
            yield from self._request(self._note(ref), ref)
        for url, code in shorts:
            if code in resolved:  # resolved by an earlier run: the note itself, unless stored already
                ref = resolved[code]
                if ref is not None and ref.id not in stored and f"gone:{ref.id}" not in self.stored_state:
                    yield from self._request(self._note(ref), ref)
                continue
            yield from self._request(self._fetch_url(url), PageRef("short", code))

    def _request(self, url: str, ref: PageRef, *, hops: int = 0) -> Iterator[scrapy.Request]:
        """A request for a page, within the run's budget; nothing when the note is already asked for."""
        if ref.kind == "note":
            if ref.id in self.scheduled:
                return
            self.scheduled.add(ref.id)
        if hops == 0:
            if self.budget <= 0:
                self.left_over += 1
                return
            self.budget -= 1
        yield scrapy.Request(
            url,
            headers=_HEADERS,
            callback=self.parse,
            errback=self.failed,
            dont_filter=hops > 0,
            meta={"ref": ref, "hops": hops, "dont_redirect": True, "handle_httpstatus_list": _HANDLED},
        )

    def _note(self, ref: PageRef) -> str:
        """Where a note is fetched from: /explore/<id> on the real host (or base_url), its token kept."""
        return note_url(ref.id, xsec_token=ref.xsec_token, xsec_source=ref.xsec_source,
                        base=self.base_url or REAL_BASE)

    def _fetch_url(self, url: str) -> str:
        """A real-host URL as fetched: on base_url when one is set (same path and query)."""
        return rebased(url, self.base_url, (*HOSTS, SHORT_HOST))

    def _on_platform(self, url: str, request_url: str) -> bool:
        """May a redirect to `url` be followed? Only to RedNote itself (or where it stands in)."""
        host = urlsplit(url).hostname
        return host in HOSTS or host == urlsplit(request_url).hostname

    # --- answers ---

    def parse(self, response: Response) -> Iterator[Any]:
        ref: PageRef = response.meta["ref"]
        self.fetched += 1
        self.crawler.stats.inc_value("murmur/pages/fetched")
        if response.status in (301, 302, 303, 307, 308):
            yield from self._redirected(response, ref)
            return
        if response.status == 461:
            self._blocked(response.url, Blocked("captcha", "HTTP 461"))
            return
        if response.status == 403:
            self._blocked(response.url, Blocked("refused", "HTTP 403"))
            return
        problem = redirect_problem(response.url)  # a page served at a wall's own address
        if problem is not None:
            self._note_problem(response.url, ref, problem)
            yield from self._gone(ref, problem)
            return
        if ref.kind == "short":
            self._malformed(response.url, "a share link that answered without redirecting to a note")
            return
        if ref.kind == "profile":
            yield from self._profile(response, ref)
            return
        try:
            page = parse_note(response.body, response.url)
        except ParseError as err:
            self._malformed(response.url, str(err))
            return
        if page.blocked is not None:
            self._note_problem(response.url, ref, page.blocked)
            yield from self._gone(PageRef("note", page.note_id or ref.id), page.blocked)
            return
        assert page.post is not None
        self.usable += 1
        self.parsed += 1
        self.crawler.stats.inc_value("murmur/pages")
        self.crawler.stats.inc_value("murmur/posts/parsed")
        yield page.post

    def _profile(self, response: Response, ref: PageRef) -> Iterator[Any]:
        try:
            page = parse_profile(response.body, response.url)
        except ParseError as err:
            self._malformed(response.url, str(err))
            return
        if page.blocked is not None:
            self._blocked(response.url, page.blocked)
            return
        self.usable += 1
        self.crawler.stats.inc_value("murmur/pages")
        self.crawler.stats.inc_value("murmur/profiles/notes_listed", len(page.notes))
        from murmur.store.db import connect

        with connect(database_url(self.crawler)) as conn:
            stored = _stored_ids(conn, self.name, [n.note_id for n in page.notes])
        # Listed notes live where the profile was fetched from (a local copy serves both).
        parts = urlsplit(response.url)
        base = f"{parts.scheme}://{parts.netloc}"
        for listed in page.notes:
            if listed.note_id in stored or f"gone:{listed.note_id}" in self.stored_state:
                continue
            listed_ref = PageRef("note", listed.note_id, listed.xsec_token, "pc_user" if listed.xsec_token else None)
            url = note_url(listed.note_id, xsec_token=listed_ref.xsec_token, xsec_source=listed_ref.xsec_source,
                           base=base)
            yield from self._request(url, listed_ref)

    def _redirected(self, response: Response, ref: PageRef) -> Iterator[Any]:
        location = header_text(response, "Location").strip()
        if not location:
            self._malformed(response.url, f"HTTP {response.status} without a Location")
            return
        target = response.urljoin(location)
        if not self._on_platform(target, response.url):
            host = urlsplit(target).hostname or "?"
            self.crawler.stats.inc_value("murmur/links/off_platform")
            self._blocked(response.url, Blocked("off-platform redirect", host))
            if ref.kind == "short":  # never followed, and not asked again
                yield CursorUpdate(self.name, _short_key(ref.id), f"off-platform: {host}")
            return
        problem = redirect_problem(target)
        if problem is not None:
            self._note_problem(response.url, ref, problem)
            yield from self._gone(ref, problem)
            return
        hops = response.meta["hops"] + 1
        if urlsplit(target).hostname == SHORT_HOST and ref.kind == "short" and hops <= MAX_REDIRECTS:
            yield from self._request(self._fetch_url(target), ref, hops=hops)
            return
        found = classify_url(target)
        if found is None or hops > MAX_REDIRECTS:
            self._blocked(response.url, Blocked("unavailable", f"redirected to {urlsplit(target).path}"))
            return
        if ref.kind == "short":
            # Resolved: remember where it leads (the token kept, the sharer's tracking parameters not),
            # so no later run resolves it again.
            self.crawler.stats.inc_value("murmur/short_links/resolved")
            if found.kind != "note":  # a profile shared: its notes are not what was linked
                yield CursorUpdate(self.name, _short_key(ref.id), f"profile: {found.id}")
                return
            yield CursorUpdate(self.name, _short_key(ref.id),
                               note_url(found.id, xsec_token=found.xsec_token, xsec_source=found.xsec_source))
            from murmur.store.db import connect

            with connect(database_url(self.crawler)) as conn:
                if _stored_ids(conn, self.name, [found.id]) or f"gone:{found.id}" in self.stored_state:
                    return
            yield from self._request(self._note(found), found, hops=hops)
            return
        # /discovery/item/<id> -> /explore/<id> and the like: the same page, at its other address.
        self.scheduled.discard(found.id)
        yield from self._request(self._fetch_url(target), found, hops=hops)

    def _gone(self, ref: PageRef, problem: Blocked) -> Iterator[CursorUpdate]:
        """A deleted note is remembered, so links to it are not followed again."""
        if problem.deleted and ref.kind == "note" and ref.id:
            yield CursorUpdate(self.name, f"gone:{ref.id}", "deleted")

    def _note_problem(self, url: str, ref: PageRef, problem: Blocked) -> None:
        if problem.deleted:
            self.usable += 1  # an answer: the note is gone
            self.deleted += 1
            self.crawler.stats.inc_value("murmur/posts/skipped_deleted")
            logger.info("rednote: %s is deleted (%s)", url, problem.detail or "the page says so")
            return
        self._blocked(url, problem)

    def _blocked(self, url: str, problem: Blocked) -> None:
        self.blocked[problem.reason] += 1
        self.crawler.stats.inc_value("murmur/blocked")
        self.crawler.stats.inc_value(f"murmur/blocked/{problem.reason.replace(' ', '_')}")
        logger.debug("rednote: %s is blocked: %s", url, problem)

    def _malformed(self, url: str, why: str) -> None:
        self.malformed += 1
        self.crawler.stats.inc_value("murmur/errors/malformed")
        logger.warning("rednote: skipped a malformed page from %s (%s)", url, why)

    def failed(self, failure: Failure) -> None:
        kind, reason = describe_failure(failure)
        if failure.check(IgnoreRequest) and "robots.txt" in failure.getErrorMessage():
            self.robots_forbidden += 1
            self.crawler.stats.inc_value("murmur/robots_forbidden")
            return
        self.crawler.stats.inc_value(f"murmur/errors/{kind}")
        self.errors[kind] += 1

    def closed(self, reason: str) -> None:
        asked = self.fetched + sum(self.errors.values()) + self.robots_forbidden
        if asked == 0 and not self.left_over:
            logger.info("rednote: nothing to fetch (no sources.rednote.urls%s)",
                        ", and no new note links in other sources' posts" if self.follow_links else "")
            return
        parts = [f"{self.fetched} pages fetched", f"{self.parsed} notes parsed"]
        if self.blocked:
            kinds = ", ".join(f"{why}: {n}" for why, n in self.blocked.most_common())
            parts.append(f"{sum(self.blocked.values())} blocked ({kinds})")
        if self.deleted:
            parts.append(f"{self.deleted} deleted")
        if self.malformed:
            parts.append(f"{self.malformed} malformed")
        if self.errors:
            kinds = ", ".join(f"{kind}: {n}" for kind, n in self.errors.most_common())
            parts.append(f"{sum(self.errors.values())} failed ({kinds})")
        if self.robots_forbidden:
            parts.append(f"{self.robots_forbidden} forbidden by robots.txt (crawler.obey_robots)")
        if self.left_over:
            parts.append(f"{self.left_over} left for the next run (sources.rednote.max_pages = {self.max_pages})")
        line = ", ".join(parts)
        trouble = self.blocked or self.malformed or self.errors or self.robots_forbidden
        logger.log(logging.WARNING if trouble else logging.INFO, "rednote: %s", line)
        if self.usable == 0 and trouble:
            # Nothing usable came back: the run failed (blocked, refused or unreachable), said once.
            self.failures[self.site] = line


def _short_key(code: str) -> str:
    """The crawl_state query of a share link: its host and path."""
    return f"{SHORT_HOST}/{code}"


def _resolved(cursor: str) -> PageRef | None:
    """A share link's stored target: the note it leads to, or None ("off-platform: <host>")."""
    ref = classify_url(cursor) if cursor.startswith(REAL_BASE) else None
    return ref if ref is not None and ref.kind == "note" else None


def _stored_ids(conn: psycopg.Connection, source: str, ids: Iterable[str]) -> set[str]:
    """Which of `ids` are stored posts of `source`."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return set()
    return stored_ids(conn, source, wanted)
