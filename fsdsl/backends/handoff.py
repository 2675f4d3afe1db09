"""A warehouse connection kept open between uses, and handed over to whoever waits for it.

A stream worker or a process pushing events appends rows many times a second. Opening and
closing the embedded DuckDB file for every batch cost about 30 ms of a 200 ms batch; keeping it
open would shut every other command out, since DuckDB lets one process write a file, or several
read it, never both. So the two sides talk through the file system:

* a process that finds the file locked says that it waits: a marker file in `<db>.waiting/`,
  on which it holds an exclusive `flock` until it has opened the file or given up
  (`waiting_marker`, used by the DuckDB backend's open);
* a process keeping the file (`Held`) closes it at the end of a use when someone else waits,
  and between uses as soon as someone does (a watcher thread, every POLL seconds), and after
  IDLE seconds unused. Before opening again it gives a waiter that has not yet taken the file
  GRACE seconds to do so, so that a waiter is not starved by a writer that reopens at once.

A marker counts while its `flock` is held: one left by a process that died (even with SIGKILL,
even if its pid was reused since, even in another pid namespace sharing the folder) is not
locked, and is removed. Other backends have no single-writer file: `Held` only closes their
connection when it has been idle.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

POLL = 0.02  # seconds between a holder's checks for a waiter
IDLE = 5.0  # seconds unused after which a held connection is closed anyway
GRACE = 0.5  # seconds a holder lets a waiter take the file before opening it again

_MINE: set[str] = set()  # this process's own markers: it never waits for itself


def waiting_dir(path: str) -> Path:
    return Path(f"{path}.waiting")


@contextmanager
def waiting_marker(path: str) -> Iterator[bool]:
    """Say that this process (thread) waits for the file at `path`, while the block runs;
    yields whether the marker could be left (if not, a holder that keeps the file between
    uses does not know, and the wait lasts until it lets go by itself: said on stderr)."""
    folder = waiting_dir(path)
    name = f"{os.getpid()}.{uuid.uuid4().hex[:12]}"
    fd = None
    try:
        if not folder.is_dir():
            folder.mkdir(exist_ok=True)
            os.chmod(folder, 0o1777)  # any user's process may wait; each removes only its own
        fd = os.open(folder / name, os.O_CREAT | os.O_WRONLY, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _MINE.add(name)
    except OSError as e:
        if fd is not None:
            os.close(fd)
            fd = None
        print(
            f"cannot leave a waiting marker in {folder} ({e.strerror}): a process keeping "
            f"{path} open will not hand it over until it is idle",
            file=sys.stderr,
        )
    try:
        yield fd is not None
    finally:
        if fd is not None:
            _MINE.discard(name)
            try:
                os.unlink(folder / name)  # first: a marker is never seen unlocked while live
            except OSError:
                pass
            os.close(fd)


def waiters(path: str) -> list[str]:
    """The markers of the processes, other than this one, waiting for the file at `path`
    now (their `flock` held); markers nobody holds any more are removed on the way."""
    folder = waiting_dir(path)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        if name in _MINE:
            continue
        try:
            fd = os.open(folder / name, os.O_RDONLY)
        except FileNotFoundError:
            continue  # gone meanwhile: its waiter has the file, or gave up
        except OSError:
            found.append(name)  # cannot look: assume someone waits
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            found.append(name)  # its waiter holds it: alive and waiting
            continue
        except OSError:
            found.append(name)
            continue
        finally:
            os.close(fd)
        try:
            os.unlink(folder / name)  # nobody holds it: left by a process that died
        except OSError:
            pass
    return found


class Held:
    """One connection, opened by `open_fn` on first use and kept until another process waits
    for the file at `path` (None: no such file), or until it has been idle IDLE seconds.
    `use()` is the only way in; one user at a time (a lock), and the watcher thread closes the
    connection only between uses. `end(conn)`, if given, runs after every use that succeeded:
    a connection kept must not keep a transaction open between uses (Postgres would hold the
    tables' locks, and vacuum back)."""

    def __init__(
        self,
        open_fn: Callable[[], object],
        path: str | None,
        *,
        end: Callable[[object], None] | None = None,
        idle: float = IDLE,
        poll: float = POLL,
        grace: float = GRACE,
    ):
        self._open = open_fn
        self._path = path
        self._end = end
        self._idle, self._poll, self._grace = idle, poll, grace
        self._lock = threading.Lock()
        self._conn = None
        self._last_used = 0.0
        self._handed_over = 0.0  # when it was last closed for a waiter
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.handovers = 0  # how often a waiter was let in (tests, reports)

    @contextmanager
    def use(self) -> Iterator[object]:
        """The connection, opened if needed. An error inside the block closes it: a broken
        connection is never handed to the next use. At the end of a use, a waiter gets the
        file at once (the watcher may never find the lock free between two uses)."""
        with self._lock:
            if self._conn is None:
                self._let_waiter_in()
                self._conn = self._open()
                self._start_watcher()
            try:
                yield self._conn
                if self._end is not None:
                    self._end(self._conn)
            except BaseException:
                self._close_locked()
                raise
            finally:
                self._last_used = time.monotonic()
            self._check_locked(idle=False)

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _check_locked(self, idle: bool = True) -> bool:
        if self._conn is None:
            return False
        if self._path is not None and waiters(self._path):
            self._close_locked()
            self._handed_over = time.monotonic()
            self.handovers += 1
            return True
        if idle and time.monotonic() - self._last_used >= self._idle:
            self._close_locked()
        return False

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._close_locked()
            self._watcher = None  # a later use starts another

    def _let_waiter_in(self) -> None:
        """Just after handing the file over, wait (up to GRACE) until the waiter has it."""
        if self._path is None or time.monotonic() - self._handed_over > self._grace:
            return
        deadline = self._handed_over + self._grace
        while time.monotonic() < deadline and waiters(self._path):
            time.sleep(0.005)

    def _close_locked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is closed as far as it goes
                pass

    def _start_watcher(self) -> None:
        """Under the lock: so is the watcher's decision to stop (no connection left to
        watch), and a use that opens again always finds it running or starts one."""
        if self._watcher is None:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="fsdsl-held", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            if not self._lock.acquire(blocking=False):
                continue  # in use
            try:
                self._check_locked()
            except Exception as e:  # noqa: BLE001 - never let the connection go unwatched
                print(f"fsdsl: checking for waiters failed: {e}", file=sys.stderr)
            try:
                if self._conn is None:
                    self._watcher = None
                    return
            finally:
                self._lock.release()
