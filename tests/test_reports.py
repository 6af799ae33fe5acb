"""`murmur report` against a real PostgreSQL: posts and scores written through the store, then
aggregated, then reported through the real CLI (table, CSV, JSON, Parquet, chart, HTML), and the
HTML page opened in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from murmur.cli import main
from murmur.crawler.items import Post
from murmur.reports.chart import BAR_COLOR, LINE_COLOR
from murmur.reports.extras import cooccurrence, language_mix
from murmur.reports.filters import Filters
from murmur.reports.series import Point, load_points
from murmur.sentiment.scorer import Score
from murmur.store.posts import upsert_posts
from murmur.store.scores import write_scores
from murmur.store.trends import aggregate
from tests.conftest import run_murmur

MODEL = "test-model"
MON = datetime(2025, 1, 13, tzinfo=UTC)  # a Monday
POS, NEG = Score("positive", 0.05, 0.15, 0.80), Score("negative", 0.70, 0.20, 0.10)
NEU = Score("neutral", 0.1, 0.8, 0.1)
SCRIPT = "<script>alert('x')</script> RedNote & <b>more</b>"

# (name, source, day, hour, lang, terms, tags, score or None: unscored, likes)
POSTS = [
    ("m1", "mastodon", 0, 9, "en", ["RedNote"], ["rednote", "tiktokban"], POS, 3),
    ("m2", "mastodon", 0, 10, "en", ["RedNote"], ["tiktokban"], POS, 0),
    ("m3", "mastodon", 0, 11, "en", ["RedNote"], [], NEG, 0),
    ("b1", "bluesky", 0, 12, "en", ["RedNote"], [], NEU, 0),
    ("m4", "mastodon", 1, 9, "zh", ["RedNote", "小红书"], ["xiaohongshu", "tiktokban", "小红书"], POS, 40),
    ("m5", "mastodon", 1, 10, "zh", ["小红书"], ["xiaohongshu"], Score("positive", 0.01, 0.04, 0.95), 0),
    ("m6", "mastodon", 1, 11, "ja", ["RedNote"], [], None, 0),
    ("b2", "bluesky", 1, 12, "en", ["RedNote"], ["lemon8"], Score("negative", 0.97, 0.02, 0.01), 5),
    ("b3", "bluesky", 1, 13, "en", ["RedNote"], ["lemon8"], NEG, 0),
    ("m7", "mastodon", 3, 9, "en", ["TikTok refugee"], ["tiktokrefugees"], NEG, 0),
    ("m8", "mastodon", 3, 10, "en", ["TikTok refugee", "RedNote"], [], POS, 0),
]


def seed(conn: psycopg.Connection) -> None:
    """POSTS stored, scored and aggregated through the store's own functions."""
    posts = [
        Post(source=src, source_id=name, url=f"https://{src}.example/{name}", author=f"{name}@example",
             text=SCRIPT if name == "b2" else f"post {name} about {' and '.join(terms)}",
             created_at=MON + timedelta(days=day, hours=hour), lang=lang, tags=tags, terms=terms,
             metrics={"likes": likes, "reposts": 0, "replies": 0})
        for name, src, day, hour, lang, terms, tags, _, likes in POSTS
    ]
    with conn.transaction():
        upsert_posts(conn, posts)
        ids = dict(conn.execute("SELECT source_id, id FROM posts").fetchall())
        scored = [(ids[name], score) for name, *_, score, _likes in POSTS if score is not None]
        write_scores(conn, MODEL, [i for i, _ in scored], [s for _, s in scored])
    aggregate(conn)


@pytest.fixture
def seeded(conn: psycopg.Connection) -> psycopg.Connection:
    seed(conn)
    return conn


def report(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_murmur("report", *args, db_url=db_url, timeout=60)


def by_key(points: list[Point]) -> dict[tuple[str, ...], int]:
    return {(p.bucket_start.strftime("%d"), *p.key): p.posts for p in points}


# --- numbers ----------------------------------------------------------------------------------


def test_standard_error_comes_from_the_label_counts() -> None:
    p = Point(MON, ("x",), posts=4, negative=1, neutral=0, positive=3, mean_polarity=0.5)
    assert p.polarity_se == pytest.approx(0.5)  # labels +1,+1,+1,-1: sample sd 1, over sqrt(4)
    assert Point(MON, ("x",), 1, 0, 0, 1, 0.9).polarity_se == 0.0


def test_series_per_source_and_term_come_from_the_aggregates(seeded: psycopg.Connection) -> None:
    points = by_key(load_points(seeded, Filters(), MODEL))
    assert points == {
        ("13", "bluesky", "RedNote"): 1, ("13", "mastodon", "RedNote"): 3,
        ("14", "bluesky", "RedNote"): 2, ("14", "mastodon", "RedNote"): 1, ("14", "mastodon", "小红书"): 2,
        ("16", "mastodon", "RedNote"): 1, ("16", "mastodon", "TikTok refugee"): 2,
    }


def test_compare_source_counts_a_post_matching_two_terms_once(seeded: psycopg.Connection) -> None:
    points = by_key(load_points(seeded, Filters(compare="source"), MODEL))
    # m4 matches RedNote and 小红书, m8 TikTok refugee and RedNote; m6 (Japanese) is unscored
    assert points == {("13", "bluesky"): 1, ("13", "mastodon"): 3, ("14", "bluesky"): 2, ("14", "mastodon"): 2,
                      ("16", "mastodon"): 2}


def test_weeks_are_folded_from_days_and_lang_filters(seeded: psycopg.Connection) -> None:
    weeks = by_key(load_points(seeded, Filters(by="week"), MODEL))
    assert weeks == {("13", "bluesky", "RedNote"): 3, ("13", "mastodon", "RedNote"): 5,
                     ("13", "mastodon", "小红书"): 2, ("13", "mastodon", "TikTok refugee"): 2}
    chinese = by_key(load_points(seeded, Filters(langs=("ZH",), compare="term"), MODEL))
    assert chinese == {("14", "RedNote"): 1, ("14", "小红书"): 2}


def test_cooccurring_hashtags_and_terms_are_counted_and_new_ones_flagged(seeded: psycopg.Connection) -> None:
    rows = {(c.period.day, c.entry): (c.posts, c.previous, c.new) for c in cooccurrence(seeded, Filters())}
    assert rows == {
        (13, "#tiktokban"): (2, 0, False),  # #rednote on a RedNote post is the term itself: left out
        (14, "#lemon8"): (2, 0, True), (14, "#xiaohongshu"): (2, 0, True), (14, "#tiktokban"): (1, 2, False),
        (14, "RedNote"): (1, 0, True), (14, "小红书"): (1, 0, True),  # m4 holds both terms
        # the 15th had no posts, so nothing on the 16th is "new"; #tiktokrefugees is the term's plural
        (16, "RedNote"): (1, 0, False), (16, "TikTok refugee"): (1, 0, False),
    }
    anchored = {(c.period.day, c.entry) for c in cooccurrence(seeded, Filters(terms=("rednote",),
                                                                               since=MON + timedelta(days=1)))}
    assert anchored == {(14, "#lemon8"), (14, "#xiaohongshu"), (14, "#tiktokban"), (14, "小红书"),
                        (16, "TikTok refugee")}


def test_language_mix_counts_every_post_per_source_scored_or_not(seeded: psycopg.Connection) -> None:
    mix = {(m.period.day, m.source): (m.posts, m.en, m.zh, m.other) for m in language_mix(seeded, Filters())}
    assert mix[(14, "mastodon")] == (3, 0, 2, 1)  # m6 is Japanese and unscored: still in the mix
    assert mix[(14, "bluesky")] == (2, 2, 0, 0)
    assert sum(v[0] for v in mix.values()) == len(POSTS)


# --- the CLI ------------------------------------------------------------------------------------


def test_table_has_rows_sparklines_and_the_extra_sections(seeded: psycopg.Connection, db_url: str) -> None:
    result = report(db_url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^2025-01-13\s+mastodon\s+RedNote\s+3\s+1\s+0\s+2\s+\+0\.\d\d", out, re.M), out
    assert re.search(r"^\s+mastodon · RedNote\s+[▁▂▃▄▅▆▇█]{4}\s+5 posts", out, re.M), out  # 4 days, gap included
    assert "Rising alongside" in out and re.search(r"^2025-01-14\s+#lemon8 2 \(40%\)\*", out, re.M), out
    assert "Language mix" in out and re.search(r"^2025-01-14\s+mastodon\s+3\s+0%\s+67%\s+33%", out, re.M), out


def test_compare_source_csv_puts_the_series_side_by_side(seeded: psycopg.Connection, db_url: str) -> None:
    result = report(db_url, "--compare", "source", "--format", "csv", "--until", "2025-01-16")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["bucket_start"][:10] for r in rows] == ["2025-01-13", "2025-01-14"]
    assert (rows[1]["posts:mastodon"], rows[1]["posts:bluesky"]) == ("2", "2")
    assert float(rows[1]["mean_polarity:bluesky"]) < 0 < float(rows[1]["mean_polarity:mastodon"])


def test_json_keeps_its_list_and_gives_sections_as_an_object(seeded: psycopg.Connection, db_url: str) -> None:
    plain = json.loads(report(db_url, "--format", "json", "--term", "RedNote,小红书").stdout)
    assert {"bucket_start", "source", "term", "posts", "mean_polarity", "polarity_se"} <= set(plain[0])
    assert {r["term"] for r in plain} == {"RedNote", "小红书"}
    result = report(db_url, "--format", "json", "--sections", "trend,cooccurrence,languages", "--by", "week")
    data = json.loads(result.stdout)
    assert set(data) == {"trend", "cooccurrence", "languages"}
    assert {(c["entry"], c["new"]) for c in data["cooccurrence"]} >= {("#lemon8", False), ("#tiktokban", False)}
    assert data["languages"][1] == {"period": "2025-01-13T00:00:00+00:00", "source": "mastodon", "posts": 8, "en": 5,
                                    "zh": 2, "other": 1, "en_share": 0.625, "zh_share": 0.25, "other_share": 0.125}


def test_parquet_goes_to_a_file(seeded: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "trend.parquet"
    result = report(db_url, "--format", "parquet", "--output", str(out), "--compare", "term")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)
    assert table.num_rows == 4 and "posts:RedNote" in table.column_names  # the 15th is in, with no posts
    assert str(table.schema.field("bucket_start").type).startswith("timestamp")
    no_file = report(db_url, "--format", "parquet")
    assert no_file.returncode == 2 and "--output FILE" in no_file.stderr and len(no_file.stderr.splitlines()) == 1


def test_parquet_without_pyarrow_says_how_to_install_it(seeded: psycopg.Connection, db_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    code = main(["--database-url", db_url, "report", "--format", "parquet", "--output", str(tmp_path / "x")])
    assert code == 2 and "pip install pyarrow" in capsys.readouterr().err


def test_unknown_term_source_and_empty_range_are_one_line_errors(seeded: psycopg.Connection, db_url: str,
                                                                  tmp_path: Path) -> None:
    term = report(db_url, "--term", "RedNote,Myspace")
    assert term.returncode == 2 and "unknown term 'Myspace'" in term.stderr and "RedNote" in term.stderr
    source = report(db_url, "--source", "friendster")
    assert source.returncode == 2 and "unknown source 'friendster'" in source.stderr
    chart = tmp_path / "empty.png"
    empty = report(db_url, "--since", "2024-01-01", "--until", "2024-02-01", "--chart", str(chart))
    assert empty.returncode == 1 and "from 2024-01-01 until 2024-02-01" in empty.stderr
    assert "scored posts span 2025-01-13 to 2025-01-16" in empty.stderr
    assert not chart.exists()
    lang = report(db_url, "--lang", "fr")
    assert lang.returncode == 1 and "languages scored: en, zh" in lang.stderr
    for r in (term, source, empty, lang):
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_an_empty_database_says_what_to_run_first(conn: psycopg.Connection, db_url: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", db_url, "report"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "murmur: error: no scored posts yet; run `murmur run --once` (or crawl, score, aggregate) first"


def _colour_pixels(png: Path, colour: str, tolerance: int = 12) -> tuple[int, int, int]:
    """(pixels of about `colour`, width and height of the box around them) in an image."""
    from PIL import Image

    want = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    img = Image.open(png).convert("RGB")
    xs, ys = [], []
    pixels = img.load()
    for y in range(0, img.height, 2):
        for x in range(0, img.width, 2):
            if all(abs(a - b) <= tolerance for a, b in zip(pixels[x, y], want, strict=True)):
                xs.append(x)
                ys.append(y)
    return (len(xs), max(xs) - min(xs), max(ys) - min(ys)) if xs else (0, 0, 0)


def test_chart_draws_bars_and_a_polarity_line_per_series(seeded: psycopg.Connection, db_url: str,
                                                         tmp_path: Path) -> None:
    png = tmp_path / "trend.png"
    result = report(db_url, "--compare", "source", "--chart", str(png))
    assert result.returncode == 0, result.stderr
    assert f"chart of 2 series written to {png}" in result.stdout and result.stdout.count("\n") == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bars, width, height = _colour_pixels(png, BAR_COLOR)
    assert bars > 500 and width > 300 and height > 200  # two panels of bars, one above the other
    assert _colour_pixels(png, LINE_COLOR)[0] > 50


def test_html_is_one_self_contained_escaped_page(seeded: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    has_alerts = seeded.execute("SELECT to_regclass('alerts') IS NOT NULL").fetchone()[0]
    if has_alerts:
        seeded.execute(
            "INSERT INTO alerts (kind, bucket_size, bucket_start, source, term, model, value, baseline, score) "
            "VALUES ('volume_spike', 'day', %s, 'bluesky', 'RedNote', %s, 2, 0.5, 4.2)",
            (MON + timedelta(days=1), MODEL),
        )
        seeded.commit()
    page = tmp_path / "report.html"
    result = report(db_url, "--html", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert html.count("<svg") == 1 and "<script" not in html  # the post's script tag is text, escaped
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; RedNote &amp; &lt;b&gt;more&lt;/b&gt;" in html
    # nothing to fetch: the only URLs are links to the posts
    assert not re.search(r"""(src|url\()\s*=?\s*['"]?(https?:)?//""", html)
    linked = {f"https://{src}.example/{n}" for n, src, *_, s, _l in POSTS if s is not None and s is not NEU}
    assert set(re.findall(r"href='([^']*)'", html)) == linked  # the top 5 of each side: all but b1
    positive = html[html.index("id='positive'") : html.index("id='negative'")]
    negative = html[html.index("id='negative'") : html.index("id='alerts'")]
    assert positive.index("m5@example") < positive.index("m1@example")  # 0.94 before 0.75
    assert negative.index("b2@example") < negative.index("m3@example")
    assert "#xiaohongshu" in html and "Language mix" in html
    if has_alerts:
        assert "volume spike" in html[html.index("id='alerts'") :]


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium: `apt-get install chromium` (make test installs it "
                    "when run as root)")
def test_html_report_charts_render_in_headless_chromium(seeded: psycopg.Connection, db_url: str,
                                                         tmp_path: Path) -> None:
    """Chromium loads the page from disk and takes a screenshot; the chart counts as drawn when the
    screenshot holds the chart's bar and line colours (used nowhere else on the page) over an area
    the size of the chart. --dump-dom shows the inline SVG survived parsing with its drawing."""
    page = tmp_path / "report.html"
    assert report(db_url, "--html", str(page), "--compare", "source").returncode == 0
    shot = tmp_path / "shot.png"
    chrome = [_chromium() or "", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1400"]
    subprocess.run([*chrome, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=90, check=True)
    bars, width, height = _colour_pixels(shot, BAR_COLOR)
    assert bars > 500 and width > 300 and height > 150, (bars, width, height)
    assert _colour_pixels(shot, LINE_COLOR)[0] > 50
    dom = subprocess.run([*chrome, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90,
                         check=True).stdout
    assert re.search(r"<svg[^>]*class=\"chart\"", dom) and dom.count("<path") > 10
