"""Point-in-time aggregation: the values of one view's aggregations at every (entity, T) of a spine.

The training query is this over the labels' spine; the refresh query (`refresh.py`) maintains
the same aggregations incrementally at one time and reuses `events_relation` and
`feature_values`, so both read the same rows and shape the same values. Three shapes, each exact
under the contract in docs/semantics.md and chosen to avoid joining a label with every event of
its entity:

* windowed aggregations: a range join restricted to *buckets* of the largest window. A spine row
  is copied into its own bucket and the one before; an event sits in one bucket; so each label
  meets only the events of about two windows, whatever the entity's history length.
* unwindowed aggregations: one pass of running window functions over the union of spine rows and
  events ordered by the time each event became visible (greatest(timestamp, created)); `first` /
  `last` / `last_k` become a running max/min of a per-entity rank, looked up afterwards.
* `last_k` without a window on a source with late rows: the only case with no prefix structure;
  an unbounded range join (the one shape whose cost grows with history; give it a window).

Invertible windowed aggregations (`count`, `sum`, `avg`) also have an exact prefix-sum form on a
dialect with ASOF and a source without late rows (`prefix_sums`); measured slower than the
range join on the benchmark's data, it is taken only when forced.

Where a cheaper exact form exists the planner (`plan.py`) takes it, and records each choice in
the view's `ViewPlan`, which `PointInTime` follows (the training query shows it in a comment):

* TTL and unwindowed `last` on a dialect with an ASOF join and a source without late rows: the
  events grouped per timestamp, each input carried forward to its latest non-null value, read by
  one ASOF join from each label row (`ViewAggregates.matches`: no spine, no join back); the TTL
  is the matched timestamp's age. The TTL keeps its range join when a window at least as wide
  needs one anyway.
* the same with late rows, where structs compare field by field (DuckDB): a running arg-max /
  arg-min of (timestamp, created, value) and a running max of the timestamps in visibility
  order, read by an ASOF join on the visibility time (`asof_visible`); `first` too.
* the TTL without ASOF, where unwindowed aggregations sort the stream anyway: the running max
  of the visible timestamps in that stream.
* unwindowed `first` on a source without late rows: each entity's earliest row, visible at T
  iff its timestamp is before T (a plain join; no dialect feature needed).

`force` overrides the planner (tests only): every strategy must meet the contract wherever it is
exact, not only where it is picked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile.dialects import Dialect
from fsdsl.compile.expressions import to_sql, wrap
from fsdsl.compile.names import (
    ALIVE,
    AT,
    AVAIL,
    BAD,
    BUCKET,
    CREATED,
    KIND,
    LAST_SEEN,
    ORDER_FIELDS,
    TIE,
    TS,
    VALUE,
    T,
)
from fsdsl.compile.plan import (  # the strategies, re-exported: tests force them by these names
    ASOF,
    EARLIEST,
    PREFIX,
    RANGE_JOIN,
    RUNNING,
    ViewPlan,
)

# A float window sum read as a prefix difference is kept where its error bound is within this
# fraction of it (the product compares floats to 1e-9 relative); elsewhere it is recomputed.
PREFIX_TOLERANCE = 1e-10


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(exp.to_identifier(name), table=exp.to_identifier(table) if table else None)


def cte(name: str, query: exp.Expression) -> exp.CTE:
    return exp.CTE(this=query, alias=exp.TableAlias(this=exp.to_identifier(name)))


def table_ref(name: str, alias: str) -> exp.Table:
    return exp.Table(
        this=exp.to_identifier(name), alias=exp.TableAlias(this=exp.to_identifier(alias))
    )


def source_table(source: ir.Source, alias: str) -> exp.Table:
    parts = [exp.to_identifier(p) for p in source.table]
    kwargs = {"this": parts[-1]}
    if len(parts) >= 2:
        kwargs["db"] = parts[-2]
    if len(parts) == 3:
        kwargs["catalog"] = parts[0]
    return exp.Table(**kwargs, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def and_all(conds: list[exp.Expression]) -> exp.Expression:
    conds = [c for c in conds if c is not None]
    if not conds:
        return exp.true()
    out = conds[0]
    for c in conds[1:]:
        out = exp.And(this=out, expression=c)
    return out


def cumulative(fn: exp.Expression, keys: list, order: list[exp.Expression]) -> exp.Window:
    """`fn` over each entity's rows from its first to the current one, in `order`."""
    return exp.Window(
        this=fn,
        partition_by=[k.copy() for k in keys],
        order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]),
        spec=exp.WindowSpec(
            kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"
        ),
    )


def keys_eq(keys: list[str], left: str, right: str) -> list[exp.Expression]:
    return [exp.EQ(this=col(k, left), expression=col(k, right)) for k in keys]


@dataclass
class ViewAggregates:
    """The CTEs computing a view's aggregations, and where each result can be read."""

    ctes: list[exp.CTE] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)  # CTEs keyed by (keys, __t)
    # CTEs read by an ASOF join from each label: (relation, its time column), the row matched
    # being the entity's latest with that time before T. No spine, no join back on (keys, T).
    matches: list[tuple[str, str]] = field(default_factory=list)
    columns: dict[ir.Aggregate, tuple[str, str]] = field(default_factory=dict)
    ttl: tuple[str, str] | None = None  # (relation, column): > 0 where alive
    # (matched relation, timestamp column, TTL): alive where that timestamp is >= T - TTL
    ttl_since: tuple[str, str, ir.Duration] | None = None


def events_relation(
    plan: ViewPlan,
    d: Dialect,
    share: tuple[int, int] | None = None,
    relevant: Callable[[exp.Expression, exp.Expression | None], exp.Expression] | None = None,
    dirty: str | None = None,
) -> exp.CTE:
    """The view's filtered events, one row per event: keys, timestamp, created, visibility time
    (`greatest(timestamp, created)`) and each distinct input. The training and the refresh
    query both start from this CTE, so they read the same rows and the same input values.
    `share` = (shares, i): only the entities whose key hashes to share i (`entity_share`).

    `relevant(ts, created)` (the refresh query): a test on the source's own timestamp and
    created columns that every row a run can need passes, except the rows of the entities in
    relation `dirty`, which are read in full by a second branch. A plain range on a stored
    column, so the warehouse can skip the rest of the table (zone maps, partitions, indexes)."""
    v, names, src = plan.view, plan.names, "src"

    def leaf(e: ir.Expr) -> exp.Expression:
        assert isinstance(e, ir.Column)
        return col(e.name, src)

    ts = col(v.source.timestamp, src)
    keys = [k.name for k in v.entity.keys]
    proj = [exp.alias_(col(c, src), k) for c, k in zip(v.key_columns, keys, strict=True)]
    proj.append(exp.alias_(ts, TS))
    not_null = [
        exp.Not(this=exp.Is(this=col(c, src), expression=exp.Null()))
        for c in (*v.key_columns, v.source.timestamp)
    ]
    if v.source.created is not None:
        created = col(v.source.created, src)
        proj.append(exp.alias_(created, CREATED))
        not_null.append(exp.Not(this=exp.Is(this=created.copy(), expression=exp.Null())))
        avail = exp.Case(
            ifs=[
                exp.If(this=exp.GT(this=created.copy(), expression=ts.copy()), true=created.copy())
            ],
            default=ts.copy(),
        )
        proj.append(exp.alias_(avail, AVAIL))
    else:
        proj.append(exp.alias_(ts.copy(), AVAIL))
    for arg, name in names.inputs():
        proj.append(exp.alias_(to_sql(arg, d, leaf), name))
    columns = [p.alias for p in proj]
    if v.tie_columns:
        proj.append(exp.alias_(tie_rank(v, src), TIE))
    conds = list(not_null)
    if share is not None:
        keyed = [(col(c, src), k.type) for c, k in zip(v.key_columns, v.entity.keys, strict=True)]
        conds.append(entity_share(keyed, share, d))
    if v.where is not None:
        conds.append(exp.Paren(this=to_sql(v.where, d, leaf)))
    q = exp.select(*proj).from_(source_table(v.source, src)).where(and_all(conds))
    if relevant is not None and dirty is None:
        created_col = col(v.source.created, src) if v.source.created is not None else None
        q = q.where(relevant(col(v.source.timestamp, src), created_col), append=True)
    elif relevant is not None:
        created_col = col(v.source.created, src) if v.source.created is not None else None
        test = relevant(col(v.source.timestamp, src), created_col)
        near = q.copy().where(test, append=True)
        # the dirty entities' other rows: an inner join, so an empty `dirty` reads nothing
        far = (
            q.copy()
            .join(
                exp.Table(this=exp.to_identifier(dirty), alias=exp.TableAlias(this="dk")),
                on=and_all(
                    [
                        exp.EQ(this=col(c, src), expression=col(k, "dk"))
                        for c, k in zip(v.key_columns, keys, strict=True)
                    ]
                ),
                join_type="inner",
            )
            .where(exp.Not(this=exp.Paren(this=test.copy())), append=True)
        )
        q = exp.union(near, far, distinct=False)
    if v.tie_columns:
        # A tie never straddles the two branches (`relevant` reads only timestamp and created,
        # `dirty` only keys), nor two runs: tied rows become visible together, and a twin that
        # lands after its tie was counted is a late row, whose entity is recomputed from all
        # its rows. So one row per tie here is one row per tie in every state a run resumes from.
        tied = q.subquery(names.relation("tied"))
        q = exp.select(*(col(c) for c in columns)).from_(tied)
        q = q.where(exp.EQ(this=col(TIE), expression=exp.Literal.number(1)))
    return cte(names.relation("events"), q)


def tie_rank(v: ir.View, src: str) -> exp.Window:
    """1 on the one row of each tie (`ir.View.tie_columns`) the view reads: of the entity's rows
    with equal timestamp and created, one with a null tie column (an unlink wins its tie, as
    `unlinked`'s `last()` has it), else the greatest in the tie columns, in order."""
    ties = [col(c, src) for c in v.tie_columns]
    some_null = exp.or_(*(exp.Is(this=c, expression=exp.Null()) for c in ties))
    nulls_first = exp.Case(
        ifs=[exp.If(this=some_null, true=exp.Literal.number(0))], default=exp.Literal.number(1)
    )
    times = [v.source.timestamp] + ([v.source.created] if v.source.created is not None else [])
    return exp.Window(
        this=exp.RowNumber(),
        partition_by=[col(c, src) for c in (*v.key_columns, *times)],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=nulls_first),
                *(exp.Ordered(this=c, desc=True) for c in ties),
            ]
        ),
    )


def entity_share(
    keys: list[tuple[exp.Expression, ir.Type]], share: tuple[int, int], d: Dialect
) -> exp.Expression:
    """True for the entities of share i of n: the same test on the labels' keys and on the
    events' (each cast to the entity's key type, so equal keys hash alike)."""
    n, i = share
    bucket = d.entity_bucket([d.cast(e, t) for e, t in keys], n)
    return exp.EQ(this=bucket, expression=exp.Literal.number(i))


class PointInTime:
    """The CTEs of one view's aggregations at every (entity, T) of a spine, as `plan` says."""

    def __init__(self, plan: ViewPlan, d: Dialect):
        assert all(a.strategy is not None for a in plan.aggregations), "plan without a dialect"
        self.plan, self.view, self.d, self.n = plan, plan.view, d, plan.names
        self.keys = [k.name for k in self.view.entity.keys]
        self.aggs = plan.aggs
        self.index = self.n.index
        self.has_created = self.view.source.created is not None
        self.out = ViewAggregates()

    def add(self, suffix: str, query: exp.Expression) -> str:
        name = self.n.relation(suffix)
        self.out.ctes.append(cte(name, query))
        return name

    def inputs(self, aggs: list[ir.Aggregate]) -> list[str]:
        """The input columns `aggs` read, each once."""
        return list(dict.fromkeys(self.n.input(a) for a in aggs if a.arg is not None))

    # ---- entry ----
    def events(self, share: tuple[int, int] | None = None) -> str:
        """The events CTE (`events_relation`), added; its name."""
        events = events_relation(self.plan, self.d, share)
        self.out.ctes.append(events)
        return events.alias

    def build(self, spine: str, events: str) -> ViewAggregates:
        """The view's aggregations: at every row of `spine` (keys, __t) for the relations, at
        every label for the matches; `events` comes from `events()`."""

        def taking(how: str) -> list[ir.Aggregate]:
            return [a.agg for a in self.plan.aggregations if a.strategy == how]

        ranged = taking(RANGE_JOIN)
        windowed = [a for a in ranged if a.window is not None]
        unbounded_lastk = [a for a in ranged if a.window is None]  # with late rows only
        as_of, earliest = taking(ASOF), taking(EARLIEST)
        prefixed, cumulative = taking(PREFIX), taking(RUNNING)
        ttl = self.view.ttl
        ttl_by_asof = self.plan.ttl == ASOF
        if self.has_created or any(a.func == "first" for a in as_of):
            if as_of or ttl_by_asof:
                self.asof_visible(events, as_of, ttl if ttl_by_asof else None)
        elif ttl_by_asof or len(as_of) > 1:
            self.asof_match(events, as_of, ttl if ttl_by_asof else None)
        else:
            for agg in as_of:
                self.asof_last(events, agg)
        range_ttl = ttl if self.plan.ttl == RANGE_JOIN else None
        if windowed or range_ttl is not None:
            widest = max(
                [a.window for a in windowed] + ([range_ttl] if range_ttl else []),
                key=lambda w: w.seconds,
            )
            self.range_join(spine, events, windowed, widest, "w", with_ttl=range_ttl is not None)
        if unbounded_lastk:
            self.range_join(spine, events, unbounded_lastk, None, "u", with_ttl=False)
        if prefixed:
            self.prefix_sums(spine, events, prefixed)
        if cumulative or self.plan.ttl == RUNNING:
            self.running(spine, events, cumulative, ttl if self.plan.ttl == RUNNING else None)
        for agg in earliest:
            self.earliest(spine, events, agg)
        return self.out

    def order_keys(self, agg: ir.Aggregate, table: str | None, descending: bool):
        """The order that decides `first`/`last`/`last_k`: timestamp, then created, then value."""
        names = [TS] + ([CREATED] if self.has_created else []) + [self.n.input(agg)]
        return [exp.Ordered(this=col(n, table), desc=descending) for n in names]

    # ---- windowed (and unbounded last_k): range join + GROUP BY ----
    def range_join(
        self, spine, events, aggs, widest: ir.Duration | None, tag: str, with_ttl, publish=True
    ):
        d = self.d
        if widest is not None:
            width = exp.Literal.number(widest.seconds)

            def bucket(e):
                return exp.Floor(this=exp.Div(this=d.epoch_seconds(e), expression=width))

            here = [col(k) for k in self.keys] + [col(T)]
            own = exp.select(*here, exp.alias_(bucket(col(T)), BUCKET)).from_(spine)
            prev = exp.select(
                *[c.copy() for c in here],
                exp.alias_(exp.Sub(this=bucket(col(T)), expression=exp.Literal.number(1)), BUCKET),
            ).from_(spine)
            left = self.add(f"{tag}spine", exp.union(own, prev, distinct=False))
            ev_cols = [col(k) for k in self.keys] + [col(TS), col(AVAIL)]
            ev_cols += [col(CREATED)] if self.has_created else []
            ev_cols += [col(n) for n in self.inputs(aggs)]
            right = self.add(
                f"{tag}events",
                exp.select(*ev_cols, exp.alias_(bucket(col(TS)), BUCKET)).from_(events),
            )
        else:
            left, right = spine, events
        s, e = "s", "e"
        on = keys_eq(self.keys, s, e)
        if widest is not None:
            on.append(exp.EQ(this=col(BUCKET, s), expression=col(BUCKET, e)))
            on.append(exp.GTE(this=col(TS, e), expression=d.minus(col(T, s), widest)))
        on.append(exp.LT(this=col(TS, e), expression=col(T, s)))
        if self.has_created:
            on.append(exp.LT(this=col(AVAIL, e), expression=col(T, s)))

        def in_window(agg_window: ir.Duration | None, ts: exp.Expression, t: exp.Expression):
            if agg_window is None or (widest is not None and agg_window == widest):
                return None
            return exp.GTE(this=ts, expression=d.minus(t, agg_window))

        proj = [col(k, s) for k in self.keys] + [col(T, s), col(TS, e)]
        proj += [col(n, e) for n in self.inputs(aggs)]
        for agg in aggs:
            if agg.func in ir.ORDERED_AGGREGATES:
                valid = and_all(
                    [
                        in_window(agg.window, col(TS, e), col(T, s)),
                        exp.Not(this=exp.Is(this=col(self.n.input(agg), e), expression=exp.Null())),
                    ]
                )
                flag = exp.Case(
                    ifs=[exp.If(this=valid, true=exp.Literal.number(1))],
                    default=exp.Literal.number(0),
                )
                proj.append(exp.alias_(flag, self.n.valid(agg)))
                rn = exp.Window(
                    this=exp.RowNumber(),
                    partition_by=[col(k, s) for k in self.keys] + [col(T, s), flag.copy()],
                    order=exp.Order(expressions=self.order_keys(agg, e, agg.func != "first")),
                )
                proj.append(exp.alias_(rn, self.n.row_number(agg)))
        joined = (
            exp.select(*proj)
            .from_(table_ref(left, s))
            .join(table_ref(right, e), on=and_all(on), join_type="inner")
        )
        joined_name = self.add(f"{tag}join", joined)

        group = [col(k) for k in self.keys] + [col(T)]
        out = list(group)
        # A distinct count is its own two-phase aggregation, the distinct (entity, T, value)
        # pairs then a count: a DISTINCT inside the GROUP BY of every other aggregate keeps a
        # set per group (measured 7% off the whole churn_core query at scale M).
        distinct = [a for a in aggs if a.func == "count_distinct"] if publish else []
        for agg in aggs:
            if agg in distinct:
                continue
            expr = self.grouped(agg, in_window(agg.window, col(TS), col(T)))
            out.append(exp.alias_(expr, self.n.result(agg)))
        for agg in distinct:
            value = col(self.n.input(agg))
            seen = and_all(
                [
                    in_window(agg.window, col(TS), col(T)),
                    exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                ]
            )
            pairs = (
                exp.select(*[g.copy() for g in group], value)
                .distinct()
                .from_(joined_name)
                .where(seen)
            )
            q = (
                exp.select(
                    *[g.copy() for g in group],
                    exp.alias_(exp.Count(this=exp.Star()), self.n.result(agg)),
                )
                .from_(pairs.subquery("d"))
                .group_by(*[g.copy() for g in group])
            )
            rel = self.add(f"{tag}distinct{self.index[agg]}", q)
            self.out.relations.append(rel)
            self.out.columns[agg] = (rel, self.n.result(agg))
        if with_ttl and self.view.ttl is not None:
            cond = in_window(self.view.ttl, col(TS), col(T))
            out.append(exp.alias_(self.count_if(cond), ALIVE))
        name = self.add(f"{tag}agg", exp.select(*out).from_(joined_name).group_by(*group))
        if not publish:
            return name
        self.out.relations.append(name)
        for agg in aggs:
            if agg not in distinct:
                self.out.columns[agg] = (name, self.n.result(agg))
        if with_ttl and self.view.ttl is not None:
            self.out.ttl = (name, ALIVE)

    def count_if(self, cond):
        if cond is None:
            return exp.Count(this=exp.Star())
        return exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))]))

    def grouped(self, agg: ir.Aggregate, cond: exp.Expression | None) -> exp.Expression:
        d, value = self.d, col(self.n.input(agg)) if agg.arg is not None else None

        def when(x):
            if cond is None:
                return x
            return exp.Case(ifs=[exp.If(this=cond.copy(), true=x)])

        f = agg.func
        if f == "count":
            return self.count_if(cond) if value is None else exp.Count(this=when(value))
        if f == "count_distinct":
            return exp.Count(this=exp.Distinct(expressions=[when(value)]))
        if f == "sum":
            return exp.Sum(this=when(value))
        if f == "avg":
            return exp.Avg(this=d.cast(when(value), ir.FLOAT))
        if f in ("min", "max"):
            return d.pick(when(value), agg.type, largest=f == "max")
        first = exp.EQ(this=col(self.n.valid(agg)), expression=exp.Literal.number(1))
        if f in ("first", "last"):
            chosen = and_all(
                [first, exp.EQ(this=col(self.n.row_number(agg)), expression=exp.Literal.number(1))]
            )
            return d.pick(exp.Case(ifs=[exp.If(this=chosen, true=value)]), agg.type)
        assert f == "last_k"
        within = and_all(
            [first, exp.LTE(this=col(self.n.row_number(agg)), expression=exp.Literal.number(agg.k))]
        )
        return d.ordered_list(value, col(self.n.row_number(agg)), within, agg.arg.type)

    # ---- invertible windowed aggregations: prefix sums read by ASOF (dialect has ASOF, no late
    # rows) ----
    def prefix_sums(self, spine: str, events: str, aggs: list[ir.Aggregate]) -> None:
        """Per entity, running counts and sums over its events grouped per timestamp (a tie is
        in or out of a window together), read by ASOF at the latest timestamp before T and
        before T - w: the window [T - w, T) is their difference.

        Counts and integer sums subtract exactly. A float sum's difference can lose every digit
        to the prefix (1e12 once, then tiny amounts): beside it runs the prefix of |x|, which
        bounds the rounding error of both prefixes, and a row whose bound exceeds
        PREFIX_TOLERANCE of the difference (or whose prefix is not finite) is recomputed by the
        range join, over those rows alone."""
        d = self.d
        keys = [col(k) for k in self.keys]
        inputs = self.inputs(aggs)
        fixed_aggs = [a for a in aggs if a.func in ("sum", "avg") and a.arg.type == ir.FLOAT]
        floats = dict.fromkeys(self.n.input(a) for a in fixed_aggs)
        sums = dict.fromkeys(self.n.input(a) for a in aggs if a.func in ("sum", "avg"))

        by_input = {self.n.input(a): a for a in aggs if a.arg is not None}

        def pc(kind: str, n: str = "") -> str:  # prefix columns: c rows, n/s/m count/sum/|sum|
            return self.n.prefix_column(kind, by_input[n] if n else None)

        parts = {pc("c"): exp.Count(this=exp.Star())}
        for n in inputs:
            parts[pc("n", n)] = exp.Count(this=col(n))
        for n in sums:
            parts[pc("s", n)] = exp.Sum(this=col(n))
        for n in floats:
            parts[pc("m", n)] = exp.Sum(this=exp.Abs(this=col(n)))
        grouped = self.add(
            "pgrouped",
            exp.select(*keys, col(TS), *[exp.alias_(v, k) for k, v in parts.items()])
            .from_(events)
            .group_by(*[k.copy() for k in keys], col(TS)),
        )

        def running(n: str) -> exp.Expression:
            return cumulative(exp.Sum(this=col(n)), keys, [col(TS)])

        prefix = self.add(
            "prefix",
            exp.select(*keys, col(TS), *[exp.alias_(running(n), n) for n in parts]).from_(grouped),
        )
        s, hi = "s", "hi"
        windows = list(dict.fromkeys(a.window for a in aggs))
        lo = {w: f"lo{i}" for i, w in enumerate(windows)}
        q = exp.select(*[col(k, s) for k in self.keys], col(T, s)).from_(table_ref(spine, s))
        q = q.join(
            table_ref(prefix, hi),
            on=and_all(
                keys_eq(self.keys, s, hi) + [exp.LT(this=col(TS, hi), expression=col(T, s))]
            ),
            join_type="asof left",
        )
        for w, alias in lo.items():
            below = exp.LT(this=col(TS, alias), expression=d.minus(col(T, s), w))
            q = q.join(
                table_ref(prefix, alias),
                on=and_all(keys_eq(self.keys, s, alias) + [below]),
                join_type="asof left",
            )

        def diff(n: str, w: ir.Duration) -> exp.Expression:
            def at(alias: str) -> exp.Expression:
                return exp.Coalesce(this=col(n, alias), expressions=[exp.Literal.number(0)])

            return exp.Paren(this=exp.Sub(this=at(hi), expression=at(lo[w])))

        def some(n: str, w: ir.Duration) -> exp.Expression:
            return exp.GT(this=diff(pc("n", n), w), expression=exp.Literal.number(0))

        bad = []
        for w, n in dict.fromkeys((a.window, self.n.input(a)) for a in fixed_aggs):
            total = diff(pc("s", n), w)
            bound = exp.Mul(
                this=exp.Mul(
                    this=exp.Literal.number(2.0**-52),
                    expression=d.cast(
                        exp.Coalesce(this=col(pc("n", n), hi), expressions=[exp.Literal.number(0)]),
                        ir.FLOAT,
                    ),
                ),
                expression=exp.Paren(
                    this=exp.Add(
                        this=exp.Coalesce(
                            this=col(pc("m", n), hi), expressions=[exp.Literal.number(0)]
                        ),
                        expression=exp.Coalesce(
                            this=col(pc("m", n), lo[w]), expressions=[exp.Literal.number(0)]
                        ),
                    )
                ),
            )
            # finite prefixes whose error bound is small against the difference (NaN fails too)
            accurate = and_all(
                [
                    exp.LT(
                        this=exp.Coalesce(
                            this=col(pc("m", n), hi), expressions=[exp.Literal.number(0)]
                        ),
                        expression=exp.Literal.number(1e300),
                    ),
                    exp.LTE(
                        this=bound,
                        expression=exp.Mul(
                            this=exp.Literal.number(PREFIX_TOLERANCE),
                            expression=exp.Abs(this=total.copy()),
                        ),
                    ),
                ]
            )
            bad.append(and_all([some(n, w), exp.Not(this=exp.Paren(this=accurate))]))

        for agg in aggs:
            w = agg.window
            if agg.func == "count":
                value = diff(pc("c") if agg.arg is None else pc("n", self.n.input(agg)), w)
            else:
                n = self.n.input(agg)
                total = diff(pc("s", n), w)
                if agg.func == "avg":
                    total = exp.Div(this=d.cast(total, ir.FLOAT), expression=diff(pc("n", n), w))
                value = exp.Case(ifs=[exp.If(this=some(n, w), true=total)])
            q = q.select(exp.alias_(value, self.n.result(agg)), copy=False)
        if bad:
            q = q.select(exp.alias_(_or_all(bad), BAD), copy=False)
        name = self.add("psums", q)
        if bad:
            # the rows whose float sums are not accurate enough: the range join recomputes them
            flagged = self.add(
                "pflagged",
                exp.select(*keys, col(T)).from_(name).where(col(BAD)).distinct(),
            )
            widest = max((a.window for a in fixed_aggs), key=lambda w: w.seconds)
            fixed = self.range_join(
                flagged, events, fixed_aggs, widest, "f", with_ttl=False, publish=False
            )
            r, f = "r", "f"
            out = [*[col(k, r) for k in self.keys], col(T, r)]
            for agg in aggs:
                value = col(self.n.result(agg), r)
                if agg in fixed_aggs:
                    value = exp.Case(
                        ifs=[exp.If(this=col(BAD, r), true=col(self.n.result(agg), f))],
                        default=value,
                    )
                out.append(exp.alias_(value, self.n.result(agg)))
            on = and_all(keys_eq(self.keys, r, f) + [exp.EQ(this=col(T, r), expression=col(T, f))])
            name = self.add(
                "pfixed",
                exp.select(*out)
                .from_(table_ref(name, r))
                .join(table_ref(fixed, f), on=on, join_type="left"),
            )
        self.out.relations.append(name)
        for agg in aggs:
            self.out.columns[agg] = (name, self.n.result(agg))

    # ---- unwindowed `last` where the dialect has ASOF and the source no late rows ----
    def asof_last(self, events: str, agg: ir.Aggregate) -> None:
        """One row per (entity, timestamp) holding the value that wins a tie (the greatest,
        as the contract orders ties without `created`); each label reads the latest row before
        its T by an ASOF join."""
        keys = [col(k) for k in self.keys]
        value = col(self.n.input(agg))
        latest = self.add(
            f"latest{self.index[agg]}",
            exp.select(*keys, col(TS), exp.alias_(self.d.pick(value, agg.arg.type), VALUE))
            .from_(events)
            .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())))
            .group_by(*[k.copy() for k in keys], col(TS)),
        )
        self.out.matches.append((latest, TS))
        self.out.columns[agg] = (latest, VALUE)

    # ---- one ASOF match for the TTL and every unwindowed `last` (dialect has ASOF, no late rows)
    def asof_match(self, events: str, aggs: list[ir.Aggregate], ttl: ir.Duration | None) -> None:
        """One row per (entity, timestamp), each input at its tie-winning value (the greatest)
        and carried forward over the timestamps where it is null (a TTL alone matches the events
        themselves); each label reads the latest such row before its T by an ASOF join. Its
        timestamp is the latest visible event's (the TTL's test) and each carried value the
        latest non-null input's, so the one match serves every `last` whatever rows their inputs
        are null on."""
        keys = [col(k) for k in self.keys]
        inputs = {self.n.input(a): a.arg.type for a in aggs}
        # The TTL alone reads only the matched timestamp: whichever row of a tie ASOF picks, it
        # is the same, so the events need no grouping.
        matched = events
        if inputs:
            grouped = self.add(
                "latest",
                exp.select(
                    *keys,
                    col(TS),
                    *[exp.alias_(self.d.pick(col(n), t), n) for n, t in inputs.items()],
                )
                .from_(events)
                .group_by(*[k.copy() for k in keys], col(TS)),
            )

            def carried(n: str) -> exp.Expression:
                return cumulative(exp.IgnoreNulls(this=exp.LastValue(this=col(n))), keys, [col(TS)])

            matched = self.add(
                "carried",
                exp.select(
                    *[k.copy() for k in keys],
                    col(TS),
                    *[exp.alias_(carried(n), n) for n in inputs],
                ).from_(grouped),
            )
        self.out.matches.append((matched, TS))
        for agg in aggs:
            self.out.columns[agg] = (matched, self.n.input(agg))
        if ttl is not None:
            # alive iff an event lies in [T - ttl, T): the latest one before T does
            self.out.ttl_since = (matched, TS, ttl)

    # ---- unwindowed `first`/`last` and the TTL by visibility (ASOF, structs ordered) ----
    def asof_visible(self, events: str, aggs: list[ir.Aggregate], ttl: ir.Duration | None) -> None:
        """Running over each entity's events in visibility order (`greatest(ts, created)`,
        peers together): the arg-max (`last`) or arg-min (`first`) of (timestamp, created,
        value) over the non-null inputs, as a struct compared field by field, and the latest
        timestamp (the TTL's test). The row an ASOF join matches, the latest visible before T,
        carries them over exactly the rows visible at T: the contract's order, late rows
        included, in one window pass."""
        keys = [col(k) for k in self.keys]
        fields = [(ORDER_FIELDS[0], TS)]
        fields += [(ORDER_FIELDS[1], CREATED)] if self.has_created else []

        def running(fn: exp.Expression) -> exp.Window:
            return exp.Window(
                this=fn,
                partition_by=[k.copy() for k in keys],
                order=exp.Order(expressions=[exp.Ordered(this=col(AVAIL))]),
                spec=exp.WindowSpec(
                    kind="RANGE", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"
                ),
            )

        proj: list[exp.Expression] = [*keys, col(AVAIL)]
        if ttl is not None:
            proj.append(exp.alias_(running(exp.Max(this=col(TS))), LAST_SEEN))
        for agg in aggs:
            value = col(self.n.input(agg))
            parts = [(f, col(c)) for f, c in fields] + [(ORDER_FIELDS[2], value)]
            row = exp.Struct(
                expressions=[
                    exp.PropertyEQ(this=exp.to_identifier(f), expression=e) for f, e in parts
                ]
            )
            best = exp.Max(this=row) if agg.func == "last" else exp.Min(this=row)
            not_null = exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))
            fn = exp.Filter(this=best, expression=exp.Where(this=not_null))
            proj.append(exp.alias_(running(fn), self.n.result(agg)))
        ordered = self.add("visible", exp.select(*proj).from_(events))
        m = "m"
        out = [*[col(k, m) for k in self.keys], col(AVAIL, m)]
        out += [col(LAST_SEEN, m)] if ttl is not None else []
        for agg in aggs:
            picked = exp.Dot(
                this=col(self.n.result(agg), m), expression=exp.to_identifier(ORDER_FIELDS[2])
            )
            out.append(exp.alias_(picked, self.n.result(agg)))
        matched = self.add("match", exp.select(*out).from_(table_ref(ordered, m)))
        self.out.matches.append((matched, AVAIL))
        for agg in aggs:
            self.out.columns[agg] = (matched, self.n.result(agg))
        if ttl is not None:
            self.out.ttl_since = (matched, LAST_SEEN, ttl)

    # ---- unwindowed `first` without late rows: each entity's earliest row ----
    def earliest(self, spine: str, events: str, agg: ir.Aggregate) -> None:
        """The entity's first non-null input in the contract's order (timestamp, then the least
        value), read at T iff its timestamp is before T: a row visible once stays visible, and
        no later row can precede it."""
        keys = [col(k) for k in self.keys]
        value = col(self.n.input(agg))
        rn = exp.Window(
            this=exp.RowNumber(),
            partition_by=[k.copy() for k in keys],
            order=exp.Order(expressions=self.order_keys(agg, None, False)),
        )
        ranked = self.add(
            f"ranked{self.index[agg]}",
            exp.select(*keys, col(TS), value, exp.alias_(rn, self.n.row_number(agg)))
            .from_(events)
            .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))),
        )
        s, x = "s", "x"
        on = and_all(
            keys_eq(self.keys, s, x)
            + [
                exp.EQ(this=col(self.n.row_number(agg), x), expression=exp.Literal.number(1)),
                exp.LT(this=col(TS, x), expression=col(T, s)),
            ]
        )
        q = (
            exp.select(
                *[col(k, s) for k in self.keys],
                col(T, s),
                exp.alias_(col(self.n.input(agg), x), self.n.result(agg)),
            )
            .from_(table_ref(spine, s))
            .join(table_ref(ranked, x), on=on, join_type="left")
        )
        name = self.add(f"first{self.index[agg]}", q)
        self.out.relations.append(name)
        self.out.columns[agg] = (name, self.n.result(agg))

    # ---- unwindowed: running aggregates over spine ∪ events in visibility order ----
    def running(
        self, spine: str, events: str, aggs: list[ir.Aggregate], ttl: ir.Duration | None = None
    ):
        """Running aggregates over spine ∪ events, each label row after the events visible
        before its T; with `ttl`, also the latest visible timestamp (a running max), the TTL's
        test where no ASOF join finds it."""
        d = self.d
        keys = [col(k) for k in self.keys]
        ranked_cols = [*keys, col(TS), col(AVAIL)] + ([col(CREATED)] if self.has_created else [])
        stream_cols: list[tuple[str, ir.Type]] = []  # extra columns carried through the union
        done: set[str] = set()
        for agg in aggs:
            if agg.arg is None:
                continue
            if self.n.input(agg) not in done:
                ranked_cols.append(col(self.n.input(agg)))
                done.add(self.n.input(agg))
            not_null = exp.Not(this=exp.Is(this=col(self.n.input(agg)), expression=exp.Null()))
            if agg.func == "count_distinct" and self.n.first_seen(agg) not in done:
                done.add(self.n.first_seen(agg))
                # 1 on the first event (in visibility order) of each value: a running sum of it
                # is a running distinct count.
                rn = exp.Window(
                    this=exp.RowNumber(),
                    partition_by=[*keys, col(self.n.input(agg))],
                    order=exp.Order(expressions=[exp.Ordered(this=col(AVAIL))]),
                )
                flag = exp.Case(
                    ifs=[
                        exp.If(
                            this=and_all(
                                [not_null, exp.EQ(this=rn, expression=exp.Literal.number(1))]
                            ),
                            true=exp.Literal.number(1),
                        )
                    ],
                    default=exp.Literal.number(0),
                )
                ranked_cols.append(exp.alias_(flag, self.n.first_seen(agg)))
                stream_cols.append((self.n.first_seen(agg), ir.INT))
            elif agg.func in ir.ORDERED_AGGREGATES and self.n.order_rank(agg) not in done:
                done.add(self.n.order_rank(agg))
                nonnull_part = exp.Case(
                    ifs=[exp.If(this=not_null.copy(), true=exp.Literal.number(1))],
                    default=exp.Literal.number(0),
                )
                rn = exp.Window(
                    this=exp.RowNumber(),
                    partition_by=[*keys, nonnull_part],
                    order=exp.Order(expressions=self.order_keys(agg, None, False)),
                )
                rank = exp.Case(ifs=[exp.If(this=not_null.copy(), true=rn)])
                ranked_cols.append(exp.alias_(rank, self.n.order_rank(agg)))
                stream_cols.append((self.n.order_rank(agg), ir.INT))
            elif agg.func not in ("count_distinct", *ir.ORDERED_AGGREGATES):
                stream_cols.append((self.n.input(agg), agg.arg.type))
        if ttl is not None:
            stream_cols.append((TS, ir.TIMESTAMP))
        stream_cols = list(dict.fromkeys(stream_cols))
        # Only the entities of the spine: a few labels' entities then cost their
        # history, not everyone's.
        e, sp = "e", "sp"
        in_spine = exp.Exists(
            this=exp.select(exp.Literal.number(1))
            .from_(table_ref(spine, sp))
            .where(and_all(keys_eq(self.keys, sp, e)))
        )
        ranked = self.add(
            "ranked",
            exp.select(*[_qualify(c, e) for c in ranked_cols])
            .from_(table_ref(events, e))
            .where(in_spine),
        )

        label_side = exp.select(
            *keys,
            exp.alias_(col(T), AT),
            exp.alias_(exp.Literal.number(0), KIND),
            col(T),
            *[exp.alias_(d.typed_null(t), n) for n, t in stream_cols],
        ).from_(spine)
        event_side = exp.select(
            *[k.copy() for k in keys],
            exp.alias_(col(AVAIL), AT),
            exp.alias_(exp.Literal.number(1), KIND),
            exp.alias_(d.typed_null(ir.TIMESTAMP), T),
            *[col(n) for n, _ in stream_cols],
        ).from_(ranked)
        stream = self.add("stream", exp.union(label_side, event_side, distinct=False))

        def over(fn):
            return cumulative(fn, keys, [col(AT), col(KIND)])

        run_cols = [*[k.copy() for k in keys], col(T), col(KIND)]
        for agg in aggs:
            f = agg.func
            a = self.n.input(agg) if agg.arg is not None else None
            if f == "count" and agg.arg is None:
                fn = exp.Sum(this=col(KIND))
            elif f == "count":
                fn = exp.Count(this=col(a))
            elif f == "count_distinct":
                fn = exp.Sum(this=col(self.n.first_seen(agg)))
            elif f == "sum":
                fn = exp.Sum(this=col(a))
            elif f == "avg":
                fn = exp.Avg(this=d.cast(col(a), ir.FLOAT))
            elif f in ("min", "max"):
                fn = d.pick(col(a), agg.type, largest=f == "max")
            elif f == "first":
                fn = exp.Min(this=col(self.n.order_rank(agg)))
            else:  # last, last_k: the greatest rank seen so far
                fn = exp.Max(this=col(self.n.order_rank(agg)))
            run_cols.append(exp.alias_(over(fn), self.n.result(agg)))
        if ttl is not None:
            run_cols.append(exp.alias_(over(exp.Max(this=col(TS))), LAST_SEEN))
        running = self.add("running", exp.select(*run_cols).from_(stream))

        # Label rows only; `first`/`last` read their value at the rank found, `last_k` the k
        # ranks below it (without late rows the visible non-null values are ranks 1..max).
        r = "r"
        out = [*[col(k, r) for k in self.keys], col(T, r)]
        joins = []
        for agg in aggs:
            if agg.func in ("first", "last"):
                alias = f"x{self.index[agg]}"  # one lookup per aggregation
                joins.append(
                    (
                        alias,
                        and_all(
                            keys_eq(self.keys, r, alias)
                            + [
                                exp.EQ(
                                    this=col(self.n.order_rank(agg), alias),
                                    expression=col(self.n.result(agg), r),
                                )
                            ]
                        ),
                    )
                )
                out.append(exp.alias_(col(self.n.input(agg), alias), self.n.result(agg)))
            elif agg.func != "last_k":
                out.append(col(self.n.result(agg), r))
        if ttl is not None:
            # alive iff an event lies in [T - ttl, T): the latest visible one does
            alive = exp.GTE(this=col(LAST_SEEN, r), expression=d.minus(col(T, r), ttl))
            flag = exp.Case(
                ifs=[exp.If(this=alive, true=exp.Literal.number(1))],
                default=exp.Literal.number(0),
            )
            out.append(exp.alias_(flag, ALIVE))
        q = exp.select(*out).from_(table_ref(running, r))
        for alias, on in joins:
            q = q.join(table_ref(ranked, alias), on=on, join_type="left")
        q = q.where(exp.EQ(this=col(KIND, r), expression=exp.Literal.number(0)))
        name = self.add("cagg", q)
        self.out.relations.append(name)
        if ttl is not None:
            self.out.ttl = (name, ALIVE)
        for agg in aggs:
            if agg.func != "last_k":
                self.out.columns[agg] = (name, self.n.result(agg))

        for agg in aggs:
            if agg.func != "last_k":
                continue
            x = "x"
            rank, top = col(self.n.order_rank(agg), x), col(self.n.result(agg), r)
            on = and_all(
                keys_eq(self.keys, r, x)
                + [
                    exp.LTE(this=rank, expression=top),
                    exp.GT(
                        this=rank.copy(),
                        expression=exp.Sub(this=top.copy(), expression=exp.Literal.number(agg.k)),
                    ),
                ]
            )
            lst = d.ordered_list(
                col(self.n.input(agg), x),
                exp.Sub(this=top.copy(), expression=rank.copy()),
                exp.true(),
                agg.arg.type,
            )
            group = [*[col(k, r) for k in self.keys], col(T, r)]
            q = (
                exp.select(*group, exp.alias_(lst, self.n.result(agg)))
                .from_(table_ref(running, r))
                .join(table_ref(ranked, x), on=on, join_type="inner")
                .where(exp.EQ(this=col(KIND, r), expression=exp.Literal.number(0)))
                .group_by(*[g.copy() for g in group])
            )
            name = self.add(f"lastk{self.index[agg]}", q)
            self.out.relations.append(name)
            self.out.columns[agg] = (name, self.n.result(agg))


def _or_all(conds: list[exp.Expression]) -> exp.Expression:
    out = conds[0]
    for c in conds[1:]:
        out = exp.Or(this=out, expression=c)
    return out


def _qualify(e: exp.Expression, table: str) -> exp.Expression:
    """`e` with its unqualified columns read from `table` (keeps aliases)."""
    e = e.copy()
    for c in e.find_all(exp.Column):
        if not c.table:
            c.set("table", exp.to_identifier(table))
    return e


def empty_value(agg: ir.Aggregate, value: exp.Expression, d: Dialect) -> exp.Expression:
    """The aggregate as the contract defines it over no rows: counts 0, lists empty."""
    if agg.func in ("count", "count_distinct"):
        return exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
    if agg.func == "last_k":
        return exp.Coalesce(this=value, expressions=[d.empty_list(agg.arg.type)])
    return value


def feature_values(
    view: ir.View,
    aggs: ViewAggregates,
    d: Dialect,
    alias_of: dict[str, str],
    features: list[str] | None = None,
    at: exp.Expression | None = None,
) -> dict[str, exp.Expression]:
    """Each feature as an expression over the joined aggregate relations.

    `alias_of` maps a relation (CTE) name to the alias it is joined under; `at` is the time
    the values are for (the label's timestamp), which a TTL read from a match compares with.
    Derived features are inlined; the view's TTL nulls every feature when no event is in
    [T - ttl, T).
    """
    built: dict[str, exp.Expression] = {}

    def leaf(e: ir.Expr) -> exp.Expression:
        if isinstance(e, ir.Aggregate):
            rel, column = aggs.columns[e]
            return empty_value(e, col(column, alias_of[rel]), d)
        if isinstance(e, ir.FeatureRef):
            return wrap(built[e.name].copy())
        raise TypeError(e)

    for f in view.in_dependency_order(features):  # what a feature uses is compiled first
        built[f.name] = to_sql(f.expr, d, leaf)
    alive: exp.Expression | None = None
    if aggs.ttl is not None:
        rel, column = aggs.ttl
        alive = exp.GT(
            this=exp.Coalesce(this=col(column, alias_of[rel]), expressions=[exp.Literal.number(0)]),
            expression=exp.Literal.number(0),
        )
    elif aggs.ttl_since is not None:
        rel, column, ttl = aggs.ttl_since
        assert at is not None, "a TTL read from a match needs the time it is for"
        # NULL (no row matched) is not alive
        alive = exp.GTE(this=col(column, alias_of[rel]), expression=d.minus(at.copy(), ttl))
    out = {}
    for f in view.needed(features):
        value = built[f.name].copy()
        if f.type.name != "list":  # one SQL type per feature whatever the dialect computed
            value = d.cast(value, f.type)
        if alive is not None:
            value = exp.Case(ifs=[exp.If(this=alive.copy(), true=value)])
        out[f.name] = value
    return out
