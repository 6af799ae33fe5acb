"""Secrets masked everywhere: in every log line and in what `job_runs` keeps.

Platform answers are untrusted text: a server whose login error echoes the request puts the app
password into an error message, and from there into the log and `job_runs.error`. So masking happens
where text leaves the process, not where it is made: `install()` once at start (the CLI, after the
settings load), then every log record and every `finish_run` is masked with the secrets it registered.

A leaf module (standard library only), so the store and the config layer can use it without reaching up.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

if TYPE_CHECKING:
    from murmur.config import Settings

MASK = "***"
# Shorter values are not masked: hiding "abc" in every line would destroy the log, and a secret that
# short protects nothing anyway.
MIN_LENGTH = 4
# Webhook path segments at least this long are tokens (Slack's B0../XXXX, Discord's token); shorter
# ones ("services", "api", "webhooks") are words that appear in ordinary lines.
_TOKEN_SEGMENT = 16
# Credentials murmur's sources read from the environment (MURMUR_BLUESKY_APP_PASSWORD,
# MURMUR_REDDIT_CLIENT_SECRET, MURMUR_YOUTUBE_API_KEY, MURMUR_*_ACCESS_TOKEN, ...), and libpq's own.
_SECRET_ENV = re.compile(r"^(MURMUR_\w*(PASSWORD|SECRET|TOKEN|KEY)|PGPASSWORD)$")
_LIBPQ_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")

_lock = threading.Lock()
_active: tuple[str, ...] = ()
_previous_factory: Callable[..., logging.LogRecord] | None = None


def secret_values(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every configured secret: the database password, the alert webhook (whole and its token part),
    each source's credentials, and credential variables in the environment; longest first."""
    found: list[str] = []
    if settings.database.url:
        found += _database_passwords(settings.database.url)
    if settings.alerts.webhook_url:
        found += _url_secrets(settings.alerts.webhook_url)
    token = getattr(getattr(settings, "service", None), "token", None)  # the dashboard's (config/settings.py)
    if token:
        found.append(token)
    for source in settings.sources.values():
        credentials = getattr(source, "credentials", {}) or {}
        found += [str(v) for v in credentials.values() if v]
    env = os.environ if environ is None else environ
    found += [value for name, value in env.items() if _SECRET_ENV.match(name) and value]
    return _normalise(found)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret, and its URL-encoded and JSON-escaped forms, replaced by `***`.

    Where two secrets overlap in the text, the union of both is masked, so no tail of either is left.
    """
    if not text:
        return text
    spans: list[tuple[int, int]] = []
    for form in _forms(_normalise(secrets)):
        start = text.find(form)
        while start >= 0:
            spans.append((start, start + len(form)))
            start = text.find(form, start + 1)
    if not spans:
        return text
    spans.sort()
    out, pos, merged_start, merged_end = [], 0, spans[0][0], spans[0][1]
    for start, end in spans[1:] + [(len(text) + 1, len(text) + 1)]:
        if start <= merged_end:
            merged_end = max(merged_end, end)
            continue
        out += [text[pos:merged_start], MASK]
        pos, merged_start, merged_end = merged_end, start, end
    out.append(text[pos:])
    return "".join(out)


def redact_tree(value: Any, secrets: Iterable[str]) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string in it, keys included, redacted."""
    secrets = _normalise(secrets)
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_tree(k, secrets): redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v, secrets) for v in value]
    return value


def active() -> tuple[str, ...]:
    """The secrets the last `install()` registered (empty before): for code far from the settings,
    such as `finish_run`."""
    return _active


def install(secrets: Iterable[str]) -> None:
    """Mask `secrets` in every log record from now on; safe to call again (it replaces the set).

    A log-record factory, not a handler filter: the factory sees every record any logger creates,
    whichever handlers exist now or are added later (Scrapy's, pytest's, a file handler), so no handler
    can be missed. The message is formatted there and then (only while there are secrets), and a
    traceback or stack is formatted and masked into `exc_text`/`stack_info`, which formatters print as is.
    """
    global _active, _previous_factory
    with _lock:
        _active = _normalise(secrets)
        if _previous_factory is None:
            _previous_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_make_record)


def uninstall() -> None:
    """Forget the secrets and put the previous record factory back (for tests)."""
    global _active, _previous_factory
    with _lock:
        _active = ()
        if _previous_factory is not None:
            logging.setLogRecordFactory(_previous_factory)
            _previous_factory = None


def redact_record(record: logging.LogRecord, secrets: tuple[str, ...]) -> logging.LogRecord:
    """Mask a record in place: its message (arguments merged in), traceback and stack."""
    if not secrets:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it for the handler to report as logging does
        return record
    record.msg, record.args = redact(message, secrets), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text, secrets)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)
    return record


def _make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    factory = _previous_factory or logging.LogRecord
    return redact_record(factory(*args, **kwargs), _active)


def _database_passwords(url: str) -> list[str]:
    """The password in a postgresql:// URL (userinfo or ?password=) or a libpq `password=` string."""
    found: list[str] = []
    if url.startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(url)
            if parts.password:
                found.append(unquote(parts.password))
        except ValueError:  # a malformed port and the like: the query may still name a password
            pass
        query = url.split("?", 1)[1] if "?" in url else ""
        found += [v for k, v in parse_qsl(query) if k == "password" and v]
        return found
    for match in _LIBPQ_PASSWORD.finditer(url):
        value = match.group(1)
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.append(value)
    return found


def _url_secrets(url: str) -> list[str]:
    """A URL that is a secret as a whole (a webhook), and its token parts: path with query, query
    values, long path segments, the userinfo password."""
    found = [url, url.rstrip("/")]
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if tail.strip("/"):
        found += [tail, tail.rstrip("/")]
    found += [v for _, v in parse_qsl(parts.query) if v]
    found += [s for s in parts.path.split("/") if len(s) >= _TOKEN_SEGMENT]
    if parts.password:
        found.append(unquote(parts.password))
    return found


def _normalise(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct values of at least MIN_LENGTH characters, longest first."""
    unique = {str(v) for v in values if v and len(str(v)) >= MIN_LENGTH}
    return tuple(sorted(unique, key=lambda v: (-len(v), v)))


@functools.lru_cache(maxsize=32)
def _forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Each secret as written, URL-encoded (strict, path-safe, form; upper- and lower-case hex),
    JSON-escaped (ASCII and not) and as Python's repr escapes it."""
    forms: set[str] = set()
    for secret in secrets:
        candidates = [
            secret,
            quote(secret, safe=""),
            quote(secret),
            quote_plus(secret),
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            repr(secret)[1:-1],
        ]
        for form in candidates:
            forms.add(form)
            if "%" in form:
                forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form))
    return tuple(sorted((f for f in forms if len(f) >= MIN_LENGTH), key=lambda f: (-len(f), f)))
