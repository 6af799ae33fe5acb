"""The CLI: every command explains itself, and the README documents every command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from murmur.cli import build_parser, main
from tests.conftest import REPO

COMMANDS = ["crawl", "score", "aggregate", "report", "run", "serve", "demo", "status", "model", "stream", "import",
            "search", "embed", "topics", "dedupe", "psql"]


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


def test_model_predict_prints_json_lines_routed_by_language(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("RedNote is terrible, I hate it\n\n小红书太好玩了，大家好\n")
    assert main(["model", "predict", "I love RedNote so much", "--file", str(texts)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == [
        "I love RedNote so much", "RedNote is terrible, I hate it", "小红书太好玩了，大家好"
    ]
    assert [r["lang"] for r in rows] == ["en", "en", "zh"]
    assert rows[0]["label"] == "positive" and rows[1]["label"] == "negative"
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 and r["model"] for r in rows)


def test_model_predict_leaves_an_uncovered_language_unscored(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MURMUR_MODEL__LANGUAGES", '["en"]')
    assert main(["model", "predict", "小红书太好玩了，大家好", "Great app"]) == 0
    zh, en = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert zh["label"] is None and "no configured model covers language 'zh'" in zh["unscored"]
    assert en["label"] == "positive"


def test_model_eval_prints_recall_accuracy_and_confusion(capsys: pytest.CaptureFixture[str]) -> None:
    sample = REPO / "tests" / "fixtures" / "sentiment" / "val_sample.tsv"
    assert main(["model", "eval", str(sample), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 300 and 0.5 < result["macro_recall"] <= 1 and result["model"]
    assert sum(sum(row.values()) for row in result["confusion"].values()) == 300
    assert main(["model", "eval", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "macro recall" in out and "confusion" in out and "neutral" in out
