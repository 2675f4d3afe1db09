"""Text -> AST with lark. Every lark error becomes a located Diagnostic; nothing escapes."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from lark import Lark, Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError
from lark.lexer import UnlessCallback
from lark.parsers.lalr_analysis import Shift
from lark.visitors import Transformer_NonRecursive, _vargs_meta

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
        if _is_unit(rule):
            callbacks[rule] = _only_child
    return parser


def _is_unit(rule) -> bool:
    """`?a: b` with `b` a kept rule: the reduction's value is its child's, positions and all."""
    (*rest, symbol) = rule.expansion or (None,)
    return (
        not rest
        and rule.options.expand1
        and not rule.alias
        and symbol is not None
        and not symbol.is_term
        and not symbol.name.startswith("_")
    )


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
        """`x` a token, a tree's meta, or the span the direct build made already."""
        return x if x.__class__ is Span else _span(self.file, x)

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


# ---- building the AST during the parse -------------------------------------------------------
# lark builds a Tree at each reduction (filtering children, propagating positions) and `_Build`
# then walks it again: more than half of loading a repository, and lark's generic lexer and
# LALR loop most of the rest. `parse_text` runs lark's own tables (its LALR actions, its lexer
# of each parser state) in a loop of its own instead, whose reductions run the same `_Build`
# methods as the parse goes. Each value they put on the stack is a tuple (value, line, col,
# end_line, end_col) of the text it covers (a kept token is itself), so a rule's span is read
# off its first and last children as lark's position propagation reads it: from where its first
# child's outermost container starts (`(a + b) * c` begins at the `(`) to where its last one
# ends; a node keeps its own span. On any text lark would refuse, the loop gives up and lark
# parses the file again for its error: the diagnostics are lark's, exactly as before.


@lru_cache(maxsize=1)
def _direct_plan():
    """What the direct parse reads of lark's parser, once per process: None when lark's
    internals are not where this version keeps them (or hold what it does not expect)."""
    try:
        return _tables(_parser().parser)
    except (AttributeError, TypeError, ValueError):
        return None


class _Tables(NamedTuple):
    # state -> symbol -> (True, next state) | (False, (size, rule name, rule # or None: unit))
    actions: dict
    lexing: dict  # state -> what its lexer matches with (`_Lexing`)
    reductions: list  # rule # -> its reduction, to bind to a `_Build`
    start: int
    end: int
    skip: Callable  # matches the blanks and comments at a position, however many
    bare: frozenset[str]  # terminals whose tokens only place their rule (`_only_positions`)


def _tables(frontend) -> _Tables:
    lalr = frontend.parser.parser
    table = lalr.parse_table
    by_rule = {rule: _reduction(rule) for rule in lalr.callbacks}
    numbers: dict[int, int] = {}
    reductions: list = []
    actions: dict = {}
    for state, row in table.states.items():
        actions[state] = out = {}
        for symbol, (action, arg) in row.items():
            if action is Shift:
                out[symbol] = (True, arg)
                continue
            if _is_unit(arg):  # the value stays as it is: only the state changes
                out[symbol] = (False, (1, arg.origin.name, None))
                continue
            if id(arg) not in numbers:
                numbers[id(arg)] = len(reductions)
                reductions.append(by_rule[arg])
            out[symbol] = (False, (len(arg.expansion), arg.origin.name, numbers[id(arg)]))
    lexing = _Lexing(frontend.lexer.lexers)
    (start,) = table.start_states.values()
    (end,) = table.end_states.values()
    return _Tables(
        actions,
        lexing,
        reductions,
        start,
        end,
        _skipper(frontend.lexer.root_lexer),
        _only_positions(lalr.callbacks),
    )


class _Lexing(dict):
    """Per parser state: (regexes, ignored terminals, keyword tables, other terminal callbacks,
    multi-line terminals) of lark's lexer for the state, made on the state's first token: as
    lark builds them, only for the states a parse reaches. A lexer this loop cannot follow
    raises: that parse, and each after it, goes through lark."""

    def __init__(self, lexers: dict):
        super().__init__()
        self.lexers = lexers

    def __missing__(self, state):
        lexer = self.lexers[state]
        regexes = tuple(lexer.scanner._mres)  # builds lexer.callback too
        if lexer.ignore_types & set(lexer.callback):
            raise ValueError("a callback on an ignored terminal")
        callbacks = dict(lexer.callback)
        keywords = {kind: _keywords(callbacks.pop(kind)) for kind in list(callbacks)}
        for kind, words in list(keywords.items()):
            if words is None:  # not a plain keyword check: lark's callback runs on the token
                callbacks[kind] = lexer.callback[kind]
                del keywords[kind]
        self[state] = found = (
            regexes,
            lexer.ignore_types,
            keywords,
            callbacks,
            lexer.newline_types,
        )
        return found


def _keywords(callback) -> dict[str, str] | None:
    """lark's `UnlessCallback` turns a NAME that is a keyword of the state into that keyword's
    terminal, by matching it against each keyword: as a table, when the keywords are plain
    strings (no flags); else None."""
    scanner = getattr(callback, "scanner", None)
    if type(callback) is not UnlessCallback or scanner is None or scanner.g_regex_flags:
        return None
    table = {}
    for t in scanner.terminals:
        if t.pattern.type != "str" or t.pattern.flags:
            return None
        table[t.pattern.value] = t.name
    return table


def _only_positions(rules) -> frozenset[str]:
    """The terminals no rule keeps as a child (keywords, punctuation): their place on the
    stack is only the text they cover, as a tuple (text, line, col, end_line, end_col)."""
    kept, dropped = set(), set()
    for rule in rules:
        for sym in rule.expansion:
            if sym.is_term:
                keep = rule.options.keep_all_tokens or not sym.filter_out
                (kept if keep else dropped).add(sym.name)
    return frozenset(dropped - kept)


# What the ignored terminals (blanks, comments) can start with, and what may follow.
_IGNORED_STARTS = " \t\f\r\n#"
_PROBES = ("", "a", "Z", "_", "0", ".5", "'s'", '"s"', "-", "*", "(", "#", " ", "\n")


def _skipper(root) -> Callable:
    """One regex over a run of ignored tokens. lark would match each one against every
    terminal of the state; that is the same only while no other terminal can start where an
    ignored one does (in this grammar, at a blank or a `#`), which is checked here."""
    ignored = [t for t in root.terminals if t.name in root.ignore_types]
    others = [t for t in root.terminals if t.name not in root.ignore_types]
    for t in others:
        regex = re.compile(t.pattern.to_regexp(), root.g_regex_flags)
        if any(regex.match(c + p) for c in _IGNORED_STARTS for p in _PROBES):
            raise ValueError(f"{t.name} may start where an ignored terminal does")
    union = "|".join(t.pattern.to_regexp() for t in ignored)
    return re.compile(f"(?:{union})*", root.g_regex_flags).match


def _parse_direct(text: str, build: _Build, tables: _Tables):
    """lark's contextual lexer and LALR loop (`ParserState.feed_token`, `BasicLexer.next_token`)
    fused into one, with the reductions building the AST; None where lark would raise (the
    caller parses again through lark for its error)."""
    actions, lexing, reductions, state, end, skip, bare = tables
    reduce = [bind(build) for bind in reductions]
    token = Token._future_new
    states, values = [state], []
    pos, line, line_start, size = 0, 1, 0, len(text)
    while True:
        if pos < size and (gap := skip(text, pos).end()) > pos:
            if lines := text.count("\n", pos, gap):
                line += lines
                line_start = text.rindex("\n", pos, gap) + 1
            pos = gap
        if pos < size:
            regexes, ignored, keywords, callbacks, multiline = lexing[state]
            for regex in regexes:
                m = regex.match(text, pos)
                if m:
                    break
            else:
                return None
            value, kind = m.group(0), m.lastgroup
            at, at_line, at_col = pos, line, pos - line_start + 1
            if kind in multiline and (lines := value.count("\n")):
                line += lines
                line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            if kind in ignored:  # `skip` took them all, while `_skipper`'s check holds
                continue
            if kind in keywords:
                kind = keywords[kind].get(value, kind)
            if kind in callbacks:
                tok = token(kind, value, at, at_line, at_col, line, pos - line_start + 1, pos)
                tok = callbacks[kind](tok)
                kind = tok.type
            elif kind in bare:
                tok = (value, at_line, at_col, line, pos - line_start + 1)
            else:
                tok = token(kind, value, at, at_line, at_col, line, pos - line_start + 1, pos)
        else:
            tok, kind = None, "$END"
        while True:
            action = actions[state].get(kind)
            if action is None:
                return None
            shift, arg = action
            if shift:
                if tok is None:
                    return None
                state = arg
                states.append(state)
                values.append(tok)
                break
            n, origin, rule = arg
            if rule is None:  # `?a: b`, eight of them under every operand
                state = states[-1] = actions[states[-2]][origin][1]
                value = values[-1]
            elif n:
                children = values[-n:]
                del states[-n:]
                del values[-n:]
                value = reduce[rule](children)
                state = actions[states[-1]][origin][1]
                states.append(state)
                values.append(value)
            else:
                value = reduce[rule]([])
                state = actions[states[-1]][origin][1]
                states.append(state)
                values.append(value)
            if tok is None and state == end:
                return value[0] if value.__class__ is tuple else value


def _kept(rule) -> tuple[list[tuple[int, bool, int]], int]:
    """lark's child filter for `rule` (`maybe_create_child_filter`): which of the symbols
    reduced stay children, which are `_rules` whose children are spliced in, and how many
    None placeholders (`[x]` left out) go before each and after the last."""
    empty = rule.options.empty_indices
    if empty:
        nones = [len(ones) for ones in "".join(str(int(b)) for b in empty).split("0")]
    else:
        nones = [0] * (len(rule.expansion) + 1)
    kept, pending = [], 0
    for i, sym in enumerate(rule.expansion):
        pending += nones[i]
        if rule.options.keep_all_tokens or not (sym.is_term and sym.filter_out):
            kept.append((i, not sym.is_term and sym.name.startswith("_"), pending))
            pending = 0
    return kept, pending + nones[-1]


def _children(stack: list, kept, trailing: int) -> list:
    out: list = []
    for i, splice, nones in kept:
        if nones:
            out += [None] * nones
        c = stack[i]
        if c.__class__ is tuple:
            c = c[0]
        if not splice:
            out.append(c)
        elif out:
            out += c
        else:  # the list a left-recursive `_rule*` grows: extended in place, not copied
            out = c
    if trailing:
        out += [None] * trailing
    return out


def _reduction(rule):
    """The reduction of `rule`, to be bound to one file's `_Build`."""
    if _is_unit(rule):
        return lambda build: _only_child
    name = rule.alias or rule.options.template_source or rule.origin.name
    kept, trailing = _kept(rule)
    if name.startswith("_"):  # a `_rule`: its children go to its parent's
        method, wants_span = None, False
    else:
        method = _Build.__dict__.get(name)
        wants_span = getattr(method, "visit_wrapper", None) is _vargs_meta
        method = getattr(method, "base_func", method)
    inline = name.startswith("_")
    expand1 = rule.options.expand1 and not rule.alias

    def bind(build: _Build):
        file = build.file

        def reduce(stack: list):
            if not stack:  # an empty file
                return Tree(name, []), None, None, None, None
            first, last = stack[0], stack[-1]
            if first.__class__ is tuple:
                line, col = first[1], first[2]
            else:
                line, col = first.line, first.column
            if last.__class__ is tuple:
                end_line, end_col = last[3], last[4]
            else:
                end_line, end_col = last.end_line, last.end_column
            children = _children(stack, kept, trailing)
            if inline:
                value = children
            elif expand1 and len(children) == 1:
                if children[0].__class__ is Token:
                    return children[0]  # a token keeps its own place, as in lark
                value = children[0]  # `(expr)`: the node, its container the parentheses
            elif method is None:
                value = Tree(name, children)
            elif wants_span:
                value = method(build, Span(file, line, col, end_line, end_col), children)
            else:
                value = method(build, children)
            return value, line, col, end_line, end_col

        return reduce

    return bind


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
    plan = _direct_plan()
    if plan is None:  # a lark whose internals moved: the slower way through a tree
        return _parse_via_tree(text, file)
    build = _Build(file)
    try:
        items = _parse_direct(text, build, plan)
    except Exception:
        items = None  # a node that could not be built (a number past Python's digit limit)
    if items is None:
        # lark, parsing again, raises the syntax error to report, wherever it is in the file;
        # else the node that failed fails there too, and is reported as it was built
        return _parse_via_tree(text, file)
    return _module(items, text, file), build.diagnostics


def _parse_via_tree(text: str, file: str) -> tuple[ast.Module | None, list[Diagnostic]]:
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
        return None, _build_failure(file, e.orig_exc)
    return _module(items, text, file), build.diagnostics


def _build_failure(file: str, orig: BaseException) -> list[Diagnostic]:
    """A rule that could not build its node (a number past Python's digit limit): located, as
    every failure of reading a file is."""
    if isinstance(orig, RecursionError):
        return [_too_deep(file)]  # a transformer bug must still come out located
    if isinstance(orig, FeatError):
        return orig.diagnostics
    return [Diagnostic("E0199", f"could not read this file: {orig}", Span(file, 1, 1, 1, 2))]


def _module(items, text: str, file: str) -> ast.Module:
    children = items.children if isinstance(items, Tree) else []
    return ast.Module(
        path=file,
        text=text,
        entities=tuple(c for c in children if isinstance(c, ast.Entity)),
        sources=tuple(c for c in children if isinstance(c, ast.Source)),
        views=tuple(c for c in children if isinstance(c, ast.View)),
        services=tuple(c for c in children if isinstance(c, ast.Service)),
        links=tuple(c for c in children if isinstance(c, ast.Link)),
    )


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
