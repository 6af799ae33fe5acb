"""The application layer: one place that composes the parts.

`App` loads the scoring routes once, scores, aggregates and alerts, and records each run in
`job_runs`. The CLI (`murmur ...`), the demo and the service call it; it never imports any of
them, and it prints nothing: it returns what happened and logs. Heavy parts (torch, Scrapy) are
imported only by the method that needs them, so `murmur crawl` never loads the model.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from murmur.errors import MurmurError, UserError

if TYPE_CHECKING:
    import psycopg

    from murmur.alerts import Delivery
    from murmur.config import Settings
    from murmur.config.settings import AlertSettings
    from murmur.crawler.imports.importer import ImportOutcome
    from murmur.crawler.runner import CrawlOutcome
    from murmur.search import Hit
    from murmur.sentiment.embeddings import Embedder
    from murmur.sentiment.scorer import Scorer
    from murmur.sentiment.worker import EmbeddingSink, EmbedRun, Route, ScoreRun
    from murmur.store.embeddings import SearchFilters
    from murmur.store.trends import AggregateRun

logger = logging.getLogger("murmur")

# After a look for history to re-score finds none, the service looks again only after this many seconds:
# each look is an anti-join over every post, and history only appears when the configured model changes.
HISTORY_RECHECK_S = 300.0


@dataclass(frozen=True)
class ScoreOutcome:
    run: ScoreRun
    unscored: int  # posts no configured model may score (their reasons are in unscored_posts)
    models: tuple[str, ...]  # model ids, in route order
    description: str  # "m1 (en/zh), m2 (any language)"
    status: str  # ok | interrupted
    rescored: int = 0  # of run.scored, posts another model had scored (history re-scored for these models)

    def stats(self) -> dict[str, Any]:
        run = self.run
        return {"scored": run.scored, "batches": run.batches, "seconds": round(run.seconds, 2),
                "unscored": self.unscored, "models": list(self.models), "rescored": self.rescored}


@dataclass(frozen=True)
class AggregateOutcome:
    result: AggregateRun
    status: str  # ok | partial (the trends are stored, alert detection failed)
    delivery: Delivery | None = None  # what the webhook took, when delivery ran in this call
    error: str | None = None


class App:
    """The settings, the database, and the models loaded for them (once, shared by threads).

    The database URL is resolved on first use, so commands that need no database (`murmur model predict`)
    never start the embedded server."""

    def __init__(self, settings: Settings, database_url: str | None = None, *, database: str = "murmur") -> None:
        self.settings = settings
        self.database = database
        self._url = database_url
        self._scorers: dict[str, Scorer] = {}
        self._routes: list[Route] | None = None
        self._lock = threading.Lock()
        self._history_quiet_until = 0.0  # time.monotonic() before which a bounded history pass is skipped
        self._embedder: Embedder | None = None
        self._warned_no_embeddings = False

    @property
    def database_url(self) -> str:
        """The configured database's URL (starting the embedded server when no URL is set)."""
        if self._url is None:
            from murmur.store.db import resolve_url

            self._url = resolve_url(self.settings.database.url, self.settings.database.data_dir, self.database)
        return self._url

    def connect(self) -> psycopg.Connection:
        """A connection to a migrated database."""
        from murmur.store.db import connect
        from murmur.store.migrate import migrate

        conn = connect(self.database_url)
        migrate(conn)
        return conn

    # --- sources ---

    def chosen_sources(self, names: Sequence[str] = ()) -> list[str]:
        """The sources named (each must be configured), or every enabled one."""
        if not names:
            enabled = [s.name for s in self.settings.enabled_sources()]
            if not enabled:
                raise UserError("no source is enabled; set sources.<name>.enabled = true in your config")
            return enabled
        for name in names:
            if name not in self.settings.sources:
                raise UserError(f"unknown source {name!r}; configured sources: {', '.join(self.settings.sources)}")
        return list(names)

    def crawl(
        self,
        sources: Sequence[str],
        *,
        max_pages: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[CrawlOutcome]:
        """Crawl once, in this process (Scrapy's reactor: one crawl per process); each run recorded.
        Stream and import-only sources are skipped with a line saying so (`murmur stream`, `murmur import`).
        With `since` (and `until`, excluded), a date window is collected where the platform serves one, its
        progress kept apart from the incremental cursors; a source that cannot is skipped with a line."""
        if until is not None and since is None:
            raise UserError("--until needs --since: a window has a start (e.g. --since 2025-01-13 --until 2025-01-20)")
        if until is not None and since is not None and until <= since:
            raise UserError(f"--until ({until:%Y-%m-%d %H:%M}) must be after --since ({since:%Y-%m-%d %H:%M})")
        from murmur.crawler.registry import SOURCES

        streams = [name for name in sources if SOURCES[name].is_stream]
        for name in streams:
            logger.info("%s: a stream source, not crawled (run `murmur stream %s`, or `murmur serve`)", name, name)
        imports = [name for name in sources if SOURCES[name].is_import_only]
        for name in imports:
            logger.info("%s: import only, not crawled (its posts arrive with `murmur import FILE --source %s` "
                        "or a capture of its platform)", name, name)
        sources = [name for name in sources if name not in streams and name not in imports]
        if not sources:
            return []
        from murmur.crawler.runner import run_crawl

        extra: dict[str, Any] = {"MURMUR_MAX_PAGES": max_pages} if max_pages else {}
        if since is not None:
            extra["MURMUR_SINCE"] = since.isoformat()
            if until is not None:
                extra["MURMUR_UNTIL"] = until.isoformat()
        return run_crawl(self.settings, list(sources), self.database_url, extra=extra or None)

    def chosen_streams(self, names: Sequence[str] = ()) -> list[str]:
        """The stream sources named (each must be a configured stream source), or every enabled one."""
        from murmur.crawler.registry import SOURCES

        for name in names:
            if name not in SOURCES or not SOURCES[name].is_stream:
                streams = ", ".join(n for n, s in SOURCES.items() if s.is_stream)
                raise UserError(f"{name!r} is not a stream source; stream sources: {streams}")
        chosen = self.chosen_sources(names) if names else [
            s.name for s in self.settings.enabled_sources() if SOURCES[s.name].is_stream]
        if not chosen:
            raise UserError("no stream source is enabled; set sources.jetstream.enabled = true in your config")
        return chosen

    # --- imports ---

    def import_files(
        self,
        paths: Sequence[Path],
        *,
        fmt: str = "auto",
        source: str | None = None,
        term: str | None = None,
        keep_all: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        mapping: Sequence[str] = (),
        show_progress: bool = False,
        on_skipped: Callable[[Path, str], None] | None = None,
    ) -> list[ImportOutcome]:
        """Import captures, dumps and exports (`murmur import`), each file a `job_runs` row `import:<format>`.
        Every file named is checked before any is imported (UserError in one line); files in a folder that
        are in no known format are handed to `on_skipped` with why."""
        from murmur.crawler.imports.formats import plan
        from murmur.crawler.imports.generic import parse_mapping
        from murmur.crawler.imports.importer import ImportOptions, import_file
        from murmur.crawler.registry import SOURCES
        from murmur.progress import file_progress

        if source is not None and source not in SOURCES:
            raise UserError(f"--source {source!r}: unknown source; sources: {', '.join(SOURCES)}")
        if since and until and since >= until:
            raise UserError("--since must be before --until")
        plans, skipped = plan(list(paths), fmt, source=source, mapping=parse_mapping(mapping))
        for path, why in skipped:
            logger.warning("%s: not imported: %s", path, why)
            if on_skipped is not None:
                on_skipped(path, why)
        options = ImportOptions(terms=tuple(self.settings.terms), term=term, keep_all=keep_all, since=since,
                                until=until)
        outcomes = []
        with self.connect() as conn:
            for file in plans:
                if show_progress:
                    with file_progress(f"import {file.path.name}", file.path.stat().st_size) as report:
                        outcomes.append(import_file(conn, file, options, on_progress=report))
                else:
                    outcomes.append(import_file(conn, file, options))
                logger.debug("import %s", outcomes[-1].summary())
        return outcomes

    # --- scoring ---

    def load_scorer(self, ref: str) -> Scorer:
        """The scorer of a model name, path or hub id, loaded once (in int8 where model.quantize says)."""
        from murmur.sentiment.model import load
        from murmur.sentiment.quantize import quantize_int8, wants_int8
        from murmur.sentiment.scorer import Scorer

        if ref not in self._scorers:
            model_settings = self.settings.model
            if model_settings.threads:
                import torch

                torch.set_num_threads(model_settings.threads)
            started = time.monotonic()
            model = load(ref, model_settings.device)
            if wants_int8(model, model_settings.quantize):
                model = quantize_int8(model)
            logger.info("model %s loaded on %s in %.1fs", model.model_id, model.device, time.monotonic() - started)
            self._scorers[ref] = Scorer(model, max_tokens=model_settings.max_tokens or None)
        return self._scorers[ref]

    def routes(self) -> list[Route]:
        """The scoring routes the config asks for, their models loaded on first use; raises ModelError."""
        from murmur.sentiment.worker import plan_routes

        with self._lock:
            if self._routes is None:
                self._routes = plan_routes(self.settings, self.load_scorer)
            return self._routes

    def score(
        self,
        conn: psycopg.Connection,
        *,
        limit: int | None = None,
        batch_size: int = 256,
        stop: threading.Event | None = None,
        show_progress: bool = False,
        keep_idle_run: bool = True,
        history: int | None = 0,
    ) -> ScoreOutcome | None:
        """Score the new posts (no model has scored them yet) through every route, then the history `history`
        asks for, recorded as one `score` run; `limit` caps both together.

        History is posts another model scored and the routes' models have not (after the configured model
        changed): `history=0` leaves it (`murmur score`), `None` re-scores all of it after the new posts
        (`murmur score --all-posts`), and N re-scores up to N of it, newest first, only when there were no
        new posts (the service's idle path: new posts never wait behind the back-fill for more than N).
        A failure records the run as failed and raises. With `keep_idle_run=False` a run that found
        nothing to score leaves no row (the continuous scorer looks every few seconds) and returns None.
        """
        from murmur.progress import progress
        from murmur.store.runs import discard_run, finish_run, start_run
        from murmur.store.scores import count_unscored

        routes = self.routes()
        sink = self.embedding_sink(conn)
        total = None
        if show_progress:
            kinds = ("new", "history") if history is None else ("new",)  # a bounded pass: at most `history` more
            total = sum(count_unscored(conn, r.model_id, r.languages, r.skip, which=which)
                        for r in routes for which in kinds)
            total = min(total, limit) if limit else total
        run_id = start_run(conn, "score")
        try:
            if show_progress:
                with progress("scored", total) as report:
                    run, unscored, rescored = self._score_new_then_history(
                        conn, routes, limit=limit, batch_size=batch_size, stop=stop, history=history,
                        progress=report, sink=sink)
            else:
                run, unscored, rescored = self._score_new_then_history(
                    conn, routes, limit=limit, batch_size=batch_size, stop=stop, history=history, sink=sink)
            if sink is not None and not run.interrupted:
                self._embed_uncovered(conn, sink, batch_size=batch_size, stop=stop)
        except BaseException as err:
            finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
            raise
        if not keep_idle_run and not run.scored and not run.interrupted:
            discard_run(conn, run_id)
            return None
        outcome = ScoreOutcome(
            run, unscored, tuple(r.model_id for r in routes), describe_routes(routes),
            "interrupted" if run.interrupted else "ok", rescored,
        )
        finish_run(conn, run_id, status=outcome.status, stats=outcome.stats())
        return outcome

    def _score_new_then_history(
        self,
        conn: psycopg.Connection,
        routes: Sequence[Route],
        *,
        limit: int | None,
        batch_size: int,
        stop: threading.Event | None,
        history: int | None,
        progress: Callable[[int], None] | None = None,
        sink: EmbeddingSink | None = None,
    ) -> tuple[ScoreRun, int, int]:
        """(the combined run, posts no model may score, posts of history re-scored)."""
        from murmur.sentiment.worker import ScoreRun, score_routes

        run, unscored = score_routes(conn, routes, limit=limit, batch_size=batch_size, stop=stop,
                                     progress=progress, which="new", embeddings=sink)
        left = None if limit is None else limit - run.scored
        if history == 0 or run.interrupted or (left is not None and left <= 0):
            return run, unscored, 0
        if history is not None:  # the bounded idle pass: only when nothing new came, and not every look
            if run.scored or time.monotonic() < self._history_quiet_until:
                return run, unscored, 0
            left = history if left is None else min(left, history)
        base = run.scored
        more, unscored = score_routes(conn, routes, limit=left, batch_size=batch_size, stop=stop, which="history",
                                      embeddings=sink,
                                      progress=None if progress is None else (lambda n: progress(base + n)))
        if history is not None and not more.scored and not more.interrupted:
            self._history_quiet_until = time.monotonic() + HISTORY_RECHECK_S
        combined = ScoreRun(run.scored + more.scored, run.batches + more.batches, run.seconds + more.seconds,
                            more.interrupted)
        return combined, unscored, more.scored

    # --- embeddings and search ---

    def embedding_sink(self, conn: psycopg.Connection) -> EmbeddingSink | None:
        """Where scoring stores embeddings; None when model.embeddings is off or the database has no
        post_embeddings table (no pgvector on the server: warned once per process)."""
        if not self.settings.model.embeddings:
            return None
        from murmur.store.embeddings import embeddings_available

        if not embeddings_available(conn):
            if not self._warned_no_embeddings:
                self._warned_no_embeddings = True
                logger.warning("no embeddings stored: the database has no post_embeddings table (the server lacks "
                               "the pgvector extension); scores are stored as always")
            return None
        return self._sink()

    def _sink(self) -> EmbeddingSink:
        from murmur.dedupe import DedupingSink
        from murmur.sentiment.centring import load_centring
        from murmur.sentiment.embeddings import EMBEDDING_MODEL

        # It links the posts it embeds to their earlier copies (posts.duplicate_of), in the same transaction.
        return DedupingSink(EMBEDDING_MODEL, load_centring(), self.plain_embedder, self.settings.dedupe)

    def plain_embedder(self) -> Embedder:
        """The plain e5 embedder: over a loaded scoring model that shares e5's pass, else e5 alone (loaded once)."""
        from murmur.sentiment.embeddings import Embedder

        with self._lock:
            if self._embedder is None:
                if not self._scorers and self.settings.model.name.startswith("murmur-e5-sentiment"):
                    # The default model's own encoder (int8 on a CPU): a query is embedded as the posts were.
                    with contextlib.suppress(MurmurError):
                        self.load_scorer(self.settings.model.name)
                for scorer in self._scorers.values():
                    self._embedder = Embedder.from_scorer(scorer)
                    if self._embedder is not None:
                        break
                else:
                    started = time.monotonic()
                    self._embedder = Embedder.load(self.settings.model.device,
                                                   max_tokens=self.settings.model.max_tokens or None)
                    logger.info("embedding model loaded in %.1fs", time.monotonic() - started)
            return self._embedder

    def _embed_uncovered(self, conn: psycopg.Connection, sink: EmbeddingSink, *, batch_size: int,
                         stop: threading.Event | None) -> None:
        """Embed the posts no route scores (languages no model covers): e5 reads about a hundred."""
        from murmur.sentiment.worker import embed_pending

        run = embed_pending(conn, sink, unscored_only=True, batch_size=batch_size, stop=stop)
        if run.embedded:
            logger.info("embedded %d posts no sentiment model covers", run.embedded)

    def embed(self, conn: psycopg.Connection, *, limit: int | None = None, batch_size: int = 256,
              stop: threading.Event | None = None, show_progress: bool = False) -> EmbedRun:
        """Embed every stored post without an embedding, newest first (`murmur embed`), recorded as an `embed`
        run; idempotent. Raises EmbeddingsUnavailable without pgvector."""
        from murmur.progress import progress
        from murmur.search import EmbeddingsUnavailable
        from murmur.sentiment.worker import embed_pending
        from murmur.store.embeddings import count_unembedded, embeddings_available
        from murmur.store.runs import finish_run, start_run

        if not embeddings_available(conn):
            raise EmbeddingsUnavailable()
        sink = self._sink()
        run_id = start_run(conn, "embed")
        try:
            if show_progress:
                total = count_unembedded(conn, sink.model_id)
                with progress("embedded", min(total, limit) if limit else total) as report:
                    run = embed_pending(conn, sink, batch_size=batch_size, limit=limit, stop=stop, progress=report)
            else:
                run = embed_pending(conn, sink, batch_size=batch_size, limit=limit, stop=stop)
        except BaseException as err:
            finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
            raise
        finish_run(conn, run_id, status="interrupted" if run.interrupted else "ok",
                   stats={"embedded": run.embedded, "batches": run.batches, "seconds": round(run.seconds, 2),
                          "model": sink.model_id})
        return run

    def search(self, conn: psycopg.Connection, query: str, filters: SearchFilters, *, limit: int = 20,
               hybrid: bool = False) -> list[Hit]:
        """The posts closest in meaning to `query`, in any language (murmur/search.py)."""
        from murmur.search import search_posts
        from murmur.sentiment.centring import load_centring
        from murmur.sentiment.embeddings import EMBEDDING_MODEL

        return search_posts(conn, self.plain_embedder, load_centring(), EMBEDDING_MODEL, query, filters,
                            limit=limit, hybrid=hybrid)

    # --- aggregation and alerts ---

    def aggregate(
        self,
        conn: psycopg.Connection,
        *,
        rebuild: bool = False,
        alerts: AlertSettings | None = None,
        deliver: bool = True,
        on_new_alerts: Callable[[int], None] | None = None,
    ) -> AggregateOutcome:
        """Fold new scores into the trend buckets, checking the recomputed ones for alerts, recorded as an
        `aggregate` run; then deliver undelivered alerts to the webhook (`deliver`), or hand the count of new
        alerts to `on_new_alerts` (the service delivers in a thread of its own). A failing webhook is
        reported in the outcome, never raised; a failing detector makes the run `partial`."""
        from murmur.alerts import deliver_pending, detector
        from murmur.store.runs import finish_run, start_run
        from murmur.store.trends import aggregate
        from murmur.topics.alert import with_topics

        alert_settings = self.settings.alerts if alerts is None else alerts
        run_id = start_run(conn, "aggregate")
        try:
            result = aggregate(conn, rebuild=rebuild, detect=with_topics(detector(alert_settings), alert_settings))
        except BaseException as err:
            finish_run(conn, run_id, status="failed", error=f"{type(err).__name__}: {err}")
            raise
        status = "partial" if result.detect_error else "ok"
        stats = {"scores": result.scores, "buckets": result.buckets, "rows": result.rows, "alerts": result.alerts,
                 "rebuild": rebuild} | ({"detect_failed": 1} if result.detect_error else {})
        finish_run(conn, run_id, status=status, stats=stats, error=result.detect_error)
        delivery = None
        if on_new_alerts is not None:
            on_new_alerts(result.alerts)
        elif deliver and alert_settings.enabled and alert_settings.webhook_url:
            delivery = deliver_pending(conn, alert_settings)
        return AggregateOutcome(result, status, delivery, result.detect_error)


def describe_routes(routes: Sequence[Route]) -> str:
    """"model (en/zh), other (any language)": which model scores what."""
    return ", ".join(f"{r.model_id} ({'/'.join(r.languages) if r.languages else 'any language'})" for r in routes)
