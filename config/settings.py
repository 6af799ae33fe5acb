"""Typed settings: `default.toml`, then a user file, then `MURMUR_*` variables.

Every value is checked once, at start; a bad one stops the command with the key, the value
and what is allowed (`ConfigError`), never a traceback from deep inside a job.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from murmur.errors import MurmurError

# Sources murmur has a spider for. A key under [sources] that is not here is a typo or a
# source from a newer murmur; either way the user is told which names exist.
KNOWN_SOURCES = (
    "mastodon", "bluesky", "reddit", "lemmy", "hackernews", "youtube", "rss",
    "rednote", "tiktok", "lemon8", "threads", "instagram",
)

# Environment variables with a name of their own (the issues fix these names). Any other key
# is reachable as MURMUR_<SECTION>__<KEY>, e.g. MURMUR_SOURCES__MASTODON__MAX_PAGES=3.
ENV_ALIASES = {
    "MURMUR_DATABASE_URL": ("database", "url"),
    "MURMUR_DATA_DIR": ("database", "data_dir"),
    "MURMUR_MODEL_NAME": ("model", "name"),
    "MURMUR_MODEL_DEVICE": ("model", "device"),
    "MURMUR_MODEL_QUANTIZE": ("model", "quantize"),
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(MurmurError, ValueError):
    """A setting that cannot be used; the message names the key, the value and the fix."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str | None = None  # None: the embedded PostgreSQL
    data_dir: Path | None = None  # where the embedded server keeps its files


@dataclass(frozen=True)
class CrawlerSettings:
    user_agent: str
    obey_robots: bool = True
    autothrottle: bool = True
    timeout: float = 20.0


@dataclass(frozen=True)
class SourceSettings:
    name: str
    enabled: bool = True
    interval: float = 900.0
    base_url: str | None = None
    instances: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    max_pages: int = 10
    download_delay: float = 1.0
    concurrency: int = 1
    # Keys only some sources take (see _SOURCE_ONLY_KEYS): feed URLs (rss) or URIs (bluesky),
    # accounts to follow (bluesky handles), subreddits, and whether to fetch comments too.
    feeds: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    subreddits: tuple[str, ...] = ()
    comments: bool = False
    # Page URLs to start from (rednote, tiktok, lemon8): any http(s) host, so saved pages can stand in.
    urls: tuple[str, ...] = ()
    # Follow links to this platform found in other sources' posts (rednote, tiktok, lemon8, threads).
    follow_links: bool = True


@dataclass(frozen=True)
class ModelSettings:
    name: str = "murmur-e5-sentiment"
    device: str = "auto"
    max_tokens: int = 0  # padded tokens per batch; 0: by device (scorer.default_max_tokens)
    threads: int = 0  # torch CPU threads; 0: torch's default (one per core)
    # int8 on the CPU: "auto" where the model card records int8 within 0.5 points of float32.
    quantize: str = "auto"
    # Languages `name` scores: empty means the languages its model card declares ("*": all).
    languages: tuple[str, ...] = ()
    # Language -> another model for it, e.g. {"ja": "/models/japanese-sentiment"}.
    routes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleSettings:
    score_interval: float = 120.0  # 0: continuous (config "continuous"): score as posts arrive
    aggregate_interval: float = 300.0


@dataclass(frozen=True)
class ServiceSettings:
    http: str | None = None  # "HOST:PORT" of /healthz and /metrics; None: no HTTP endpoint


@dataclass(frozen=True)
class AlertSettings:
    """What the detector after each aggregation flags, and where it sends it (murmur/alerts/)."""

    enabled: bool = True
    webhook_url: str | None = None  # None: alerts are stored and logged, not sent
    spike_threshold: float = 5.0  # robust z of a bucket's posts above the same hour of previous days
    shift_threshold: float = 4.0  # z of a bucket's mean polarity against the trailing days'
    min_posts: int = 10  # a bucket needs this many posts to be judged (and a shift's baseline too)
    baseline_days: int = 7  # the trailing window, in days
    timeout: float = 10.0  # seconds per webhook attempt
    retries: int = 3  # webhook attempts after the first
    backoff: float = 1.0  # seconds before the first retry, doubled before each next one


@dataclass(frozen=True)
class Settings:
    terms: tuple[str, ...]
    database: DatabaseSettings
    crawler: CrawlerSettings
    sources: dict[str, SourceSettings]
    model: ModelSettings
    schedule: ScheduleSettings
    service: ServiceSettings = field(default_factory=ServiceSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    files: tuple[str, ...] = field(default=())  # the TOML files read, for `murmur status`

    def enabled_sources(self) -> list[SourceSettings]:
        return [s for s in self.sources.values() if s.enabled]


# --- converters: each takes (key, value) and returns the typed value or raises ConfigError ---


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"config key '{key}' has value {value!r}; {allowed}")


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise _fail(key, value, "use true or false")


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


# (key, converter) per section; the order is the order `murmur config` would print them in.
_SECTIONS: dict[str, dict[str, Any]] = {
    "database": {"url": _database_url, "data_dir": lambda k, v: Path(_str(k, v)).expanduser()},
    "crawler": {
        "user_agent": _str,
        "obey_robots": _bool,
        "autothrottle": _bool,
        "timeout": _non_negative_float,
    },
    "model": {
        "name": _str,
        "device": _device,
        "max_tokens": _non_negative_int,
        "threads": _non_negative_int,
        "quantize": _choice("auto", "int8", "none"),
        "languages": _languages,
        "routes": _routes,
    },
    "schedule": {"score_interval": _score_interval, "aggregate_interval": parse_duration},
    "service": {"http": _http_address},
    "alerts": {
        "enabled": _bool,
        "webhook_url": _webhook_url,
        "spike_threshold": _positive_number,
        "shift_threshold": _positive_number,
        "min_posts": _positive_int,
        "baseline_days": _baseline_days,
        "timeout": parse_duration,
        "retries": _non_negative_int,
        "backoff": _non_negative_float,
    },
}
_SOURCE_KEYS: dict[str, Any] = {
    "enabled": _bool,
    "interval": parse_duration,
    "base_url": _url,
    "instances": _url_list,
    "tags": _str_list,
    "max_pages": _positive_int,
    "download_delay": _non_negative_float,
    "concurrency": _positive_int,
}


# Keys that only the named sources take; any other source refuses them as unknown keys.
_SOURCE_ONLY_KEYS: dict[str, dict[str, Any]] = {
    "bluesky": {"accounts": _str_list, "feeds": _str_list},
    "reddit": {"subreddits": _str_list, "comments": _bool},
    "youtube": {"comments": _bool},
    "rss": {"feeds": _url_list},
    "rednote": {"urls": _url_list, "follow_links": _bool},
    "tiktok": {"urls": _url_list, "follow_links": _bool},
    "lemon8": {"urls": _url_list, "follow_links": _bool},
    "threads": {"urls": _url_list, "follow_links": _bool},
}


def source_keys(name: str) -> dict[str, Any]:
    """(key -> converter) a `[sources.<name>]` table accepts."""
    return {**_SOURCE_KEYS, **_SOURCE_ONLY_KEYS.get(name, {})}


def _convert_section(prefix: str, raw: Any, spec: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(prefix, raw, f"use a [{prefix}] table")
    out = {}
    for key, value in raw.items():
        if key not in spec:
            raise ConfigError(
                f"unknown config key '{prefix}.{key}'; known keys under [{prefix}]: {', '.join(spec)}"
            )
        out[key] = spec[key](f"{prefix}.{key}", value)
    return out


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path given to --config") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def _env_value(text: str) -> Any:
    """An environment value read as a TOML value when it is one (`false`, `3`, `["a"]`), else text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ENV_ALIASES:
            path: tuple[str, ...] = ENV_ALIASES[name]
            parsed: Any = value  # aliases are plain strings: a URL is never TOML-parsed
        elif name.startswith("MURMUR_") and "__" in name:
            path = tuple(part.lower() for part in name[len("MURMUR_") :].split("__"))
            parsed = _env_value(value)
        else:
            continue  # MURMUR_CONFIG, credentials and test settings are read where they are used
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = parsed
    return tree


def default_toml_path() -> Path:
    return Path(str(resources.files("murmur.config").joinpath("default.toml")))


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Load and check the settings: defaults, the user file, the environment, then `overrides`."""
    env = dict(os.environ if environ is None else environ)
    files = [default_toml_path()]
    config_file = config_file or env.get("MURMUR_CONFIG") or None
    if config_file:
        files.append(Path(config_file).expanduser())
    raw: dict[str, Any] = {}
    for path in files:
        raw = _deep_merge(raw, _read_toml(path))
    raw = _deep_merge(raw, _env_overrides(env))
    if overrides:
        raw = _deep_merge(raw, overrides)
    settings = build_settings(raw)
    return Settings(**{**settings.__dict__, "files": tuple(str(f) for f in files)})


def build_settings(raw: dict[str, Any]) -> Settings:
    """Check a merged settings tree and turn it into `Settings`."""
    known_top = {"terms", "sources", *_SECTIONS}
    for key in raw:
        if key not in known_top:
            raise ConfigError(f"unknown config key '{key}'; top-level keys are: {', '.join(sorted(known_top))}")
    terms = _str_list("terms", raw.get("terms", []))
    if not terms:
        raise ConfigError("config key 'terms' is empty; list at least one term to track, e.g. terms = [\"RedNote\"]")
    sections = {name: _convert_section(name, raw.get(name, {}), spec) for name, spec in _SECTIONS.items()}
    if "user_agent" not in sections["crawler"]:
        raise ConfigError("config key 'crawler.user_agent' is missing; set an identifying user agent")

    raw_sources = raw.get("sources", {})
    if not isinstance(raw_sources, dict):
        raise _fail("sources", raw_sources, "use [sources.<name>] tables")
    sources: dict[str, SourceSettings] = {}
    for name, table in raw_sources.items():
        if name not in KNOWN_SOURCES:
            raise ConfigError(
                f"unknown source 'sources.{name}'; available sources: {', '.join(KNOWN_SOURCES)}"
            )
        values = _convert_section(f"sources.{name}", table, source_keys(name))
        source = SourceSettings(name=name, **values)
        if name == "mastodon" and source.enabled and not source.instances:
            raise ConfigError(
                "config key 'sources.mastodon.instances' is empty; list at least one instance URL, "
                'e.g. instances = ["https://mastodon.social"], or set sources.mastodon.enabled = false'
            )
        if name == "lemmy" and source.enabled and not source.instances:
            raise ConfigError(
                "config key 'sources.lemmy.instances' is empty; list at least one instance URL, "
                'e.g. instances = ["https://lemmy.world"], or set sources.lemmy.enabled = false'
            )
        sources[name] = source

    return Settings(
        terms=terms,
        database=DatabaseSettings(**sections["database"]),
        crawler=CrawlerSettings(**sections["crawler"]),
        sources=sources,
        model=ModelSettings(**sections["model"]),
        schedule=ScheduleSettings(**sections["schedule"]),
        service=ServiceSettings(**sections["service"]),
        alerts=AlertSettings(**sections["alerts"]),
    )
