"""Jetstream frames -> events. Pure functions only: no network, no database.

Jetstream (bluesky-social/jetstream, README "Example events") sends one JSON object per websocket text
message: ``{"did", "time_us", "kind", ...}`` with `kind`

- ``commit``: ``{"commit": {"rev", "operation": "create" | "update" | "delete", "collection", "rkey",
  "record"?, "cid"?}}``; a delete carries no record. The record of an `app.bsky.feed.post` is the
  lexicon's post (bluesky-social/atproto, lexicons/app/bsky/feed/post.json), read by the same function
  as the spider's (`bluesky.post_from_record`), so a post seen by both is one row.
- ``identity``: ``{"identity": {"did", "handle"?, "seq", "time"}}`` (a handle change),
- ``account``: ``{"account": {"active", "did", "seq", "time", "status"?}}``,
- ``heartbeat``: the answer to a client's heartbeat message.

Identity and account events arrive whatever `wantedCollections` says. `time_us` (unix microseconds, when
Jetstream saw the event) is the cursor a client resumes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from murmur.crawler.items import Post
from murmur.crawler.parsers.bluesky import POST_COLLECTION, parse_datetime, post_from_record
from murmur.crawler.text import has_unstorable_escape, storable

__all__ = ["Create", "Delete", "Event", "Identity", "Skip", "Update", "parse_frame", "post_uri"]

# Why a frame was skipped (the consumer counts them as `skipped/<reason>`).
ACCOUNT = "account"  # an account's status changed: nothing to store
COLLECTION = "collection"  # a commit to another collection (likes, follows...)
HEARTBEAT = "heartbeat"
KIND = "kind"  # a kind this parser does not know (Jetstream may add some)
MALFORMED = "malformed"  # not JSON, not an object, or lacking what its kind needs


@dataclass(frozen=True)
class Create:
    """A post created: `post` is stored as source `bluesky` when it matches (its lang is the record's)."""

    post: Post
    time_us: int


@dataclass(frozen=True)
class Update:
    """A post's record replaced: the new text and fields."""

    post: Post
    time_us: int


@dataclass(frozen=True)
class Delete:
    uri: str  # at://<did>/app.bsky.feed.post/<rkey>, the stored post's source_id
    time_us: int


@dataclass(frozen=True)
class Identity:
    did: str
    handle: str | None  # None: the event carries no handle (the DID document changed otherwise)
    time_us: int


@dataclass(frozen=True)
class Skip:
    reason: str  # ACCOUNT, COLLECTION, HEARTBEAT, KIND or MALFORMED
    time_us: int | None  # None when the frame had no readable time
    detail: str = ""


Event = Create | Update | Delete | Identity | Skip


def post_uri(did: str, rkey: str) -> str:
    """The at:// URI of a post: the `source_id` the spider stores too."""
    return f"at://{did}/{POST_COLLECTION}/{rkey}"


def parse_frame(frame: bytes | str, *, handles: Mapping[str, str] | None = None) -> Event:
    """One Jetstream message -> the event it is; never raises (a bad frame is a `Skip`).

    `handles` maps DIDs to the handles identity events named: a post's author is its handle when known,
    else its DID.
    """
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes | bytearray) else frame
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return Skip(MALFORMED, None, f"not json: {type(err).__name__}")
    if not isinstance(data, dict):
        return Skip(MALFORMED, None, f"expected a json object, got {type(data).__name__}")
    # PostgreSQL stores neither NUL nor a lone surrogate; JSON carries them escaped (store/posts.py).
    if has_unstorable_escape(text):
        data = storable(data)
    kind, did, time_us = data.get("kind"), data.get("did"), data.get("time_us")
    if kind == HEARTBEAT:
        return Skip(HEARTBEAT, None)
    if not isinstance(time_us, int) or isinstance(time_us, bool) or time_us <= 0:
        return Skip(MALFORMED, None, "no time_us")
    if not (isinstance(did, str) and did.startswith("did:")):
        return Skip(MALFORMED, time_us, "no did")
    if kind == "commit":
        return _commit(did, time_us, data.get("commit"), handles or {})
    if kind == "identity":
        identity = data.get("identity")
        handle = identity.get("handle") if isinstance(identity, dict) else None
        if isinstance(handle, str) and "." in handle and not handle.startswith("did:"):
            return Identity(did, handle.lower(), time_us)
        return Identity(did, None, time_us)
    if kind == ACCOUNT:
        return Skip(ACCOUNT, time_us)
    return Skip(KIND, time_us, f"kind {str(kind)[:40]!r}")


def _commit(did: str, time_us: int, commit: Any, handles: Mapping[str, str]) -> Event:
    if not isinstance(commit, dict):
        return Skip(MALFORMED, time_us, "commit event without a commit")
    collection, operation, rkey = commit.get("collection"), commit.get("operation"), commit.get("rkey")
    if collection != POST_COLLECTION:
        if isinstance(collection, str):
            return Skip(COLLECTION, time_us, collection[:100])
        return Skip(MALFORMED, time_us, "commit without a collection")
    if not (isinstance(rkey, str) and rkey and "/" not in rkey):
        return Skip(MALFORMED, time_us, "commit without an rkey")
    uri = post_uri(did, rkey)
    if operation == "delete":
        return Delete(uri, time_us)
    if operation not in ("create", "update"):
        return Skip(MALFORMED, time_us, f"operation {str(operation)[:40]!r}")
    record = commit.get("record")
    if not isinstance(record, dict) or not isinstance(record.get("text", ""), str):
        return Skip(MALFORMED, time_us, f"{operation} without a post record")
    seen = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    created = parse_datetime(record.get("createdAt"))
    # As the spider's sort time: a createdAt after Jetstream saw the post (a client clock in the future)
    # is not believed; nor is a missing one.
    created_at = min(created, seen) if created is not None else seen
    post = post_from_record(uri, handles.get(did, did), record, created_at=created_at, raw=record, via="stream")
    return Create(post, time_us) if operation == "create" else Update(post, time_us)
