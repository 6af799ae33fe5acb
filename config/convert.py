"""The config's converters: each takes (key, value) and returns the typed value or raises ConfigError
naming the key, the value and what is allowed. settings.py says which key takes which."""

from __future__ import annotations

import re
from typing import Any

from murmur.errors import EXIT_USAGE, MurmurError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(MurmurError, ValueError):
    """A setting that cannot be used; the message names the key, the value and the fix."""

    exit_code = EXIT_USAGE


# --- converters: each takes (key, value) and returns the typed value or raises ConfigError ---


class _BadValue(ConfigError):
    """A value a converter refused; keeps its parts so `load_settings` can name the environment
    variable the value came from."""

    def __init__(self, key: str, shown: Any, allowed: str) -> None:
        super().__init__(f"config key '{key}' has value {shown!r}; {allowed}")
        self.key, self.shown, self.allowed = key, shown, allowed


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return _BadValue(key, value, allowed)


# An environment variable is text, so a boolean there is one of these words (any case); in a TOML
# file it is a TOML boolean, true or false: a quoted "no" or a 1 there is refused with the fix.
_ENV_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail(key, value, "use true or false, without quotes (an environment variable also takes 1, 0, yes or no)")


def _str(key: str, value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _fail(key, value, "use a non-empty string")


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    raise _fail(key, value, "use a whole number above 0")


def _choice(*allowed: str) -> Any:
    def convert(key: str, value: Any) -> str:
        text = _str(key, value).lower()
        if text in allowed:
            return text
        raise _fail(key, value, "use " + ", ".join(f'"{a}"' for a in allowed))

    return convert


def _non_negative_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _fail(key, value, "use a whole number, 0 or more")


def _non_negative_float(key: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number >= 0:
        return number
    raise _fail(key, value, "use a number of seconds, 0 or more")


def parse_duration(key: str, value: Any) -> float:
    """`900`, `"15m"`, `"1h"`, `"30s"`, `"1d"` -> seconds (above 0)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match and float(match.group(1)) > 0:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise _fail(key, value, 'use seconds above 0 or a duration such as "30s", "15m", "1h", "1d"')


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # from an environment variable: comma-separated
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(v.strip() for v in value)
    raise _fail(key, value, 'use a list of non-empty strings, e.g. ["a", "b"]')


def _url(key: str, value: Any) -> str:
    text = _str(key, value)
    if not re.match(r"^https?://[^/\s]+", text):
        raise _fail(key, value, "use an http:// or https:// URL, e.g. https://mastodon.social")
    return text.rstrip("/")


def _url_list(key: str, value: Any) -> tuple[str, ...]:
    return tuple(_url(f"{key}[{i}]", v) for i, v in enumerate(_str_list(key, value)))


def _ws_url_list(key: str, value: Any) -> tuple[str, ...]:
    """Websocket base URLs (a stream source's instances): ws:// or wss://, no trailing slash."""
    urls = []
    for i, item in enumerate(_str_list(key, value)):
        if not re.match(r"^wss?://[^/\s]+", item):
            raise _fail(f"{key}[{i}]", item, "use a ws:// or wss:// URL, e.g. wss://jetstream1.us-east.bsky.network")
        urls.append(item.rstrip("/"))
    return tuple(urls)


def _device(key: str, value: Any) -> str:
    text = _str(key, value).lower()
    if re.match(r"^(auto|cpu|mps|cuda(:\d+)?)$", text):
        return text
    raise _fail(key, value, 'use "auto", "cpu", "cuda", "cuda:N" or "mps"')


def _languages(key: str, value: Any) -> tuple[str, ...]:
    codes = _str_list(key, value)
    for code in codes:
        if code != "*" and not re.match(r"^[a-z]{2,3}$", code):
            raise _fail(key, value, 'use ISO 639-1 codes such as ["en", "zh"], or ["*"] for every language')
    return codes


def _routes(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(key, value, 'use a table of language = "model", e.g. [model.routes] ja = "/models/ja"')
    routes = {}
    for lang, ref in value.items():
        _languages(f"{key}.{lang}", [lang])
        routes[lang] = _str(f"{key}.{lang}", ref)
    return routes


def _database_url(key: str, value: Any) -> str:
    text = _str(key, value)
    if not text.startswith(("postgresql://", "postgres://")) and "=" not in text:
        raise _fail(key, "<hidden>", "use a postgresql:// URL or a libpq connection string")
    return text


def _score_interval(key: str, value: Any) -> float:
    """A duration, or "continuous" (also 0): the service scores new posts as they arrive."""
    if value == 0 or (isinstance(value, str) and value.strip().lower() == "continuous"):
        return 0.0
    try:
        return parse_duration(key, value)
    except ConfigError:
        raise _fail(key, value, 'use "continuous" or a duration such as "30s", "2m", "1h"') from None


def _http_address(key: str, value: Any) -> str | None:
    """An address "HOST:PORT" (port 0: any free one), or "" / "off" / false for no HTTP endpoint."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("", "off", "false", "no")):
        return None
    if isinstance(value, str) and re.match(r"^(\[[0-9A-Fa-f:.]+\]|[\w.-]+):\d{1,5}$", value.strip()) \
            and int(value.strip().rsplit(":", 1)[1]) <= 65535:
        return value.strip()
    raise _fail(key, value, 'use "HOST:PORT", e.g. "127.0.0.1:9464", or "" for no HTTP endpoint')


def _token(key: str, value: Any) -> str | None:
    """The dashboard's bearer token, or "" for none. The value is never echoed (it is a secret)."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # an environment value read as TOML: a token of digits only
    if isinstance(value, str) and re.fullmatch(r"[\x21-\x7e]{16,512}", value.strip()):
        return value.strip()
    raise ConfigError(f"config key '{key}' is not a usable token; use 16 to 512 printable ASCII characters "
                      "without spaces, e.g. MURMUR_SERVICE__TOKEN=$(openssl rand -hex 24)")


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and re.match(r"^\s*\d+(\.\d+)?\s*$", value) and float(value) > 0:
        return float(value)
    raise _fail(key, value, "use a number above 0, e.g. 4.0")


def _webhook_url(key: str, value: Any) -> str | None:
    """An http(s) URL kept exactly as given (a trailing slash can matter to a webhook), or "" for none.
    The value is never echoed: webhook URLs often carry their secret token."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, str) and re.match(r"^https?://[^/\s]+\S*$", value.strip()):
        return value.strip()
    raise _fail(key, "<hidden>", 'use an http:// or https:// URL (or MURMUR_ALERTS__WEBHOOK_URL), or "" for none')


def _baseline_days(key: str, value: Any) -> int:
    days = _positive_int(key, value)
    if days > 366:
        raise _fail(key, value, "use a whole number of days from 1 to 366")
    return days
