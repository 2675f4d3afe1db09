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


def resolved_keys(repo: ir.Repository, service: ir.Service | None) -> list[str]:
    """The key columns a service's links add to each label or request row, in resolution
    order: `user_id` for a device-keyed service, then `household_id` along a chain."""
    if service is None or service.key is None:
        return []
    keys = (k.name for n in service.links() for k in repo.links[n].to_entity.keys)
    return list(dict.fromkeys(keys))


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
    service: ir.Service | None = None,
) -> exp.Select:
    """SELECT labels.*, <feature>... with each feature computed as of the label's timestamp.

    `features` lists (view, feature) pairs, e.g. a service's. The labels relation needs the keys
    of every entity involved plus `timestamp_column`; other columns are passed through.
    With a `service` that has a `key`, the labels carry that entity's keys only: each link of
    the service is first resolved as of the label's time — one stage per link, the link's view
    evaluated like any view, adding the target's key columns (null: unlinked) — and the views
    are then computed for the resolved keys, exactly as if the labels had carried them.
    `force` overrides the planner's strategy per shape (tests: see `fsdsl.compile.plan`).
    `share` = (n, i): only the labels of the entities in share i of n (`share_keys` decides
    which keys), and only their events where a view is keyed alike: n such queries together
    give the whole result in 1/n of the memory (the rows of each are in no other).
    """
    d = dialects.get(dialect)
    views = [repo.views[v] for v in dict.fromkeys(v for v, _ in features)]
    links = [repo.links[n] for n in service.links()] if service and service.key else []
    by = [k.name for k in service.key.keys] if links else share_keys(views)
    ctes: list[exp.CTE] = []
    if share is not None:
        # the types of the entity whose events are split alike, so that equal keys hash alike
        entity = service.key if links else views[0].entity
        keyed = [(col(k.name), k.type) for k in entity.keys]
        pick = entity_share(keyed, share, d)
        source = exp.to_identifier(labels)
        ctes.append(cte(SHARE, exp.select(exp.Star()).from_(source).where(pick)))
        labels = SHARE
    stage = _Stage(d, timestamp_column, force, share, by, ctes)
    for i, link in enumerate(links):
        wanted = [(link.name, k.name) for k in link.to_entity.keys]
        resolved = stage.select(repo, wanted, labels)
        labels = f"{RESOLVED}{i}"
        ctes.append(cte(labels, resolved))
    query = stage.select(repo, features, labels, service.column if service else None)
    if order_by:
        query = query.order_by(col(order_by, L_ALIAS))
    query.set("with_", exp.With(expressions=ctes))
    return query


RESOLVED = "__fsdsl_resolved_"  # + i: the labels with the keys of links 0..i resolved
L_ALIAS = "l"


class _Stage:
    """SELECT <labels>.*, <features> FROM <labels> LEFT JOIN <each view's aggregates>: the
    query of one set of features over one labels relation (their CTEs go to `ctes`)."""

    def __init__(self, d, timestamp_column, force, share, by, ctes):
        self.d, self.ts, self.force, self.share, self.by = d, timestamp_column, force, share, by
        self.ctes = ctes
        self.views = 0  # views joined so far, in every stage: their join aliases are unique

    def select(
        self, repo: ir.Repository, features: list[tuple[str, str]], labels: str, column=None
    ) -> exp.Select:
        """`column(view, feature)`: a feature's output name, when not the feature's own."""
        d, timestamp_column, share, l_alias = self.d, self.ts, self.share, L_ALIAS
        ctes = self.ctes
        views = [repo.views[v] for v in dict.fromkeys(v for v, _ in features)]
        final_cols: list[exp.Expression] = [
            exp.Column(this=exp.Star(), table=exp.to_identifier(l_alias))
        ]
        joins = []
        values: dict[tuple[str, str], exp.Expression] = {}
        for view in views:
            vi, self.views = self.views, self.views + 1
            wanted = [f for v, f in features if v == view.name]
            plan = plan_view(view, wanted, d, self.force)
            keys = [k.name for k in view.entity.keys]
            spine = plan.names.relation("spine")
            spine_query = (
                exp.select(*[col(k) for k in keys], exp.alias_(col(timestamp_column), T))
                .from_(exp.to_identifier(labels))
                .distinct()
            )
            pit = PointInTime(plan, d)
            events = pit.events(share if share is not None and keys == self.by else None)
            aggs = pit.build(spine, events)
            # The spine (each distinct (entity, T)) only where a strategy reads it: the ASOF
            # matches are read from the labels themselves.
            uses_spine = any(t.name == spine for c in aggs.ctes for t in c.find_all(exp.Table))
            if uses_spine:
                ctes.append(cte(spine, spine_query))
            # the plan, where a reader of the SQL looks for it: atop the view's first CTE
            (spine_query if uses_spine else aggs.ctes[0].this).add_comments(
                [f" {plan.describe()} "]
            )
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
            for name, value in feature_values(
                view, aggs, d, alias_of, wanted, at=label_time
            ).items():
                values[(view.name, name)] = value
        for view_name, fname in features:
            name = column(view_name, fname) if column else fname
            final_cols.append(exp.alias_(values[(view_name, fname)], name))
        query = exp.select(*final_cols).from_(table_ref(labels, l_alias))
        for rel, alias, on, how in joins:
            query = query.join(table_ref(rel, alias), on=on, join_type=how)
        return query
