"""`FeatureStore.verify` / `fsc verify`: prove there is no training-serving skew, on a sample
of live entities.

For every view with a refresh, sample entity keys from the online store, and from the
warehouse (entities with an event visible at the refresh time that passes the view's filter),
plus keys never seen; compute the same features with the *training* query at the refresh time,
and compare cell by cell with what `online_features` serves.

The expectation never comes from `.fsc/cache`, nor from any refresh text: the fingerprint is
the definition's meaning (`fsdsl.online.fingerprint`), and the values come from the training
query. A store filled by a tampered, stale or wrong refresh query (a cached text rewritten with
a fresh digest, a compiler bug in one dialect) is caught by its values: where it stored wrong
ones, on the store's keys; where it dropped whole entities, which a sample of the store's own
keys could never find, on the warehouse's keys, served as unseen where training has values.

It compares the two paths, so it sits above both: the online store (`fsdsl.online`) and the
training-set job (`fsdsl.training_set`) are peers that never import each other.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from fsdsl import ir
from fsdsl.arrow import arrow_type
from fsdsl.backends.base import Warehouse
from fsdsl.compile import dialects
from fsdsl.compile.names import AVAIL
from fsdsl.compile.pit import events_relation
from fsdsl.compile.plan import plan_view
from fsdsl.online.codec import key_array
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.lookup import ServicePlan, ViewPlan, lookup
from fsdsl.online.store import OnlineStore
from fsdsl.training_set import compute

UNSEEN = 3


@dataclass
class FeatureReport:
    view: str
    feature: str
    compared: int = 0
    mismatches: int = 0
    examples: list = field(default_factory=list)


@dataclass(frozen=True)
class Unverified:
    """Why a view was not compared. `stale`: the store serves it under another fingerprint
    than the current definition's, so serving cannot equal training — a failure; otherwise the
    view was never refreshed — nothing to check."""

    reason: str
    stale: bool = False


@dataclass
class VerifyResult:
    """What `verify` found, for a caller to render: per-feature comparisons, and the views it
    could not compare, split by whether that is itself a failure."""

    features: list[FeatureReport] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # view -> why (never refreshed)
    stale: dict[str, str] = field(default_factory=dict)  # view -> why (another definition)

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in self.features)

    @property
    def compared(self) -> int:
        return sum(r.compared for r in self.features)

    @property
    def ok(self) -> bool:
        """No mismatch, no stale view, and something compared unless nothing was asked."""
        return not (self.mismatches or self.stale or (self.skipped and not self.features))

    def to_dict(self) -> dict:
        return {
            "mismatches": self.mismatches,
            "skipped": self.skipped,
            "stale": self.stale,
            "features": [r.__dict__ for r in self.features],
        }


def verify(
    repo: ir.Repository,
    views: list[ir.View],
    wh: Warehouse,
    online: OnlineStore,
    sample: int,
    at: dt.datetime | None,
) -> VerifyResult:
    """Every view of `views`, compared at `at` (default: each view's last refresh time)."""
    result = VerifyResult()
    for v in views:
        reports, why = verify_view(repo, v, wh, online, sample, at)
        if why:
            (result.stale if why.stale else result.skipped)[v.name] = why.reason
        result.features += reports
    return result


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def verify_view(
    repo: ir.Repository,
    view: ir.View,
    wh: Warehouse,
    online: OnlineStore,
    sample: int,
    at: dt.datetime | None,
) -> tuple[list[FeatureReport], Unverified | None]:
    state = online.state(view.name)
    if not state or not state.get("fp"):
        return [], Unverified("never refreshed")
    expected = fingerprint(view)  # from the definition, never from a cached text
    if state["fp"] != expected:
        return [], Unverified(
            f"the online store holds values of another definition (fingerprint "
            f"{state['fp']}, the current definition's is {expected}); run `fsc run`",
            stale=True,
        )
    when = at or dt.datetime.fromisoformat(state["as_of"])
    texts = online.sample_keys(state["ns"], sample) + warehouse_keys(view, wh, when, sample)
    keys = [json.loads(t) for t in dict.fromkeys(texts)]
    # keys that were never seen: values must be those of an unseen entity
    for i in range(UNSEEN):
        keys.append([_unseen(k.type, i) for k in view.entity.keys])
    names = [k.name for k in view.entity.keys]
    labels = pa.table(
        {
            **{
                n: pa.array(
                    [_typed(k[j], view.entity.keys[j].type) for k in keys],
                    arrow_type(view.entity.keys[j].type),
                )
                for j, n in enumerate(names)
            },
            "__verify_t": pa.array([when] * len(keys), pa.timestamp("us")),
        }
    )
    features = [(view.name, f.name) for f in view.features]
    trained = compute(
        repo, features, labels, wh, timestamp_column="__verify_t", where="verify"
    ).to_pylist()

    plan = ServicePlan(
        "verify",
        (ViewPlan(view.name, state["fp"], view.entity.keys, view.features),),
        tuple(f.name for f in view.features),
    )
    served = lookup(
        online,
        plan,
        [
            dict(
                zip(
                    names,
                    [_typed(v, view.entity.keys[j].type) for j, v in enumerate(k)],
                    strict=True,
                )
            )
            for k in keys
        ],
    )
    reports = []
    for f in view.features:
        r = FeatureReport(view.name, f.name)
        for key, t_row, s_row in zip(keys, trained, served, strict=True):
            r.compared += 1
            if not _same(t_row[f.name], s_row[f.name]):
                r.mismatches += 1
                if len(r.examples) < 3:
                    r.examples.append(
                        {"key": key, "training": repr(t_row[f.name]), "online": repr(s_row[f.name])}
                    )
        reports.append(r)
    return reports, None


def warehouse_keys(view: ir.View, wh: Warehouse, when: dt.datetime, n: int) -> list[str]:
    """The key texts (as the store writes them) of up to `n` entities, drawn at random, with an
    event visible at `when` that passes the view's filter: those a refresh at `when` must have
    stored, whether or not the refresh query did."""
    d = dialects.get(wh.dialect)
    # the rows a refresh reads (keys and timestamps set, the view's filter), as the compiler
    # selects them; visible at `when` iff available before it (docs/semantics.md)
    events = events_relation(plan_view(view, features=[]), d)
    names = [k.name for k in view.entity.keys]
    as_of = d.cast(exp.Placeholder(this="as_of"), ir.TIMESTAMP)
    entities = (
        exp.select(*(exp.column(exp.to_identifier(k)) for k in names))
        .distinct()
        .from_(exp.to_table(exp.to_identifier(events.alias)))
        .where(exp.LT(this=exp.column(exp.to_identifier(AVAIL)), expression=as_of))
    )
    drawn = (
        exp.select(*(exp.column(exp.to_identifier(k)) for k in names))
        .from_(entities.subquery("entities"))
        .order_by(exp.Ordered(this=exp.Rand()))
        .limit(n)
    )
    drawn.set("with_", exp.With(expressions=[events]))
    result = wh.query(drawn, {"as_of": when})
    types = [k.type for k in view.entity.keys]
    return key_array([result.column(k) for k in names], types).to_pylist()


def _typed(v, t: ir.Type):
    """A key value decoded from its JSON key text, as the entity's type."""
    if isinstance(v, str) and t.name == "timestamp":
        return dt.datetime.fromisoformat(v)
    if isinstance(v, str) and t.name == "date":
        return dt.date.fromisoformat(v)
    return v


def _unseen(t: ir.Type, i: int):
    return {
        "string": f"__fsdsl_never_seen_{i}",
        "int": -(10**15) - i,
        "float": -1e300 - i,
        "bool": None,
        "timestamp": f"1900-01-0{i + 1}T00:00:00",
        "date": f"1900-01-0{i + 1}",
    }[t.name]
