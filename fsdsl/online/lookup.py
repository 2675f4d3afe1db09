"""Online lookups for a service: key dicts in, feature dicts out, one round trip per batch.

With `status`, each row also says, per view, what its values are: `ok` (stored, checksum
verified), `missing` (no stored entity: the values of an unseen entity) or `corrupt` (a stored
entity failed its checksum: served as missing, rewritten by the next run). Where a view's
unseen-entity values are themselves absent or damaged, its entities without stored values get
nulls, with status `missing` or `corrupt`; the service's other views are served as usual.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from fsdsl import ir
from fsdsl.diagnostics import UsageError
from fsdsl.online.codec import decoder, key_text, normalise_key_value, plain_key_text
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.store import OnlineStore

STATUS = "__status"  # the row's {view: ok | missing | corrupt}, when asked for
# When asked for: the as-of time of the row's values, the earliest of its views' (the one time
# at which all of them are exact at once), and each view's, {view: as-of time}.
AS_OF = "_as_of"
AS_OF_VIEWS = "_as_of_views"


@dataclass(frozen=True)
class ViewPlan:
    view: str
    fp: str
    keys: tuple[ir.Key, ...]
    features: tuple[ir.Feature, ...]  # every feature of the view the service uses
    prefix: str = ""  # of each feature's name in served rows: `view__` with full_feature_names
    # derived once, so that a call does only what depends on the keys asked for
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    decoders: tuple = field(init=False, repr=False, compare=False)  # (name, field, decode)
    plain_key: str | None = field(init=False, repr=False, compare=False)  # a lone string key

    def __post_init__(self):
        simple = len(self.keys) == 1 and self.keys[0].type == ir.STRING
        derived = {
            "names": tuple(f.name for f in self.features),
            "decoders": tuple(
                (self.prefix + f.name, f.name.encode(), decoder(f.type)) for f in self.features
            ),
            "plain_key": self.keys[0].name if simple else None,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # frozen: set once, here


@dataclass(frozen=True)
class ServicePlan:
    """Everything a lookup needs that does not change between calls (computed once).

    `links`: for a service with a `key`, the views of its links in resolution order, each
    reading the keys the previous ones (or the request) hold and adding its target's keys."""

    service: str
    views: tuple[ViewPlan, ...]
    order: tuple[str, ...]  # feature names in service order
    links: tuple[ViewPlan, ...] = ()
    key: tuple[ir.Key, ...] = ()  # the service's `key` entity's keys, with links
    key_names: list[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.links:
            names = [k.name for k in self.key]
        else:
            names = list(dict.fromkeys(k.name for v in self.views for k in v.keys))
        object.__setattr__(self, "key_names", names)  # frozen: set once, here

    @property
    def resolved(self) -> list[ir.Feature]:
        """The keys links add to each row (features of the links' views), in order."""
        return [f for lp in self.links for f in lp.features]


def plan_service(repo: ir.Repository, service: str) -> ServicePlan:
    svc = repo.services[service]
    views = []
    for vname in svc.views():
        view = repo.views[vname]
        names = {f for v, f in svc.features if v == vname}
        feats = tuple(f for f in view.features if f.name in names)
        prefix = svc.column(vname, "")
        views.append(ViewPlan(vname, fingerprint(view), view.entity.keys, feats, prefix))
    links = []
    if svc.key is not None:
        for name in svc.links():
            view = repo.views[name]
            wanted = {k.name for k in repo.links[name].to_entity.keys}
            feats = tuple(f for f in view.features if f.name in wanted)
            links.append(ViewPlan(name, fingerprint(view), view.entity.keys, feats))
    return ServicePlan(
        service,
        tuple(views),
        tuple(svc.column(v, f) for v, f in svc.features),
        tuple(links),
        svc.key.keys if svc.key is not None else (),
    )


def lookup(
    online: OnlineStore,
    plan: ServicePlan,
    keys: list[dict],
    status: bool = False,
    as_of: bool = False,
) -> list[dict]:
    missing = [k for k in plan.key_names if k not in keys[0]] if keys else []
    if missing:
        raise UsageError(
            f"missing key column(s) {', '.join(f'`{k}`' for k in missing)} for "
            f"service `{plan.service}` (needs {', '.join(plan.key_names)})",
            "E0402",
        )
    out = [dict(row) for row in keys]
    times: dict[str, dt.datetime | None] = {}
    # A service with a `key`: one round trip per link (device -> user: this one, then the
    # views'), each adding its target's keys to the rows (null: unlinked, or never seen),
    # which the next link or the views then read.
    for lp in plan.links:
        times.update(_fetch(online, (lp,), out, status, as_of))
    times.update(_fetch(online, plan.views, out, status, as_of))
    if as_of:
        known = [t for t in times.values() if t is not None]
        earliest = min(known) if len(known) == len(times) else None
        for row in out:
            row[AS_OF] = earliest
            row[AS_OF_VIEWS] = dict(times)
    return out


def _fetch(
    online: OnlineStore, views: tuple[ViewPlan, ...], out: list[dict], status: bool, as_of: bool
) -> dict[str, dt.datetime | None]:
    """Set the features of `views` in each row of `out`, keyed by the row's own key columns,
    in one round trip. Returns each view's as-of time."""
    requests = []
    for vp in views:
        kt = []
        plain = vp.plain_key
        for row in out:
            if plain is not None and (text := plain_key_text(row.get(plain))) is not None:
                kt.append(text)
                continue
            values = [normalise_key_value(row.get(k.name), k.type) for k in vp.keys]
            # a key with a null part is never seen: ask for a key that cannot exist
            kt.append("\x00" if any(v is None for v in values) else key_text(values))
        requests.append((vp.view, vp.fp, vp.names, kt))
    reply = online.lookup(requests, as_of=as_of)
    times: dict[str, dt.datetime | None] = {}
    for vp, part in zip(views, reply, strict=True):
        if part is None:
            raise UsageError(
                f"the online store has no complete refresh of view `{vp.view}` for "
                "the current definition; run `fsc run` first",
                "E0508",
            )
        empty, rows, corrupt, when = part
        times[vp.view] = _as_of_time(when)
        names = vp.decoders
        for i, values in enumerate(rows):
            # no hash, or a damaged one: the entity has the empty values
            get = (empty if values is None else values).get
            row = out[i]
            for name, stored, dec in names:
                value = get(stored)
                row[name] = None if value is None else dec(value)
        if status:
            bad = set(corrupt)
            for i, values in enumerate(rows):
                said = "corrupt" if i in bad else "missing" if values is None else "ok"
                out[i].setdefault(STATUS, {})[vp.view] = said
    return times


def _as_of_time(text: str | None) -> dt.datetime | None:
    """A stored as-of time as the naive UTC datetime every other time of fsdsl is."""
    if text is None:
        return None
    t = dt.datetime.fromisoformat(text)
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def as_table(
    rows: list[dict], plan: ServicePlan, keys_schema, status: bool = False, as_of: bool = False
):
    """Rows of a lookup as Arrow: the key columns as given, then typed feature columns (then,
    with `as_of`, `_as_of` and a struct column of one as-of time per view; with `status`, a
    struct column of one status per view)."""
    import pyarrow as pa

    from fsdsl.arrow import arrow_type

    types = {vp.prefix + f.name: f.type for vp in plan.views for f in vp.features}
    # the keys a service's links resolved, next to the features (as training sets have them)
    resolved = [pa.field(f.name, arrow_type(f.type)) for f in plan.resolved]
    fields = list(keys_schema) + [f for f in resolved if f.name not in keys_schema.names]
    fields += [pa.field(n, arrow_type(types[n])) for n in plan.order]
    if as_of:
        when = pa.timestamp("us")
        fields.append(pa.field(AS_OF, when))
        every = (*plan.links, *plan.views)
        fields.append(pa.field(AS_OF_VIEWS, pa.struct([(vp.view, when) for vp in every])))
    if status:
        every = (*plan.links, *plan.views)
        fields.append(pa.field(STATUS, pa.struct([(vp.view, pa.string()) for vp in every])))
    schema = pa.schema(fields)
    return pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in fields} for r in rows], schema=schema
    )
