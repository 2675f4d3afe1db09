"""`fsc run`: compute views as of a time with the compiled refresh SQL and write them to Redis."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from fsdsl import ir
from fsdsl.arrow import arrow_type, conform
from fsdsl.backends.base import Warehouse
from fsdsl.compile import dialects
from fsdsl.compile.refresh import refresh_query
from fsdsl.compile.render import sql_text
from fsdsl.diagnostics import UsageError
from fsdsl.online import aggstate
from fsdsl.online import cache as compiled_cache
from fsdsl.online.codec import encode_array, encode_column, key_array, lit
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.repair import recompute, values_as_of
from fsdsl.online.resp import del_rows, hset_rows
from fsdsl.online.runlock import RunLock
from fsdsl.online.store import MARKER, LockLost, OnlineStore

BATCH = 2000
Progress = Callable[[str, int, int | None], None]  # (view, rows done, total or None)


def refresh_sql(view: ir.View, dialect: str, cache: Path | None = None) -> str:
    """The refresh query's text. Building its sqlglot tree takes about 0.25 s per view, a
    tenth of a short incremental run: with `cache` (a folder), it is kept there under a key of
    everything the text depends on — the view's IR, the dialect, the compiler's own source and
    sqlglot's version — so a stale text is never read back, and each entry is checked against
    its digest (`cache.py`), so a damaged one is recompiled rather than run."""
    if cache is None:
        return sql_text(refresh_query(view, dialect), dialect, pretty=False)
    key = _compile_key(view, dialect)
    file = cache / f"{view.name}.{dialect}.{key[:20]}.sql"
    text = compiled_cache.read(file, key)
    if text is None:
        text = sql_text(refresh_query(view, dialect), dialect, pretty=False)
        compiled_cache.write(file, key, text)
    return text


def _compile_key(view: ir.View, dialect: str) -> str:
    # the class that prints it, not only its name: a plug-in may register under a built-in's
    cls = type(dialects.get(dialect))
    text = f"{view!r}\n{dialect}\n{cls.__module__}.{cls.__qualname__}\n{_compiler_version()}"
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _compiler_version() -> str:
    """sqlglot's version and a hash of the compiler's source: read once per process. It keys
    the compile cache only: a compiler change recompiles the text, but changes the fingerprint
    (a full refresh of every store) only through SEMANTICS_VERSION, when it changes values."""
    import sqlglot

    h = hashlib.sha256(sqlglot.__version__.encode())
    here = Path(__file__).resolve().parents[1]
    for module in sorted((here / "compile").glob("*.py")) + [here / "ir.py"]:
        h.update(module.read_bytes())
    return h.hexdigest()


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


def empty_fields(repo: ir.Repository, view: ir.View, wh: Warehouse, at: dt.datetime) -> dict:
    """The encoded values of an entity with no visible event (null keys), by the training
    query (`repair.values_as_of`), so that serving and training agree on it by construction."""
    keys = pa.table({k.name: pa.nulls(1, arrow_type(k.type)) for k in view.entity.keys})
    row = values_as_of(repo, view, wh, at, keys)
    out = {}
    for f in view.features:
        value = encode_column(row[f.name], f.type)[0]
        if value is not None:
            out[f.name] = value
    return out


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
) -> ViewRun:
    started = time.perf_counter()
    sql = refresh_sql(view, wh.dialect, cache)
    fp = fingerprint(view)
    owner = uuid.uuid4().hex
    # held, and renewed in the background, until the run ends: its query included
    with RunLock(online, view.name, owner) as held:
        state = online.state(view.name)
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
            empty = online.read_empty(ns) if incremental else None
            if empty is None:  # a new namespace, or stored empty values absent or damaged
                empty = empty_fields(repo, view, wh, at)
                online.write_empty(ns, empty, **guard)
                wrote_empty = incremental

            t0 = time.perf_counter()
            params = {
                "as_of": at,
                "watermark": dt.datetime.fromisoformat(previous) if incremental else None,
            }
            state_in = old_state if old_state is not None else aggstate.empty(view)
            aggstate.register(wh, view, state_in)
            result = wh.execute_sql(sql, params)
            held.check()
            run.query_seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            total = result.num_rows
            done = 0
            for batch in result.to_batches(max_chunksize=BATCH):
                put, gone, values = _encode_batch(view, batch, empty, ns)
                buffer, count = hset_rows(put[0], put[1], MARKER, replace=incremental)
                removed = 0
                if incremental:  # a fresh namespace holds no stale value to remove
                    extra, more = del_rows(gone)
                    buffer, count = buffer + extra, count + more
                    removed = len(gone)
                # in place: one MULTI/EXEC per batch, so a reader never sees an entity
                # half-written
                online.send_commands(buffer, count, transaction=incremental, **guard)
                run.entities_removed += removed
                run.entities_written += len(put[0])
                run.values_written += values
                held.check()  # counted first: E0515 says what was written
                done += batch.num_rows
                if progress:
                    progress(view.name, done, total)
            repairs = online.repairs(ns) if incremental else []
            if repairs:
                _repair(repo, view, wh, online, at, ns, empty, repairs, run, owner)
            run.write_seconds = time.perf_counter() - t1

            changed = aggstate.from_result(view, result)
            new_state = (
                aggstate.merge(view, old_state, changed) if old_state is not None else changed
            )
            # Every write succeeded: only now does the new state serve, with its aggregates.
            online.set_state(
                view.name,
                {
                    "ns": ns,
                    "fp": fp,
                    "as_of": at.isoformat(),
                    "watermark": at.isoformat(),
                    "refreshed_at": dt.datetime.now(dt.UTC).isoformat(),
                },
                aggregates=aggstate.dumps(new_state),
                owner=owner,
            )
            committed = True
        except LockLost:
            raise LockLost(view.name, _written(run, wrote_empty, previous)) from None
        finally:
            if not committed and not incremental:
                _abandon(online, ns)
        online.repaired(ns, repairs)
        if not incremental and state.get("ns") and state["ns"] != ns:
            # Readers may use the namespace they cached for up to STATE_TTL seconds: retire
            # the old one now, remove it once no reader can still be using it.
            online.retire_namespace(state["ns"])
        online.drop_retired()
        run.seconds = time.perf_counter() - started
        return run


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
    empty: dict[str, str],
    keys: list[str],
    run: ViewRun,
    owner: str,
) -> None:
    """Rewrite the entities readers found damaged (`repair.py`), in place like the run's
    own rows (and, like them, only while the run holds its lock)."""
    fixed = recompute(repo, view, wh, at, keys)
    for batch in fixed.to_batches(max_chunksize=BATCH):
        put, gone, _ = _encode_batch(view, batch, empty, ns)
        buffer, count = hset_rows(put[0], put[1], MARKER, replace=True)
        extra, more = del_rows(gone)
        online.send_commands(
            buffer + extra, count + more, transaction=True, view=view.name, owner=owner
        )
        run.entities_repaired += batch.num_rows


def _encode_batch(view: ir.View, batch: pa.RecordBatch, empty: dict[str, str], ns: str):
    """A batch of refresh rows as ((hash keys, encoded fields) to write, hash keys to remove,
    values written): rows equal to the empty values are removed rather than stored."""
    import pyarrow.compute as pc

    texts = key_array(
        [batch.column(k.name) for k in view.entity.keys], [k.type for k in view.entity.keys]
    )
    hash_keys = pc.binary_join_element_wise(lit(OnlineStore.entity_key(ns, "")), texts, lit(""))
    fields, is_empty = {}, None
    for f in view.features:
        values = encode_array(conform(batch.column(f.name), f.type), f.type)
        if f.name in empty:
            same = pc.fill_null(pc.equal(values, lit(empty[f.name])), lit(False))
        else:
            same = pc.is_null(values)
        is_empty = same if is_empty is None else pc.and_(is_empty, same)
        fields[f.name] = values
    keep = pc.invert(is_empty)
    kept = {name: values.filter(keep) for name, values in fields.items()}
    count = sum(len(v) - v.null_count for v in kept.values())
    return (hash_keys.filter(keep), kept), hash_keys.filter(is_empty), count
