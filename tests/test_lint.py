"""`fsc lint` (and `fsc compile`) on broken .feat files: one test per error class.

Every case starts from the same small, valid repository (a copy of the example entity, source,
view and services) and changes exactly one thing. The test then asserts that the output holds
`file:line:col: CODE` at the exact position of the offending token, followed by the source line
and a caret line under the token.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fsdsl.cli import app

ROOT = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "100"}

BASE = """\
entity user {
  key user_id: string
  description "A registered customer"
}

source orders {
  table "orders"
  timestamp event_timestamp
  created created_at
  columns {
    order_id: string
    user_id: string
    amount: float
    status: string
    is_mobile: bool
    event_timestamp: timestamp
    created_at: timestamp
  }
}

features user_orders {
  entity user
  from orders
  where status = 'completed'
  ttl 60d
  owner "growth"

  orders_7d = count(*) over 7d
  spend_30d = sum(amount) over 30d
  spend_per_order = spend_30d / nullif(orders_7d, 0)
}

service churn_model {
  features user_orders.*
}

service fraud_model {
  features user_orders.spend_30d, user_orders.orders_7d
}
"""

LAST_FEATURE = "  spend_per_order = spend_30d / nullif(orders_7d, 0)\n"


def edit(old: str, new: str, text: str = BASE) -> str:
    """BASE with exactly one occurrence of `old` replaced (the case changes one thing)."""
    assert text.count(old) == 1, f"fixture edit is ambiguous or stale: {old!r}"
    return text.replace(old, new)


def add_feature(line: str) -> str:
    """BASE with one more feature at the end of the view."""
    return edit(LAST_FEATURE, LAST_FEATURE + f"  {line}\n")


# ---- running the CLI -----------------------------------------------------------------------------
runner = CliRunner()


def run(tmp_path: Path, files: dict[str, str | bytes], *args: str, command: str = "lint"):
    folder = tmp_path / "repo"
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / name).write_bytes(data)
    result = runner.invoke(app, [command, str(folder), *args], env=ENV)
    return folder, result


def lint(tmp_path: Path, text: str | bytes, *args: str, name: str = "t.feat"):
    folder, result = run(tmp_path, {name: text}, *args)
    return folder / name, result


def assert_no_crash(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


# ---- locating the expected diagnostic ------------------------------------------------------------
@dataclass(frozen=True)
class Loc:
    line: int
    col: int
    source: str  # the source line, as written
    width: int  # expected caret width (the token's length)


def loc(text: str, line_has: str, token: str | None = None, nth: int = 1) -> Loc:
    """Where `token` (default: `line_has`) is, on the one line equal to or containing `line_has`.

    Lines are split on "\\n" only: that is how the parser counts them, and how editors do.
    """
    lines = text.split("\n")
    hits = [i for i, line in enumerate(lines) if line.strip() == line_has.strip()]
    if not hits:
        hits = [i for i, line in enumerate(lines) if line_has in line]
    assert len(hits) == 1, f"fixture: {line_has!r} is on {len(hits)} lines"
    i = hits[0]
    token = token or line_has.strip()
    # whole tokens only: `0d` is not found inside `spend_30d`
    pattern = (
        (r"(?<![A-Za-z0-9_])" if re.match(r"\w", token) else "")
        + re.escape(token)
        + (r"(?![A-Za-z0-9_])" if re.search(r"\w$", token) else "")
    )
    starts = [m.start() for m in re.finditer(pattern, lines[i])]
    assert len(starts) >= nth, f"fixture: {token!r} not {nth} time(s) on line {lines[i]!r}"
    return Loc(i + 1, starts[nth - 1] + 1, lines[i], len(token))


def assert_diag(output: str, path: Path, code: str, at: Loc, *, caret_width: bool = True) -> None:
    """`path:line:col: CODE ...`, then ` |`, `line | source`, ` | <spaces>^^^`."""
    head = f"{path}:{at.line}:{at.col}: {code} "
    lines = output.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(head)]
    heads = [line for line in lines if re.match(r".*:\d+:\d+: E\d{4} ", line)]
    assert found, (
        f"expected a diagnostic starting {head!r}; got:\n"
        + "\n".join(heads)
        + f"\n\nfull output:\n{output}"
    )
    i = found[0]
    gutter = str(at.line)
    pad = " " * len(gutter)
    shown = "".join(c if c.isprintable() else "?" for c in at.source).replace("\t", " ")
    assert lines[i + 1] == f"{pad} |", output
    assert lines[i + 2] == f"{gutter} | {shown}", (
        f"source line under {head!r} is not line {at.line} of the file:\n{output}"
    )
    caret = lines[i + 3]
    prefix = f"{pad} | {' ' * (at.col - 1)}"
    assert caret.startswith(prefix + "^"), f"caret not under column {at.col}:\n{output}"
    if caret_width:
        assert caret == prefix + "^" * at.width, f"caret should span {at.width} char(s):\n{output}"


def header_positions(output: str, path: Path) -> list[tuple[int, int, str]]:
    pat = re.compile(re.escape(str(path)) + r":(\d+):(\d+): (E\d{4}) ")
    return [(int(m[1]), int(m[2]), m[3]) for m in pat.finditer(output)]


# ---- the clean example ---------------------------------------------------------------------------
def test_base_fixture_is_clean(tmp_path):
    _, result = lint(tmp_path, BASE)
    assert result.exit_code == 0, result.output
    assert "All checks passed." in result.output


def test_example_definitions_are_clean(tmp_path):
    folder = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", folder)
    result = runner.invoke(app, ["lint", str(folder)], env=ENV)
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "All checks passed."


# ---- one case per error class --------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    text: str
    code: str
    line_has: str
    token: str | None = None
    nth: int = 1
    hint: str | None = None  # a substring the output must contain (e.g. a did-you-mean)


ORDERS_7D_LINE = BASE.split("\n").index("  orders_7d = count(*) over 7d") + 1

CASES = [
    # syntax
    Case(
        "syntax-error", edit("  from orders\n", "  from orders {\n"), "E0101", "from orders {", "{"
    ),
    Case("bad-character", edit("  ttl 60d\n", "  ttl 60d @\n"), "E0100", "ttl 60d @", "@"),
    Case(
        "unterminated-string",
        edit("'completed'", "'completed"),
        "E0100",
        "where status = 'completed",
        "'",
    ),
    # the whole second statement is underlined
    Case(
        "statement-twice",
        edit("  from orders\n", "  from orders\n  ttl 1d\n"),
        "E0102",
        "ttl 60d",
        "ttl 60d",
    ),
    # names
    Case(
        "unknown-entity",
        edit("  entity user\n", "  entity usr\n"),
        "E0201",
        "entity usr",
        "usr",
        hint="did you mean `user`?",
    ),
    Case(
        "unknown-source",
        edit("  from orders\n", "  from ordrs\n"),
        "E0202",
        "from ordrs",
        "ordrs",
        hint="did you mean `orders`?",
    ),
    Case(
        "unknown-column-in-aggregation",
        add_feature("z = sum(amout) over 7d"),
        "E0203",
        "z = sum(amout) over 7d",
        "amout",
        hint="did you mean `amount`?",
    ),
    Case(
        "unknown-column-in-where",
        edit("where status", "where stat"),
        "E0203",
        "where stat = 'completed'",
        "stat",
        hint="did you mean `status`?",
    ),
    Case(
        "unknown-column-in-entity-by",
        edit("  entity user\n", "  entity user by nosuch\n"),
        "E0203",
        "entity user by nosuch",
        "nosuch",
    ),
    Case(
        "unknown-column-in-timestamp",
        edit("  timestamp event_timestamp\n", "  timestamp event_ts\n"),
        "E0203",
        "timestamp event_ts",
        "event_ts",
        hint="did you mean `event_timestamp`?",
    ),
    Case(
        "unknown-feature-in-derived",
        edit("nullif(orders_7d, 0)", "nullif(orders_7x, 0)"),
        "E0204",
        "spend_per_order =",
        "orders_7x",
        hint="did you mean `orders_7d`?",
    ),
    Case(
        "unknown-feature-in-service",
        edit("user_orders.spend_30d,", "user_orders.spend_31d,"),
        "E0204",
        "user_orders.spend_31d",
        "spend_31d",
        hint="did you mean `spend_30d`?",
    ),
    Case(
        "unknown-view-in-service",
        edit("features user_orders.*", "features user_ordrs.*"),
        "E0205",
        "features user_ordrs.*",
        "user_ordrs",
        hint="did you mean `user_orders`?",
    ),
    Case(
        "missing-from",
        edit("  from orders\n", ""),
        "E0206",
        "features user_orders {",
        "user_orders",
    ),
    Case(
        "missing-entity",
        edit("  entity user\n", ""),
        "E0206",
        "features user_orders {",
        "user_orders",
    ),
    Case("missing-table", edit('  table "orders"\n', ""), "E0206", "source orders {", "orders"),
    Case("missing-key", edit("  key user_id: string\n", ""), "E0206", "entity user {", "user"),
    Case(
        "duplicate-feature",
        add_feature("orders_7d = count(*) over 1d"),
        "E0207",
        "orders_7d = count(*) over 1d",
        "orders_7d",
        hint=f"first defined at line {ORDERS_7D_LINE}",
    ),
    Case(
        "cycle",
        edit(LAST_FEATURE, "  a = b + 1\n  b = a + 1\n"),
        "E0208",
        "a = b + 1",
        "a",
        hint="a -> b -> a",
    ),
    Case(
        "self-reference",
        edit(LAST_FEATURE, "  a = a + 1\n"),
        "E0208",
        "a = a + 1",
        "a",
        hint="a -> a",
    ),
    Case(
        "by-arity",
        edit("  entity user\n", "  entity user by user_id, order_id\n"),
        "E0209",
        "entity user by user_id, order_id",
        "user_id",
    ),
    Case(
        "unknown-function",
        edit("nullif(orders_7d, 0)", "nulif(orders_7d, 0)"),
        "E0210",
        "spend_per_order =",
        "nulif",
        hint="did you mean `nullif`?",
    ),
    Case(
        "wrong-arg-count",
        edit("nullif(orders_7d, 0)", "nullif(orders_7d)"),
        "E0211",
        "spend_per_order =",
        "nullif(orders_7d)",
    ),
    # types
    Case(
        "sum-of-string",
        add_feature("z = sum(status) over 7d"),
        "E0300",
        "z = sum(status) over 7d",
        "status",
    ),
    Case(
        "where-not-bool",
        edit("where status = 'completed'", "where amount"),
        "E0300",
        "where amount",
        "amount",
    ),
    Case(
        "string-plus-int", add_feature("z = 'a' + orders_7d"), "E0300", "z = 'a' + orders_7d", "'a'"
    ),
    Case(
        "compare-string-with-int",
        edit("status = 'completed'", "status = 1"),
        "E0300",
        "where status = 1",
        "status = 1",
    ),
    Case(
        "avg-of-bool",
        add_feature("z = avg(is_mobile) over 7d"),
        "E0300",
        "z = avg(is_mobile) over 7d",
        "is_mobile",
    ),
    Case(
        "declared-type-mismatch",
        add_feature("x: string = count(*) over 7d"),
        "E0301",
        "x: string = count(*) over 7d",
        "string",
    ),
    Case(
        "duration-unknown-unit",
        edit("sum(amount) over 30d", "sum(amount) over 7q"),
        "E0302",
        "spend_30d = sum(amount) over 7q",
        "7q",
        hint="unknown unit `q`",
    ),
    Case(
        "duration-zero",
        edit("sum(amount) over 30d", "sum(amount) over 0d"),
        "E0302",
        "spend_30d = sum(amount) over 0d",
        "0d",
    ),
    Case("ttl-unknown-unit", edit("  ttl 60d\n", "  ttl 7q\n"), "E0302", "ttl 7q", "7q"),
    Case(
        "aggregate-in-where",
        edit("where status = 'completed'", "where count(*) > 1"),
        "E0303",
        "where count(*) > 1",
        "count",
    ),
    Case(
        "nested-aggregate",
        add_feature("z = sum(count(amount)) over 7d"),
        "E0303",
        "z = sum(count(amount)) over 7d",
        "count",
    ),
    Case("column-outside-aggregation", add_feature("x = amount"), "E0303", "x = amount", "amount"),
    Case(
        "over-on-derived",
        edit("nullif(orders_7d, 0)\n", "nullif(orders_7d, 0) over 7d\n"),
        "E0303",
        "spend_per_order =",
        "7d",
    ),
    Case(
        "unknown-type",
        edit("amount: float", "amount: flaot"),
        "E0304",
        "amount: flaot",
        "flaot",
        hint="did you mean `float`?",
    ),
    Case(
        "last-k-zero", add_feature("r = last_k(amount, 0)"), "E0305", "r = last_k(amount, 0)", "0"
    ),
    Case(
        "last-k-not-literal",
        add_feature("r = last_k(amount, amount)"),
        "E0305",
        "r = last_k(amount, amount)",
        "amount",
        nth=2,
    ),
    Case(
        "key-type-mismatch",
        edit("key user_id: string", "key user_id: int"),
        "E0306",
        "entity user",
        "user",
    ),
    Case(
        "timestamp-declared-string",
        edit("event_timestamp: timestamp", "event_timestamp: string"),
        "E0307",
        "timestamp event_timestamp",
        "event_timestamp",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_class(tmp_path, case: Case):
    path, result = lint(tmp_path, case.text)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    at = loc(case.text, case.line_has, case.token, case.nth)
    assert_diag(result.output, path, case.code, at)
    if case.hint:
        assert case.hint in result.output, result.output
    assert re.search(r"Found \d+ error\(s\)", result.output), result.output


def test_syntax_error_at_end_of_file(tmp_path):
    text = BASE.rstrip("\n}").rstrip() + ",\n"  # a dangling comma, then the end of the file
    path, result = lint(tmp_path, text)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    last = text.rstrip("\n").split("\n")[-1]
    at = Loc(text.rstrip("\n").count("\n") + 1, len(last) + 1, last, 1)
    assert_diag(result.output, path, "E0101", at)
    assert "unexpected end of file" in result.output


def test_duplicate_declaration_across_files(tmp_path):
    second = "entity user {\n  key user_id: string\n}\n"
    folder, result = run(tmp_path, {"a.feat": BASE, "b.feat": second})
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    assert_diag(result.output, folder / "b.feat", "E0200", loc(second, "entity user {", "user"))
    assert f"first declared at {folder / 'a.feat'}:1" in result.output


def test_binary_garbage_with_nul(tmp_path):
    rng = random.Random(1234)
    data = bytes(rng.randrange(256) for _ in range(2000)) + b"\x00" + bytes(range(256))
    path, result = lint(tmp_path, data)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    assert f"{path}:1:1: E0100 " in result.output
    # the source line is shown with control characters replaced, never raw
    assert "\x00" not in result.output


def test_invalid_utf8_is_located(tmp_path):
    data = BASE.replace("amount: float", "am\xffount: float").encode("latin-1")
    path, result = lint(tmp_path, data)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    at = loc(BASE, "amount: float", "amount")
    assert f"{path}:{at.line}:{at.col + 2}: E0100 " in result.output, result.output


# ---- less common shapes of the same classes ------------------------------------------------------
@pytest.mark.parametrize(
    "statement,before,after",
    [
        ("key", "  key user_id: string\n", "  key user_id: string\n  key user_id: string\n"),
        ("columns", "  created created_at\n", "  created created_at\n  columns { extra: int }\n"),
        (
            "columns",
            "  created created_at\n  columns {\n",
            "  created created_at\n  columns {}\n  columns {}\n  columns {\n",
        ),
    ],
    ids=["key", "columns", "empty-columns"],
)
def test_statement_twice_points_at_the_second_statement(tmp_path, statement, before, after):
    """E0102 must point into the repeated statement, not at 1:1 of the file."""
    text = edit(before, after)
    path, result = lint(tmp_path, text)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    lines = text.split("\n")
    start = [i for i, line in enumerate(lines) if line.strip().startswith(statement)][1]
    end = start
    if lines[start].rstrip().endswith("{"):
        end = next(i for i in range(start, len(lines)) if lines[i].strip() == "}")
    got = [(ln, col) for ln, col, code in header_positions(result.output, path) if code == "E0102"]
    assert got, result.output
    assert start + 1 <= got[0][0] <= end + 1, (
        f"`{statement}` twice: expected a location on lines {start + 1}-{end + 1} (the second "
        f"`{statement}`), got {got[0]}:\n{result.output}"
    )


@pytest.mark.parametrize(
    "text,code,line_has,token",
    [
        (add_feature("z = sum(amout) over 7d\n  w = z + 1"), "E0203", "z = sum(amout)", "amout"),
        (
            edit("  orders_7d = count(*) over 7d\n", "  orders_7d: string = count(*) over 7d\n"),
            "E0301",
            "orders_7d: string",
            "string",
        ),
        (
            edit("sum(amount) over 30d", "sum(status) over 30d"),
            "E0300",
            "spend_30d = sum(status)",
            "status",
        ),
    ],
    ids=["unknown-column", "declared-type", "sum-of-string"],
)
def test_broken_feature_does_not_cascade_into_unknown_feature(
    tmp_path, text, code, line_has, token
):
    """A feature that fails to check still exists: a feature using it must not be reported as
    `unknown feature or column` (with a did-you-mean pointing somewhere else)."""
    path, result = lint(tmp_path, text)
    assert result.exit_code == 1, result.output
    assert_diag(result.output, path, code, loc(text, line_has, token))
    assert "E0204" not in result.output, result.output
    assert "Found 1 error(s)" in result.output, result.output


@pytest.mark.parametrize(
    "char",
    ["\f", "\x85", "\u2028", "\x1c"],
    ids=["form-feed", "NEL", "line-separator", "file-separator"],
)
def test_source_line_matches_reported_line_with_unusual_line_breaks(tmp_path, char):
    """Only "\\n" ends a line for the parser; the echoed source line must be that same line."""
    text = edit("  from orders\n", f"  from orders  # a{char}comment\n")
    text = edit("  ttl 60d\n", "  ttl 7q\n", text)
    path, result = lint(tmp_path, text)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    assert_diag(result.output, path, "E0302", loc(text, "ttl 7q", "7q"))


def test_utf8_bom_is_accepted(tmp_path):
    """Editors on Windows save UTF-8 with a byte-order mark; it is not a bad character."""
    _, result = lint(tmp_path, b"\xef\xbb\xbf" + BASE.encode())
    assert_no_crash(result)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("n", [500, 1500])
def test_deeply_nested_condition_is_checked_or_located(tmp_path, n):
    """A long (generated) condition is checked, or rejected with a diagnostic located at the
    condition (not at 1:1 of the file); lint never exits 2 with an internal error."""
    text = edit(
        "where status = 'completed'", "where " + " or ".join(f"status = 's{i}'" for i in range(n))
    )
    path, result = lint(tmp_path, text)
    assert_no_crash(result)
    assert "internal error" not in result.output, result.output[:500]
    assert result.exit_code in (0, 1), result.output[:500]
    if result.exit_code == 1:
        where_line = loc(text, "where status = 's0'", "where").line
        got = header_positions(result.output, path)
        assert got and all(ln == where_line for ln, _, _ in got), (
            f"expected the diagnostic on line {where_line} (the `where`): {result.output[:300]}"
        )


# 60: within the nesting limit (lint accepts: the first branch); 250, 400: beyond it
@pytest.mark.parametrize("n", [60, 250, 400])
def test_long_where_condition_compiles_when_lint_accepts_it(tmp_path, n):
    """What lint accepts, compile compiles: a long `where` is either rejected by lint (located at
    the condition) or compiled; compile never fails with an internal error."""
    text = edit(
        "where status = 'completed'", "where " + " or ".join(f"status = 's{i}'" for i in range(n))
    )
    path, lint_result = lint(tmp_path, text)
    _, result = run(tmp_path, {"t.feat": text}, command="compile")
    assert_no_crash(result)
    assert "internal error" not in result.output, result.output[:500]
    if lint_result.exit_code == 0:
        assert result.exit_code == 0, result.output[:500]
    else:
        where_line = loc(text, "where status = 's0'", "where").line
        assert result.exit_code == 1, result.output[:500]
        got = header_positions(result.stderr, path)  # empty would make `all` vacuously true
        assert got and all(ln == where_line for ln, _, _ in got), result.stderr[:500]


# ---- several errors at once ----------------------------------------------------------------------
MULTI = (
    "service early {\n"
    "  features nosuch_view.*\n"
    "}\n\n"
    + edit(
        LAST_FEATURE,
        LAST_FEATURE + "  a = sum(amout) over 7d\n  b = count(*) over 7q\n"
        "  c = nulif(orders_7d, 1)\n",
    )
    + "\nfeatures other {\n  entity usr\n  from orders\n  n = count(*) over 1d\n}\n"
)
MULTI_EXPECTED = [
    ("E0205", loc(MULTI, "features nosuch_view.*", "nosuch_view")),
    ("E0203", loc(MULTI, "a = sum(amout) over 7d", "amout")),
    ("E0302", loc(MULTI, "b = count(*) over 7q", "7q")),
    ("E0210", loc(MULTI, "c = nulif(orders_7d, 1)", "nulif")),
    ("E0201", loc(MULTI, "entity usr", "usr")),
]


def test_multiple_errors_all_reported_sorted(tmp_path):
    path, result = lint(tmp_path, MULTI)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    for code, at in MULTI_EXPECTED:
        assert_diag(result.output, path, code, at)
    got = header_positions(result.output, path)
    assert got == sorted(got), f"diagnostics are not sorted by position: {got}"
    assert [(c, (ln, col)) for ln, col, c in got] == [
        (c, (at.line, at.col)) for c, at in MULTI_EXPECTED
    ]
    assert f"Found {len(MULTI_EXPECTED)} error(s) and 0 warning(s)." in result.output


def test_format_json(tmp_path):
    path, result = lint(tmp_path, MULTI, "--format", "json")
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    assert [(d["code"], d["line"], d["col"]) for d in data] == [
        (c, at.line, at.col) for c, at in MULTI_EXPECTED
    ]
    for d in data:
        assert d["file"] == str(path)
        assert d["severity"] == "error"
        assert d["message"]
        assert isinstance(d["hints"], list)


def test_format_json_clean_is_empty_list(tmp_path):
    _, result = lint(tmp_path, BASE, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_format_github(tmp_path):
    path, result = lint(tmp_path, MULTI, "--format", "github")
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    pat = re.compile(
        r"::error file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+),"
        r"endLine=\d+,endColumn=\d+,title=(?P<code>E\d{4})::.+"
    )
    matches = [pat.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [(m["file"], int(m["line"]), int(m["col"]), m["code"]) for m in matches] == [
        (str(path), at.line, at.col, c) for c, at in MULTI_EXPECTED
    ]


# ---- fsc compile ---------------------------------------------------------------------------------
def test_compile_broken_file_prints_the_same_diagnostics(tmp_path):
    text = edit("  from orders\n", "  from ordrs\n")
    folder, lint_result = run(tmp_path, {"t.feat": text})
    _, result = run(tmp_path, {"t.feat": text}, command="compile")
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    assert result.stdout == "", "no SQL may be printed for a broken repository"
    assert_diag(result.stderr, folder / "t.feat", "E0202", loc(text, "from ordrs", "ordrs"))
    lint_diags = lint_result.stdout.split("\nFound ")[0].strip()
    assert lint_diags and lint_diags in result.stderr


def test_compile_clean_file_prints_sql(tmp_path):
    _, result = run(tmp_path, {"t.feat": BASE}, command="compile")
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    assert "SELECT" in result.stdout.upper()


@pytest.mark.parametrize(
    "args,code,word",
    [
        (["--service", "nosuch"], "E0005", "nosuch"),
        (["--view", "nosuch"], "E0005", "nosuch"),
        (["--dialect", "nosuch"], "E0004", "nosuch"),
        (["--target", "nosuch"], "E0004", "nosuch"),
    ],
)
def test_compile_usage_error_is_one_line(tmp_path, args, code, word):
    _, result = run(tmp_path, {"t.feat": BASE}, *args, command="compile")
    assert_no_crash(result)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"error\[{code}\]: .*`{word}`.*", lines[0]), lines[0]
    assert result.stdout == ""
