"""The warehouse interface and the URL -> backend registry."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fsdsl.diagnostics import UsageError

if TYPE_CHECKING:
    from sqlglot import exp

# sqlglot and the compiler are imported where a tree is built or printed: a run whose refresh
# query is already compiled (`online/refresh.py`) connects and queries without them.


class Warehouse(ABC):
    """What the offline and online jobs need from a warehouse, and nothing more."""

    # The name of the dialect the compiler targets for this warehouse. A plug-in may assign its
    # own `Dialect` subclass instead: defining the warehouse class registers that dialect and
    # leaves its name here, so every caller sees a name (see `connect`).
    dialect: str = "duckdb"
    url: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        brought = cls.__dict__.get("dialect")
        if isinstance(brought, type):
            from fsdsl.compile import dialects

            cls.dialect = dialects.register(brought).name

    @abstractmethod
    def table_columns(self, table: tuple[str, ...]) -> dict[str, str] | None:
        """Column name -> warehouse type name, or None when the table does not exist."""

    @abstractmethod
    def register_arrow(self, name: str, data: pa.Table) -> None:
        """Make `data` queryable under `name` for this connection (labels, keys)."""

    @abstractmethod
    def execute_sql(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run one statement and return its result as Arrow."""

    # ---- writes: a push appends rows (DuckDB, Postgres; a plug-in may add them) ----
    def begin(self) -> None:
        raise UsageError(
            f'the {self.dialect} backend cannot append rows (push with mode="online" is not '
            "possible either: it appends inside a transaction it rolls back)",
            "E0522",
        )

    def execute_statement(self, sql: str) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def execute_transaction(self, statements: list[str]) -> None:
        """Run `statements` as one transaction: all of them or none (pushed rows)."""
        self.begin()
        try:
            for statement in statements:
                self.execute_statement(statement)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def append(
        self,
        table: tuple[str, ...],
        data: pa.Table,
        source: str,
        ids: list[str] | None = None,
        commit: bool = True,
    ) -> None:
        """Append `data` (the source's declared columns) to `table`, in one transaction. With
        `ids` (one idempotence key per row: a stream entry id, an event id), rows whose key is
        already in the ledger table `INGESTED` for `source` are skipped and the others
        recorded there in the same transaction: a batch replayed after a crash is appended
        once. With `commit=False`, inside the transaction the caller opened (`begin`)."""
        rows = data if ids is None else data.append_column(PUSH_ID, pa.array(ids, pa.string()))
        self.register_arrow(PUSHED, rows)
        texts = append_texts(
            self.dialect, tuple(table), tuple(data.column_names), source, ids is not None
        )
        if commit:
            self.execute_transaction(texts)
        else:
            for text in texts:
                self.execute_statement(text)

    def create_table(self, table: tuple[str, ...], data: pa.Table) -> None:
        """Create (or replace) a table holding `data`: demo data and tests on any backend."""
        raise UsageError(f"the {self.dialect} backend cannot create tables", "E0003")

    def query(self, tree: exp.Expression, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a tree; `params` binds its `exp.Placeholder` nodes by name, all of them and only
        them (a positional driver numbers them by name: an extra one would shift the rest)."""
        from fsdsl.compile.render import parameters, sql_text

        names = set(parameters(tree))
        if names != set(params or ()):
            raise ValueError(
                f"the query's parameters are {sorted(names)}, not {sorted(params or ())}"
            )
        return self.execute_sql(sql_text(tree, self.dialect, pretty=False), params)

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


PUSHED = "__fsdsl_pushed"  # the relation a push registers its rows under
PUSH_ID = "__fsdsl_id"  # its idempotence key column
INGESTED = ("_fsdsl_ingested",)  # the ledger of appended keys: (source, id, ingested_at)


@functools.lru_cache(maxsize=64)
def append_texts(
    dialect: str, table: tuple[str, ...], columns: tuple[str, ...], source: str, with_ids: bool
) -> tuple[str, ...]:
    """`append_statements` printed for `dialect`, kept per process: a stream worker appends to
    the same table with the same columns every batch, and building and printing the trees
    cost about 9 ms each time."""
    from fsdsl.compile import dialects

    d = dialects.get(dialect).sqlglot_dialect
    statements = append_statements(table, list(columns), source, with_ids)
    return tuple(s.sql(dialect=d, identify=True) for s in statements)


def append_statements(
    table: tuple[str, ...], columns: list[str], source: str, with_ids: bool
) -> list[exp.Expression]:
    """The statements of `Warehouse.append`, as trees: every name quoted by the dialect."""
    from sqlglot import exp

    target = table_expression(table)
    cols = [exp.column(c, table="p", quoted=True) for c in columns]
    pushed = exp.Table(this=exp.to_identifier(PUSHED, quoted=True), alias=exp.TableAlias(this="p"))
    insert_cols = exp.Schema(
        this=target, expressions=[exp.to_identifier(c, quoted=True) for c in columns]
    )
    rows = exp.select(*cols).from_(pushed)
    if not with_ids:
        return [exp.Insert(this=insert_cols, expression=rows)]
    ledger = table_expression(INGESTED)
    fields = [("source", "TEXT"), ("id", "TEXT"), ("ingested_at", "TIMESTAMP")]
    create = exp.Create(
        this=exp.Schema(
            this=ledger.copy(),
            expressions=[
                exp.ColumnDef(this=exp.to_identifier(n, quoted=True), kind=exp.DataType.build(t))
                for n, t in fields
            ],
        ),
        kind="TABLE",
        exists=True,
    )
    seen = exp.Exists(
        this=exp.select(exp.Literal.number(1))
        .from_(exp.Table(this=ledger.this.copy(), alias=exp.TableAlias(this="l")))
        .where(
            exp.and_(
                exp.EQ(
                    this=exp.column("source", table="l", quoted=True),
                    expression=exp.Literal.string(source),
                ),
                exp.EQ(
                    this=exp.column("id", table="l", quoted=True),
                    expression=exp.column(PUSH_ID, table="p", quoted=True),
                ),
            )
        )
    )
    fresh = exp.Not(this=seen)
    record = exp.Insert(
        this=exp.Schema(
            this=ledger.copy(), expressions=[exp.to_identifier(n, quoted=True) for n, _ in fields]
        ),
        expression=exp.select(
            exp.Literal.string(source),
            exp.column(PUSH_ID, table="p", quoted=True),
            exp.CurrentTimestamp(),
        )
        .from_(pushed.copy())
        .where(fresh.copy()),
    )
    # rows first: the ledger still lacks this batch's keys when they are tested
    return [create, exp.Insert(this=insert_cols, expression=rows.where(fresh)), record]


def table_expression(parts: tuple[str, ...] | list[str]) -> exp.Table:
    """A table named by its parts (table, schema.table or catalog.schema.table), each an
    identifier: rendered with `identify=True` every part is quoted, whatever it holds."""
    from sqlglot import exp

    parts = list(parts)
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise UsageError(
            f"bad table name `{'.'.join(parts)}`: write table, schema.table or "
            "catalog.schema.table",
            "E0004",
        )
    names = ("this", "db", "catalog")[: len(parts)]
    ids = [exp.to_identifier(p, quoted=True) for p in reversed(parts)]
    return exp.Table(**dict(zip(names, ids, strict=True)))


def table_name(parts: tuple[str, ...] | list[str], dialect: str) -> str:
    """The quoted text of a table name, for the driver calls that take a name, not a query."""
    from fsdsl.compile import dialects

    return table_expression(parts).sql(dialect=dialects.get(dialect).sqlglot_dialect, identify=True)


BUILTIN = {
    "duckdb": ("fsdsl.backends.duckdb", "DuckDBWarehouse", "duckdb"),
    "postgresql": ("fsdsl.backends.postgres", "PostgresWarehouse", "sqlalchemy, psycopg"),
    "postgres": ("fsdsl.backends.postgres", "PostgresWarehouse", "sqlalchemy, psycopg"),
    "spark": ("fsdsl.backends.spark", "SparkWarehouse", "pyspark"),
    "sc": ("fsdsl.backends.spark", "SparkWarehouse", "pyspark"),
}
ENTRY_POINTS = "fsdsl.backends"


def plugins() -> dict[str, object]:
    """Backends registered by other packages: entry points `scheme = "module:Class"`. Read
    once per import path (a stream worker connects once per batch; scanning every installed
    distribution's metadata costs about 10 ms)."""
    import sys

    return _plugins(tuple(sys.path))


@functools.cache
def _plugins(_path: tuple[str, ...]) -> dict[str, object]:
    """Backends registered by other packages: entry points `scheme = "module:Class"`."""
    from importlib.metadata import entry_points

    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINTS)}


def connect(url: str, settings: dict | None = None) -> Warehouse:
    """A warehouse for `url`, chosen by its scheme (`postgresql+psycopg://` -> postgresql).

    Loading a plug-in registers the dialect class it brings (`Warehouse.dialect`); one that
    names a dialect nobody provides is refused here, before any work."""
    import importlib

    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    found = plugins().get(scheme)
    if found is not None:
        try:
            cls = found.load()
        except ImportError as e:
            raise UsageError(
                f"the `{scheme}` backend plug-in cannot be imported: {e}", "E0003"
            ) from None
        from fsdsl.compile import dialects

        try:
            dialects.get(cls.dialect)
        except UsageError as e:
            raise UsageError(f"the `{scheme}` backend plug-in: {e}", e.code) from None
        return cls(url, settings or {})
    if scheme in BUILTIN:
        module, name, needs = BUILTIN[scheme]
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError as e:
            raise UsageError(
                f"the {scheme} backend needs {needs} ({e.name} is missing): "
                f"pip install 'fsdsl[{_extra(scheme)}]'",
                "E0003",
            ) from None
        return cls(url, settings or {})
    known = sorted({*BUILTIN, *plugins()})
    raise UsageError(
        f"unknown warehouse URL scheme `{scheme or url}`; known: {', '.join(known)}", "E0003"
    )


def _extra(scheme: str) -> str:
    return {"postgresql": "postgres", "sc": "spark"}.get(scheme, scheme)
