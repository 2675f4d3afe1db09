"""The ledger of appended keys (`Warehouse.append` with ids): a key is appended once, whatever
replays, on DuckDB and Postgres; the ledger's unique index is there, and an earlier version's
ledger without it gets it."""

from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import warehouse_url

from fsdsl.backends import connect
from fsdsl.backends.base import _LEDGER_MODES, INGESTED, LEDGER_INDEX, table_name

TABLE = ("pushed_rows",)


@pytest.fixture(params=["duckdb", "postgres"])
def url(request, tmp_path, warehouse_urls):
    if request.param == "duckdb":
        path = tmp_path / "wh.duckdb"
        out = f"duckdb:///{path}"
        import duckdb

        duckdb.connect(str(path)).close()
    else:
        out = warehouse_url(warehouse_urls, "postgres")
    fresh_tables(out)
    return out


def fresh_tables(url: str) -> None:
    """An empty target table and no ledger (which this process must then set up again)."""
    _LEDGER_MODES.pop(url, None)
    with connect(url, {"writable": True}) as wh:
        for t in (TABLE, INGESTED):
            wh.begin()
            wh.execute_statement(f"DROP TABLE IF EXISTS {table_name(t, wh.dialect)}")
            wh.commit()
        wh.begin()
        wh.execute_statement(f"CREATE TABLE {table_name(TABLE, wh.dialect)} (k TEXT, n INTEGER)")
        wh.commit()


def rows(*pairs) -> pa.Table:
    return pa.table({"k": [k for k, _ in pairs], "n": pa.array([n for _, n in pairs], pa.int32())})


def contents(wh) -> list[tuple]:
    t = wh.execute_sql(f"SELECT k, n FROM {table_name(TABLE, wh.dialect)} ORDER BY k, n")
    return list(zip(t["k"].to_pylist(), t["n"].to_pylist(), strict=True))


def ledger(wh) -> list[tuple]:
    name = table_name(INGESTED, wh.dialect)
    t = wh.execute_sql(f"SELECT source, id FROM {name} ORDER BY source, id")
    return list(zip(t["source"].to_pylist(), t["id"].to_pylist(), strict=True))


def test_a_key_is_appended_once_whatever_replays(url):
    with connect(url, {"writable": True}) as wh:
        wh.append(TABLE, rows(("a", 1), ("b", 2)), "s", ids=["1", "2"])
        # a replay overlapping the last batch, with a new row and a key of another source
        wh.append(TABLE, rows(("b", 2), ("c", 3)), "s", ids=["2", "3"])
        wh.append(TABLE, rows(("d", 4)), "other", ids=["1"])
        # the whole first batch again: nothing
        wh.append(TABLE, rows(("a", 1), ("b", 2)), "s", ids=["1", "2"])
        assert contents(wh) == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
        assert ledger(wh) == [("other", "1"), ("s", "1"), ("s", "2"), ("s", "3")]
    # another connection (a restarted worker) sees the same ledger
    with connect(url, {"writable": True}) as wh:
        wh.append(TABLE, rows(("c", 3), ("e", 5)), "s", ids=["3", "5"])
        assert contents(wh) == [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]


def test_rows_sharing_a_key_in_one_batch_are_appended_together_then_never_again(url):
    with connect(url, {"writable": True}) as wh:
        wh.append(TABLE, rows(("a", 1), ("a", 2)), "s", ids=["k", "k"])
        wh.append(TABLE, rows(("a", 1), ("a", 2)), "s", ids=["k", "k"])
        assert contents(wh) == [("a", 1), ("a", 2)]
        assert ledger(wh) == [("s", "k")]


def test_a_rolled_back_append_leaves_no_ledger_behind_and_the_next_one_makes_it(url):
    """`mode="online"`: the append happens in a transaction that is rolled back, ledger
    included; the same connection's next append creates the ledger again."""
    with connect(url, {"writable": True}) as wh:
        wh.begin()
        wh.append(TABLE, rows(("a", 1)), "s", ids=["1"], commit=False)
        wh.rollback()
        assert contents(wh) == []
        wh.append(TABLE, rows(("a", 1)), "s", ids=["1"])
        wh.append(TABLE, rows(("a", 1)), "s", ids=["1"])
        assert contents(wh) == [("a", 1)]


def test_an_earlier_ledger_without_its_index_gets_it(url):
    with connect(url, {"writable": True}) as wh:
        name = table_name(INGESTED, wh.dialect)
        wh.begin()
        wh.execute_statement(f"CREATE TABLE {name} (source TEXT, id TEXT, ingested_at TIMESTAMP)")
        wh.execute_statement(f"INSERT INTO {name} VALUES ('s', '1', CURRENT_TIMESTAMP)")
        wh.commit()
        wh.append(TABLE, rows(("a", 1), ("b", 2)), "s", ids=["1", "2"])
        assert contents(wh) == [("b", 2)]
        if wh.dialect == "duckdb":
            found = wh.execute_sql("SELECT index_name FROM duckdb_indexes() WHERE is_unique")[
                "index_name"
            ].to_pylist()
        else:
            found = wh.execute_sql(
                "SELECT indexname AS index_name FROM pg_indexes WHERE indexdef LIKE '%UNIQUE%'"
            )["index_name"].to_pylist()
        assert LEDGER_INDEX in found


def test_a_ledger_holding_a_key_twice_falls_back_to_testing_each_key(url, capsys):
    """An earlier version recorded every row of a batch, two rows sharing an id included: the
    unique index cannot be made, and appends still count each key once (and say why slower)."""
    with connect(url, {"writable": True}) as wh:
        name = table_name(INGESTED, wh.dialect)
        wh.begin()
        wh.execute_statement(f"CREATE TABLE {name} (source TEXT, id TEXT, ingested_at TIMESTAMP)")
        for _ in range(2):
            wh.execute_statement(f"INSERT INTO {name} VALUES ('s', 'k', CURRENT_TIMESTAMP)")
        wh.commit()
        wh.append(TABLE, rows(("a", 1), ("b", 2)), "s", ids=["k", "j"])
        wh.append(TABLE, rows(("b", 2), ("c", 3)), "s", ids=["j", "m"])
        assert contents(wh) == [("b", 2), ("c", 3)]
    assert "cannot get its unique index" in capsys.readouterr().err


def test_a_backend_without_upserts_tests_each_key(url):
    with connect(url, {"writable": True}) as wh:
        wh.ledger_upsert = False  # a plug-in backend's default
        wh.append(TABLE, rows(("a", 1), ("b", 2)), "s", ids=["1", "2"])
        wh.append(TABLE, rows(("b", 2), ("c", 3)), "s", ids=["2", "3"])
        assert contents(wh) == [("a", 1), ("b", 2), ("c", 3)]


def test_concurrent_first_appends_do_not_deadlock(warehouse_urls):
    """Every push's first append on a new connection sets up the ledger: in transactions of
    their own, so two of them never hold the ledger's lock into their appends (Postgres; a
    DuckDB file has one writer, its appends never run side by side)."""
    import threading

    url = warehouse_url(warehouse_urls, "postgres")
    fresh_tables(url)

    errors: list[Exception] = []

    def push(n: int) -> None:
        try:
            for i in range(10):
                with connect(url, {"writable": True}) as wh:
                    wh.append(TABLE, rows((f"t{n}", i)), f"s{n}", ids=[f"{n}-{i}"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with connect(url, {"writable": True}) as wh:
        assert len(contents(wh)) == 30


def test_a_ledger_dropped_behind_a_process_s_back_fails_one_append_then_is_set_up_again(url):
    """The set-up is remembered per process and URL (a push opens a connection of its own):
    if the ledger goes meanwhile, one append says so and the next sets it up again."""
    from fsdsl.diagnostics import UsageError

    with connect(url, {"writable": True}) as wh:
        wh.append(TABLE, rows(("a", 1)), "s", ids=["1"])
    with connect(url, {"writable": True}) as wh:
        wh.begin()
        wh.execute_statement(f"DROP TABLE {table_name(INGESTED, wh.dialect)}")
        wh.commit()
    with connect(url, {"writable": True}) as wh:
        with pytest.raises(UsageError) as e:
            wh.append(TABLE, rows(("b", 2)), "s", ids=["2"])
        assert e.value.code == "E0523"
    with connect(url, {"writable": True}) as wh:
        wh.append(TABLE, rows(("b", 2)), "s", ids=["2"])
        wh.append(TABLE, rows(("b", 2)), "s", ids=["2"])
        assert contents(wh) == [("a", 1), ("b", 2)]
