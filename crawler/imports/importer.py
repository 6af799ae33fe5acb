"""Importing one file: read its records as a stream, parse each (the format's pure parser), then the steps
every crawl takes (normalise, match terms, detect language) and store in batches, one transaction each.
Each file is a `job_runs` row (`import:<format>`) with what it read, stored, dropped and skipped.

Bad input never stops a file: a record that cannot be used is counted by kind with its first line
numbers, and the rest is imported. A compressed stream that breaks off part-way ends the file as
`partial`, with what came before it stored. Importing the same file again stores nothing new.

A reply or comment that names no term is kept with its thread, as the Jetstream consumer keeps replies:
when its parent or root is stored (or kept earlier in the file) it takes that thread's terms and is counted
as `replies`. Comments rarely say what they are about (MediaCrawler's comment rows carry no
`source_keyword`), so this is how the comments under a searched note come in with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from murmur.crawler.imports.reading import (
    BadRecord,
    compression_error,
    csv_records,
    json_array_records,
    ndjson_records,
    open_stream,
)
from murmur.crawler.language import detect_language
from murmur.crawler.text import TermMatcher, normalise_text
from murmur.store.posts import upsert_posts
from murmur.store.runs import finish_run, start_run
from murmur.store.stream import stored_terms

if TYPE_CHECKING:
    import psycopg

    from murmur.crawler.imports.formats import FilePlan
    from murmur.crawler.items import Post
    from murmur.crawler.parsers.imported import Imported

logger = logging.getLogger(__name__)

FIRST_LINES = 5  # line numbers kept per kind of bad input
PROGRESS_EVERY = 1000  # records between progress reports

_READERS: dict[str, Callable[[IO[bytes]], Iterator[tuple[int, Any]]]] = {
    "ndjson": ndjson_records, "csv": csv_records, "json": json_array_records,
}


@dataclass(frozen=True)
class ImportOptions:
    """What is kept: posts matching `terms`, or from a search for `term` (or the capture's own query);
    everything with `keep_all`; only those created in [since, until) when given (UTC)."""

    terms: Sequence[str] = ()
    term: str | None = None
    keep_all: bool = False
    since: datetime | None = None
    until: datetime | None = None
    batch_size: int = 500


@dataclass
class ImportOutcome:
    file: str
    format: str
    status: str  # ok | partial (the file broke off; what came before is stored) | failed | interrupted
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def new_posts(self) -> int:
        return int(self.stats.get("posts", {}).get("new", 0))

    def summary(self) -> str:
        """One line: what was read, stored, dropped and skipped (with the first lines of each kind)."""
        s = self.stats
        posts, dropped = s.get("posts", {}), s.get("dropped", {})
        detail = f" ({s['detail']})" if s.get("detail") else ""
        line = (f"{self.file}: {self.format}{detail}, {s.get('records', 0)} records, {posts.get('new', 0)} new, "
                f"{posts.get('updated', 0)} updated, {posts.get('unchanged', 0)} unchanged")
        if s.get("replies"):
            line += f"; {s['replies']} kept with their thread"
        reasons = {"no_term": "matching no term", "outside_window": "outside --since/--until",
                   "empty": "with no text"}
        drops = [f"{n} {reasons.get(k, k)}" for k, n in dropped.items() if n]
        if drops:
            line += "; dropped " + ", ".join(drops)
        skips = []
        for kind, n in s.get("skipped", {}).items():
            lines = s.get("skipped_lines", {}).get(kind, [])
            unit = s.get("position", "line")
            where = f" ({unit}{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}" + (
                ", ..." if n > len(lines) else "") + ")" if lines else ""
            skips.append(f"{n} {kind}{where}")
        if skips:
            line += "; skipped " + ", ".join(skips)
        if self.status != "ok":
            line += f"; {self.status}" + (f": {self.error}" if self.error else "")
        return line


class _Counts:
    """What a file's import did, as it goes."""

    def __init__(self) -> None:
        self.records = 0
        self.new = self.updated = self.unchanged = 0
        self.replies = 0  # kept because their thread is (no term of their own)
        self.dropped = {"no_term": 0, "outside_window": 0, "empty": 0}
        self.skipped: dict[str, int] = {}
        self.lines: dict[str, list[int]] = {}

    def skip(self, kind: str, line: int) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        first = self.lines.setdefault(kind, [])
        if len(first) < FIRST_LINES and line not in first:
            first.append(line)

    def stats(self) -> dict[str, Any]:
        return {"records": self.records,
                "posts": {"new": self.new, "updated": self.updated, "unchanged": self.unchanged},
                "replies": self.replies, "dropped": dict(self.dropped),
                "skipped": dict(self.skipped), "skipped_lines": dict(self.lines)}


class _Keeper:
    """The steps after parsing: normalise, window, terms, language (as the crawl pipelines do them)."""

    def __init__(self, options: ImportOptions) -> None:
        self.options = options
        self.matcher = TermMatcher(list(options.terms))
        self._queries: dict[str, list[str]] = {}
        self.waiting: list[Post] = []  # replies with no term of their own, until their thread is looked up

    def query_terms(self, query: str) -> list[str]:
        """A search's query as terms: the configured terms it names (so "tiktok refugees" counts under
        "TikTok refugee"), else the query itself."""
        if query not in self._queries:
            self._queries[query] = self.matcher.match(normalise_text(query)) or [query.strip()]
        return self._queries[query]

    def keep(self, imported: Imported, counts: _Counts) -> Post | None:
        """The post to store, or None: dropped (counted), or a reply with no term of its own, which waits in
        `self.waiting` for `settle` to look up its thread."""
        post = imported.post
        assert post is not None
        post.text = normalise_text(post.text or "")
        if not post.text:
            counts.dropped["empty"] += 1
            return None
        opts = self.options
        if (opts.since and post.created_at < opts.since) or (opts.until and post.created_at >= opts.until):
            counts.dropped["outside_window"] += 1
            return None
        own = self.matcher.match(post.text, post.tags)
        query = imported.query or opts.term
        searched = self.query_terms(query) if query and query.strip() else []
        post.terms = own + [t for t in searched if t not in own]
        if not post.terms and (post.parent_source_id or post.root_source_id):
            self.waiting.append(post)
            return None
        if not post.terms and not opts.keep_all:
            counts.dropped["no_term"] += 1
            return None
        return self.finish(post)

    @staticmethod
    def finish(post: Post) -> Post:
        post.lang = detect_language(post.text, post.lang)
        post.via = "import"
        return post

    def settle(self, conn: psycopg.Connection, batch: Sequence[Post], counts: _Counts) -> list[Post]:
        """The waiting replies whose parent or root is stored or in `batch` (or kept just before them), with
        that thread's terms; the others dropped (or, with keep_all, kept with none)."""
        waiting, self.waiting = self.waiting, []
        if not waiting:
            return []
        known: dict[tuple[str, str], list[str]] = {}
        refs: dict[str, set[str]] = {}
        for post in waiting:
            refs.setdefault(post.source, set()).update(r for r in (post.parent_source_id, post.root_source_id) if r)
        for source, ids in refs.items():
            known.update(((source, sid), terms) for sid, terms in stored_terms(conn, source, ids).items() if terms)
        known.update(((p.source, p.source_id), p.terms) for p in batch if p.terms)
        kept = []
        for post in waiting:  # in file order: a reply to a reply kept here finds its parent
            thread = next((t for r in (post.parent_source_id, post.root_source_id)
                           if r and (t := known.get((post.source, r)))), None)
            if thread is not None:
                post.terms = list(thread)
                known[(post.source, post.source_id)] = post.terms
                counts.replies += 1
            elif not self.options.keep_all:
                counts.dropped["no_term"] += 1
                continue
            kept.append(self.finish(post))
        return kept


def import_file(
    conn: psycopg.Connection,
    plan: FilePlan,
    options: ImportOptions,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportOutcome:
    """Import the file `plan` describes, recorded as a job run `import:<format>`; `on_progress(bytes read
    from disk, records)` is called now and then."""
    counts = _Counts()
    keeper = _Keeper(options)
    # Where a bad record is: its line, or in a JSON array its position.
    stats: dict[str, Any] = {"file": str(plan.path), "format": plan.format,
                             "position": "item" if plan.reader == "json" else "line"}
    if plan.detail:
        stats["detail"] = plan.detail
    run_id = start_run(conn, f"import:{plan.format}")
    started = time.monotonic()
    status, error = "ok", None
    batch: list[Post] = []

    def flush() -> None:
        if not batch and not keeper.waiting:
            return
        with conn.transaction():
            batch.extend(keeper.settle(conn, batch, counts))
            if not batch:
                return
            result = upsert_posts(conn, batch)
        counts.new += result.new
        counts.updated += result.updated
        counts.unchanged += result.unchanged
        batch.clear()

    def finish(run_status: str, run_error: str | None, sha256: str | None, size: int) -> ImportOutcome:
        stats.update(sha256=sha256, bytes=size, seconds=round(time.monotonic() - started, 2), **counts.stats())
        finish_run(conn, run_id, status=run_status, stats=stats, error=run_error)
        return ImportOutcome(str(plan.path), plan.format, run_status, stats, run_error)

    sha256, size = None, 0
    try:
        with open_stream(plan.path) as (stream, tally):
            try:
                for line, record in _READERS[plan.reader](stream):
                    counts.records += 1
                    if isinstance(record, BadRecord):
                        counts.skip(record.kind, line)
                        continue
                    for imported in _parse(plan, record, line, counts):
                        post = keeper.keep(imported, counts)
                        if post is not None:
                            batch.append(post)
                        if len(batch) >= options.batch_size or len(keeper.waiting) >= options.batch_size:
                            flush()
                    if on_progress is not None and counts.records % PROGRESS_EVERY == 0:
                        on_progress(tally.bytes, counts.records)
            except compression_error() as err:
                status, error = "partial", f"the file breaks off after record {counts.records} ({err})"
                logger.warning("%s: %s", plan.path, error)
            flush()
            tally.drain()
            sha256, size = tally.sha256.hexdigest(), tally.bytes
            if on_progress is not None:
                on_progress(tally.bytes, counts.records)
    except KeyboardInterrupt:
        _flush_quietly(flush)
        finish("interrupted", "stopped by a signal", sha256, size)
        raise
    except BaseException as err:
        finish("failed", f"{type(err).__name__}: {err}", sha256, size)
        raise
    return finish(status, error, sha256, size)


def _parse(plan: FilePlan, record: Any, line: int, counts: _Counts) -> list[Imported]:
    """The format parser's posts of one record; its skips counted. A parser that raises (they should
    not) costs that record only, counted as `parser_error`."""
    try:
        results = plan.parse(record)
    except Exception as err:
        logger.debug("%s line %d: the %s parser failed: %r", plan.path, line, plan.format, err)
        counts.skip("parser_error", line)
        return []
    kept = []
    for imported in results:
        if imported.post is None:
            counts.skip(imported.skip or "unusable", line)
        else:
            kept.append(imported)
    return kept


def _flush_quietly(flush: Callable[[], None]) -> None:
    """Commit the batch in hand on the way out of an interrupted import."""
    try:
        flush()
    except Exception as err:  # the interruption is what gets reported
        logger.warning("the last batch of an interrupted import was not stored: %s", err)
