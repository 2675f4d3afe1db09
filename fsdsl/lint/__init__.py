"""Lint rules: what a checked repository may do but probably should not. Warnings, never errors.

The checker (`fsdsl.check`) decides whether a repository means anything; a rule here runs only on
a repository that checked clean and says where it looks like a mistake: a feature that computes
what another one already computes, a name that promises another window than the one it has.
One class per rule (as sqlmesh's linter): its docstring is its summary (the SARIF rule
description), its `code` the id a user sees.
"""

from __future__ import annotations

from collections.abc import Iterable

from fsdsl import ir
from fsdsl.diagnostics import Diagnostic, Span
from fsdsl.project import gc_paused


class Rule:
    """A check over a whole repository (duplicates need to see every view at once)."""

    code: str = ""
    name: str = ""

    def check(self, repo: ir.Repository) -> Iterable[Diagnostic]:
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


def rules() -> list[Rule]:
    from fsdsl.lint.duplicates import DuplicateFeature
    from fsdsl.lint.windows import NameContradictsWindow

    return [DuplicateFeature(), NameContradictsWindow()]


def lint_repository(repo: ir.Repository) -> list[Diagnostic]:
    """Every rule's warnings on `repo`, sorted by position like the checker's diagnostics."""
    with gc_paused():  # forms of every feature at once: nothing to collect meanwhile
        out = [d for rule in rules() for d in rule.check(repo)]
    return sorted(out, key=lambda d: (d.span.file, d.span.line, d.span.col, d.code))


def expressions(view: ir.View) -> tuple[dict[str, list[ir.Expr]], list[ir.Feature]]:
    """Each feature's expression nodes (one walk, with a stack: derived features can nest
    deep), and the derived features in an order where each comes after the derived features
    it references. The checker has refused cycles; one is cut rather than followed."""
    nodes: dict[str, list[ir.Expr]] = {}
    refs: dict[str, list[str]] = {}
    for f in view.features:
        found, stack = [], [f.expr]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(ir.children(node))
        nodes[f.name] = found
        if named := [n.name for n in found if isinstance(n, ir.FeatureRef)]:
            refs[f.name] = named
    order: list[str] = []
    state: dict[str, bool] = {}  # False: on the path; True: placed
    for root in refs:
        stack = [root]
        while stack:
            name = stack[-1]
            if state.get(name):
                stack.pop()
                continue
            state[name] = False
            pending = [r for r in refs[name] if r in refs and r not in state]
            if pending:
                stack.extend(pending)
                continue
            state[name] = True
            order.append(name)
            stack.pop()
    by_name = {f.name: f for f in view.features}
    return nodes, [by_name[n] for n in order]


def written_views(repo: ir.Repository) -> list[ir.View]:
    """The views a user wrote as `features` blocks: not those a `link` compiles to, whose
    features are named after keys and located at the link."""
    return [v for v in repo.views.values() if getattr(v, "link", None) is None]


def name_span(feature: ir.Feature, start: int = 0, length: int | None = None) -> Span:
    """The feature's name, or the part of it at `start`: a feature statement begins with its
    name, so the name's columns follow from the statement's span."""
    s = feature.span
    col = s.col + start
    width = len(feature.name) if length is None else length
    return Span(s.file, s.line, col, s.line, col + width)
