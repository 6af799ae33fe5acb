"""The CLI: every command explains itself, and the README documents every command."""

from __future__ import annotations

import re

import pytest

from murmur.cli import build_parser, main
from tests.conftest import REPO

COMMANDS = ["crawl", "score", "aggregate", "report", "run", "serve", "demo", "status", "model"]


def subcommands() -> dict[str, object]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)  # type: ignore[attr-defined]


def test_every_issue_named_command_exists() -> None:
    assert set(COMMANDS) <= set(subcommands())


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(name: str) -> None:
    parser = subcommands()[name]
    text = parser.format_help()  # type: ignore[attr-defined]
    assert "Example:" in text and f"murmur {name}" in text
    assert parser.description  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", COMMANDS)
def test_the_readme_documents_every_command(name: str) -> None:
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"`murmur {name}\b", readme), f"README.md does not mention `murmur {name}`"


def test_no_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "crawl" in capsys.readouterr().out


def test_run_without_once_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", "postgresql://nobody@127.0.0.1:9/x", "run"]) == 2
    assert "--once" in capsys.readouterr().err


def test_an_unreachable_database_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", "postgresql://nobody@127.0.0.1:9/x", "status"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("murmur: error: cannot connect to PostgreSQL") and "MURMUR_DATABASE_URL" in err
    assert "Traceback" not in err


def test_the_readme_gives_exactly_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
