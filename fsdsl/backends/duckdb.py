"""DuckDB, the embedded default warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from fsdsl.backends.base import Warehouse
from fsdsl.diagnostics import UsageError
from fsdsl.project import duckdb_path


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, url: str, settings: dict):
        import duckdb

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
        try:
            # read-only: computing features never changes the warehouse, and other readers
            # (a notebook, a second job) can share the file
            self.con = duckdb.connect(path, read_only=path != ":memory:", config=config)
        except duckdb.Error as e:
            raise UsageError(f"cannot open DuckDB database {path}: {e}", "E0003") from None
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

    def register_arrow(self, name: str, data: pa.Table) -> None:
        self.con.register(name, data)

    def execute_sql(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        import duckdb

        try:
            return (
                self.con.sql(sql, params=params).to_arrow_table()
                if params
                else self.con.sql(sql).to_arrow_table()
            )
        except duckdb.Error as e:
            raise UsageError(
                f"the warehouse rejected the query: {str(e).splitlines()[0]}", "E0410"
            ) from None

    def close(self) -> None:
        self.con.close()
