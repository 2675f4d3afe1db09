"""PostgreSQL through SQLAlchemy: the compiled postgres SQL, run for real.

Labels are uploaded with COPY into a temporary table of the session, so the training query
joins them inside the database; results come back as Arrow.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa

from fsdsl.backends.base import Warehouse, table_expression
from fsdsl.compile.render import positional
from fsdsl.diagnostics import UsageError
from fsdsl.urls import redacted

_PG_TYPES = [
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_integer, "BIGINT"),
    (pa.types.is_floating, "DOUBLE PRECISION"),
    (pa.types.is_timestamp, "TIMESTAMP"),
    (pa.types.is_date, "DATE"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "TEXT"),
]


class PostgresWarehouse(Warehouse):
    dialect = "postgres"
    ledger_upsert = True  # ON CONFLICT ... RETURNING and unique indexes

    def __init__(self, url: str, settings: dict):
        try:
            import sqlalchemy as sa
        except ImportError:
            raise UsageError(
                "the postgres backend needs SQLAlchemy and psycopg: pip install 'fsdsl[postgres]'",
                "E0003",
            ) from None
        self.url = url
        try:
            self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            self.con = self.engine.connect()
        except ModuleNotFoundError as e:
            raise UsageError(
                f"the postgres backend needs the `{e.name}` driver: pip install 'psycopg[binary]'",
                "E0003",
            ) from None
        except sa.exc.SQLAlchemyError as e:
            msg = str(getattr(e, "orig", e)).strip().splitlines()[0]
            raise UsageError(f"cannot connect to {redacted(url)}: {msg}", "E0003") from None
        self._sa = sa
        # the compiled SQL writes a backslash in a literal as itself (the default since 9.1)
        raw = self._raw()
        raw.execute("SET standard_conforming_strings = on")
        raw.commit()

    def _raw(self):
        return self.con.connection.driver_connection  # the psycopg connection

    def table_columns(self, table: tuple[str, ...]) -> dict[str, str] | None:
        schema = table[-2] if len(table) >= 2 else None
        sql = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %(name)s AND table_schema = "
            + ("%(schema)s" if schema else "current_schema()")
            + " ORDER BY ordinal_position"
        )
        rows = self.con.exec_driver_sql(sql, {"name": table[-1], "schema": schema}).fetchall()
        if not rows and not schema:  # a temporary table (tests, uploaded labels)
            rows = self.con.exec_driver_sql(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = %(name)s AND table_schema LIKE 'pg_temp%%' "
                "ORDER BY ordinal_position",
                {"name": table[-1]},
            ).fetchall()
        return {c: t for c, t in rows} or None

    def register_arrow(self, name: str, data: pa.Table) -> None:
        self._upload((name,), data, temporary=True)

    def create_table(self, table: tuple[str, ...], data: pa.Table) -> None:
        self._upload(table, data, temporary=False)
        self._raw().commit()

    def _upload(self, parts: tuple[str, ...], data: pa.Table, temporary: bool) -> None:
        """CREATE [TEMPORARY] TABLE then COPY the rows in as CSV (fast, no per-row Python)."""
        from pyarrow import csv
        from sqlglot import exp

        cols = []
        for field in data.schema:
            kind = next((sql for test, sql in _PG_TYPES if test(field.type)), None)
            if kind is None:
                raise UsageError(
                    f"column `{field.name}` of type {field.type} cannot be uploaded to postgres",
                    "E0403",
                )
            cols.append(
                exp.ColumnDef(
                    this=exp.to_identifier(field.name),
                    kind=exp.DataType.build(kind, dialect="postgres"),
                )
            )
        table = table_expression(parts)
        statements = []
        if len(parts) > 1:
            statements.append(
                exp.Create(
                    this=exp.Table(this=exp.to_identifier(parts[-2])), kind="SCHEMA", exists=True
                )
            )
        statements.append(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True))
        props = exp.Properties(expressions=[exp.TemporaryProperty()]) if temporary else None
        statements.append(
            exp.Create(
                this=exp.Schema(this=table.copy(), expressions=cols), kind="TABLE", properties=props
            )
        )
        quoted = table.sql("postgres", identify=True)
        raw = self._raw()
        with raw.cursor() as cur:
            for statement in statements:
                cur.execute(statement.sql("postgres", identify=True))
            buf = io.BytesIO()
            csv.write_csv(data, buf, csv.WriteOptions(include_header=False, quoting_style="needed"))
            with cur.copy(f"COPY {quoted} FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buf.getvalue())
            cur.execute(f"ANALYZE {quoted}")

    # psycopg opens a transaction by itself: uploads (`register_arrow`) and statements since
    # the last commit are one
    def begin(self) -> None:
        pass  # already in one, with the rows `register_arrow` just uploaded

    def execute_statement(self, sql: str) -> None:
        import psycopg

        try:
            with psycopg.RawCursor(self._raw()) as cur:  # no placeholders: `%` stays itself
                cur.execute(sql)
        except Exception as e:  # psycopg.Error
            msg = str(e).strip().splitlines()[0]
            raise UsageError(f"the warehouse refused the rows: {msg}", "E0523") from None

    def commit(self) -> None:
        self._raw().commit()

    def rollback(self) -> None:
        self._raw().rollback()

    def execute_sql(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """`sql` comes from `sql_text(..., "postgres")`: parameters are `$1, $2, ...`, bound in
        sorted order of name. A raw cursor leaves the text as it is (psycopg's default cursor
        would read any `%` in it, in a literal or a name, as a placeholder)."""
        import psycopg

        raw = self._raw()
        try:
            with psycopg.RawCursor(raw) as cur:
                cur.execute(sql, positional(params) if params else None)
                names = [d.name for d in cur.description]
                rows = cur.fetchall()
        except Exception as e:  # psycopg.Error: the query or the data was refused
            raw.rollback()
            msg = str(e).strip().splitlines()[0]
            raise UsageError(f"the warehouse rejected the query: {msg}", "E0410") from None
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        return pa.table({n: _array(list(c)) for n, c in zip(names, columns, strict=True)})

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self.engine.dispose()


def _array(values: list) -> pa.Array:
    from decimal import Decimal

    if any(isinstance(v, Decimal) for v in values):
        values = [None if v is None else float(v) for v in values]
    return pa.array(values)
