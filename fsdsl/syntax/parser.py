"""Text -> AST with lark. Every lark error becomes a located Diagnostic; nothing escapes."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError
from lark.visitors import Transformer_NonRecursive

from fsdsl.diagnostics import Diagnostic, FeatError, Span
from fsdsl.syntax import ast

# Names users see in "expected ..." hints instead of lark's terminal names.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "DURATION": "a duration such as 7d",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "DOT": "`.`",
    "STAR": "`*`",
    "LESSTHAN": "`<`",
    "MORETHAN": "`>`",
    "COMP_OP": "a comparison",
    "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*` or `/`",
    "$END": "end of file",
}


def grammar_text() -> str:
    # `fsdsl/grammar` links to the top-level `grammar/`, so the wheel carries the same file.
    return resources.files("fsdsl").joinpath("grammar/feat.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # cache=True: lark keeps the built LALR tables in the temp folder, keyed by the grammar's
    # hash, which saves most of the start-up of every `fsc` command.
    return skip_unit_reductions(
        Lark(
            grammar_text(),
            parser="lalr",
            propagate_positions=True,
            maybe_placeholders=True,
            cache=True,
        )
    )


def skip_unit_reductions(parser: Lark) -> Lark:
    """Make each `?a: b` reduction hand its child up untouched; returns `parser`.

    Every operand climbs the eight precedence levels of the grammar (`?expr: or_expr`, ...,
    `?unary: atom`), and lark runs its tree-building wrappers at each level: expand the single
    child, filter, propagate positions. For a rule whose one symbol is a (kept) rule, they hand
    back the child as it was, its positions already its own; yet they are a tenth of parsing a
    file. lark keeps the callbacks in an internal table: should a later lark move it, nothing
    is skipped and parsing is only slower.
    """
    try:
        callbacks = parser.parser.parser.parser.callbacks
    except AttributeError:
        return parser
    for rule in callbacks:
        (*rest, symbol) = rule.expansion or (None,)
        if (
            not rest
            and rule.options.expand1
            and not rule.alias
            and symbol is not None
            and not symbol.is_term
            and not symbol.name.startswith("_")
        ):
            callbacks[rule] = _only_child
    return parser


def _only_child(children: list):
    return children[0]


def _span(file: str, meta_or_token) -> Span:
    m = meta_or_token
    if isinstance(m, Token):
        return Span(
            file,
            m.line or 1,
            m.column or 1,
            m.end_line or m.line or 1,
            m.end_column or (m.column or 1) + 1,
        )
    if getattr(m, "empty", True):
        return Span.unknown(file)
    return Span(file, m.line, m.column, m.end_line, m.end_column)


def _unquote(tok: str) -> str:
    quote = tok[0]
    body = tok[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    if "\\" not in body:  # the common case: nothing escaped
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class _Build(Transformer_NonRecursive):
    """lark tree -> AST. Statements inside blocks come out as (keyword, value) pairs."""

    def __init__(self, file: str):
        super().__init__(visit_tokens=False)  # tokens are read by the rules that hold them
        self.file = file
        self.diagnostics: list[Diagnostic] = []

    def transform(self, tree: Tree):
        """lark's `Transformer_NonRecursive.transform`, the same post-order walk and the same
        `VisitError` around a failing callback, with each rule's callback looked up once per
        file: lark looks it up at every node, and a `v_args` method builds a new wrapper
        (functools.update_wrapper) at each lookup, a third of the time of the walk."""
        order, todo = [], [tree]
        while todo:
            t = todo.pop()
            order.append(t)
            if isinstance(t, Tree):
                todo += t.children
        calls: dict[str, object] = {}
        stack: list = []
        for x in reversed(order):
            if not isinstance(x, Tree):
                stack.append(x)
                continue
            n = len(x.children)
            args = stack[-n:] if n else []
            if n:
                del stack[-n:]
            call = calls.get(x.data) or calls.setdefault(x.data, self._callback(x.data))
            try:
                stack.append(call(x, args))
            except Exception as e:
                raise VisitError(x.data, x, e) from e
        (result,) = stack
        return result

    def _callback(self, data: str):
        f = getattr(self, data, None)
        if f is None:
            return lambda t, children: Tree(data, children, t.meta)
        wrapper = getattr(f, "visit_wrapper", None)
        if wrapper is not None:
            return lambda t, children: wrapper(f, data, children, t.meta)
        return lambda t, children: f(children)

    def sp(self, x) -> Span:
        return _span(self.file, x)

    def ident(self, tok: Token) -> ast.Ident:
        return ast.Ident(str(tok), self.sp(tok))

    # ---- types ----
    @v_args(meta=True)
    def scalar_type(self, meta, children):
        (name,) = children
        return ast.TypeRef(str(name).lower(), self.sp(meta))

    @v_args(meta=True)
    def list_type(self, meta, children):
        name, element = children
        return ast.TypeRef(str(name).lower(), self.sp(meta), element)

    # ---- expressions ----
    @v_args(meta=True)
    def number(self, meta, children):
        text = str(children[0])
        if any(c in text for c in ".eE"):
            return ast.Literal(self.sp(meta), float(text), "float")
        return ast.Literal(self.sp(meta), int(text), "int")

    @v_args(meta=True)
    def string(self, meta, children):
        return ast.Literal(self.sp(meta), _unquote(str(children[0])), "string")

    @v_args(meta=True)
    def true(self, meta, _):
        return ast.Literal(self.sp(meta), True, "bool")

    @v_args(meta=True)
    def false(self, meta, _):
        return ast.Literal(self.sp(meta), False, "bool")

    @v_args(meta=True)
    def null(self, meta, _):
        return ast.Literal(self.sp(meta), None, "null")

    @v_args(meta=True)
    def name(self, meta, children):
        return ast.Name(self.sp(meta), str(children[0]))

    @v_args(meta=True)
    def call_star(self, meta, children):
        name = children[0]
        return ast.Call(self.sp(meta), str(name).lower(), (), True, self.sp(name))

    @v_args(meta=True)
    def call(self, meta, children):
        name, *args = children
        args = tuple(a for a in args if a is not None)
        return ast.Call(self.sp(meta), str(name).lower(), args, False, self.sp(name))

    @v_args(meta=True)
    def cast(self, meta, children):
        return ast.Cast(self.sp(meta), children[0], children[1])

    @v_args(meta=True)
    def extract(self, meta, children):
        part, operand = children
        return ast.Extract(self.sp(meta), str(part).lower(), operand, self.sp(part))

    def when(self, children):
        return (children[0], children[1])

    @v_args(meta=True)
    def case(self, meta, children):
        *whens, default = children
        return ast.Case(self.sp(meta), tuple(whens), default)

    @v_args(meta=True)
    def or_(self, meta, children):
        return ast.Binary(self.sp(meta), "or", children[0], children[1])

    @v_args(meta=True)
    def and_(self, meta, children):
        return ast.Binary(self.sp(meta), "and", children[0], children[1])

    @v_args(meta=True)
    def not_(self, meta, children):
        return ast.Unary(self.sp(meta), "not", children[0])

    @v_args(meta=True)
    def negate(self, meta, children):
        op, operand = children
        return ast.Unary(self.sp(meta), str(op), operand)

    @v_args(meta=True)
    def binary(self, meta, children):
        left, op, right = children
        return ast.Binary(self.sp(meta), str(op), left, right)

    @v_args(meta=True)
    def compare(self, meta, children):
        left, op, right = children
        op = "!=" if str(op) == "<>" else str(op)
        return ast.Binary(self.sp(meta), op, left, right)

    @v_args(meta=True)
    def is_null(self, meta, children):
        return ast.IsNull(self.sp(meta), children[0], False)

    @v_args(meta=True)
    def is_not_null(self, meta, children):
        return ast.IsNull(self.sp(meta), children[0], True)

    @v_args(meta=True)
    def in_list(self, meta, children):
        return ast.InList(self.sp(meta), children[0], tuple(children[1:]), False)

    @v_args(meta=True)
    def not_in_list(self, meta, children):
        return ast.InList(self.sp(meta), children[0], tuple(children[1:]), True)

    @v_args(meta=True)
    def between(self, meta, children):
        return ast.Between(self.sp(meta), *children, False)

    @v_args(meta=True)
    def not_between(self, meta, children):
        return ast.Between(self.sp(meta), *children, True)

    # ---- statements: (keyword, value, span of the whole statement) ----
    @v_args(meta=True)
    def key_decl(self, meta, children):
        return ast.Column(self.ident(children[0]), children[1])

    column_decl = key_decl

    @v_args(meta=True)
    def keys(self, meta, children):
        return ("key", tuple(children), self.sp(meta))

    @v_args(meta=True)
    def columns(self, meta, children):
        return ("columns", tuple(children), self.sp(meta))

    def _text(self, kw, meta, children):
        tok = children[0]
        return (kw, ast.Text(_unquote(str(tok)), self.sp(tok)), self.sp(meta))

    @v_args(meta=True)
    def description(self, meta, children):
        return self._text("description", meta, children)

    @v_args(meta=True)
    def owner(self, meta, children):
        return self._text("owner", meta, children)

    @v_args(meta=True)
    def table(self, meta, children):
        return self._text("table", meta, children)

    @v_args(meta=True)
    def stream(self, meta, children):
        return self._text("stream", meta, children)

    @v_args(meta=True)
    def timestamp(self, meta, children):
        return ("timestamp", self.ident(children[0]), self.sp(meta))

    @v_args(meta=True)
    def created(self, meta, children):
        return ("created", self.ident(children[0]), self.sp(meta))

    @v_args(meta=True)
    def view_entity(self, meta, children):
        return (
            "entity",
            (self.ident(children[0]), tuple(self.ident(c) for c in children[1:])),
            self.sp(meta),
        )

    @v_args(meta=True)
    def view_from(self, meta, children):
        return ("from", self.ident(children[0]), self.sp(meta))

    @v_args(meta=True)
    def where(self, meta, children):
        return ("where", children[0], self.sp(meta))

    @v_args(meta=True)
    def ttl(self, meta, children):
        tok = children[0]
        return ("ttl", ast.Duration(str(tok), self.sp(tok)), self.sp(meta))

    @v_args(meta=True)
    def feature(self, meta, children):
        name, typ, expr, window = children
        dur = ast.Duration(str(window), self.sp(window)) if window is not None else None
        return (
            "feature",
            ast.Feature(self.ident(name), typ, expr, dur, self.sp(meta)),
            self.sp(meta),
        )

    @v_args(meta=True)
    def feature_ref(self, meta, children):
        view, feat, *via = children
        f = None if str(feat) == "*" else self.ident(feat)
        return ast.FeatureRef(self.ident(view), f, self.sp(meta), tuple(via))

    def via(self, children):
        return self.ident(children[0])

    @v_args(meta=True)
    def full_feature_names(self, meta, children):
        return ("full_feature_names", True, self.sp(meta))

    @v_args(meta=True)
    def service_key(self, meta, children):
        return ("key", self.ident(children[0]), self.sp(meta))

    def link_end(self, children):
        return ast.LinkEnd(self.ident(children[0]), tuple(self.ident(c) for c in children[1:]))

    @v_args(meta=True)
    def link_map(self, meta, children):
        return ("map", (children[0], children[1]), self.sp(meta))

    @v_args(meta=True)
    def service_features(self, meta, children):
        return ("features", tuple(children), self.sp(meta))

    # ---- blocks ----
    def _collect(self, kind: str, stmts, multi=("feature", "features")):
        seen: dict[str, object] = {}
        many: dict[str, list] = {m: [] for m in multi}
        for kw, value, span in stmts:
            if kw in many:
                many[kw].append(value)
            elif kw in seen:
                self.diagnostics.append(
                    Diagnostic(
                        "E0102",
                        f"`{kw}` is given twice in this {kind}",
                        span,
                        hints=("keep one of them",),
                    )
                )
            else:
                seen[kw] = value
        return seen, many

    @v_args(meta=True)
    def entity(self, meta, children):
        name, *stmts = children
        seen, _ = self._collect("entity", stmts)
        return ast.Entity(
            self.ident(name), seen.get("key", ()), seen.get("description"), self.sp(meta)
        )

    @v_args(meta=True)
    def source(self, meta, children):
        name, *stmts = children
        seen, _ = self._collect("source", stmts)
        return ast.Source(
            self.ident(name),
            seen.get("table"),
            seen.get("timestamp"),
            seen.get("created"),
            seen.get("columns", ()),
            seen.get("description"),
            seen.get("owner"),
            self.sp(meta),
            seen.get("stream"),
        )

    @v_args(meta=True)
    def view(self, meta, children):
        name, *stmts = children
        seen, many = self._collect("feature view", stmts)
        entity, by = seen.get("entity", (None, ()))
        return ast.View(
            self.ident(name),
            entity,
            by,
            seen.get("from"),
            seen.get("where"),
            seen.get("ttl"),
            seen.get("owner"),
            seen.get("description"),
            tuple(many["feature"]),
            self.sp(meta),
        )

    @v_args(meta=True)
    def service(self, meta, children):
        name, *stmts = children
        seen, many = self._collect("service", stmts)
        refs = tuple(r for group in many["features"] for r in group)
        return ast.Service(
            self.ident(name),
            refs,
            seen.get("description"),
            seen.get("owner"),
            self.sp(meta),
            seen.get("key"),
            seen.get("full_feature_names", False),
        )

    @v_args(meta=True)
    def link(self, meta, children):
        name, *stmts = children
        seen, _ = self._collect("link", stmts)
        from_end, to_end = seen.get("map", (None, None))
        return ast.Link(
            self.ident(name),
            seen.get("from"),
            from_end,
            to_end,
            seen.get("ttl"),
            seen.get("owner"),
            seen.get("description"),
            self.sp(meta),
        )


def _keyword_names() -> dict[str, str]:
    """lark names anonymous keyword terminals after their text (e.g. `OVER`): show the text."""
    out = {}
    for term in _parser().terminals:
        pat = term.pattern
        if pat.type == "str":
            out[term.name] = f"`{pat.value}`"
    return out


def _syntax_diagnostic(file: str, text: str, e: UnexpectedInput) -> Diagnostic:
    kw = _keyword_names()
    expected = sorted(
        {
            kw.get(t) or _TERMINAL_NAMES.get(t, t)
            for t in (getattr(e, "expected", None) or getattr(e, "allowed", None) or ())
        }
    )
    hint = (
        ("expected " + ", ".join(expected[:10]) + (", ..." if len(expected) > 10 else ""))
        if expected
        else None
    )
    line = getattr(e, "line", None) or 1
    col = getattr(e, "column", None) or 1
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else "?"
        msg = f"unexpected character {ch!r}"
        return Diagnostic(
            "E0100", msg, Span(file, line, col, line, col + 1), hints=(hint,) if hint else ()
        )
    if isinstance(e, UnexpectedEOF) or getattr(getattr(e, "token", None), "type", "") == "$END":
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        return Diagnostic(
            "E0101",
            "unexpected end of file",
            Span(file, line, col, line, col + 1),
            hints=(hint,) if hint else (),
        )
    tok = e.token
    length = max(1, len(str(tok)))
    return Diagnostic(
        "E0101",
        f"unexpected `{tok}`",
        Span(file, line, col, line, col + length),
        hints=(hint,) if hint else (),
    )


def parse_text(text: str, file: str = "<string>") -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse one file. Returns the module (None on a syntax error) and its diagnostics."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        return None, [_syntax_diagnostic(file, text, e)]
    except RecursionError:
        return None, [_too_deep(file)]
    return module_from_tree(tree, text, file)


def module_from_tree(
    tree: Tree, text: str, file: str
) -> tuple[ast.Module | None, list[Diagnostic]]:
    """The module of a lark tree of `text`, parsed by a parser of this grammar and options
    (`fsc fmt` parses once with its own, which also collects comments, and builds from that)."""
    build = _Build(file)
    try:
        items = build.transform(tree)
    except RecursionError:
        return None, [_too_deep(file)]
    except VisitError as e:
        if isinstance(e.orig_exc, RecursionError):
            return None, [_too_deep(file)]  # a transformer bug must still come out located
        orig = e.orig_exc
        if isinstance(orig, FeatError):
            return None, orig.diagnostics
        return None, [
            Diagnostic("E0199", f"could not read this file: {orig}", Span(file, 1, 1, 1, 2))
        ]
    children = items.children if isinstance(items, Tree) else []
    module = ast.Module(
        path=file,
        text=text,
        entities=tuple(c for c in children if isinstance(c, ast.Entity)),
        sources=tuple(c for c in children if isinstance(c, ast.Source)),
        views=tuple(c for c in children if isinstance(c, ast.View)),
        services=tuple(c for c in children if isinstance(c, ast.Service)),
        links=tuple(c for c in children if isinstance(c, ast.Link)),
    )
    return module, build.diagnostics


def _too_deep(file: str) -> Diagnostic:
    return Diagnostic(
        "E0103",
        "expression nested too deeply to compile",
        Span(file, 1, 1, 1, 2),
        hints=("split it into derived features",),
    )


def read_source(path: Path) -> tuple[str | None, Diagnostic | None]:
    """Read a file as UTF-8 text; binary garbage is a diagnostic, not a traceback."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, Diagnostic(
            "E0001", f"cannot read file: {e.strerror}", Span(str(path), 1, 1, 1, 2)
        )
    if b"\x00" in data:
        return None, Diagnostic(
            "E0100", "this is not a text file (it contains NUL bytes)", Span(str(path), 1, 1, 1, 2)
        )
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        return None, Diagnostic(
            "E0100", "this file is not valid UTF-8 text", Span(str(path), line, col, line, col + 1)
        )


def parse_file(path: Path | str) -> tuple[ast.Module | None, list[Diagnostic]]:
    path = Path(path)
    text, diag = read_source(path)
    if diag is not None:
        return None, [diag]
    return parse_text(text, str(path))
