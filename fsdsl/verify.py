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

A link compiles to a view (`ir.Link`), so it is compared like one, on keys of every kind a link
can leave an entity in (`link_keys`: linked, re-linked, unlinked, never seen). A service with a
`key` is then compared end to end on those keys: `online_features` (which resolves the links in
Redis) against the service's training query (which resolves them in SQL) at the served time.

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
from fsdsl.compile.names import AVAIL, CREATED, KIND, RANK, TS, T
from fsdsl.compile.pit import events_relation
from fsdsl.compile.plan import plan_view
from fsdsl.online.codec import key_array, stored_names
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.lookup import AS_OF_VIEWS, ServicePlan, ViewPlan, lookup, plan_service
from fsdsl.online.store import OnlineStore
from fsdsl.training_set import compute

UNSEEN = 3
# The kinds of entity a link leaves at a time, each sampled when the data has it (`link_keys`):
# one link row named one target; it named two or more over time, and still links; its latest
# row unlinks, or is older than the link's TTL; and keys with no row (the UNSEEN keys).
LINKED, RELINKED, UNLINKED, NEVER_SEEN = "linked", "re-linked", "unlinked", "never seen"
KINDS = (LINKED, RELINKED, UNLINKED)


@dataclass
class FeatureReport:
    view: str
    feature: str
    compared: int = 0
    mismatches: int = 0
    examples: list = field(default_factory=list)


@dataclass
class ServiceReport:
    """One column (a resolved key or a feature) of a service with a `key`, end to end: what
    `online_features` serves for sampled keys of the service's key entity against the
    service's training query, links resolved in SQL, at the served `_as_of` (`at`)."""

    service: str
    column: str
    at: str | None = None
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
    # link view -> {kind: keys drawn from the link's source}, see `link_keys`
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    # view -> the keys compared (decoded key texts); for tests and callers, not in `to_dict`
    keys: dict[str, list] = field(default_factory=dict, repr=False)
    services: list[ServiceReport] = field(default_factory=list)
    # service -> why it was not compared end to end (its views are, one by one)
    unchecked: dict[str, str] = field(default_factory=dict)

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in (*self.features, *self.services))

    @property
    def compared(self) -> int:
        return sum(r.compared for r in (*self.features, *self.services))

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
            "links": self.categories,
            "services": [r.__dict__ for r in self.services],
            "unchecked_services": self.unchecked,
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
        reports, why, keys = _verify_view(repo, v, wh, online, sample, at, result.categories)
        if why:
            (result.stale if why.stale else result.skipped)[v.name] = why.reason
        result.features += reports
        if keys:
            result.keys[v.name] = keys
    named = {v.name for v in views}
    for svc in repo.services.values():
        # a service that resolves links, whose views and links are all being verified: end to
        # end, from the keys drawn for its first links (so of every kind those have)
        if svc.key is None or not svc.links() or not {*svc.views(), *svc.links()} <= named:
            continue
        unverified = [n for n in (*svc.links(), *svc.views()) if n not in result.keys]
        if unverified:
            result.unchecked[svc.name] = f"view(s) {', '.join(unverified)} not compared"
            continue
        first = [n for n in svc.links() if repo.links[n].from_entity.name == svc.key.name]
        texts = dict.fromkeys(json.dumps(k) for n in first for k in result.keys[n])
        reports, why = verify_service(repo, svc, [json.loads(t) for t in texts], wh, online, at)
        if why:
            result.unchecked[svc.name] = why
        result.services += reports
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
    reports, why, _keys = _verify_view(repo, view, wh, online, sample, at, {})
    return reports, why


def _verify_view(
    repo: ir.Repository,
    view: ir.View,
    wh: Warehouse,
    online: OnlineStore,
    sample: int,
    at: dt.datetime | None,
    kinds: dict[str, dict[str, int]],
) -> tuple[list[FeatureReport], Unverified | None, list]:
    """`verify_view`, and the keys it compared; a link's view records in `kinds` how many
    keys of each kind it drew."""
    state = online.state(view.name)
    if not state or not state.get("fp"):
        return [], Unverified("never refreshed"), []
    expected = fingerprint(view)  # from the definition, never from a cached text
    if state["fp"] != expected:
        return (
            [],
            Unverified(
                f"the online store holds values of another definition (fingerprint "
                f"{state['fp']}, the current definition's is {expected}); run `fsc run`",
                stale=True,
            ),
            [],
        )
    when = at or dt.datetime.fromisoformat(state["as_of"])
    texts = online.sample_keys(state["ns"], sample)
    if view.link is not None:
        # every kind of entity a link can leave (a random draw may miss the rarer ones)
        drawn = link_keys(repo.links[view.link], wh, when, -(-sample // 3))
        texts += [t for t, _kind in drawn]
        kinds[view.name] = {k: sum(kind == k for _t, kind in drawn) for k in KINDS}
        kinds[view.name][NEVER_SEEN] = UNSEEN
    else:
        texts += warehouse_keys(view, wh, when, sample)
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
        (
            ViewPlan(
                view.name,
                state["fp"],
                view.entity.keys,
                view.features,
                stored=stored_names(view.features),
            ),
        ),
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
    return reports, None, keys


def verify_service(
    repo: ir.Repository,
    service: ir.Service,
    keys: list[list],
    wh: Warehouse,
    online: OnlineStore,
    at: dt.datetime | None,
) -> tuple[list[ServiceReport], str | None]:
    """`online_features(service, keys)` against the service's training query (labels: the
    key entity's columns and the served `_as_of`), column by column: the resolved keys, then
    the features. Exact only when the links and views are served as of one time (after `fsc
    run`; a push moves only its source's views), else not compared, with why."""
    plan = plan_service(repo, service.name)
    entity = service.key.keys
    names = [k.name for k in entity]
    requests = [
        dict(zip(names, [_typed(v, k.type) for v, k in zip(key, entity, strict=True)], strict=True))
        for key in keys
    ]
    served = lookup(online, plan, requests, as_of=True)
    times = served[0][AS_OF_VIEWS] if served else {}
    if None in times.values() or len(set(times.values())) != 1:
        shown = ", ".join(f"{v} {t.isoformat() if t else 'never'}" for v, t in times.items())
        return [], f"its views are served as of different times ({shown}): compared one by one"
    when = at or next(iter(times.values()))
    labels = pa.table(
        {
            **{
                n: pa.array([r[n] for r in requests], arrow_type(k.type))
                for n, k in zip(names, entity, strict=True)
            },
            "__verify_t": pa.array([when] * len(keys), pa.timestamp("us")),
        }
    )
    trained = compute(
        repo,
        list(service.features),
        labels,
        wh,
        timestamp_column="__verify_t",
        where="verify",
        service=service,
    )
    # after the labels' columns: the resolved keys, then the features, as served
    columns = [f.name for f in plan.resolved] + list(plan.order)
    expected = trained.select(list(range(labels.num_columns, trained.num_columns))).to_pylist()
    reports = []
    for j, column in enumerate(columns):
        r = ServiceReport(service.name, column, when.isoformat())
        for key, t_row, s_row in zip(keys, expected, served, strict=True):
            r.compared += 1
            want = list(t_row.values())[j]
            if not _same(want, s_row.get(column)):
                r.mismatches += 1
                if len(r.examples) < 3:
                    r.examples.append(
                        {"key": key, "training": repr(want), "online": repr(s_row.get(column))}
                    )
        reports.append(r)
    return reports, None


def link_keys(link: ir.Link, wh: Warehouse, when: dt.datetime, n: int) -> list[tuple[str, str]]:
    """Up to `n` key texts of each kind (`KINDS`) of the link's from-entity at `when`, drawn at
    random from the entities with a link row visible then, with their kind.

    Kinds from the visible rows of each entity: the latest by (timestamp, created, unlink
    first: ties break as `last()` does) unlinks, or is older than the TTL: unlinked; else the
    rows named two targets or more: re-linked; else linked."""
    view = link.view
    d = dialects.get(wh.dialect)
    plan = plan_view(view)
    events = events_relation(plan, d)  # the rows the link's view reads, as training reads them
    inputs = {a.name: c for a, c in plan.names.inputs() if isinstance(a, ir.Column)}
    targets = [inputs[c] for c in link.to_columns]
    keys = [k.name for k in view.entity.keys]
    as_of = d.cast(exp.Placeholder(this="as_of"), ir.TIMESTAMP)

    def c(name: str, table: str | None = None) -> exp.Column:
        return exp.column(exp.to_identifier(name), table=table)

    def when_(test: exp.Expression, then: exp.Expression, default=None) -> exp.Case:
        return exp.Case(ifs=[exp.If(this=test, true=then)], default=default)

    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    unlinks = exp.or_(*(exp.Is(this=c(t), expression=exp.Null()) for t in targets))
    order = [exp.Ordered(this=c(TS), desc=True)]
    if view.source.created is not None:
        order.append(exp.Ordered(this=c(CREATED), desc=True))
    order.append(exp.Ordered(this=c("__u"), desc=True))
    latest = exp.Window(
        this=exp.RowNumber(),
        partition_by=[c(k) for k in keys],
        order=exp.Order(expressions=order),
    )
    visible = (
        exp.select(*(c(k) for k in keys), c(TS), *(c(t) for t in targets))
        .select(when_(unlinks, one, zero).as_("__u"))
        .from_(exp.to_identifier(events.alias))
        .where(exp.LT(this=c(AVAIL), expression=as_of))
    )
    if view.source.created is not None:
        visible = visible.select(c(CREATED))
    ranked = exp.select(exp.Star(), latest.as_(RANK)).from_(visible.subquery("visible"))
    first = exp.EQ(this=c(RANK), expression=one)
    moved = exp.or_(
        *(exp.NEQ(this=exp.Min(this=c(t)), expression=exp.Max(this=c(t))) for t in targets)
    )
    per = (
        exp.select(*(c(k) for k in keys))
        .select(exp.Max(this=when_(first, c("__u"))).as_("__u"))
        .select(exp.Max(this=when_(first, c(TS))).as_(T))
        .select(when_(moved, one, zero).as_("__m"))
        .from_(ranked.subquery("ranked"))
        .group_by(*(c(k) for k in keys))
    )
    gone = exp.EQ(this=c("__u"), expression=one)
    if link.ttl is not None:
        expired = exp.LT(this=c(T), expression=d.minus(as_of.copy(), link.ttl))
        gone = exp.or_(gone, expired)
    kind = exp.Case(
        ifs=[
            exp.If(this=gone, true=exp.Literal.string(UNLINKED)),
            exp.If(this=exp.EQ(this=c("__m"), expression=one), true=exp.Literal.string(RELINKED)),
        ],
        default=exp.Literal.string(LINKED),
    )
    kinds = exp.select(*(c(k) for k in keys), kind.as_(KIND), exp.Rand().as_("__r")).from_(
        per.subquery("per")
    )
    pick = exp.Window(
        this=exp.RowNumber(),
        partition_by=[c(KIND)],
        order=exp.Order(expressions=[exp.Ordered(this=c("__r"))]),
    )
    picked = exp.select(*(c(k) for k in keys), c(KIND), pick.as_("__p")).from_(
        kinds.subquery("kinds")
    )
    drawn = (
        exp.select(*(c(k) for k in keys), c(KIND))
        .from_(picked.subquery("picked"))
        .where(exp.LTE(this=c("__p"), expression=exp.Literal.number(n)))
    )
    drawn.set("with_", exp.With(expressions=[events]))
    result = wh.query(drawn, {"as_of": when})
    types = [k.type for k in view.entity.keys]
    texts = key_array([result.column(k) for k in keys], types).to_pylist()
    return list(zip(texts, result.column(KIND).to_pylist(), strict=True))


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
        .from_(exp.to_identifier(events.alias))
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
