"""Hostile but valid-looking input (issue #9): long feature chains, expressions nested as deep as
the parser accepts, and user names that look like the compiler's own.

Each must come out either right or as one located diagnostic with a code: never an internal
error, a traceback, a warehouse error, or (worst) silently different values.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import training_set
from test_property import history, labels_for, same, view_text
from typer.testing import CliRunner
from warehouses import training_on

from fsdsl import ir
from fsdsl.check import load_text
from fsdsl.check.expressions import MAX_DEPTH
from fsdsl.cli import app
from fsdsl.compile.render import compile_repository
from fsdsl.fmt import format_text
from fsdsl.syntax.parser import parse_text

runner = CliRunner()
ENV = {"COLUMNS": "100"}

HEAD = """\
entity user {
  key user_id: string
}

source orders {
  table "orders"
  timestamp event_timestamp
  columns {
    user_id: string
    amount: float
    event_timestamp: timestamp
  }
}

features v {
  entity user
  from orders

"""


def repo_text(features: list[str], service: str = "v.*") -> str:
    body = "".join(f"  {f}\n" for f in features)
    return HEAD + body + "}\n\nservice s {\n  features " + service + "\n}\n"


def cli(tmp_path: Path, text: str, command: str, *args: str):
    path = tmp_path / "t.feat"
    path.write_text(text)
    started = time.perf_counter()
    result = runner.invoke(app, [command, str(path), *args], env=ENV)
    elapsed = time.perf_counter() - started
    assert "Traceback" not in result.output, result.output[-2000:]
    assert "internal error" not in result.output, result.output[:500]
    assert "E0199" not in result.output, result.output[:500]
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return path, result, elapsed


def headers(output: str, path: Path) -> list[tuple[int, int, str]]:
    pat = re.compile(re.escape(str(path)) + r":(\d+):(\d+): (E\d{4}) ")
    return [(int(m[1]), int(m[2]), m[3]) for m in pat.finditer(output)]


def line_of(text: str, needle: str) -> int:
    lines = text.split("\n")
    hits = [i + 1 for i, line in enumerate(lines) if line.strip() == needle.strip()]
    hits = hits or [i + 1 for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, needle
    return hits[0]


# ---- long chains of derived features ---------------------------------------------------------
def alias_chain(n: int, reverse: bool) -> list[str]:
    """f0 <- f1 <- ... (each feature renames the one before), written in either order."""
    if reverse:  # every feature uses the one *after* it: the walk must go n deep
        return [f"f{i} = f{i + 1}" for i in range(n - 1)] + [f"f{n - 1} = sum(amount) over 7d"]
    return ["f0 = sum(amount) over 7d"] + [f"f{i} = f{i - 1}" for i in range(1, n)]


@pytest.mark.parametrize(
    "n, reverse",
    [(1200, True), (10_000, True), (10_000, False)],
    ids=["1200-rev", "10k-rev", "10k"],
)
def test_long_chain_lints_and_compiles_clean(tmp_path, n, reverse):
    text = repo_text(alias_chain(n, reverse), service="v.f0" if reverse else f"v.f{n - 1}")
    _, result, lint_s = cli(tmp_path, text, "lint")
    assert result.exit_code == 0, result.output[:1000]
    _, result, compile_s = cli(tmp_path, text, "compile", "-s", "s")
    assert result.exit_code == 0, result.output[:1000]
    assert 'SUM("e"."amount")' in result.stdout or "SUM(" in result.stdout.upper()
    print(f"chain {n} reverse={reverse}: lint {lint_s:.2f}s, compile {compile_s:.2f}s")
    assert lint_s < 60 and compile_s < 60


def test_long_cycle_is_located_and_named(tmp_path):
    n = 5000
    feats = [f"f{i} = f{i + 1}" for i in range(n - 1)] + [f"f{n - 1} = f0 + sum(amount) over 7d"]
    text = repo_text(feats)
    path, result, _ = cli(tmp_path, text, "lint")
    assert result.exit_code == 1, result.output[:500]
    got = headers(result.output, path)
    assert [c for _, _, c in got] == ["E0208"], result.output[:500]
    assert got[0][:2] == (line_of(text, "  f0 = f1"), 3), result.output[:300]
    assert "f0 -> f1 -> f2" in result.output and f"f{n - 1} -> f0" in result.output


def test_growing_chain_stops_at_a_located_limit(tmp_path):
    """Each link adds a level to the inlined SQL: past the limit, a located E0103, not a crash."""
    feats = ["f0 = sum(amount) over 7d"] + [f"f{i} = f{i - 1} + 1" for i in range(1, 10_000)]
    text = repo_text(feats, service="v.f0")
    path, result, _ = cli(tmp_path, text, "lint")
    assert result.exit_code == 1, result.output[:500]
    got = headers(result.output, path)
    assert len(got) == 1 and got[0][2] == "E0103", result.output[:500]
    line, col, _ = got[0]
    first = int(re.fullmatch(r"  f(\d+) = f\d+ \+ 1", text.split("\n")[line - 1])[1])
    assert 50 <= first <= 101 and col == 3 + len(f"f{first} = "), result.output[:500]
    # the longest chain lint accepts compiles, for every dialect and both query kinds
    text = repo_text(feats[:first], service=f"v.f{first - 1}")
    for args in (("-d", "duckdb"), ("-d", "postgres"), ("-d", "spark"), ("-t", "refresh")):
        _, result, _ = cli(tmp_path, text, "compile", "-s", "s", *args)
        assert result.exit_code == 0, (args, result.output[:500])


# ---- expressions nested as deep as the parser goes -------------------------------------------
NESTINGS = {
    "parens": lambda n, x: "(" * n + x + ")" * n,
    "negation": lambda n, x: "-(" * n + x + ")" * n,
    "minus-signs": lambda n, x: "-" * n + x,
    "right-sum": lambda n, x: f"{x} + (" * n + x + ")" * n,
    "left-sum": lambda n, x: " + ".join([x] * (n + 1)),
    "calls": lambda n, x: "abs(" * n + x + ")" * n,
    "coalesce": lambda n, x: "coalesce(" * n + x + ", 0)" * n,
    "case": lambda n, x: "case when true then " * n + x + " end" * n,
}


def nested_feature(kind: str, n: int) -> str:
    """A windowed aggregation of a nested expression of the source column."""
    return f"d = sum({NESTINGS[kind](n, 'amount')}) over 7d"


# every shape at 3,000 levels; three of them at 20,000 (parsing alone takes seconds there)
@pytest.mark.parametrize(
    ("kind", "n"),
    [(kind, 3000) for kind in sorted(NESTINGS)]
    + [(kind, 20_000) for kind in ("parens", "negation", "right-sum")],
)
def test_any_nesting_that_parses_is_handled(tmp_path, kind, n):
    """lint and compile: clean or a located E0103; fmt: the canonical text, faithfully."""
    feature = nested_feature(kind, n)
    text = repo_text([feature])
    module, diags = parse_text(text, "t.feat")
    assert module is not None and not diags  # it parses, so every command must cope
    for command, args in (("lint", ()), ("compile", ("-s", "s"))):
        path, result, _ = cli(tmp_path, text, command, *args)
        assert result.exit_code in (0, 1), result.output[:500]
        if result.exit_code == 1:
            got = headers(result.output, path)
            assert got == [(line_of(text, "  d = sum("), 7, "E0103")], result.output[:500]
    path, result, _ = cli(tmp_path, text, "fmt", "--check")
    assert result.exit_code in (0, 1), result.output[:500]
    out, diags = format_text(text, "t.feat")
    assert out is not None, diags
    assert format_text(out, "t.feat")[0] == out


@pytest.mark.parametrize("kind", sorted(NESTINGS))
def test_nesting_at_the_limit_compiles_and_one_more_is_located(tmp_path, kind):
    """The deepest expression lint accepts compiles for every dialect; one level more is E0103."""
    deepest = None
    for n in range(2 * MAX_DEPTH, 0, -1):
        repo, _ = load_text(repo_text([nested_feature(kind, n)]))
        if repo is not None:
            deepest = n
            break
    assert deepest is not None and deepest >= MAX_DEPTH // 3, kind
    unbounded = deepest == 2 * MAX_DEPTH  # parentheses add no level: no limit to meet
    text = repo_text([nested_feature(kind, deepest)])
    for dialect in ("duckdb", "postgres", "spark", "snowflake", "bigquery", "trino"):
        _, result, _ = cli(tmp_path, text, "compile", "-s", "s", "-d", dialect)
        assert result.exit_code == 0, (dialect, result.output[:500])
    _, result, _ = cli(tmp_path, text, "compile", "-s", "s", "-t", "refresh")
    assert result.exit_code == 0, result.output[:500]
    if unbounded:
        return
    text = repo_text([nested_feature(kind, deepest + 1)])
    path, result, _ = cli(tmp_path, text, "lint")
    assert headers(result.output, path) == [(line_of(text, "  d = sum("), 7, "E0103")], (
        result.output[:500]
    )


# one level of nesting each; `{}` is the inner expression
WRAPPERS = [
    "({})",
    "-({})",
    "not ({})",
    "({}) + 1",
    "1 - ({})",
    "2 * ({})",
    "({}) / 2",
    "abs({})",
    "coalesce({}, 0)",
    "nullif({}, 1)",
    "greatest({}, 1, 2)",
    "case when amount > 0 then {} else 0 end",
    "case when ({}) > 0 then 1 end",
    "cast({} as float)",
    "({}) is null",
    "({}) in (1, 2)",
    "({}) between 1 and 2",
    "extract(day from {})",
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    wrappers=st.lists(st.sampled_from(WRAPPERS), min_size=1, max_size=60).flatmap(
        lambda ws: st.integers(1, 3000 // len(ws)).map(lambda k: ws * k)
    ),
    aggregate=st.booleans(),
)
def test_random_deep_nestings(wrappers, aggregate):
    """Mixed nestings of any depth: checked (clean or located errors, never internal ones),
    compiled when clean, and formatted faithfully."""
    expr = "amount" if aggregate else "spend"
    for w in wrappers:
        expr = w.format(expr)
    feature = f"d = sum({expr}) over 7d" if aggregate else f"d = {expr}"
    text = repo_text(["spend = sum(amount) over 7d", feature])
    module, diags = parse_text(text, "t.feat")
    assert module is not None and not diags
    line = line_of(text, "  d = ")
    repo, diags = load_text(text, "t.feat")
    assert all(d.code not in ("E0199", "E9999") and d.span.line == line for d in diags), diags
    if repo is not None:
        for target in ("training", "refresh"):
            assert compile_repository(repo, service="s", target=target)
    out, diags = format_text(text, "t.feat")
    assert out is not None, diags
    assert format_text(out, "t.feat")[0] == out


@pytest.mark.parametrize("where", ["column", "key", "cast"])
def test_deeply_nested_list_types(tmp_path, where):
    n = 3000
    deep = "list<" * n + "int" + ">" * n
    if where == "column":
        text = repo_text(["c = count(*) over 7d"]).replace(
            "amount: float", "amount: float\n    deep: " + deep
        )
        needle = "    deep: "
    elif where == "key":
        text = repo_text(["c = count(*) over 7d"]).replace(
            "key user_id: string", "key user_id: string, other: " + deep
        )
        needle = "  key user_id"
    else:
        text = repo_text(["c = count(*) over 7d", f"d = cast(c as {deep})"])
        needle = "  d = cast("
    path, result, _ = cli(tmp_path, text, "lint")
    assert result.exit_code == 1, result.output[:500]
    got = headers(result.output, path)
    assert got and got[0][0] == line_of(text, needle), result.output[:500]
    assert got[0][2] in ("E0103", "E0300", "E0304"), result.output[:500]
    _, result, _ = cli(tmp_path, text, "compile", "-s", "s")
    assert result.exit_code == 1
    _, result, _ = cli(tmp_path, text, "fmt", "--check")
    assert result.exit_code in (0, 1), result.output[:500]
    assert format_text(text, "t.feat")[0] is not None


# ---- user names in the compiler's namespace -----------------------------------------------------
# (what is renamed, the edit to HEAD, the line holding the name, the name as the caret shows it)
RESERVED = [
    ("key", ("key user_id: string", "key __t: string"), None, "__t"),
    ("column", ("    amount: float", "    __a0: float"), None, "__a0"),
    ("timestamp", ("event_timestamp", "__ts"), "    __ts: timestamp", "__ts"),
    ("feature", ("  d = sum(amount) over 7d", "  __ttl = sum(amount) over 7d"), None, "__ttl"),
    ("entity", ("entity user {", "entity __user {"), None, "__user"),
    ("source", ("source orders {", "source __orders {"), None, "__orders"),
    ("view", ("features v {", "features __v {"), None, "__v"),
    ("table", ('table "orders"', 'table "__fsdsl_labels"'), None, '"__fsdsl_labels"'),
    ("schema", ('table "orders"', 'table "__fsdsl.orders"'), None, '"__fsdsl.orders"'),
    ("view-cte", ('table "orders"', 'table "V__events"'), None, '"V__events"'),
    # the other columns of a view's output: its as-of time and its entity keys, in any case
    ("as-of", ("  d = sum(amount) over 7d", "  as_of = sum(amount) over 7d"), None, "as_of"),
    (
        "key-named",
        ("  d = sum(amount) over 7d", "  User_ID = sum(amount) over 7d"),
        None,
        "User_ID",
    ),
]


def reserved_text(edit: tuple[str, str]) -> str:
    """HEAD with one name changed where it is declared and wherever it is used."""
    text = repo_text(["d = sum(amount) over 7d"])
    old, new = edit
    assert text.count(old) == 1 or old == "event_timestamp", old
    text = text.replace(old, new)
    declared = re.fullmatch(r"(entity|source|features) (\w+) \{", old)
    if declared:
        renamed = re.fullmatch(r"\w+ (\w+) \{", new)[1]
        text = re.sub(rf"(?<![\w\"]){declared[2]}\b(?!\")", renamed, text)
    return text


@pytest.mark.parametrize("what, edit, line_has, token", RESERVED, ids=[r[0] for r in RESERVED])
def test_reserved_names_are_located(tmp_path, what, edit, line_has, token):
    text = reserved_text(edit)
    line = line_of(text, line_has or edit[1])
    col = text.split("\n")[line - 1].index(token) + 1
    path, result, _ = cli(tmp_path, text, "lint")
    assert result.exit_code == 1, result.output[:500]
    got = headers(result.output, path)
    assert (line, col, "E0212") in got, result.output[:800]
    assert all(code == "E0212" for _, _, code in got), result.output[:800]
    lines = result.output.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{path}:{line}:{col}: E0212 "))
    assert lines[i + 3].endswith(" " * (col - 1) + "^" * len(token)), result.output[:800]
    # the library says the same, and the store refuses to open the repository
    repo, diags = load_text(text, "t.feat")
    assert repo is None and (line, col) in [(d.span.line, d.span.col) for d in diags]
    _, result, _ = cli(tmp_path, text, "compile", "-s", "s")
    assert result.exit_code == 1 and "E0212" in result.output


def test_reserved_names_in_the_store(tmp_path):
    from fsdsl import FeatureStore
    from fsdsl.diagnostics import FeatError

    (tmp_path / "t.feat").write_text(reserved_text(("key user_id: string", "key __b: string")))
    with pytest.raises(FeatError) as e:
        FeatureStore(tmp_path, warehouse="duckdb:///:memory:")
    assert [d.code for d in e.value.diagnostics] == ["E0212"]


@pytest.mark.parametrize("name", ["_t", "order__id", "x__", "_"])
def test_names_near_the_reserved_prefix_are_fine(tmp_path, name):
    text = repo_text([f"{name} = sum(amount) over 7d"]).replace("user_id", f"u{name}")
    _, result, _ = cli(tmp_path, text, "lint")
    assert result.exit_code == 0, result.output[:500]


# ---- generated repositories and labels with such names (the property test's generators) --------
INTERNAL_NAMES = [
    "__t",
    "__ts",
    "__a0",
    "__k0",
    "__r0",
    "__v",
    "__ttl",
    "__b",
    "__at",
    "__fsdsl_row",
]
# declared names of tests/test_property.py's generated views (`created` is also a keyword there)
DECLARED = ["user_id", "amount", "qty", "status", "flag", "ts", "user", "events", "v", "f0"]


@settings(
    max_examples=int(os.environ.get("FSDSL_PROPERTY_EXAMPLES", "200")) // 4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_generated_repositories_with_internal_names(data):
    """A declared name renamed to a compiler-internal one is refused, located at each place it is
    declared (never compiled into wrong values); label columns with such names (the timestamp
    column included) pass through and leave every value equal to the reference's."""
    text = data.draw(view_text(), label="feat")
    old, new = data.draw(st.sampled_from(DECLARED)), data.draw(st.sampled_from(INTERNAL_NAMES))
    renamed = re.sub(rf"(?<![\w']){old}\b", new, text)
    repo, diags = load_text(renamed, "t.feat")
    assert repo is None, renamed
    assert diags and all(d.code == "E0212" for d in diags), [d.message for d in diags]
    lines = renamed.split("\n")
    for d in diags:  # each one points at the new name (or the table string holding it)
        assert new in lines[d.span.line - 1][d.span.col - 1 : d.span.end_col], d

    repo, diags = load_text(text)
    assert repo is not None, diags
    rows = data.draw(history(), label="events")
    labels = data.draw(labels_for(rows), label="labels")
    stamp = data.draw(st.sampled_from(["event_timestamp", *INTERNAL_NAMES]), label="timestamp")
    extras = data.draw(st.lists(st.sampled_from(INTERNAL_NAMES), unique=True, max_size=3))
    extras = [e for e in extras if e != stamp]
    labels = [
        {
            "user_id": lb["user_id"],
            stamp: lb["event_timestamp"],
            **{e: f"{e}-{i}" for e in extras},
        }
        for i, lb in enumerate(labels)
    ]
    types = {"user_id": ir.STRING, stamp: ir.TIMESTAMP, **dict.fromkeys(extras, ir.STRING)}
    features = [("v", f.name) for f in repo.views["v"].features]
    got = training_on("duckdb:///:memory:")(
        repo, features, {"events": rows}, labels, types, timestamp_column=stamp
    )
    want = training_set(repo, features, {"events": rows}, labels, timestamp_column=stamp)
    assert len(got) == len(want)
    for g, w, label in zip(got, want, labels, strict=True):
        for column, value in label.items():
            assert g[column] == value
        for _, name in features:
            assert same(g[name], w[name]), (label, name, g[name], w[name])
