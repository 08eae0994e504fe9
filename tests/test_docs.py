"""The manual stays true to the code: every setting, CLI command and option documented, the CLI page's --help
blocks as the commands print them, the README's two commands the ones CI runs, and every link resolves.

When the CLI's help changes: .venv/bin/python tests/test_docs.py rewrites the help blocks of docs/cli.md."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from assistant import cli
from assistant.config import _ENV, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MANUAL = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
VARIABLE = re.compile(r"\bASSISTANT_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
HELP_BLOCK = re.compile(r"<!-- help: ?([\w-]*) -->\n```text\n(.*?)```\n<!-- /help -->", re.DOTALL)
HELP_COLUMNS = "100"
# options that choose what a command does rather than set a Settings field
NOT_SETTINGS = {
    "help",
    "version",
    "verbose",
    "rebuild",
    "json",
    "words",
    "k",
    "sources",
    "chat",
    "user",
    "reader",
    "groups",
    "path",
}


def _code_variables() -> set[str]:
    return {v for path in (ROOT / "assistant").rglob("*.py") for v in VARIABLE.findall(path.read_text())}


def test_every_variable_the_code_reads_is_in_the_configuration_page() -> None:
    page = (DOCS / "configuration.md").read_text()
    missing = sorted(v for v in _code_variables() if f"`{v}`" not in page)
    assert not missing, f"add these to docs/configuration.md: {missing}"


def test_every_setting_has_a_row_of_its_own_in_the_configuration_table() -> None:
    rows = {
        line.split("|")[1].strip(" `")
        for line in (DOCS / "configuration.md").read_text().splitlines()
        if line.startswith("| `ASSISTANT_")
    }
    assert {var for var, _ in _ENV.values()} <= rows


def test_every_variable_the_manual_names_exists_in_the_code() -> None:
    named = {v for page in MANUAL for v in VARIABLE.findall(page.read_text())}
    assert not named - _code_variables(), "the manual names variables the code never reads"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **sub.choices}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


def _outside_help_blocks(text: str) -> str:
    return HELP_BLOCK.sub("", text)


def test_every_command_and_option_is_described_in_the_cli_page() -> None:
    prose = _outside_help_blocks((DOCS / "cli.md").read_text())
    missing = [name for name in _commands() if name and f"`{name}" not in prose and f"## {name}" not in prose]
    for name, parser in _commands().items():
        for action in _options(parser):
            options = [o for o in action.option_strings if o not in ("-h", "--help")]
            missing += [f"{name} {o}" for o in options if f"`{o}" not in prose]
    assert not missing, f"describe these in docs/cli.md (outside the --help blocks): {missing}"


def _help(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.main([command, "--help"] if command else ["--help"])
    return out.getvalue()


def _rewritten(page: str) -> str:
    def block(found: re.Match[str]) -> str:
        marker = f"<!-- help: {found[1]} -->" if found[1] else "<!-- help: -->"
        return f"{marker}\n```text\n{_help(found[1])}```\n<!-- /help -->"

    return HELP_BLOCK.sub(block, page)


def test_the_cli_page_shows_each_commands_help_as_the_command_prints_it(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", HELP_COLUMNS)
    page = (DOCS / "cli.md").read_text()
    assert {m[1] for m in HELP_BLOCK.finditer(page)} == set(_commands()), "one help block per command"
    assert page == _rewritten(page), "docs/cli.md is out of date — run: .venv/bin/python tests/test_docs.py"


def test_every_option_is_a_setting_or_a_choice_of_its_command() -> None:
    settings = {f.name for f in fields(Settings)}
    for name, parser in _commands().items():
        for action in _options(parser):
            assert action.dest in settings or action.dest in NOT_SETTINGS, f"{name} {action.option_strings}"
            assert (action.dest in settings) == (action.dest in cli.SETTING_OPTIONS), action.dest


OPTIONS = [  # (argv, field, value): one per option in cli.SETTING_OPTIONS
    (["status", "--corpus", "docs-here"], "corpus", Path("docs-here")),
    (["status", "--index", "elsewhere"], "index", Path("elsewhere")),
    (["status", "--model", "my-model"], "model", "my-model"),
    (["status", "--store", "milvus"], "store", "milvus"),
    (["status", "--milvus-uri", "other.db"], "milvus_uri", "other.db"),
    (["status", "--milvus-collection", "team"], "milvus_collection", "team"),
    (["build", "--precision", "bf16"], "precision", "bf16"),
    (["ask", "--mode", "bm25", "a question"], "mode", "bm25"),
    (["serve", "--host", "0.0.0.0"], "host", "0.0.0.0"),
    (["serve", "--port", "8123"], "port", 8123),
    (["serve", "--root-path", "/qa"], "root_path", "/qa"),
    (["serve", "--workers", "3"], "workers", 3),
    (["ask", "--server", "http://qa.example:7860/", "a question"], "server", "http://qa.example:7860/"),
    (["serve", "--watch"], "watch", True),
]


def test_the_option_list_covers_every_setting_option() -> None:
    assert {field for _, field, _ in OPTIONS} == set(cli.SETTING_OPTIONS)


@pytest.mark.parametrize(("argv", "field", "value"), OPTIONS, ids=[" ".join(a[:2]) for a, _, _ in OPTIONS])
def test_each_cli_option_reaches_the_settings_the_command_runs_with(monkeypatch, argv, field, value) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr(cli, f"_{argv[0]}", lambda settings, args: seen.append(settings) or 0)
    assert cli.main(argv) == 0
    assert getattr(seen[0], field) == value and getattr(Settings(), field) != value


def test_serve_workers_reaches_the_server(monkeypatch) -> None:
    served = []
    monkeypatch.setattr("assistant.serve.serve", lambda assistant: served.append(assistant))
    assert cli.main(["serve", "--workers", "3"]) == 0
    assert served[0].settings.workers == 3 and served[0].slots.workers == 3


def test_the_readme_gives_the_two_commands_that_ci_and_the_scripts_run() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert "./scripts/run-app.sh\n" in blocks and "./scripts/run-tests.sh\n" in blocks
    assert re.search(r"^\./scripts/run-tests\.sh\b", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
    for script in ("run-app.sh", "run-tests.sh"):
        assert os.access(ROOT / "scripts" / script, os.X_OK)
    tests = (ROOT / "scripts" / "run-tests.sh").read_text()
    assert all(step in tests for step in ("ruff check", "ruff format --check", "mypy", "pytest"))
    assert "app.py" in (ROOT / "scripts" / "run-app.sh").read_text()


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a page: lowercase, punctuation dropped, spaces as hyphens."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(
        r"^#{1,6}\s+(.*?)\s*$", re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL), re.MULTILINE
    ):
        slug = re.sub(r"[^\w\- ]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def _links() -> list[tuple[str, Path, str]]:
    """(where, page, anchor) of every link to a page of the manual: in the manual, and in the code's comments."""
    links = []
    for page in MANUAL:
        text = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"[a-z]+:", target):
                path, _, anchor = target.partition("#")
                links.append((f"{page.name}: {target}", (page.parent / path) if path else page, anchor))
    for source in [*(ROOT / "assistant").rglob("*.py"), ROOT / "app.py"]:
        for path, anchor in re.findall(r"\b(docs/[\w-]+\.md)(?:#([\w-]+))?", source.read_text()):
            links.append((f"{source.relative_to(ROOT)}: {path}#{anchor}", ROOT / path, anchor))
    return links


def test_every_link_to_the_manual_reaches_its_page_and_heading() -> None:
    broken = [
        where for where, page, anchor in _links() if not page.exists() or (anchor and anchor not in _anchors(page))
    ]
    assert not broken


def test_the_code_points_to_the_manual_not_to_readme_sections() -> None:
    stale = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in (ROOT / "assistant").rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\(README\b|README,", line)
    ]
    assert not stale


if __name__ == "__main__":
    os.environ["COLUMNS"] = HELP_COLUMNS
    cli_page = DOCS / "cli.md"
    cli_page.write_text(_rewritten(cli_page.read_text()))
    print(f"rewrote the help blocks of {cli_page}", file=sys.stderr)
