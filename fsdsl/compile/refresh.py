"""The refresh query: one view's features as of a refresh time, for the entities that changed.

Parameters (sqlglot placeholders, bound by the backend): `as_of`, the refresh time R, and
`watermark`, the previous refresh time R0 or NULL for a full refresh. An entity is recomputed
when a row became visible in [R0, R), or an event left a window or the TTL between R0 and R.
"""

from __future__ import annotations

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile import dialects
from fsdsl.compile.pit import (
    AVAIL,
    TS,
    PointInTime,
    T,
    and_all,
    col,
    cte,
    feature_values,
    table_ref,
)

AS_OF, WATERMARK = "as_of", "watermark"


def _param(name: str, d) -> exp.Expression:
    return d.cast(exp.Placeholder(this=name), ir.TIMESTAMP)


def _or_all(conds: list[exp.Expression]) -> exp.Expression:
    out = conds[0]
    for c in conds[1:]:
        out = exp.Or(this=out, expression=c)
    return out


def refresh_query(view: ir.View, dialect: str = "duckdb") -> exp.Select:
    d = dialects.get(dialect)
    prefix = f"{view.name}__"
    keys = [k.name for k in view.entity.keys]
    pit = PointInTime(view, d, prefix)
    events = pit.events()

    as_of, wm = _param(AS_OF, d), _param(WATERMARK, d)
    # typed: a bare NULL parameter has no type for postgres to infer
    full = exp.Is(this=_param(WATERMARK, d), expression=exp.Null())
    new_rows = and_all(
        [
            exp.LT(this=col(AVAIL), expression=as_of.copy()),
            exp.Paren(
                this=exp.Or(this=full, expression=exp.GTE(this=col(AVAIL), expression=wm.copy()))
            ),
        ]
    )
    changed = [exp.Paren(this=new_rows)]
    horizons = {a.window for a in view.aggregates() if a.window is not None}
    if view.ttl is not None:
        horizons.add(view.ttl)
    for w in sorted(horizons, key=lambda w: w.seconds):
        leaving = and_all(
            [
                exp.GTE(this=col(TS), expression=d.minus(wm.copy(), w)),
                exp.LT(this=col(TS), expression=d.minus(as_of.copy(), w)),
            ]
        )
        changed.append(exp.Paren(this=leaving))
    spine = f"{prefix}spine"
    spine_q = (
        exp.select(*[col(k) for k in keys], exp.alias_(as_of.copy(), T))
        .from_(events)
        .where(_or_all(changed))
        .distinct()
    )
    ctes = [*pit.out.ctes, cte(spine, spine_q)]
    pit.out.ctes.clear()
    aggs = pit.build(spine, events)
    ctes.extend(aggs.ctes)

    s = "s"
    alias_of = {rel: f"r{i}" for i, rel in enumerate(aggs.relations)}
    cols = [col(k, s) for k in keys] + [exp.alias_(col(T, s), "as_of")]
    for name, value in feature_values(view, aggs, d, alias_of).items():
        cols.append(exp.alias_(value, name))
    q = exp.select(*cols).from_(table_ref(spine, s))
    for rel, alias in alias_of.items():
        on = [exp.EQ(this=col(k, s), expression=col(k, alias)) for k in keys]
        on.append(exp.EQ(this=col(T, s), expression=col(T, alias)))
        q = q.join(table_ref(rel, alias), on=and_all(on), join_type="left")
    q.set("with_", exp.With(expressions=ctes))
    return q
