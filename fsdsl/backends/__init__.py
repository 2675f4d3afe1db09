"""Warehouses: the one place where a sqlglot tree becomes a string and runs.

A backend implements `Warehouse`; `connect(url)` picks one by the URL's scheme.
"""

from __future__ import annotations

from fsdsl.backends.base import Warehouse, connect

__all__ = ["Warehouse", "connect"]
