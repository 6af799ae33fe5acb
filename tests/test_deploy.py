"""deploy/: the Grafana dashboard imports as it is and every query in it runs against the views; the
systemd unit and the example environment file agree with the code."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from murmur.config import load_settings
from murmur.scheduler.service import Service
from murmur.store.trends import aggregate
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
VIEWS = ("trend_daily", "trend_hourly", "top_posts", "source_health")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries(board: dict[str, Any]) -> dict[str, str]:
    """Panel or variable title -> its SQL."""
    found = {p["title"]: t["rawSql"] for p in board["panels"] for t in p["targets"]}
    found |= {f"${v['name']}": v["query"] for v in board["templating"]["list"]}
    return found


def test_the_dashboard_is_importable_json_with_a_postgresql_data_source_input() -> None:
    board = dashboard()
    (source,) = board["__inputs"]
    assert source["type"] == "datasource" and source["pluginId"] == "grafana-postgresql-datasource"
    wanted = {"type": source["pluginId"], "uid": "${" + source["name"] + "}"}
    assert board["uid"] and board["title"] and board["id"] is None  # a new dashboard, not a copy of one
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == wanted and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == wanted and target["rawQuery"] and target["rawSql"].strip()
            assert target["format"] == ("table" if panel["type"] == "table" else "time_series")
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == wanted
    every_sql = " ".join(queries(board).values())
    assert all(re.search(rf"\bFROM {view}\b", every_sql) for view in VIEWS)


def grafana_sql(sql: str, values: dict[str, list[str]]) -> str:
    """What Grafana's PostgreSQL data source sends for `sql`: the time macro (here over all time), a
    multi-value variable as a list of quoted literals, a single-value one as its text with quotes doubled."""
    multi = {v["name"]: v["multi"] for v in dashboard()["templating"]["list"]}
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", r"\1 BETWEEN '2000-01-01' AND '2100-01-01'", sql)
    for name, chosen in values.items():
        escaped = [v.replace("'", "''") for v in chosen]
        sql = sql.replace(f"${name}", ",".join(f"'{v}'" for v in escaped) if multi[name] else escaped[0])
    assert "$" not in sql, f"a macro or variable the test does not know: {sql}"
    return sql


def test_every_dashboard_query_runs_against_the_views_and_finds_the_data(conn: psycopg.Connection) -> None:
    missing = [v for v in VIEWS if conn.execute("SELECT to_regclass(%s)", (v,)).fetchone() == (None,)]
    if missing:
        pytest.skip(f"the views {', '.join(missing)} do not exist yet (migration 0003_trends_alerts.sql)")
    rows = [("mastodon", "m1", "en", "{RedNote}", 5, "positive", 0.1, 0.2, 0.7),
            ("mastodon", "m2", "zh", "{小红书}", 0, "negative", 0.8, 0.1, 0.1),
            ("lemmy", "l1", "en", "{RedNote,小红书}", 12, "neutral", 0.2, 0.6, 0.2)]
    for source, source_id, lang, terms, likes, label, neg, neu, pos in rows:
        post = conn.execute(
            "INSERT INTO posts (source, source_id, url, author, text, lang, created_at, terms, likes) "
            "VALUES (%s, %s, %s, 'someone', 'a post', %s, now() - interval '2 hours', %s, %s) RETURNING id",
            (source, source_id, f"https://example.org/{source_id}", lang, terms, likes),
        ).fetchone()
        conn.execute("INSERT INTO sentiment_scores (post_id, model, label, negative, neutral, positive) "
                     "VALUES (%s, 'm@1', %s, %s, %s, %s)", (post[0], label, neg, neu, pos))  # type: ignore[index]
    conn.execute("INSERT INTO job_runs (job, finished_at, status) VALUES ('crawl:mastodon', now(), 'ok')")
    conn.commit()
    aggregate(conn)
    conn.execute("INSERT INTO alerts (kind, bucket_size, bucket_start, source, term, model, value, baseline, score) "
                 "VALUES ('volume_spike', 'hour', date_trunc('hour', now()), 'mastodon', 'RedNote', 'm@1', 9, 1, 6)")
    conn.commit()

    board = dashboard()
    sql = queries(board)
    values = {"model": [conn.execute(sql["$model"]).fetchone()[0]]}  # type: ignore[index]
    for name in ("source", "term", "lang"):  # "All" of a multi-value variable: every value it offers
        values[name] = [r[0] for r in conn.execute(sql[f"${name}"])]
    assert values == {"model": ["m@1"], "source": ["lemmy", "mastodon"], "term": ["RedNote", "小红书"],
                      "lang": ["en", "zh"]}
    for title, query in sql.items():
        if title.startswith("$"):
            continue
        cur = conn.execute(grafana_sql(query, values))
        columns = [d.name for d in cur.description or []]
        assert cur.fetchall(), f"panel {title!r} found nothing"
        panel = next(p for p in board["panels"] if p["title"] == title)
        if panel["targets"][0]["format"] == "time_series":
            assert columns[0] == "time", title
    # One filter, checked for its effect: a single source.
    one = grafana_sql(sql["Posts per day, by term"], values | {"source": ["lemmy"]})
    assert {r[1] for r in conn.execute(one)} == {"RedNote", "小红书"}  # lemmy's one post matched both terms


def env_file(*, commented: bool) -> dict[str, str]:
    """NAME -> value of the example's lines (with those commented out, when `commented`)."""
    names = {}
    for line in (DEPLOY / "murmur.env.example").read_text().splitlines():
        match = re.match(r"^(#?)(MURMUR_[A-Z0-9_]+)=(.*)$", line.strip())
        if match and (commented or not match.group(1)):
            names[match.group(2)] = match.group(3)
    return names


def test_the_example_environment_loads_and_names_only_variables_murmur_reads() -> None:
    names = env_file(commented=True)
    settings = load_settings(environ=env_file(commented=False))
    assert settings.service.http == "127.0.0.1:9464" and settings.database.url
    del names["MURMUR_CONFIG"]  # a file the operator writes
    assert load_settings(environ=names).schedule.score_interval == 0  # the commented-out lines are valid too
    code = " ".join(p.read_text(encoding="utf-8") for folder in ("crawler", "sentiment", "store", "config", "murmur")
                    for p in (REPO / folder).rglob("*.py"))
    for name in names:
        assert "__" in name or name in code, f"{name} in murmur.env.example is read nowhere"
    assert {"MURMUR_DATABASE_URL", "MURMUR_BLUESKY_APP_PASSWORD", "MURMUR_REDDIT_CLIENT_SECRET",
            "MURMUR_YOUTUBE_API_KEY"} <= set(names)


def test_the_systemd_unit_runs_the_service_restarted_on_failure_as_its_own_user(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "murmur.service")
    service = unit["Service"]
    assert service["Type"] == "simple" and service["Restart"] == "on-failure"
    assert service["ExecStart"].endswith("/murmur serve") and service["EnvironmentFile"] == "/etc/murmur/murmur.env"
    assert service["User"] not in ("", "root") and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["CapabilityBoundingSet"] == ""
    # systemd must wait longer than the service gives a crawl child, and signal murmur alone.
    assert int(service["TimeoutStopSec"].removesuffix("s")) > Service.child_grace
    assert service["KillMode"] == "mixed"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    copy = tmp_path / "murmur.service"  # verify checks that ExecStart exists: point it at this checkout's
    copy.write_text((DEPLOY / "murmur.service").read_text().replace("/opt/murmur/.venv", str(REPO / ".venv")))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
