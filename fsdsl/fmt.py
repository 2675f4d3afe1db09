"""The canonical layout of `.feat` files (`fsc fmt`).

Everything is printed from the syntax tree, so the output never depends on how the input was
laid out and two people's edits of one file differ only where they changed something. The
parser drops comments, so a second lark pass recovers them, together with where every block and
statement was written, and hangs each comment on the statement it sits beside or above.

A formatter that silently changes meaning is worse than none: every result is parsed again and
compared with the input (declarations, expressions, comments) before it is handed out. When
that check fails, or the input does not parse, no text is returned, only diagnostics.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from lark import Lark, Token, Tree

from fsdsl.diagnostics import Diagnostic, Span, UsageError
from fsdsl.project import feat_files, gc_paused
from fsdsl.syntax import ast
from fsdsl.syntax.parser import (
    grammar_text,
    module_from_tree,
    parse_text,
    read_source,
    skip_unit_reductions,
)

__all__ = ["FormatResult", "format_file", "format_paths", "format_text", "unified_diff"]

INDENT = "  "

# Canonical statement order inside each kind of block; features of a view follow in written order.
_ENTITY_ORDER = ("key", "description")
_SOURCE_ORDER = ("table", "timestamp", "created", "stream", "description", "owner", "columns")
_VIEW_ORDER = ("entity", "from", "where", "ttl", "owner", "description")
_SERVICE_ORDER = ("key", "description", "owner", "full_feature_names", "features")
_LINK_ORDER = ("from", "map", "ttl", "owner", "description")

# lark rule names of statements whose keyword differs from the rule name.
_STMT_KEYS = {
    "keys": "key",
    "view_entity": "entity",
    "view_from": "from",
    "service_features": "features",
    "service_key": "key",
    "link_map": "map",
    "column_decl": "column",
}
_BLOCK_TYPES = {
    "entity": ast.Entity,
    "source": ast.Source,
    "view": ast.View,
    "service": ast.Service,
    "link": ast.Link,
}

_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?")

# Binding strength of each expression form, loosest first, as in the grammar's `?expr` chain:
# or < and < not < comparison/is/in/between < + - < * / % < unary < atom.
_OR, _AND, _NOT, _PREDICATE, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)
_BINARY_LEVEL = {
    "or": _OR,
    "and": _AND,
    "=": _PREDICATE,
    "!=": _PREDICATE,
    "<>": _PREDICATE,
    "<": _PREDICATE,
    "<=": _PREDICATE,
    ">": _PREDICATE,
    ">=": _PREDICATE,
    "+": _SUM,
    "-": _SUM,
    "*": _PRODUCT,
    "/": _PRODUCT,
    "%": _PRODUCT,
}
# (left, right) operand levels each binary level accepts without parentheses: `or`, `and`, `+`
# and `*` are left-associative, comparisons take sums on both sides and do not chain.
_OPERAND_LEVELS = {
    _OR: (_OR, _AND),
    _AND: (_AND, _NOT),
    _PREDICATE: (_SUM, _SUM),
    _SUM: (_SUM, _PRODUCT),
    _PRODUCT: (_PRODUCT, _UNARY),
}


# ---- public API -------------------------------------------------------------------------------
def format_text(text: str, file: str = "<string>") -> tuple[str | None, list[Diagnostic]]:
    """The canonical form of one file, or None and the reasons it cannot be formatted.

    A file the parser reports errors for (including a statement written twice, which the syntax
    tree keeps only once) is refused rather than formatted, so no text is ever dropped.
    """
    # One lark pass gives both the syntax tree and the layout (comments, where each statement
    # was written); a file it cannot parse goes through the parser again for the diagnostics.
    try:
        layout: tuple[Tree, list[_Comment]] | None = _layout_parse(text)
    except Exception:
        layout = None
    try:
        if layout is None:
            module, diags = parse_text(text, file)
        else:
            module, diags = module_from_tree(layout[0], text, file)
    except Exception as e:  # e.g. RecursionError on absurdly deep nesting
        return None, [_internal(file, f"could not read this file: {e!r}")]
    if module is None or any(d.is_error for d in diags):
        return None, diags
    try:
        out, emitted, written = _format_module(module, layout)
        problem = _verify(module, out, emitted, written, file)
    except Exception as e:  # a formatter bug must come out as a diagnostic
        return None, [*diags, _internal(file, f"the formatter failed: {e!r}")]
    if problem is not None:
        return None, [*diags, _internal(file, problem)]
    return out, diags


@dataclass(frozen=True)
class FormatResult:
    """What formatting did to one file. `original` is the text read (None when it could not
    be read: the diagnostic says why); `text` the canonical text (None when `broken`)."""

    path: Path
    status: Literal["unchanged", "changed", "broken"]
    original: str | None = None
    text: str | None = None
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def diff(self) -> str:
        """The change as `fsc fmt --check` prints it; empty when there is none."""
        if self.status != "changed" or self.original is None or self.text is None:
            return ""
        return unified_diff(self.original, self.text, str(self.path))


def format_file(path: str | Path, *, write: bool = True) -> FormatResult:
    """Format one `.feat` file, rewriting it in place when it changes and `write` is set. A
    file that cannot be read or formatted is left as it is and reported `broken`."""
    path = Path(path)
    original, unreadable = read_source(path)
    if unreadable is not None or original is None:
        return FormatResult(path, "broken", diagnostics=(unreadable,) if unreadable else ())
    new, diags = format_text(original, str(path))
    if new is None:
        return FormatResult(path, "broken", original, None, tuple(diags))
    if new == original:
        return FormatResult(path, "unchanged", original, new, tuple(diags))
    if write:
        path.write_text(new, encoding="utf-8")
    return FormatResult(path, "changed", original, new, tuple(diags))


def format_paths(paths: Iterable[str | Path], *, check: bool = False) -> Iterator[FormatResult]:
    """Format every `.feat` file under `paths` (files or folders, walked as the loader walks
    them), or with `check` only report what would change. Lazy, one file at a time, so a
    caller shows each result as it comes; a path that does not exist raises `UsageError`
    when the walk reaches it, after the files before it are done."""
    for root in map(Path, paths):
        if not root.exists():
            raise UsageError(f"no such file or folder: {root}", "E0001")
        for f in feat_files(root):
            with gc_paused():  # not across the yield: the caller's code runs there
                result = format_file(f, write=not check)
            yield result


def unified_diff(old: str, new: str, path: str) -> str:
    """What `--check` shows: the change formatting would make, empty when there is none."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{path}\t(original)",
        tofile=f"{path}\t(formatted)",
    )
    # difflib glues a line without a final newline to the next one; say so the way git does.
    return "".join(
        ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines
    )


def _internal(file: str, message: str) -> Diagnostic:
    return Diagnostic(
        "E0199",
        message,
        Span(file, 1, 1, 1, 2),
        hints=("the file was left unchanged; please report this",),
    )


# ---- self-check -------------------------------------------------------------------------------
_POSITION_FIELDS = frozenset({"span", "name_span", "part_span"})


def _shape(node: object) -> list[object]:
    """A syntax tree without positions (two layouts of one file have the same shape), flat in
    prefix order with each node's arity, so unambiguous; built and compared without recursion,
    as trees may be as deep as the parser allows."""
    out: list[object] = []
    todo: list[object] = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, ast.Module):
            todo.append((item.entities, item.sources, item.views, item.services, item.links))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            fields = [
                getattr(item, f.name)
                for f in dataclasses.fields(item)
                if f.name not in _POSITION_FIELDS
            ]
            out.append(("node", type(item).__name__, len(fields)))
            todo.extend(reversed(fields))
        elif isinstance(item, tuple):
            out.append(("tuple", len(item)))
            todo.extend(reversed(item))
        else:
            out.append(("value", type(item).__name__, item))
    return out


def _verify(
    before: ast.Module, out: str, emitted: list[str], written: list[str], file: str
) -> str | None:
    """Why `out` is not a faithful re-layout of `before`, or None when it is."""
    if out == before.text:  # the text `before` was parsed from: nothing to compare
        return None
    after, diags = parse_text(out, file)
    if after is None or any(d.is_error for d in diags):
        first = diags[0] if diags else None
        where = f" (line {first.span.line}: {first.message})" if first else ""
        return f"the formatted text would not parse{where}"
    if _shape(after) != _shape(before):
        return "the formatted text would mean something else"
    if sorted(emitted) != sorted(written):
        return "the formatted text would lose a comment"
    return None


# ---- layout: where blocks, statements and comments were written ---------------------------------
_COMMENTS: ContextVar[list[Token] | None] = ContextVar("fsdsl_fmt_comments", default=None)


def _collect_comment(tok: Token) -> Token:
    sink = _COMMENTS.get()
    if sink is not None:
        sink.append(tok)
    return tok


@lru_cache(maxsize=1)
def _layout_parser() -> Lark:
    # The same grammar as the parser, so comments are found exactly where its lexer skips them
    # (a `#` inside a string is part of the string).
    return skip_unit_reductions(
        Lark(
            grammar_text(),
            parser="lalr",
            propagate_positions=True,
            maybe_placeholders=True,
            lexer_callbacks={"COMMENT": _collect_comment},
            cache=True,  # as the parser's; lark keys it by grammar and options, callbacks aside
        )
    )


@dataclass
class _Comment:
    text: str
    pos: int
    line: int
    blank_before: bool  # an empty line separates it from what is above


@dataclass
class _Node:
    """A block, statement or column as written: its extent and the comments hung on it."""

    key: str
    start: int
    end: int
    line: int
    end_line: int
    blank_before: bool
    brace: int | None = None  # offset of `{` for blocks and `columns`
    brace_line: int = 0
    children: list[_Node] = field(default_factory=list)
    leading: list[_Comment] = field(default_factory=list)  # above it, or inside it
    trailing: list[_Comment] = field(default_factory=list)  # after it on its last line
    header: list[_Comment] = field(default_factory=list)  # after its `{`
    footer: list[_Comment] = field(default_factory=list)  # before its `}`


class _Lines:
    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def line_of(self, pos: int) -> int:
        return bisect_right(self.starts, pos)

    def blank_before(self, line: int) -> bool:
        return line >= 2 and not self.lines[line - 2].strip()

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col - 1

    def find_brace(self, pos: int) -> int:
        """The `{` opening a block: only blanks and comments can stand between it and `pos`."""
        text = self.text
        while pos < len(text):
            ch = text[pos]
            if ch == "{":
                return pos
            if ch == "#":
                nl = text.find("\n", pos)
                pos = len(text) if nl < 0 else nl
            elif ch.isspace():
                pos += 1
            else:
                break
        raise ValueError(f"no `{{` where a block opens at offset {pos}")


def _layout_parse(text: str) -> tuple[Tree, list[_Comment]]:
    sink: list[Token] = []
    reset = _COMMENTS.set(sink)
    try:
        tree = _layout_parser().parse(text)
    finally:
        _COMMENTS.reset(reset)
    lines = _Lines(text)
    seen: set[int] = set()
    comments = []
    for tok in sorted(sink, key=lambda t: t.start_pos):
        if tok.start_pos in seen:
            continue
        seen.add(tok.start_pos)
        line = tok.line or lines.line_of(tok.start_pos)
        comments.append(_Comment(str(tok).rstrip(), tok.start_pos, line, lines.blank_before(line)))
    return tree, comments


def _layout(
    text: str, parsed: tuple[Tree, list[_Comment]] | None = None
) -> tuple[_Node, list[_Comment]]:
    """`parsed`: what `_layout_parse(text)` returned, when the caller has it already."""
    tree, comments = parsed if parsed is not None else _layout_parse(text)
    lines = _Lines(text)

    def node(t: Tree, key: str) -> _Node:
        m = t.meta
        return _Node(key, m.start_pos, m.end_pos, m.line, m.end_line, lines.blank_before(m.line))

    root = _Node("file", -1, len(text) + 1, 0, 0, False)
    for block in tree.children:
        bn = node(block, block.data)
        bn.brace = lines.find_brace(block.children[0].end_pos)
        bn.brace_line = lines.line_of(bn.brace)
        for stmt in block.children[1:]:
            sn = node(stmt, _STMT_KEYS.get(stmt.data, stmt.data))
            if stmt.data == "columns":
                sn.brace = lines.find_brace(stmt.meta.start_pos + len("columns"))
                sn.brace_line = lines.line_of(sn.brace)
                sn.children = [node(c, "column") for c in stmt.children]
            bn.children.append(sn)
        root.children.append(bn)
    for c in comments:
        _place(root, c)
    return root, comments


def _place(container: _Node, c: _Comment) -> None:
    """Hang a comment on the node it belongs to.

    Beside a statement it trails that statement; on a line of its own it leads the next one (or,
    with nothing after it, ends the block); inside a statement, where the canonical one-line
    form has no room for it, it moves above the statement.
    """
    for child in container.children:
        if child.start < c.pos < child.end:
            if child.brace is not None and c.pos > child.brace:
                _place(child, c)
            else:
                child.leading.append(c)
            return
    before = [ch for ch in container.children if ch.end <= c.pos]
    if before and before[-1].end_line == c.line:
        before[-1].trailing.append(c)
    elif container.brace is not None and c.line == container.brace_line:
        container.header.append(c)
    else:
        nxt = next((ch for ch in container.children if ch.start > c.pos), None)
        (nxt.leading if nxt is not None else container.footer).append(c)


# ---- output -----------------------------------------------------------------------------------
class _Writer:
    """Lines plus blank-line requests; a blank never opens a block, closes one or starts a file."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.comments: list[str] = []
        self._pending = False
        self._after_open = True

    def blank(self) -> None:
        self._pending = True

    def line(self, text: str, opens: bool = False) -> None:
        if self._pending and not self._after_open:
            self.lines.append("")
        self._pending = False
        self._after_open = opens
        self.lines.append(text)

    def close(self, text: str) -> None:
        self._pending = False
        self.line(text)

    def comment(self, indent: str, c: _Comment) -> None:
        self.comments.append(c.text)
        self.line(indent + c.text)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n" if self.lines else ""


def _with(text: str, trailing: _Comment | None, w: _Writer) -> str:
    if trailing is None:
        return text
    w.comments.append(trailing.text)
    return f"{text}  {trailing.text}"


class _Printer:
    def __init__(self, module: ast.Module, parsed: tuple[Tree, list[_Comment]] | None = None):
        self.module = module
        self.parsed = parsed  # the layout parse of module.text, if already done
        self.lines = _Lines(module.text)
        self.w = _Writer()
        self.written: list[str] = []  # every comment of the input

    # ---- comments around one printed line ----
    def above(
        self, indent: str, nodes: Sequence[_Node], blank: bool | None
    ) -> tuple[_Comment | None, _Comment | None]:
        """Print what goes above a line; return the comments for its end and after its `{`.

        `blank` says whether an empty line goes before the group: always, never, or (None) where
        the user had one. Inside the group the user's empty lines are kept.
        """
        node = nodes[0]
        leading = sorted((c for n in nodes for c in n.leading), key=lambda c: c.pos)
        trailing = sorted((c for n in nodes for c in n.trailing), key=lambda c: c.pos)
        header = sorted((c for n in nodes for c in n.header), key=lambda c: c.pos)
        # One line holds one trailing comment; any more (from merged statements) go above it.
        pre = [c for c in leading if c.pos < node.start]
        inner = sorted(
            [c for c in leading if c.pos >= node.start] + trailing[:-1] + header[:-1],
            key=lambda c: c.pos,
        )
        first = True

        def gap(user: bool) -> None:
            nonlocal first
            want = (user if blank is None else blank) if first else user
            first = False
            if want:
                self.w.blank()

        for c in pre:
            gap(c.blank_before)
            self.w.comment(indent, c)
        gap(node.blank_before)
        for c in inner:  # written inside the statement: no empty lines of their own
            self.w.comment(indent, c)
        return (trailing[-1] if trailing else None), (header[-1] if header else None)

    def footer(self, indent: str, comments: Iterable[_Comment]) -> None:
        for c in comments:
            if c.blank_before:
                self.w.blank()
            self.w.comment(indent, c)

    def stmt(self, indent: str, text: str, nodes: Sequence[_Node], blank: bool | None) -> None:
        if not nodes:  # not in the layout: cannot happen for a tree parsed from the same text
            raise ValueError(f"no layout for `{text}`")
        trailing, _ = self.above(indent, nodes, blank)
        self.w.line(_with(indent + text, trailing, self.w))

    def open(self, indent: str, text: str, node: _Node, blank: bool | None) -> None:
        trailing, header = self.above(indent, [node], blank)
        if trailing is not None:  # belongs after the `}`: keep it for close()
            node.trailing = [trailing]
        self.w.line(_with(f"{indent}{text} {{", header, self.w), opens=True)

    def close(self, indent: str, node: _Node) -> None:
        self.footer(indent + INDENT, node.footer)
        trailing = node.trailing[-1] if node.trailing else None
        self.w.close(_with(indent + "}", trailing, self.w))

    # ---- blocks ----
    def print(self) -> str:
        m = self.module
        blocks = sorted(
            (*m.entities, *m.sources, *m.views, *m.services, *m.links),
            key=lambda b: (b.span.line, b.span.col),
        )
        root, comments = _layout(m.text, self.parsed)
        self.written = [c.text for c in comments]
        if len(blocks) != len(root.children):
            raise ValueError("the layout and the syntax tree disagree on the blocks")
        for block, node in zip(blocks, root.children, strict=True):
            if not isinstance(block, _BLOCK_TYPES[node.key]):
                raise ValueError(f"expected a {node.key} block at line {node.line}")
            keyword = "features" if node.key == "view" else node.key
            self.open("", f"{keyword} {block.name.name}", node, True)
            getattr(self, "b_" + node.key)(block, node)
            self.close("", node)
        self.footer("", root.footer)
        return self.w.text()

    def simple(self, node: _Node, order: Sequence[str], texts: dict[str, str | None]) -> None:
        for key in order:
            text = texts.get(key)
            if text is not None:
                self.stmt(INDENT, text, [n for n in node.children if n.key == key], False)

    def b_entity(self, e: ast.Entity, node: _Node) -> None:
        keys = ", ".join(f"{k.name.name}: {_type(k.type)}" for k in e.keys)
        self.simple(
            node,
            _ENTITY_ORDER,
            {
                "key": f"key {keys}" if e.keys else None,
                "description": _text("description", e.description),
            },
        )

    def b_source(self, s: ast.Source, node: _Node) -> None:
        self.simple(
            node,
            _SOURCE_ORDER[:-1],
            {
                "table": _text("table", s.table),
                "timestamp": f"timestamp {s.timestamp.name}" if s.timestamp else None,
                "created": f"created {s.created.name}" if s.created else None,
                "stream": _text("stream", s.stream),
                "description": _text("description", s.description),
                "owner": _text("owner", s.owner),
            },
        )
        layout = next((n for n in node.children if n.key == "columns"), None)
        if layout is None:
            if s.columns:
                raise ValueError("columns without a layout")
            return
        if len(layout.children) != len(s.columns):
            raise ValueError("the layout and the syntax tree disagree on the columns")
        inner = INDENT * 2
        self.open(INDENT, "columns", layout, False)
        for col, cnode in zip(s.columns, layout.children, strict=True):
            self.stmt(inner, f"{col.name.name}: {_type(col.type)}", [cnode], None)
        self.close(INDENT, layout)

    def b_view(self, v: ast.View, node: _Node) -> None:
        entity = None
        if v.entity is not None:
            by = ", ".join(i.name for i in v.entity_by)
            entity = f"entity {v.entity.name}" + (f" by {by}" if by else "")
        self.simple(
            node,
            _VIEW_ORDER,
            {
                "entity": entity,
                "from": f"from {v.source.name}" if v.source else None,
                "where": f"where {self.expr(v.where)}" if v.where is not None else None,
                "ttl": f"ttl {v.ttl.text}" if v.ttl else None,
                "owner": _text("owner", v.owner),
                "description": _text("description", v.description),
            },
        )
        layouts = [n for n in node.children if n.key == "feature"]
        if len(layouts) != len(v.features):
            raise ValueError("the layout and the syntax tree disagree on the features")
        for i, (f, fnode) in enumerate(zip(v.features, layouts, strict=True)):
            text = f.name.name
            if f.type is not None:
                text += f": {_type(f.type)}"
            text += f" = {self.expr(f.expr)}"
            if f.window is not None:
                text += f" over {f.window.text}"
            # The features are set off from the view's settings; between them the user decides.
            self.stmt(INDENT, text, [fnode], True if i == 0 else None)

    def b_service(self, s: ast.Service, node: _Node) -> None:
        refs = ", ".join(
            f"{r.view.name}.{r.feature.name if r.feature else '*'}"
            + "".join(f" via {v.name}" for v in r.via)
            for r in s.refs
        )
        self.simple(
            node,
            _SERVICE_ORDER,
            {
                "key": f"key {s.key.name}" if s.key else None,
                "full_feature_names": "full_feature_names" if s.full_names else None,
                "description": _text("description", s.description),
                "owner": _text("owner", s.owner),
                "features": f"features {refs}" if s.refs else None,
            },
        )

    def b_link(self, a: ast.Link, node: _Node) -> None:
        def end(e: ast.LinkEnd) -> str:
            by = ", ".join(i.name for i in e.by)
            return e.entity.name + (f" by {by}" if by else "")

        self.simple(
            node,
            _LINK_ORDER,
            {
                "from": f"from {a.source.name}" if a.source else None,
                "map": f"{end(a.from_end)} -> {end(a.to_end)}" if a.from_end else None,
                "ttl": f"ttl {a.ttl.text}" if a.ttl else None,
                "owner": _text("owner", a.owner),
                "description": _text("description", a.description),
            },
        )

    # ---- expressions ----
    def expr(self, e: ast.Expr) -> str:
        """The text of `e`, with an explicit stack instead of recursion: the parser accepts
        any nesting depth, and whatever it accepts must print."""
        pieces: list[str | _Sign] = []
        todo: list[str | _Sign | ast.Expr] = [e]
        while todo:
            item = todo.pop()
            if isinstance(item, str | _Sign):
                pieces.append(item)
            else:
                todo.extend(reversed(getattr(self, "e_" + type(item).__name__.lower())(item)))
        return _join(pieces)

    def e_literal(self, e: ast.Literal) -> _Parts:
        if e.kind == "string":
            return [_single_quoted(str(e.value))]
        if e.kind == "bool":
            return ["true" if e.value else "false"]
        if e.kind == "null":
            return ["null"]
        return [self.number(e)]

    def number(self, e: ast.Literal) -> str:
        """The number as written (`1.50`, `1e3`), which the tree keeps only as a value."""
        s = e.span
        try:
            written = self.lines.text[
                self.lines.offset(s.line, s.col) : self.lines.offset(s.end_line, s.end_col)
            ]
        except IndexError:
            written = ""
        if _NUMBER.fullmatch(written):
            parsed = float(written) if e.kind == "float" else int(written)
            if parsed == e.value:
                return written
        return repr(e.value)

    def e_name(self, e: ast.Name) -> _Parts:
        return [e.name]

    def e_call(self, e: ast.Call) -> _Parts:
        if e.star:
            return [f"{e.name.lower()}(*)"]
        return [f"{e.name.lower()}(", *_listed(e.args), ")"]

    def e_unary(self, e: ast.Unary) -> _Parts:
        if e.op == "not":
            return ["not ", *_operand(e.operand, _NOT)]
        return [_Sign(e.op), *_operand(e.operand, _UNARY)]

    def e_binary(self, e: ast.Binary) -> _Parts:
        # A long `a + b + c ...` or `x or y or ...` is a left-deep tree: its spine is one item.
        level = _level(e)
        left_level, right_level = _OPERAND_LEVELS[level]
        tail: list[_Parts] = []
        node: ast.Expr = e
        while (
            isinstance(node, ast.Binary)
            and _level(node) == level
            and (level != _PREDICATE or node is e)
        ):
            tail.append([f" {node.op.lower()} ", *_operand(node.right, right_level)])
            node = node.left
        return [*_operand(node, left_level), *(p for part in reversed(tail) for p in part)]

    def e_isnull(self, e: ast.IsNull) -> _Parts:
        return [*_operand(e.operand, _SUM), f" is {'not ' if e.negated else ''}null"]

    def e_inlist(self, e: ast.InList) -> _Parts:
        return [
            *_operand(e.operand, _SUM),
            f" {'not ' if e.negated else ''}in (",
            *_listed(e.items),
            ")",
        ]

    def e_between(self, e: ast.Between) -> _Parts:
        return [
            *_operand(e.operand, _SUM),
            f" {'not ' if e.negated else ''}between ",
            *_operand(e.low, _SUM),
            " and ",
            *_operand(e.high, _SUM),
        ]

    def e_case(self, e: ast.Case) -> _Parts:
        parts: _Parts = ["case"]
        for cond, result in e.whens:
            parts += [" when ", cond, " then ", result]
        if e.default is not None:
            parts += [" else ", e.default]
        return [*parts, " end"]

    def e_cast(self, e: ast.Cast) -> _Parts:
        return ["cast(", e.operand, f" as {_type(e.to)})"]

    def e_extract(self, e: ast.Extract) -> _Parts:
        return [f"extract({e.part.lower()} from ", e.operand, ")"]


@dataclass(frozen=True)
class _Sign:
    """A unary `-` or `+`: `- -x`, not `--x` (easier to read, and never mistaken for a SQL
    comment), which is known only once what follows it is printed."""

    op: str


_Parts = list["str | _Sign | ast.Expr"]


def _operand(e: ast.Expr, level: int) -> _Parts:
    """`e` as an operand that must bind at least as tightly as `level`."""
    return ["(", e, ")"] if _level(e) < level else [e]


def _listed(items: Sequence[ast.Expr]) -> _Parts:
    out: _Parts = []
    for i, item in enumerate(items):
        out += [", ", item] if i else [item]
    return out


def _join(pieces: list[str | _Sign]) -> str:
    """The printed text; each sign is spaced by the first character printed after it."""
    out: list[str] = []
    following = ""  # the first character printed after the current piece
    for piece in reversed(pieces):
        if isinstance(piece, _Sign):
            text = f"{piece.op} " if following in ("+", "-") else piece.op
        else:
            text = piece
        out.append(text)
        following = text[:1] or following
    return "".join(reversed(out))


def _format_module(
    module: ast.Module, parsed: tuple[Tree, list[_Comment]] | None = None
) -> tuple[str, list[str], list[str]]:
    """The text, the comments it carries and the comments the input had."""
    printer = _Printer(module, parsed)
    out = printer.print()
    return out, printer.w.comments, printer.written


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.Binary):
        return _BINARY_LEVEL[e.op.lower()]
    if isinstance(e, ast.Unary):
        return _NOT if e.op == "not" else _UNARY
    if isinstance(e, ast.IsNull | ast.InList | ast.Between):
        return _PREDICATE
    return _ATOM


def _type(t: ast.TypeRef) -> str:
    names: list[str] = []
    node: ast.TypeRef | None = t
    while node is not None:  # `list<list<...>>` may nest as deep as the parser allows
        names.append(node.name)
        node = node.element
    return "<".join(names) + ">" * (len(names) - 1)


def _text(keyword: str, value: ast.Text | None) -> str | None:
    return None if value is None else f"{keyword} {_double_quoted(value.value)}"


def _double_quoted(s: str) -> str:
    body = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def _single_quoted(s: str) -> str:
    """A SQL-style literal: `''` for a quote, backslash escapes as the parser reads them."""
    body = s.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n").replace("\t", "\\t")
    return f"'{body}'"
