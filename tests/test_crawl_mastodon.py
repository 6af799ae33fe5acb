"""A real Scrapy crawl (`murmur crawl mastodon`, in a child process) with `replies = true`, against a local
server answering tag timelines and status contexts from tests/fixtures/mastodon, into PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "mastodon"
MAPLE_ID = "113827324232794113"  # the English status of tag_timeline.json with 2 replies
MAPLE = f"https://mstdn.murmur.invalid/users/maple_jo/statuses/{MAPLE_ID}"
LIN_REPLY = "https://other.murmur.invalid/users/lin/statuses/113827329987000000"


def contexts(request: Request) -> Reply:
    """context.json for maple's status; an empty context for any other status."""
    if request.path == f"/api/v1/statuses/{MAPLE_ID}/context":
        return Reply(200, (FIXTURES / "context.json").read_bytes(), {"Content-Type": "application/json"})
    if request.path.startswith("/api/v1/statuses/") and request.path.endswith("/context"):
        return Reply.json({"ancestors": [], "descendants": []})
    return Reply.json({"error": "Record not found"}, status=404)


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    with FakeAPI(fallback=contexts) as server:
        server.route("/api/v1/timelines/tag/rednote",
                     lambda r: Reply(200, (FIXTURES / "tag_timeline.json").read_bytes(),
                                     {"Content-Type": "application/json"}))
        yield server


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, **source: object):
    table = {"enabled": True, "instances": [api.url], "tags": ["rednote"], "max_pages": 1, "download_delay": 0,
             **source}
    lines = [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()]
    config = tmp_path / "murmur.toml"
    config.write_text('terms = ["TikTok refugee", "小红书", "RedNote", "Xiaohongshu"]\n[sources.mastodon]\n'
                      + "\n".join(lines) + "\n")
    return run_murmur("--config", str(config), "crawl", "mastodon", db_url=db_url)


def test_replies_are_read_from_the_context_and_stored_with_parent_root_and_the_threads_terms(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI
) -> None:
    result = crawl(tmp_path, db_url, api, replies=True)
    assert result.returncode == 0, result.stderr
    asked = sorted(r.path for r in api.requests if r.path.endswith("/context"))
    # Each matching status with replies, once (the boosted status is asked by its id, not the boost's).
    assert asked == sorted(f"/api/v1/statuses/{i}/context" for i in
                           (MAPLE_ID, "113827303544913927", "113827263538790400", "113827106324807680"))

    (thread_terms,) = conn.execute("SELECT terms FROM posts WHERE source_id = %s", (MAPLE,)).fetchone()
    rows = {sid: rest for sid, *rest in conn.execute(
        "SELECT source_id, parent_source_id, root_source_id, terms FROM posts WHERE root_source_id = %s", (MAPLE,))}
    own = "https://mstdn.murmur.invalid/users/maple_jo/statuses/113827335120000002"
    gus = "https://mstdn.murmur.invalid/users/grumpy_gus/statuses/113827339870000003"
    assert rows == {
        LIN_REPLY: [MAPLE, MAPLE, thread_terms],
        own: [LIN_REPLY, MAPLE, thread_terms],  # its parent's local id resolved to lin's URI
        gus: [MAPLE, MAPLE, thread_terms],
    }
    assert set(thread_terms) == {"RedNote", "TikTok refugee"}  # none of the replies names a term itself
    (stats,) = conn.execute(
        "SELECT stats FROM job_runs WHERE job = 'crawl:mastodon' ORDER BY id DESC LIMIT 1").fetchone()
    assert stats["murmur/posts/replies"] == 3 and stats["murmur/mastodon/contexts"] == 4


def test_without_replies_no_context_is_asked_for(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, api: FakeAPI
) -> None:
    result = crawl(tmp_path, db_url, api)
    assert result.returncode == 0, result.stderr
    assert not [r for r in api.requests if r.path.endswith("/context")]
    assert conn.execute("SELECT count(*) FROM posts WHERE parent_source_id IS NOT NULL").fetchone() == (0,)
