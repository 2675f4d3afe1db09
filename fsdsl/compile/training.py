"""The training query: every row of `labels` with every feature of a service as of its time."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile import dialects
from fsdsl.compile.pit import PointInTime, T, and_all, col, cte, feature_values, table_ref

LABELS = "labels"


def label_keys(views: list[ir.View]) -> list[str]:
    """The columns the labels must carry: every key of every entity involved, in first-use order."""
    return list(dict.fromkeys(k.name for v in views for k in v.entity.keys))


def training_query(
    repo: ir.Repository,
    features: list[tuple[str, str]],
    dialect: str = "duckdb",
    *,
    timestamp_column: str = "event_timestamp",
    labels: str = LABELS,
    order_by: str | None = None,
    force: Mapping[str, str] | None = None,
) -> exp.Select:
    """SELECT labels.*, <feature>... with each feature computed as of the label's timestamp.

    `features` lists (view, feature) pairs, e.g. a service's. The labels relation needs the keys
    of every entity involved plus `timestamp_column`; other columns are passed through.
    `force` overrides the planner's strategy per shape (tests: see `PointInTime`).
    """
    d = dialects.get(dialect)
    views = [repo.views[v] for v in dict.fromkeys(v for v, _ in features)]
    ctes: list[exp.CTE] = []
    l_alias = "l"
    final_cols: list[exp.Expression] = [
        exp.Column(this=exp.Star(), table=exp.to_identifier(l_alias))
    ]
    joins = []
    values: dict[tuple[str, str], exp.Expression] = {}
    for vi, view in enumerate(views):
        prefix = f"{view.name}__"
        keys = [k.name for k in view.entity.keys]
        spine = f"{prefix}spine"
        spine_query = (
            exp.select(*[col(k) for k in keys], exp.alias_(col(timestamp_column), T))
            .from_(exp.to_table(exp.to_identifier(labels)))
            .distinct()
        )
        ctes.append(cte(spine, spine_query))
        names = [f for v, f in features if v == view.name]
        pit = PointInTime(view, d, prefix, names, force)
        events = pit.events()
        aggs = pit.build(spine, events)
        # the plan, where a reader of the SQL looks for it: atop the view's first CTE
        spine_query.add_comments([f" {aggs.describe(view.name)} "])
        ctes.extend(aggs.ctes)
        alias_of = {}
        for ri, rel in enumerate(aggs.relations):
            alias = f"v{vi}r{ri}"
            alias_of[rel] = alias
            on = [exp.EQ(this=col(k, l_alias), expression=col(k, alias)) for k in keys]
            on.append(exp.EQ(this=col(timestamp_column, l_alias), expression=col(T, alias)))
            joins.append((rel, alias, and_all(on)))
        for name, value in feature_values(view, aggs, d, alias_of, names).items():
            values[(view.name, name)] = value
    for view_name, fname in features:
        final_cols.append(exp.alias_(values[(view_name, fname)], fname))
    query = exp.select(*final_cols).from_(table_ref(labels, l_alias))
    for rel, alias, on in joins:
        query = query.join(table_ref(rel, alias), on=on, join_type="left")
    if order_by:
        query = query.order_by(col(order_by, l_alias))
    query.set("with_", exp.With(expressions=ctes))
    return query
