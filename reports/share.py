"""`murmur report --share`: each point's share of the whole network, per 100,000 of its posts.

`share_per_100k` = the series' posts that arrived by stream (Jetstream, stored as source bluesky) per
100,000 posts the network created in the same period and languages (`network_volume`), both counted over
the hours the baseline covers (store/share.py). It is empty (None) where it cannot be said:
- for a series of another source (its posts are no part of that network), or a report whose --source
  leaves bluesky out;
- for a period without a baseline (no stream was counting then): empty, not 0.
The numerator counts the stream's posts whether scored or not (the baseline is every post, scored or
not), so it can exceed the `posts` column, which counts scored ones. By region, the baseline is the whole
network's (it has no regions), and streamed posts carry no region, so they count under 'unknown'."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from murmur.reports.series import Point, post_scope
from murmur.store.share import NETWORK_SOURCE, network_posts, streamed_posts

if TYPE_CHECKING:
    import psycopg

    from murmur.reports.filters import Filters

PER = 100_000

Shares = dict[tuple[datetime, tuple[str, ...]], float | None]


def shares(conn: psycopg.Connection, f: Filters, points: list[Point]) -> Shares:
    """(period start, series key) -> share_per_100k (None: not applicable, or no baseline) for `points`."""
    dims = f.dims
    if f.sources and NETWORK_SOURCE not in f.sources:
        return {(p.bucket_start, p.key): None for p in points}
    scope = post_scope(f)
    by_lang = "lang" in dims
    network = network_posts(conn, unit=f.by, scope=scope, by_lang=by_lang)
    streamed = streamed_posts(conn, unit=f.by, dims=dims, scope=scope)
    out: Shares = {}
    for p in points:
        key = dict(zip(dims, p.key, strict=True))
        if key.get("source", NETWORK_SOURCE) != NETWORK_SOURCE:
            out[(p.bucket_start, p.key)] = None
            continue
        total = network.get((p.bucket_start, key["lang"].lower() if by_lang else None), 0)
        out[(p.bucket_start, p.key)] = streamed.get((p.bucket_start, p.key), 0) * PER / total if total else None
    return out
