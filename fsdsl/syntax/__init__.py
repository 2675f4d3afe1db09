"""Text -> AST. Nothing here knows about tables or SQL."""

from fsdsl.syntax.parser import parse_file, parse_text

__all__ = ["parse_file", "parse_text"]
