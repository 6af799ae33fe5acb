"""`murmur import` through the real command, into PostgreSQL: the generic csv and ndjson formats with --map,
compressed files, bad input counted with its lines, what --term, --all, --since and --until keep, the
job_runs row of each file, and a file of no known format."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import FIXTURES, run_murmur

NDJSON = FIXTURES / "import" / "posts.ndjson"
CSV = FIXTURES / "import" / "posts.csv"
NDJSON_MAP = "text=body,created_at=ts,source_id=tweet_id,author=user.name,likes=stats.likes,reposts=stats.retweets"


def import_ndjson(path: Path, *extra: str, db_url: str) -> str:
    done = run_murmur("import", str(path), "--format", "ndjson", "--source", "x", "--map", NDJSON_MAP,
                      "--map", "url=link,region=place,parent_source_id=in_reply_to", *extra, db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def stored(conn: psycopg.Connection, source: str = "x") -> dict[str, dict[str, Any]]:
    cur = conn.execute("SELECT source_id, author, text, lang, created_at, terms, likes, reposts, url, region, "
                       "parent_source_id, via FROM posts WHERE source = %s", (source,))
    names = [d.name for d in cur.description or []]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def runs(conn: psycopg.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r[0], r[1], r[2]) for r in conn.execute("SELECT job, status, stats FROM job_runs ORDER BY id")]


def test_ndjson_with_a_map_stores_each_field_and_counts_bad_lines_with_their_numbers(
        db_url: str, conn: psycopg.Connection) -> None:
    out = import_ndjson(NDJSON, db_url=db_url)
    assert "8 records, 3 new, 0 updated, 0 unchanged" in out
    assert "dropped 1 matching no term" in out
    assert "2 not_json (lines 2, 9)" in out and "1 no_id (line 4)" in out and "1 no_time (line 5)" in out
    posts = stored(conn)
    assert sorted(posts) == ["1001", "1003", "1008"]
    first = posts["1001"]
    assert (first["author"], first["likes"], first["reposts"], first["url"], first["region"], first["via"]) == (
        "alice", 5, 2, "https://x.com/alice/status/1001", "US", "import")
    assert first["created_at"].isoformat() == "2025-01-15T00:00:00+00:00"
    assert first["terms"] == ["TikTok refugee", "RedNote"] and first["lang"] == "en"
    assert posts["1003"]["created_at"].isoformat() == "2025-01-15T08:00:00+00:00"  # Unix milliseconds
    assert posts["1003"]["lang"] == "zh" and posts["1003"]["terms"] == ["小红书"]
    assert posts["1008"]["parent_source_id"] == "1001"

    [(job, status, stats)] = runs(conn)
    assert (job, status) == ("import:ndjson", "ok")
    assert stats["sha256"] == hashlib.sha256(NDJSON.read_bytes()).hexdigest()
    assert stats["file"] == str(NDJSON) and stats["format"] == "ndjson" and stats["bytes"] == NDJSON.stat().st_size
    assert stats["posts"] == {"new": 3, "updated": 0, "unchanged": 0}
    assert stats["skipped"] == {"not_json": 2, "no_id": 1, "no_time": 1}
    assert stats["skipped_lines"]["not_json"] == [2, 9]
    assert stats["dropped"]["no_term"] == 1


def test_importing_the_same_file_again_adds_nothing(db_url: str, conn: psycopg.Connection) -> None:
    import_ndjson(NDJSON, db_url=db_url)
    out = import_ndjson(NDJSON, db_url=db_url)
    assert "3 new" not in out and "0 new, 0 updated, 3 unchanged" in out
    assert len(stored(conn)) == 3
    assert [r[2]["posts"]["new"] for r in runs(conn)] == [3, 0]


def test_term_keeps_a_post_of_that_search_and_all_keeps_everything(db_url: str, conn: psycopg.Connection) -> None:
    import_ndjson(NDJSON, "--term", "rednotes", db_url=db_url)  # the configured term it names
    assert stored(conn)["1006"]["terms"] == ["RedNote"]
    assert stored(conn)["1003"]["terms"] == ["小红书", "RedNote"]
    conn.execute("DELETE FROM posts")
    conn.commit()
    out = import_ndjson(NDJSON, "--all", db_url=db_url)
    assert "4 new" in out and "matching no term" not in out
    assert stored(conn)["1006"]["terms"] == []


def test_since_includes_its_start_and_until_excludes_its_end(db_url: str, conn: psycopg.Connection) -> None:
    out = import_ndjson(NDJSON, "--since", "2025-01-15", "--until", "2025-02-03T10:00:00", db_url=db_url)
    assert sorted(stored(conn)) == ["1001", "1003"]  # 1001 at the start, 1008 at the end
    assert "1 outside --since/--until" in out


def test_gzip_and_zstandard_files_are_read_as_the_plain_one(db_url: str, conn: psycopg.Connection,
                                                           tmp_path: Path) -> None:
    import zstandard

    gz = tmp_path / "posts.ndjson.gz"
    gz.write_bytes(gzip.compress(NDJSON.read_bytes()))
    zst = tmp_path / "posts.ndjson.zst"
    # A window above zstd's default 128 MB limit, as Reddit dumps are written, and no declared size.
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=28)
    buffer = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(buffer, closefd=False) as writer:
        writer.write(NDJSON.read_bytes())
    zst.write_bytes(buffer.getvalue())
    assert "3 new" in import_ndjson(gz, db_url=db_url)
    out = import_ndjson(zst, db_url=db_url)
    assert "0 new, 0 updated, 3 unchanged" in out and "2 not_json (lines 2, 9)" in out
    shas = [r[2]["sha256"] for r in runs(conn)]
    assert shas == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (gz, zst)]


def test_a_truncated_compressed_file_imports_what_came_before_and_is_partial(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    lines = b"".join(json.dumps({"tweet_id": str(i), "body": f"RedNote post {i}", "ts": 1736899200 + i}).encode()
                     + b"\n" for i in range(3000))
    cut = tmp_path / "cut.ndjson.gz"
    whole = gzip.compress(lines)
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    done = run_murmur("import", str(cut), "--format", "ndjson", "--source", "x", "--map", NDJSON_MAP, db_url=db_url)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "partial: the file breaks off after record" in done.stdout
    count = len(stored(conn))
    assert 0 < count < 3000
    assert runs(conn)[0][1] == "partial"


def test_csv_with_a_byte_order_mark_and_a_map(db_url: str, conn: psycopg.Connection) -> None:
    done = run_murmur("import", str(CSV), "--source", "weibo", "--map", "created_at=created", db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert "posts.csv: csv (as weibo), 3 records, 2 new" in done.stdout
    assert "1 no_time (line 3)" in done.stdout
    posts = stored(conn, "weibo")
    assert posts["n1"]["text"] == 'Trying Xiaohongshu, "RedNote", for the first time'
    assert (posts["n1"]["author"], posts["n1"]["likes"], posts["n1"]["region"]) == ("眼镜", 1204, "上海")
    assert posts["n1"]["created_at"].isoformat() == "2025-01-14T09:30:00+00:00"
    assert posts["n3"]["text"] == "多行\n小红书 笔记" and posts["n3"]["terms"] == ["小红书"]
    assert runs(conn)[0][0] == "import:csv"


def test_a_file_of_no_known_format_is_one_line_naming_the_formats(db_url: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    done = run_murmur("import", str(notes), db_url=db_url)
    assert done.returncode == 2
    err = done.stderr.strip()
    assert err.startswith("murmur: error:") and len(err.splitlines()) == 1
    assert "zeeschuimer, mediacrawler, reddit-dump, csv, ndjson" in err
    bad_map = run_murmur("import", str(CSV), "--source", "x", "--map", "body", db_url=db_url)
    assert bad_map.returncode == 2 and "FIELD=COLUMN" in bad_map.stderr and "Traceback" not in bad_map.stderr
    unknown = run_murmur("import", str(CSV), "--source", "myspace", db_url=db_url)
    assert unknown.returncode == 2 and "unknown source" in unknown.stderr


def test_a_reddit_dump_is_streamed_from_zstandard(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    pytest.importorskip("murmur.crawler.parsers.reddit_dump")
    import zstandard

    folder = tmp_path / "dumps"
    folder.mkdir()
    submissions = [
        {"id": "abc1", "title": "Moving to RedNote", "selftext": "so many TikTok refugees", "created_utc": 1736899200,
         "author": "alice", "subreddit": "TikTok", "permalink": "/r/TikTok/comments/abc1/moving_to_rednote/",
         "score": 10, "num_comments": 1},
        {"id": "abc2", "title": "[deleted]", "selftext": "[removed]", "created_utc": 1736899300, "author": "[deleted]",
         "subreddit": "TikTok", "permalink": "/r/TikTok/comments/abc2/x/"},
    ]
    comments = [{"id": "c1", "body": "see you on RedNote", "created_utc": "1736899400", "author": "bo",
                 "link_id": "t3_abc1", "parent_id": "t3_abc1", "subreddit": "TikTok", "score": 3,
                 "permalink": "/r/TikTok/comments/abc1/moving_to_rednote/c1/"}]
    for name, records in (("RS_2025-01.zst", submissions), ("RC_2025-01.zst", comments)):
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
        (folder / name).write_bytes(zstandard.ZstdCompressor().compress(data))
    shutil.copy(NDJSON, folder / "README.txt")  # not a data file: a walk leaves it
    done = run_murmur("import", str(folder), db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    posts = stored(conn, "reddit")
    assert sorted(posts) == ["t1_c1", "t3_abc1"]  # the reddit spider's ids, so crawls and dumps merge
    assert posts["t1_c1"]["parent_source_id"] == "t3_abc1" and posts["t1_c1"]["via"] == "import"
    assert "RS_2025-01.zst: reddit-dump (submissions), 2 records, 1 new" in done.stdout
    assert "skipped 1 deleted (line 2)" in done.stdout
    assert [r[0] for r in runs(conn)] == ["import:reddit-dump", "import:reddit-dump"]


def test_a_json_array_is_read_one_element_at_a_time_across_buffer_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    from murmur.crawler.imports import reading

    monkeypatch.setattr(reading, "BUFFER", 7)  # every element spans several reads
    elements = [{"id": "1", "text": "a ] b, [c]"}, {"id": 2, "nested": {"list": [1, 2, {"x": "}"}]}}, 12345, "小红书"]
    body = ("\ufeff [\n" + ",\n  ".join(json.dumps(e, ensure_ascii=False) for e in elements) + "\n]\n").encode()
    got = list(reading.json_array_records(io.BytesIO(body)))
    assert got == list(enumerate(elements, 1))
    cut = list(reading.json_array_records(io.BytesIO(body[: body.index(b"12345")])))
    assert [p for p, _ in cut] == [1, 2, 3] and isinstance(cut[-1][1], reading.BadRecord)
    assert isinstance(list(reading.json_array_records(io.BytesIO(b'{"a": 1}')))[0][1], reading.BadRecord)


def test_import_only_sources_are_skipped_by_crawls_and_shown_as_import_only(
        db_url: str, conn: psycopg.Connection) -> None:
    from murmur.config import load_settings
    from murmur.scheduler.status import gather, render

    done = run_murmur("crawl", "douyin", "x", db_url=db_url)
    assert done.returncode == 0 and "douyin: import only, not crawled" in done.stderr
    assert runs(conn) == []
    settings = load_settings(environ={"MURMUR_SOURCES__DOUYIN__ENABLED": "true"})
    status = gather(conn, settings)
    [row] = [j for j in status["jobs"] if j.get("source") == "douyin"]
    assert (row["job"], row["next_run"], row["collects"]) == ("import:douyin", "import only", ["import"])
    assert "import:douyin" in render(status, "table", database="db")


MEDIACRAWLER = FIXTURES / "mediacrawler" / "data"


def test_comments_under_a_searched_note_are_kept_with_the_notes_terms(db_url: str, conn: psycopg.Connection) -> None:
    pytest.importorskip("murmur.crawler.parsers.mediacrawler")
    note = "6785a1f2000000001a03b7c1"
    top, reply = "6785a9aa000000001f00c001", "6785aabb000000001f00c002"  # texts naming no term
    done = run_murmur("import", str(MEDIACRAWLER / "xhs" / "json"), db_url=db_url)
    assert done.returncode == 0, done.stderr
    # The folder is read notes first (search_comments_* sorts before search_contents_* by name).
    lines = done.stdout.splitlines()
    assert "search_contents" in lines[0] and "search_comments" in lines[1]
    assert "2 records, 2 new" in lines[1] and "2 kept with their thread" in lines[1]
    assert "matching no term" not in lines[1]
    posts = stored(conn, "rednote")
    assert posts[top]["terms"] == posts[note]["terms"] and "TikTok难民" in posts[note]["terms"]
    assert posts[reply]["terms"] == posts[note]["terms"] and posts[reply]["parent_source_id"] == top
    assert runs(conn)[1][2]["replies"] == 2 and runs(conn)[1][2]["dropped"]["no_term"] == 0


def test_a_comment_whose_thread_is_not_stored_is_dropped_and_one_kept_earlier_counts(
        db_url: str, conn: psycopg.Connection) -> None:
    pytest.importorskip("murmur.crawler.parsers.mediacrawler")
    comments = MEDIACRAWLER / "xhs" / "json" / "search_comments_2025-01-14.json"
    done = run_murmur("import", str(comments), db_url=db_url)  # the note was never imported
    assert done.returncode == 0, done.stderr
    assert "dropped 2 matching no term" in done.stdout and stored(conn, "rednote") == {}
    notes = MEDIACRAWLER / "xhs" / "json" / "search_contents_2025-01-14.json"
    assert run_murmur("import", str(notes), db_url=db_url).returncode == 0
    again = run_murmur("import", str(comments), db_url=db_url)  # its note is stored now
    assert "2 new" in again.stdout and "2 kept with their thread" in again.stdout
