"""The README's query for Facebook links in other sources' posts (there is no Facebook source), run on a real
PostgreSQL: the SQL block under "### Facebook" is read from README.md, so the documented query is the tested one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from murmur.crawler.items import Post
from murmur.store.posts import upsert_posts

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_query() -> str:
    section = README.read_text(encoding="utf-8").split("### Facebook", 1)[1]
    match = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert match, "README.md has no sql block under ### Facebook"
    return match.group(1)


def test_the_readme_query_finds_facebook_links_and_nothing_else(conn: psycopg.Connection) -> None:
    with conn.transaction():
        upsert_posts(conn, [
            Post(source="mastodon", source_id="m1", url="https://mastodon.social/@maple/1", author="maple",
                 text="TikTok refugees on Facebook too: https://www.facebook.com/groups/rednote/posts/1234567890/ wow",
                 created_at=datetime(2025, 1, 15, 12, tzinfo=UTC), terms=["TikTok refugee"],
                 raw={"card": {"url": "https://fb.watch/abCD12_x/"}}),
            Post(source="hackernews", source_id="42735118", url="https://news.ycombinator.com/item?id=42735118",
                 author="gus", text="RedNote > https://notfacebook.com/x and https://facebook.com.evil.example/y",
                 created_at=datetime(2025, 1, 16, 12, tzinfo=UTC), terms=["RedNote"]),
        ])
    rows = conn.execute(readme_query()).fetchall()
    assert sorted(rows) == [
        ("mastodon", "https://mastodon.social/@maple/1", datetime(2025, 1, 15, 12, tzinfo=UTC),
         "https://fb.watch/abCD12_x/"),  # from the post's raw record (a link card)
        ("mastodon", "https://mastodon.social/@maple/1", datetime(2025, 1, 15, 12, tzinfo=UTC),
         "https://www.facebook.com/groups/rednote/posts/1234567890/"),
    ]  # the hackernews post's look-alike hosts are not Facebook
