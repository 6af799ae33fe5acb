"""What the CLI and the demo print about a run: one line per step, the report on stdout."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from murmur.app import AggregateOutcome, App, ScoreOutcome
    from murmur.config.settings import AlertSettings
    from murmur.reports.command import ReportOptions


def print_score(outcome: ScoreOutcome | None, *, cost: bool = False) -> None:
    """The score run in a line (and with `cost`, what re-scoring costs: posts/s and the time per 100,000)."""
    if outcome is None:
        return
    run = outcome.run
    rescored = f" ({outcome.rescored} of them re-scored history)" if outcome.rescored else ""
    print(f"score: {run.scored} posts scored{rescored} with {outcome.description} in {run.seconds:.1f}s "
          f"({run.per_second:.0f}/s)")
    if cost and run.scored:
        print(f"score: {run.per_second:.1f} posts/s, {duration(100_000 / run.per_second)} per 100,000 posts")
    if outcome.unscored:
        print(f"score: {outcome.unscored} posts left unscored: no configured model covers their language "
              "(reasons in the unscored_posts table; see model.languages and model.routes)")


def duration(seconds: float) -> str:
    """12.3 s, 4 min 10 s, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        whole = round(seconds)
        return f"{whole // 60} min {whole % 60} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def print_aggregate(outcome: AggregateOutcome, alerts: AlertSettings) -> None:
    result = outcome.result
    print(f"aggregate: {result.scores} new scores, {result.buckets} buckets recomputed, {result.rows} rows"
          + (f", {result.alerts} new alerts" if alerts.enabled else ""))
    if outcome.error:
        print(f"aggregate: {outcome.error} (the trends are stored; see the log)")
    sent = outcome.delivery
    if sent is not None and (sent.delivered or sent.waiting):
        print(f"alerts: {sent.delivered} delivered to the webhook"
              + (f", {sent.waiting} waiting for the next run ({sent.error})" if sent.waiting else ""))


def print_report(app: App, opts: ReportOptions) -> None:
    """The report to stdout (notes on stderr when stdout carries data for a program)."""
    from murmur.reports.command import run_report

    notes = sys.stderr if opts.format and opts.output is None else sys.stdout
    with app.connect() as conn:
        run_report(conn, opts, terms=app.settings.terms, sources=tuple(app.settings.sources), stdout=sys.stdout,
                   notes=notes)
