"""IR expressions -> sqlglot expressions, with the portable semantics made explicit.

Where dialects disagree on a scalar operator the tree spells out the contract instead of
relying on a dialect: `/` is floating-point and null on a zero divisor, `concat` treats null as
an empty string, `greatest`/`least` ignore nulls.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile.dialects import Dialect

Resolver = Callable[[ir.Expr], exp.Expression]

_BINARY = {
    "+": exp.Add,
    "-": exp.Sub,
    "*": exp.Mul,
    "%": exp.Mod,
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
    "and": exp.And,
    "or": exp.Or,
}


def literal(value: object, t: ir.Type, d: Dialect) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.Literal.number(repr(value))
    return exp.Literal.string(str(value))


def wrap(x: exp.Expression) -> exp.Expression:
    """Parenthesise an operand that is itself an operator, so the tree prints as it parses."""
    if isinstance(
        x,
        exp.Binary | exp.Connector | exp.Not | exp.Is | exp.In | exp.Between | exp.Neg | exp.Unary,
    ):
        return exp.Paren(this=x)
    return x


def to_sql(e: ir.Expr, d: Dialect, leaf: Resolver) -> exp.Expression:
    """Compile `e`; `leaf` compiles columns, aggregates and feature references."""

    def go(x: ir.Expr) -> exp.Expression:
        return to_sql(x, d, leaf)

    if isinstance(e, ir.Column | ir.Aggregate | ir.FeatureRef):
        return leaf(e)
    if isinstance(e, ir.Literal):
        return literal(e.value, e.type, d)
    if isinstance(e, ir.Unary):
        if e.op == "not":
            return exp.Not(this=wrap(go(e.operand)))
        if e.op == "-":
            return exp.Neg(this=wrap(go(e.operand)))
        return go(e.operand)
    if isinstance(e, ir.Binary):
        left, right = wrap(go(e.left)), wrap(go(e.right))
        if e.op == "/":
            if e.left.type != ir.FLOAT:
                left = d.cast(left, ir.FLOAT)
            return exp.Div(
                this=left, expression=exp.Nullif(this=right, expression=exp.Literal.number(0))
            )
        if e.op == "%":
            if d.name in ("postgres", "redshift"):  # `%` would clash with pyformat parameters
                return exp.Anonymous(
                    this="MOD",
                    expressions=[left, exp.Nullif(this=right, expression=exp.Literal.number(0))],
                )
            return exp.Mod(
                this=left, expression=exp.Nullif(this=right, expression=exp.Literal.number(0))
            )
        return _BINARY[e.op](this=left, expression=right)
    if isinstance(e, ir.IsNull):
        test = exp.Is(this=wrap(go(e.operand)), expression=exp.Null())
        return exp.Not(this=test) if e.negated else test
    if isinstance(e, ir.InList):
        test = exp.In(this=wrap(go(e.operand)), expressions=[go(i) for i in e.items])
        return exp.Not(this=exp.Paren(this=test)) if e.negated else test
    if isinstance(e, ir.Between):
        test = exp.Between(this=wrap(go(e.operand)), low=wrap(go(e.low)), high=wrap(go(e.high)))
        return exp.Not(this=exp.Paren(this=test)) if e.negated else test
    if isinstance(e, ir.Case):
        ifs = [exp.If(this=go(c), true=go(v)) for c, v in e.whens]
        default = go(e.default) if e.default is not None else None
        return exp.Case(ifs=ifs, default=default)
    if isinstance(e, ir.Cast):
        return d.cast(go(e.operand), e.type)
    if isinstance(e, ir.Extract):
        return exp.Extract(this=exp.var(e.part.upper()), expression=go(e.operand))
    if isinstance(e, ir.Func):
        return _function(e, d, go)
    raise TypeError(f"cannot compile {type(e).__name__}")


def _function(e: ir.Func, d: Dialect, go) -> exp.Expression:
    args = [go(a) for a in e.args]
    name = e.name
    if name == "coalesce":
        return exp.Coalesce(this=args[0], expressions=args[1:])
    if name in ("greatest", "least"):
        cls = exp.Greatest if name == "greatest" else exp.Least
        return cls(this=args[0], expressions=args[1:], ignore_nulls=True)
    if name == "nullif":
        return exp.Nullif(this=args[0], expression=args[1])
    if name == "abs":
        return exp.Abs(this=args[0])
    if name == "round":
        return d.round(args[0], args[1] if len(args) > 1 else None, e.type)
    if name == "floor":
        return exp.Floor(this=args[0])
    if name == "ceil":
        return exp.Ceil(this=args[0])
    if name == "ln":
        return exp.Ln(this=d.cast(args[0], ir.FLOAT))
    if name == "exp":
        return exp.Exp(this=d.cast(args[0], ir.FLOAT))
    if name == "sqrt":
        return exp.Sqrt(this=d.cast(args[0], ir.FLOAT))
    if name == "power":
        return exp.Pow(this=d.cast(args[0], ir.FLOAT), expression=d.cast(args[1], ir.FLOAT))
    if name == "lower":
        return exp.Lower(this=args[0])
    if name == "upper":
        return exp.Upper(this=args[0])
    if name == "length":
        return exp.Length(this=args[0])
    if name == "concat":
        parts = [
            exp.Coalesce(this=d.cast(a, ir.STRING), expressions=[exp.Literal.string("")])
            for a in args
        ]
        return exp.Concat(expressions=parts) if len(parts) > 1 else parts[0]
    if name == "date_trunc":
        unit = e.args[0].value.upper()
        value = args[1] if e.args[1].type == ir.TIMESTAMP else d.cast(args[1], ir.TIMESTAMP)
        return d.truncate(value, unit)
    raise TypeError(f"no SQL for function {name}")
