"""A warehouse file kept open between batches is handed over to whoever waits for it
(`fsdsl/backends/handoff.py`): real DuckDB files, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import duckdb
import pytest

from fsdsl.backends import connect
from fsdsl.backends.handoff import Held, waiters, waiting_dir, waiting_marker
from fsdsl.diagnostics import UsageError


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "wh.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    return path


def writable(path: str):
    return lambda: connect(f"duckdb:///{path}", {"writable": True})


MARKER_HOLDER = """
import sys, time
from fsdsl.backends.handoff import waiting_marker
with waiting_marker(sys.argv[1]):
    print("waiting", flush=True)
    time.sleep(60)
"""


def test_a_marker_counts_while_its_waiter_holds_it(db):
    other = subprocess.Popen(
        [sys.executable, "-c", MARKER_HOLDER, db], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().strip() == "waiting"
        found = waiters(db)
        assert len(found) == 1 and found[0].startswith(f"{other.pid}.")
        with waiting_marker(db):  # this process's own marker is not a waiter for it
            assert waiters(db) == found
        assert sorted(os.listdir(waiting_dir(db))) == found
    finally:
        other.kill()  # SIGKILL: its marker stays, unlocked
        other.wait()
    assert os.listdir(waiting_dir(db)) == found
    assert waiters(db) == []  # nobody holds it: not a waiter, and removed
    assert os.listdir(waiting_dir(db)) == []


def test_a_marker_nobody_holds_is_not_a_waiter_whatever_its_name(db):
    """A marker of a process killed before it could remove it, whose pid was reused since
    (here: this test's parent, alive) or lives in another pid namespace: no flock, no wait."""
    folder = waiting_dir(db)
    folder.mkdir()
    (folder / f"{os.getppid()}.abc").touch()
    (folder / "1.def").touch()
    assert waiters(db) == []
    assert os.listdir(folder) == []


def test_a_marker_that_cannot_be_left_is_said(db, capsys):
    folder = waiting_dir(db)
    folder.write_text("not a folder")
    with waiting_marker(db) as left:
        assert not left
    assert "cannot leave a waiting marker" in capsys.readouterr().err
    assert waiters(db) == []  # and looking for waiters does not fail either


def test_a_held_connection_is_kept_between_uses(db):
    held = Held(writable(db), db)
    try:
        with held.use() as first:
            first.execute_statement("INSERT INTO t VALUES (1)")
        with held.use() as second:
            assert second is first
        assert held.handovers == 0
    finally:
        held.close()
    assert not held.is_open


READER = """
import sys, time
from fsdsl.backends import connect
started = time.monotonic()
wh = connect(sys.argv[1], {"lock_timeout": 10})
n = wh.execute_sql("SELECT count(*) AS n FROM t").column("n")[0].as_py()
print(n, time.monotonic() - started)
wh.close()
"""


def test_a_process_waiting_for_the_file_gets_it_from_an_idle_holder(db):
    held = Held(writable(db), db, idle=60)
    try:
        with held.use() as wh:
            wh.execute_statement("INSERT INTO t VALUES (1), (2)")
        # the holder is idle but keeps the file: the reader waits, says so, and is let in
        out = subprocess.run(
            [sys.executable, "-c", READER, f"duckdb:///{db}"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        count, waited = out.stdout.split()
        assert count == "2"
        assert "waiting for DuckDB database" in out.stderr
        assert float(waited) < 5, waited
        assert held.handovers == 1
        assert not held.is_open
        assert waiters(db) == []  # the reader's marker went with it
        # the holder opens the file again on its next use
        with held.use() as wh:
            wh.execute_statement("INSERT INTO t VALUES (3)")
    finally:
        held.close()
    con = duckdb.connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM t").fetchone() == (3,)
    con.close()


def test_a_holder_in_use_finishes_before_the_waiter_gets_the_file(db):
    held = Held(writable(db), db, idle=60)
    try:
        with held.use() as wh:
            reader = subprocess.Popen(
                [sys.executable, "-c", READER, f"duckdb:///{db}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 30
            while not waiters(db) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [w.partition(".")[0] for w in waiters(db)] == [str(reader.pid)]
            time.sleep(0.2)  # in use: not handed over, whatever the watcher sees
            assert held.is_open and reader.poll() is None
            wh.execute_statement("INSERT INTO t VALUES (7)")
        out, err = reader.communicate(timeout=30)
        assert reader.returncode == 0, err
        assert out.split()[0] == "1"  # it read what the use committed
    finally:
        held.close()


def test_an_error_inside_a_use_closes_the_connection(db):
    held = Held(writable(db), db)
    try:
        with pytest.raises(UsageError):
            with held.use() as wh:
                wh.execute_statement("INSERT INTO missing VALUES (1)")
        assert not held.is_open
        with held.use() as wh:  # and the next use opens a new one
            wh.execute_statement("INSERT INTO t VALUES (1)")
    finally:
        held.close()


def test_an_idle_connection_is_closed(db):
    held = Held(writable(db), db, idle=0.1, poll=0.01)
    try:
        with held.use():
            pass
        deadline = time.monotonic() + 10
        while held.is_open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not held.is_open
        # the file is free: another connection (this process) opens it
        con = duckdb.connect(db)
        con.close()
        with held.use():  # and it opens again, with a watcher of its own
            pass
        deadline = time.monotonic() + 10
        while held.is_open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not held.is_open
    finally:
        held.close()


def test_a_query_result_comes_back_without_a_warning(db):
    """`execute_sql` takes the DB-API path (one bind, not two) and silences only DuckDB's
    note about the copy that path makes."""
    import warnings

    wh = connect(f"duckdb:///{db}", {})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = wh.execute_sql("SELECT $x + 1 AS y", {"x": 41})
        assert out.column("y").to_pylist() == [42]
    finally:
        wh.close()


def test_a_holder_used_back_to_back_lets_a_waiter_in_at_the_end_of_a_use(db):
    """The watcher may never find the lock free between two uses: the end of a use looks."""
    ended = []
    held = Held(writable(db), db, idle=60, end=lambda wh: ended.append(wh))
    reader = None
    try:
        started = time.monotonic()
        while time.monotonic() - started < 20:
            with held.use() as wh:
                wh.execute_statement("INSERT INTO t VALUES (1)")
                time.sleep(0.05)  # a batch
            if reader is None:
                reader = subprocess.Popen(
                    [sys.executable, "-c", READER, f"duckdb:///{db}"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            elif reader.poll() is not None:
                break
        out, err = reader.communicate(timeout=30)
        assert reader.returncode == 0, err
        assert float(out.split()[1]) < 3, out  # let in within a few batches
        assert held.handovers >= 1
        assert len(ended) >= 2  # the end-of-use hook ran after each use
    finally:
        held.close()
        if reader is not None and reader.poll() is None:
            reader.kill()


def test_a_kept_postgres_connection_ends_its_transaction_after_each_use(warehouse_urls):
    """Kept between a stream worker's batches, a connection must not stay idle in a
    transaction: it would hold the tables' locks (and vacuum back) until the next batch."""
    from conftest import warehouse_url

    from fsdsl.online.stream import _held_warehouse

    url = warehouse_url(warehouse_urls, "postgres")

    class Store:  # what `_held_warehouse` reads of a FeatureStore
        warehouse_url = url

        @staticmethod
        def writable_warehouse():
            return connect(url, {"writable": True})

    held = _held_warehouse(Store())
    try:
        with held.use() as wh:
            pid = wh.execute_sql("SELECT pg_backend_pid() AS p")["p"][0].as_py()
            wh.execute_sql("SELECT count(*) AS n FROM pg_class")  # a read opens a transaction
        with connect(url, {}) as other:
            state = other.execute_sql(
                "SELECT state FROM pg_stat_activity WHERE pid = $1", {"pid": pid}
            )["state"].to_pylist()
        assert state == ["idle"], state
    finally:
        held.close()
