"""The scoring worker: claim unscored posts, score them, write the scores, in one transaction
per batch, so a post is never scored twice nor lost when a worker dies mid-batch.

Posts are routed by language: each configured model scores the languages it covers, and a post
in a language none covers is left unscored with the reason recorded (`unscored_posts`), never
given a made-up neutral.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from murmur.store.scores import claim_unscored, write_scores

if TYPE_CHECKING:
    import psycopg

    from murmur.config import Settings
    from murmur.sentiment.centring import Centring
    from murmur.sentiment.embeddings import Embedder
    from murmur.sentiment.scorer import Score, Scorer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreRun:
    scored: int
    batches: int
    seconds: float
    interrupted: bool = False

    @property
    def per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Route:
    """One model and the languages it scores: `languages` None means any language except `skip`
    (the languages other routes take)."""

    scorer: Scorer
    languages: tuple[str, ...] | None
    skip: tuple[str, ...] = field(default=())

    @property
    def model_id(self) -> str:
        return self.scorer.model.model_id

    def takes(self, lang: str | None) -> bool:
        """Whether this route scores a post in `lang` (the claim query's rule, for texts in memory)."""
        if self.languages is None:
            return lang not in self.skip
        return lang in self.languages


@dataclass
class EmbeddingSink:
    """Where scoring puts post embeddings: the id they are stored under, the per-language centring, and the
    plain e5 embedder for models that do not share their pass (`plain()` loads it on first need)."""

    model_id: str
    centring: Centring
    plain: Callable[[], Embedder]

    def write(self, conn: psycopg.Connection, post_ids: Sequence[int], vectors: Any,
              langs: Sequence[str | None]) -> None:
        from murmur.store.embeddings import write_embeddings

        write_embeddings(conn, self.model_id, post_ids, self.centring.apply(vectors, langs))


def model_languages(scorer: Scorer, configured: Sequence[str]) -> tuple[str, ...] | None:
    """The languages a model scores: the config's list, else its model card's, else all (None)."""
    languages = tuple(configured) or tuple(getattr(scorer.model, "languages", None) or ())
    if not languages or "*" in languages:
        return None
    return languages


def plan_routes(settings: Settings, load_scorer: Callable[[str], Scorer]) -> list[Route]:
    """The routes the config asks for; `load_scorer(model_ref)` loads (or reuses) a model."""
    routed = dict(settings.model.routes)
    routes = [Route(load_scorer(ref), (lang,)) for lang, ref in sorted(routed.items())]
    default = load_scorer(settings.model.name)
    languages = model_languages(default, settings.model.languages)
    if languages is None:
        routes.append(Route(default, None, tuple(sorted(routed))))
    else:
        own = tuple(lang for lang in languages if lang not in routed)
        if own:
            routes.append(Route(default, own))
    return routes


def covered_languages(routes: Sequence[Route]) -> list[str] | None:
    """Every language some route scores (None: all of them)."""
    if any(r.languages is None for r in routes):
        return None
    return sorted({lang for r in routes for lang in r.languages or ()})


def score_pending(
    conn: psycopg.Connection,
    scorer: Scorer,
    *,
    model_id: str,
    languages: Sequence[str] | None = None,
    skip: Sequence[str] | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    which: str = "any",
    embeddings: EmbeddingSink | None = None,
) -> ScoreRun:
    """Score every post `model_id` has not scored yet (in `languages`, not in `skip`), batch by batch;
    `which` narrows that to posts no model scored ("new") or posts another model scored ("history"),
    see store.scores.WHICH. With `embeddings`, the posts' embeddings (those they lack) are written in the
    same transaction as their scores, from the same pass where the model shares it.

    `stop` is checked between batches: a SIGTERM lets the batch in hand commit, then returns.
    """
    started = time.monotonic()
    scored = batches = 0
    while limit is None or scored < limit:
        if stop is not None and stop.is_set():
            return ScoreRun(scored, batches, time.monotonic() - started, interrupted=True)
        want = batch_size if limit is None else min(batch_size, limit - scored)
        with conn.transaction():
            claimed = claim_unscored(conn, model_id, want, languages, skip, which=which)
            if not claimed:
                break
            if embeddings is None:
                scores = scorer.score([text for _, text in claimed])
            else:
                scores = _score_and_embed(conn, scorer, claimed, embeddings)
            write_scores(conn, model_id, [post_id for post_id, _ in claimed], scores)
        scored += len(claimed)
        batches += 1
        if progress is not None:
            progress(scored)
    return ScoreRun(scored, batches, time.monotonic() - started)


def _score_and_embed(conn: psycopg.Connection, scorer: Scorer, claimed: Sequence[tuple[int, str]],
                     sink: EmbeddingSink) -> list[Score]:
    """Score the claimed posts and write the embeddings of those that lack one; the scores."""
    from murmur.sentiment.embeddings import shares_pass
    from murmur.store.embeddings import posts_to_embed

    texts = [text for _, text in claimed]
    todo = posts_to_embed(conn, sink.model_id, [post_id for post_id, _ in claimed])
    if not todo:  # re-scoring history: the embeddings are there already
        return scorer.score(texts)
    keep = [k for k, (post_id, _) in enumerate(claimed) if post_id in todo]
    ids = [claimed[k][0] for k in keep]
    if shares_pass(scorer.model):
        scores, vectors = scorer.score_with_embeddings(texts)
        vectors = vectors[keep]
    else:
        scores = scorer.score(texts)
        vectors = sink.plain().embed([texts[k] for k in keep])
    sink.write(conn, ids, vectors, [todo[post_id] for post_id in ids])
    return scores


@dataclass(frozen=True)
class EmbedRun:
    embedded: int
    batches: int
    seconds: float
    interrupted: bool = False

    @property
    def per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def embed_pending(
    conn: psycopg.Connection,
    sink: EmbeddingSink,
    *,
    unscored_only: bool = False,
    batch_size: int = 256,
    limit: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> EmbedRun:
    """Embed the posts without an embedding (`unscored_only`: only those no model scored, the languages no
    route covers), newest first, one transaction per batch (`murmur embed`, and the scoring pass's end)."""
    from murmur.store.embeddings import claim_unembedded

    started = time.monotonic()
    done = batches = 0
    embedder: Embedder | None = None
    while limit is None or done < limit:
        if stop is not None and stop.is_set():
            return EmbedRun(done, batches, time.monotonic() - started, interrupted=True)
        want = batch_size if limit is None else min(batch_size, limit - done)
        with conn.transaction():
            claimed = claim_unembedded(conn, sink.model_id, want, unscored_only=unscored_only)
            if not claimed:
                break
            embedder = embedder or sink.plain()
            vectors = embedder.embed([text for _, text, _ in claimed])
            sink.write(conn, [post_id for post_id, _, _ in claimed], vectors, [lang for _, _, lang in claimed])
        done += len(claimed)
        batches += 1
        if progress is not None:
            progress(done)
    return EmbedRun(done, batches, time.monotonic() - started)


def score_routes(
    conn: psycopg.Connection,
    routes: Sequence[Route],
    *,
    batch_size: int = 256,
    limit: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    which: str = "any",
    embeddings: EmbeddingSink | None = None,
) -> tuple[ScoreRun, int]:
    """Score through every route (the posts `which` names: new, history or any), then record why the
    rest stay unscored.

    Returns the combined run and the number of posts no model may score."""
    from murmur.store.scores import record_unscored

    started = time.monotonic()
    scored = batches = 0
    interrupted = False
    for route in routes:
        left = None if limit is None else limit - scored
        if left is not None and left <= 0:
            break
        run = score_pending(
            conn, route.scorer, model_id=route.model_id, languages=route.languages, skip=route.skip,
            batch_size=batch_size, limit=left, stop=stop, progress=_offset(progress, scored), which=which,
            embeddings=embeddings,
        )
        scored += run.scored
        batches += run.batches
        if run.interrupted:
            interrupted = True
            break
    unscored = record_unscored(conn, covered_languages(routes))
    return ScoreRun(scored, batches, time.monotonic() - started, interrupted), unscored


def _offset(progress: Callable[[int], None] | None, base: int) -> Callable[[int], None] | None:
    """A progress callback that adds what earlier routes scored."""
    if progress is None:
        return None
    report = progress
    return lambda n: report(base + n)
