"""AST -> IR: name resolution, types and time semantics. Reports Diagnostics, never raises.

The loader is imported on first use, not with the package: `fsdsl.check.cache` reads a checked
model back without importing lark or the checker."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fsdsl.check.load import load_repository, load_text

__all__ = ["load_repository", "load_text"]


def __getattr__(name: str):
    if name in __all__:
        from fsdsl.check import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
