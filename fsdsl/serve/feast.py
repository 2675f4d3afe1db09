"""Feast's HTTP shapes: what `POST /get-online-features` and `POST /push` take and give back.

A client written against `feast serve` (Feast's docs, its `remote` online store) works
unchanged: the request names a `feature_service` or a list of `"view:feature"` references,
the entities are columns (`{"user_id": ["u1", "u2"]}`), `full_feature_names` prefixes each
name with its view (`view__feature`); the response is column-major, one result per name (the
entity columns first, as given), each with `values`, `statuses` and `event_timestamps`.

What fsdsl adds stays inside that shape. A feature's `event_timestamps` are the `_as_of` of
its view (the time its value is exact at, not the time of an event), and `metadata._as_of`
is each row's: the earliest of its views'. Statuses: `PRESENT` (stored, checksum verified),
`NULL_VALUE` (stored, and null), `NOT_FOUND` (no stored state, or a damaged one: the value is
still what the semantics give an entity never seen, e.g. 0 for a count, as in training).

Nothing here reads a store: the entity columns are passed through as the caller named them,
so a service keyed by another entity (a `key ENTITY` service resolving links) takes its own
columns without this module knowing which they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fsdsl import ir
from fsdsl.serve.errors import BAD_REQUEST, TOO_MANY_ENTITIES, UNKNOWN_FEATURE, HttpError

EPOCH = "1970-01-01T00:00:00Z"  # Feast's timestamp of an entity column
_FEAST_STATUS = {"ok": "PRESENT", "missing": "NOT_FOUND", "corrupt": "NOT_FOUND"}
PUSH_MODES = {"online_and_offline", "online", "offline"}


@dataclass(frozen=True)
class Read:
    """A parsed read: a service by name, or `refs` ((view, feature), ...) of a feature list."""

    service: str | None
    refs: tuple[tuple[str, str], ...]
    columns: dict[str, list]
    rows: int
    full_names: bool


def _bad(message: str) -> HttpError:
    return HttpError(400, BAD_REQUEST, message)


def parse_read(body: Any, max_entities: int) -> Read:
    if not isinstance(body, dict):
        raise _bad(
            "the body must be a JSON object with `entities` and a `feature_service` or `features`"
        )
    service, features = body.get("feature_service"), body.get("features")
    if (service is None) == (features is None):
        raise _bad(
            'give exactly one of `feature_service` (a name) or `features` (["view:feature", ...])'
        )
    refs: tuple[tuple[str, str], ...] = ()
    if service is not None and not isinstance(service, str):
        raise _bad("`feature_service` must be a string")
    if features is not None:
        if not isinstance(features, list) or not features:
            raise _bad('`features` must be a non-empty list of "view:feature" texts')
        out = []
        for ref in features:
            view, sep, name = ref.partition(":") if isinstance(ref, str) else ("", "", "")
            if not sep or not view or not name:
                raise HttpError(
                    400, UNKNOWN_FEATURE, f'feature reference {ref!r} is not "view:feature"'
                )
            out.append((view, name))
        refs = tuple(out)
    columns = body.get("entities")
    if isinstance(columns, list):  # rows, [{"user_id": "u1"}, ...]: as columns
        columns = _columns_of_rows(columns)
    if not isinstance(columns, dict) or not columns:
        raise _bad('`entities` must be an object of key columns, e.g. {"user_id": ["u1"]}')
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            raise _bad(f"entity column `{name}` must be a list of values")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise _bad("every entity column must have the same length")
    n = lengths.pop()
    if n > max_entities:
        raise HttpError(
            400,
            TOO_MANY_ENTITIES,
            f"{n:,} entities in one request; at most {max_entities:,} (split the request)",
        )
    full = body.get("full_feature_names", False)
    if not isinstance(full, bool):
        raise _bad("`full_feature_names` must be true or false")
    return Read(service, refs, columns, n, full)


def _columns_of_rows(rows: list) -> dict[str, list] | None:
    if not rows or not all(isinstance(r, dict) for r in rows):
        return None
    names = list(rows[0])
    if any(list(r) != names for r in rows):
        raise _bad("every entity row must name the same keys, in the same order")
    return {k: [r[k] for r in rows] for k in names}


def rows_of(columns: dict[str, list], n: int) -> list[dict]:
    names = list(columns)
    if not n:
        return []
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def iso(t: dt.datetime | None) -> str | None:
    """A naive UTC time (fsdsl's) as Feast writes one: ISO 8601 with `Z`."""
    return None if t is None else t.isoformat() + "Z"


def response(read: Read, pairs: list[tuple[str, str]], columns, served) -> dict:
    """The Feast response for `served` (a `lookup.Looked` read with statuses and as-of times),
    `pairs` being the (view, feature) of each feature in order and `columns` its name in
    `served` (`view__feature` for a service with `full_feature_names`)."""
    n = read.rows
    names = list(read.columns)
    results = [
        {"values": values, "statuses": ["PRESENT"] * n, "event_timestamps": [EPOCH] * n}
        for values in read.columns.values()
    ]
    views_as_of = served.as_of_views[0] if served.as_of_views else {}
    statuses: dict[str, list[str]] = {}
    stamps: dict[str, list] = {}
    for (view, feature), column in zip(pairs, columns, strict=True):
        full = read.full_names
        names.append(f"{view}{ir.FULL_NAME_SEPARATOR}{feature}" if full else column)
        values = served.values.get(column, [])
        said = statuses.get(view)
        if said is None:
            said = statuses[view] = [_FEAST_STATUS[s] for s in served.statuses.get(view, ())]
            stamps[view] = [iso(views_as_of.get(view))] * n
        if None in values:
            said = [
                "NULL_VALUE" if v is None and s == "PRESENT" else s
                for v, s in zip(values, said, strict=True)
            ]
        results.append({"values": values, "statuses": said, "event_timestamps": stamps[view]})
    texts = {t: iso(t) for t in set(served.as_of)}  # one time per chunk of rows: once each
    metadata = {"feature_names": names, "_as_of": [texts[t] for t in served.as_of]}
    return {"metadata": metadata, "results": results}


@dataclass(frozen=True)
class Push:
    source: str
    rows: list[dict]
    mode: str
    ids: list[str] | None


def parse_push(body: Any) -> Push:
    """fsdsl's shape, `{"source", "rows": [{...}, ...], "mode"}`, or Feast's, `{"push_source_name",
    "df": {column: [values]}, "to"}`; rows may be given either way in both."""
    if not isinstance(body, dict):
        raise _bad('the body must be a JSON object: {"source": ..., "rows": [...]}')
    source = body.get("source", body.get("push_source_name"))
    if not isinstance(source, str) or not source:
        raise _bad("`source` (or Feast's `push_source_name`) must name a source")
    rows = body.get("rows", body.get("df"))
    if isinstance(rows, dict):
        lengths = {len(v) if isinstance(v, list) else -1 for v in rows.values()}
        if -1 in lengths or len(lengths) > 1:
            raise _bad("the columns of `df` must be lists of the same length")
        rows = rows_of(rows, lengths.pop() if lengths else 0)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise _bad("`rows` must be a list of objects (or `df` an object of columns)")
    mode = body.get("mode", body.get("to", "online_and_offline"))
    if mode not in PUSH_MODES:
        raise HttpError(
            400, "E0525", f"unknown push mode {mode!r}; use one of {', '.join(sorted(PUSH_MODES))}"
        )
    ids = body.get("ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise _bad("`ids` must be a list of texts, one per row")
    return Push(source, rows, mode, ids)
