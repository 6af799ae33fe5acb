"""crawler/parsers/jetstream.py on frames of the documented shape (tests/fixtures/jetstream/README.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from murmur.crawler.parsers import jetstream as js
from tests.conftest import FIXTURES

HERE = FIXTURES / "jetstream"
URI = "at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3lfnqwi4tbs2s"


def frame(name: str) -> bytes:
    return (HERE / name).read_bytes()


def test_a_post_create_is_the_same_post_the_bluesky_spider_stores() -> None:
    event = js.parse_frame(frame("post_create.json"))
    assert isinstance(event, js.Create)
    post = event.post
    assert (post.source, post.source_id, post.via) == ("bluesky", URI, "stream")
    assert post.url == "https://bsky.app/profile/did:plc:eygmaihciaxprqvxpfvl6flk/post/3lfnqwi4tbs2s"
    assert post.author == "did:plc:eygmaihciaxprqvxpfvl6flk"  # no handle known yet
    assert post.text.endswith("#TikTokRefugee https://www.xiaohongshu.com/explore/6785a3c2000000001a01e2f4")
    assert post.tags == ["TikTokRefugee"] and post.lang == "en"
    assert post.created_at == datetime(2025, 1, 15, 0, 13, 19, 870000, tzinfo=UTC)
    assert (post.parent_source_id, post.root_source_id) == (None, None)
    assert event.time_us == 1736900000123456


def test_a_reply_carries_its_parent_and_root() -> None:
    event = js.parse_frame(frame("post_reply_create.json"))
    assert isinstance(event, js.Create)
    assert event.post.parent_source_id == URI and event.post.root_source_id == URI


def test_a_known_handle_is_the_author_and_in_the_url() -> None:
    event = js.parse_frame(frame("post_create.json"), handles={"did:plc:eygmaihciaxprqvxpfvl6flk": "kind.bsky.social"})
    assert isinstance(event, js.Create)
    assert event.post.author == "kind.bsky.social"
    assert event.post.url == "https://bsky.app/profile/kind.bsky.social/post/3lfnqwi4tbs2s"


def test_update_delete_and_identity() -> None:
    update = js.parse_frame(frame("post_update.json"))
    assert isinstance(update, js.Update) and update.post.source_id == URI and "(edited)" in update.post.text
    delete = js.parse_frame(frame("post_delete.json"))
    assert delete == js.Delete(URI, 1736900003456789)
    identity = js.parse_frame(frame("identity.json"))
    assert identity == js.Identity("did:plc:ufbl4k27gp6kzas5glhz7fim", "yohenrique.bsky.social", 1725516665234703)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("account.json", js.ACCOUNT), ("like_create.json", js.COLLECTION), ("heartbeat.json", js.HEARTBEAT)],
)
def test_other_events_are_skipped_with_their_reason(name: str, reason: str) -> None:
    event = js.parse_frame(frame(name))
    assert isinstance(event, js.Skip) and event.reason == reason


@pytest.mark.parametrize(
    "text",
    [
        b"not json",
        b"\xff\xfe",
        "[1, 2]",
        '{"kind": "commit", "did": "did:plc:x"}',  # no time_us
        '{"kind": "commit", "time_us": 1, "did": "x"}',  # not a DID
        '{"kind": "commit", "time_us": 1, "did": "did:plc:x", "commit": {"operation": "create", '
        '"collection": "app.bsky.feed.post", "rkey": "a"}}',  # a create without a record
        '{"kind": "commit", "time_us": 1, "did": "did:plc:x", "commit": {"operation": "create", '
        '"collection": "app.bsky.feed.post", "rkey": "a/b", "record": {"text": "x"}}}',  # a bad rkey
        '{"kind": "commit", "time_us": 1, "did": "did:plc:x", "commit": {"operation": "create", '
        '"collection": "app.bsky.feed.post", "rkey": "a", "record": {"text": 3}}}',
        '{"kind": "commit", "time_us": 1, "did": "did:plc:x", "commit": "nope"}',
    ],
)
def test_malformed_frames_are_skipped_never_raised(text: str | bytes) -> None:
    event = js.parse_frame(text)
    assert isinstance(event, js.Skip) and event.reason == js.MALFORMED


def test_an_unknown_kind_is_skipped_and_a_future_created_at_is_not_believed() -> None:
    assert js.parse_frame('{"kind": "sync", "time_us": 5, "did": "did:plc:x"}') == js.Skip(js.KIND, 5, "kind 'sync'")
    future = ('{"kind": "commit", "time_us": 1736900000000000, "did": "did:plc:x", "commit": {"operation": '
              '"create", "collection": "app.bsky.feed.post", "rkey": "a", "record": {"text": "hi\\u0000", '
              '"createdAt": "2099-01-01T00:00:00Z"}}}')
    event = js.parse_frame(future)
    assert isinstance(event, js.Create)
    assert event.post.created_at == datetime.fromtimestamp(1736900000, UTC)  # when Jetstream saw it
    assert event.post.text == "hi"  # a NUL cannot be stored
