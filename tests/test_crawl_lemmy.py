"""A real Scrapy crawl (`murmur crawl lemmy`, in a child process) of local servers that answer like a Lemmy
instance's search (views built from tests/fixtures/lemmy), into PostgreSQL."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_murmur
from tests.fakeapi import FakeAPI, Reply, Request

FIXTURES = Path(__file__).parent / "fixtures" / "lemmy"
SEARCH = "/api/v3/search"
HOME = "https://lemmy.murmur.invalid"
_POSTS = json.loads((FIXTURES / "search_posts.json").read_text())["posts"]
_COMMENTS = json.loads((FIXTURES / "search_comments.json").read_text())["comments"]
POST, DELETED_POST = _POSTS[0], _POSTS[2]
COMMENT, REMOVED_COMMENT = _COMMENTS[0], _COMMENTS[3]
START = datetime(2025, 1, 14, 12, 0, tzinfo=UTC)
DEAD = "http://127.0.0.1:9"  # discard port: connection refused


def stamp(when: datetime) -> str:
    """Lemmy 0.19's timestamp format: RFC 3339, microseconds, Z."""
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_posts(term: str, count: int, *, first_id: int, start: datetime = START) -> list[dict]:
    """`count` PostViews mentioning `term` (the fixture's shape), newest first."""
    views = []
    for n in range(count):
        view = copy.deepcopy(POST)
        post_id = first_id + count - n
        published = stamp(start + timedelta(minutes=count - n))
        view["post"].update(id=post_id, name=f"{term} post {post_id}", body=f"**Loving** {term} &amp; more",
                            ap_id=f"{HOME}/post/{post_id}", published=published)
        view["counts"].update(post_id=post_id, published=published, upvotes=n, score=n - 1, comments=2 * n)
        views.append(view)
    return views


def make_comments(term: str, count: int, *, first_id: int, start: datetime = START) -> list[dict]:
    """`count` CommentViews mentioning `term` (the fixture's shape), newest first."""
    views = []
    for n in range(count):
        view = copy.deepcopy(COMMENT)
        comment_id = first_id + count - n
        published = stamp(start + timedelta(minutes=count - n))
        view["comment"].update(id=comment_id, content=f"> quoted\n\n{term} comment {comment_id}",
                               ap_id=f"{HOME}/comment/{comment_id}", published=published,
                               path=f"0.{comment_id}")
        view["counts"].update(comment_id=comment_id, published=published, upvotes=n, score=n, child_count=n % 2)
        views.append(view)
    return views


class FakeLemmy:
    """/api/v3/search over fixed views per (type_, q): newest first (sort=New), pages from 1 of `limit`;
    `faults[(q, type_, page)]` is a queue of replies given instead, one per request."""

    def __init__(self) -> None:
        self.views: dict[str, dict[str, list[dict]]] = {"Posts": {}, "Comments": {}}
        self.faults: dict[tuple[str, str, int], list[Reply]] = {}

    def __call__(self, request: Request) -> Reply:
        q, type_ = request.param("q") or "", request.param("type_") or "All"
        page, limit = int(request.param("page") or 1), int(request.param("limit") or 10)
        queued = self.faults.get((q, type_, page))
        if queued:
            return queued.pop(0)
        key = "post" if type_ == "Posts" else "comment"
        views = sorted(self.views[type_].get(q, []), key=lambda v: v[key]["published"], reverse=True)
        chunk = views[(page - 1) * limit:page * limit]
        return Reply.json({"type_": type_, "comments": chunk if type_ == "Comments" else [],
                           "posts": chunk if type_ == "Posts" else [], "communities": [], "users": []})


@pytest.fixture
def lemmy() -> Iterator[tuple[FakeAPI, FakeLemmy]]:
    search = FakeLemmy()
    with FakeAPI() as api:
        api.route(SEARCH, search)
        yield api, search


def crawl(tmp_path: Path, db_url: str, instances: list[str], terms: list[str]) -> tuple[str, str]:
    config = tmp_path / "murmur.toml"
    config.write_text(
        f"terms = {json.dumps(terms)}\n"
        f"[sources.lemmy]\ninstances = {json.dumps(instances)}\nmax_pages = 5\ndownload_delay = 0\n"
    )
    result = run_murmur("--config", str(config), "crawl", "lemmy", db_url=db_url)
    return result.stdout, result.stderr + f"\n[exit {result.returncode}]"


def last_run(conn: psycopg.Connection) -> tuple[str, dict, str | None]:
    row = conn.execute(
        "SELECT status, stats, error FROM job_runs WHERE job = 'crawl:lemmy' ORDER BY id DESC"
    ).fetchone()
    assert row is not None
    return row


def cursors(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT query, cursor FROM crawl_state WHERE source = 'lemmy'").fetchall())


def newest(views: list[dict], key: str) -> str:
    return max(datetime.fromisoformat(v[key]["published"]) for v in views).isoformat()


def test_crawl_stores_posts_and_comments_skips_bad_ones_then_pages_only_to_the_cursor(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, lemmy: tuple[FakeAPI, FakeLemmy]
) -> None:
    api, search = lemmy
    deleted, removed = copy.deepcopy(DELETED_POST), copy.deepcopy(REMOVED_COMMENT)
    search.views["Posts"] = {
        "RedNote": make_posts("RedNote", 60, first_id=2460000) + [deleted],
        "Lemon8": make_posts("Lemon8", 2, first_id=2470000),
        "Xiaohongshu": make_posts("Xiaohongshu", 2, first_id=2480000),
    }
    search.views["Comments"] = {
        "RedNote": make_comments("RedNote", 3, first_id=11850000) + [removed],
        "Xiaohongshu": make_comments("Xiaohongshu", 1, first_id=11860000),
    }
    search.faults[("Xiaohongshu", "Posts", 1)] = [Reply.json((FIXTURES / "truncated.json").read_bytes())]
    terms = ["RedNote", "Lemon8", "Xiaohongshu"]
    out, err = crawl(tmp_path, db_url, [api.url, DEAD], terms)
    assert "[exit 0]" in err and "Traceback" not in err, err
    # One instance answered, one could not be reached: a partial run (issue 10), exit 0.
    assert "lemmy: partial" in out and "66 new" in out

    # The documented parameters; one query after another, posts then comments, pages from 1.
    asked = [(r.param("q"), r.param("type_"), r.param("page")) for r in api.requests]
    assert asked == [
        ("RedNote", "Posts", "1"), ("RedNote", "Posts", "2"), ("RedNote", "Comments", "1"),
        ("Lemon8", "Posts", "1"), ("Lemon8", "Comments", "1"),
        ("Xiaohongshu", "Posts", "1"), ("Xiaohongshu", "Comments", "1"),
    ]
    assert all(r.path == SEARCH and r.param("sort") == "New" and r.param("listing_type") == "All"
               and r.param("limit") == "50" for r in api.requests)

    # The dead instance: one line, its first query only, and the run is partial, not failed.
    lines = [line for line in err.splitlines() if "could not be reached" in line]
    assert len(lines) == 1 and DEAD in lines[0] and "1 of 2 instances" in lines[0]
    assert err.count("malformed page") == 1

    newest_post = search.views["Posts"]["RedNote"][0]
    row = conn.execute(
        "SELECT source, url, author, text, created_at, likes, replies, terms FROM posts WHERE source_id = %s",
        (newest_post["post"]["ap_id"],),
    ).fetchone()
    assert row == ("lemmy", newest_post["post"]["ap_id"], "maple_jo@lemmy.murmur.invalid",
                   f"{newest_post['post']['name']}\nLoving RedNote & more",
                   datetime.fromisoformat(newest_post["post"]["published"]), 0, 0, ["RedNote"])
    comment = search.views["Comments"]["RedNote"][0]
    text, url, replies = conn.execute("SELECT text, url, replies FROM posts WHERE source_id = %s",
                                      (comment["comment"]["ap_id"],)).fetchone()
    assert text == f"quoted\n\nRedNote comment {comment['comment']['id']}" and url == comment["comment"]["ap_id"]
    assert replies == 0
    counts = dict(conn.execute("SELECT terms[1], count(*) FROM posts GROUP BY 1").fetchall())
    assert counts == {"RedNote": 63, "Lemon8": 2, "Xiaohongshu": 1}

    status, stats, error = last_run(conn)
    assert status == "partial" and error == f"{DEAD}: connection refused"
    assert stats["murmur/failures/unreachable"] >= 1 and stats["murmur/queries/failed"] >= 1
    assert stats["murmur/pages"] == 6 and stats["murmur/posts/new"] == 66
    assert stats["murmur/posts/skipped_deleted"] == 2 and stats["murmur/errors/malformed"] == 1
    assert stats["murmur/errors/refused"] == 1
    first = cursors(conn)
    key = f"{api.url}#%s#%s"
    assert first == {  # none for an empty query, none for the malformed one
        key % ("posts", "RedNote"): newest(search.views["Posts"]["RedNote"], "post"),
        key % ("comments", "RedNote"): newest(search.views["Comments"]["RedNote"], "comment"),
        key % ("posts", "Lemon8"): newest(search.views["Posts"]["Lemon8"], "post"),
        key % ("comments", "Xiaohongshu"): newest(search.views["Comments"]["Xiaohongshu"], "comment"),
    }

    # Second run: Lemmy search has no "since", so each query pages newest first and stops at the first
    # page that reaches its cursor; only what is newer is stored.
    later = START + timedelta(days=1)
    new_posts = make_posts("RedNote", 3, first_id=2490000, start=later)
    new_comments = make_comments("RedNote", 1, first_id=11870000, start=later)
    search.views["Posts"]["RedNote"] += new_posts
    search.views["Comments"]["RedNote"] += new_comments
    seen = len(api.requests)
    out, err = crawl(tmp_path, db_url, [api.url], terms)
    assert "[exit 0]" in err, err
    assert [(r.param("q"), r.param("type_"), r.param("page")) for r in api.requests[seen:]] == [
        (term, type_, "1") for term in terms for type_ in ("Posts", "Comments")
    ]
    assert last_run(conn)[1]["murmur/posts/new"] == 3 + 1 + 2  # and the Xiaohongshu posts missed before
    counts = dict(conn.execute("SELECT terms[1], count(*) FROM posts GROUP BY 1").fetchall())
    assert counts == {"RedNote": 67, "Lemon8": 2, "Xiaohongshu": 3}  # nothing stored twice
    assert cursors(conn) == {
        **first,
        key % ("posts", "RedNote"): newest(new_posts, "post"),
        key % ("comments", "RedNote"): newest(new_comments, "comment"),
        key % ("posts", "Xiaohongshu"): newest(search.views["Posts"]["Xiaohongshu"], "post"),
    }


def test_refused_access_is_one_clear_line_and_the_source_fails(tmp_path: Path, db_url: str,
                                                                conn: psycopg.Connection) -> None:
    with FakeAPI() as api:
        api.route(SEARCH, lambda req: Reply.json({"error": "instance_is_private"}, status=403))
        out, err = crawl(tmp_path, db_url, [api.url], ["RedNote", "Lemon8"])
        asked, url = api.requests, api.url
    assert "[exit 1]" in err and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "refused access" in line]
    assert len(lines) == 1 and url in lines[0] and "HTTP 403" in lines[0]
    assert "could not be reached" not in err
    assert len(asked) == 1  # no more requests to it this run
    status, stats, error = last_run(conn)
    assert status == "failed" and error == f"{url}: HTTP 403"
    assert stats["murmur/errors/http_403"] == 1 and "lemmy: failed" in out
