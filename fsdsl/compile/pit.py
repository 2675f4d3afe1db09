"""Point-in-time aggregation: the values of one view's aggregations at every (entity, T) of a spine.

The training query is this over the labels' spine; the refresh query (`refresh.py`) maintains
the same aggregations incrementally at one time and reuses `events` and `feature_values`, so
both read the same rows and shape the same values. Three shapes, each exact under the contract
in docs/semantics.md and chosen to avoid joining a label with every event of its entity:

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

Where a cheaper exact form exists the planner takes it, and records each choice in
`ViewAggregates.plan` (the training query shows it in a comment):

* TTL and unwindowed `last` on a dialect with an ASOF join and a source without late rows: one
  ASOF match per (entity, T) on the events grouped per timestamp, each input carried forward to
  its latest non-null value, serves every `last` of the view, and the TTL is the matched
  timestamp's age. The TTL keeps its range join when a window at least as wide needs one anyway.
* unwindowed `first` on a source without late rows: each entity's earliest row, visible at T
  iff its timestamp is before T (a plain join; no dialect feature needed).

`force` overrides the planner (tests only): every strategy must meet the contract wherever it is
exact, not only where it is picked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlglot import exp

from fsdsl import ir
from fsdsl.compile.dialects import Dialect
from fsdsl.compile.expressions import to_sql, wrap

T = "__t"  # the query time of a spine row
TS, CREATED, AVAIL, BUCKET, KIND, AT = "__ts", "__created", "__avail", "__b", "__kind", "__at"
TTL = "__ttl"  # >0 where the view's TTL keeps the entity alive at T

# The strategies, as the plan records them and `force` names them.
ASOF, RANGE_JOIN, RUNNING, EARLIEST = "asof", "range join", "running", "earliest"
PREFIX = "prefix"  # invertible windowed aggregations: prefix sums read by ASOF at T and T - w
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
    columns: dict[ir.Aggregate, tuple[str, str]] = field(default_factory=dict)
    ttl: tuple[str, str] | None = None
    plan: dict[str, str] = field(default_factory=dict)  # shape ("ttl", "last(__a0)") -> strategy

    def describe(self, view: str) -> str:
        """The plan as one line, for a comment in the compiled query."""
        return f"{view}: " + ", ".join(f"{shape} {how}" for shape, how in self.plan.items())


class PointInTime:
    def __init__(
        self,
        view: ir.View,
        d: Dialect,
        prefix: str,
        features: list[str] | None = None,
        force: Mapping[str, str] | None = None,
    ):
        self.view, self.d, self.p = view, d, prefix
        self.force = dict(force or {})
        self.keys = [k.name for k in view.entity.keys]
        self.aggs = view.aggregates(features)
        self.index = {a: i for i, a in enumerate(self.aggs)}
        # one column per distinct input expression, however many aggregations read it
        args = dict.fromkeys(a.arg for a in self.aggs if a.arg is not None)
        self.arg_index = {arg: i for i, arg in enumerate(args)}
        self.has_created = view.source.created is not None
        self.out = ViewAggregates()

    def name(self, suffix: str) -> str:
        return f"{self.p}{suffix}"

    def a(self, agg: ir.Aggregate, kind: str = "a") -> str:
        """Column names: per input (a: value, f: first-of-value flag, k: rank), else per agg."""
        if kind in ("a", "f", "k"):
            return f"__{kind}{self.arg_index[agg.arg]}"
        return f"__{kind}{self.index[agg]}"

    def add(self, suffix: str, query: exp.Expression) -> str:
        name = self.name(suffix)
        self.out.ctes.append(cte(name, query))
        return name

    # ---- entry ----
    def build(self, spine: str, events: str) -> ViewAggregates:
        """Aggregations at every row of `spine` (keys, __t); `events` comes from `events()`."""
        windowed = [a for a in self.aggs if a.window is not None]
        # count / sum / avg over a window are differences of prefix sums; exact where every
        # event visible before T is one with timestamp before T (no late rows) and ASOF exists.
        # Not the default: at scale M (~10 events per user and window) the bucketed range join
        # took 1.1 s where the prefix sums took 3.7 s (4.1 s with the float check); a planner
        # with statistics would pick them for long windows over dense histories.
        invertible = [a for a in windowed if _invertible(a)]
        prefixed = (
            invertible
            if self.choose(
                "window",
                bool(invertible),
                PREFIX,
                self.d.has_asof and not self.has_created,
                cheaper=False,
            )
            else []
        )
        windowed = [a for a in windowed if a not in prefixed]
        unbounded_lastk = [
            a for a in self.aggs if a.window is None and a.func == "last_k" and self.has_created
        ]
        cumulative = [a for a in self.aggs if a.window is None and a not in unbounded_lastk]
        # Without late rows the latest visible row is the latest by timestamp, which is what an
        # ASOF join finds; with them it is the latest *by timestamp* among rows available before
        # T, which no single ASOF order gives.
        asof_exact = self.d.has_asof and not self.has_created
        lasts = [a for a in cumulative if a.func == "last"]
        as_of = lasts if self.choose("last", bool(lasts), ASOF, asof_exact) else []
        # Without late rows the earliest visible row stays the earliest row once visible.
        firsts = [a for a in cumulative if a.func == "first"]
        earliest = (
            firsts if self.choose("first", bool(firsts), EARLIEST, not self.has_created) else []
        )
        cumulative = [a for a in cumulative if a not in as_of and a not in earliest]
        ttl = self.view.ttl
        # A range join as wide as the TTL is already there for the windows: counting in it is
        # free. Only a TTL wider than every window pays for its own range join.
        ttl_by_asof = ttl is not None and self.choose(
            "ttl",
            True,
            ASOF,
            asof_exact,
            cheaper=all(a.window.seconds < ttl.seconds for a in windowed),
        )
        if ttl is not None:
            self.out.plan["ttl"] = ASOF if ttl_by_asof else RANGE_JOIN
        for agg in self.aggs:
            if agg in as_of:
                how = ASOF
            elif agg in earliest:
                how = EARLIEST
            elif agg in cumulative:
                how = RUNNING
            elif agg in prefixed:
                how = PREFIX
            else:
                how = RANGE_JOIN
            self.out.plan[self.label(agg)] = how

        if ttl_by_asof or len(as_of) > 1:
            self.asof_match(spine, events, as_of, ttl if ttl_by_asof else None)
        else:
            for agg in as_of:
                self.asof_last(spine, events, agg)
        range_ttl = ttl if ttl is not None and not ttl_by_asof else None
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
        if cumulative:
            self.running(spine, events, cumulative)
        for agg in earliest:
            self.earliest(spine, events, agg)
        return self.out

    def choose(
        self, shape: str, present: bool, alternative: str, exact: bool, cheaper: bool = True
    ) -> bool:
        """Whether `shape` takes `alternative` (ASOF, earliest) rather than its general form (range
        join, running ranks): where exact and cheaper, or where forced; forcing an inexact form
        is an error, never a silent fallback."""
        if not present:
            return False
        general = RANGE_JOIN if shape in ("ttl", "window") else RUNNING
        how = self.force.get(shape, alternative if exact and cheaper else general)
        if how not in (general, alternative) or (how == alternative and not exact):
            raise ValueError(
                f"strategy {how!r} cannot compute {shape} exactly in view {self.view.name} "
                f"({self.d.name}{', late rows' if self.has_created else ''})"
            )
        return how == alternative

    def label(self, agg: ir.Aggregate) -> str:
        """An aggregation as the plan names it: its function over its input column."""
        args = [self.a(agg) if agg.arg is not None else "*"]
        args += [str(agg.k)] if agg.k is not None else []
        over = f" over {agg.window}" if agg.window is not None else ""
        return f"{agg.func}({', '.join(args)}){over}"

    # ---- the filtered events of the view ----
    def events(self) -> str:
        v, src = self.view, "src"

        def leaf(e: ir.Expr) -> exp.Expression:
            assert isinstance(e, ir.Column)
            return col(e.name, src)

        ts = col(v.source.timestamp, src)
        proj = [exp.alias_(col(c, src), k) for c, k in zip(v.key_columns, self.keys, strict=True)]
        proj.append(exp.alias_(ts, TS))
        not_null = [
            exp.Not(this=exp.Is(this=col(c, src), expression=exp.Null()))
            for c in (*v.key_columns, v.source.timestamp)
        ]
        if self.has_created:
            created = col(v.source.created, src)
            proj.append(exp.alias_(created, CREATED))
            not_null.append(exp.Not(this=exp.Is(this=created.copy(), expression=exp.Null())))
            avail = exp.Case(
                ifs=[
                    exp.If(
                        this=exp.GT(this=created.copy(), expression=ts.copy()), true=created.copy()
                    )
                ],
                default=ts.copy(),
            )
            proj.append(exp.alias_(avail, AVAIL))
        else:
            proj.append(exp.alias_(ts.copy(), AVAIL))
        for arg, i in self.arg_index.items():
            proj.append(exp.alias_(to_sql(arg, self.d, leaf), f"__a{i}"))
        conds = list(not_null)
        if v.where is not None:
            conds.append(exp.Paren(this=to_sql(v.where, self.d, leaf)))
        q = exp.select(*proj).from_(source_table(v.source, src)).where(and_all(conds))
        return self.add("events", q)

    def order_keys(self, agg: ir.Aggregate, table: str | None, descending: bool):
        """The order that decides `first`/`last`/`last_k`: timestamp, then created, then value."""
        names = [TS] + ([CREATED] if self.has_created else []) + [self.a(agg)]
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
            ev_cols += [col(n) for n in dict.fromkeys(self.a(a) for a in aggs if a.arg is not None)]
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
        proj += [col(n, e) for n in dict.fromkeys(self.a(a) for a in aggs if a.arg is not None)]
        for agg in aggs:
            if agg.func in ir.ORDERED_AGGREGATES:
                valid = and_all(
                    [
                        in_window(agg.window, col(TS, e), col(T, s)),
                        exp.Not(this=exp.Is(this=col(self.a(agg), e), expression=exp.Null())),
                    ]
                )
                flag = exp.Case(
                    ifs=[exp.If(this=valid, true=exp.Literal.number(1))],
                    default=exp.Literal.number(0),
                )
                proj.append(exp.alias_(flag, self.a(agg, "v")))
                rn = exp.Window(
                    this=exp.RowNumber(),
                    partition_by=[col(k, s) for k in self.keys] + [col(T, s), flag.copy()],
                    order=exp.Order(expressions=self.order_keys(agg, e, agg.func != "first")),
                )
                proj.append(exp.alias_(rn, self.a(agg, "n")))
        joined = (
            exp.select(*proj)
            .from_(table_ref(left, s))
            .join(table_ref(right, e), on=and_all(on), join_type="inner")
        )
        joined_name = self.add(f"{tag}join", joined)

        group = [col(k) for k in self.keys] + [col(T)]
        out = list(group)
        for agg in aggs:
            expr = self.grouped(agg, in_window(agg.window, col(TS), col(T)))
            out.append(exp.alias_(expr, self.a(agg, "r")))
        if with_ttl and self.view.ttl is not None:
            cond = in_window(self.view.ttl, col(TS), col(T))
            out.append(exp.alias_(self.count_if(cond), TTL))
        name = self.add(f"{tag}agg", exp.select(*out).from_(joined_name).group_by(*group))
        if not publish:
            return name
        self.out.relations.append(name)
        for agg in aggs:
            self.out.columns[agg] = (name, self.a(agg, "r"))
        if with_ttl and self.view.ttl is not None:
            self.out.ttl = (name, TTL)

    def count_if(self, cond):
        if cond is None:
            return exp.Count(this=exp.Star())
        return exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))]))

    def grouped(self, agg: ir.Aggregate, cond: exp.Expression | None) -> exp.Expression:
        d, value = self.d, col(self.a(agg)) if agg.arg is not None else None

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
        first = exp.EQ(this=col(self.a(agg, "v")), expression=exp.Literal.number(1))
        if f in ("first", "last"):
            chosen = and_all(
                [first, exp.EQ(this=col(self.a(agg, "n")), expression=exp.Literal.number(1))]
            )
            return d.pick(exp.Case(ifs=[exp.If(this=chosen, true=value)]), agg.type)
        assert f == "last_k"
        within = and_all(
            [first, exp.LTE(this=col(self.a(agg, "n")), expression=exp.Literal.number(agg.k))]
        )
        return d.ordered_list(value, col(self.a(agg, "n")), within, agg.arg.type)

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
        inputs = dict.fromkeys(self.a(a) for a in aggs if a.arg is not None)
        fixed_aggs = [a for a in aggs if a.func in ("sum", "avg") and a.arg.type == ir.FLOAT]
        floats = dict.fromkeys(self.a(a) for a in fixed_aggs)
        sums = dict.fromkeys(self.a(a) for a in aggs if a.func in ("sum", "avg"))

        def pc(kind: str, n: str = "") -> str:  # prefix columns: c rows, n/s/m count/sum/|sum|
            return f"__p{kind}{n[3:]}"

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
        for w, n in dict.fromkeys((a.window, self.a(a)) for a in fixed_aggs):
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
                value = diff(pc("c") if agg.arg is None else pc("n", self.a(agg)), w)
            else:
                n = self.a(agg)
                total = diff(pc("s", n), w)
                if agg.func == "avg":
                    total = exp.Div(this=d.cast(total, ir.FLOAT), expression=diff(pc("n", n), w))
                value = exp.Case(ifs=[exp.If(this=some(n, w), true=total)])
            q = q.select(exp.alias_(value, self.a(agg, "r")), copy=False)
        if bad:
            q = q.select(exp.alias_(_or_all(bad), "__bad"), copy=False)
        name = self.add("psums", q)
        if bad:
            # the rows whose float sums are not accurate enough: the range join recomputes them
            flagged = self.add(
                "pflagged",
                exp.select(*keys, col(T)).from_(name).where(col("__bad")).distinct(),
            )
            widest = max((a.window for a in fixed_aggs), key=lambda w: w.seconds)
            fixed = self.range_join(
                flagged, events, fixed_aggs, widest, "f", with_ttl=False, publish=False
            )
            r, f = "r", "f"
            out = [*[col(k, r) for k in self.keys], col(T, r)]
            for agg in aggs:
                value = col(self.a(agg, "r"), r)
                if agg in fixed_aggs:
                    value = exp.Case(
                        ifs=[exp.If(this=col("__bad", r), true=col(self.a(agg, "r"), f))],
                        default=value,
                    )
                out.append(exp.alias_(value, self.a(agg, "r")))
            on = and_all(keys_eq(self.keys, r, f) + [exp.EQ(this=col(T, r), expression=col(T, f))])
            name = self.add(
                "pfixed",
                exp.select(*out)
                .from_(table_ref(name, r))
                .join(table_ref(fixed, f), on=on, join_type="left"),
            )
        self.out.relations.append(name)
        for agg in aggs:
            self.out.columns[agg] = (name, self.a(agg, "r"))

    # ---- unwindowed `last` where the dialect has ASOF and the source no late rows ----
    def asof_last(self, spine: str, events: str, agg: ir.Aggregate) -> None:
        """One row per (entity, timestamp) holding the value that wins a tie (the greatest,
        as the contract orders ties without `created`), then the latest row before T."""
        keys = [col(k) for k in self.keys]
        value = col(self.a(agg))
        latest = self.add(
            f"latest{self.index[agg]}",
            exp.select(*keys, col(TS), exp.alias_(self.d.pick(value, agg.arg.type), "__v"))
            .from_(events)
            .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())))
            .group_by(*[k.copy() for k in keys], col(TS)),
        )
        s, x = "s", "x"
        on = and_all(keys_eq(self.keys, s, x) + [exp.LT(this=col(TS, x), expression=col(T, s))])
        q = (
            exp.select(
                *[col(k, s) for k in self.keys],
                col(T, s),
                exp.alias_(col("__v", x), self.a(agg, "r")),
            )
            .from_(table_ref(spine, s))
            .join(table_ref(latest, x), on=on, join_type="asof left")
        )
        name = self.add(f"asof{self.index[agg]}", q)
        self.out.relations.append(name)
        self.out.columns[agg] = (name, self.a(agg, "r"))

    # ---- one ASOF match for the TTL and every unwindowed `last` (dialect has ASOF, no late rows)
    def asof_match(
        self, spine: str, events: str, aggs: list[ir.Aggregate], ttl: ir.Duration | None
    ) -> None:
        """One row per (entity, timestamp), each input at its tie-winning value (the greatest)
        and carried forward over the timestamps where it is null (a TTL alone matches the events
        themselves); then the latest such row before T. Its timestamp is the latest visible
        event's (the TTL's test) and each carried value the latest non-null input's, so the one
        match serves every `last` whatever rows their inputs are null on."""
        keys = [col(k) for k in self.keys]
        inputs = {self.a(a): a.arg.type for a in aggs}
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
        s, x = "s", "x"
        proj = [*[col(k, s) for k in self.keys], col(T, s)]
        proj += [exp.alias_(col(self.a(a), x), self.a(a, "r")) for a in aggs]
        if ttl is not None:
            # alive iff an event lies in [T - ttl, T): the latest one before T does
            alive = exp.GTE(this=col(TS, x), expression=self.d.minus(col(T, s), ttl))
            flag = exp.Case(
                ifs=[exp.If(this=alive, true=exp.Literal.number(1))],
                default=exp.Literal.number(0),
            )
            proj.append(exp.alias_(flag, TTL))
        on = and_all(keys_eq(self.keys, s, x) + [exp.LT(this=col(TS, x), expression=col(T, s))])
        q = (
            exp.select(*proj)
            .from_(table_ref(spine, s))
            .join(table_ref(matched, x), on=on, join_type="asof left")
        )
        name = self.add("asof", q)
        self.out.relations.append(name)
        for agg in aggs:
            self.out.columns[agg] = (name, self.a(agg, "r"))
        if ttl is not None:
            self.out.ttl = (name, TTL)

    # ---- unwindowed `first` without late rows: each entity's earliest row ----
    def earliest(self, spine: str, events: str, agg: ir.Aggregate) -> None:
        """The entity's first non-null input in the contract's order (timestamp, then the least
        value), read at T iff its timestamp is before T: a row visible once stays visible, and
        no later row can precede it."""
        keys = [col(k) for k in self.keys]
        value = col(self.a(agg))
        rn = exp.Window(
            this=exp.RowNumber(),
            partition_by=[k.copy() for k in keys],
            order=exp.Order(expressions=self.order_keys(agg, None, False)),
        )
        ranked = self.add(
            f"ranked{self.index[agg]}",
            exp.select(*keys, col(TS), value, exp.alias_(rn, self.a(agg, "n")))
            .from_(events)
            .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))),
        )
        s, x = "s", "x"
        on = and_all(
            keys_eq(self.keys, s, x)
            + [
                exp.EQ(this=col(self.a(agg, "n"), x), expression=exp.Literal.number(1)),
                exp.LT(this=col(TS, x), expression=col(T, s)),
            ]
        )
        q = (
            exp.select(
                *[col(k, s) for k in self.keys],
                col(T, s),
                exp.alias_(col(self.a(agg), x), self.a(agg, "r")),
            )
            .from_(table_ref(spine, s))
            .join(table_ref(ranked, x), on=on, join_type="left")
        )
        name = self.add(f"first{self.index[agg]}", q)
        self.out.relations.append(name)
        self.out.columns[agg] = (name, self.a(agg, "r"))

    # ---- unwindowed: running aggregates over spine ∪ events in visibility order ----
    def running(self, spine: str, events: str, aggs: list[ir.Aggregate]):
        d = self.d
        keys = [col(k) for k in self.keys]
        ranked_cols = [*keys, col(TS), col(AVAIL)] + ([col(CREATED)] if self.has_created else [])
        stream_cols: list[tuple[str, ir.Type]] = []  # extra columns carried through the union
        done: set[str] = set()
        for agg in aggs:
            if agg.arg is None:
                continue
            if self.a(agg) not in done:
                ranked_cols.append(col(self.a(agg)))
                done.add(self.a(agg))
            not_null = exp.Not(this=exp.Is(this=col(self.a(agg)), expression=exp.Null()))
            if agg.func == "count_distinct" and self.a(agg, "f") not in done:
                done.add(self.a(agg, "f"))
                # 1 on the first event (in visibility order) of each value: a running sum of it
                # is a running distinct count.
                rn = exp.Window(
                    this=exp.RowNumber(),
                    partition_by=[*keys, col(self.a(agg))],
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
                ranked_cols.append(exp.alias_(flag, self.a(agg, "f")))
                stream_cols.append((self.a(agg, "f"), ir.INT))
            elif agg.func in ir.ORDERED_AGGREGATES and self.a(agg, "k") not in done:
                done.add(self.a(agg, "k"))
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
                ranked_cols.append(exp.alias_(rank, self.a(agg, "k")))
                stream_cols.append((self.a(agg, "k"), ir.INT))
            elif agg.func not in ("count_distinct", *ir.ORDERED_AGGREGATES):
                stream_cols.append((self.a(agg), agg.arg.type))
        stream_cols = list(dict.fromkeys(stream_cols))
        # Only the entities of the spine: a refresh of a few changed entities then costs their
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
            a = self.a(agg) if agg.arg is not None else None
            if f == "count" and agg.arg is None:
                fn = exp.Sum(this=col(KIND))
            elif f == "count":
                fn = exp.Count(this=col(a))
            elif f == "count_distinct":
                fn = exp.Sum(this=col(self.a(agg, "f")))
            elif f == "sum":
                fn = exp.Sum(this=col(a))
            elif f == "avg":
                fn = exp.Avg(this=d.cast(col(a), ir.FLOAT))
            elif f in ("min", "max"):
                fn = d.pick(col(a), agg.type, largest=f == "max")
            elif f == "first":
                fn = exp.Min(this=col(self.a(agg, "k")))
            else:  # last, last_k: the greatest rank seen so far
                fn = exp.Max(this=col(self.a(agg, "k")))
            run_cols.append(exp.alias_(over(fn), self.a(agg, "r")))
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
                                    this=col(self.a(agg, "k"), alias),
                                    expression=col(self.a(agg, "r"), r),
                                )
                            ]
                        ),
                    )
                )
                out.append(exp.alias_(col(self.a(agg), alias), self.a(agg, "r")))
            elif agg.func != "last_k":
                out.append(col(self.a(agg, "r"), r))
        q = exp.select(*out).from_(table_ref(running, r))
        for alias, on in joins:
            q = q.join(table_ref(ranked, alias), on=on, join_type="left")
        q = q.where(exp.EQ(this=col(KIND, r), expression=exp.Literal.number(0)))
        name = self.add("cagg", q)
        self.out.relations.append(name)
        for agg in aggs:
            if agg.func != "last_k":
                self.out.columns[agg] = (name, self.a(agg, "r"))

        for agg in aggs:
            if agg.func != "last_k":
                continue
            x = "x"
            rank, top = col(self.a(agg, "k"), x), col(self.a(agg, "r"), r)
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
                col(self.a(agg), x),
                exp.Sub(this=top.copy(), expression=rank.copy()),
                exp.true(),
                agg.arg.type,
            )
            group = [*[col(k, r) for k in self.keys], col(T, r)]
            q = (
                exp.select(*group, exp.alias_(lst, self.a(agg, "r")))
                .from_(table_ref(running, r))
                .join(table_ref(ranked, x), on=on, join_type="inner")
                .where(exp.EQ(this=col(KIND, r), expression=exp.Literal.number(0)))
                .group_by(*[g.copy() for g in group])
            )
            name = self.add(f"lastk{self.index[agg]}", q)
            self.out.relations.append(name)
            self.out.columns[agg] = (name, self.a(agg, "r"))


def _invertible(agg: ir.Aggregate) -> bool:
    """An aggregation a window's difference of prefix sums gives: counts, and sums/averages of
    numbers (of a null-typed input they stay in the range join)."""
    if agg.func == "count":
        return True
    return agg.func in ("sum", "avg") and agg.arg.type in (ir.INT, ir.FLOAT)


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
) -> dict[str, exp.Expression]:
    """Each feature as an expression over the joined aggregate relations.

    `alias_of` maps a relation (CTE) name to the alias it is joined under. Derived features are
    inlined; the view's TTL nulls every feature when no event is in [T - ttl, T).
    """
    built: dict[str, exp.Expression] = {}
    by_name = {f.name: f for f in view.features}

    def leaf(e: ir.Expr) -> exp.Expression:
        if isinstance(e, ir.Aggregate):
            rel, column = aggs.columns[e]
            return empty_value(e, col(column, alias_of[rel]), d)
        if isinstance(e, ir.FeatureRef):
            return wrap(built[e.name].copy())
        raise TypeError(e)

    def plain(f: ir.Feature) -> exp.Expression:
        # What `f` uses is compiled first, with an explicit stack: a chain of derived features
        # can be longer than Python's recursion limit.
        todo = [f.name]
        while todo:
            name = todo[-1]
            if name in built:
                todo.pop()
                continue
            expr = by_name[name].expr
            missing = [
                n.name
                for n in ir.walk(expr)
                if isinstance(n, ir.FeatureRef) and n.name not in built
            ]
            if missing:
                todo.extend(missing)
                continue
            built[name] = to_sql(expr, d, leaf)
            todo.pop()
        return built[f.name].copy()

    out = {}
    for f in view.needed(features):
        value = plain(f)
        if f.type.name != "list":  # one SQL type per feature whatever the dialect computed
            value = d.cast(value, f.type)
        if aggs.ttl is not None:
            rel, column = aggs.ttl
            alive = exp.GT(
                this=exp.Coalesce(
                    this=col(column, alias_of[rel]), expressions=[exp.Literal.number(0)]
                ),
                expression=exp.Literal.number(0),
            )
            value = exp.Case(ifs=[exp.If(this=alive, true=value)])
        out[f.name] = value
    return out
