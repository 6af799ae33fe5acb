"""The source registry (crawler/registry.py) is the one declaration of a source: the settings, the runner,
the README's sources table and the deployment's environment example agree with it."""

from __future__ import annotations

import re
import subprocess
import sys

from murmur.config import load_settings
from murmur.config.settings import KNOWN_SOURCES, source_keys
from murmur.crawler.registry import IMPORT, SOURCES, credential_variables
from murmur.crawler.runner import SPIDERS
from tests.conftest import REPO


def readme_sources_table() -> dict[str, str]:
    """Source name -> its row in the README's sources table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Sources", 1)[1]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\| `(\w+)` \|", line)
        if match:
            rows[match.group(1)] = line
        elif rows and not line.startswith("|"):
            break
    return rows


def test_the_readme_sources_table_lists_every_registered_source_and_no_other() -> None:
    assert sorted(readme_sources_table()) == sorted(SOURCES)


def test_the_readme_names_exactly_the_registered_credential_variables_of_each_source() -> None:
    for name, row in readme_sources_table().items():
        credential_column = row.split(" | ")[2]
        named = set(re.findall(r"MURMUR_[A-Z0-9_]+", credential_column))
        assert named == set(SOURCES[name].credentials.values()), name


def test_the_deployment_example_names_every_credential_variable() -> None:
    example = (REPO / "deploy" / "murmur.env.example").read_text(encoding="utf-8")
    assert set(credential_variables()) <= set(re.findall(r"MURMUR_[A-Z0-9_]+", example))


def test_settings_and_runner_read_the_registry() -> None:
    assert KNOWN_SOURCES == tuple(SOURCES)
    assert SPIDERS == {name: s.spider for name, s in SOURCES.items() if not s.is_stream and not s.is_import_only}
    assert all(s.spider is None for s in SOURCES.values() if s.is_stream)
    assert {n for n, s in SOURCES.items() if s.is_import_only} == {"douyin", "weibo", "bilibili", "kuaishou", "x"}
    assert all(s.capabilities == {IMPORT} for s in SOURCES.values() if s.is_import_only)
    for name, entry in SOURCES.items():
        assert {k.name for k in entry.keys} <= set(source_keys(name))
        maxsize, warnsize = entry.limits
        assert 0 < warnsize < maxsize


def test_credentials_come_from_the_environment_through_the_config_layer() -> None:
    env = {"MURMUR_REDDIT_CLIENT_ID": "id", "MURMUR_REDDIT_CLIENT_SECRET": " ", "MURMUR_YOUTUBE_API_KEY": "k"}
    sources = load_settings(environ=env).sources
    assert sources["reddit"].credentials == {"client_id": "id"}  # blank is unset
    assert sources["youtube"].credentials == {"api_key": "k"}
    assert sources["mastodon"].credentials == {}
    assert "id" not in repr(sources["reddit"])  # a secret never shows in a repr


def test_the_registry_imports_neither_scrapy_nor_a_spider() -> None:
    code = ("import sys, murmur.crawler.registry, murmur.config; "
            "print([m for m in sys.modules if m == 'scrapy' or m.startswith('murmur.crawler.spiders')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_shipped_config_has_a_table_for_each_registered_source_with_its_own_keys() -> None:
    import tomllib

    from murmur.config.settings import default_toml_path

    text = default_toml_path().read_text(encoding="utf-8")
    tables = tomllib.loads(text)["sources"]
    assert sorted(tables) == sorted(SOURCES)
    for name, entry in SOURCES.items():  # each source-only key set, or shown commented out
        for key in entry.keys:
            assert key.name in tables[name] or f"# {key.name} =" in text, f"[sources.{name}] {key.name}"
            assert key.help, f"{name}.{key.name} has no help line"
