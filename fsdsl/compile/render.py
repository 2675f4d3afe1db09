"""Trees -> text, with one set of generator options for every caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile import dialects
from fsdsl.compile.refresh import refresh_query
from fsdsl.compile.training import training_query
from fsdsl.diagnostics import UsageError

TARGETS = ("training", "refresh")


def sql_text(tree: exp.Expression, dialect: str, pretty: bool = True) -> str:
    """The text of `tree`, its parameters (`exp.Placeholder` nodes, named) in the style its
    dialect's backend binds: `$as_of` DuckDB, `:as_of` Spark, `$1` Postgres (see
    `positional`): psycopg's raw cursor sends the text untouched and the server's own parser
    finds `$n`, never inside a literal or a quoted name."""
    d = dialects.get(dialect)
    if d.positional_parameters and tree.find(exp.Placeholder):
        number = {name: i for i, name in enumerate(parameters(tree), start=1)}
        tree = tree.transform(
            lambda n: (
                exp.Parameter(this=exp.Literal.number(number[n.name]))
                if isinstance(n, exp.Placeholder)
                else n
            )
        )
    # identify=True: every identifier quoted, so any user-chosen name is safe in every dialect.
    return tree.sql(dialect=d.sqlglot_dialect, identify=True, pretty=pretty)


def parameters(tree: exp.Expression) -> tuple[str, ...]:
    """The names of the parameters of `tree`, in the order a positional driver binds them."""
    return tuple(sorted({p.name for p in tree.find_all(exp.Placeholder)}))


def positional(params: Mapping[str, Any]) -> list[Any]:
    """Values for `$1, $2, ...` of a text from `sql_text` in a dialect with
    `positional_parameters`: `params` must name exactly the parameters of its tree, and are
    bound in sorted order of name."""
    return [params[name] for name in sorted(params)]


@dataclass(frozen=True)
class CompiledQuery:
    name: str  # the service or view it computes
    kind: str  # "service" | "view"
    target: str
    dialect: str
    sql: str


def compile_repository(
    repo: ir.Repository,
    *,
    service: str | None = None,
    view: str | None = None,
    target: str = "training",
    dialect: str = "duckdb",
    timestamp_column: str = "event_timestamp",
    pretty: bool = True,
) -> list[CompiledQuery]:
    """The queries `fsc compile` prints: for a service, a view, or everything in the repository."""
    if target not in TARGETS:
        raise UsageError(f"unknown target `{target}`; use training or refresh", "E0004")
    if service and view:
        raise UsageError("give --service or --view, not both", "E0004")
    if service and service not in repo.services:
        raise UsageError(_unknown("service", service, repo.services), "E0005")
    if view and view not in repo.views:
        raise UsageError(_unknown("view", view, repo.views), "E0005")

    if view:
        groups = [("view", view, [(view, f.name) for f in repo.views[view].features])]
    elif service:
        groups = [("service", service, list(repo.services[service].features))]
    elif target == "training" and repo.services:
        groups = [("service", s.name, list(s.features)) for s in repo.services.values()]
    else:
        groups = [
            ("view", v.name, [(v.name, f.name) for f in v.features]) for v in repo.views.values()
        ]

    out = []
    for kind, name, features in groups:
        svc = repo.services[name] if kind == "service" else None
        if target == "training":
            tree = training_query(
                repo, features, dialect, timestamp_column=timestamp_column, service=svc
            )
            out.append(CompiledQuery(name, kind, target, dialect, sql_text(tree, dialect, pretty)))
        else:
            # a service's links are refreshed like views: their online values resolve its keys
            links = svc.links() if svc is not None and svc.key is not None else []
            for vname in dict.fromkeys([*links, *(v for v, _ in features)]):
                tree = refresh_query(repo.views[vname], dialect)
                out.append(
                    CompiledQuery(vname, "view", target, dialect, sql_text(tree, dialect, pretty))
                )
    return out


def _unknown(kind: str, name: str, known) -> str:
    import difflib

    msg = f"unknown {kind} `{name}`"
    match = difflib.get_close_matches(name, list(known), n=1)
    if match:
        msg += f"; did you mean `{match[0]}`?"
    elif known:
        msg += f"; known: {', '.join(sorted(known))}"
    return msg
