"""`fsc stream`: a long-running worker that applies streamed events to the warehouse and the
online store in micro-batches, by the same path as a push (`push.apply`).

Each batch: read entries (a consumer group, so several workers share the work), check them
(`ingest.split`: a bad entry goes to the dead-letter stream `fsc:dead:<source>` with its reason
and fields, never taking a good one with it), append the good ones with their entry ids as
idempotence keys, refresh the views, and only then acknowledge. Delivery is at least once —
an entry left pending by a worker that died is claimed back by another (XAUTOCLAIM) once idle
for CLAIM_IDLE_MS, or at once by a worker restarted under its consumer name (`CONSUMER_ENV`) —
and the effect is exactly once: a replayed entry is not appended again (the ledger), and
refreshing is idempotent (see `push.py`). Dead letters are written with the acknowledgement,
atomically: a replayed batch keeps each bad entry once. Between batches the worker ticks:
windows and TTLs move with time alone, so every `tick` seconds it refreshes its views to the
clock, as `fsc run` would.

The reader is an interface (`StreamReader`): Redis Streams here; another transport (Kafka)
plugs in through the entry point group `fsdsl.streams` (`name = "module:Class"`).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

from fsdsl import ingest, ir
from fsdsl.diagnostics import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

GROUP = "fsc"
DEAD_PREFIX = "fsc:dead:"
CLAIM_IDLE_MS = 30_000  # an entry pending this long belongs to a consumer presumed dead
# Entries per read, at most. Under a steady load a read takes what arrived during the last
# batch (tens of entries at 1,000/s); a backlog is read in batches this large: each batch pays
# the views' refresh queries (their planning most of all) once, so larger batches catch up
# faster (5,000: 8,300 events/s, 20,000: 14,400 on this 2-core machine).
BATCH = 20_000
ENTRY_POINTS = "fsdsl.streams"
# The worker's consumer name in its group; random (host:pid:nonce) when unset. Give each worker
# a stable name of its own (a unit or pod name) so that one restarted after a crash resumes the
# entries it had read but not acknowledged at once, rather than after CLAIM_IDLE_MS. Two live
# workers sharing a name both re-read that history when they start: harmless (appending is
# idempotent), but wasted work.
CONSUMER_ENV = "FSC_STREAM_CONSUMER"


@dataclass(frozen=True)
class Entry:
    source: str
    id: str  # unique within its source's stream: the idempotence key
    fields: dict[str, str]

    @property
    def added_ms(self) -> int | None:
        """When the entry was added, from a Redis entry id (`<ms>-<seq>`)."""
        head = self.id.partition("-")[0]
        return int(head) if head.isdigit() else None


class StreamReader(Protocol):
    """What the worker needs from a transport."""

    def read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to `count` entries: first those another consumer left pending too long, then
        new ones, waiting up to `block_ms` for some."""

    def ack(self, entries: list[Entry], dead: list[tuple[Entry, str]] = ()) -> None:
        """Acknowledge `entries`, and keep the `dead` ones (entry, reason) where a person can
        look at them, in one atomic step: a bad entry is kept once, even when its batch is
        replayed after a crash."""

    def lag(self) -> dict[str, int]:
        """Per source: entries not yet read by the group, plus those read but not acked."""

    def close(self) -> None: ...


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class RedisStreamReader:
    """Redis Streams through a consumer group (XREADGROUP, XACK, XAUTOCLAIM)."""

    def __init__(self, client, streams: dict[str, str], group: str = GROUP, consumer: str = ""):
        self.client = client
        self.streams = streams  # source -> stream key
        self.by_key = {k: s for s, k in streams.items()}
        self.group = group
        self.consumer = (
            consumer
            or os.environ.get(CONSUMER_ENV)
            or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        import redis

        for key in streams.values():
            try:  # from the start: a backlog written before the first worker is consumed
                client.xgroup_create(key, group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
        self._claim_from = dict.fromkeys(streams.values(), "0-0")
        # what this consumer name read and did not acknowledge before (a worker restarted
        # under its name after a crash): read first, at once, not after CLAIM_IDLE_MS
        self._history_from = dict.fromkeys(streams.values(), "0-0")

    def read(self, count: int, block_ms: int) -> list[Entry]:
        out: list[Entry] = []
        for key, start in list(self._history_from.items()):
            reply = self.client.xreadgroup(self.group, self.consumer, {key: start}, count=count)
            items = reply[0][1] if reply else []
            if not items:
                del self._history_from[key]
                continue
            self._history_from[key] = _text(items[-1][0])
            out += self._live(key, items)
        if out:
            return out
        for key, start in self._claim_from.items():
            nxt, claimed, *_ = self.client.xautoclaim(
                key, self.group, self.consumer, CLAIM_IDLE_MS, start_id=start, count=count
            )
            self._claim_from[key] = _text(nxt)
            out += self._live(key, claimed)
        if out:
            return out
        reply = self.client.xreadgroup(
            self.group,
            self.consumer,
            {k: ">" for k in self.streams.values()},
            count=count,
            block=block_ms or None,
        )
        for key, items in reply or []:
            out += [self._entry(_text(key), i, f) for i, f in items]
        return out

    def _live(self, key: str, items) -> list[Entry]:
        """The entries of a pending list still in the stream; one deleted meanwhile (XDEL, a
        MAXLEN trim) can never be applied, and is acknowledged so that it stops being pending."""
        gone = [i for i, f in items if f is None]
        if gone:
            self.client.xack(key, self.group, *gone)
        return [self._entry(key, i, f) for i, f in items if f is not None]

    def _entry(self, key, entry_id, fields) -> Entry:
        if not fields:
            data = {}
        else:
            try:  # bytes, as this client reads them: decoded inline (20k entries: 0.06 s less)
                data = {
                    k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                    for k, v in fields.items()
                }
            except AttributeError:  # a client that decodes replies itself
                data = {_text(k): _text(v) for k, v in fields.items()}
        return Entry(self.by_key[_text(key)], _text(entry_id), data)

    def ack(self, entries: list[Entry], dead: list[tuple[Entry, str]] = ()) -> None:
        by_key: dict[str, list[str]] = {}
        for e in entries:
            by_key.setdefault(self.streams[e.source], []).append(e.id)
        with self.client.pipeline(transaction=True) as pipe:  # MULTI: letters and acks, or none
            for entry, reason in dead:
                fields = {"_reason": reason, "_id": entry.id, "_stream": self.streams[entry.source]}
                pipe.xadd(f"{DEAD_PREFIX}{entry.source}", {**fields, **entry.fields})
            for key, ids in by_key.items():
                pipe.xack(key, self.group, *ids)
            pipe.execute()

    def lag(self) -> dict[str, int]:
        out = {}
        for source, key in self.streams.items():
            groups = {_text(g["name"]): g for g in self.client.xinfo_groups(key)}
            g = groups.get(self.group, {})
            pending = int(g.get("pending", 0))
            lag = g.get("lag")
            if lag is None:  # Redis < 7: count what follows the last delivered id (capped)
                last = _text(g.get("last-delivered-id", "0-0"))
                newest = _text(self.client.xinfo_stream(key).get("last-generated-id", "0-0"))
                lag = (
                    0
                    if newest == last
                    else len(self.client.xrange(key, min=f"({last}", count=LAG_CAP))
                )
            out[source] = int(lag or 0) + pending
        return out

    def close(self) -> None:
        pass


def reader_for(kind: str, **kwargs) -> StreamReader:
    """`redis` (built in) or a reader registered under entry point group `fsdsl.streams`."""
    if kind == "redis":
        return RedisStreamReader(**kwargs)
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}
    if kind not in found:
        raise UsageError(
            f"unknown stream reader `{kind}`; known: {', '.join(sorted({'redis', *found}))}",
            "E0530",
        )
    return found[kind].load()(**kwargs)


@dataclass
class Batch:
    """A micro-batch once checked: per source, its good rows (typed) and their entries; the
    bad entries with their reasons."""

    accepted: dt.datetime
    good: dict[str, tuple[pa.Table, list[Entry]]] = field(default_factory=dict)
    bad: list[tuple[Entry, str]] = field(default_factory=list)


@dataclass
class Report:
    """What the worker says every `report_every` seconds (and when it stops)."""

    events: int = 0  # good events applied, since start
    dead: int = 0  # dead letters, since start
    batches: int = 0
    ticks: int = 0
    events_per_second: float = 0.0  # over the last period
    lag: dict[str, int] = field(default_factory=dict)
    freshness_p50_ms: float | None = None  # entry added -> value served, over the last period
    freshness_p99_ms: float | None = None
    waiting: str | None = None  # what the worker is waiting for, if anything
    as_of: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


class Worker:
    """The loop of `fsc stream`; `store` is a FeatureStore (its repository and connections)."""

    def __init__(
        self,
        store,
        sources: list[str] | None = None,
        *,
        tick: float = 1.0,
        batch: int = BATCH,
        report_every: float = 5.0,
        on_report: Callable[[Report], None] | None = None,
        reader: StreamReader | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        group: str = GROUP,
        consumer: str = "",
    ):
        from fsdsl.online.push import now, source_named

        self.store = store
        repo: ir.Repository = store.repo
        names = sources or [
            s for s in repo.sources if any(v.source.name == s for v in repo.views.values())
        ]
        self.sources = {n: source_named(repo, n) for n in names}
        self.columns = {n: ingest.Columns.of(repo, s) for n, s in self.sources.items()}
        self.views = [v for v in repo.views.values() if v.source.name in self.sources]
        self.tick = tick
        self.batch = batch
        self.report_every = report_every
        self.on_report = on_report
        self.clock = clock or now
        self.stopping = False
        self.report = Report()
        self._latencies: list[float] = []
        self._period_events = 0
        # The owners of this worker's last runs (a batch, a tick). A run cut short by a Redis
        # restart cannot release its view locks; the host and pid in them are alive, so the
        # next attempt would wait `lock_seconds` for a lock of its own: released first instead
        # (compare-and-delete: never another run's lock).
        self._owners: list[str] = []
        online = store.online()
        self.online = online
        self._warehouse = _held_warehouse(store)
        self.reader = reader or RedisStreamReader(
            online.client,
            {n: s.stream_key for n, s in self.sources.items()},
            group=group,
            consumer=consumer,
        )

    def stop(self, *_sig) -> None:
        """Finish the batch in hand, acknowledge it, and return from `run` (SIGTERM, SIGINT)."""
        self.stopping = True

    def _waiting(self, message: str) -> None:
        self.report.waiting = message
        if self.on_report:
            self.on_report(self.report)

    def run(self, max_batches: int | None = None, until_idle: bool = False) -> Report:
        """Until stopped (or `max_batches` batches, or, with `until_idle`, the first empty
        read: tests and backfills). SIGTERM and SIGINT stop it while it runs; their previous
        handlers are put back when it returns (a worker run inside a longer process)."""
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._loop(max_batches, until_idle)
        finally:
            self._warehouse.close()  # the file is free once the worker stops
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _loop(self, max_batches: int | None, until_idle: bool) -> Report:
        last_tick = last_report = time.monotonic()
        started_period = time.monotonic()
        while not self.stopping:
            entries = self._retry(
                "the stream", lambda: self.reader.read(self.batch, int(self.tick * 1000))
            )
            if entries:
                self.apply(entries)
                last_tick = time.monotonic()  # the batch refreshed every view it touched
            elif until_idle:
                break
            if time.monotonic() - last_tick >= self.tick and not self.stopping:
                self._retry("the warehouse and the online store", self.tick_views)
                last_tick = time.monotonic()
            if time.monotonic() - last_report >= self.report_every:
                self._emit(time.monotonic() - started_period)
                started_period = last_report = time.monotonic()
            if max_batches is not None and self.report.batches >= max_batches:
                break
        self._emit(max(time.monotonic() - started_period, 1e-9))
        return self.report

    def apply(self, entries: list[Entry]) -> None:
        """One micro-batch: check the entries, append + refresh per source, then keep the bad
        ones as dead letters and acknowledge all, each step retried while its store is
        unreachable. The entries are checked once, outside the retries, and the dead letters
        go with the acknowledgement: a retried (or, after a crash, replayed) batch keeps each
        bad entry once."""
        batch = self.check(entries)
        self._retry("the warehouse and the online store", partial(self._apply_good, batch))
        self._retry("the stream", partial(self.reader.ack, entries, batch.bad))
        good = sum(len(es) for _, es in batch.good.values())
        self.report.waiting = None
        self.report.dead += len(batch.bad)
        self.report.events += good
        self._period_events += good
        self.report.batches += 1

    def check(self, entries: list[Entry]) -> Batch:
        accepted = self.clock()
        by_source: dict[str, list[Entry]] = {}
        for e in entries:
            by_source.setdefault(e.source, []).append(e)
        batch = Batch(accepted)
        for name, es in by_source.items():
            table, kept, bad = ingest.split_texts(
                self.columns[name], [e.fields for e in es], accepted
            )
            batch.bad += [(es[i], reason) for i, reason in bad]
            if kept:
                batch.good[name] = (table, [es[i] for i in kept])
        return batch

    def _new_owner(self) -> str:
        for owner in self._owners:  # ours only: never another run's
            self.online.unlock_all([v.name for v in self.views], owner)
        self._owners = [uuid.uuid4().hex]
        return self._owners[0]

    def _apply_good(self, batch: Batch) -> None:
        from fsdsl.online.push import apply

        if not batch.good:
            return
        owner = self._new_owner()
        latencies: list[float] = []
        with self._warehouse.use() as wh:
            for name, (table, es) in batch.good.items():
                result = apply(
                    self.store.repo,
                    self.sources[name],
                    table,
                    wh,
                    self.online,
                    ids=[e.id for e in es],
                    accepted_at=batch.accepted,
                    cache=self.store.cache_dir,
                    waiting=self._waiting,
                    owner=owner,
                    keep_state=True,
                )
                self.report.as_of = result.as_of
                served = time.time() * 1000
                latencies += [served - e.added_ms for e in es if e.added_ms is not None]
        self._latencies += latencies

    def tick_views(self) -> None:
        """Refresh every view to the clock: a window or TTL may have moved. A view another
        process is refreshing is left to it."""
        from fsdsl.online.refresh import refresh_view
        from fsdsl.online.runlock import RunLock

        owner = self._new_owner()
        at = self.clock()
        with self._warehouse.use() as wh:
            for v in self.views:
                state = self.online.state(v.name).get("as_of")
                if state is not None and dt.datetime.fromisoformat(state) >= at:
                    continue
                try:
                    with RunLock(self.online, v.name, owner) as lock:
                        refresh_view(
                            self.store.repo,
                            v,
                            wh,
                            self.online,
                            at,
                            cache=self.store.cache_dir,
                            lock=lock,
                            keep_state=True,
                        )
                except UsageError as e:
                    # locked, or moved past `at` meanwhile: another worker or run has it
                    if e.code not in ("E0506", "E0507"):
                        raise
            self.report.as_of = at.isoformat()
        self.report.ticks += 1

    def _retry(self, what: str, fn: Callable):
        """Run `fn`, retrying with back-off while the store or the warehouse is unreachable
        (a Redis restart, a warehouse error): nothing is acked until it succeeds, so nothing
        is lost. Errors in the definitions or the data are not retried."""
        delay = 0.1
        while True:
            try:
                out = fn()
                if self.report.waiting:
                    self.report.waiting = None
                return out
            except UsageError as e:
                if e.code not in RETRIED or self.stopping and delay > 0.1:
                    raise
                self._waiting(f"waiting for {what}: {e} (retrying in {delay:.1f}s)")
            except OSError as e:
                self._waiting(f"waiting for {what}: {e} (retrying in {delay:.1f}s)")
            except Exception as e:  # redis-py's ConnectionError and kin
                if type(e).__module__.split(".")[0] != "redis":
                    raise
                self._waiting(f"waiting for {what}: {e} (retrying in {delay:.1f}s)")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _emit(self, period: float) -> None:
        lat = sorted(self._latencies)
        self.report.events_per_second = round(self._period_events / period, 1)
        # over this period only: a period without events has no freshness to report
        self.report.freshness_p50_ms = round(lat[len(lat) // 2], 1) if lat else None
        self.report.freshness_p99_ms = (
            round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None
        )
        try:
            self.report.lag = self.reader.lag()
        except Exception:  # noqa: BLE001 - a report never stops the worker
            pass
        self._latencies, self._period_events = [], 0
        if self.on_report:
            self.on_report(self.report)


def _held_warehouse(store):
    """The worker's writable warehouse connection, kept between batches while nobody else
    waits for the file (`fsdsl/backends/handoff.py`): opening and closing an embedded DuckDB
    file for every batch cost about 30 ms of each."""
    from fsdsl.backends.handoff import Held

    path = None
    if store.warehouse_url.startswith("duckdb:"):
        from fsdsl.project import duckdb_path

        path = duckdb_path(store.warehouse_url)
        path = None if path == ":memory:" else path
    # a batch commits its rows; what it opened since (reads, Postgres's uploads) ends here
    return Held(store.writable_warehouse, path, end=lambda wh: wh.rollback())


# The store or the warehouse unreachable, a lock another run holds: worth waiting for. (A
# refused password, E0503, is not: it needs a person.)
RETRIED = {"E0003", "E0410", "E0504", "E0505", "E0506", "E0515", "E0523"}
# Redis < 7 has no `lag` in XINFO GROUPS: the report counts what follows the last delivered
# entry, up to this many (a larger backlog reads as LAG_CAP).
LAG_CAP = 10_000
