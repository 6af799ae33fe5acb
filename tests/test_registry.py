"""The source registry (crawler/registry.py) is the one declaration of a source: the settings, the runner,
the README's sources table and the deployment's environment example agree with it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from murmur.config import load_settings
from murmur.config.settings import KNOWN_SOURCES, source_keys
from murmur.crawler.registry import IMPORT, SOURCES, credential_variables
from murmur.crawler.runner import SPIDERS
from tests.conftest import REPO, run_murmur


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


def test_status_says_what_each_platform_allows_today(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "murmur.toml"
    config.write_text("[sources.reddit]\nenabled = true\n")
    result = run_murmur("--config", str(config), "status", db_url=db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for job in ("crawl:rednote", "crawl:tiktok", "crawl:reddit"):
        assert lines.count(f"{job}: {SOURCES[job.split(':')[1]].policy}") == 1, result.stdout
    assert "robots.txt disallows all crawling" in SOURCES["rednote"].policy
    assert "murmur import" in SOURCES["rednote"].policy and "challenge" in SOURCES["tiktok"].policy
    assert "approval" in SOURCES["reddit"].policy and "dumps" in SOURCES["reddit"].policy
    assert not any(line.startswith("crawl:mastodon: ") for line in lines)  # no policy set: no line
    result = run_murmur("--config", str(config), "status", "--format", "json", db_url=db_url, timeout=60)
    jobs = {j["job"]: j for j in json.loads(result.stdout)["jobs"]}
    assert jobs["crawl:rednote"]["policy"] == SOURCES["rednote"].policy and "policy" not in jobs["crawl:mastodon"]


def test_the_service_schedules_no_crawl_of_a_platform_that_disallows_it_until_opted_in() -> None:
    from murmur.config import load_settings
    from murmur.scheduler.service import Service

    off = Service(load_settings(environ={}), "postgresql://nobody@127.0.0.1:9/x")  # never connects
    on = Service(load_settings(environ={"MURMUR_SOURCES__REDNOTE__PAGES": "true"}), "postgresql://nobody@127.0.0.1:9/x")
    assert "rednote" not in off.crawl_sources() and "rednote" in on.crawl_sources()
    assert "tiktok" in off.crawl_sources()  # a policy line alone does not stop a crawl
