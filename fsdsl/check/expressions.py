"""Typing of the portable expression language, one function per construct.

The checker works out a type for every expression so that a mistake (`sum(status)`) is reported
at the line it was written, not as a warehouse error at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fsdsl import ir
from fsdsl.diagnostics import Diagnostic, Span
from fsdsl.syntax import ast

DATE_PARTS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
# Parts whose numbering every dialect agrees on (week and weekday numbering do not).
EXTRACT_PARTS = ("year", "quarter", "month", "day", "hour", "minute", "second")


# Deeper trees than this are refused: compiling them would exhaust Python's recursion limit
# (sqlglot's generator is recursive) long before any warehouse minded.
MAX_DEPTH = 100


def _depth(expr: ast.Expr) -> int:
    """Nesting depth of a syntax tree, without recursion (the tree may be very deep)."""
    deepest, stack = 0, [(expr, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.children(node))
    return deepest


class _Fail(Exception):
    """Aborts typing of one expression; the diagnostic is already recorded."""


def unify(a: ir.Type, b: ir.Type) -> ir.Type | None:
    """The common type of two branches (`coalesce`, `case`), or None when there is none."""
    if a == ir.NULL:
        return b
    if b == ir.NULL or a == b:
        return a
    if a.is_numeric and b.is_numeric:
        return ir.FLOAT
    if {a.name, b.name} == {"date", "timestamp"}:
        return ir.TIMESTAMP
    return None


@dataclass
class Scope:
    """What names mean where an expression stands."""

    columns: dict[str, ir.Type]
    features: dict[str, ir.Type] | None = None  # names of sibling features (outside aggregates)
    allow_aggregates: bool = False
    window: ir.Duration | None = None
    in_aggregate: bool = False
    failed: frozenset[str] | set[str] = frozenset()  # features reported broken: stay quiet


class ExprChecker:
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics

    def error(self, code: str, message: str, span: Span, *hints: str):
        self.diagnostics.append(Diagnostic(code, message, span, hints=tuple(h for h in hints if h)))
        raise _Fail

    def check(self, expr: ast.Expr, scope: Scope) -> ir.Expr | None:
        depth = _depth(expr)
        if depth > MAX_DEPTH:
            self.diagnostics.append(
                Diagnostic(
                    "E0103",
                    f"expression nested too deeply ({depth} levels; at most {MAX_DEPTH})",
                    expr.span,
                    hints=(
                        "split it into derived features, or use `in (...)` instead "
                        "of a chain of `or`",
                    ),
                )
            )
            return None
        try:
            return self.expr(expr, scope)
        except _Fail:
            return None

    # ---- dispatch ----
    def expr(self, e: ast.Expr, scope: Scope) -> ir.Expr:
        method: Callable = getattr(self, "e_" + type(e).__name__.lower())
        return method(e, scope)

    def e_literal(self, e: ast.Literal, scope: Scope) -> ir.Expr:
        t = {
            "string": ir.STRING,
            "int": ir.INT,
            "float": ir.FLOAT,
            "bool": ir.BOOL,
            "null": ir.NULL,
        }[e.kind]
        return ir.Literal(t, e.span, e.value)

    def e_name(self, e: ast.Name, scope: Scope) -> ir.Expr:
        if scope.in_aggregate or scope.features is None:
            if e.name in scope.columns:
                return ir.Column(scope.columns[e.name], e.span, e.name)
            hint = _suggest(e.name, scope.columns)
            self.error("E0203", f"unknown column `{e.name}`", e.span, hint)
        if e.name in scope.features:
            return ir.FeatureRef(scope.features[e.name], e.span, e.name)
        if e.name in scope.failed:
            raise _Fail
        if e.name in scope.columns:
            self.error(
                "E0303",
                f"column `{e.name}` is used outside an aggregation",
                e.span,
                f"a feature is computed over many rows: wrap it, e.g. `last({e.name})`",
            )
        hint = _suggest(e.name, {**scope.features, **scope.columns})
        self.error("E0204", f"unknown feature or column `{e.name}`", e.span, hint)

    def e_unary(self, e: ast.Unary, scope: Scope) -> ir.Expr:
        x = self.expr(e.operand, scope)
        if e.op == "not":
            self.expect(x, ("bool",), e.operand.span, "`not`")
            return ir.Unary(ir.BOOL, e.span, "not", x)
        self.expect(x, ("int", "float"), e.operand.span, f"unary `{e.op}`")
        return ir.Unary(x.type if x.type != ir.NULL else ir.INT, e.span, e.op, x)

    def e_binary(self, e: ast.Binary, scope: Scope) -> ir.Expr:
        left, right = self.expr(e.left, scope), self.expr(e.right, scope)
        op = e.op
        if op in ("and", "or"):
            self.expect(left, ("bool",), e.left.span, f"`{op}`")
            self.expect(right, ("bool",), e.right.span, f"`{op}`")
            return ir.Binary(ir.BOOL, e.span, op, left, right)
        if op in ("=", "!=", "<", "<=", ">", ">="):
            left, right = self.coerce_literal(left, right), self.coerce_literal(right, left)
            if unify(left.type, right.type) is None or left.type.name == "list":
                self.error("E0300", f"cannot compare {left.type} with {right.type}", e.span)
            return ir.Binary(ir.BOOL, e.span, op, left, right)
        self.expect(left, ("int", "float"), e.left.span, f"`{op}`")
        self.expect(right, ("int", "float"), e.right.span, f"`{op}`")
        if op == "/":
            t = ir.FLOAT
        elif op == "%":
            self.expect(left, ("int",), e.left.span, "`%`")
            self.expect(right, ("int",), e.right.span, "`%`")
            t = ir.INT
        else:
            t = ir.FLOAT if ir.FLOAT in (left.type, right.type) else ir.INT
        return ir.Binary(t, e.span, op, left, right)

    def e_isnull(self, e: ast.IsNull, scope: Scope) -> ir.Expr:
        return ir.IsNull(ir.BOOL, e.span, self.expr(e.operand, scope), e.negated)

    def e_inlist(self, e: ast.InList, scope: Scope) -> ir.Expr:
        x = self.expr(e.operand, scope)
        items = []
        for item in e.items:
            y = self.coerce_literal(self.expr(item, scope), x)
            if unify(x.type, y.type) is None:
                self.error(
                    "E0300", f"`in` list item of type {y.type} cannot match {x.type}", item.span
                )
            items.append(y)
        return ir.InList(ir.BOOL, e.span, x, tuple(items), e.negated)

    def e_between(self, e: ast.Between, scope: Scope) -> ir.Expr:
        x = self.expr(e.operand, scope)
        low = self.coerce_literal(self.expr(e.low, scope), x)
        high = self.coerce_literal(self.expr(e.high, scope), x)
        for b, span in ((low, e.low.span), (high, e.high.span)):
            if unify(x.type, b.type) is None:
                self.error("E0300", f"`between` bound of type {b.type} cannot match {x.type}", span)
        return ir.Between(ir.BOOL, e.span, x, low, high, e.negated)

    def e_case(self, e: ast.Case, scope: Scope) -> ir.Expr:
        whens, t = [], ir.NULL
        for cond, value in e.whens:
            c = self.expr(cond, scope)
            self.expect(c, ("bool",), cond.span, "`when`")
            v = self.expr(value, scope)
            u = unify(t, v.type)
            if u is None:
                self.error("E0300", f"`case` branches mix {t} and {v.type}", value.span)
            t = u
            whens.append((c, v))
        default = None
        if e.default is not None:
            default = self.expr(e.default, scope)
            u = unify(t, default.type)
            if u is None:
                self.error("E0300", f"`case` branches mix {t} and {default.type}", e.default.span)
            t = u
        return ir.Case(t, e.span, tuple(whens), default)

    def e_cast(self, e: ast.Cast, scope: Scope) -> ir.Expr:
        x = self.expr(e.operand, scope)
        to = self.type_ref(e.to)
        if to.name == "list" or x.type.name == "list":
            self.error("E0300", "`cast` works on scalar values only", e.span)
        return ir.Cast(to, e.span, x)

    def e_extract(self, e: ast.Extract, scope: Scope) -> ir.Expr:
        if e.part not in EXTRACT_PARTS:
            self.error(
                "E0300",
                f"unknown date part `{e.part}`",
                e.part_span or e.span,
                "one of " + ", ".join(EXTRACT_PARTS),
            )
        x = self.expr(e.operand, scope)
        self.expect(x, ("timestamp", "date"), e.operand.span, "`extract`")
        return ir.Extract(ir.INT, e.span, e.part, x)

    def e_call(self, e: ast.Call, scope: Scope) -> ir.Expr:
        if e.name in ir.AGGREGATES:
            return self.aggregate(e, scope)
        fn = SCALAR_FUNCTIONS.get(e.name)
        if fn is None:
            hint = _suggest(e.name, {**SCALAR_FUNCTIONS, **dict.fromkeys(ir.AGGREGATES)})
            self.error("E0210", f"unknown function `{e.name}`", e.name_span or e.span, hint)
        if e.star:
            self.error("E0211", f"`{e.name}(*)` is not allowed; only `count(*)` takes `*`", e.span)
        lo, hi, typer = fn
        if not (lo <= len(e.args) <= (hi if hi is not None else 10**6)):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            self.error("E0211", f"`{e.name}` takes {want} argument(s), got {len(e.args)}", e.span)
        args = [self.expr(a, scope) for a in e.args]
        return typer(self, e, args)

    # ---- aggregates ----
    def aggregate(self, e: ast.Call, scope: Scope) -> ir.Expr:
        span = e.name_span or e.span
        if not scope.allow_aggregates:
            self.error(
                "E0303",
                f"aggregation `{e.name}` is not allowed here",
                span,
                "aggregations belong in feature definitions, not in `where`",
            )
        if scope.in_aggregate:
            self.error("E0303", f"aggregation `{e.name}` inside another aggregation", span)
        inner = Scope(scope.columns, scope.features, True, scope.window, True, scope.failed)
        if e.star:
            if e.name != "count":
                self.error(
                    "E0211", f"`{e.name}(*)` is not allowed; only `count(*)` takes `*`", e.span
                )
            return ir.Aggregate(ir.INT, e.span, "count", None, scope.window)
        want = 2 if e.name == "last_k" else 1
        if len(e.args) != want:
            self.error("E0211", f"`{e.name}` takes {want} argument(s), got {len(e.args)}", e.span)
        arg = self.expr(e.args[0], inner)
        if arg.type.name == "list":
            self.error("E0300", f"`{e.name}` cannot aggregate a list", e.args[0].span)
        k = None
        if e.name == "last_k":
            kx = e.args[1]
            if not (isinstance(kx, ast.Literal) and kx.kind == "int" and 0 < kx.value <= 1000):
                self.error(
                    "E0305", "`last_k` needs a whole number from 1 to 1000 as its k", kx.span
                )
            k = kx.value
        if e.name in ("count", "count_distinct"):
            t = ir.INT
        elif e.name in ("sum", "avg"):
            if not arg.type.is_numeric and arg.type != ir.NULL:
                self.error(
                    "E0300",
                    f"`{e.name}` needs a number, got {arg.type}",
                    e.args[0].span,
                    "cast it, or use count/min/max/last",
                )
            t = ir.FLOAT if e.name == "avg" or arg.type != ir.INT else ir.INT
        elif e.name == "last_k":
            t = ir.list_of(arg.type)
        else:
            t = arg.type
        if t == ir.NULL:
            self.error("E0300", f"`{e.name}` of a null literal has no type", e.args[0].span)
        return ir.Aggregate(t, e.span, e.name, arg, scope.window, k)

    # ---- helpers ----
    def expect(self, x: ir.Expr, names: tuple[str, ...], span: Span, what: str):
        if x.type.name not in names and x.type != ir.NULL:
            self.error("E0300", f"{what} needs {' or '.join(names)}, got {x.type}", span)

    def coerce_literal(self, x: ir.Expr, other: ir.Expr) -> ir.Expr:
        """A string literal compared with a timestamp or date is read as one (ISO 8601)."""
        if isinstance(x, ir.Literal) and x.type == ir.STRING and other.type.is_temporal:
            import datetime as dt

            try:
                value = (
                    dt.date.fromisoformat(x.value)
                    if other.type == ir.DATE
                    else dt.datetime.fromisoformat(x.value)
                )
            except ValueError:
                self.error("E0300", f"`{x.value}` is not an ISO 8601 {other.type}", x.span)
            return ir.Cast(other.type, x.span, ir.Literal(ir.STRING, x.span, value.isoformat()))
        return x

    def type_ref(self, t: ast.TypeRef) -> ir.Type:
        # A loop, not recursion: `list<list<...>>` parses at any depth.
        outer: list[ast.TypeRef] = []
        while t.element is not None:
            if t.name != "list":
                self.error("E0304", f"unknown type `{t.name}<...>`", t.span, "only `list<T>`")
            outer.append(t)
            if len(outer) > MAX_DEPTH:
                self.error(
                    "E0103", f"type nested too deeply (at most {MAX_DEPTH} levels)", outer[0].span
                )
            t = t.element
        if t.name not in ir.SCALARS:
            self.error("E0304", f"unknown type `{t.name}`", t.span, _suggest(t.name, ir.SCALARS))
        result = ir.SCALARS[t.name]
        for _ in outer:
            result = ir.list_of(result)
        return result


# ---- scalar functions: (min args, max args or None, typer) ---------------------------------------
def _same_numeric(c: ExprChecker, e: ast.Call, args: list[ir.Expr]) -> ir.Expr:
    c.expect(args[0], ("int", "float"), e.args[0].span, f"`{e.name}`")
    if len(args) > 1:
        c.expect(args[1], ("int",), e.args[1].span, f"`{e.name}` digits")
    return ir.Func(
        args[0].type if args[0].type != ir.NULL else ir.FLOAT, e.span, e.name, tuple(args)
    )


def _to_float(c: ExprChecker, e: ast.Call, args: list[ir.Expr]) -> ir.Expr:
    for a, x in zip(args, e.args, strict=True):
        c.expect(a, ("int", "float"), x.span, f"`{e.name}`")
    return ir.Func(ir.FLOAT, e.span, e.name, tuple(args))


def _common(c: ExprChecker, e: ast.Call, args: list[ir.Expr]) -> ir.Expr:
    t = ir.NULL
    for a, x in zip(args, e.args, strict=True):
        u = unify(t, a.type)
        if u is None or a.type.name == "list":
            c.error("E0300", f"`{e.name}` arguments mix {t} and {a.type}", x.span)
        t = u
    return ir.Func(t, e.span, e.name, tuple(args))


def _nullif(c: ExprChecker, e: ast.Call, args: list[ir.Expr]) -> ir.Expr:
    a, b = args
    if unify(a.type, b.type) is None:
        c.error("E0300", f"`nullif` compares {a.type} with {b.type}", e.span)
    return ir.Func(a.type, e.span, e.name, tuple(args))


def _string_fn(result: ir.Type):
    def typer(c: ExprChecker, e: ast.Call, args: list[ir.Expr]) -> ir.Expr:
        c.expect(args[0], ("string",), e.args[0].span, f"`{e.name}`")
        return ir.Func(result, e.span, e.name, tuple(args))

    return typer


def _concat(c: ExprChecker, e: ast.Call, args: list[ir.Expr]) -> ir.Expr:
    for a, x in zip(args, e.args, strict=True):
        if a.type.name == "list":
            c.error("E0300", "`concat` works on scalar values only", x.span)
    return ir.Func(ir.STRING, e.span, e.name, tuple(args))


def _date_trunc(c: ExprChecker, e: ast.Call, args: list[ir.Expr]) -> ir.Expr:
    part = e.args[0]
    if not (
        isinstance(part, ast.Literal) and part.kind == "string" and part.value.lower() in DATE_PARTS
    ):
        c.error(
            "E0300",
            "`date_trunc` needs a unit in quotes as its first argument",
            part.span,
            "one of " + ", ".join(f"'{p}'" for p in DATE_PARTS),
        )
    c.expect(args[1], ("timestamp", "date"), e.args[1].span, "`date_trunc`")
    unit = ir.Literal(ir.STRING, part.span, part.value.lower())
    return ir.Func(ir.TIMESTAMP, e.span, e.name, (unit, args[1]))


SCALAR_FUNCTIONS: dict[str, tuple[int, int | None, Callable]] = {
    "coalesce": (1, None, _common),
    "greatest": (1, None, _common),
    "least": (1, None, _common),
    "nullif": (2, 2, _nullif),
    "abs": (1, 1, _same_numeric),
    "round": (1, 2, _same_numeric),
    "floor": (1, 1, _same_numeric),
    "ceil": (1, 1, _same_numeric),
    "ln": (1, 1, _to_float),
    "exp": (1, 1, _to_float),
    "sqrt": (1, 1, _to_float),
    "power": (2, 2, _to_float),
    "lower": (1, 1, _string_fn(ir.STRING)),
    "upper": (1, 1, _string_fn(ir.STRING)),
    "length": (1, 1, _string_fn(ir.INT)),
    "concat": (1, None, _concat),
    "date_trunc": (2, 2, _date_trunc),
}


def _suggest(name: str, known) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean `{match[0]}`?" if match else None
