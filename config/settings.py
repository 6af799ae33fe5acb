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

from murmur.config.convert import (  # noqa: F401  (ConfigError, parse_duration: part of this module's API)
    _ENV_BOOLEANS,
    ConfigError,
    _BadValue,
    _baseline_days,
    _bool,
    _choice,
    _database_url,
    _device,
    _fail,
    _http_address,
    _languages,
    _non_negative_float,
    _non_negative_int,
    _positive_int,
    _positive_number,
    _routes,
    _score_interval,
    _str,
    _str_list,
    _token,
    _url,
    _url_list,
    _webhook_url,
    _ws_url_list,
    parse_duration,
)
from murmur.crawler.registry import SOURCES, read_environment

# Sources murmur has a spider for (crawler/registry.py). A key under [sources] that is not here is a
# typo or a source from a newer murmur; either way the user is told which names exist.
KNOWN_SOURCES = tuple(SOURCES)

# Environment variables with a name of their own (the issues fix these names). Any other key
# is reachable as MURMUR_<SECTION>__<KEY>, e.g. MURMUR_SOURCES__MASTODON__MAX_PAGES=3.
ENV_ALIASES = {
    "MURMUR_DATABASE_URL": ("database", "url"),
    "MURMUR_DATA_DIR": ("database", "data_dir"),
    "MURMUR_MODEL_NAME": ("model", "name"),
    "MURMUR_MODEL_DEVICE": ("model", "device"),
    "MURMUR_MODEL_QUANTIZE": ("model", "quantize"),
}



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
    # Also collect the replies to each matching post (bluesky, mastodon; reddit: `comments` is the same switch).
    replies: bool = False
    # Page URLs to start from (rednote, tiktok, lemon8): any http(s) host, so saved pages can stand in.
    urls: tuple[str, ...] = ()
    # Follow links to this platform found in other sources' posts (rednote, tiktok, lemon8, threads).
    follow_links: bool = True
    # Crawl pages at all (rednote: off by default, its robots.txt disallows crawling; registry: Source.opt_in).
    pages: bool = False
    # Stream sources (jetstream): seconds re-read before the stored cursor when (re)connecting, and whether
    # every post the stream delivers is counted into network_volume (the baseline of `report --share`).
    rewind: float = 5.0
    baseline: bool = True
    # Credential name -> value, from the environment variables the registry names (only those set).
    # Secrets: never logged or printed.
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    # The source's other environment settings (registry: Source.environment), e.g. threads' pages_url.
    environment: dict[str, str] = field(default_factory=dict)


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
    # Folder of labelled data (train.tsv, val.tsv, zh_hotel.tsv): `murmur model train` and `murmur model
    # int8` read it when no file is given. None: those commands need their files on the command line.
    data_dir: Path | None = None
    # Store each post's multilingual-e5 embedding beside its scores (post_embeddings; search needs them).
    embeddings: bool = True


@dataclass(frozen=True)
class ScheduleSettings:
    score_interval: float = 120.0  # 0: continuous (config "continuous"): score as posts arrive
    aggregate_interval: float = 300.0


@dataclass(frozen=True)
class ServiceSettings:
    # "HOST:PORT" of the dashboard, /healthz and /metrics; None: no HTTP endpoint
    http: str | None = "127.0.0.1:9464"
    # The dashboard's bearer token (MURMUR_SERVICE__TOKEN): required to listen beyond loopback; never printed.
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ImportSettings:
    inbox: Path | None = None  # a folder `murmur serve` imports dropped files from (scheduler/inbox.py)


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
class DedupeSettings:
    """Near-duplicates (murmur/dedupe.py): how alike two posts' embeddings must be, and how far apart in time."""

    threshold: float = 0.85  # cosine similarity at or above which a post is a copy of an earlier one
    window: float = 7 * 86400.0  # seconds: the earlier post at most this long before (the `"7d"` of the toml)


def _similarity(key: str, value: Any) -> float:
    """A cosine similarity above 0, at most 1."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1:
        return float(value)
    raise _fail(key, value, "use a cosine similarity above 0 and at most 1, e.g. 0.85")


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
    imports: ImportSettings = field(default_factory=ImportSettings)  # the [import] section
    dedupe: DedupeSettings = field(default_factory=DedupeSettings)
    files: tuple[str, ...] = field(default=())  # the TOML files read, for `murmur status`

    def enabled_sources(self) -> list[SourceSettings]:
        return [s for s in self.sources.values() if s.enabled]


def _optional_path(key: str, value: Any) -> Path | None:
    """A folder, or "" for none."""
    if isinstance(value, str) and not value.strip():
        return None
    return Path(_str(key, value)).expanduser()


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
        "data_dir": lambda k, v: Path(_str(k, v)).expanduser(),
        "embeddings": _bool,
    },
    "schedule": {"score_interval": _score_interval, "aggregate_interval": parse_duration},
    "service": {"http": _http_address, "token": _token},
    "import": {"inbox": lambda k, v: _optional_path(k, v)},
    "dedupe": {"threshold": lambda k, v: _similarity(k, v), "window": parse_duration},
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


# The converters the registry's source-only keys name (crawler/registry.py: SourceKey.kind).
_KEY_KINDS: dict[str, Any] = {"bool": _bool, "str_list": _str_list, "url_list": _url_list,
                              "ws_url_list": _ws_url_list, "seconds": _non_negative_float}

# Keys that only the named sources take (from the registry); any other source refuses them as unknown keys.
_SOURCE_ONLY_KEYS: dict[str, dict[str, Any]] = {
    name: {key.name: _KEY_KINDS[key.kind] for key in entry.keys} for name, entry in SOURCES.items() if entry.keys
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


def _read_toml(path: Path, given_by: str = "--config") -> dict[str, Any]:
    """A TOML file as a tree; `given_by` says where its path came from (--config, MURMUR_CONFIG)."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        where = f"the path given to {given_by}"
        if given_by == "MURMUR_CONFIG":
            where = "the MURMUR_CONFIG environment variable"
        raise ConfigError(f"config file {path} does not exist; check {where}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def _env_value(text: str) -> Any:
    """An environment value read as a TOML value when it is one (`false`, `3`, `["a"]`), else text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _env_path(name: str) -> tuple[str, ...] | None:
    """The config key an environment variable sets, as a path; None for other variables."""
    if name in ENV_ALIASES:
        return ENV_ALIASES[name]
    if name.startswith("MURMUR_") and "__" in name:
        return tuple(part.lower() for part in name[len("MURMUR_") :].split("__"))
    return None  # MURMUR_CONFIG, credentials and test settings are read where they are used


def _converter(path: tuple[str, ...]) -> Any:
    """The converter of the config key at `path`, or None for an unknown key."""
    if len(path) == 2 and path[0] in _SECTIONS:
        return _SECTIONS[path[0]].get(path[1])
    if len(path) == 3 and path[0] == "sources":
        return source_keys(path[1]).get(path[2])
    return None


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        path = _env_path(name)
        if path is None:
            continue
        if name in ENV_ALIASES:
            parsed: Any = value  # aliases are plain strings: a URL is never TOML-parsed
        elif _converter(path) is _bool and value.strip().lower() in _ENV_BOOLEANS:
            parsed = _ENV_BOOLEANS[value.strip().lower()]
        else:
            parsed = _env_value(value)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = parsed
    return tree


def default_toml_path() -> Path:
    return Path(str(resources.files("murmur.config").joinpath("default.toml")))


def _env_variable(key: str, environ: dict[str, str], overrides: dict[str, Any]) -> str | None:
    """The environment variable that set config key `key` ("sources.rss.feeds[0]" is "sources.rss.feeds"),
    unless `overrides` set it after the environment did."""
    path = tuple(re.sub(r"\[\d+\]$", "", key).split("."))
    node: Any = overrides
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if node is not None:
        return None
    return next((name for name in sorted(environ) if _env_path(name) == path), None)


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Load and check the settings: defaults, the user file, the environment, then `overrides`."""
    env = dict(os.environ if environ is None else environ)
    files = [default_toml_path()]
    given_by = "--config" if config_file else "MURMUR_CONFIG"
    config_file = config_file or env.get("MURMUR_CONFIG") or None
    if config_file:
        files.append(Path(config_file).expanduser())
    raw: dict[str, Any] = {}
    for i, path in enumerate(files):
        raw = _deep_merge(raw, _read_toml(path, given_by) if i else _read_toml(path))
    raw = _deep_merge(raw, _env_overrides(env))
    if overrides:
        raw = _deep_merge(raw, overrides)
    try:
        settings = build_settings(raw, environ=env)
    except _BadValue as err:
        variable = _env_variable(err.key, env, overrides or {})
        if variable is None:
            raise
        raise ConfigError(
            f"{variable} (config key '{err.key}') has value {err.shown!r}; {err.allowed}"
        ) from None
    return Settings(**{**settings.__dict__, "files": tuple(str(f) for f in files)})


def build_settings(raw: dict[str, Any], *, environ: dict[str, str] | None = None) -> Settings:
    """Check a merged settings tree and turn it into `Settings`; each source's credentials come from
    `environ` (the registry names their variables)."""
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
        credentials, environment = read_environment(name, environ or {})
        source = SourceSettings(name=name, **values, credentials=credentials, environment=environment)
        for key, (what, example) in SOURCES[name].required.items():
            if source.enabled and not getattr(source, key):
                raise ConfigError(
                    f"config key 'sources.{name}.{key}' is empty; list at least one {what}, "
                    f"e.g. {key} = {example}, or set sources.{name}.enabled = false"
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
        imports=ImportSettings(**sections["import"]),
        dedupe=DedupeSettings(**sections["dedupe"]),
    )
