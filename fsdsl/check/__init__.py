"""AST -> IR: name resolution, types and time semantics. Reports Diagnostics, never raises."""

from fsdsl.check.load import load_repository, load_text

__all__ = ["load_repository", "load_text"]
