"""A view's run lock, held for the whole run.

The lock expires after `OnlineStore.lock_seconds` so that a run that died elsewhere does not
block the view forever; a live run must therefore renew it all along — during its warehouse
query too, which may take longer than the lock period and gives the run no chance to act. A
daemon thread renews it (compare-and-renew: only while it is still ours) every third of the
period. If a renewal finds the lock gone or another's, the run is no longer alone: `check()`
raises at its next step. That flag may lag the loss by a third of the period, so it guards
nothing that serves: every in-place write (`send_commands`, `write_empty` with an owner) and
the commit (`set_state`) compare the lock's owner atomically with the write itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from fsdsl.diagnostics import UsageError
from fsdsl.online.store import PREFIX, LockLost, OnlineStore


class RunLock:
    def __init__(
        self,
        online: OnlineStore,
        view: str,
        owner: str,
        wait: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ):
        """With `wait`, a lock held by another run is waited for up to that many seconds
        (pushes and stream batches queue behind a run); `waiting(message)` is told once."""
        self.wait = wait
        self.waiting = waiting
        self.online = online
        self.view = view
        self.owner = owner
        self.lost = False
        self.taken = False  # already taken (`hold_all`): entering starts the renewals only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        deadline = time.monotonic() + self.wait
        delay, said = 0.002, False
        while not self.taken and not self.online.lock(self.view, self.owner):
            if time.monotonic() >= deadline:
                raise UsageError(
                    f"another run of view `{self.view}` is in progress (lock "
                    f"{PREFIX}:lock:{self.view}); wait for it or delete the lock",
                    "E0506",
                )
            if not said and self.waiting is not None:
                self.waiting(f"waiting for another run of view `{self.view}` to finish")
                said = True
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._thread = threading.Thread(
            target=self._renew, name=f"fsdsl-lock-{self.view}", daemon=True
        )
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.online.lock_seconds / 3):
            try:
                if not self.online.keep_lock(self.view, self.owner):
                    self.lost = True
                    return
            except UsageError:
                # the store is unreachable for now: the run's own commands fail too; if the
                # lock expires meanwhile, the next renewal finds it gone
                continue

    def check(self) -> None:
        """Raise if the lock was lost: called between the run's steps."""
        if self.lost:
            raise LockLost(self.view)

    def stop(self) -> None:
        """Stop renewing the lock, which stays held (`hold_all` releases all at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __exit__(self, *exc) -> None:
        self.stop()
        try:
            self.online.unlock(self.view, self.owner)  # ours only: never another run's
        except UsageError:
            pass  # the store is gone; the lock expires by itself


@contextlib.contextmanager
def hold_all(
    online: OnlineStore,
    views: list[str],
    owner: str,
    wait: float = 0.0,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[list[RunLock]]:
    """The lock of every view in `views` (the caller sorts them by name), held until the
    block ends; the locks come back in that order. When none is held, they are all taken in
    one round trip (`lock_all`, atomic: all or none); else one by one in name order, each
    waited for, so that two runs never wait for each other in a cycle. All are released in
    one round trip (`unlock_all`, ours only)."""
    locks = [RunLock(online, v, owner, wait=wait, waiting=waiting) for v in views]
    taken = online.lock_all(views, owner)
    entered: list[RunLock] = []
    try:
        for lock in locks:
            lock.taken = taken
            entered.append(lock.__enter__())
        yield locks
    finally:
        for lock in entered:
            lock.stop()
        try:
            online.unlock_all(views if taken else [lock.view for lock in entered], owner)
        except UsageError:
            pass  # the store is gone; the locks expire by themselves
