"""The layout of a view's stored aggregate state, from the plan alone.

What the online store keeps between runs (its columns, the relations a run registers it under)
is decided by the view's plan and names, never by SQL: here without sqlglot, so that a run
whose refresh query is already compiled (`online/refresh.py`), and the fingerprint, import no
SQL builder. `compile/refresh.py` builds the query that reads and writes this layout.
"""

from __future__ import annotations

from fsdsl import ir
from fsdsl.compile import names
from fsdsl.compile.plan import plan_view


def state_table(view: ir.View) -> str:
    """The name under which a run registers the previous state for the refresh query."""
    return names.state_table(view.name)


def dirty_table(view: ir.View) -> str:
    """The name under which a run registers the keys of the entities to recompute in full
    (one column per entity key; empty when there are none)."""
    return names.dirty_table(view.name)


def state_columns(view: ir.View) -> list[tuple[str, ir.Type]]:
    """The state row of an entity: its keys, then each aggregation's partial aggregate (the
    view's plan, from the IR alone: the stored state reads the same whatever the backend)."""
    return plan_view(view).state_columns()


def distinct_tables(view: ir.View) -> list[tuple[str, str, str]]:
    """Per `count_distinct`: the relation the query reads its state from (keys, `names.VALUE`,
    `names.SEEN_AT`), and the two stored state lists (values, timestamps) it is made of."""
    return plan_view(view).distinct_tables()
