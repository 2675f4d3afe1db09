"""The meaning of a view without its spelling: a canonical form of the IR, with no dialect.

Two definitions that compute the same values get equal forms, whatever their formatting,
comments, `owner`/`description`, declaration order, parentheses, order of commutative operands
(`+ * = != and or`), direction of a comparison (`a > b` is `b < a`) or spelling of a duration
(`7d`, `168h` and `1w` are 604800 seconds). A derived feature is expanded into the expression of
what it reads, so a feature's form names no other feature. The online fingerprint hashes a
view's form (`fsdsl.online.fingerprint`); a check for duplicate features can compare features'
forms across views.

The forms are conservative: where two spellings might differ in value (float addition is not
associative, so `(a + b) + c` is not `a + (b + c)`; `1` is an int and `1.0` a float), they
differ. An equal form must mean equal values; an unequal one only costs a recomputation.

A form is a tree of `Form` nodes, each identified by a digest of its head and its children's
digests. Derived features share their inputs' nodes rather than copying them, so a form stays
as small as the definitions, and comparing two forms is comparing two digests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from fsdsl import ir


@dataclass(frozen=True, eq=False)
class Form:
    """One node of a canonical form: equal digests are equal meanings."""

    head: str
    args: tuple[Form, ...] = ()
    digest: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        payload = json.dumps([self.head, [a.digest for a in self.args]])
        object.__setattr__(self, "digest", hashlib.sha256(payload.encode()).hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Form) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __str__(self) -> str:
        """A readable text of the whole tree, e.g. for a duplicate report (derived features
        appear expanded; the checker bounds how large that gets, E0103)."""
        if not self.args:
            return self.head
        return f"{self.head}({', '.join(str(a) for a in self.args)})"


def _sorted(forms: list[Form]) -> tuple[Form, ...]:
    return tuple(sorted(forms, key=lambda f: f.digest))


# Operators whose operands may be swapped without changing a value, in SQL's three-valued logic
# too; `and`/`or` are also associative, so a chain of them is one node over all its operands.
_COMMUTATIVE = ("+", "*", "=", "!=")
_CONNECTIVES = ("and", "or")
_FLIPPED = {">": "<", ">=": "<="}
_TRUE = Form("lit True: bool")


def expr_form(e: ir.Expr, refs: dict[str, Form] | None = None) -> Form:
    """The form of an expression; `refs` gives the form of each feature it references (an
    aggregation's argument or a `where` references none)."""
    go = lambda x: expr_form(x, refs)  # noqa: E731 - the recursion reads best short
    t = str(e.type)
    if isinstance(e, ir.FeatureRef):
        if refs is None or e.name not in refs:
            raise ValueError(f"no form for the feature `{e.name}` this expression references")
        return refs[e.name]
    if isinstance(e, ir.Column):
        return Form(f"col {e.name}: {t}")
    if isinstance(e, ir.Literal):
        return Form(f"lit {e.value!r}: {t}")
    if isinstance(e, ir.Func):
        return Form(f"{e.name}(): {t}", tuple(go(a) for a in e.args))
    if isinstance(e, ir.Unary):
        if e.op == "+":  # `+x` is `x`
            return go(e.operand)
        return Form(f"{e.op}: {t}", (go(e.operand),))
    if isinstance(e, ir.Binary):
        return _binary(e.op, t, go(e.left), go(e.right))
    if isinstance(e, ir.IsNull):
        return Form("is not null" if e.negated else "is null", (go(e.operand),))
    if isinstance(e, ir.InList):  # a set: order and repetition of its items mean nothing
        items = _sorted(list({f.digest: f for f in map(go, e.items)}.values()))
        return Form("not in" if e.negated else "in", (go(e.operand), Form("items", items)))
    if isinstance(e, ir.Between):
        head = "not between" if e.negated else "between"
        return Form(head, (go(e.operand), go(e.low), go(e.high)))
    if isinstance(e, ir.Case):
        whens = tuple(Form("when", (go(c), go(v))) for c, v in e.whens)
        default = go(e.default) if e.default is not None else Form("lit None: null")
        return Form(f"case: {t}", (*whens, default))
    if isinstance(e, ir.Cast):
        inner = go(e.operand)
        return inner if e.operand.type == e.type else Form(f"cast: {t}", (inner,))
    if isinstance(e, ir.Extract):
        return Form(f"extract {e.part}: {t}", (go(e.operand),))
    if isinstance(e, ir.Aggregate):
        over = f" over {e.window.seconds}s" if e.window is not None else ""
        k = f" k={e.k}" if e.k is not None else ""
        arg = (go(e.arg),) if e.arg is not None else ()
        return Form(f"{e.func}{over}{k}: {t}", arg)
    raise TypeError(f"no canonical form for {type(e).__name__}")


def _binary(op: str, t: str, left: Form, right: Form) -> Form:
    if op in _FLIPPED:
        op, left, right = _FLIPPED[op], right, left
    head = f"{op}: {t}"
    if op in _CONNECTIVES:
        flat = [x for side in (left, right) for x in (side.args if side.head == head else (side,))]
        return Form(head, _sorted(flat))
    if op in _COMMUTATIVE:
        return Form(head, _sorted([left, right]))
    return Form(head, (left, right))


def context_form(view: ir.View) -> Form:
    """What every feature of `view` depends on besides its own expression: the entity's keys
    and the source columns they come from, the source (table, timestamp, created, the columns
    the view reads), the filter and the TTL. Not the names of the view, entity or source."""
    src = view.source
    keys = Form(
        "entity",
        tuple(
            Form(f"key {k.name}: {k.type} from {c}: {src.columns.get(c, k.type)}")
            for k, c in zip(view.entity.keys, view.key_columns, strict=True)
        ),
    )
    read = {c: src.columns[c] for c in (*view.key_columns, src.timestamp) if c in src.columns}
    exprs = [f.expr for f in view.features] + ([view.where] if view.where is not None else [])
    for e in exprs:
        read.update((n.name, n.type) for n in ir.walk(e) if isinstance(n, ir.Column))
    created = (
        Form(f"created {src.created}: {src.columns.get(src.created)}")
        if src.created is not None
        else Form("created none")
    )
    # one row read per tie (a link's view, several target keys): other rows, other values
    ties = (
        [Form(f"one row per tie {json.dumps(list(view.tie_columns))}")] if view.tie_columns else []
    )
    source = Form(
        f"table {json.dumps(list(src.table))}",
        (
            Form(f"timestamp {src.timestamp}: {src.columns.get(src.timestamp)}"),
            created,
            Form("columns", tuple(Form(f"col {n}: {read[n]}") for n in sorted(read))),
            *ties,
        ),
    )
    where = expr_form(view.where) if view.where is not None else _TRUE  # no filter is `true`
    ttl = Form(f"ttl {view.ttl.seconds}s" if view.ttl is not None else "ttl none")
    return Form("context", (keys, source, Form("where", (where,)), ttl))


def _expressions(view: ir.View) -> dict[str, Form]:
    """Each feature's expression form, what it references expanded."""
    done: dict[str, Form] = {}
    for f in view.in_dependency_order():
        done[f.name] = expr_form(f.expr, done)
    return done


def feature_forms(view: ir.View) -> dict[str, Form]:
    """The form of each feature of `view`, by name: its type, its expression (expanded) and
    its context. Two features with equal forms compute the same values, even from two views."""
    context = context_form(view)
    exprs = _expressions(view)
    # every non-list value is cast to the declared type: it belongs to the feature, not its
    # expression (a derived feature reads the expression uncast)
    return {f.name: Form(f"feature: {f.type}", (exprs[f.name], context)) for f in view.features}


def feature_form(view: ir.View, name: str) -> Form:
    return feature_forms(view)[name]


def view_form(view: ir.View) -> Form:
    """The form of a whole view: each feature's form under its name (values are stored and
    served by name), in name order (declaration order changes no value)."""
    forms = feature_forms(view)
    named = [Form(f"feature {name}", (forms[name],)) for name in sorted(forms)]
    return Form("view", (context_form(view), *named))
