"""The training query: every row of `labels` with every feature of a service as of its time."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile import dialects
from fsdsl.compile.names import T
from fsdsl.compile.pit import (
    PointInTime,
    and_all,
    col,
    cte,
    entity_share,
    feature_values,
    table_ref,
)
from fsdsl.compile.plan import plan_view

LABELS = "labels"
SHARE = "__fsdsl_share"  # the labels of one share of the entities, when the query is split


def label_keys(views: list[ir.View]) -> list[str]:
    """The columns the labels must carry: every key of every entity involved, in first-use order."""
    return list(dict.fromkeys(k.name for v in views for k in v.entity.keys))


def share_keys(views: list[ir.View]) -> list[str]:
    """The key columns a split query divides the labels by: the first view's entity's (the
    events of views keyed otherwise are read whole by every share)."""
    return [k.name for k in views[0].entity.keys]


def training_query(
    repo: ir.Repository,
    features: list[tuple[str, str]],
    dialect: str = "duckdb",
    *,
    timestamp_column: str = "event_timestamp",
    labels: str = LABELS,
    order_by: str | None = None,
    force: Mapping[str, str] | None = None,
    share: tuple[int, int] | None = None,
) -> exp.Select:
    """SELECT labels.*, <feature>... with each feature computed as of the label's timestamp.

    `features` lists (view, feature) pairs, e.g. a service's. The labels relation needs the keys
    of every entity involved plus `timestamp_column`; other columns are passed through.
    `force` overrides the planner's strategy per shape (tests: see `fsdsl.compile.plan`).
    `share` = (n, i): only the labels of the entities in share i of n (`share_keys` decides
    which keys), and only their events where a view is keyed alike: n such queries together
    give the whole result in 1/n of the memory (the rows of each are in no other).
    """
    d = dialects.get(dialect)
    views = [repo.views[v] for v in dict.fromkeys(v for v, _ in features)]
    ctes: list[exp.CTE] = []
    if share is not None:
        # the types of the entity whose events are split alike, so that equal keys hash alike
        keyed = [(col(k.name), k.type) for k in views[0].entity.keys]
        pick = entity_share(keyed, share, d)
        source = exp.to_table(exp.to_identifier(labels))
        ctes.append(cte(SHARE, exp.select(exp.Star()).from_(source).where(pick)))
        labels = SHARE
    l_alias = "l"
    final_cols: list[exp.Expression] = [
        exp.Column(this=exp.Star(), table=exp.to_identifier(l_alias))
    ]
    joins = []
    values: dict[tuple[str, str], exp.Expression] = {}
    for vi, view in enumerate(views):
        wanted = [f for v, f in features if v == view.name]
        plan = plan_view(view, wanted, d, force)
        keys = [k.name for k in view.entity.keys]
        spine = plan.names.relation("spine")
        spine_query = (
            exp.select(*[col(k) for k in keys], exp.alias_(col(timestamp_column), T))
            .from_(exp.to_table(exp.to_identifier(labels)))
            .distinct()
        )
        pit = PointInTime(plan, d)
        events = pit.events(share if share is not None and keys == share_keys(views) else None)
        aggs = pit.build(spine, events)
        # The spine (each distinct (entity, T)) only where a strategy reads it: the ASOF
        # matches are read from the labels themselves.
        uses_spine = any(t.name == spine for c in aggs.ctes for t in c.find_all(exp.Table))
        if uses_spine:
            ctes.append(cte(spine, spine_query))
        # the plan, where a reader of the SQL looks for it: atop the view's first CTE
        (spine_query if uses_spine else aggs.ctes[0].this).add_comments([f" {plan.describe()} "])
        ctes.extend(aggs.ctes)
        alias_of = {}
        for ri, rel in enumerate(aggs.relations):
            alias = f"v{vi}r{ri}"
            alias_of[rel] = alias
            on = [exp.EQ(this=col(k, l_alias), expression=col(k, alias)) for k in keys]
            on.append(exp.EQ(this=col(timestamp_column, l_alias), expression=col(T, alias)))
            joins.append((rel, alias, and_all(on), "left"))
        for mi, (rel, at) in enumerate(aggs.matches):
            alias = f"v{vi}m{mi}"
            alias_of[rel] = alias
            on = [exp.EQ(this=col(k, l_alias), expression=col(k, alias)) for k in keys]
            on.append(exp.LT(this=col(at, alias), expression=col(timestamp_column, l_alias)))
            joins.append((rel, alias, and_all(on), "asof left"))
        label_time = col(timestamp_column, l_alias)
        for name, value in feature_values(view, aggs, d, alias_of, wanted, at=label_time).items():
            values[(view.name, name)] = value
    for view_name, fname in features:
        final_cols.append(exp.alias_(values[(view_name, fname)], fname))
    query = exp.select(*final_cols).from_(table_ref(labels, l_alias))
    for rel, alias, on, how in joins:
        query = query.join(table_ref(rel, alias), on=on, join_type=how)
    if order_by:
        query = query.order_by(col(order_by, l_alias))
    query.set("with_", exp.With(expressions=ctes))
    return query
