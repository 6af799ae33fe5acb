"""The dashboard's HTTP side (web/): every data view and its CSV twin against a real PostgreSQL through Starlette's
TestClient, the security headers, the token, the bounds, and the real uvicorn server (a port taken, loopback)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from murmur.crawler.items import Post
from murmur.reports.build import build_report
from murmur.reports.filters import Filters
from murmur.sentiment.scorer import Score
from murmur.store.posts import upsert_posts
from murmur.store.scores import write_scores
from murmur.store.trends import aggregate
from murmur.web.app import CSP, STATIC, create_app
from murmur.web.server import ListenError, WebServer, check_listen
from murmur.web.views import Context
from tests.conftest import REPO, run_murmur

MODEL = "test-model"
MON = datetime(2025, 1, 13, tzinfo=UTC)
POS, NEG = Score("positive", 0.05, 0.15, 0.80), Score("negative", 0.70, 0.20, 0.10)
NEU = Score("neutral", 0.1, 0.8, 0.1)
XSS = "<img src=x onerror=alert(1)> RedNote <script>alert(2)</script>"
TOKEN = "s3cret-token-0123456789"

# (name, source, day, hour, lang, region, terms, tags, score, url)
POSTS = [
    ("m1", "mastodon", 0, 9, "en", None, ["RedNote"], ["rednote", "tiktokban"], POS, "https://mastodon.example/m1"),
    ("m2", "mastodon", 0, 10, "en", None, ["RedNote"], ["tiktokban"], POS, "https://mastodon.example/m2"),
    ("m3", "mastodon", 0, 11, "en", None, ["RedNote"], [], NEG, "https://mastodon.example/m3"),
    ("b1", "bluesky", 0, 12, "en", None, ["RedNote"], [], NEU, "https://bluesky.example/b1"),
    ("r1", "rednote", 1, 9, "zh", "上海", ["RedNote", "小红书"], ["小红书"], POS, "https://rednote.example/r1"),
    ("r2", "rednote", 1, 10, "zh", "上海", ["小红书"], ["xiaohongshu"], NEG, "https://rednote.example/r2"),
    ("x1", "bluesky", 1, 12, "en", None, ["RedNote"], ["<b>tag</b>"], NEG, "javascript:alert(3)"),
    ("m4", "mastodon", 3, 9, "en", None, ["TikTok refugee"], ["tiktokrefugees"], NEG, "https://mastodon.example/m4"),
]
TERMS = ("RedNote", "小红书", "TikTok refugee")


def seed(conn: psycopg.Connection) -> None:
    """POSTS stored, scored and aggregated through the store's own functions (x1 is the attacker's post)."""
    posts = [
        Post(source=src, source_id=name, url=url, author=f"{name}@example" if name != "x1" else "<i>evil</i>",
             text=XSS if name == "x1" else f"post {name} about {' and '.join(terms)}",
             created_at=MON + timedelta(days=day, hours=hour), lang=lang, region=region, tags=tags, terms=terms,
             metrics={"likes": 1, "reposts": 0, "replies": 0})
        for name, src, day, hour, lang, region, terms, tags, _, url in POSTS
    ]
    with conn.transaction():
        upsert_posts(conn, posts)
        ids = dict(conn.execute("SELECT source_id, id FROM posts").fetchall())
        write_scores(conn, MODEL, [ids[p[0]] for p in POSTS], [p[8] for p in POSTS])
    aggregate(conn)


@pytest.fixture
def client(conn: psycopg.Connection, db_url: str) -> Iterator[TestClient]:
    seed(conn)
    with TestClient(create_app(db_url, context=Context(terms=TERMS)), base_url="http://127.0.0.1") as c:
        yield c


def rows_of_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_page_is_static_with_no_inline_script_and_every_response_carries_the_csp(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    html = page.text
    assert all('src="/static/' in tag for tag in re.findall(r"<script[^>]*>", html)), "every script from a file"
    assert not re.search(r"<script[^>]*>\s*[^<\s]", html), "no inline script"
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE), "no inline handler"
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    assert "innerHTML" not in js and "eval(" not in js and "new Function" not in js
    for path in ("/static/app.js", "/static/style.css", "/api/trend", "/healthz", "/metrics", "/nowhere"):
        assert client.get(path).headers["content-security-policy"] == CSP, path


def test_the_trend_is_the_reports_with_a_csv_twin_of_what_it_shows(client: TestClient, conn: psycopg.Connection
                                                                  ) -> None:
    body = client.get("/api/trend?by=day").json()
    report = build_report(conn, Filters(by="day"), terms=TERMS)
    assert body["model"] == MODEL and body["rows"] == [report.row(p) for p in report.points]
    assert body["periods"][0].startswith("2025-01-13") and len(body["periods"]) == 4  # the gap day included
    assert {s["label"] for s in body["series"]} == {"mastodon · RedNote", "bluesky · RedNote", "rednote · RedNote",
                                                   "rednote · 小红书", "mastodon · TikTok refugee"}
    for url in ("/api/trend.csv?by=day", "/api/trend?by=day&format=csv"):
        answer = client.get(url)
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        rows = rows_of_csv(answer.text)
        assert [(r["bucket_start"], r["source"], r["term"], int(r["posts"])) for r in rows] == \
            [(r["bucket_start"], r["source"], r["term"], r["posts"]) for r in body["rows"]]
    narrowed = client.get("/api/trend?by=hour&term=小红书&since=2025-01-14&until=2025-01-15").json()
    assert {r["term"] for r in narrowed["rows"]} == {"小红书"} and len(narrowed["rows"]) == 2
    weekly = client.get("/api/trend?by=week").json()
    assert len(weekly["periods"]) == 1 and sum(r["posts"] for r in weekly["rows"]) == 9  # r1 in two terms


def test_compare_region_and_dedupe_filter_like_the_report(client: TestClient) -> None:
    by_source = client.get("/api/compare?compare=source").json()
    assert by_source["dims"] == ["source"] and {s["label"] for s in by_source["series"]} == {
        "mastodon", "bluesky", "rednote"}
    region = client.get("/api/trend?region=上海").json()
    assert {s["label"] for s in region["series"]} == {"上海"} and sum(r["posts"] for r in region["rows"]) == 2
    assert client.get("/api/trend?dedupe=1").status_code == 200
    assert client.get("/api/trend?compare=lang&region=x").status_code == 400


def test_the_other_views_answer_with_rows_and_csv(client: TestClient) -> None:
    co = client.get("/api/cooccurrence?top=3").json()
    assert any(r["entry"] == "#tiktokban" for r in co["rows"])
    langs = client.get("/api/languages").json()
    assert {r["source"] for r in langs["rows"]} == {"mastodon", "bluesky", "rednote"}
    top = client.get("/api/top?top=2").json()
    assert {r["side"] for r in top["rows"]} == {"positive", "negative"} and len(top["rows"]) == 4
    assert client.get("/api/alerts").status_code == 200
    options = client.get("/api/options").json()
    assert options["models"] == [MODEL] and "小红书" in options["terms"] and options["search"] is False
    assert client.get("/api/search?q=hello").json()["note"] == "search is not served here"
    sources = client.get("/api/sources").json()
    assert {r["source"] for r in sources["rows"]} >= {"mastodon", "rednote"}
    for view in ("cooccurrence", "languages", "top", "alerts", "sources"):
        answer = client.get(f"/api/{view}.csv")
        assert answer.status_code == 200 and answer.text.splitlines()[0].split(",") == client.get(
            f"/api/{view}").json()["columns"], view


def test_a_bucket_lists_its_posts_a_page_at_a_time(client: TestClient) -> None:
    first = client.get("/api/posts?bucket=2025-01-13&source=mastodon&term=RedNote&page_size=2").json()
    assert [r["url"] for r in first["rows"]] == ["https://mastodon.example/m1", "https://mastodon.example/m2"]
    assert first["more"] is True and first["bucket"].startswith("2025-01-13")
    second = client.get("/api/posts?bucket=2025-01-13&source=mastodon&term=RedNote&page_size=2&page=2").json()
    assert [r["url"] for r in second["rows"]] == ["https://mastodon.example/m3"] and second["more"] is False
    hour = client.get("/api/posts?bucket=2025-01-14T12:00:00Z&by=hour").json()
    assert [r["text"] for r in hour["rows"]] == [XSS]  # data, not markup: the page shows it as text
    assert client.get("/api/posts?bucket=2025-01-14&region=上海").json()["rows"][0]["source"] == "rednote"
    assert client.get("/api/posts").status_code == 400


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    from murmur.web.app import _cell

    assert _cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert _cell(-0.5) == -0.5 and _cell(["a", "b"]) == "a; b" and _cell(None) == ""


@pytest.mark.parametrize(("query", "says"), [
    ("by=hour&since=2025-01-01&until=2025-12-31", "narrow the dates"),
    ("by=minute", "by: use one of"),
    ("since=yesterday", "is not a date"),
    ("page_size=5000&bucket=2025-01-13", "page_size"),
    ("top=500", "top"),
    ("term=" + ",".join(str(i) for i in range(60)), "at most 50 values"),
    ("colour=red", "unknown parameter"),
    ("term=" + "x" * 2100, "longer than 2000"),
    ("term=NoSuchTerm", "unknown term"),
    ("since=2025-02-01&until=2025-01-01", "is not before"),
])
def test_bad_or_oversized_requests_get_a_one_line_400(client: TestClient, query: str, says: str) -> None:
    answer = client.get(f"/api/{'posts' if 'bucket' in query else 'trend'}?{query}")
    assert answer.status_code == 400 and says in answer.json()["error"], answer.text


def test_the_dashboard_is_read_only(client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = client.request(method, "/api/trend")
        assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
    assert client.head("/api/trend").status_code == 200


def test_the_token_guards_everything_but_healthz_and_the_pages_static_files(
        conn: psycopg.Connection, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    seed(conn)
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(db_url, context=Context(terms=TERMS), token=TOKEN)) as c:
        for path in ("/api/trend", "/api/trend.csv", "/api/options", "/metrics"):
            answer = c.get(path)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", path
        assert c.get("/api/trend", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert c.get("/api/trend", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        c.cookies.set("murmur_token", TOKEN)
        assert c.get("/api/trend.csv").status_code == 200
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
    assert TOKEN not in caplog.text


def test_an_address_beyond_loopback_needs_a_token() -> None:
    assert check_listen("127.0.0.1:9464", None, key="--listen") == ("127.0.0.1", 9464)
    assert check_listen("[::1]:0", None, key="--listen") == ("::1", 0)
    with pytest.raises(ListenError, match="MURMUR_SERVICE__TOKEN"):
        check_listen("0.0.0.0:9464", None, key="--listen")
    assert check_listen("0.0.0.0:9464", TOKEN, key="--listen") == ("0.0.0.0", 9464)


def test_uvicorn_serves_it_and_a_taken_port_is_an_oserror(db_url: str, conn: psycopg.Connection) -> None:
    seed(conn)
    server = WebServer("127.0.0.1:0", create_app(db_url, context=Context(terms=TERMS)))
    server.start()
    try:
        health = httpx.get(server.url + "/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["database"] == "ok"
        assert health.headers["content-security-policy"] == CSP and "server" not in health.headers
        assert httpx.get(server.url + "/api/trend", timeout=10).json()["model"] == MODEL
        assert "murmur_web_requests_total" in httpx.get(server.url + "/metrics", timeout=10).text
        with pytest.raises(OSError):
            WebServer(server.url.removeprefix("http://"), create_app(db_url))
    finally:
        server.stop()


def test_murmur_web_says_when_its_port_is_taken_or_its_address_needs_a_token(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_murmur("web", "--listen", f"127.0.0.1:{port}", db_url=db_url, timeout=60)
    assert result.returncode != 0 and "is taken" in result.stderr and "Traceback" not in result.stderr
    result = run_murmur("web", "--listen", "0.0.0.0:9464", db_url=db_url, timeout=60)
    assert result.returncode == 2 and "MURMUR_SERVICE__TOKEN" in result.stderr, result.stderr
    assert "web" in run_murmur("--help", db_url=db_url).stdout


def test_the_chart_library_is_pinned_and_vendored_by_make_install() -> None:
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/uplot"]["version"] == "1.6.32"
    makefile = (REPO / "Makefile").read_text()
    assert "npm ci --prefix web" in makefile and "uPlot.iife.min.js" in makefile


def test_service_http_is_on_by_default_and_the_token_comes_from_the_environment() -> None:
    from murmur.config import ConfigError, load_settings
    from murmur.redact import secret_values

    assert load_settings(environ={}).service.http == "127.0.0.1:9464"
    assert load_settings(environ={"MURMUR_SERVICE__HTTP": ""}).service.http is None
    settings = load_settings(environ={"MURMUR_SERVICE__TOKEN": TOKEN})
    assert settings.service.token == TOKEN and TOKEN not in repr(settings)
    assert TOKEN in secret_values(settings, environ={})  # masked in every log line
    with pytest.raises(ConfigError, match="service.token") as err:
        load_settings(environ={"MURMUR_SERVICE__TOKEN": "short"})
    assert "short" not in str(err.value).replace("'service.token' is not", "")
