"""Text -> AST. Nothing here knows about tables or SQL.

The parser (and lark) is imported on first use, not with the package: `fsdsl.syntax.ast` alone
(the formatter's and the checker's node classes) needs neither."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fsdsl.syntax.parser import parse_file, parse_text

__all__ = ["parse_file", "parse_text"]


def __getattr__(name: str):
    if name in __all__:
        from fsdsl.syntax import parser

        return getattr(parser, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
