"""The plan between a view's IR and its SQL: per aggregation, how the training query computes it
(its strategy, chosen per dialect) and what the refresh query keeps of it (its state form).

Both queries and the online state read the one plan, so a change to an aggregation's state or
strategy is made here once. The state forms need no dialect: they are a function of the IR, and
they are the stored state's schema, which must read the same whichever backend wrote it.

The strategies (docs in `pit.py`, which builds them):

* `ASOF`: TTL and unwindowed `last` where the dialect has an ASOF join and the source no late
  rows; `PREFIX`: invertible windowed aggregations by prefix sums (same conditions, only when
  forced: measured slower than the range join at scale M);
* `EARLIEST`: unwindowed `first` without late rows;
* `RUNNING`: other unwindowed aggregations, by running window functions;
* `RANGE_JOIN`: windowed aggregations, and `last_k` without a window on a source with late rows.

`force` overrides the planner (tests only): every strategy must meet the contract wherever it is
exact, not only where it is picked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

from fsdsl import ir
from fsdsl.compile.names import LAST_SEEN, Names

# The strategies, as the plan records them and `force` names them.
ASOF, RANGE_JOIN, RUNNING, EARLIEST = "asof", "range join", "running", "earliest"
PREFIX = "prefix"  # invertible windowed aggregations: prefix sums read by ASOF at T and T - w

# How the refresh query maintains an aggregation from its state.
MERGE = "merge"  # counts and sums add, min/max pick: the state is the partial aggregate
PICK = "pick"  # first / last / last_k: the state is the best k rows
DISTINCT = "distinct"  # count_distinct: the state is each value with its latest timestamp


class Capabilities(Protocol):
    """What the planner needs of a dialect: its name (for messages) and whether it has ASOF."""

    name: str
    has_asof: bool
    ordered_structs: bool


class StateColumn(NamedTuple):
    name: str
    type: ir.Type


@dataclass(frozen=True)
class AggregationPlan:
    agg: ir.Aggregate
    label: str  # as the plan names it: its function over its input column, e.g. sum(__a0)
    refresh: str  # MERGE, PICK or DISTINCT
    slots: tuple[tuple[StateColumn, ...], ...]  # PICK: the best rows kept, best first
    state: tuple[StateColumn, ...]  # the columns of its partial aggregate in the stored state
    strategy: str | None = None  # the training query's; None when planned without a dialect


@dataclass(frozen=True)
class ViewPlan:
    view: ir.View
    names: Names
    aggregations: tuple[AggregationPlan, ...]
    ttl: str | None = None  # the TTL's strategy, where the view has one and a dialect is known

    @property
    def aggs(self) -> list[ir.Aggregate]:
        return [a.agg for a in self.aggregations]

    def of(self, agg: ir.Aggregate) -> AggregationPlan:
        return self.aggregations[self.names.index[agg]]

    def shapes(self) -> dict[str, str]:
        """Each shape ("ttl", "last(__a0)") with its strategy."""
        out = {} if self.ttl is None else {"ttl": self.ttl}
        out.update((a.label, a.strategy) for a in self.aggregations if a.strategy is not None)
        return out

    def describe(self) -> str:
        """The plan as one line, for a comment in the compiled query."""
        return f"{self.view.name}: " + ", ".join(
            f"{shape} {how}" for shape, how in self.shapes().items()
        )

    def state_columns(self) -> list[tuple[str, ir.Type]]:
        """The state row of an entity: its keys, each aggregation's partial aggregate, then the
        latest visible timestamp where a TTL needs it."""
        out = [(k.name, k.type) for k in self.view.entity.keys]
        for a in self.aggregations:
            out += a.state
        if self.view.ttl is not None:
            out.append(StateColumn(LAST_SEEN, ir.TIMESTAMP))
        return out

    def distinct_tables(self) -> list[tuple[str, str, str]]:
        """Per `count_distinct`: the relation the refresh query reads its state from, and the
        two stored lists (values, timestamps) that relation is made of."""
        return [
            (self.names.distinct_table(a.agg), a.state[0].name, a.state[1].name)
            for a in self.aggregations
            if a.refresh == DISTINCT
        ]


def plan_view(
    view: ir.View,
    features: list[str] | None = None,
    dialect: Capabilities | None = None,
    force: Mapping[str, str] | None = None,
) -> ViewPlan:
    """The plan of `features` of `view` (all of them by default); with a dialect, the training
    strategies too. Raises ValueError where `force` asks for a strategy that is not exact."""
    aggs = view.aggregates(features)
    names = Names(view.name, aggs)
    has_created = view.source.created is not None
    plan = ViewPlan(
        view=view,
        names=names,
        aggregations=tuple(_aggregation(a, names, has_created) for a in aggs),
    )
    if dialect is None:
        return plan
    return _strategies(plan, dialect, dict(force or {}))


def _aggregation(agg: ir.Aggregate, names: Names, has_created: bool) -> AggregationPlan:
    args = [names.input(agg) if agg.arg is not None else "*"]
    args += [str(agg.k)] if agg.k is not None else []
    over = f" over {agg.window}" if agg.window is not None else ""
    label = f"{agg.func}({', '.join(args)}){over}"
    f = agg.func
    slots: tuple[tuple[StateColumn, ...], ...] = ()
    if f == "count_distinct":
        refresh = DISTINCT
        state = (
            StateColumn(names.distinct_values(agg), ir.list_of(agg.arg.type)),
            StateColumn(names.distinct_times(agg), ir.list_of(ir.TIMESTAMP)),
        )
    elif f in ir.ORDERED_AGGREGATES:
        refresh = PICK
        parts = [("v", agg.arg.type), ("t", ir.TIMESTAMP)]
        parts += [("c", ir.TIMESTAMP)] if has_created else []
        slots = tuple(
            tuple(StateColumn(names.slot(agg, j, part), t) for part, t in parts)
            for j in range(1, (agg.k if f == "last_k" else 1) + 1)
        )
        state = tuple(c for slot in slots for c in slot)
    else:
        refresh = MERGE
        if f == "count":
            state = (StateColumn(names.count(agg), ir.INT),)
        elif f == "sum":
            state = (StateColumn(names.sum(agg), agg.type),)
        elif f == "avg":
            state = (StateColumn(names.sum(agg), ir.FLOAT), StateColumn(names.count(agg), ir.INT))
        else:
            assert f in ("min", "max"), f
            state = (StateColumn(names.extreme(agg), agg.type),)
    return AggregationPlan(agg=agg, label=label, refresh=refresh, slots=slots, state=state)


def invertible(agg: ir.Aggregate) -> bool:
    """An aggregation a window's difference of prefix sums gives: counts, and sums/averages of
    numbers (of a null-typed input they stay in the range join)."""
    if agg.func == "count":
        return True
    return agg.func in ("sum", "avg") and agg.arg.type in (ir.INT, ir.FLOAT)


def _strategies(plan: ViewPlan, d: Capabilities, force: dict[str, str]) -> ViewPlan:
    view, aggs = plan.view, plan.aggs
    has_created = view.source.created is not None

    def choose(shape: str, present: bool, alternatives: dict[str, bool], cheaper=True) -> str:
        """How `shape` is computed: the first exact `alternatives` (ASOF, earliest, prefix; each
        with whether it is exact here) where cheaper than the general form (range join, running
        ranks), or the forced one; forcing an inexact form is an error, never a silent
        fallback."""
        general = RANGE_JOIN if shape in ("ttl", "window") else RUNNING
        if not present:
            return general
        preferred = next((a for a, exact in alternatives.items() if exact), None)
        how = force.get(shape, preferred if preferred and cheaper else general)
        if how != general and not alternatives.get(how, False):
            raise ValueError(
                f"strategy {how!r} cannot compute {shape} exactly in view {view.name} "
                f"({d.name}{', late rows' if has_created else ''})"
            )
        return how

    windowed = [a for a in aggs if a.window is not None]
    # count / sum / avg over a window are differences of prefix sums; exact where every event
    # visible before T is one with timestamp before T (no late rows) and ASOF exists. Not the
    # default: at scale M (~10 events per user and window) the bucketed range join took 1.1 s
    # where the prefix sums took 3.7 s (4.1 s with the float check); a planner with statistics
    # would pick them for long windows over dense histories.
    inv = [a for a in windowed if invertible(a)]
    exact = d.has_asof and not has_created
    prefixed = inv if choose("window", bool(inv), {PREFIX: exact}, cheaper=False) == PREFIX else []
    windowed = [a for a in windowed if a not in prefixed]
    unbounded_lastk = [a for a in aggs if a.window is None and a.func == "last_k" and has_created]
    cumulative = [a for a in aggs if a.window is None and a not in unbounded_lastk]
    # Without late rows the latest visible row is the latest by timestamp, which is what an
    # ASOF join finds. With them it is the latest by (timestamp, created, value) among the rows
    # available before T: a running arg-max in visibility order, read by an ASOF join on the
    # visibility time, where structs compare field by field (`visible`, pit.py).
    by_visibility = d.has_asof and d.ordered_structs
    lasts = [a for a in cumulative if a.func == "last"]
    as_of = lasts if choose("last", bool(lasts), {ASOF: exact or by_visibility}) == ASOF else []
    # Without late rows the earliest visible row stays the earliest row once visible; with them
    # the earliest is a running arg-min, as the latest is a running arg-max.
    firsts = [a for a in cumulative if a.func == "first"]
    how_first = choose("first", bool(firsts), {EARLIEST: not has_created, ASOF: by_visibility})
    earliest = firsts if how_first == EARLIEST else []
    as_of += firsts if how_first == ASOF else []
    cumulative = [a for a in cumulative if a not in as_of and a not in earliest]
    ttl = view.ttl
    # A range join as wide as the TTL is already there for the windows: counting in it is
    # free. Only a TTL wider than every window pays for its own range join.
    ttl_how = None
    if ttl is not None:
        cheaper = all(a.window.seconds < ttl.seconds for a in windowed)
        # Without ASOF, the latest visible timestamp is a running max over the stream of labels
        # and events that the unwindowed aggregations sort anyway (exact everywhere; where no
        # aggregation needs that stream it is an entity's whole history sorted: forced only).
        ttl_how = choose("ttl", True, {ASOF: exact or by_visibility, RUNNING: True}, cheaper)
        if ttl_how == RUNNING and not cumulative and "ttl" not in force:
            ttl_how = RANGE_JOIN

    def strategy(agg: ir.Aggregate) -> str:
        if agg in as_of:
            return ASOF
        if agg in earliest:
            return EARLIEST
        if agg in cumulative:
            return RUNNING
        if agg in prefixed:
            return PREFIX
        return RANGE_JOIN

    return replace(
        plan,
        ttl=ttl_how,
        aggregations=tuple(replace(a, strategy=strategy(a.agg)) for a in plan.aggregations),
    )
