"""IR -> sqlglot trees. Training and refresh queries share every piece of point-in-time logic.

The re-exports below are imported on first use: `fsdsl.compile.plan` and `fsdsl.compile.state`
(the stored state's layout) need no sqlglot, and a run with a cached query imports none."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fsdsl.compile.dialects import DIALECTS
    from fsdsl.compile.refresh import refresh_query
    from fsdsl.compile.training import training_query

__all__ = ["DIALECTS", "refresh_query", "training_query"]

_HOME = {"DIALECTS": "dialects", "refresh_query": "refresh", "training_query": "training"}


def __getattr__(name: str):
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"fsdsl.compile.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
