"""W0001: a feature that computes the same values as another one, in any view of the repository.

Two teams who need "spend over the last week" should share one feature, not maintain two that
drift apart. Features are compared by their canonical form (`fsdsl.canonical`): commutative
operands, redundant parentheses, comparison direction and duration spelling (`7d` = `168h` =
`1w`) do not matter, and a derived feature is compared through what it expands to, so an alias
(`b = a`) repeats `a`. What the value depends on besides the expression is compared too, by
meaning rather than name: the source's table, timestamp and `created` columns (two source
declarations of one table are one source), the source columns the entity's keys come from (not
the entity's or the keys' names), the view's filter and its TTL, and the feature's type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from fsdsl import ir
from fsdsl.canonical import Form, expr_form
from fsdsl.diagnostics import Diagnostic, Note, Severity
from fsdsl.lint import Rule, expressions, name_span, written_views

# What no `where` means: every event counts, as under `where true`.
_NO_FILTER = Form("lit True: bool")


def context_key(view: ir.View) -> tuple[str, ...]:
    """Everything a feature of `view` depends on besides its own expression.

    Unlike `fsdsl.canonical.context_form` (a view's fingerprint), it leaves out the columns the
    view's other features read: they change no value of this feature, and with them two views
    sharing one feature among different siblings would never compare equal.
    """
    src = view.source
    where = expr_form(view.where) if view.where is not None else _NO_FILTER
    return (
        *(f"key {c}: {src.columns[c]}" for c in view.key_columns),
        f"table {json.dumps(list(src.table))}",
        f"timestamp {src.timestamp}",
        f"created {src.created}" if src.created is not None else "created none",
        f"where {where.digest}",
        f"ttl {view.ttl.seconds}s" if view.ttl is not None else "ttl none",
    )


def feature_keys(
    view: ir.View, seen: dict[ir.Expr, Form] | None = None
) -> dict[str, tuple[str, ...]]:
    """Each feature's key for comparison across views: its type, the canonical form of its
    expression with the features it references expanded, and the view's context.

    `seen` keeps the forms of expressions that reference no feature across calls: the same
    `count(*) over 7d` recurs in view after view, and IR expressions compare by structure.
    """
    seen = {} if seen is None else seen
    nodes, derived = expressions(view)
    exprs: dict[str, Form] = {}
    for f in view.features:
        if not any(isinstance(n, ir.FeatureRef) for n in nodes[f.name]):
            if (form := seen.get(f.expr)) is None:
                form = seen[f.expr] = expr_form(f.expr)
            exprs[f.name] = form
    for f in derived:  # each after what it references
        exprs[f.name] = expr_form(f.expr, exprs)
    context = context_key(view)
    return {f.name: (str(f.type), exprs[f.name].digest, *context) for f in view.features}


def _position(found: tuple[ir.View, ir.Feature]) -> tuple[str, int, int]:
    s = found[1].span
    return (s.file, s.line, s.col)


class DuplicateFeature(Rule):
    """A feature computes the same values as another feature: reference the existing one.

    Compared after canonicalisation: commutative operators, parentheses, aliases, duration
    spellings and derived features expanded; the same source table, filter, keys and TTL.
    """

    code = "W0001"
    name = "duplicate-feature"

    def check(self, repo: ir.Repository) -> Iterable[Diagnostic]:
        groups: dict[tuple[str, ...], list[tuple[ir.View, ir.Feature]]] = {}
        seen: dict[ir.Expr, Form] = {}
        for view in written_views(repo):
            keys = feature_keys(view, seen)
            for f in view.features:
                groups.setdefault(keys[f.name], []).append((view, f))
        for found in groups.values():
            if len(found) < 2:
                continue
            found.sort(key=_position)  # the first written is the one to keep
            (first_view, first), rest = found[0], found[1:]
            for view, f in rest:
                same = view.name == first_view.name
                other = f"`{first.name}`" if same else f"`{first_view.name}.{first.name}`"
                hint = (
                    f"remove `{f.name}` and use `{first.name}` in its place"
                    if same
                    else f"remove `{f.name}` and reference the existing feature: "
                    f"`features {first_view.name}.{first.name}` in a service"
                )
                yield Diagnostic(
                    self.code,
                    f"feature `{f.name}` of `{view.name}` computes the same values as {other}",
                    name_span(f),
                    Severity.WARNING,
                    (hint,),
                    (Note(f"{other} is defined here", name_span(first)),),
                )
