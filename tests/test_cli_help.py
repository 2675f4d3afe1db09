"""`--help` of every command of `fsc`, discovered from the typer app (new commands are covered
without touching this file): exits 0, and documents every option."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from fsdsl.cli import app

ENV = {"COLUMNS": "200"}
runner = CliRunner()
# typer >= 0.29 vendors its own click (`typer._click`) and click is not our dependency: the
# command tree comes from typer, and a parameter's kind from `param_type_name`, the attribute
# typer itself sorts help into "Arguments" and "Options" by (typer.core._typer_format_options).
# `isinstance(p, click.Option)` is false for every typer option (TyperOption derives from
# `typer._click.core.Parameter`, not from any `Option`), which once made the check vacuous.
ROOT = typer.main.get_command(app)
COMMANDS: dict[str, Any] = dict(sorted(ROOT.commands.items()))
PARAMS = [(name, p) for name, cmd in COMMANDS.items() for p in cmd.params] + [
    ("", p) for p in ROOT.params
]
KINDS = ("option", "argument")


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


def test_the_parameter_walk_reaches_the_options():
    """The documentation check below is parametrised over PARAMS: if the walk found nothing (or
    misclassified every option as something else) it would pass by running no case at all."""
    kinds = [p.param_type_name for _, p in PARAMS]
    assert set(kinds) <= set(KINDS), kinds
    assert kinds.count("option") >= 30, kinds
    assert kinds.count("argument") >= len(COMMANDS), kinds
    options = {(name, opt) for name, p in PARAMS if p.param_type_name == "option" for opt in p.opts}
    assert {("compile", "--dialect"), ("lint", "--format"), ("demo-data", "--seed")} <= options


@pytest.mark.parametrize("name,param", PARAMS, ids=[f"{n or 'fsc'}-{p.name}" for n, p in PARAMS])
def test_every_parameter_is_documented(name, param):
    output = _help(name).output if name else runner.invoke(app, ["--help"], env=ENV).output
    text = (getattr(param, "help", None) or "").strip()
    assert param.param_type_name in KINDS, f"unknown parameter kind {param!r}"
    if param.param_type_name == "option":
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
