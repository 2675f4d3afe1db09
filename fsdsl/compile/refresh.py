"""The refresh query: one view's features as of a refresh time R, maintained from the previous
run's aggregate *state*, so that an incremental run costs the events that changed, not history.

Parameters (sqlglot placeholders, bound by the backend): `as_of`, the refresh time R, and
`watermark`, the previous refresh time R0 (NULL for a full refresh). The relation named by
`state_table(view)` holds the previous run's state, one row per entity (`state_columns`); a full
refresh passes it empty. The query returns, for every entity whose values can have changed, its
feature values *and* its new state row, which the runner merges into the stored state.

Why it is exact. Between R0 and R the events of a window `[T - W, T)` change only by
* entering rows: visible at R but not at R0 (`greatest(ts, created)` in [R0, R)), in the window;
* leaving rows: visible at R0 with a timestamp in [R0 - W, R - W).
An entity with no leaving row in W is `state ⊕ entering rows`, where ⊕ is the aggregation's own
combine (counts and sums add, min/max pick, `first`/`last`/`last_k` keep the best k of the
union, ranked by the contract's order); this is the classic merge of partial aggregates, with
an event being the partial aggregate of one row. An entity with a leaving row in W has its
W-aggregations recomputed from its events in W (an extreme or a `first` may have left, and
float sums are never subtracted). `count_distinct` keeps each distinct value with the latest
timestamp it was seen at: a value is still in the window while that timestamp is. The TTL is
the latest visible timestamp, a max.
So the cost is the new rows, plus the window events of entities that lost one; the full
refresh is the same query with an empty state and every visible row entering.

Rows ingested late. "Visible at R0" assumes the row was in the warehouse at R0. A row pushed
after R0 with a visibility before R0 (an old timestamp, no `created`) breaks that, so the runner
passes its entity in the relation named by `dirty_table(view)`: a *dirty* entity ignores its state
and has every aggregation recomputed from all its visible events, which is exact whatever the
state missed, and idempotent (a replayed batch recomputes the same values).
"""

from __future__ import annotations

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile import dialects
from fsdsl.compile.names import (
    ALIVE,
    AVAIL,
    CREATED,
    DIRTY,
    LAST_SEEN,
    NEW,
    RANK,
    SEEN_AT,
    TS,
    VALUE,
)
from fsdsl.compile.pit import (
    ViewAggregates,
    and_all,
    col,
    cte,
    events_relation,
    feature_values,
    keys_eq,
    table_ref,
)
from fsdsl.compile.plan import DISTINCT, MERGE, PICK, plan_view

# The stored state's layout comes from the plan alone (`state.py`, imported by runs that need
# no SQL builder); re-exported here for the query that reads and writes it.
from fsdsl.compile.state import (  # noqa: F401
    dirty_table,
    distinct_tables,
    state_columns,
    state_table,
)

AS_OF, WATERMARK = ir.AS_OF_COLUMN, "watermark"


def refresh_query(view: ir.View, dialect: str = "duckdb", dirty: bool = False) -> exp.Select:
    """`dirty`: the form that reads the dirty entities' whole history (a second branch of the
    events relation). Without dirty entities both forms give the same rows; the plain one lets
    the warehouse skip every row older than the longest window before R0."""
    return _Refresh(view, dialects.get(dialect), dirty).query()


def _param(name: str, d) -> exp.Expression:
    return d.cast(exp.Placeholder(this=name), ir.TIMESTAMP)


def _or_all(conds: list[exp.Expression]) -> exp.Expression:
    conds = [c for c in conds if c is not None]
    if not conds:
        return exp.false()
    out = conds[0]
    for c in conds[1:]:
        out = exp.Or(this=out, expression=c)
    return exp.Paren(this=out)


def _flag(cond: exp.Expression) -> exp.Expression:
    return exp.Case(
        ifs=[exp.If(this=cond, true=exp.Literal.number(1))], default=exp.Literal.number(0)
    )


def _when(cond: exp.Expression | None, value: exp.Expression) -> exp.Expression:
    return value if cond is None else exp.Case(ifs=[exp.If(this=cond, true=value)])


def _is(name: str, table: str | None = None) -> exp.Expression:
    return exp.EQ(this=col(name, table), expression=exp.Literal.number(1))


def _not_null(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Is(this=e, expression=exp.Null()))


class _Refresh:
    def __init__(self, view: ir.View, d: dialects.Dialect, dirty: bool = False):
        self.view, self.d, self.dirty = view, d, dirty
        self.plan = plan_view(view)
        self.names = self.plan.names
        self.keys = [k.name for k in view.entity.keys]
        self.aggs = self.plan.aggs
        self.index = self.names.index
        self.has_created = view.source.created is not None
        self.windows = sorted(
            {a.window for a in self.aggs if a.window is not None}, key=lambda w: w.seconds
        )
        self.wi = {w: j for j, w in enumerate(self.windows)}
        self.as_of = _param(AS_OF, d)
        self.wm = _param(WATERMARK, d)

    # ---- conditions on an events relation `t` ----
    def new(self, t: str | None = None) -> exp.Expression:
        """Visible at R, not at R0: every visible row when there is no R0 (a full refresh)."""
        full = exp.Is(this=self.wm.copy(), expression=exp.Null())
        since = exp.GTE(this=col(AVAIL, t), expression=self.wm.copy())
        return and_all(
            [
                exp.LT(this=col(AVAIL, t), expression=self.as_of.copy()),
                exp.Paren(this=exp.Or(this=full, expression=since)),
            ]
        )

    def leaving(self, w: ir.Duration, t: str | None = None) -> exp.Expression:
        """Visible at R0 and inside [R0 - W, R0), no longer inside [R - W, R)."""
        d = self.d
        return and_all(
            [
                exp.LT(this=col(AVAIL, t), expression=self.wm.copy()),
                exp.GTE(this=col(TS, t), expression=d.minus(self.wm.copy(), w)),
                exp.LT(this=col(TS, t), expression=d.minus(self.as_of.copy(), w)),
            ]
        )

    def in_window(self, w: ir.Duration | None, t: str | None = None) -> exp.Expression | None:
        if w is None:
            return None
        return exp.GTE(this=col(TS, t), expression=self.d.minus(self.as_of.copy(), w))

    def recompute(self, agg: ir.Aggregate, t: str | None) -> exp.Expression:
        """Whether this entity's `agg` is recomputed from its events rather than merged: a
        dirty entity, or one that lost an event of the window; read from the per-entity flags
        carried by relation `t`."""
        dirty = _is(DIRTY, t)
        if agg.window is None:
            return dirty
        leaving = _is(self.names.leaving(self.wi[agg.window]), t)
        return exp.Paren(this=exp.Or(this=leaving, expression=dirty))

    def counts(self, agg: ir.Aggregate, t: str | None) -> exp.Expression:
        """Whether an event row of `t` (with flags) enters `agg`: in its window, and new or of
        an entity being recomputed."""
        rc = self.recompute(agg, t)
        fresh = exp.Paren(this=exp.Or(this=_is(NEW, t), expression=rc))
        return and_all([self.in_window(agg.window, t), fresh])

    # ---- the query ----
    def query(self) -> exp.Select:
        d, keys, relation = self.d, self.keys, self.names.relation
        horizons = list(self.windows)
        if self.view.ttl is not None and self.view.ttl not in horizons:
            horizons.append(self.view.ttl)
        longest = max(horizons, key=lambda w: w.seconds) if horizons else None

        def relevant(ts: exp.Expression, created: exp.Expression | None) -> exp.Expression:
            """Every row this run can read, but the dirty entities' older ones: new rows
            (visible since R0: `ts` or `created` at or after it), and rows inside the longest
            window or TTL as of R0 (leaving rows, window rows of recomputed entities)."""
            wm = self.wm
            since = wm.copy() if longest is None else d.minus(wm.copy(), longest)
            conds = [
                exp.Is(this=wm.copy(), expression=exp.Null()),
                exp.GTE(this=ts, expression=since),
            ]
            if created is not None:
                conds.append(exp.GTE(this=created, expression=wm.copy()))
            return _or_all(conds)

        dirty = dirty_table(self.view) if self.dirty else None
        events_cte = events_relation(self.plan, d, relevant=relevant, dirty=dirty)
        events, ctes = events_cte.alias, [events_cte]
        # 1. the rows that enter or leave something, and 2. per entity, what that means
        zero, one = exp.Literal.number(0), exp.Literal.number(1)
        delta = exp.union(
            exp.select(
                *[col(k) for k in keys],
                col(TS),
                exp.alias_(_flag(self.new()), NEW),
                exp.alias_(zero, DIRTY),
            )
            .from_(events)
            .where(_or_all([self.new()] + [self.leaving(w) for w in horizons])),
            # the entities to recompute from all their events, whatever changed
            exp.select(
                *[col(k) for k in keys],
                exp.alias_(d.cast(exp.Null(), ir.TIMESTAMP), TS),
                exp.alias_(zero.copy(), NEW),
                exp.alias_(one, DIRTY),
            ).from_(dirty_table(self.view)),
            distinct=False,
        )
        delta_name = relation("delta")
        ctes.append(cte(delta_name, delta))
        # `delta` has no AVAIL column: a leaving row is one that is not new (its TS says which)
        flag_cols = [*[col(k) for k in keys]]
        not_new = exp.EQ(this=col(NEW), expression=exp.Literal.number(0))
        for j, w in enumerate(self.windows):
            leaving = and_all(
                [
                    not_new.copy(),
                    exp.LT(this=col(TS), expression=d.minus(self.as_of.copy(), w)),
                    exp.GTE(this=col(TS), expression=d.minus(self.wm.copy(), w)),
                ]
            )
            flag_cols.append(exp.alias_(exp.Max(this=_flag(leaving)), self.names.leaving(j)))
        flag_cols.append(exp.alias_(exp.Max(this=col(DIRTY)), DIRTY))
        flags = relation("changed")
        ctes.append(
            cte(flags, exp.select(*flag_cols).from_(delta_name).group_by(*[col(k) for k in keys]))
        )

        # 3. the event rows the merge reads: new rows, and the window rows of recomputed entities
        e, f = "e", "f"
        flag_names = [self.names.leaving(j) for j in range(len(self.windows))] + [DIRTY]
        arg_cols = [name for _, name in self.names.inputs()]
        row_cols = [col(k, e) for k in keys] + [col(TS, e)]
        row_cols += [col(CREATED, e)] if self.has_created else []
        row_cols += [col(n, e) for n in arg_cols]
        row_cols.append(exp.alias_(_flag(self.new(e)), NEW))
        row_cols += [col(n, f) for n in flag_names]
        wanted = [self.new(e), _is(DIRTY, f)]
        for j, w in enumerate(self.windows):
            wanted.append(and_all([_is(self.names.leaving(j), f), self.in_window(w, e)]))
        rows_q = (
            exp.select(*row_cols)
            .from_(table_ref(events, e))
            .join(table_ref(flags, f), on=and_all(keys_eq(keys, e, f)), join_type="inner")
            .where(
                and_all(
                    [
                        exp.LT(this=col(AVAIL, e), expression=self.as_of.copy()),
                        _or_all(wanted),
                    ]
                )
            )
        )
        rows = relation("rows")
        ctes.append(cte(rows, rows_q))

        state = state_table(self.view)
        s = "s"
        merged = [a.agg for a in self.plan.aggregations if a.refresh == MERGE]
        # 4. partial aggregates: the state row (unless recomputed) and the event rows
        state_side = [col(k, s) for k in keys]
        event_side = [col(k) for k in keys]
        for agg in merged:
            keep = exp.Not(this=self.recompute(agg, f))
            a = col(self.names.input(agg)) if agg.arg is not None else None
            enters = self.counts(agg, None)
            for name, t in self.plan.of(agg).state:
                state_side.append(exp.alias_(d.cast(_when(keep, col(name, s)), t), name))
                if name == self.names.count(agg):
                    cond = enters if a is None else and_all([enters, _not_null(a)])
                    value = _flag(cond)
                elif agg.func == "avg":
                    value = _when(enters, d.cast(a, ir.FLOAT))
                else:
                    value = _when(enters, a)
                event_side.append(exp.alias_(d.cast(value, t), name))
        if self.view.ttl is not None:
            state_side.append(col(LAST_SEEN, s))
            event_side.append(exp.alias_(col(TS), LAST_SEEN))
        parts_q = exp.union(
            exp.select(*state_side)
            .from_(table_ref(state, s))
            .join(table_ref(flags, f), on=and_all(keys_eq(keys, s, f)), join_type="inner"),
            exp.select(*event_side).from_(rows),
            distinct=False,
        )
        parts = relation("parts")
        ctes.append(cte(parts, parts_q))

        # 5. combine them: the new state and each aggregation's value
        out = [col(k) for k in keys]
        values = ViewAggregates()
        agg_rel = relation("merged")
        for agg in merged:
            fn, nm = agg.func, self.names
            if fn == "count":
                total = exp.Sum(this=col(nm.count(agg)))
                out.append(exp.alias_(d.cast(total, ir.INT), nm.count(agg)))
                out.append(exp.alias_(total.copy(), nm.result(agg)))
            elif fn == "sum":
                total = exp.Sum(this=col(nm.sum(agg)))
                out.append(exp.alias_(d.cast(total, agg.type), nm.sum(agg)))
                out.append(exp.alias_(total.copy(), nm.result(agg)))
            elif fn == "avg":
                total, n = exp.Sum(this=col(nm.sum(agg))), exp.Sum(this=col(nm.count(agg)))
                out.append(exp.alias_(d.cast(total, ir.FLOAT), nm.sum(agg)))
                out.append(exp.alias_(d.cast(n, ir.INT), nm.count(agg)))
                avg = exp.Div(this=d.cast(total.copy(), ir.FLOAT), expression=n.copy())
                positive = exp.GT(this=n.copy(), expression=exp.Literal.number(0))
                out.append(exp.alias_(_when(positive, avg), nm.result(agg)))
            else:
                best = d.pick(col(nm.extreme(agg)), agg.type, largest=fn == "max")
                out.append(exp.alias_(best, nm.extreme(agg)))
                out.append(exp.alias_(best.copy(), nm.result(agg)))
            values.columns[agg] = (agg_rel, nm.result(agg))
        if self.view.ttl is not None:
            seen = exp.Max(this=col(LAST_SEEN))
            out.append(exp.alias_(seen, LAST_SEEN))
            alive = exp.GTE(this=seen.copy(), expression=d.minus(self.as_of.copy(), self.view.ttl))
            out.append(exp.alias_(_flag(alive), ALIVE))
            values.ttl = (agg_rel, ALIVE)
        ctes.append(cte(agg_rel, exp.select(*out).from_(parts).group_by(*[col(k) for k in keys])))
        values.relations.append(agg_rel)

        # 6. first / last / last_k: the best k of the state's rows and the event rows;
        # count_distinct: the state's values still in the window and the new rows' values
        for agg in self.aggs:
            if self.plan.of(agg).refresh == PICK:
                ctes += self.picks(agg, flags, rows, values)
            elif self.plan.of(agg).refresh == DISTINCT:
                ctes += self.distinct(agg, flags, rows, values)

        # 7. one row per changed entity: its feature values, then its new state
        alias_of = {rel: f"r{n}" for n, rel in enumerate(values.relations)}
        sel = [col(k, f) for k in keys] + [exp.alias_(self.as_of.copy(), "as_of")]
        for name, value in feature_values(self.view, values, d, alias_of).items():
            sel.append(exp.alias_(value, name))
        owner = {}
        for agg in self.aggs:
            rel = agg_rel if agg in merged else values.columns[agg][0]
            for name, _t in self.plan.of(agg).state:
                owner[name] = rel
        if self.view.ttl is not None:
            owner[LAST_SEEN] = agg_rel
        for name, _t in self.plan.state_columns()[len(keys) :]:
            sel.append(exp.alias_(col(name, alias_of[owner[name]]), name))
        q = exp.select(*sel).from_(table_ref(flags, f))
        for rel, alias in alias_of.items():
            q = q.join(table_ref(rel, alias), on=and_all(keys_eq(keys, f, alias)), join_type="left")
        q.set("with_", exp.With(expressions=ctes))
        return q

    def distinct(self, agg: ir.Aggregate, flags: str, rows: str, values: ViewAggregates):
        d, keys, relation, i = self.d, self.keys, self.names.relation, self.index[agg]
        s, f = "s", "f"
        since = None if agg.window is None else d.minus(self.as_of.copy(), agg.window)
        kept = [] if since is None else [exp.GTE(this=col(SEEN_AT, s), expression=since)]
        old = (
            exp.select(*[col(k, s) for k in keys], col(VALUE, s), col(SEEN_AT, s))
            .from_(table_ref(self.names.distinct_table(agg), s))
            .join(table_ref(flags, f), on=and_all(keys_eq(keys, s, f)), join_type="inner")
        )
        if kept:
            old = old.where(and_all(kept))
        value = col(self.names.input(agg))
        new = (
            exp.select(
                *[col(k) for k in keys], exp.alias_(value, VALUE), exp.alias_(col(TS), SEEN_AT)
            )
            .from_(rows)
            .where(
                and_all(
                    [
                        exp.Paren(this=exp.Or(this=_is(NEW), expression=_is(DIRTY))),
                        _not_null(value.copy()),
                        self.in_window(agg.window),
                    ]
                )
            )
        )
        seen = relation(f"seen{i}")
        seen_q = (
            exp.select(
                *[col(k) for k in keys], col(VALUE), exp.alias_(exp.Max(this=col(SEEN_AT)), SEEN_AT)
            )
            .from_(
                exp.Subquery(
                    this=exp.union(old, new, distinct=False),
                    alias=exp.TableAlias(this=exp.to_identifier("c")),
                )
            )
            .group_by(*[col(k) for k in keys], col(VALUE))
        )
        (vname, _), (tname, _) = self.plan.of(agg).state
        rel = relation(f"distinct{i}")
        rel_q = (
            exp.select(
                *[col(k) for k in keys],
                exp.alias_(exp.Count(this=exp.Star()), self.names.result(agg)),
                exp.alias_(d.ordered_list(col(VALUE), col(VALUE), exp.true(), agg.arg.type), vname),
                exp.alias_(
                    d.ordered_list(col(SEEN_AT), col(VALUE), exp.true(), ir.TIMESTAMP), tname
                ),
            )
            .from_(seen)
            .group_by(*[col(k) for k in keys])
        )
        values.relations.append(rel)
        values.columns[agg] = (rel, self.names.result(agg))
        return [cte(seen, seen_q), cte(rel, rel_q)]

    def picks(self, agg: ir.Aggregate, flags: str, rows: str, values: ViewAggregates):
        d, keys, relation, i = self.d, self.keys, self.names.relation, self.index[agg]
        s, f = "s", "f"
        slots = self.plan.of(agg).slots
        state = state_table(self.view)
        order = [TS] + ([CREATED] if self.has_created else [])
        rc = self.recompute(agg, f)
        sides = []
        for slot in slots:
            sel = [col(k, s) for k in keys] + [
                exp.alias_(col(name, s), alias)
                for (name, _t), alias in zip(slot, [VALUE, *order], strict=True)
            ]
            cond = [_not_null(col(slot[0][0], s))]
            if agg.window is not None:
                since = d.minus(self.as_of.copy(), agg.window)
                cond.append(exp.GTE(this=col(slot[1][0], s), expression=since))
            cond.append(exp.Not(this=rc.copy()))
            sides.append(
                exp.select(*sel)
                .from_(table_ref(state, s))
                .join(table_ref(flags, f), on=and_all(keys_eq(keys, s, f)), join_type="inner")
                .where(and_all(cond))
            )
        value = col(self.names.input(agg))
        sides.append(
            exp.select(*[col(k) for k in keys], exp.alias_(value, VALUE), *[col(n) for n in order])
            .from_(rows)
            .where(and_all([_not_null(value.copy()), self.counts(agg, None)]))
        )
        cand = sides[0]
        for side in sides[1:]:
            cand = exp.union(cand, side, distinct=False)
        rn = exp.Window(
            this=exp.RowNumber(),
            partition_by=[col(k) for k in keys],
            order=exp.Order(
                expressions=[
                    exp.Ordered(this=col(n), desc=agg.func != "first") for n in [*order, VALUE]
                ]
            ),
        )
        ranked_q = exp.select(
            *[col(k) for k in keys], col(VALUE), *[col(n) for n in order], exp.alias_(rn, RANK)
        ).from_(exp.Subquery(this=cand, alias=exp.TableAlias(this=exp.to_identifier("c"))))
        ranked = relation(f"ranked{i}")
        top_cols = [col(k) for k in keys]
        for j, slot in enumerate(slots, 1):
            at_j = exp.EQ(this=col(RANK), expression=exp.Literal.number(j))
            for (name, t), src in zip(slot, [VALUE, *order], strict=True):
                picked = _when(at_j.copy(), col(src))
                best = d.pick(picked, t) if src == VALUE else exp.Max(this=picked)
                top_cols.append(exp.alias_(best, name))
        if agg.func == "last_k":
            lst = d.ordered_list(col(VALUE), col(RANK), exp.true(), agg.arg.type)
            top_cols.append(exp.alias_(lst, self.names.result(agg)))
            result = self.names.result(agg)
        else:
            result = slots[0][0].name
        top = relation(f"top{i}")
        top_q = (
            exp.select(*top_cols)
            .from_(ranked)
            .where(exp.LTE(this=col(RANK), expression=exp.Literal.number(len(slots))))
            .group_by(*[col(k) for k in keys])
        )
        values.relations.append(top)
        values.columns[agg] = (top, result)
        return [cte(ranked, ranked_q), cte(top, top_q)]
