"""The definition fingerprint a view is stored and served under.

A store holds a view's values, and the partial aggregates an incremental run resumes from, in a
namespace named by this fingerprint: when it changes, the view is refreshed in full into a new
namespace. So it must change with anything that decides a stored value, and with nothing else:
it hashes the view's canonical form (`fsdsl.canonical`: no spelling, no dialect, no SQL text),
the layout of its aggregate state, the feature types the values are encoded with,
SEMANTICS_VERSION and the store's LAYOUT (and, for a link's view, LINK_LAYOUT). A compiler
change that prints other SQL computing the same values (a refactoring, a sqlglot upgrade, a
faster strategy) keeps every store; the compile cache has its own key for that
(`compile.version.compiler_version`).
"""

from __future__ import annotations

import hashlib

from fsdsl import canonical, ir
from fsdsl.compile.state import state_columns
from fsdsl.online.memo import per_view
from fsdsl.online.store import LAYOUT, LINK_LAYOUT

# Bump by hand in the commit that changes a value any compiler emits, for any view, on any
# warehouse (a fixed null rule, a Postgres-only fix of a rounding): every store is then
# recomputed in full, the only way its stored values and states come to be the new ones. A change
# that keeps every value (refactoring, new strategy, other SQL text) must leave it alone.
SEMANTICS_VERSION = 1


def fingerprint(view: ir.View) -> str:
    """16 hex digits naming what `view`'s stored values mean."""
    parts = [
        f"semantics {SEMANTICS_VERSION}",
        f"layout {LAYOUT}",  # a store of another layout is refreshed in full, never misread
        *_view_parts(view),
    ]
    if view.link is not None:  # a link's strings, which lookups resolve it by
        parts.append(f"link layout {LINK_LAYOUT}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@per_view
def _view_parts(view: ir.View) -> tuple[str, ...]:
    """The parts of the view's own: a walk of its whole definition, once per view object."""
    # The state's columns are numbered by an aggregation's first use, so the same definition
    # written in another order stores another layout: each column's aggregation, in order.
    aggregations = [canonical.expr_form(a).digest for a in view.aggregates()]
    return (
        f"view {canonical.view_form(view).digest}",
        "state " + ",".join(f"{name}:{t}" for name, t in state_columns(view)),
        "aggregations " + ",".join(aggregations),
        "types " + ",".join(f"{f.name}:{f.type}" for f in sorted(view.features, key=_name)),
    )


def _name(f: ir.Feature) -> str:
    return f.name
