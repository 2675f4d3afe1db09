"""Every internal name of a view's compiled queries and of its stored state, in one place.

The training query, the refresh query and the online state read each other's columns: the
refresh query's TTL flag is what the feature values test, the state table's columns are what the
next run registers. Spelled once here, they cannot drift apart. Users cannot define a name
starting with `__` (check/load.py), so none of these collides with a column of theirs.

Per-aggregation names carry the aggregation's index in the view's list (`ir.View.aggregates`),
per-input names the index of its distinct input expression: two aggregations of one input share
its column. Names that reach the stored state (`count`, `sum`, `extreme`, `slot`, `distinct_*`,
`LAST_SEEN`, `state_table`) are a storage format: renaming one makes every stored state
unreadable (a full refresh everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence

from fsdsl import ir

# ---- columns of the spine and of the events relation ----
T = "__t"  # the query time of a spine row
TS, CREATED, AVAIL = "__ts", "__created", "__avail"  # an event's timestamp, created, visibility
BUCKET = "__b"  # the window bucket of the bucketed range join
KIND, AT = "__kind", "__at"  # spine (0) or event (1) row of a running stream, and its time
ALIVE = "__ttl"  # >0 where the view's TTL keeps the entity alive at T
VALUE = "__v"  # the one value column of a per-aggregation relation (latest, candidates, seen)
RANK = "__n"  # a candidate's rank in the refresh query's picks
BAD = "__bad"  # a prefix-sum row whose float sums must be recomputed
TIE = "__tie"  # an event's place among its entity's rows tied in (timestamp, created)
# the fields of a running arg-max struct, compared in this order: timestamp, created, value
ORDER_FIELDS = ("t", "c", "v")

# ---- the refresh query and the stored state ----
LAST_SEEN = "__lt"  # the state's latest visible timestamp (TTL)
NEW = "__new"  # an event row visible at R and not at R0
DIRTY = "__dirty"  # 1 for an entity recomputed from all its events (rows ingested late)
SEEN_AT = T  # a `count_distinct` value's latest timestamp, in its state relation

_STATE_TABLE = "__fsdsl_state_"
_DIRTY_TABLE = "__fsdsl_dirty_"


def state_table(view: str) -> str:
    """The relation a run registers the previous state under for the refresh query."""
    return f"{_STATE_TABLE}{view}"


def dirty_table(view: str) -> str:
    """The relation a run registers the keys of the entities to recompute under (their
    events were ingested after the state's time with a visibility before it)."""
    return f"{_DIRTY_TABLE}{view}"


class Names:
    """The names of one view's queries, for the aggregations `aggs` (in the view's order)."""

    def __init__(self, view: str, aggs: Sequence[ir.Aggregate]):
        self.view = view
        self.prefix = f"{view}__"  # CTE names: the view's own, so views of a service never clash
        self.index = {a: i for i, a in enumerate(aggs)}
        # one column per distinct input expression, however many aggregations read it
        args = dict.fromkeys(a.arg for a in aggs if a.arg is not None)
        self.arg_index = {arg: i for i, arg in enumerate(args)}

    def relation(self, suffix: str) -> str:
        """A CTE of this view's queries."""
        return f"{self.prefix}{suffix}"

    @staticmethod
    def _column(kind: str, i: int) -> str:
        return f"__{kind}{i}"

    def _agg(self, kind: str, agg: ir.Aggregate) -> str:
        return self._column(kind, self.index[agg])

    def _input(self, kind: str, agg: ir.Aggregate) -> str:
        return self._column(kind, self.arg_index[agg.arg])

    def inputs(self) -> list[tuple[ir.Expr, str]]:
        """Each distinct input expression with its events column, in first-use order."""
        return [(arg, self._column("a", i)) for arg, i in self.arg_index.items()]

    # ---- per input expression ----
    def input(self, agg: ir.Aggregate) -> str:
        """The events' column holding `agg`'s input value."""
        return self._input("a", agg)

    def first_seen(self, agg: ir.Aggregate) -> str:
        """1 on the first event of each value of the input (a running distinct count)."""
        return self._input("f", agg)

    def order_rank(self, agg: ir.Aggregate) -> str:
        """The rank of an event among the non-null inputs, in the contract's order."""
        return self._input("k", agg)

    # ---- per aggregation ----
    def result(self, agg: ir.Aggregate) -> str:
        """The column an aggregation's value is read from, in whatever relation computes it."""
        return self._agg("r", agg)

    def valid(self, agg: ir.Aggregate) -> str:
        """1 where an event of the range join counts for an ordered aggregation."""
        return self._agg("v", agg)

    def row_number(self, agg: ir.Aggregate) -> str:
        """An event's position among the ones an ordered aggregation picks from."""
        return self._agg("n", agg)

    def prefix_column(self, kind: str, agg: ir.Aggregate | None = None) -> str:
        """A running total of the prefix sums: `c` rows; per input `n` count, `s` sum, `m` sum
        of magnitudes."""
        return f"__p{kind}" + ("" if agg is None else str(self.arg_index[agg.arg]))

    # ---- the state: each aggregation's partial aggregate ----
    def count(self, agg: ir.Aggregate) -> str:
        return self._agg("c", agg)

    def sum(self, agg: ir.Aggregate) -> str:
        return self._agg("s", agg)

    def extreme(self, agg: ir.Aggregate) -> str:
        """A `min` / `max`'s best value so far."""
        return self._agg("m", agg)

    def slot(self, agg: ir.Aggregate, j: int, part: str) -> str:
        """The j-th best row of a `first` / `last` / `last_k`: its value `v`, timestamp `t`,
        created `c`."""
        return f"__p{self.index[agg]}_{j}_{part}"

    def distinct_values(self, agg: ir.Aggregate) -> str:
        return f"__d{self.index[agg]}_v"

    def distinct_times(self, agg: ir.Aggregate) -> str:
        return f"__d{self.index[agg]}_t"

    def distinct_table(self, agg: ir.Aggregate) -> str:
        """The relation a `count_distinct`'s stored lists are registered as, one row per value."""
        return f"{state_table(self.view)}__d{self.index[agg]}"

    def leaving(self, j: int) -> str:
        """1 where the entity lost an event of the j-th window since the previous refresh."""
        return f"__l{j}"
