"""The warehouse interface and the URL -> backend registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import pyarrow as pa
from sqlglot import exp

from fsdsl.compile.render import sql_text
from fsdsl.diagnostics import UsageError


class Warehouse(ABC):
    """What the offline and online jobs need from a warehouse, and nothing more."""

    dialect: str = "duckdb"
    url: str = ""

    @abstractmethod
    def table_columns(self, table: tuple[str, ...]) -> dict[str, str] | None:
        """Column name -> warehouse type name, or None when the table does not exist."""

    @abstractmethod
    def register_arrow(self, name: str, data: pa.Table) -> None:
        """Make `data` queryable under `name` for this connection (labels, keys)."""

    @abstractmethod
    def execute_sql(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run one statement and return its result as Arrow."""

    def query(self, tree: exp.Expression, params: dict[str, Any] | None = None) -> pa.Table:
        return self.execute_sql(sql_text(tree, self.dialect, pretty=False), params)

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(url: str, settings: dict | None = None) -> Warehouse:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme == "duckdb":
        from fsdsl.backends.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(url, settings or {})
    raise UsageError(
        f"unknown warehouse URL scheme `{scheme or url}`; use duckdb:///path.duckdb", "E0003"
    )
