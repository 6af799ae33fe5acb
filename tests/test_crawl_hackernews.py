"""A real Scrapy crawl (`murmur crawl hackernews`, in a child process) of a local server that answers like
HN Search by Algolia (hits built from tests/fixtures/hackernews), into PostgreSQL."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "hackernews"
SEARCH = "/api/v1/search_by_date"
_TEMPLATES = json.loads((FIXTURES / "search_by_date.json").read_text())["hits"]
STORY, COMMENT, TOMBSTONE = _TEMPLATES[6], _TEMPLATES[4], _TEMPLATES[3]
START = 1736800000  # 2025-01-13T20:26:40Z


def make_hits(term: str, count: int, *, first_id: int, start: int = START) -> list[dict]:
    """`count` hits mentioning `term`, newest first, alternating stories and comments (fixture shapes)."""
    hits = []
    for n in range(count):
        stamp = start + 60 * (count - n)
        story = n % 2 == 0
        hit = copy.deepcopy(STORY if story else COMMENT)
        object_id = first_id + count - n
        hit.update(objectID=str(object_id), created_at_i=stamp,
                   created_at=datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if story:
            hit.update(title=f"{term} story {object_id}", points=n, num_comments=2 * n, story_id=object_id)
        else:
            hit.update(comment_text=f"Trying {term} &amp; liking it<p>comment {object_id}", children=[1] * (n % 3))
        hits.append(hit)
    return hits


class FakeHN:
    """search_by_date over a fixed set of hits per term: newest first, created_at_i filters, pages of
    hitsPerPage; `faults[(term, page)]` is a queue of replies given instead, one per request."""

    def __init__(self, hits: dict[str, list[dict]]) -> None:
        self.hits = hits
        self.faults: dict[tuple[str, int], list[Reply]] = {}

    def __call__(self, request: Request) -> Reply:
        term, page = request.param("query") or "", int(request.param("page") or 0)
        queued = self.faults.get((term, page))
        if queued:
            return queued.pop(0)
        per = int(request.param("hitsPerPage") or 20)
        after = request.param("numericFilters")
        floor = int(after.removeprefix("created_at_i>")) if after else -1
        matching = sorted((h for h in self.hits.get(term, []) if h["created_at_i"] > floor),
                          key=lambda h: h["created_at_i"], reverse=True)
        return Reply.json({
            "hits": matching[page * per:(page + 1) * per], "page": page, "nbHits": len(matching),
            "nbPages": math.ceil(len(matching) / per), "hitsPerPage": per, "processingTimeMS": 1,
            "query": term, "params": "",
        })


@pytest.fixture
def hn() -> Iterator[tuple[FakeAPI, FakeHN]]:
    search = FakeHN({
        "RedNote": make_hits("RedNote", 150, first_id=42700000),
        "Lemon8": make_hits("Lemon8", 2, first_id=42800000) + [copy.deepcopy(TOMBSTONE)],
    })
    with FakeAPI() as api:
        api.route(SEARCH, search)
        yield api, search


def crawl(tmp_path: Path, db_url: str, api: FakeAPI, terms: list[str], max_pages: int = 5) -> tuple[str, str]:
    config = tmp_path / "murmur.toml"
    config.write_text(
        f"terms = {json.dumps(terms)}\n"
        f"[sources.hackernews]\nbase_url = {json.dumps(api.url)}\nmax_pages = {max_pages}\ndownload_delay = 0\n"
    )
    result = run_murmur("--config", str(config), "crawl", "hackernews", db_url=db_url)
    return result.stdout, result.stderr + f"\n[exit {result.returncode}]"


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:hackernews' ORDER BY id DESC"
    ).fetchone()
    assert row is not None
    return row


def cursors(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'hackernews'").fetchall())


def test_crawl_stores_hits_counts_bad_pages_then_asks_only_for_newer_hits(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, hn: tuple[FakeAPI, FakeHN]
) -> None:
    api, search = hn
    search.hits["Xiaohongshu"] = make_hits("Xiaohongshu", 4, first_id=42950000)
    search.hits["TikTok refugee"] = make_hits("TikTok refugee", 3, first_id=42960000)
    search.faults[("Xiaohongshu", 0)] = [Reply.json((FIXTURES / "truncated.json").read_bytes())]
    # A server error on every try (the first and Scrapy's two retries).
    search.faults[("TikTok refugee", 0)] = [Reply.json({"message": "oops", "status": 500}, status=500)] * 3
    terms = ["RedNote", "Lemon8", "Xiaohongshu", "TikTok refugee"]
    out, err = crawl(tmp_path, db_url, api, terms)
    assert "[exit 0]" in err and "Traceback" not in err, err
    assert "hackernews: ok" in out and "152 new" in out
    assert err.count("malformed page") == 1 and err.count("some requests to") == 1  # each said once
    assert "http_500: 1" in err

    # The documented parameters, one term after the other, pages from 0, no time filter on a first run.
    asked = [(r.param("query"), r.param("page")) for r in api.requests]
    assert asked == [("RedNote", "0"), ("RedNote", "1"), ("Lemon8", "0"), ("Xiaohongshu", "0")] + [
        ("TikTok refugee", "0")] * 3
    assert all(r.path == SEARCH and r.param("tags") == "(story,comment)" and r.param("hitsPerPage") == "100"
               and r.param("numericFilters") is None for r in api.requests)

    assert conn.execute("SELECT count(*), count(DISTINCT source_id) FROM posts WHERE source = 'hackernews'"
                        ).fetchone() == (152, 152)
    story = search.hits["RedNote"][0]
    row = conn.execute(
        "SELECT source_id, url, author, text, created_at, likes, replies, terms FROM posts WHERE source_id = %s",
        (story["objectID"],),
    ).fetchone()
    assert row == (story["objectID"], f"https://news.ycombinator.com/item?id={story['objectID']}", "maple_jo",
                   f"RedNote story {story['objectID']}", datetime.fromtimestamp(story["created_at_i"], UTC),
                   0, 0, ["RedNote"])
    comment = search.hits["RedNote"][1]
    text, likes, replies = conn.execute("SELECT text, likes, replies FROM posts WHERE source_id = %s",
                                        (comment["objectID"],)).fetchone()
    assert text == f"Trying RedNote & liking it\ncomment {comment['objectID']}" and likes is None and replies == 1

    status, stats, error = last_run(conn)
    assert status == "ok" and error is None  # reached: failed requests are counted, not fatal
    assert stats["murmur/pages"] == 3 and stats["murmur/posts/new"] == 152
    assert stats["murmur/posts/skipped_deleted"] == 1  # the tombstone-shaped Lemon8 hit
    assert stats["murmur/errors/malformed"] == 1 and stats["murmur/errors/http_500"] == 1
    assert stats["retry/count"] == 2
    # The broken queries kept no cursor, so the next run asks for them from the start.
    first = cursors(conn)
    assert first == {"RedNote": str(search.hits["RedNote"][0]["created_at_i"]),
                     "Lemon8": str(max(h["created_at_i"] for h in search.hits["Lemon8"]))}

    # Second run: only hits newer than each cursor are asked for, and only they are new. RedNote has
    # more new hits than one page, the most this run may fetch: the rest is skipped, and said so.
    newer = make_hits("RedNote", 105, first_id=42900000, start=int(first["RedNote"]) + 10)
    search.hits["RedNote"] += newer
    seen = len(api.requests)
    out, err = crawl(tmp_path, db_url, api, terms, max_pages=1)
    assert "[exit 0]" in err, err
    assert err.count("more than 100 new hits for 'RedNote'") == 1
    again = api.requests[seen:]
    assert [(r.param("query"), r.param("page"), r.param("numericFilters")) for r in again] == [
        ("RedNote", "0", f"created_at_i>{first['RedNote']}"),
        ("Lemon8", "0", f"created_at_i>{first['Lemon8']}"),
        ("Xiaohongshu", "0", None),
        ("TikTok refugee", "0", None),
    ]
    stats = last_run(conn)[1]
    assert stats["murmur/posts/new"] == 100 + 4 + 3 and stats["murmur/gaps"] == 1
    counts = dict(conn.execute("SELECT terms[1], count(*) FROM posts GROUP BY 1").fetchall())
    assert counts == {"RedNote": 250, "Lemon8": 2, "Xiaohongshu": 4, "TikTok refugee": 3}  # nothing twice
    assert cursors(conn) == {
        **first,
        "RedNote": str(max(h["created_at_i"] for h in newer)),
        "Xiaohongshu": str(search.hits["Xiaohongshu"][0]["created_at_i"]),
        "TikTok refugee": str(search.hits["TikTok refugee"][0]["created_at_i"]),
    }


def test_refused_access_is_one_clear_line_and_the_source_fails(tmp_path: Path, db_url: str,
                                                                conn: psycopg.Connection) -> None:
    with FakeAPI() as api:
        api.route(SEARCH, lambda req: Reply.json({"message": "Forbidden", "status": 403}, status=403))
        out, err = crawl(tmp_path, db_url, api, ["RedNote", "Lemon8"])
        asked, url = api.requests, api.url
    assert "[exit 1]" in err and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "refused access" in line]
    assert len(lines) == 1 and "HTTP 403" in lines[0] and "stopping this source" in lines[0]
    assert len(asked) == 1  # stopped at once: no request for the second term
    status, stats, error = last_run(conn)
    assert status == "failed" and error == f"{url}: HTTP 403"
    assert stats["murmur/errors/http_403"] == 1 and "hackernews: failed" in out
