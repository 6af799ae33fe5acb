"""Secrets masked everywhere: `redact` on its own, the log-record factory, `finish_run`, and a real
`murmur crawl bluesky` against a server whose login error echoes the request (password included)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg
import pytest

from murmur import redact as redaction
from murmur.config import load_settings
from murmur.redact import MASK, redact, redact_tree, secret_values
from murmur.store.runs import finish_run, start_run
from tests.fakeapi import FakeAPI, Reply, Request
from tests.test_crawl_bluesky import HANDLE, crawl, last_run

SECRET = 'p@ss w/rd"ü\\1'  # every character an encoding changes


@pytest.fixture
def installed() -> Iterator[None]:
    yield
    redaction.uninstall()


# --- redact ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
        quote(SECRET, safe="").lower(),  # lower-case hex, as some servers echo (the letters are lower already)
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        repr(SECRET)[1:-1],
    ],
)
def test_a_secret_is_masked_as_written_url_encoded_and_json_escaped(form: str) -> None:
    text = f"login refused: {{\"password\": \"{form}\"}} (try again)"
    assert redact(text, [SECRET]) == f'login refused: {{"password": "{MASK}"}} (try again)'


def test_overlapping_secrets_mask_both_whole() -> None:
    assert redact("xx abcdefghi yy", ["abcdef", "defghi"]) == f"xx {MASK} yy"
    assert redact("key abcd-efgh and abcd", ["abcd", "abcd-efgh"]) == f"key {MASK} and {MASK}"
    assert redact("aaaaaa", ["aaaa"]) == MASK  # overlapping occurrences of one secret


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    assert redact("a bc abc abcd", ["a", "bc", "abc", ""]) == "a bc abc abcd"
    settings: Any = SimpleNamespace(
        database=SimpleNamespace(url=None), alerts=SimpleNamespace(webhook_url=None),
        sources={"x": SimpleNamespace(credentials={"token": "abc", "secret": "long-enough"})},
    )
    assert secret_values(settings, environ={"MURMUR_X_TOKEN": "xyz"}) == ("long-enough",)


def test_redact_tree_masks_keys_and_nested_values() -> None:
    tree = {"murmur/errors/hunter2hunter2": 1, "why": ["no", {"said": "pw=hunter2hunter2"}], "n": 3}
    assert redact_tree(tree, ["hunter2hunter2"]) == {"murmur/errors/***": 1, "why": ["no", {"said": "pw=***"}], "n": 3}


# --- secret_values ---------------------------------------------------------------------------------


def test_secret_values_reads_the_database_password_the_webhook_and_credentials() -> None:
    token = "XXXXXXXXXXXXXXXXXXXXXXXX"
    webhook = f"https://hooks.example/services/T0/B0/{token}"
    env = {
        "MURMUR_DATABASE_URL": "postgresql://murmur:s3cr%40t-db@db.example:5432/murmur",
        "MURMUR_ALERTS__WEBHOOK_URL": webhook,
        "MURMUR_BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
        "MURMUR_YOUTUBE_API_KEY": "AIza-not-a-real-key",
        "MURMUR_MODEL_NAME": "/models/not-a-secret",
    }
    secrets = secret_values(load_settings(environ=env), environ=env)
    assert {"s3cr@t-db", webhook, "/services/T0/B0/" + token, token, "abcd-efgh-ijkl-mnop",
            "AIza-not-a-real-key"} <= set(secrets)
    assert "/models/not-a-secret" not in secrets
    assert list(secrets) == sorted(secrets, key=len, reverse=True)  # longest first


@pytest.mark.parametrize(
    ("url", "password"),
    [
        (r"host=db.example password='it\'s x' dbname=murmur", "it's x"),
        ("host=db.example password=plain-pass dbname=murmur", "plain-pass"),
        ("postgresql://db.example/murmur?password=query-pass&sslmode=require", "query-pass"),
    ],
)
def test_secret_values_reads_libpq_and_query_passwords(url: str, password: str) -> None:
    settings = load_settings(environ={"MURMUR_DATABASE_URL": url})
    assert password in secret_values(settings, environ={})


def test_credentials_on_source_settings_are_secrets() -> None:
    settings: Any = SimpleNamespace(
        database=SimpleNamespace(url=None), alerts=SimpleNamespace(webhook_url=None),
        sources={"reddit": SimpleNamespace(credentials={"client_secret": "reddit-client-secret-1"}),
                 "rss": SimpleNamespace()},  # a source without the attribute at all
    )
    assert secret_values(settings, environ={}) == ("reddit-client-secret-1",)


# --- the log and job_runs ----------------------------------------------------------------------------


def test_every_log_record_is_masked_even_on_handlers_added_later(installed: None) -> None:
    redaction.install(["hunter2hunter2"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # added after install(), as Scrapy's or a file handler would be
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("murmur.test_redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("server said %s", {"password": "hunter2hunter2"})
        try:
            raise RuntimeError("echo: hunter2hunter2")
        except RuntimeError:
            log.exception("login failed for %s", "hunter2hunter2")
        log.warning("bad %s %s", "format")  # a broken record still reaches logging's own error path
    finally:
        log.removeHandler(handler)
        log.propagate = True
    out = stream.getvalue()
    assert "hunter2hunter2" not in out
    assert "server said {'password': '***'}" in out and "RuntimeError: echo: ***" in out
    assert "login failed for ***" in out

    redaction.uninstall()
    assert redaction.active() == ()
    assert logging.getLogRecordFactory() is logging.LogRecord


def test_install_twice_replaces_the_secrets_without_stacking(installed: None) -> None:
    redaction.install(["first-secret"])
    factory = logging.getLogRecordFactory()
    redaction.install(["second-secret"])
    assert logging.getLogRecordFactory() is factory and redaction.active() == ("second-secret",)


def test_finish_run_masks_the_error_and_the_stats(conn: psycopg.Connection, installed: None) -> None:
    redaction.install(["abcd-efgh-ijkl-mnop"])
    run_id = start_run(conn, "crawl:bluesky")
    finish_run(conn, run_id, status="failed", stats={"murmur/last_error": 'said "abcd-efgh-ijkl-mnop"'},
               error='refused: {"password": "abcd-efgh-ijkl-mnop"}')
    status, stats, error = last_run(conn)
    assert status == "failed" and error == 'refused: {"password": "***"}'
    assert stats == {"murmur/last_error": 'said "***"'}


# --- a real crawl against a server that echoes the password ------------------------------------------


def echo_login(request: Request) -> Reply:
    """What some servers do: the refused request, verbatim, in the error message."""
    sent = request.body.decode("utf-8")
    return Reply.json({"error": "AuthenticationRequired", "message": f"Invalid identifier or password: {sent}"},
                      status=401)


@pytest.mark.parametrize("password", ["abcd-efgh-ijkl-mnop", 'an "account" pass/word'])
def test_a_server_echoing_the_password_never_gets_it_into_the_log_or_job_runs(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, password: str
) -> None:
    with FakeAPI() as api:
        api.route("/xrpc/com.atproto.server.createSession", echo_login, method="POST")
        result = crawl(tmp_path, db_url, api, MURMUR_BLUESKY_HANDLE=HANDLE, MURMUR_BLUESKY_APP_PASSWORD=password)
    assert result.returncode == 1, result.stderr
    (login,) = api.requests
    assert login.json()["password"] == password  # the server did get it, and echoed it back
    output = result.stdout + result.stderr
    escaped = json.dumps(password)[1:-1]
    assert password not in output and escaped not in output
    assert "refused the login" in result.stderr and MASK in result.stderr  # the echo was logged, masked
    status, stats, error = last_run(conn)
    stored = json.dumps(stats, ensure_ascii=False) + (error or "")
    assert status == "failed" and password not in stored and escaped not in stored and MASK in (error or "")
