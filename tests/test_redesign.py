"""Plain checks of the compiler's back half (issue #10, point 3).

Static ones read the package's source with `ast`: a name repeated as a literal in two modules
stays in step only by luck, and a module reaching into another's internals breaks when they
change. The others compare the plan with what the compiled SQL and the stored state use.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from fsdsl import ir
from fsdsl.check import load_text
from fsdsl.compile.names import LAST_SEEN
from fsdsl.compile.refresh import distinct_tables, state_columns
from fsdsl.compile.render import sql_text
from fsdsl.compile.training import training_query

PACKAGE = Path(__file__).resolve().parents[1] / "fsdsl"
DUNDER = re.compile(r"^__\w+__$")


def _internal(text: str, head: bool = False) -> bool:
    """An internal column or relation name: `__` first, and not a Python dunder. A bare `__` is
    the reserved prefix itself (check/load.py) or a marker field (online/checksum.py), unless it
    heads an f-string, whose substitution completes a name."""
    return text.startswith("__") and not DUNDER.match(text) and (head or text != "__")


def _literals(tree: ast.AST) -> set[str]:
    """The internal names a module spells: plain string literals, and every literal part of an
    f-string (its head and the pieces between the substitutions, such as `{view}__`)."""
    found: set[str] = set()
    parts: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for value in node.values:
                parts.add(id(value))
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    piece = value.value
                    # a piece after a substitution names a suffix: `{p}__d` spells `__d`
                    head = piece[piece.index("__") :] if "__" in piece else ""
                    if _internal(head, head=True):
                        found.add(f"f-string {head!r}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in parts
            and _internal(node.value)
        ):
            found.add(repr(node.value))
    return found


def test_no_internal_name_literal_in_two_modules():
    """Each internal name is spelled in one module; the others ask that module for it."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for literal in _literals(tree):
            where[literal].append(str(path.relative_to(PACKAGE.parent)))
    shared = {k: v for k, v in sorted(where.items()) if len(v) > 1}
    assert not shared, "\n".join(f"{k}: {', '.join(v)}" for k, v in shared.items())


def _module(name: str) -> ast.Module:
    path = PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".py")
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def test_refresh_uses_only_the_public_point_in_time_api():
    """The refresh query builds on the training query's events and feature values through
    functions made for it, never by constructing `PointInTime` and editing its CTE list."""
    tree = _module("fsdsl.compile.refresh")
    imported = {
        a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "fsdsl.compile.pit"
        for a in node.names
    }
    assert "PointInTime" not in imported
    borrowed = sorted(
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("pit", "out", "ctes")
    )
    assert not borrowed, borrowed


def test_state_schema_involves_no_dialect():
    """The state schema comes from the plan, which is computed from the IR alone: neither the
    plan nor the naming object imports a dialect or sqlglot, and `state_columns` /
    `distinct_tables` compile nothing."""
    for name in ("fsdsl.compile.plan", "fsdsl.compile.names"):
        for node in ast.walk(_module(name)):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                found = {module} | {f"{module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found = {a.name for a in node.names}
            else:
                continue
            for m in found:
                assert m != "fsdsl.compile.dialects" and not m.startswith("sqlglot"), (name, m)
    tree = _module("fsdsl.compile.refresh")
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name in ("state_columns", "distinct_tables"):
            used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
            assert not used & {"dialects", "_Refresh"}, (fn.name, used)


EVERY_SHAPE = """
entity user { key user_id: string }
source orders {
  table "orders"
  timestamp ts
  columns { user_id: string  amount: float  qty: int  status: string  ts: timestamp }
}
features user_orders {
  entity user
  from orders
  ttl 30d
  n = count(*)
  n_amount = count(amount) over 7d
  total = sum(qty) over 7d
  mean = avg(amount) over 30d
  low = min(amount)
  high = max(qty) over 30d
  first_status = first(status)
  last_status = last(status) over 7d
  recent = last_k(status, 2)
  kinds = count_distinct(status) over 30d
}
"""

# What the stored state of EVERY_SHAPE has been since the state was introduced: a change here
# makes every stored state unreadable (a full refresh everywhere).
EVERY_SHAPE_STATE = [
    ("user_id", "string"),
    ("__c0", "int"),
    ("__c1", "int"),
    ("__s2", "int"),
    ("__s3", "float"),
    ("__c3", "int"),
    ("__m4", "float"),
    ("__m5", "int"),
    ("__p6_1_v", "string"),
    ("__p6_1_t", "timestamp"),
    ("__p7_1_v", "string"),
    ("__p7_1_t", "timestamp"),
    ("__p8_1_v", "string"),
    ("__p8_1_t", "timestamp"),
    ("__p8_2_v", "string"),
    ("__p8_2_t", "timestamp"),
    ("__d9_v", "list<string>"),
    ("__d9_t", "list<timestamp>"),
    ("__lt", "timestamp"),
]


def _view(text: str, name: str = "user_orders") -> ir.View:
    repo, diags = load_text(text)
    assert repo is not None, diags
    return repo.views[name]


def _type(t: ir.Type) -> str:
    return f"list<{t.element.name}>" if t.name == "list" else t.name


def test_state_columns_keep_their_stored_form():
    view = _view(EVERY_SHAPE)
    assert [(n, _type(t)) for n, t in state_columns(view)] == EVERY_SHAPE_STATE
    assert distinct_tables(view) == [("__fsdsl_state_user_orders__d9", "__d9_v", "__d9_t")]


def test_the_plan_lists_each_aggregation_with_its_strategy_and_state():
    """One plan serves both queries: the strategies it records are the ones the training SQL's
    comment shows, and its state forms, concatenated, are the stored state."""
    from fsdsl.compile.plan import plan_view

    view = _view(EVERY_SHAPE)
    plan = plan_view(view)
    assert [a.agg for a in plan.aggregations] == view.aggregates(None)
    assert all(a.strategy is None for a in plan.aggregations)  # no dialect, no strategy
    keys = [(k.name, k.type) for k in view.entity.keys]
    state = [(c.name, c.type) for a in plan.aggregations for c in a.state]
    assert keys + state + [(LAST_SEEN, ir.TIMESTAMP)] == state_columns(view)

    from fsdsl.compile import dialects

    for dialect in ("duckdb", "postgres"):
        planned = plan_view(view, dialect=dialects.get(dialect))
        assert all(a.strategy is not None for a in planned.aggregations)
        repo, _ = load_text(EVERY_SHAPE)
        features = [("user_orders", f.name) for f in view.features]
        sql = sql_text(training_query(repo, features, dialect), dialect)
        assert f"/* {planned.describe()} */" in sql, (planned.describe(), sql[:400])


@pytest.mark.parametrize(
    "shape, func, planned, general",
    [("last", "last", "asof", "running"), ("first", "first", "earliest", "running")],
)
def test_forcing_moves_the_strategy_in_the_plan(shape, func, planned, general):
    """The planner's choice and a forced one are both recorded in the plan, per aggregation."""
    from fsdsl.compile import dialects
    from fsdsl.compile.plan import plan_view

    view = _view(EVERY_SHAPE.replace("last(status) over 7d", "last(status)"))
    duckdb = dialects.get("duckdb")

    def strategies(plan) -> set[str]:
        return {a.strategy for a in plan.aggregations if a.agg.func == func and not a.agg.window}

    assert strategies(plan_view(view, dialect=duckdb)) == {planned}
    assert strategies(plan_view(view, dialect=duckdb, force={shape: general})) == {general}
    assert plan_view(view, dialect=duckdb, force={"ttl": "range join"}).ttl == "range join"
