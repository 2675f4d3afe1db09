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
from fsdsl.online.codec import (
    converter,
    key_text,
    key_values,
    normalise_key_value,
    plain_key_text,
    stored_names,
)
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.store import OnlineStore, Read

STATUS = "__status"  # the row's {view: ok | missing | corrupt}, when asked for
# When asked for: the as-of time of the row's values, the earliest of its views' (the one time
# at which all of them are exact at once), and each view's, {view: as-of time}.
AS_OF = "_as_of"
AS_OF_VIEWS = "_as_of_views"
# Up to this many rows, a lookup through links is one round trip: the lookup script resolves the
# links in Redis (each a string naming its target's key) and reads the views' values. Past it,
# the script resolves the links only and the views' values are read in a second round trip, as
# a plain pipeline, which costs Redis less than the script's calls (bench/links.py, see
# docs/benchmarks.md).
SCRIPT_ROWS = 16
# A lookup of more rows is made of lookups of this many (so each row's `_as_of` is its own
# part's): the script, or a MULTI/EXEC, holds Redis while it runs — about 4 ms per 1,000 rows
# of a chain of links, 76 ms for 21,000 — and other clients wait.
CHUNK_ROWS = 1000


@dataclass(frozen=True)
class ViewPlan:
    view: str
    fp: str
    keys: tuple[ir.Key, ...]
    features: tuple[ir.Feature, ...]  # every feature of the view the service uses
    prefix: str = ""  # of each feature's name in served rows: `view__` with full_feature_names
    # a link's view: the keys of the entity it resolves to, in key order (its features hold them)
    resolves: tuple[ir.Key, ...] = ()
    # every feature name of the view in the order its stored values hold them
    # (`codec.stored_names`); required but for a link's read (which reads its strings)
    stored: tuple[str, ...] = ()
    # derived once, so that a call does only what depends on the keys asked for
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # per feature: (served name, its position in the stored values, `codec.converter`)
    columns: tuple = field(init=False, repr=False, compare=False)
    null_values: list = field(init=False, repr=False, compare=False)  # a row of nulls
    nulls: dict = field(init=False, repr=False, compare=False)  # every served name: None
    plain_key: str | None = field(init=False, repr=False, compare=False)  # a lone string key
    key_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    targets: tuple[str, ...] = field(init=False, repr=False, compare=False)  # `resolves` names
    target_types: tuple = field(init=False, repr=False, compare=False)
    plain_target: str | None = field(init=False, repr=False, compare=False)  # a lone string

    def __post_init__(self):
        simple = len(self.keys) == 1 and self.keys[0].type == ir.STRING
        one = len(self.resolves) == 1 and self.resolves[0].type == ir.STRING
        if not self.stored and not self.resolves:  # positions in a subset would be wrong
            raise ValueError(f"the plan of view `{self.view}` needs its stored feature names")
        stored = self.stored
        at = {name: i for i, name in enumerate(stored)}
        derived = {
            "key_names": tuple(k.name for k in self.keys),
            "targets": tuple(k.name for k in self.resolves),
            "target_types": tuple(k.type for k in self.resolves),
            "plain_target": self.resolves[0].name if one else None,
            "names": tuple(f.name for f in self.features),
            "columns": ()
            if self.resolves
            else tuple(
                (self.prefix + f.name, at[f.name], converter(f.type)) for f in self.features
            ),
            "null_values": [None] * len(stored),
            "plain_key": self.keys[0].name if simple else None,
            "nulls": dict.fromkeys(self.prefix + f.name for f in self.features),
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
    # the round trips of a lookup, each the views it reads: one for all of them, links
    # included (the lookup script resolves the links in Redis); `split`: the links' trip, then
    # the views' (see SCRIPT_ROWS)
    trips: tuple[tuple[ViewPlan, ...], ...] = field(init=False, repr=False, compare=False)
    split: tuple[tuple[ViewPlan, ...], ...] = field(init=False, repr=False, compare=False)
    chained: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.links:
            names = [k.name for k in self.key]
        else:
            names = list(dict.fromkeys(k.name for v in self.views for k in v.keys))
        trips = ((*self.links, *self.views),)
        object.__setattr__(self, "key_names", names)  # frozen: set once, here
        object.__setattr__(self, "trips", trips)
        object.__setattr__(self, "split", (self.links, self.views) if self.links else trips)
        # a link reading the keys another link finds: resolved by the script even past
        # SCRIPT_ROWS rows (two round trips at most, whatever the chain)
        found = {lp.targets for lp in self.links}
        chained = any(lp.key_names in found for lp in self.links)
        object.__setattr__(self, "chained", chained)

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
        stored = stored_names(view.features)
        views.append(
            ViewPlan(vname, fingerprint(view), view.entity.keys, feats, prefix, stored=stored)
        )
    links = []
    if svc.key is not None:
        for name in svc.links():
            view = repo.views[name]
            wanted = {k.name for k in repo.links[name].to_entity.keys}
            feats = tuple(f for f in view.features if f.name in wanted)
            target = repo.links[name].to_entity.keys
            links.append(ViewPlan(name, fingerprint(view), view.entity.keys, feats, "", target))
    return ServicePlan(
        service,
        tuple(views),
        tuple(svc.column(v, f) for v, f in svc.features),
        tuple(links),
        svc.key.keys if svc.key is not None else (),
    )


@dataclass
class Looked:
    """A lookup's result by column, as the HTTP server answers (Feast's response is column-major)
    and from which `lookup`'s rows are made: one list per served feature, decoded in one pass per
    feature rather than a dict update per value.

    `rows`: the keys as given, plus those the service's links resolved; `values`: each served
    feature name (in view order) -> its values, row by row; with `status`, `statuses`: each view
    (links first) -> "ok" | "missing" | "corrupt" per row; with `as_of`, per row the earliest
    as-of time of its views and {view: as-of time}."""

    rows: list[dict]
    values: dict[str, list] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    as_of: list = field(default_factory=list)
    as_of_views: list[dict] = field(default_factory=list)

    def extend(self, part: Looked) -> None:
        """Append the rows of a later chunk (`CHUNK_ROWS`)."""
        self.rows += part.rows
        for name, values in part.values.items():
            self.values.setdefault(name, []).extend(values)
        for view, said in part.statuses.items():
            self.statuses.setdefault(view, []).extend(said)
        self.as_of += part.as_of
        self.as_of_views += part.as_of_views

    def as_rows(self, status: bool = False, as_of: bool = False) -> list[dict]:
        """`lookup`'s rows: the keys, then every feature, then `__status` and `_as_of`s."""
        out = self.rows
        if self.values:
            names = list(self.values)
            by_row = zip(*self.values.values(), strict=True)
            for row, values in zip(out, by_row, strict=True):
                row.update(zip(names, values, strict=True))
        if status:
            views = list(self.statuses.items())
            for i, row in enumerate(out):
                row[STATUS] = {view: said[i] for view, said in views}
        if as_of:
            for row, earliest, views in zip(out, self.as_of, self.as_of_views, strict=True):
                row[AS_OF] = earliest
                row[AS_OF_VIEWS] = dict(views)  # a row's own: callers may change it
        return out


def lookup(
    online: OnlineStore,
    plan: ServicePlan,
    keys: list[dict],
    status: bool = False,
    as_of: bool = False,
) -> list[dict]:
    return lookup_columns(online, plan, keys, status, as_of).as_rows(status, as_of)


def lookup_columns(
    online: OnlineStore,
    plan: ServicePlan,
    keys: list[dict],
    status: bool = False,
    as_of: bool = False,
) -> Looked:
    missing = [k for k in plan.key_names if k not in keys[0]] if keys else []
    if missing:
        raise UsageError(
            f"missing key column(s) {', '.join(f'`{k}`' for k in missing)} for "
            f"service `{plan.service}` (needs {', '.join(plan.key_names)})",
            "E0402",
        )
    if len(keys) > CHUNK_ROWS:  # Redis runs one script or MULTI/EXEC at a time: keep each short
        got = Looked([])
        for start in range(0, len(keys), CHUNK_ROWS):
            part = keys[start : start + CHUNK_ROWS]
            got.extend(lookup_columns(online, plan, part, status, as_of))
        return got
    got = Looked([dict(row) for row in keys])
    times: dict[str, dt.datetime | None] = {}
    # A service with a `key`: its links are read first, each adding its target's keys to the
    # rows (null: unlinked, or never seen), which the next link or the views then read; all in
    # the same round trip, the keys found by the lookup script in Redis.
    resolved: dict[tuple[str, ...], list[str]] = {}  # key columns -> the texts links found
    # Past SCRIPT_ROWS rows the links' strings are read first and the views under the keys
    # they name next (two pipelines, one lookup); a chain's links by the script, then the views.
    if len(keys) <= SCRIPT_ROWS:
        trips, script = plan.trips, True
    elif plan.chained or as_of:
        trips, script = plan.split, True
    else:
        trips, script = plan.trips, False
    for trip in trips:
        times.update(_fetch(online, trip, got, status, as_of, resolved, script))
    if as_of:
        known = [t for t in times.values() if t is not None]
        earliest = min(known) if len(known) == len(times) else None
        got.as_of = [earliest] * len(keys)
        got.as_of_views = [dict(times)] * len(keys)  # one dict, shared (`as_rows` copies it)
    return got


def _fetch(
    online: OnlineStore,
    views: tuple[ViewPlan, ...],
    got: Looked,
    status: bool,
    as_of: bool,
    resolved: dict[tuple[str, ...], list[str]],
    script: bool = True,
) -> dict[str, dt.datetime | None]:
    """Set the features of `views` in `got`, keyed by its rows' own key columns or by those a
    link resolves (among `views`, or in an earlier trip: `resolved`, which this adds the key
    texts of its links to), in one round trip. Returns each view's as-of time."""
    out = got.rows
    requests = []
    given: dict[tuple[str, ...], list[str]] = {}  # key columns -> the rows' key texts
    linked: dict[tuple[str, ...], int] = {}  # key columns -> the read of the link finding them
    for vp in views:
        names = vp.key_names
        keys = linked.get(names)
        if keys is None:
            keys = resolved.get(names) or given.get(names)
        if keys is None:
            keys = given[names] = _key_texts(vp, out)
        if vp.resolves:  # the reads after it in this trip take its keys
            linked[vp.targets] = len(requests)
        requests.append(Read(vp.view, vp.fp, vp.names, keys, bool(vp.resolves)))
    reply = online.lookup(requests, as_of=as_of, script=script)
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
        if vp.resolves:  # a link's read: each row's target key text ("" or None: none)
            types, targets, plain = vp.target_types, vp.targets, vp.plain_target
            nulls = vp.nulls
            for row, text in zip(out, rows, strict=True):
                if not text:
                    row.update(nulls)
                elif plain is not None and "\\" not in text:  # `["..."]`: nothing escaped
                    row[plain] = text[2:-2]
                else:
                    row.update(zip(targets, key_values(text, types), strict=True))
            resolved[targets] = [text or "" for text in rows]
        else:
            # no stored values, or damaged ones: the entity has the empty values
            if empty is None:
                empty = vp.null_values
            entities = [empty if values is None else values for values in rows]
            for name, at, convert in vp.columns:
                column = [values[at] for values in entities]
                if convert is not None:
                    column = [None if v is None else convert(v) for v in column]
                got.values[name] = column
        if status:
            bad = set(corrupt)
            got.statuses[vp.view] = [
                "corrupt" if i in bad else "missing" if values is None else "ok"
                for i, values in enumerate(rows)
            ]
    return times


def _key_texts(vp: ViewPlan, out: list[dict]) -> list[str]:
    """Each row's key text for the entity of `vp` ("" for a key with a null part: never
    seen, its values are not read)."""
    kt = []
    plain = vp.plain_key
    for row in out:
        if plain is not None and (text := plain_key_text(row.get(plain))) is not None:
            kt.append(text)
            continue
        values = [normalise_key_value(row.get(k.name), k.type) for k in vp.keys]
        kt.append("" if any(v is None for v in values) else key_text(values))
    return kt


def _as_of_time(text: str | None) -> dt.datetime | None:
    """A stored as-of time as the naive UTC datetime every other time of fsdsl is."""
    if text is None:
        return None
    t = dt.datetime.fromisoformat(text)
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def as_table(
    got: Looked, plan: ServicePlan, keys_schema, status: bool = False, as_of: bool = False
):
    """A lookup's result as Arrow: the key columns as given, then typed feature columns (then,
    with `as_of`, `_as_of` and a struct column of one as-of time per view; with `status`, a
    struct column of one status per view). Feature columns are built from the lookup's own
    columns, never through a dict per row."""
    import pyarrow as pa

    from fsdsl.arrow import arrow_type

    types = {vp.prefix + f.name: f.type for vp in plan.views for f in vp.features}
    # the keys a service's links resolved, next to the features (as training sets have them)
    resolved = [pa.field(f.name, arrow_type(f.type)) for f in plan.resolved]
    fields = list(keys_schema) + [f for f in resolved if f.name not in keys_schema.names]
    # the key columns as the rows hold them (a link may have set a column the keys also have)
    columns = [pa.array([r.get(f.name) for r in got.rows], f.type) for f in fields]
    for name in plan.order:
        fields.append(pa.field(name, arrow_type(types[name])))
        columns.append(pa.array(got.values.get(name, [None] * len(got.rows)), fields[-1].type))
    every = (*plan.links, *plan.views)
    if as_of:
        when = pa.timestamp("us")
        fields.append(pa.field(AS_OF, when))
        columns.append(pa.array(got.as_of, when))
        times = [[views.get(vp.view) for views in got.as_of_views] for vp in every]
        fields.append(pa.field(AS_OF_VIEWS, pa.struct([(vp.view, when) for vp in every])))
        columns.append(_struct(fields[-1].type, times))
    if status:
        fields.append(pa.field(STATUS, pa.struct([(vp.view, pa.string()) for vp in every])))
        said = [got.statuses.get(vp.view, [None] * len(got.rows)) for vp in every]
        columns.append(_struct(fields[-1].type, said))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _struct(struct_type, children: list[list]):
    """A struct column from one list per field (no dict per row)."""
    import pyarrow as pa

    arrays = [pa.array(values, f.type) for values, f in zip(children, struct_type, strict=True)]
    return pa.StructArray.from_arrays(arrays, fields=list(struct_type))
