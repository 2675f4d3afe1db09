"""Pushed events: appended to the source's warehouse table and applied to the online store by
the views' own refresh query, so that a pushed value is the value training computes.

The order is what makes a crash harmless. Under the lock of every view reading the source:
1. each view records the batch's keys and visibility times (`fsdsl:pending:{view}`);
2. the rows are appended to the warehouse, in one transaction (with idempotence keys, a
   replayed batch is appended once: `Warehouse.append`);
3. each view is refreshed incrementally at τ (`refresh_view`). Rows visible at or after the
   state's time enter as new rows; rows visible before it — ingested late — make their
   entities *dirty*: recomputed from all their events. The refresh trims what it read of the
   pending list in the transaction that commits its state.
A crash after 1 leaves pending keys that recompute, at worst, unchanged values; after 2, the
next run (a push, a stream batch, a tick or `fsc run`) finds the pending keys and counts the
rows exactly once. Nothing is ever subtracted or counted by hand: every value comes from the
compiled refresh query over the warehouse.

`mode="online"` appends the rows inside a transaction that is rolled back after the refresh:
the online values count them, the warehouse never holds them (as Feast's online push). A later
recomputation of those entities (a window losing an event, a full run) forgets them.
`mode="offline"` appends and records pending keys only; the next run applies them.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from fsdsl import ir
from fsdsl.diagnostics import UsageError
from fsdsl.online.refresh import ViewRun, pending_batch, refresh_view
from fsdsl.online.runlock import hold_all
from fsdsl.online.store import OnlineStore

MODES = ("online_and_offline", "online", "offline")
# How long a push waits for a run of one of its views (`fsc run`, another push) to finish.
LOCK_WAIT = 600.0


@dataclass
class PushResult:
    source: str
    mode: str
    rows: int  # rows accepted (a replayed stream entry counts, and is appended once)
    as_of: str | None  # the time τ of the values now served (None: offline)
    views: list[ViewRun] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "mode": self.mode,
            "rows": self.rows,
            "_as_of": self.as_of,
            "views": [v.to_dict() for v in self.views],
            "seconds": round(self.seconds, 4),
        }


def source_named(repo: ir.Repository, name: str) -> ir.Source:
    if name in repo.sources:
        return repo.sources[name]
    from fsdsl.compile.render import _unknown

    raise UsageError(_unknown("source", name, repo.sources), "E0524")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def apply(
    repo: ir.Repository,
    source: ir.Source,
    data,
    wh,
    online: OnlineStore,
    *,
    mode: str = "online_and_offline",
    ids: list[str] | None = None,
    accepted_at: dt.datetime,
    cache=None,
    waiting: Callable[[str], None] | None = None,
    owner: str | None = None,
    at: dt.datetime | None = None,
    keep_state: bool = False,
) -> PushResult:
    """Apply a checked batch (`ingest.table`): `wh` must be writable. See the module's text.
    The values are refreshed to `at` (default: the clock once the rows are appended, always
    after `accepted_at`), or to a later time a run of one of the views left them at."""
    if mode not in MODES:
        raise UsageError(f"unknown push mode `{mode}`; use one of {', '.join(MODES)}", "E0525")
    started = time.perf_counter()
    views = sorted(
        (v for v in repo.views.values() if v.source.name == source.name), key=lambda v: v.name
    )
    result = PushResult(source.name, mode, data.num_rows, None)
    owner = owner or uuid.uuid4().hex
    # every view's lock, in name order (two pushes never wait for each other in a cycle)
    with hold_all(online, [v.name for v in views], owner, LOCK_WAIT, waiting) as locks:
        # online mode too: its late rows must make their entities dirty in this refresh
        online.add_pending_all({v.name: pending_batch(v, data) for v in views}, owner)
        if mode == "offline":
            wh.append(source.table, data, source.name, ids)
            result.seconds = time.perf_counter() - started
            return result
        if mode == "online":
            wh.begin()
            wh.append(source.table, data, source.name, ids, commit=False)
        else:
            wh.append(source.table, data, source.name, ids)
        try:
            if at is None:
                at = max(now(), accepted_at + dt.timedelta(microseconds=1))
            # what each run reads first, read at once (it is not changed under the locks)
            inputs = online.run_inputs([v.name for v in views])
            for read in inputs:  # never behind a state another run left ahead of the clock
                prev = read.state.get("as_of")
                if prev is not None:
                    at = max(at, dt.datetime.fromisoformat(prev))
            for v, lock, read in zip(views, locks, inputs, strict=True):
                result.views.append(
                    refresh_view(
                        repo,
                        v,
                        wh,
                        online,
                        at,
                        cache=cache,
                        lock=lock,
                        keep_state=keep_state,
                        inputs=read,
                    )
                )
            result.as_of = at.isoformat()
        finally:
            if mode == "online":
                wh.rollback()
    result.seconds = time.perf_counter() - started
    return result
