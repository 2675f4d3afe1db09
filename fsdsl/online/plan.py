"""`fsc plan`: what applying the definitions would change in the online store, before it does.

Two things are compared with the definitions as written:

* what serves (`fsdsl:state:{view}`): its fingerprint decides whether a view is recomputed. The
  fingerprint comes from the view's canonical IR and SEMANTICS_VERSION (`fingerprint.py`), never
  from SQL or text, so a formatting edit, a comment or a compiler refactoring recomputes nothing;
* what the last `fsc run` applied (`fsdsl:applied`, recorded here and written by the run in the
  transaction that switches each view's state): it tells a metadata-only edit (owner,
  description, formatting, comments) from none at all, says *why* a fingerprint changed (the
  filter, a feature's expression, the semantics version), and gives each service's interface
  (features, types, request keys) as clients last saw it.

A view is `unchanged`, `metadata-only`, `changed` (a new namespace, refreshed in full), `new` or
`removed`; a service is `unchanged`, `new`, `non-breaking` (features added), `breaking` (a
feature removed, renamed or retyped, a request key added or retyped) or `removed` (breaking too).
Like sqlmesh's plan, it only reads: nothing is written until `fsc run`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from zlib import crc32

from fsdsl import canonical, ir
from fsdsl.online import fingerprint as fingerprints
from fsdsl.online import store as stores
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.store import LAYOUT, OnlineStore

if TYPE_CHECKING:
    from fsdsl.backends.base import Warehouse

log = logging.getLogger(__name__)

UNCHANGED, METADATA, CHANGED, NEW, REMOVED = (
    "unchanged",
    "metadata-only",
    "changed",
    "new",
    "removed",
)
NON_BREAKING, BREAKING = "non-breaking", "breaking"
_SHORT = 16  # hex digits kept of a digest: a record is read by people too


# ---- what a run records ------------------------------------------------------------------------
def view_field(name: str) -> str:
    return f"view:{name}"


def service_field(name: str) -> str:
    return f"service:{name}"


def view_record(view: ir.View, texts: _Texts | None = None) -> dict:
    """What the plan needs to know later about the definition of `view` as applied now: its
    fingerprint and what it is made of (the canonical form of its context and of each feature,
    so that a later plan can say what changed), its metadata and a digest of its text."""
    forms = canonical.feature_forms(view)
    keys, source, where, ttl = canonical.context_form(view).args
    return {
        "fingerprint": fingerprint(view),
        "semantics": fingerprints.SEMANTICS_VERSION,  # read now: a bump is seen by the plan
        "layout": LAYOUT,
        # a link's view is also stored as strings (`store.py`), in a layout of their own
        "link layout": stores.LINK_LAYOUT if view.link is not None else None,
        "owner": view.owner,
        "description": view.description,
        "text": (texts or _Texts()).digest(view.span),
        "context": {
            "entity keys": _short(keys),
            "source": _short(source),
            "filter": _short(where),
            "ttl": _short(ttl),
        },
        # `form`: the whole feature (context included), `expr`: its expression alone
        "features": {
            f.name: {
                "type": str(f.type),
                "form": _short(forms[f.name]),
                "expr": _short(forms[f.name].args[0]),
            }
            for f in view.features
        },
    }


def service_record(repo: ir.Repository, service: ir.Service, forms: _Forms | None = None) -> dict:
    """A service's interface as a client sees it: each served column (its view, feature, type
    and form, to tell a rename from a removal) and the request keys it needs."""
    forms = forms or _Forms()
    columns: dict[str, dict] = {}
    keys: dict[str, str] = {}
    names = [f for _, f in service.features]
    for vname, fname in service.features:
        view = repo.views[vname]
        feature = view.feature(fname)
        # two views' features of one name: served as `view__feature` (issue #13, item 6)
        column = fname if names.count(fname) == 1 else f"{vname}{ir.FULL_NAME_SEPARATOR}{fname}"
        columns[column] = {
            "view": vname,
            "feature": fname,
            "type": str(feature.type),
            "form": forms.of(view)[fname],
        }
        keys.update((k.name, str(k.type)) for k in view.entity.keys)
    asked = getattr(service, "key", None)  # `key ENTITY`: requests carry that entity's keys
    if asked is not None:
        keys = {k.name: str(k.type) for k in asked.keys}
    return {"features": columns, "keys": keys}


def applied_view(view: ir.View, texts: _Texts | None = None) -> tuple[str, str]:
    """The `fsdsl:applied` field and value a run stores with the state of `view`."""
    record = {**view_record(view, texts), "applied_at": _now()}
    return view_field(view.name), encode(view_field(view.name), record)


def applied_views(views: Iterable[ir.View]) -> dict[str, tuple[str, str]]:
    """`applied_view` of each view, by name (their files read once)."""
    texts = _Texts()
    return {v.name: applied_view(v, texts) for v in views}


def record_services(
    repo: ir.Repository, online: OnlineStore, complete: bool, refreshed: Iterable[str] = ()
) -> None:
    """After a run: record each service whose every view now serves its current definition
    (the interface its clients get from now on). `complete` (every view was run): forget the
    services no longer defined, so a removal is reported as breaking once, before it is applied.
    `refreshed`: views this run switched to their current definition (their state is not read
    again)."""
    current = set(refreshed)
    if any(v not in current for v in repo.views):
        states = online.all_states([v for v in repo.views if v not in current])
        for name, view in repo.views.items():
            if name not in current and states.get(name, {}).get("fp") == fingerprint(view):
                current.add(name)
    forms, now, fields = _Forms(), _now(), {}
    for name, service in repo.services.items():
        if all(v in current for v in service.views()):
            record = {**service_record(repo, service, forms), "applied_at": now}
            fields[service_field(name)] = encode(service_field(name), record)
    drop = []
    if complete:
        known = {service_field(s) for s in repo.services}
        drop = [f for f in online.read_applied() if f.startswith("service:") and f not in known]
    online.write_applied(fields, drop)


def encode(name: str, record: dict) -> str:
    """A record as stored: its CRC-32 (with the field's name, so a value moved to another field
    fails too), a space, its JSON."""
    body = json.dumps(record, separators=(",", ":"))  # in order: a service's columns
    crc = crc32(f"{name}\n{body}".encode())
    return f"{crc} {body}"


def decode(name: str, value: str) -> dict | None:
    """A stored record, or None when it fails its checksum (logged): a damaged record only
    makes the plan say less, never claim a change that is not there."""
    crc, _, body = value.partition(" ")
    if crc != str(crc32(f"{name}\n{body}".encode())):
        log.warning("the applied record %s fails its checksum; the plan ignores it", name)
        return None
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


# ---- the plan ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewChange:
    name: str
    status: str  # unchanged | metadata-only | changed | new | removed
    fingerprint: str | None  # of the definition now (None: removed)
    served: str | None  # the fingerprint that serves now (None: nothing serves)
    changes: tuple[str, ...] = ()  # what differs, for people
    source: str | None = None  # the source a recompute reads
    rows_to_scan: int | None = None  # that source's rows (a full refresh reads them all)

    @property
    def recompute(self) -> bool:
        return self.status in (CHANGED, NEW)

    def to_dict(self) -> dict:
        return {
            "view": self.name,
            "status": self.status,
            "recompute": self.recompute,
            "fingerprint": self.fingerprint,
            "served_fingerprint": self.served,
            "changes": list(self.changes),
            "source": self.source,
            "rows_to_scan": self.rows_to_scan,
        }


@dataclass(frozen=True)
class ServiceChange:
    name: str
    status: str  # unchanged | new | non-breaking | breaking | removed
    changes: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def breaking(self) -> bool:
        return self.status in (BREAKING, REMOVED)

    def to_dict(self) -> dict:
        return {
            "service": self.name,
            "status": self.status,
            "breaking": self.breaking,
            "changes": list(self.changes),
            "added": list(self.added),
            "removed": list(self.removed),
        }


@dataclass(frozen=True)
class Plan:
    views: tuple[ViewChange, ...]
    services: tuple[ServiceChange, ...]
    semantics_version: int
    estimated: bool = False  # whether rows_to_scan were counted

    @property
    def breaking(self) -> bool:
        """A service's clients would see a feature or key disappear, change type or be
        required: `fsc plan` exits 1."""
        return any(s.breaking for s in self.services)

    @property
    def rows_to_scan(self) -> int | None:
        """Rows the recomputed views read, each source counted once per view reading it."""
        if not self.estimated:
            return None
        return sum(v.rows_to_scan or 0 for v in self.views if v.recompute)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.views:
            out[f"views {v.status}"] = out.get(f"views {v.status}", 0) + 1
        for s in self.services:
            out[f"services {s.status}"] = out.get(f"services {s.status}", 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "breaking": self.breaking,
            "semantics_version": self.semantics_version,
            "rows_to_scan": self.rows_to_scan,
            "summary": self.summary(),
            "views": [v.to_dict() for v in self.views],
            "services": [s.to_dict() for s in self.services],
        }


def make_plan(
    repo: ir.Repository,
    online: OnlineStore,
    *,
    views: list[str] | None = None,
    warehouse: Warehouse | None = None,
) -> Plan:
    """Classify every view (only `views`, when given: a run of some views; removed views are
    then not listed) and every service against what serves and what was last applied. With
    `warehouse`, each view to recompute gets the row count of its source."""
    states = online.all_states(views or None)  # without `views`: every stored one (removed)
    applied = {name: decode(name, value) for name, value in online.read_applied().items()}
    texts, forms = _Texts(), _Forms()
    targets = [repo.views[n] for n in views] if views else list(repo.views.values())
    counts = _Counts(warehouse)
    changes = []
    for view in targets:
        now = view_record(view, texts)
        served = states.get(view.name, {}).get("fp") or None
        change = _view_change(view.name, now, served, applied.get(view_field(view.name)))
        if change.recompute:
            rows = counts.rows(view.source)
            change = replace(change, source=view.source.name, rows_to_scan=rows)
        changes.append(change)
    if not views:
        gone = {n for n in states if n not in repo.views}
        gone |= {
            f.split(":", 1)[1]
            for f in applied
            if f.startswith("view:") and f.split(":", 1)[1] not in repo.views
        }
        for name in sorted(gone):
            served = states.get(name, {}).get("fp") or None
            note = ("still stored under its last namespace; nothing refreshes it",)
            changes.append(ViewChange(name, REMOVED, None, served, note if served else ()))
    services = [
        _service_change(name, service_record(repo, svc, forms), applied.get(service_field(name)))
        for name, svc in repo.services.items()
    ]
    for f, record in sorted(applied.items()):
        name = f.split(":", 1)[1]
        if f.startswith("service:") and name not in repo.services and record is not None:
            gone = tuple(sorted(record.get("features", {})))
            services.append(ServiceChange(name, REMOVED, ("the service is removed",), (), gone))
    return Plan(
        tuple(changes),
        tuple(services),
        fingerprints.SEMANTICS_VERSION,
        estimated=warehouse is not None,
    )


def _view_change(name: str, now: dict, served: str | None, before: dict | None) -> ViewChange:
    fp = now["fingerprint"]
    if served is None:
        return ViewChange(name, NEW, fp, None, ("never refreshed: computed in full",))
    # the record says what serves only if it was written for the fingerprint that serves
    known = before if before is not None and before.get("fingerprint") == served else None
    if served == fp:
        if known is None:
            return ViewChange(name, UNCHANGED, fp, served)
        edits = _metadata_edits(known, now)
        return ViewChange(name, METADATA if edits else UNCHANGED, fp, served, tuple(edits))
    why = _why_changed(known, now) if known is not None else []
    why = why or ["its fingerprint differs from the one that serves"]
    return ViewChange(name, CHANGED, fp, served, ("new namespace, full refresh", *why))


def _metadata_edits(before: dict, now: dict) -> list[str]:
    out = []
    for key in ("owner", "description"):
        if before.get(key) != now.get(key):
            out.append(f"{key}: {_quoted(before.get(key))} -> {_quoted(now.get(key))}")
    if before.get("text") != now.get("text") and not out:
        out.append("text only (formatting or comments)")
    return out


def _why_changed(before: dict, now: dict) -> list[str]:
    out = []
    for key, what in (
        ("semantics", "semantics version"),
        ("layout", "store layout"),
        ("link layout", "link store layout"),
    ):
        if before.get(key) != now.get(key):
            out.append(f"{what} {before.get(key) or 'none'} -> {now.get(key) or 'none'}")
    was, ctx = before.get("context", {}), now["context"]
    out += [f"{part} changed" for part in ctx if was.get(part) != ctx[part]]
    old, new = before.get("features", {}), now["features"]
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    kept = [n for n in new if n in old]
    retyped = [
        f"{n}: {old[n].get('type')} -> {new[n]['type']}"
        for n in kept
        if old[n].get("type") != new[n]["type"]
    ]
    recomputed = [
        n
        for n in kept
        if old[n].get("type") == new[n]["type"] and old[n].get("expr") != new[n]["expr"]
    ]
    if added:
        out.append("features added: " + ", ".join(added))
    if removed:
        out.append("features removed: " + ", ".join(removed))
    if retyped:
        out.append("types changed: " + ", ".join(retyped))
    if recomputed:
        out.append("expressions changed: " + ", ".join(recomputed))
    if not out:
        out.append("the layout of its aggregate state changed")
    return out


def _service_change(name: str, now: dict, before: dict | None) -> ServiceChange:
    cols = now["features"]
    if before is None:
        return ServiceChange(name, NEW, ("not applied yet",), tuple(cols))
    old = before.get("features", {})
    added = [c for c in cols if c not in old]
    removed = [c for c in old if c not in cols]
    breaking, other = [], []
    for c in list(removed):
        # the same feature under another name: a rename (still breaking for clients)
        twin = next(
            (
                a
                for a in added
                if cols[a]["form"] == old[c].get("form") and cols[a]["view"] == old[c].get("view")
            ),
            None,
        )
        breaking.append(f"renamed {c} -> {twin}" if twin else f"removed {c}")
    for c in cols:
        if c in old and old[c].get("type") != cols[c]["type"]:
            breaking.append(f"type of {c}: {old[c].get('type')} -> {cols[c]['type']}")
        elif c in old and old[c].get("view") != cols[c]["view"]:
            other.append(f"{c} now from view {cols[c]['view']} (was {old[c].get('view')})")
    keys, was = now["keys"], before.get("keys", {})
    for k, t in keys.items():
        if k not in was:
            breaking.append(f"requests need the key {k}")
        elif was[k] != t:
            breaking.append(f"type of key {k}: {was[k]} -> {t}")
    other += [f"the key {k} is no longer needed" for k in was if k not in keys]
    renamed_to = {b.split(" -> ")[1] for b in breaking if b.startswith("renamed ")}
    other += [f"added {a}" for a in added if a not in renamed_to]
    status = BREAKING if breaking else NON_BREAKING if other else UNCHANGED
    return ServiceChange(name, status, tuple(breaking + other), tuple(added), tuple(removed))


# ---- helpers ----------------------------------------------------------------------------------
class _Texts:
    """The digest of a definition's text (its whole block, comments inside it included), read
    from the files the spans name, each file read once."""

    def __init__(self) -> None:
        self._files: dict[str, list[str] | None] = {}

    def digest(self, span) -> str | None:
        if span.file not in self._files:
            try:
                text = Path(span.file).read_text(encoding="utf-8", errors="replace")
                self._files[span.file] = text.split("\n")
            except OSError:
                self._files[span.file] = None
        lines = self._files[span.file]
        if lines is None or not 1 <= span.line <= span.end_line <= len(lines):
            return None
        block = lines[span.line - 1 : span.end_line]
        block[-1] = block[-1][: span.end_col - 1]
        block[0] = block[0][span.col - 1 :]
        return hashlib.sha256("\n".join(block).encode()).hexdigest()[:_SHORT]


class _Forms:
    """Each view's feature forms, computed once."""

    def __init__(self) -> None:
        self._done: dict[str, dict[str, str]] = {}

    def of(self, view: ir.View) -> dict[str, str]:
        if view.name not in self._done:
            forms = canonical.feature_forms(view)
            self._done[view.name] = {n: _short(f) for n, f in forms.items()}
        return self._done[view.name]


class _Counts:
    """Rows of each source table, counted once (a full refresh reads a source's whole history:
    `last`, `first` and TTLs reach back past any window)."""

    def __init__(self, warehouse: Warehouse | None) -> None:
        self.warehouse = warehouse
        self._done: dict[str, int | None] = {}

    def rows(self, source: ir.Source) -> int | None:
        if self.warehouse is None:
            return None
        if source.name not in self._done:
            self._done[source.name] = count_rows(self.warehouse, source.table)
        return self._done[source.name]


def count_rows(wh: Warehouse, table: tuple[str, ...]) -> int | None:
    """`SELECT COUNT(*)` of a table (None when it does not exist: the run reports that, E0401).
    Exact rather than the warehouse's statistics, which may be missing or stale (Postgres'
    `reltuples` before an ANALYZE); DuckDB and Parquet-backed tables answer from metadata."""
    from sqlglot import exp

    from fsdsl.backends.base import table_expression

    if wh.table_columns(table) is None:
        return None
    query = exp.select(exp.Count(this=exp.Star()).as_("n")).from_(table_expression(table))
    result = wh.query(query)
    return int(result.column(0)[0].as_py())


def _short(form: canonical.Form) -> str:
    return form.digest[:_SHORT]


def _quoted(value: str | None) -> str:
    return "none" if value is None else json.dumps(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
