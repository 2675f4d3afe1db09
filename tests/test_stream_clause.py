"""The `stream "…"` clause of a source (issue #11): which Redis Stream the stream worker reads.

It is where events come from, not what a feature computes: it must parse, format, be checked
like the other clauses, and leave every view's fingerprint as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fsdsl.check import load_text
from fsdsl.cli import app
from fsdsl.fmt import format_text
from fsdsl.online.fingerprint import fingerprint
from fsdsl.syntax.parser import parse_text

BASE = """\
entity user {
  key user_id: string
}

source clicks {
  table "clicks"
  timestamp clicked_at
  columns {
    user_id: string
    stream: string
    clicked_at: timestamp
  }
}

features user_clicks {
  entity user
  from clicks

  clicks_1h = count(*) over 1h
  last_stream = last(stream)
}
"""

WITH_STREAM = BASE.replace('  table "clicks"\n', '  table "clicks"\n  stream "web:clicks"\n')


def repo_of(text: str):
    repo, diags = load_text(text, "clicks.feat")
    assert repo is not None, [f"{d.code} {d.message}" for d in diags]
    return repo


def test_the_clause_parses_into_the_ast_and_the_ir():
    module, diags = parse_text(WITH_STREAM, "clicks.feat")
    assert not diags and module is not None
    (source,) = module.sources
    assert source.stream is not None and source.stream.value == "web:clicks"
    assert (source.stream.span.line, source.stream.span.col) == (7, 10)
    src = repo_of(WITH_STREAM).sources["clicks"]
    assert src.stream == "web:clicks"
    assert src.stream_key == "web:clicks"


def test_without_the_clause_the_worker_reads_the_default_stream():
    src = repo_of(BASE).sources["clicks"]
    assert src.stream is None
    assert src.stream_key == "fsc:stream:clicks"


def test_stream_stays_a_name_outside_a_source_statement():
    """The contextual lexer reserves `stream` only where a source statement starts: a column
    (and a feature reading it) may still be called `stream`."""
    repo = repo_of(WITH_STREAM)
    assert "stream" in repo.sources["clicks"].columns


def test_fmt_prints_it_in_the_canonical_place():
    messy = WITH_STREAM.replace('  stream "web:clicks"\n', "").replace(
        "  columns {\n", "  stream   'web:clicks'  # the worker's input\n  columns {\n", 1
    )
    out, diags = format_text(messy, "clicks.feat")
    assert out is not None, [d.message for d in diags]
    assert (
        '  table "clicks"\n  timestamp clicked_at\n'
        '  stream "web:clicks"  # the worker\'s input\n  columns {\n'
    ) in out
    again, _ = format_text(out, "clicks.feat")
    assert again == out
    assert repo_of(out).sources["clicks"].stream == "web:clicks"


def test_fmt_keeps_a_file_without_the_clause_unchanged():
    out, _ = format_text(BASE, "clicks.feat")
    assert out == BASE


@pytest.mark.parametrize(
    "stream",
    ['stream "web:clicks"', 'stream "other"', "stream 'fsc:stream:clicks'"],
)
def test_the_clause_leaves_the_fingerprint_alone(stream):
    text = BASE.replace('  table "clicks"\n', f'  table "clicks"\n  {stream}\n')
    assert fingerprint(repo_of(text).views["user_clicks"]) == fingerprint(
        repo_of(BASE).views["user_clicks"]
    )


# ---- errors ----------------------------------------------------------------------------------
runner = CliRunner()


def lint(tmp_path: Path, text: str):
    path = tmp_path / "clicks.feat"
    path.write_text(text)
    result = runner.invoke(app, ["lint", str(path)], env={"COLUMNS": "100"})
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 1, result.output
    return path, result.output


def caret_under(output: str, path: Path, code: str) -> tuple[int, int, str, str]:
    """(line, col, the quoted source line, the caret line) of the first `code` diagnostic."""
    m = re.search(re.escape(str(path)) + rf":(\d+):(\d+): {code} ", output)
    assert m, output
    rest = output[m.end() :].splitlines()
    source = next(x for x in rest if re.match(r"^\d+ \|", x))
    caret = rest[rest.index(source) + 1]
    return int(m[1]), int(m[2]), source.split("| ", 1)[1], caret.split("| ", 1)[1]


@pytest.mark.parametrize("value", ['""', "''", '"   "'])
def test_an_empty_stream_name_is_an_error_at_the_string(tmp_path, value):
    text = BASE.replace('  table "clicks"\n', f'  table "clicks"\n  stream {value}\n')
    path, out = lint(tmp_path, text)
    line, col, source, caret = caret_under(out, path, "E0213")
    assert (line, col) == (7, 10)
    assert source == f"  stream {value}"
    assert caret.strip() == "^" * len(value)
    assert "empty" in out


def test_a_repeated_stream_clause_is_an_error_at_the_second(tmp_path):
    text = WITH_STREAM.replace('  stream "web:clicks"\n', '  stream "web:clicks"\n  stream "b"\n')
    path, out = lint(tmp_path, text)
    line, col, source, caret = caret_under(out, path, "E0102")
    assert (line, source) == (8, '  stream "b"')
    assert "`stream` is given twice in this source" in out
    assert caret.strip().startswith("^")


def test_the_clause_leaves_the_compiled_refresh_alone():
    """The compile cache is keyed by the view's repr: a new stream name recompiles nothing."""
    from fsdsl.online.refresh import _compile_key

    with_stream = repo_of(WITH_STREAM).views["user_clicks"]
    assert with_stream.source.stream_key == "web:clicks"
    assert _compile_key(with_stream, "duckdb") == _compile_key(
        repo_of(BASE).views["user_clicks"], "duckdb"
    )
