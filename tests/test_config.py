"""Settings: defaults, a user file, MURMUR_* variables, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from murmur.cli import main
from murmur.config import ConfigError, load_settings


def test_defaults_track_the_shipped_topic() -> None:
    s = load_settings(environ={})
    assert "TikTok refugee" in s.terms and "小红书" in s.terms
    assert s.database.url is None  # the embedded server
    assert s.sources["mastodon"].enabled and s.sources["mastodon"].instances
    assert s.sources["mastodon"].interval == 900.0
    assert s.model.name == "murmur-e5-sentiment" and s.model.device == "auto"


def test_user_file_then_environment_override_defaults(tmp_path: Path) -> None:
    user = tmp_path / "murmur.toml"
    user.write_text(
        'terms = ["Lemon8"]\n[sources.mastodon]\ninstances = ["http://127.0.0.1:9"]\ninterval = "1h"\n'
        '[model]\ndevice = "cpu"\n'
    )
    env = {
        "MURMUR_CONFIG": str(user),
        "MURMUR_DATABASE_URL": "postgresql://u@db.example/x",
        "MURMUR_SOURCES__MASTODON__MAX_PAGES": "3",
        "MURMUR_MODEL_NAME": "/models/mine",
    }
    s = load_settings(environ=env)
    assert s.terms == ("Lemon8",)
    assert s.sources["mastodon"].instances == ("http://127.0.0.1:9",)
    assert s.sources["mastodon"].interval == 3600.0
    assert s.sources["mastodon"].max_pages == 3
    assert s.database.url == "postgresql://u@db.example/x"
    assert s.model.name == "/models/mine" and s.model.device == "cpu"


@pytest.mark.parametrize(
    ("toml", "key", "hint"),
    [
        ('[sources.mastodon]\ninterval = "soon"\n', "sources.mastodon.interval", "duration"),
        ('[sources.mastodon]\ninstances = ["mastodon.social"]\n', "sources.mastodon.instances[0]", "http"),
        ('[sources.mastodon]\nenabled = "perhaps"\n', "sources.mastodon.enabled", "true or false"),
        ('[model]\ndevice = "tpu"\n', "model.device", "cuda"),
        ("[sources.myspace]\nenabled = true\n", "sources.myspace", "available sources: mastodon"),
        ("[model]\nnmae = 'x'\n", "model.nmae", "known keys"),
        ("terms = []\n", "terms", "at least one term"),
        ("[model]\nmax_tokens = -1\n", "model.max_tokens", "0 or more"),
    ],
)
def test_bad_value_names_the_key_and_the_fix(tmp_path: Path, toml: str, key: str, hint: str) -> None:
    user = tmp_path / "bad.toml"
    user.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(user, environ={})
    assert key in str(err.value) and hint in str(err.value)


def test_bad_config_stops_the_cli_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = tmp_path / "bad.toml"
    user.write_text('[sources.mastodon]\nmax_pages = -2\n')
    assert main(["--config", str(user), "crawl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("murmur: error:") and "sources.mastodon.max_pages" in err and "-2" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_invalid_toml_is_a_clear_error(tmp_path: Path) -> None:
    user = tmp_path / "broken.toml"
    user.write_text("terms = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(user, environ={})


def test_a_missing_config_file_says_which_setting_named_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"MURMUR_CONFIG": str(missing)})
    assert str(missing) in str(err.value) and "MURMUR_CONFIG" in str(err.value) and "--config" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(missing, environ={"MURMUR_CONFIG": str(tmp_path / "other.toml")})
    assert "--config" in str(err.value) and "MURMUR_CONFIG" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "value", "key", "hint"),
    [
        ("MURMUR_SOURCES__MASTODON__MAX_PAGES", "x", "sources.mastodon.max_pages", "whole number above 0"),
        ("MURMUR_SOURCES__MASTODON__ENABLED", "perhaps", "sources.mastodon.enabled", "true or false"),
        ("MURMUR_SOURCES__RSS__FEEDS", '["example.com/feed"]', "sources.rss.feeds[0]", "http"),
        ("MURMUR_MODEL_DEVICE", "tpu", "model.device", "cuda"),
        ("MURMUR_DATABASE_URL", "mysql-s3cret", "database.url", "postgresql://"),
    ],
)
def test_a_bad_environment_value_names_the_variable_and_the_key(name: str, value: str, key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={name: value})
    message = str(err.value)
    assert message.startswith(f"{name} (config key '{key}') has value ") and hint in message
    assert "s3cret" not in message  # the database URL is still never echoed


def test_a_value_the_command_line_overrides_is_not_blamed_on_the_environment() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"MURMUR_DATABASE_URL": "postgresql://ok/x"}, overrides={"database": {"url": "mysql"}})
    assert str(err.value).startswith("config key 'database.url'") and "MURMUR_DATABASE_URL" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("false", False), ("1", True), ("0", False), ("yes", True), ("NO", False), (" True ", True)],
)
def test_booleans_from_the_environment_take_true_false_1_0_yes_no(text: str, expected: bool) -> None:
    settings = load_settings(environ={"MURMUR_SOURCES__MASTODON__ENABLED": text, "MURMUR_ALERTS__ENABLED": text})
    assert settings.sources["mastodon"].enabled is expected and settings.alerts.enabled is expected


@pytest.mark.parametrize("value", ['"no"', '"true"', "1", "0"])
def test_booleans_in_a_toml_file_are_toml_booleans(tmp_path: Path, value: str) -> None:
    user = tmp_path / "murmur.toml"
    user.write_text(f"[sources.mastodon]\nenabled = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(user, environ={})
    assert "config key 'sources.mastodon.enabled'" in str(err.value) and "use true or false" in str(err.value)
    user.write_text("[sources.mastodon]\nenabled = false\n[crawler]\nobey_robots = true\n")
    settings = load_settings(user, environ={})
    assert settings.sources["mastodon"].enabled is False and settings.crawler.obey_robots is True
