"""The warehouse interface and the URL -> backend registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import pyarrow as pa
from sqlglot import exp

from fsdsl.compile import dialects
from fsdsl.compile.render import parameters, sql_text
from fsdsl.diagnostics import UsageError


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

    def create_table(self, table: tuple[str, ...], data: pa.Table) -> None:
        """Create (or replace) a table holding `data`: demo data and tests on any backend."""
        raise UsageError(f"the {self.dialect} backend cannot create tables", "E0003")

    def query(self, tree: exp.Expression, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a tree; `params` binds its `exp.Placeholder` nodes by name, all of them and only
        them (a positional driver numbers them by name: an extra one would shift the rest)."""
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


def table_expression(parts: tuple[str, ...] | list[str]) -> exp.Table:
    """A table named by its parts (table, schema.table or catalog.schema.table), each an
    identifier: rendered with `identify=True` every part is quoted, whatever it holds."""
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
