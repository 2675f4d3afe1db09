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
    # Whether appends can record their keys with ON CONFLICT ... RETURNING and a unique index
    # (else, NOT EXISTS against the ledger: any SQL backend).
    ledger_upsert = False
    _ledger_mode: str | None = None  # "indexed" | "tested", once this connection has set up

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
        once. With `commit=False`, inside the transaction the caller opened (`begin`).

        Where the backend can (`ledger_upsert`: DuckDB, Postgres), the ledger has a unique
        index on (source, id), and the batch's keys are recorded first (`ON CONFLICT DO NOTHING
        RETURNING`): the keys it returns are the new ones. Testing the keys with NOT EXISTS
        scans the whole ledger, 45 ms a batch at 2M keys; that is the path elsewhere, inside
        a caller's transaction before this connection has set the index up, and for a ledger
        an earlier version left with a key twice (the index cannot be made)."""
        import pyarrow.compute as pc

        if ids is not None and commit and self.ledger_upsert and self._ledger_mode is None:
            # set up by another connection of this process, else now
            self._ledger_mode = _LEDGER_MODES.get(self.url) or self._set_up_ledger()
        rows = data if ids is None else data.append_column(PUSH_ID, pa.array(ids, pa.string()))
        self.register_arrow(PUSHED, rows)
        key = (self.dialect, tuple(table), tuple(data.column_names), source)
        if commit:
            self.begin()
        try:
            if ids is None:
                self.execute_statement(insert_text(*key))
            elif self._ledger_mode == "indexed":
                try:
                    new = self._returning(record_text(*key))
                except UsageError:  # the ledger gone meanwhile? the next append sets it up
                    _LEDGER_MODES.pop(self.url, None)
                    self._ledger_mode = None
                    raise
                if len(new) < pc.count_distinct(rows[PUSH_ID]).as_py():  # some appended before
                    self.register_arrow(PUSHED, rows.filter(pc.is_in(rows[PUSH_ID], new)))
                self.execute_statement(insert_text(*key))
            else:
                for text in tested_append_texts(*key):
                    self.execute_statement(text)
            if commit:
                self.commit()
        except BaseException:
            if commit:
                self.rollback()
            raise

    def _set_up_ledger(self) -> str:
        """The ledger and its unique index, each created when missing in a transaction of its
        own, before the append's: DDL inside it would lock the ledger until the append
        commits (on Postgres, two appends doing so deadlock on it). Each is tried twice: of
        two sessions creating the same thing at once, one may fail (Postgres: a duplicate
        key in its catalog) although it is there."""
        create, index = ledger_texts(self.dialect)

        def run(text: str) -> None:
            for attempt in range(2):
                self.begin()
                try:
                    self.execute_statement(text)
                    self.commit()
                    return
                except UsageError:
                    self.rollback()
                    if attempt:
                        raise

        run(create)
        try:
            run(index)
        except UsageError as e:
            import sys

            print(
                f"fsdsl: the ledger of appended keys cannot get its unique index ({e}); "
                "appends test each key against the whole ledger instead (slower)",
                file=sys.stderr,
            )
            mode = "tested"
        else:
            mode = "indexed"
        if self.url:
            _LEDGER_MODES[self.url] = mode
        return mode

    def _returning(self, sql: str) -> pa.Array:
        """The keys a statement with RETURNING gives back (text: an empty result may come
        back untyped), as a refusal of the rows when it fails (E0523, as the other
        statements of an append)."""
        try:
            out = self.execute_sql(sql).column(0).combine_chunks()
        except UsageError as e:
            said = str(e).replace("rejected the query", "refused the rows")
            raise UsageError(said, "E0523") from None
        return out.cast(pa.string())

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
        sql = sql_text(tree, self.dialect, pretty=False)
        if tree.args.get("order"):
            return self.execute_ordered(sql, params)
        return self.execute_sql(sql, params)

    def execute_ordered(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """`execute_sql` of a query with an ORDER BY of its own, whose rows must come back in
        that order (a backend whose fast path loses it overrides this)."""
        return self.execute_sql(sql, params)

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# How each warehouse's (URL's) ledger was set up by this process ("indexed" | "tested"): a
# push opens a connection of its own, and setting it up again costs two more commits (5-10 ms
# a push) or, for a ledger that cannot be indexed, a failing CREATE INDEX and its message.
_LEDGER_MODES: dict[str, str] = {}
PUSHED = "__fsdsl_pushed"  # the relation a push registers its rows under
PUSH_ID = "__fsdsl_id"  # its idempotence key column
INGESTED = ("_fsdsl_ingested",)  # the ledger of appended keys: (source, id, ingested_at)
LEDGER_FIELDS = (("source", "TEXT"), ("id", "TEXT"), ("ingested_at", "TIMESTAMP"))
LEDGER_INDEX = "_fsdsl_ingested_key"


@functools.lru_cache(maxsize=64)
def insert_text(dialect: str, table: tuple[str, ...], columns: tuple[str, ...], source: str) -> str:
    """The INSERT of `Warehouse.append`, printed once per process: a stream worker appends to
    the same table with the same columns every batch (building and printing cost ~3 ms)."""
    return _print(_insert_rows(table, columns), dialect)


@functools.lru_cache(maxsize=64)
def record_text(dialect: str, table: tuple[str, ...], columns: tuple[str, ...], source: str) -> str:
    """The keys of a batch recorded in the ledger: those already there are left (`ON CONFLICT
    DO NOTHING`), and the new ones returned."""
    exp = _exp()
    record = _record_keys(source)
    record.expression.distinct(copy=False)
    record.set("conflict", exp.OnConflict(action=exp.var("DO NOTHING")))
    record.set("returning", exp.Returning(expressions=[exp.column("id", quoted=True)]))
    return _print(record, dialect)


@functools.lru_cache(maxsize=64)
def tested_append_texts(
    dialect: str, table: tuple[str, ...], columns: tuple[str, ...], source: str
) -> tuple[str, ...]:
    """`Warehouse.append`'s statements where the ledger has no unique index: each key tested
    against the whole ledger (NOT EXISTS). Rows first: the ledger still lacks this batch's
    keys when they are tested."""
    exp = _exp()
    seen = exp.Exists(
        this=exp.select(exp.Literal.number(1))
        .from_(exp.Table(this=table_expression(INGESTED).this, alias=exp.TableAlias(this="l")))
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
    rows, record = _insert_rows(table, columns), _record_keys(source)
    for insert in (rows, record):
        insert.expression.where(exp.Not(this=seen.copy()), copy=False)
    return tuple(_print(s, dialect) for s in (_create_ledger(), rows, record))


def _insert_rows(table: tuple[str, ...], columns: tuple[str, ...]) -> exp.Insert:
    """INSERT INTO `table` (columns) SELECT them FROM the pushed rows."""
    exp = _exp()
    return exp.Insert(
        this=exp.Schema(
            this=table_expression(table),
            expressions=[exp.to_identifier(c, quoted=True) for c in columns],
        ),
        expression=exp.select(*[exp.column(c, table="p", quoted=True) for c in columns]).from_(
            _pushed()
        ),
    )


def _record_keys(source: str) -> exp.Insert:
    """INSERT INTO the ledger the pushed rows' keys for `source`, stamped now."""
    exp = _exp()
    return exp.Insert(
        this=exp.Schema(
            this=table_expression(INGESTED),
            expressions=[exp.to_identifier(n, quoted=True) for n, _ in LEDGER_FIELDS],
        ),
        expression=exp.select(
            exp.Literal.string(source),
            exp.column(PUSH_ID, table="p", quoted=True),
            exp.CurrentTimestamp(),
        ).from_(_pushed()),
    )


@functools.lru_cache(maxsize=16)
def ledger_texts(dialect: str) -> tuple[str, ...]:
    """The ledger and its unique index on (source, id), created when missing (an existing
    ledger of an earlier version gets its index on the first append)."""
    exp = _exp()
    ledger = table_expression(INGESTED)
    create = _create_ledger()
    index = exp.Create(
        this=exp.Index(
            this=exp.to_identifier(LEDGER_INDEX, quoted=True),
            table=ledger.copy(),
            params=exp.IndexParameters(
                columns=[exp.Ordered(this=exp.column(n, quoted=True)) for n in ("source", "id")]
            ),
        ),
        kind="INDEX",
        unique=True,
        exists=True,
    )
    return (_print(create, dialect), _print(index, dialect))


def _create_ledger():
    """CREATE TABLE IF NOT EXISTS of the ledger: (source, id, ingested_at)."""
    exp = _exp()
    return exp.Create(
        this=exp.Schema(
            this=table_expression(INGESTED),
            expressions=[
                exp.ColumnDef(this=exp.to_identifier(n, quoted=True), kind=exp.DataType.build(t))
                for n, t in LEDGER_FIELDS
            ],
        ),
        kind="TABLE",
        exists=True,
    )


def _exp():
    from sqlglot import exp

    return exp


def _pushed():
    exp = _exp()
    return exp.Table(this=exp.to_identifier(PUSHED, quoted=True), alias=exp.TableAlias(this="p"))


def _print(tree, dialect: str) -> str:
    from fsdsl.compile import dialects

    return tree.sql(dialect=dialects.get(dialect).sqlglot_dialect, identify=True)


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
