"""A brute-force reference implementation of docs/semantics.md, in plain Python.

For every (entity, T) it scans every event of the source. It shares no code with the compiler
beyond the IR it reads, so a disagreement between it and a warehouse is a real bug in one of them.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal, localcontext

from fsdsl import ir

UNIT_SECONDS = ir.UNIT_SECONDS


def delta(d: ir.Duration) -> dt.timedelta:
    return dt.timedelta(seconds=d.seconds)


# ---- scalar expressions, SQL null semantics -----------------------------------------------------
def evaluate(e: ir.Expr, row: dict, leaf=None):
    """Value of a row expression (columns from `row`) or of a feature expression (via `leaf`)."""

    def go(x):
        return evaluate(x, row, leaf)

    if isinstance(e, ir.Column):
        return row[e.name]
    if isinstance(e, ir.Aggregate | ir.FeatureRef):
        return leaf(e)
    if isinstance(e, ir.Literal):
        return e.value
    if isinstance(e, ir.Unary):
        v = go(e.operand)
        if v is None:
            return None
        return (not v) if e.op == "not" else (-v if e.op == "-" else v)
    if isinstance(e, ir.Binary):
        if e.op == "and":
            a, b = go(e.left), go(e.right)
            if a is False or b is False:
                return False
            return None if a is None or b is None else True
        if e.op == "or":
            a, b = go(e.left), go(e.right)
            if a is True or b is True:
                return True
            return None if a is None or b is None else False
        a, b = _promote(go(e.left), go(e.right))
        if a is None or b is None:
            return None
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if e.op == "*":
            return a * b
        if e.op == "/":
            return None if b == 0 else float(a) / float(b)
        if e.op == "%":
            # truncated division: the remainder has the dividend's sign (exact on big ints)
            return None if b == 0 else (abs(a) % abs(b)) * (1 if a >= 0 else -1)
        return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
    if isinstance(e, ir.IsNull):
        v = go(e.operand)
        return (v is not None) if e.negated else (v is None)
    if isinstance(e, ir.InList):
        v = go(e.operand)
        if v is None:
            return None
        items = [_promote(go(i), v)[0] for i in e.items]
        v = _promote(v, *items)[0]
        found = v in [i for i in items if i is not None]
        result = True if found else (None if None in items else False)
        return (None if result is None else not result) if e.negated else result
    if isinstance(e, ir.Between):
        v, lo, hi = _promote(go(e.operand), go(e.low), go(e.high))
        if v is None or lo is None or hi is None:
            return None
        r = lo <= v <= hi
        return not r if e.negated else r
    if isinstance(e, ir.Case):
        for c, v in e.whens:
            if go(c) is True:
                return go(v)
        return go(e.default) if e.default is not None else None
    if isinstance(e, ir.Cast):
        return cast(go(e.operand), e.type)
    if isinstance(e, ir.Extract):
        v = go(e.operand)
        if v is None:
            return None
        if e.part == "quarter":
            return (v.month - 1) // 3 + 1
        return getattr(v, e.part)
    if isinstance(e, ir.Func):
        return function(e, [go(a) for a in e.args])
    raise TypeError(e)


def _promote(*values):
    """`date` and `timestamp` mix: with a timestamp among them, dates compare as midnight."""
    if any(isinstance(v, dt.datetime) for v in values):
        return tuple(cast(v, ir.TIMESTAMP) if isinstance(v, dt.date) else v for v in values)
    return values


def cast(v, t: ir.Type):
    if v is None:
        return None
    if t == ir.FLOAT:
        return float(v)
    if t == ir.INT:
        return int(Decimal(v).to_integral_value(ROUND_HALF_UP)) if isinstance(v, float) else int(v)
    if t == ir.STRING:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    if t == ir.BOOL:
        return bool(v)
    if t == ir.TIMESTAMP:
        if isinstance(v, str):
            return dt.datetime.fromisoformat(v)
        if isinstance(v, dt.datetime):
            return v
        return dt.datetime(v.year, v.month, v.day)
    if t == ir.DATE:
        if isinstance(v, str):
            return dt.date.fromisoformat(v)
        return v.date() if isinstance(v, dt.datetime) else v
    return v


def _round(x, digits=0):
    """Halves away from zero, of the exact binary value of a float (1.005 is stored as
    1.00499999999999989..., so it rounds to 1.0 at two digits)."""
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return x
    if isinstance(x, float) and digits > 1100:  # past a double's last binary digit: unchanged
        return x
    with localcontext() as ctx:
        ctx.prec = 2000  # a double's exact decimal value has at most 767 significant digits
        r = Decimal(x).quantize(Decimal(1).scaleb(-max(digits, -400)), rounding=ROUND_HALF_UP)
    return float(r) if isinstance(x, float) else int(r)


def function(e: ir.Func, args: list):
    n = e.name
    if n == "coalesce":
        return next((a for a in args if a is not None), None)
    if n in ("greatest", "least"):
        vals = [a for a in _promote(*args) if a is not None]
        return (max if n == "greatest" else min)(vals) if vals else None
    if n == "nullif":
        return None if args[0] is None or args[0] == args[1] else args[0]
    if n == "concat":
        return "".join("" if a is None else cast(a, ir.STRING) for a in args)
    if n == "date_trunc":
        unit, v = args
        if v is None:
            return None
        v = cast(v, ir.TIMESTAMP)
        if unit == "second":
            return v.replace(microsecond=0)
        if unit == "minute":
            return v.replace(second=0, microsecond=0)
        if unit == "hour":
            return v.replace(minute=0, second=0, microsecond=0)
        day = v.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == "day":
            return day
        if unit == "week":
            return day - dt.timedelta(days=day.weekday())
        if unit == "month":
            return day.replace(day=1)
        if unit == "quarter":
            return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
        return day.replace(day=1, month=1)
    if any(a is None for a in args):
        return None
    x = args[0]
    if n == "abs":
        return abs(x)
    if n == "round":
        return _round(x, args[1] if len(args) > 1 else 0)
    if n == "floor":
        return math.floor(x) if isinstance(x, int) else float(math.floor(x))
    if n == "ceil":
        return math.ceil(x) if isinstance(x, int) else float(math.ceil(x))
    if n == "ln":
        return math.log(x)
    if n == "exp":
        return math.exp(x)
    if n == "sqrt":
        return math.sqrt(x)
    if n == "power":
        return float(x) ** float(args[1])
    if n == "lower":
        return x.lower()
    if n == "upper":
        return x.upper()
    if n == "length":
        return len(x)
    raise TypeError(n)


# ---- aggregation -----------------------------------------------------------------------------
def visible_rows(view: ir.View, events: list[dict], key: tuple, t: dt.datetime) -> list[dict]:
    src = view.source
    out = []
    for r in events:
        if any(r[c] is None for c in view.key_columns) or r[src.timestamp] is None:
            continue
        if src.created and r[src.created] is None:
            continue
        if tuple(r[c] for c in view.key_columns) != key:
            continue
        if not r[src.timestamp] < t:
            continue
        if src.created and not r[src.created] < t:
            continue
        if view.where is not None and evaluate(view.where, r) is not True:
            continue
        out.append(r)
    return out


def aggregate(agg: ir.Aggregate, view: ir.View, rows: list[dict], t: dt.datetime):
    src = view.source
    if agg.window is not None:
        rows = [r for r in rows if r[src.timestamp] >= t - delta(agg.window)]
    if agg.arg is None:
        return len(rows)
    pairs = [(r, evaluate(agg.arg, r)) for r in rows]
    pairs = [(r, v) for r, v in pairs if v is not None]
    vals = [v for _, v in pairs]
    f = agg.func
    if f == "count":
        return len(vals)
    if f == "count_distinct":
        return len(set(vals))
    if f == "last_k":
        ordered = sorted(pairs, key=lambda p: order_key(src, p), reverse=True)
        return [v for _, v in ordered[: agg.k]]
    if not vals:
        return None
    if f == "sum":
        return math.fsum(vals) if agg.type == ir.FLOAT else sum(vals)
    if f == "avg":
        return math.fsum(vals) / len(vals)
    if f == "min":
        return min(vals)
    if f == "max":
        return max(vals)
    ordered = sorted(pairs, key=lambda p: order_key(src, p))
    return ordered[-1][1] if f == "last" else ordered[0][1]


def order_key(src: ir.Source, pair):
    r, v = pair
    return (r[src.timestamp], r[src.created] if src.created else 0, v)


def view_values(view: ir.View, events: list[dict], key: tuple, t: dt.datetime) -> dict:
    """Every feature of `view` for the entity `key` as of `t` (None key parts: unseen)."""
    rows = [] if any(k is None for k in key) else visible_rows(view, events, key, t)
    if view.ttl is not None and not any(
        r[view.source.timestamp] >= t - delta(view.ttl) for r in rows
    ):
        return {f.name: None for f in view.features}
    aggs = {a: aggregate(a, view, rows, t) for a in view.aggregates()}
    done: dict[str, object] = {}

    def feature(f: ir.Feature):
        if f.name not in done:
            raw = evaluate(
                f.expr,
                {},
                lambda e: aggs[e] if isinstance(e, ir.Aggregate) else feature(view.feature(e.name)),
            )
            done[f.name] = raw if f.type.name == "list" else cast(raw, f.type)
        return done[f.name]

    return {f.name: feature(f) for f in view.features}


def training_set(
    repo: ir.Repository,
    features: list[tuple[str, str]],
    events: dict[str, list],
    labels: list[dict],
    timestamp_column: str = "event_timestamp",
) -> list[dict]:
    """Each label row with the requested features; `events` maps a source name to its rows."""
    out = []
    for label in labels:
        row = dict(label)
        cache = {}
        for vname, fname in features:
            view = repo.views[vname]
            if vname not in cache:
                key = tuple(label[k.name] for k in view.entity.keys)
                cache[vname] = view_values(
                    view, events[view.source.name], key, label[timestamp_column]
                )
            row[fname] = cache[vname][fname]
        out.append(row)
    return out
