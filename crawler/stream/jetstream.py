"""The Jetstream consumer: one websocket to `<instance>/subscribe?wantedCollections=app.bsky.feed.post`,
its frames through the crawl pipeline's steps (normalise, match terms, detect language), stored in batches.

One transaction per batch: the posts that match a term (and replies to stored posts, their conversation),
edits (a changed text drops the post's scores, so it is scored again, and marks its buckets), deletions
(post and scores removed, buckets marked), the network's volume (every create past the committed cursor:
never counted twice across rewinds, restarts or a kill -9), handles learnt from identity events, and the
cursor (`crawl_state`: source 'jetstream', the last `time_us` committed). Reconnecting rewinds `rewind`
seconds before that cursor and relies on idempotent writes.

Nothing here imports torch or Scrapy: the service runs this in a child process of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from murmur.crawler.items import Post
from murmur.crawler.language import detect_language
from murmur.crawler.parsers import jetstream as parser
from murmur.crawler.parsers.bluesky import POST_COLLECTION, web_url
from murmur.crawler.parsers.bluesky import SOURCE as POSTS_SOURCE
from murmur.crawler.text import TermMatcher, normalise_text

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from murmur.config import Settings, SourceSettings

logger = logging.getLogger(__name__)

SOURCE = "jetstream"
CURSOR_QUERY = POST_COLLECTION  # the crawl_state row's query: what the cursor covers
BATCH_EVENTS = 5000  # a batch is written when it holds this many events ...
BATCH_SECONDS = 1.0  # ... or is this old: the cursor is then at most about a second behind what was read
STATS_EVERY = 5.0  # seconds between updates of the job_runs row while the stream runs
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 60.0  # seconds before reconnecting, doubled after each failure in a row
RECV_TIMEOUT = 0.25  # how often a quiet stream looks at its stop event and deadline
MAX_HANDLES = 1_000_000  # DID -> handle entries remembered (identity events: a few thousand a day)


# The counters of a stream run's job_runs stats, always present (0 until something happens); besides them
# `skipped/<reason>` per reason met (parsers/jetstream.py), and lag, events_per_second, connected_since,
# instance and cursor (JetstreamConsumer.snapshot).
STAT_KEYS = (
    "events",  # frames received
    "posts",  # post creates read (a rewind re-reads a few)
    "matched",  # creates stored because they match a term
    "replies",  # replies stored because their thread is stored (no term of their own)
    "new",  # rows new in `posts`
    "updates",  # update events applied to stored (or now stored) posts
    "edited",  # stored posts whose text changed: scores dropped, buckets marked
    "deletes",  # stored posts removed by delete events
    "update_events", "delete_events", "identities",
    "renamed",  # stored posts whose author went from DID to handle
    "baseline",  # creates counted into network_volume
    "reconnects", "batches", "skipped/malformed",
)


def subscribe_url(base: str, cursor_us: int | None = None) -> str:
    """`<base>/subscribe?wantedCollections=app.bsky.feed.post`, and `&cursor=<time_us>` when resuming."""
    params: list[tuple[str, str | int]] = [("wantedCollections", POST_COLLECTION)]
    if cursor_us is not None:
        params.append(("cursor", cursor_us))
    return f"{base.rstrip('/')}/subscribe?{urlencode(params)}"


@dataclass
class _Batch:
    """What was read since the last commit."""

    posts: dict[str, Post] = field(default_factory=dict)  # matching creates and updates, by at:// URI
    replies: dict[str, Post] = field(default_factory=dict)  # non-matching replies: kept if the thread is stored
    edits: set[str] = field(default_factory=set)  # URIs an update event named
    deletes: set[str] = field(default_factory=set)
    volume: Counter[tuple[datetime, str]] = field(default_factory=Counter)
    renames: dict[str, str] = field(default_factory=dict)  # DID -> handle, for posts stored under the DID
    events: int = 0
    max_time_us: int = 0
    started: float = field(default_factory=time.monotonic)


class JetstreamConsumer:
    """Reads the stream until `stop` is set or `deadline` (time.monotonic) passes; `run` returns its status."""

    def __init__(
        self,
        settings: Settings,
        conn: psycopg.Connection,
        run_id: int,
        *,
        stop: threading.Event,
        deadline: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config: SourceSettings = settings.sources[SOURCE]
        self.user_agent = settings.crawler.user_agent
        self.matcher = TermMatcher(list(settings.terms))
        self.conn, self.run_id = conn, run_id
        self.stop, self.deadline, self.on_progress = stop, deadline, on_progress
        self.handles: dict[str, str] = {}
        self.dids_stored: set[str] = set()  # authors stored under their DID in this run
        self.cursor = self._stored_cursor()  # the last time_us committed (None: never connected)
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self.info: dict[str, Any] = {"lag": None, "events_per_second": 0.0, "connected_since": None,
                                     "instance": None, "cursor": self.cursor}
        self.batch = _Batch()
        self._last_stats = self._last_progress = time.monotonic()
        self._events_at_progress = 0

    # --- the connection loop ---

    def run(self) -> str:
        """Connect, read, reconnect with backoff, instances in turn; 'ok' at the deadline, 'interrupted' when
        stopped. Database errors propagate (the caller records the run as failed)."""
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        instances = list(self.config.instances)
        failures, turn = 0, 0
        while not self._should_stop():
            base = instances[turn % len(instances)]
            since = None if self.cursor is None else max(self.cursor - int(self.config.rewind * 1_000_000), 0)
            url = subscribe_url(base, since)
            got_events = False
            try:
                with connect(url, open_timeout=10, close_timeout=2, max_size=16 * 1024 * 1024, max_queue=4096,
                             user_agent_header=self.user_agent) as ws:
                    logger.info("jetstream: connected to %s%s", base, f" (cursor {since})" if since else " (live)")
                    self.info.update(connected_since=datetime.now(UTC).isoformat(timespec="seconds"), instance=base)
                    got_events = self._read(ws)
                    if self._should_stop():
                        break
                    logger.warning("jetstream: %s closed the connection; reconnecting", base)
            except (OSError, TimeoutError, WebSocketException) as err:
                got_events = got_events or self.batch.events > 0
                logger.warning("jetstream: %s: %s: %s", base, type(err).__name__, err)
            self.flush()  # what was read before the drop is committed: the rewind re-reads only seconds
            if self._should_stop():
                break
            self.stats["reconnects"] += 1
            failures = 0 if got_events else failures + 1
            turn += 1  # the next instance: their cursors are the same times (Jetstream's README)
            delay = min(BACKOFF_FIRST * 2 ** max(failures - 1, 0), BACKOFF_MAX)
            self.info["connected_since"] = None
            self.stop.wait(self._until_deadline(delay))
        self.flush()
        self._write_stats()
        return "ok" if self.deadline is not None and time.monotonic() >= self.deadline else "interrupted"

    def _read(self, ws: Any) -> bool:
        """Frames until the connection ends or the consumer should stop; whether any frame came."""
        got = False
        while not self._should_stop():
            try:
                frame = ws.recv(timeout=RECV_TIMEOUT)
            except TimeoutError:
                frame = None
            if frame is not None:
                got = True
                self.handle(frame)
            now = time.monotonic()
            if self.batch.events >= BATCH_EVENTS or (self.batch.events and now - self.batch.started >= BATCH_SECONDS):
                self.flush()
            if now - self._last_progress >= 1.0:
                self._progress(now)
        return got

    def _should_stop(self) -> bool:
        return self.stop.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)

    def _until_deadline(self, delay: float) -> float:
        return delay if self.deadline is None else max(min(delay, self.deadline - time.monotonic()), 0.0)

    # --- one frame ---

    def handle(self, frame: bytes | str) -> None:
        """One frame into the batch (no database work: that waits for `flush`)."""
        event = parser.parse_frame(frame, handles=self.handles)
        batch = self.batch
        batch.events += 1
        self.stats["events"] += 1
        time_us = getattr(event, "time_us", None)
        if time_us:
            batch.max_time_us = max(batch.max_time_us, time_us)
            self.info["lag"] = round(max(time.time() - time_us / 1_000_000, 0.0), 3)
        if isinstance(event, parser.Create):
            self.stats["posts"] += 1
            self._post(event.post, event.time_us, created=True)
        elif isinstance(event, parser.Update):
            self.stats["update_events"] += 1
            batch.edits.add(event.post.source_id)
            self._post(event.post, event.time_us, created=False)
        elif isinstance(event, parser.Delete):
            self.stats["delete_events"] += 1
            batch.posts.pop(event.uri, None)
            batch.replies.pop(event.uri, None)
            batch.edits.discard(event.uri)
            batch.deletes.add(event.uri)
        elif isinstance(event, parser.Identity):
            self.stats["identities"] += 1
            if event.handle:
                if len(self.handles) >= MAX_HANDLES:
                    self.handles.clear()
                self.handles[event.did] = event.handle
                if event.did in self.dids_stored:
                    batch.renames[event.did] = event.handle
        else:
            self.stats[f"skipped/{event.reason}"] += 1
            if event.reason == parser.MALFORMED:
                logger.debug("jetstream: malformed frame skipped: %s", event.detail)

    def _post(self, post: Post, time_us: int, *, created: bool) -> None:
        post.text = normalise_text(post.text)
        counted = created and self.config.baseline and (self.cursor is None or time_us > self.cursor)
        terms = self.matcher.match(post.text, post.tags) if post.text else []
        reply = bool(post.parent_source_id or post.root_source_id)
        if counted or terms or reply or not created:  # the detector only where its answer is used
            post.lang = detect_language(post.text, post.lang)
        if counted:  # the baseline: every post created, matching or not, by created_at hour and language
            hour = post.created_at.replace(minute=0, second=0, microsecond=0)
            self.batch.volume[(hour, post.lang or "und")] += 1
        if not post.text:  # nothing to score (an image with no words): counted, not stored, as crawls do
            return
        post.terms = terms
        uri = post.source_id
        if terms:
            self.batch.posts[uri] = post
            self.batch.replies.pop(uri, None)
        elif reply or not created:
            self.batch.replies[uri] = post  # kept at flush if its thread (or the post, for an edit) is stored
            self.batch.posts.pop(uri, None)

    # --- one transaction per batch ---

    def flush(self) -> None:
        """Write the batch, the volume and the cursor in one transaction."""
        from murmur.store import stream as store
        from murmur.store.posts import set_cursors, upsert_posts

        batch, self.batch = self.batch, _Batch()
        if not batch.events:
            return
        with self.conn.transaction():
            pending = {**batch.replies}
            refs = {r for p in pending.values() for r in (p.parent_source_id, p.root_source_id) if r}
            known = store.stored_terms(self.conn, POSTS_SOURCE, refs | batch.edits)
            known.update({uri: post.terms for uri, post in batch.posts.items()})
            posts = dict(batch.posts)
            for uri, post in pending.items():  # in arrival order: a reply to a reply of this batch is found
                thread = next((r for r in (post.parent_source_id, post.root_source_id) if r in known), None)
                if thread is not None or uri in known:  # its thread is stored, or (an edit) the post itself
                    # A reply carries its thread's terms, as crawled replies do; an edit without a term keeps
                    # the stored ones (the merge adds terms, never removes them).
                    post.terms = list(known[thread]) if thread is not None else []
                    known[uri] = post.terms
                    posts[uri] = post
            for post in posts.values():  # a handle learnt later in the same batch
                handle = self.handles.get(post.author or "")
                if handle is not None:
                    post.author, post.url = handle, web_url(handle, post.source_id.rsplit("/", 1)[-1])
            edited = {uri: posts[uri].text for uri in batch.edits if uri in posts}
            self.stats["edited"] += store.forget_edited(self.conn, POSTS_SOURCE, edited)
            self.stats["updates"] += len(edited)
            self.stats["matched"] += sum(1 for uri in batch.posts if uri not in batch.edits)
            self.stats["replies"] += sum(1 for uri in pending if uri in posts and uri not in batch.edits)
            result = upsert_posts(self.conn, list(posts.values()))
            self.stats["new"] += result.new
            self.stats["deletes"] += store.delete_posts(self.conn, POSTS_SOURCE, sorted(batch.deletes))
            store.add_network_volume(self.conn, POSTS_SOURCE, batch.volume)
            self.stats["baseline"] += sum(batch.volume.values())
            self.stats["renamed"] += store.rename_authors(self.conn, POSTS_SOURCE, batch.renames)
            self.dids_stored.update(p.author for p in posts.values() if p.author and p.author.startswith("did:"))
            new_cursor: int | None = self.cursor
            if batch.max_time_us and (self.cursor is None or batch.max_time_us > self.cursor):
                set_cursors(self.conn, [(SOURCE, CURSOR_QUERY, str(batch.max_time_us))])
                new_cursor = batch.max_time_us
            self.stats["batches"] += 1
            if time.monotonic() - self._last_stats >= STATS_EVERY:
                self.info["cursor"] = new_cursor
                store.update_run_stats(self.conn, self.run_id, self.snapshot())
                self._last_stats = time.monotonic()
        self.cursor = new_cursor  # only once committed: the baseline counts what is past it
        self.info["cursor"] = new_cursor

    # --- figures ---

    def snapshot(self) -> dict[str, Any]:
        """The job_runs stats: counters, then lag (seconds behind real time), events/s, connection, cursor."""
        return {**dict(sorted(self.stats.items())), **self.info}

    def _write_stats(self) -> None:
        from murmur.store.stream import update_run_stats

        with self.conn.transaction():
            update_run_stats(self.conn, self.run_id, self.snapshot())

    def _progress(self, now: float) -> None:
        elapsed = now - self._last_progress
        self.info["events_per_second"] = round((self.stats["events"] - self._events_at_progress) / elapsed, 1)
        self._events_at_progress, self._last_progress = self.stats["events"], now
        if self.on_progress is not None:
            self.on_progress(self.snapshot())

    def _stored_cursor(self) -> int | None:
        from murmur.store.posts import get_cursor

        value = get_cursor(self.conn, SOURCE, CURSOR_QUERY)
        return int(value) if value and value.isdigit() else None
