"""Diagnostics: every error a user can cause is one of these, located in a file.

Rendering lives here too so that the CLI, lint and the compiler all print the same
`file:line:col: CODE message` line, with the source line and a caret under the span.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based, `end_col` exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def unknown(file: str = "<unknown>") -> Span:
        return Span(file, 1, 1, 1, 1)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Note:
    """A second place a diagnostic is about (the feature a duplicate repeats): printed with its
    own `file:line:col`, so an editor or CI annotation can jump to it."""

    message: str
    span: Span

    def to_dict(self) -> dict:
        s = self.span
        return {
            "message": self.message,
            "file": s.file,
            "line": s.line,
            "col": s.col,
            "end_line": s.end_line,
            "end_col": s.end_col,
        }


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    severity: Severity = Severity.ERROR
    hints: tuple[str, ...] = field(default=())
    notes: tuple[Note, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "col": self.span.col,
            "end_line": self.span.end_line,
            "end_col": self.span.end_col,
            "hints": list(self.hints),
            "notes": [n.to_dict() for n in self.notes],
        }


class FeatError(Exception):
    """Raised when a stage cannot go on; carries every diagnostic found so far."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__(self.diagnostics[0].message if self.diagnostics else "error")


class UsageError(Exception):
    """A bad flag, file, input table or connection. Exit code 2, one line.

    `where` locates it when there is a place to point at: a span in a `.feat` file (e.g. the
    `table` line of a source missing from the warehouse) or the path of an input file.
    """

    def __init__(self, message: str, code: str = "E0001", where: Span | str | None = None):
        self.code = code
        self.where = where
        super().__init__(message)

    def one_line(self) -> str:
        if isinstance(self.where, Span):
            s = self.where
            return f"{s.file}:{s.line}:{s.col}: error[{self.code}]: {self}"
        if self.where:
            return f"{self.where}: error[{self.code}]: {self}"
        return f"error[{self.code}]: {self}"


def _source_line(span: Span, sources: dict[str, str] | None) -> str | None:
    text = (sources or {}).get(span.file)
    if text is None:
        try:
            text = Path(span.file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    lines = text.split("\n")  # the parser counts only \n as a line break
    if 1 <= span.line <= len(lines):
        # never echo control characters (binary input) to a terminal
        return "".join(c if c.isprintable() else "?" for c in lines[span.line - 1])
    return None


def render_text(diag: Diagnostic, sources: dict[str, str] | None = None) -> str:
    """`file:line:col: CODE message`, then the source line with a caret under the span; each
    note the same way under its own `file:line:col`, then the hints."""
    s = diag.span
    head = f"{s.file}:{s.line}:{s.col}: {diag.code} {diag.message}"
    if diag.severity is Severity.WARNING:
        head = f"{s.file}:{s.line}:{s.col}: {diag.code} warning: {diag.message}"
    out = [head, *_excerpt(s, sources)]
    for note in diag.notes:
        n = note.span
        out.append(f"{n.file}:{n.line}:{n.col}: note: {note.message}")
        out.extend(_excerpt(n, sources))
    for hint in diag.hints:
        out.append(f"  = help: {hint}")
    return "\n".join(out)


def _excerpt(s: Span, sources: dict[str, str] | None) -> list[str]:
    """The source line of `s` with a caret under it (nothing when the file cannot be read)."""
    out: list[str] = []
    line = _source_line(s, sources)
    if line is not None:
        line = line.replace("\t", " ")
        width = s.end_col - s.col if s.end_line == s.line and s.end_col > s.col else 1
        width = max(1, min(width, max(1, len(line) - s.col + 1)))
        gutter = str(s.line)
        pad = " " * len(gutter)
        out.append(f"{pad} |")
        out.append(f"{gutter} | {line}")
        out.append(f"{pad} | {' ' * (s.col - 1)}{'^' * width}")
    return out


def render_github(diag: Diagnostic) -> str:
    s = diag.span
    kind = "error" if diag.is_error else "warning"
    # an annotation has one location: a note's goes into the message
    notes = "".join(f" ({n.message}, at {n.span.file}:{n.span.line})" for n in diag.notes)
    msg = (diag.message + notes).replace("%", "%25").replace("\n", "%0A")
    return (
        f"::{kind} file={s.file},line={s.line},col={s.col},endLine={s.end_line},"
        f"endColumn={s.end_col},title={diag.code}::{msg}"
    )


def render_json(diags: list[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diags], indent=2)
