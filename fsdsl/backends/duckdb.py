"""DuckDB, the embedded default warehouse."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa

from fsdsl.backends.base import Warehouse
from fsdsl.diagnostics import UsageError
from fsdsl.project import duckdb_path

# Said by DuckDB on every Arrow result of `con.execute` (see `execute_sql`): chosen, not a
# mistake, and only this message is silenced, where it is said.
COPY_WARNING = "Arrow output on a DB-API result makes an extra copy"


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    ledger_upsert = True  # ON CONFLICT ... RETURNING and unique indexes

    def __init__(self, url: str, settings: dict):

        self.url = url
        path = duckdb_path(url)
        if path != ":memory:" and not Path(path).exists():
            raise UsageError(
                f"no DuckDB database at {path} (run `fsc demo-data` to create the "
                "example warehouse, or pass --warehouse)",
                "E0003",
            )
        from fsdsl.project import url_settings

        settings = {**settings, **url_settings(url)}  # the URL wins over the profile
        config = {}
        for key in ("memory_limit", "threads", "temp_directory"):
            if settings.get(key) is not None:
                config[key] = str(settings[key])
        # read-only: computing features never changes the warehouse, and other readers (a
        # notebook, a second job) can share the file; a push writes, for as short as it can
        writable = bool(settings.get("writable"))
        self.con = _connect(path, path != ":memory:" and not writable, config, settings)
        # Keep labels order-insensitive work parallel; the query orders its output explicitly.
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("SET enable_progress_bar = false")  # fsc shows its own progress

    def table_columns(self, table: tuple[str, ...]) -> dict[str, str] | None:
        schema = table[-2] if len(table) >= 2 else None
        name = table[-1]
        sql = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $name"
            + (" AND table_schema = $schema" if schema else " AND table_schema = current_schema()")
            + " ORDER BY ordinal_position"
        )
        params = {"name": name, **({"schema": schema} if schema else {})}
        rows = self.con.execute(sql, params).fetchall()
        return {c: t for c, t in rows} or None

    def create_table(self, table: tuple[str, ...], data: pa.Table) -> None:
        from sqlglot import exp

        ref = exp.Table(
            this=exp.to_identifier(table[-1]),
            db=exp.to_identifier(table[-2]) if len(table) > 1 else None,
        )
        if len(table) > 1:
            schema = exp.Create(
                this=exp.Table(this=exp.to_identifier(table[-2])), kind="SCHEMA", exists=True
            )
            self.con.execute(schema.sql("duckdb", identify=True))
        self.con.register("__fsdsl_upload", data)
        create = exp.Create(
            this=ref,
            kind="TABLE",
            replace=True,
            expression=exp.select(exp.Star()).from_("__fsdsl_upload"),
        )
        self.con.execute(create.sql("duckdb", identify=True))
        self.con.unregister("__fsdsl_upload")

    def begin(self) -> None:
        self.con.begin()

    def execute_statement(self, sql: str) -> None:
        import duckdb

        try:
            self.con.execute(sql)
        except duckdb.Error as e:
            raise UsageError(
                f"the warehouse refused the rows: {str(e).splitlines()[0]}", "E0523"
            ) from None

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        import duckdb

        try:
            self.con.rollback()
        except duckdb.Error:
            pass  # no transaction open (the error that got here ended it)

    def register_arrow(self, name: str, data: pa.Table) -> None:
        self.con.register(name, data)

    def execute_ordered(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """DuckDB 2.0.1 exports a DB-API result to Arrow in parallel and, with
        preserve_insertion_order off, ignores the ORDER BY past the first 2,048 rows; a
        relation's export keeps it (tests/test_training_order.py). The relation binds the
        query twice (see `execute_sql`): the ordered queries are training sets and repair's
        keyed reads, where that costs nothing measurable."""
        import duckdb

        try:
            rel = self.con.sql(sql, params=params) if params else self.con.sql(sql)
            return rel.to_arrow_table()
        except duckdb.Error as e:
            raise UsageError(
                f"the warehouse rejected the query: {str(e).splitlines()[0]}", "E0410"
            ) from None

    def execute_sql(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        import duckdb

        try:
            # Through the DB-API, not `con.sql(...)`: a relation binds the query once to
            # describe it and again to run it, about 20 ms of a 50 ms incremental refresh
            # query, while the copy this path makes of the result costs ~10% of a plain scan's
            # time and nothing next to a query that computes anything.
            cursor = self.con.execute(sql, params) if params else self.con.execute(sql)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=COPY_WARNING, category=UserWarning)
                return cursor.to_arrow_table()
        except duckdb.Error as e:
            raise UsageError(
                f"the warehouse rejected the query: {str(e).splitlines()[0]}", "E0410"
            ) from None

    def close(self) -> None:
        self.con.close()


# How long an open waits for a file another process holds (a push or a stream batch writing,
# a training set reading) before it gives up; `lock_timeout` in a profile or URL overrides it.
LOCK_TIMEOUT = 300.0


def _connect(path: str, read_only: bool, config: dict, settings: dict):
    """Open `path`, waiting while another process holds it. DuckDB lets one process write a
    file, or several read it, never both: `fsc stream` keeps it between batches until someone
    waits (`handoff.py`: the marker this wait leaves tells it), a training set holds it for
    its whole query. The wait is said once on stderr, with the holder."""
    import sys
    import time
    from contextlib import ExitStack

    import duckdb

    from fsdsl.backends.handoff import waiting_marker

    deadline = time.monotonic() + float(settings.get("lock_timeout", LOCK_TIMEOUT))
    delay, said = 0.005, False
    with ExitStack() as waiting:
        while True:
            try:
                return duckdb.connect(path, read_only=read_only, config=config)
            except duckdb.IOException as e:
                text = str(e)
                if "lock" not in text.lower() or time.monotonic() > deadline:
                    raise UsageError(f"cannot open DuckDB database {path}: {e}", "E0003") from None
                if not said:
                    waiting.enter_context(waiting_marker(path))
                    holder = text.split("Conflicting lock is held in", 1)[-1].strip()
                    print(
                        f"waiting for DuckDB database {path}: another process holds it "
                        f"({holder[:120]})",
                        file=sys.stderr,
                    )
                    said = True
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            except duckdb.Error as e:
                raise UsageError(f"cannot open DuckDB database {path}: {e}", "E0003") from None
