"""Argument coercion for fsc's own process without pydantic.

typer 0.29 converts every parameter's text through a pydantic `TypeAdapter` that it builds when
the command runs: importing pydantic and building the adapters of `fsc run` costs 0.1-0.15 s, a
sixth of a refresh with no new data. fsc's parameters are texts, paths, numbers, flags and
`StrEnum` choices, whose conversion needs none of it. `plain_coercion` gives each such
parameter a coercion that returns what typer's adapter returns for a valid
value; anything else — another annotation, a constraint (`min`, `exists`, a parser...), a
value it does not recognise or an invalid one — is handed to typer's own coercion, so every
error message stays typer's.

It relies on typer internals (`_TyperParameter.get_runtime_param`, `_runtime_param` and
`type_descriptor`, typer's own lazy cache of that coercion): when they are not there (another
typer), typer's coercion is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin


def plain_coercion() -> None:
    """For the rest of this process (fsc's own: `cli.main`), build each typer parameter's
    coercion here first: every parameter of every command, and the help options typer adds
    while parsing."""
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer.core import _TyperParameter
    except ImportError:  # another typer: keep its own coercion
        return
    typers = _TyperParameter.get_runtime_param
    if getattr(typers, "plain", False):
        return

    @dataclass(frozen=True)
    class Plain(RuntimeParam):
        leaf: Any
        many: bool
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                if self.many:
                    if isinstance(value, list | tuple):
                        return [_leaf(self.leaf, v, self.parameter_info, param, ctx) for v in value]
                else:
                    return _leaf(self.leaf, value, self.parameter_info, param, ctx)
            except _Unhandled:
                pass
            # typer's own coercion: the same result, or its error
            return build_runtime_param(self.descriptor)._coerce_value(value, param, ctx)

    def get_runtime_param(self: Any) -> Any:
        desc = getattr(self, "type_descriptor", None)
        if getattr(self, "_runtime_param", False) is None and desc is not None:
            leaf, many = desc.annotation, False
            if get_origin(leaf) is list and len(get_args(leaf)) == 1:
                leaf, many = get_args(leaf)[0], True
            if desc.file_annotation is None and _plain(leaf, desc.parameter_info):
                self._runtime_param = Plain(
                    parameter_info=desc.parameter_info,
                    annotation=desc.annotation,
                    leaf=leaf,
                    many=many,
                    descriptor=desc,
                )
        return typers(self)

    get_runtime_param.plain = True
    _TyperParameter.get_runtime_param = get_runtime_param


class _Unhandled(Exception):
    """A value the plain coercion leaves to typer."""


def _plain(annotation: Any, info: Any) -> bool:
    """Whether typer's adapter for `annotation` with these settings is a plain conversion."""
    if getattr(info, "parser", None) is not None:
        return False
    if annotation is str or annotation is bool:
        return True
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return True
    if annotation is int or annotation is float:
        return info.min is None and info.max is None and not info.clamp
    if annotation is Path:
        # the checks typer makes on a path with these flags are all made by `coerce_cli_path`
        return getattr(info, "path_type", None) in (None, Path)
    return False


def _leaf(annotation: Any, value: Any, info: Any, param: Any, ctx: Any) -> Any:
    if annotation is str:
        if isinstance(value, str):
            return value
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        from typer._param_types import coerce_cli_choice

        try:
            return coerce_cli_choice(
                value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx
            )
        except ValueError:
            raise _Unhandled from None
    elif annotation is int:
        if type(value) is int:
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
    elif annotation is float:
        if type(value) is float:
            return value
    elif annotation is Path:
        from typer._param_types import coerce_cli_path

        if isinstance(value, Path) or (isinstance(value, str) and value):
            # what pydantic's Path validation gives a text; `coerce_cli_path` then makes
            # typer's checks (exists, file/dir, permissions, resolve) with its own messages
            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    raise _Unhandled
