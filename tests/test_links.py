"""Links to a platform in other sources' posts (crawler/links.py), on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from murmur.crawler.items import Post
from murmur.crawler.links import linked_urls
from murmur.store.posts import upsert_posts

# What a RedNote spider would pass: the whole note URL, then the note id.
NOTE = r"(https?://(?:www\.)?xiaohongshu\.com/(?:explore|discovery/item)/([0-9a-f]{24})[^\s\"'<>]*)"


def post(source: str, source_id: str, text: str, raw: dict | None = None) -> Post:
    return Post(source=source, source_id=source_id, url=None, author=None, text=text,
                created_at=datetime(2025, 1, 14, tzinfo=UTC), raw=raw or {}, terms=["RedNote"])


def test_links_in_other_sources_posts_are_found_once_and_stored_notes_left_out(conn: psycopg.Connection) -> None:
    a, b, c = "64a1b2c3d4e5f60718293a4b", "64a1b2c3d4e5f60718293a4c", "64a1b2c3d4e5f60718293a4d"
    with conn.transaction():
        upsert_posts(conn, [
            post("mastodon", "m1", f"look https://www.xiaohongshu.com/explore/{a}?xsec_token=XYZ so fun"),
            post("mastodon", "m2", f"again https://www.xiaohongshu.com/explore/{a}?xsec_token=XYZ"),
            post("bluesky", "b1", "shortened link text",
                 raw={"facets": [f"https://xiaohongshu.com/discovery/item/{b}"]}),
            post("hackernews", "h1", f"https://xiaohongshu.com.evil.example/explore/{c} is not RedNote"),
            post("rednote", a, "already stored"),
        ])
    found = linked_urls(conn, source="rednote", pattern=NOTE)
    assert found == [(f"https://xiaohongshu.com/discovery/item/{b}", b)]
    # A source never follows its own posts' links: for mastodon only the bluesky post's link is new.
    assert linked_urls(conn, source="mastodon", pattern=NOTE) == found
    assert linked_urls(conn, source="rednote", pattern=NOTE, days=0) == []  # nothing collected in no days
