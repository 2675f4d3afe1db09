"""`--help` of every command of `fsc`, discovered from the typer app (new commands are covered
without touching this file): exits 0, and documents every option."""

from __future__ import annotations

import re

import click
import pytest
import typer.main
from typer.testing import CliRunner

from fsdsl.cli import app

ENV = {"COLUMNS": "200"}
runner = CliRunner()
ROOT = typer.main.get_command(app)
COMMANDS: dict[str, click.Command] = dict(sorted(ROOT.commands.items()))
PARAMS = [(name, p) for name, cmd in COMMANDS.items() for p in cmd.params]


def _help(name: str, flag: str = "--help"):
    result = runner.invoke(app, [name, flag], env=ENV)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def _flat(text: str) -> str:
    """Help text without the rich box drawing and line wrapping, for substring checks."""
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    return " ".join(text.split())


def test_the_known_commands_are_registered():
    assert {"compile", "lint", "fmt", "demo-data"} <= set(COMMANDS)


def test_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"], env=ENV)
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert re.search(rf"(^|\s){re.escape(name)}\s", result.output), (
            f"`{name}` missing from `fsc --help`:\n{result.output}"
        )


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_zero(name, flag):
    result = _help(name, flag)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert f"Usage: fsc {name}" in result.output, result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_has_a_description(name):
    cmd = COMMANDS[name]
    assert (cmd.help or "").strip(), f"`fsc {name}` has no help text (docstring)"
    first = cmd.help.strip().splitlines()[0]
    assert _flat(first) in _flat(_help(name).output)


@pytest.mark.parametrize("name,param", PARAMS, ids=[f"{n}-{p.name}" for n, p in PARAMS])
def test_every_parameter_is_documented(name, param):
    output = _help(name).output
    text = (getattr(param, "help", None) or "").strip()
    if isinstance(param, click.Option):
        assert text, f"option {'/'.join(param.opts)} of `fsc {name}` has no help text"
        for opt in [*param.opts, *param.secondary_opts]:
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", output), (
                f"{opt} missing from `fsc {name} --help`:\n{output}"
            )
    else:
        assert text, f"argument `{param.name}` of `fsc {name}` has no help text"
    # the help text itself is shown (not swallowed as markup or truncated away)
    start = _flat(text)[:30]
    assert start in _flat(output), f"help of {param.name!r} not shown in:\n{output}"
