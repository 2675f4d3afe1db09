"""`fsc run`: compute views as of a time with the compiled refresh SQL and write them to Redis."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

from fsdsl import ir
from fsdsl.arrow import arrow_type, conform
from fsdsl.compile.version import compiler_version, dialect_class
from fsdsl.diagnostics import UsageError
from fsdsl.online import aggstate
from fsdsl.online import cache as compiled_cache
from fsdsl.online.codec import json_array, key_array, lit, stored_names, values_array
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.memo import per_view
from fsdsl.online.resp import del_rows, set_rows, signed
from fsdsl.online.runlock import RunLock
from fsdsl.online.store import LockLost, OnlineStore, RunInputs, aggregates_digest_of

if TYPE_CHECKING:
    from sqlglot import exp

    from fsdsl.backends.base import Warehouse

BATCH = 2000
Progress = Callable[[str, int, int | None], None]  # (view, rows done, total or None)


def refresh_query(view: ir.View, dialect: str = "duckdb", dirty: bool = False) -> exp.Select:
    """`fsdsl.compile.refresh.refresh_query`, imported when a text is not in the cache."""
    from fsdsl.compile.refresh import refresh_query as build

    return build(view, dialect, dirty)


def sql_text(tree: exp.Expression, dialect: str, **kwargs) -> str:
    """`fsdsl.compile.render.sql_text`, imported when a text is not in the cache."""
    from fsdsl.compile.render import sql_text as render

    return render(tree, dialect, **kwargs)


def refresh_sql(view: ir.View, dialect: str, cache: Path | None = None, dirty: bool = False) -> str:
    """The refresh query's text. Building its sqlglot tree takes about 0.25 s per view, a
    tenth of a short incremental run, and importing sqlglot and the compiler as much again:
    with `cache` (a folder), it is kept there under a key of everything the text depends on —
    the view's IR, the dialect, the compiler's own source and sqlglot's version — so a stale
    text is never read back, and each entry is checked against its digest (`cache.py`), so a
    damaged one is recompiled rather than run. A hit imports neither sqlglot nor the compiler."""
    if cache is None:
        return sql_text(refresh_query(view, dialect, dirty), dialect, pretty=False)
    key = _compile_key(view, dialect, dirty)
    file = cache / f"{view.name}.{dialect}.{key[:20]}.sql"
    text = compiled_cache.read(file, key)
    if text is None:
        text = sql_text(refresh_query(view, dialect, dirty), dialect, pretty=False)
        compiled_cache.write(file, key, text)
    return text


def _compile_key(view: ir.View, dialect: str, dirty: bool = False) -> str:
    form = "\ndirty" if dirty else ""
    text = f"{_view_text(view)}\n{dialect}\n{dialect_class(dialect)}\n{compiler_version()}{form}"
    return hashlib.sha256(text.encode()).hexdigest()


_view_text = per_view(repr)  # the whole definition: a stream worker keys every batch with it


def parse_time(text: str | None) -> dt.datetime:
    """ISO 8601; a zone is converted to UTC and dropped (all times are naive UTC)."""
    if text is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"`{text}` is not an ISO 8601 time (e.g. 2024-06-01T12:00:00)", "E0004"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


@dataclass
class ViewRun:
    view: str
    mode: str  # full | incremental
    as_of: str
    previous: str | None
    entities_written: int = 0
    entities_removed: int = 0
    entities_repaired: int = 0  # rewritten because a reader found them damaged
    values_written: int = 0
    query_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows_per_second"] = (
            round((self.entities_written + self.entities_removed) / self.seconds, 1)
            if self.seconds
            else None
        )
        return d


def empty_values(repo: ir.Repository, view: ir.View, wh: Warehouse, at: dt.datetime) -> str:
    """The stored values (`codec.values_array`) of an entity with no visible event (null keys),
    by the training query (`repair.values_as_of`), so that serving and training agree on it by
    construction."""
    from fsdsl.online.repair import values_as_of

    keys = pa.table({k.name: pa.nulls(1, arrow_type(k.type)) for k in view.entity.keys})
    row = values_as_of(repo, view, wh, at, keys)
    return values_array(_json_columns(view, row)).to_pylist()[0]


def _json_columns(view: ir.View, rows: pa.Table | pa.RecordBatch) -> list[pa.Array]:
    """Every feature of the rows as JSON (`codec.json_array`), in the stored order."""
    by_name = {f.name: f for f in view.features}
    return [
        json_array(conform(rows.column(name), by_name[name].type), by_name[name].type)
        for name in stored_names(view.features)
    ]


def refresh_view(
    repo: ir.Repository,
    view: ir.View,
    wh: Warehouse,
    online: OnlineStore,
    at: dt.datetime,
    *,
    full: bool = False,
    progress: Progress | None = None,
    cache: Path | None = None,
    lock: RunLock | None = None,
    keep_state: bool = False,
    applied: tuple[str, str] | None = None,
    inputs: RunInputs | None = None,
) -> ViewRun:
    """Refresh `view` as of `at`. With `lock`, the caller already holds the view's lock (a
    push, which appended its rows under it) and keeps it after this returns. `keep_state`: a
    long-lived process (a stream worker) keeps the aggregate state it wrote and reuses it
    while Redis holds the same digest, instead of reading it back (`_kept_state`). `applied`:
    the record of the definition (`plan.applied_view`), stored with the state that serves it.
    `inputs`: what the run reads first (`OnlineStore.run_inputs`), when the caller read it
    under `lock` (a push reads every view's at once)."""
    started = time.perf_counter()
    if inputs is not None and lock is None:
        raise ValueError("a run's inputs are read under its view's lock: pass the lock too")
    fp = fingerprint(view)
    owner = lock.owner if lock is not None else uuid.uuid4().hex
    # held, and renewed in the background, until the run ends: its query included
    with nullcontext(lock) if lock is not None else RunLock(online, view.name, owner) as held:
        if inputs is None:
            inputs = online.run_inputs([view.name])[0]
        state, pending = inputs.state, inputs.pending
        previous = state.get("as_of")
        incremental = not full and state.get("fp") == fp and previous is not None
        if incremental and at < dt.datetime.fromisoformat(previous):
            raise UsageError(
                f"--at {at.isoformat()} is before the last refresh of "
                f"`{view.name}` ({previous}); use --full to recompute",
                "E0507",
            )
        old_state = None
        if incremental:
            old_state = _kept_state(state["ns"], inputs.digest) if keep_state else None
            if old_state is None:
                blob = online.read_aggregates(state["ns"])
                old_state = aggstate.loads(blob, view) if blob is not None else None
            # no usable aggregate state (an older layout, a lost key): start over, in full
            incremental = old_state is not None
        ns = state["ns"] if incremental else f"{view.name}:{fp}:{owner[:8]}"
        run = ViewRun(view.name, "incremental" if incremental else "full", at.isoformat(), previous)
        # In place, every write is applied only while this run holds the lock (checked
        # atomically with it, `send_commands`); a fresh namespace serves nobody until
        # `set_state` switches to it, under the same check.
        guard = {"view": view.name, "owner": owner} if incremental else {}
        wrote_empty, committed = False, False
        try:
            empty = online.checked_empty(ns, inputs.empty) if incremental else None
            if empty is None:  # a new namespace, or stored empty values absent or damaged
                empty = empty_values(repo, view, wh, at)
                online.write_empty(ns, empty, **guard)
                wrote_empty = incremental

            t0 = time.perf_counter()
            params = {
                "as_of": at,
                "watermark": dt.datetime.fromisoformat(previous) if incremental else None,
            }
            state_in = old_state if old_state is not None else aggstate.empty(view)
            dirty = late_keys(view, pending, previous) if incremental else None
            aggstate.register(wh, view, state_in, dirty)
            sql = refresh_sql(view, wh.dialect, cache, dirty is not None)
            result = wh.execute_sql(sql, params)
            held.check()
            run.query_seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            total = result.num_rows
            # No entity changed (no new row, none left a window or its TTL): the merged state
            # is the stored one, row for row, and stays where it is under this namespace's
            # digest; only the as-of time moves. Else the changed rows replace theirs.
            aggregates, digest = None, None
            if not (incremental and result.num_rows == 0):
                changed = aggstate.from_result(view, result)
                new_state = (
                    aggstate.merge(view, old_state, changed)
                    if old_state is not None
                    else aggstate.compact(changed)
                )
                aggregates = aggstate.dumps(new_state)
                digest = aggregates_digest_of(ns, aggregates)
            serving = {
                "ns": ns,
                "fp": fp,
                "as_of": at.isoformat(),
                "watermark": at.isoformat(),
                "refreshed_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            repairs = inputs.repairs if incremental else []
            batches = result.combine_chunks().to_batches(max_chunksize=BATCH)
            if incremental and len(batches) <= 1 and not repairs:
                # A small change (a push, a stream batch, a tick): its entities and the state
                # that says their as-of time go in one MULTI, so that no reader ever sees new
                # values beside the previous time.
                rows = _Commands([], 0, 0, 0, 0)
                if batches:
                    rows = _batch_commands(view, batches[0], empty, ns, in_place=True)
                tail, n = online.state_commands(
                    view.name, serving, aggregates, len(pending), applied, digest=digest
                )
                online.send_commands(
                    [*rows.pieces, tail], rows.count + n, transaction=True, **guard
                )
                run.entities_removed += rows.removed
                run.entities_written += rows.written
                run.values_written += rows.values
                run.write_seconds = time.perf_counter() - t1
                if progress:
                    progress(view.name, total, total)
                committed = True
            else:
                done = 0
                for batch in batches:
                    # a fresh namespace holds no stale value to remove
                    rows = _batch_commands(view, batch, empty, ns, in_place=incremental)
                    # in place: one MULTI/EXEC per batch, so a reader never sees an entity
                    # half-written
                    online.send_commands(rows.pieces, rows.count, transaction=incremental, **guard)
                    run.entities_removed += rows.removed
                    run.entities_written += rows.written
                    run.values_written += rows.values
                    held.check()  # counted first: E0515 says what was written
                    done += batch.num_rows
                    if progress:
                        progress(view.name, done, total)
                if repairs:
                    _repair(repo, view, wh, online, at, ns, empty, repairs, run, owner)
                run.write_seconds = time.perf_counter() - t1
                # Every write succeeded: only now does the new state serve, with its aggregates.
                online.set_state(
                    view.name,
                    serving,
                    aggregates=aggregates,
                    owner=owner,
                    pending_done=len(pending),
                    applied=applied,
                    digest=digest,
                )
            committed = True
            if keep_state and digest is not None:
                _keep_state(ns, digest, new_state)
        except LockLost:
            raise LockLost(view.name, _written(run, wrote_empty, previous)) from None
        finally:
            if not committed and not incremental:
                _abandon(online, ns)
        online.repaired(ns, repairs)
        retired = inputs.retired
        if not incremental and state.get("ns") and state["ns"] != ns:
            # Readers may use the namespace they cached for up to STATE_TTL seconds: retire
            # the old one now, remove it once no reader can still be using it.
            online.retire_namespace(state["ns"])
            retired = True
        if retired:  # else a read saved (one another run retires meanwhile waits for the next)
            online.drop_retired()
        run.seconds = time.perf_counter() - started
        return run


# The aggregate state this process wrote last, per namespace, with its stored digest: a stream
# worker or a pushing process refreshes the same views over and over, and reading and decoding
# the state back each time costs more than its batch. Used only while Redis still holds that
# digest (checked under the run's lock, so nobody can change it in between).
_KEPT: dict[str, tuple[bytes, pa.Table]] = {}


def _kept_state(ns: str, stored: bytes | None) -> pa.Table | None:
    """The state kept for `ns`, if `stored` (the digest Redis holds) is the one it was kept
    with."""
    kept = _KEPT.get(ns)
    if kept is None:
        return None
    if stored != kept[0]:
        del _KEPT[ns]
        return None
    return kept[1]


def _keep_state(ns: str, digest: bytes, table: pa.Table) -> None:
    _KEPT.pop(ns, None)
    while len(_KEPT) >= 16:
        _KEPT.pop(next(iter(_KEPT)))
    _KEPT[ns] = (digest, table)


def pending_batch(view: ir.View, rows: pa.Table) -> bytes:
    """What a push records for `view` before appending `rows` (the source's columns): each
    row's entity keys and visibility time, `max(ts, created)`."""
    import pyarrow.compute as pc

    from fsdsl.compile.names import AVAIL

    src = view.source
    avail = rows[src.timestamp]
    if src.created is not None:
        avail = pc.max_element_wise(avail, rows[src.created])
    cols = {k.name: rows[c] for k, c in zip(view.entity.keys, view.key_columns, strict=True)}
    return aggstate.dumps(pa.table({**cols, AVAIL: avail}))


def late_keys(view: ir.View, pending: list[bytes], previous: str | None) -> pa.Table | None:
    """The entities of pushed rows the state at `previous` never counted although they were
    visible then (rows ingested late): the refresh query recomputes them from all their
    events. Rows visible at `previous` or later enter the usual way."""
    import pyarrow.compute as pc

    from fsdsl.compile.names import AVAIL

    if not pending or previous is None:
        return None
    since = pa.scalar(dt.datetime.fromisoformat(previous), pa.timestamp("us"))
    keys = [k.name for k in view.entity.keys]
    parts = []
    for blob in pending:
        t = pa.ipc.open_stream(blob).read_all()
        # a row with a null key part belongs to no entity of this view (it counts nowhere)
        whole = [pc.is_valid(t[k]) for k in keys]
        keep = pc.less(t[AVAIL], since)
        for w in whole:
            keep = pc.and_(keep, w)
        parts.append(t.filter(keep).select(keys))
    if not any(part.num_rows for part in parts):  # a stream's usual batch: half its cost
        return None
    return pa.concat_tables(parts).group_by(keys).aggregate([])


def _written(run: ViewRun, wrote_empty: bool, previous: str | None) -> str:
    """What a run that lost its lock leaves behind, for E0515: each of its in-place writes
    was applied atomically with a check of the lock, so what it counted is all there is."""
    if run.mode == "full":
        return (
            "nothing was committed: the new namespace it was writing was never served, and "
            "is retired (the next run removes it)"
        )
    rewritten = run.entities_written + run.entities_removed + run.entities_repaired
    if not rewritten and not wrote_empty:
        return f"nothing was written, `{run.view}` still serves its values as of {previous}"
    what = f"{rewritten:,} entities" + (
        " and the values of an unseen entity" if wrote_empty else ""
    )
    return (
        f"{what} had already been rewritten in place as of {run.as_of} while its state still "
        f"says {previous} (a run as of {run.as_of} or later rewrites them)"
    )


def _abandon(online: OnlineStore, ns: str) -> None:
    """Retire the namespace of a full run that failed: it never served, and `drop_retired`
    removes it (by the next run at the latest) instead of leaving it in Redis forever."""
    try:
        online.retire_namespace(ns)
    except UsageError:
        pass  # the store is unreachable: the run's own error says so already


def _repair(
    repo: ir.Repository,
    view: ir.View,
    wh: Warehouse,
    online: OnlineStore,
    at: dt.datetime,
    ns: str,
    empty: str,
    keys: list[str],
    run: ViewRun,
    owner: str,
) -> None:
    """Rewrite the entities readers found damaged (`repair.py`), in place like the run's
    own rows (and, like them, only while the run holds its lock)."""
    from fsdsl.online.repair import recompute

    fixed = recompute(repo, view, wh, at, keys)
    for batch in fixed.to_batches(max_chunksize=BATCH):
        rows = _batch_commands(view, batch, empty, ns, in_place=True)
        online.send_commands(rows.pieces, rows.count, transaction=True, view=view.name, owner=owner)
        run.entities_repaired += batch.num_rows


class _Commands(NamedTuple):
    """A batch of refresh rows as Redis commands (`_batch_commands`)."""

    pieces: list[bytes]  # the encoded commands, sent in order
    count: int  # of commands
    written: int  # entities stored
    removed: int  # entities removed (equal to the empty values)
    values: int  # non-null values stored


def _batch_commands(
    view: ir.View, batch: pa.RecordBatch, empty: str, ns: str, in_place: bool
) -> _Commands:
    """The commands that store a batch of refresh rows: each entity's values (rows equal to the
    empty values are not stored) and, for a link's view, each entity's link string. `in_place`
    (a namespace that serves): each entity's string is replaced whole (one SET), and the
    entities now equal to the empty values are removed; a fresh namespace has nothing to
    replace or remove."""
    put, gone, values, texts, keep = _encode_batch(view, batch, empty, ns)
    buffer, count = set_rows(put[0], signed(put[0], put[1]))
    pieces = [buffer]
    if in_place:
        extra, more = del_rows(gone)
        pieces.append(extra)
        count += more
    if view.link is not None:
        link, more = _link_commands(view, batch, texts, keep, ns, in_place)
        pieces += link
        count += more
    return _Commands(pieces, count, len(put[0]), len(gone) if in_place else 0, values)


def _link_commands(
    view: ir.View, batch: pa.RecordBatch, texts: pa.Array, keep: pa.Array, ns: str, in_place: bool
) -> tuple[list[bytes], int]:
    """A link's view's strings (`store.py`, `fsdsl:r:`) for a batch: one for every entity whose
    values are stored (`keep`), "{checksum}:{target key text}", "" after the colon when
    unlinked; `in_place`, those of the entities whose values are removed are removed too.
    `texts`: the entities' key texts."""
    import pyarrow.compute as pc

    targets = [f for f in view.features if f.name != ir.UNLINKED]  # the target's keys, in order
    columns = [conform(batch.column(f.name), f.type).filter(keep) for f in targets]
    linked = None  # every key column present
    for column in columns:
        valid = pc.is_valid(column)
        linked = valid if linked is None else pc.and_(linked, valid)
    target = pc.if_else(linked, key_array(columns, [f.type for f in targets]), lit(""))
    keys = pc.binary_join_element_wise(lit(OnlineStore.link_key(ns, "")), texts, lit(""))
    stored = keys.filter(keep)
    buffer, count = set_rows(stored, signed(stored, target))
    pieces = [buffer]
    if in_place:
        extra, more = del_rows(keys.filter(pc.invert(keep)))
        pieces.append(extra)
        count += more
    return pieces, count


def _encode_batch(view: ir.View, batch: pa.RecordBatch, empty: str, ns: str):
    """A batch of refresh rows as ((entity keys, stored values) to write, entity keys to remove,
    non-null values written, the entities' key texts, which rows are written): rows equal to
    the empty values are removed rather than stored."""
    import pyarrow.compute as pc

    texts = key_array(
        [batch.column(k.name) for k in view.entity.keys], [k.type for k in view.entity.keys]
    )
    entity_keys = pc.binary_join_element_wise(lit(OnlineStore.entity_key(ns, "")), texts, lit(""))
    columns = _json_columns(view, batch)
    values = values_array(columns)
    keep = pc.invert(pc.equal(values, lit(empty)))
    if not pc.all(keep).as_py():
        columns = [c.filter(keep) for c in columns]
    count = sum(len(c) - c.null_count for c in columns)
    kept = (entity_keys.filter(keep), values.filter(keep))
    return kept, entity_keys.filter(pc.invert(keep)), count, texts, keep
