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
