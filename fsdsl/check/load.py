"""Files -> one Repository: parse every `.feat` file, resolve names across them, type-check."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fsdsl import ir
from fsdsl.check.expressions import ExprChecker, Scope, _suggest
from fsdsl.diagnostics import Diagnostic, Span
from fsdsl.project import feat_files, gc_paused
from fsdsl.syntax import ast
from fsdsl.syntax.parser import parse_file, parse_text

_DURATION = re.compile(r"^([0-9]+)([a-zA-Z]+)$")

# Every column, CTE and table the compiler adds to a query starts with this (`__t`, `__a0`,
# `__fsdsl_row`, `__fsdsl_state_<view>`) or with `<view>__`: a user name never collides with them.
RESERVED_PREFIX = "__"
# The fields a served row carries besides keys and features (`fsdsl.online.lookup.AS_OF`, ...):
# no feature a service serves may be named like them.
_SERVED_TIMES = frozenset({"_as_of", "_as_of_views"})


def load_repository(path: str | Path) -> tuple[ir.Repository | None, list[Diagnostic]]:
    """Parse and check a `.feat` file or a folder of them.

    The repository is None when any error was found: later stages never see a half-checked
    model. Diagnostics are sorted by file and position.
    """
    path = Path(path)
    if not path.exists():
        return None, [
            Diagnostic("E0001", f"no such file or folder: {path}", Span(str(path), 1, 1, 1, 1))
        ]
    modules, diags = [], []
    files = feat_files(path)
    if not files:
        return None, [Diagnostic("E0001", f"no .feat files in {path}", Span(str(path), 1, 1, 1, 1))]
    with gc_paused():
        for f in files:
            module, d = parse_file(f)
            diags.extend(d)
            if module is not None:
                modules.append(module)
        return _finish(modules, diags, tuple(str(f) for f in files))


def load_text(text: str, file: str = "<string>") -> tuple[ir.Repository | None, list[Diagnostic]]:
    module, diags = parse_text(text, file)
    return _finish([module] if module else [], diags, (file,))


def _finish(modules, diags, files):
    if any(d.is_error for d in diags) and not modules:
        return None, _sorted(diags)
    repo = Resolver(diags).resolve(modules, files)
    if any(d.is_error for d in diags):
        return None, _sorted(diags)
    return repo, _sorted(diags)


def _sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=lambda d: (d.span.file, d.span.line, d.span.col, d.code))


# Links by name, from-entity and to-entity: the edges of the graph a service's key resolves in
# (a broken link's entity None: it was meant to be one, no one knows which).
Edges = list[tuple[str, str | None, str | None]] | tuple[()]


def _broken_edge(a: ast.Link, entities: dict) -> tuple[str, str | None, str | None]:
    """The entities a broken link was written to join; None where that is no entity (missing,
    unknown, or a link to itself, whose target is the mistake): it may have been any."""
    if a.from_end is None or a.to_end is None:
        return a.name.name, None, None
    frm, to = a.from_end.entity.name, a.to_end.entity.name
    return (
        a.name.name,
        frm if frm in entities else None,
        to if to in entities and to != frm else None,
    )


class Resolver:
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        self.exprs = ExprChecker(diagnostics)

    def error(self, code: str, message: str, span: Span, *hints: str | None):
        self.diagnostics.append(Diagnostic(code, message, span, hints=tuple(h for h in hints if h)))

    # ---- top level ----
    def resolve(self, modules: list[ast.Module], files: tuple[str, ...]) -> ir.Repository:
        decls: dict[str, dict[str, object]] = {
            "entity": {},
            "source": {},
            "view": {},
            "service": {},
            "link": {},
        }
        for m in modules:
            for kind, items in (
                ("entity", m.entities),
                ("source", m.sources),
                ("view", m.views),
                ("service", m.services),
                ("link", m.links),
            ):
                for item in items:
                    table = decls[kind]
                    # a link compiles to a view of its name: the two share one namespace
                    other = {"view": "link", "link": "view"}.get(kind)
                    clash = decls[other].get(item.name.name) if other else None
                    if item.name.name in table or clash is not None:
                        first = (clash or table[item.name.name]).name.span
                        self.error(
                            "E0200",
                            f"{kind} `{item.name.name}` is declared twice"
                            if clash is None
                            else f"{kind} `{item.name.name}` is named like a {other} "
                            "(links and feature views share one namespace)",
                            item.name.span,
                            f"first declared at {first.file}:{first.line}",
                        )
                        continue
                    table[item.name.name] = item
                    self.reserved(item.name, "feature view" if kind == "view" else kind)
        self.shadowed_tables(decls["source"].values(), decls["view"])
        entities = {n: e for n, a in decls["entity"].items() if (e := self.entity(a))}
        sources = {n: s for n, a in decls["source"].items() if (s := self.source(a))}
        views = {}
        for n, a in decls["view"].items():
            v = self.view(a, entities, sources, decls)
            if v is not None:
                views[n] = v
        links = {}
        for n, a in decls["link"].items():
            link = self.link(a, entities, sources, decls)
            if link is not None:
                links[n] = link
                views[n] = link.view
        self.link_cycles(links)
        # the links reported broken (or declared twice), as written: what a service would
        # reach through one of them is not reported unreachable too (its error is the cause)
        broken = [
            _broken_edge(a, decls["entity"])
            for m in modules
            for a in m.links
            if a.name.name not in links or decls["link"].get(a.name.name) is not a
        ]
        services = {}
        for n, a in decls["service"].items():
            s = self.service(a, views, decls, entities, links, broken)
            if s is not None:
                services[n] = s
        return ir.Repository(entities, sources, views, services, files, links)

    def reserved(self, name: ast.Ident, what: str) -> bool:
        """Report a user name in the compiler's own namespace (E0212); True when it is."""
        if not name.name.startswith(RESERVED_PREFIX):
            return False
        self.error(
            "E0212",
            f"{what} `{name.name}`: names starting with `{RESERVED_PREFIX}` are reserved "
            "for the compiler's own columns and tables",
            name.span,
            "rename it" + (f", e.g. `{name.name.lstrip('_')}`" if name.name.strip("_") else ""),
        )
        return True

    def shadowed_tables(self, sources, views) -> None:
        """A source table named like the compiler's intermediate relations of a view
        (`<view>__events`, ...) would be read as that relation, not as the table."""
        for s in sources:
            if s.table is None or "." in s.table.value:
                continue  # a qualified name is never an unqualified CTE name
            table = s.table.value.casefold()
            for v in views:
                if table.startswith(f"{v}{RESERVED_PREFIX}".casefold()):
                    self.error(
                        "E0212",
                        f"table `{s.table.value}` is named like the compiler's intermediate "
                        f"queries of feature view `{v}` (`{v}{RESERVED_PREFIX}...`)",
                        s.table.span,
                        f'qualify it with its schema ("<schema>.{s.table.value}") or rename '
                        "the view",
                    )
                    break

    def duration(self, d: ast.Duration) -> ir.Duration | None:
        m = _DURATION.match(d.text)
        if not m or m.group(2) not in ir.UNIT_SECONDS:
            unit = m.group(2) if m else d.text
            self.error(
                "E0302",
                f"bad duration `{d.text}`: unknown unit `{unit}`",
                d.span,
                "use s, m, h, d or w, e.g. 90s 15m 12h 7d 2w",
            )
            return None
        amount = int(m.group(1))
        if amount <= 0:
            self.error("E0302", f"bad duration `{d.text}`: it must be longer than zero", d.span)
            return None
        if amount * ir.UNIT_SECONDS[m.group(2)] > 100 * 366 * 86400:
            self.error("E0302", f"bad duration `{d.text}`: longer than 100 years", d.span)
            return None
        return ir.Duration(amount, m.group(2))

    def type_ref(self, t: ast.TypeRef) -> ir.Type | None:
        n = len(self.diagnostics)
        try:
            return self.exprs.type_ref(t)
        except Exception:  # _Fail: recorded
            assert len(self.diagnostics) > n
            return None

    # ---- entity ----
    def entity(self, e: ast.Entity) -> ir.Entity | None:
        if not e.keys:
            self.error(
                "E0206",
                f"entity `{e.name.name}` has no `key`",
                e.name.span,
                "add e.g. `key user_id: string`",
            )
            return None
        keys, seen = [], set()
        for k in e.keys:
            if k.name.name in seen:
                self.error("E0207", f"key `{k.name.name}` is given twice", k.name.span)
                return None
            seen.add(k.name.name)
            if self.reserved(k.name, "key"):
                return None
            t = self.type_ref(k.type)
            if t is None:
                return None
            if t.name == "list":
                self.error("E0300", "an entity key cannot be a list", k.type.span)
                return None
            keys.append(ir.Key(k.name.name, t))
        desc = e.description.value if e.description else None
        return ir.Entity(e.name.name, tuple(keys), desc, e.span)

    # ---- source ----
    def source(self, s: ast.Source) -> ir.Source | None:
        ok = True
        for what, value in (("table", s.table), ("timestamp", s.timestamp), ("columns", s.columns)):
            if not value:
                self.error("E0206", f"source `{s.name.name}` has no `{what}`", s.name.span)
                ok = False
        if not ok:
            return None
        columns: dict[str, ir.Type] = {}
        for c in s.columns:
            if c.name.name in columns:
                self.error("E0207", f"column `{c.name.name}` is declared twice", c.name.span)
                ok = False
                continue
            if self.reserved(c.name, "column"):
                ok = False
            t = self.type_ref(c.type)
            if t is None:
                ok = False
                continue
            columns[c.name.name] = t
        parts = tuple(s.table.value.split("."))
        if any(p.startswith(RESERVED_PREFIX) for p in parts):
            self.error(
                "E0212",
                f"table `{s.table.value}`: names starting with `{RESERVED_PREFIX}` are reserved "
                "for the compiler's own tables",
                s.table.span,
            )
            ok = False
        if not all(parts) or len(parts) > 3:
            self.error(
                "E0206",
                f"bad table name `{s.table.value}`",
                s.table.span,
                'write "table" or "schema.table"',
            )
            ok = False
        for what, ident in (("timestamp", s.timestamp), ("created", s.created)):
            if ident is None:
                continue
            t = columns.get(ident.name)
            if ident.name not in columns and ok:
                self.error(
                    "E0203",
                    f"unknown column `{ident.name}` in source `{s.name.name}`",
                    ident.span,
                    _suggest(ident.name, columns),
                )
                ok = False
            elif t is not None and t != ir.TIMESTAMP:
                self.error(
                    "E0307", f"the {what} column `{ident.name}` is {t}, not timestamp", ident.span
                )
                ok = False
        if s.stream is not None and not s.stream.value.strip():
            # a blank key would be a real, shared, unnamed Redis key, never what was meant
            self.error(
                "E0213",
                f"the stream of source `{s.name.name}` is empty",
                s.stream.span,
                f'name a Redis Stream, or leave `stream` out to read "{ir.DEFAULT_STREAM_PREFIX}'
                f'{s.name.name}"',
            )
            ok = False
        if not ok:
            return None
        desc = s.description.value if s.description else None
        created = s.created.name if s.created else None
        return ir.Source(
            s.name.name,
            parts,
            s.timestamp.name,
            created,
            columns,
            desc,
            s.span,
            s.table.span,
            {c.name.name: c.name.span for c in s.columns},
            s.stream.value if s.stream is not None else None,
        )

    def declared(self, kind: str, ref, found: dict, decls):
        """The entity or source `ref` names, as loaded; None when it is not: unknown is E0201
        or E0202, while a declared one that failed to load has its own error already."""
        item = found.get(ref.name)
        if item is None and ref.name not in decls[kind]:
            code = {"entity": "E0201", "source": "E0202"}[kind]
            self.error(
                code, f"unknown {kind} `{ref.name}`", ref.span, _suggest(ref.name, decls[kind])
            )
        return item

    # ---- view ----
    def view(self, v: ast.View, entities, sources, decls) -> ir.View | None:
        name = v.name.name
        if v.entity is None or v.source is None:
            missing = "entity" if v.entity is None else "from"
            self.error("E0206", f"feature view `{name}` has no `{missing}`", v.name.span)
            return None
        entity = self.declared("entity", v.entity, entities, decls)
        if entity is None:
            return None
        source = self.declared("source", v.source, sources, decls)
        if source is None:
            return None

        def unknown(column: str, key: ir.Key) -> tuple[str, str]:
            return (
                f"unknown column `{column}` in source `{source.name}`",
                f"name the source column of key `{key.name}`: `entity {entity.name} by <column>`",
            )

        key_columns = self.key_columns(entity, v.entity, v.entity_by, source, unknown)
        if key_columns is None:
            return None

        where = None
        if v.where is not None:
            where = self.exprs.check(v.where, Scope(source.columns))
            if where is None:
                return None
            if where.type not in (ir.BOOL, ir.NULL):
                self.error(
                    "E0300", f"`where` needs a bool condition, got {where.type}", v.where.span
                )
                return None
        ttl = self.duration(v.ttl) if v.ttl else None
        if v.ttl and ttl is None:
            return None

        features = self.features(v, source, (ir.AS_OF_COLUMN, *(k.name for k in entity.keys)))
        if features is None:
            return None
        if not features:
            self.error("E0206", f"feature view `{name}` defines no features", v.name.span)
            return None
        return ir.View(
            name,
            entity,
            tuple(key_columns),
            source,
            where,
            ttl,
            v.owner.value if v.owner else None,
            v.description.value if v.description else None,
            tuple(features),
            v.span,
        )

    def features(
        self, v: ast.View, source: ir.Source, outputs: tuple[str, ...]
    ) -> list[ir.Feature] | None:
        """`outputs`: the other columns a view's queries return (entity keys, the refresh's as-of
        time); warehouses compare names without case, so neither may name a feature."""
        by_name: dict[str, ast.Feature] = {}
        taken = {o.casefold(): o for o in outputs}
        ok = True
        for f in v.features:
            if f.name.name in by_name:
                first = by_name[f.name.name].name.span
                self.error(
                    "E0207",
                    f"feature `{f.name.name}` is defined twice in `{v.name.name}`",
                    f.name.span,
                    f"first defined at line {first.line}",
                )
                ok = False
                continue
            by_name[f.name.name] = f
            if self.reserved(f.name, "feature"):
                ok = False
            elif f.name.name.casefold() in taken:
                other = taken[f.name.name.casefold()]
                what = "the refresh query's as-of time" if other == ir.AS_OF_COLUMN else "a key"
                self.error(
                    "E0212",
                    f"feature `{f.name.name}` would share its column with `{other}`, {what} of "
                    f"`{v.name.name}`'s output",
                    f.name.span,
                    "rename the feature",
                )
                ok = False
        # Type features in dependency order so that a derived feature knows its inputs' types.
        order = self.dependency_order(by_name)
        if order is None:
            return None
        types: dict[str, ir.Type] = {}
        built: dict[str, ir.Feature] = {}
        measured: dict[str, tuple[int, int]] = {}
        failed: set[str] = set()
        for fname in order:
            f = by_name[fname]
            window = None
            if f.window is not None:
                window = self.duration(f.window)
                ok = ok and window is not None
            # In dependency order every feature `f` uses is settled by now: typed, or broken
            # (reported already). Both collections grow in place: copying them per feature
            # would make a long view quadratic.
            scope = Scope(source.columns, types, True, window, failed=failed)
            expr = self.exprs.check(f.expr, scope)
            failed.add(fname)  # until it is typed below
            if expr is None:
                ok = False
                continue
            has_agg = any(isinstance(n, ir.Aggregate) for n in ir.walk(expr))
            if f.window is not None and not has_agg:
                self.error(
                    "E0303",
                    f"`over {f.window.text}` needs an aggregation in the feature",
                    f.window.span,
                    "a derived feature takes the windows of its inputs",
                )
                ok = False
                continue
            if not has_agg and not any(isinstance(n, ir.FeatureRef) for n in ir.walk(expr)):
                self.error(
                    "E0303",
                    f"feature `{fname}` is a constant",
                    f.expr.span,
                    "aggregate a column, e.g. `count(*) over 7d`",
                )
                ok = False
                continue
            t = expr.type if expr.type != ir.NULL else None
            if t is None:
                self.error(
                    "E0300", f"feature `{fname}` has no type (it is always null)", f.expr.span
                )
                ok = False
                continue
            if f.type is not None:
                declared = self.type_ref(f.type)
                if declared is None:
                    ok = False
                    continue
                if declared != t and not (declared == ir.FLOAT and t == ir.INT):
                    self.error(
                        "E0301",
                        f"feature `{fname}` is declared {declared} but computes {t}",
                        f.type.span,
                    )
                    ok = False
                    continue
                t = declared
            size, depth = _expanded_size(expr, measured)
            if size > MAX_EXPANDED_NODES or depth > MAX_EXPANDED_DEPTH:
                self.error(
                    "E0103",
                    f"feature `{fname}` is too large once the features it uses "
                    f"are expanded (more than {MAX_EXPANDED_NODES} nodes or deeper than "
                    f"{MAX_EXPANDED_DEPTH})",
                    f.expr.span,
                    f"keep derived features under {MAX_EXPANDED_NODES} nodes and depth "
                    f"{MAX_EXPANDED_DEPTH}",
                )
                ok = False
                continue
            types[fname] = t
            failed.discard(fname)
            measured[fname] = (size, depth)
            built[fname] = ir.Feature(fname, t, expr, f.span)
        if not ok:
            return None
        return [built[f.name.name] for f in v.features if f.name.name in built]

    def dependency_order(self, by_name: dict[str, ast.Feature]) -> list[str] | None:
        """Features ordered so every derived feature comes after what it references.

        A depth-first walk with its own stack: a chain of derived features may be as long as
        the file, far deeper than Python's recursion limit.
        """
        deps = {n: [r for r in _references(f.expr) if r in by_name] for n, f in by_name.items()}
        order: list[str] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in by_name:
            if root in state:
                continue
            state[root] = 1
            path, pending = [root], [iter(deps[root])]
            while pending:
                for d in pending[-1]:
                    if state.get(d) == 2:
                        continue
                    if state.get(d) == 1:
                        cycle = path[path.index(d) :] + [d]
                        self.error(
                            "E0208",
                            "derived features form a cycle: " + " -> ".join(cycle),
                            by_name[d].name.span,
                        )
                        return None
                    state[d] = 1
                    path.append(d)
                    pending.append(iter(deps[d]))
                    break
                else:
                    done = path.pop()
                    pending.pop()
                    state[done] = 2
                    order.append(done)
        return order

    # ---- service ----
    # ---- link ----
    def link(self, a: ast.Link, entities, sources, decls) -> ir.Link | None:
        """A link is checked as the view it compiles to (see `ir.Link`), so its `from`, `by`
        columns, types and TTL get the errors a view's would, located in the link."""
        name = a.name.name
        if a.source is None or a.from_end is None:
            missing = "from" if a.source is None else "A -> B"
            self.error("E0206", f"link `{name}` has no `{missing}`", a.name.span)
            return None
        ends = []
        for end in (a.from_end, a.to_end):
            entity = self.declared("entity", end.entity, entities, decls)
            if entity is None:
                return None
            ends.append(entity)
        if ends[0].name == ends[1].name:
            self.error(
                "E0214",
                f"link `{name}` links entity `{ends[0].name}` to itself",
                a.to_end.entity.span,
            )
            return None
        source = self.declared("source", a.source, sources, decls)
        if source is None:
            return None

        def unknown(column: str, key: ir.Key) -> tuple[str, str]:
            return (
                f"link `{name}`: source `{source.name}` has no column `{column}` "
                f"for key `{key.name}` of `{ends[1].name}`",
                f"name its column: `{ends[1].name} by <column>`",
            )

        to_columns = self.key_columns(ends[1], a.to_end.entity, a.to_end.by, source, unknown)
        if to_columns is None:
            return None
        span = a.span
        taken = {k.name.casefold() for k in ends[0].keys}
        for key in ends[1].keys:
            if key.name.casefold() in taken:
                self.error(
                    "E0207",
                    f"link `{name}`: entities `{ends[0].name}` and `{ends[1].name}` both have a "
                    f"key named `{key.name}`; a link names its result after the target's keys",
                    a.to_end.entity.span,
                    "rename one entity's key",
                )
                return None

        def name_(text: str) -> ast.Name:
            return ast.Name(span, text)

        def lit(value: int) -> ast.Literal:
            return ast.Literal(span, value, "int")

        nulls: ast.Expr | None = None
        for column in to_columns:
            test = ast.IsNull(span, name_(column), False)
            nulls = test if nulls is None else ast.Binary(span, "or", nulls, test)
        unlinked = ast.Call(span, "last", (ast.Case(span, ((nulls, lit(1)),), lit(0)),))
        features = [ast.Feature(ast.Ident(ir.UNLINKED, span), None, unlinked, None, span)]
        for key, column in zip(ends[1].keys, to_columns, strict=True):
            linked = ast.Binary(span, "=", name_(ir.UNLINKED), lit(0))
            value = ast.Case(span, ((linked, ast.Call(span, "last", (name_(column),))),), None)
            features.append(ast.Feature(ast.Ident(key.name, span), None, value, None, span))
        view = self.view(
            ast.View(
                a.name,
                a.from_end.entity,
                a.from_end.by,
                a.source,
                None,
                a.ttl,
                a.owner,
                a.description,
                tuple(features),
                a.span,
            ),
            entities,
            sources,
            decls,
        )
        if view is None:
            return None
        # one target key column: `unlinked` and the key's `last()` already pick one row's value
        ties = tuple(to_columns) if len(to_columns) > 1 else ()
        view = replace(view, link=name, tie_columns=ties)
        return ir.Link(
            name,
            source,
            ends[0],
            view.key_columns,
            ends[1],
            tuple(to_columns),
            view.ttl,
            view.owner,
            view.description,
            view,
            a.span,
        )

    def key_columns(
        self,
        entity: ir.Entity,
        at: ast.Ident,
        by: tuple[ast.Ident, ...] | None,
        source: ir.Source,
        unknown: Callable[[str, ir.Key], tuple[str, str]],
    ) -> list[str] | None:
        """The source column of each of `entity`'s keys (its name, or the one `by` gives), each
        typed as the key: for a view's entity and for both ends of a link. `unknown(column,
        key)` words a missing column's error and its hint (when no column name is close), as
        the place that names the entity (`at`) says it."""
        if by and len(by) != len(entity.keys):
            self.error(
                "E0209",
                f"entity `{entity.name}` has {len(entity.keys)} key(s) but `by` "
                f"names {len(by)} column(s)",
                by[0].span,
            )
            return None
        out = []
        for i, key in enumerate(entity.keys):
            ident = by[i] if by else None
            column = ident.name if ident else key.name
            span = ident.span if ident else at.span
            if column not in source.columns:
                message, hint = unknown(column, key)
                self.error("E0203", message, span, _suggest(column, source.columns) or hint)
                return None
            if source.columns[column] != key.type:
                self.error(
                    "E0306",
                    f"key `{key.name}` is {key.type} but column `{column}` of "
                    f"`{source.name}` is {source.columns[column]}",
                    span,
                )
                return None
            out.append(column)
        return out

    def link_cycles(self, links: dict[str, ir.Link]) -> None:
        """Links whose entities lead back to where they started (E0214), once per cycle."""
        edges: dict[str, list[ir.Link]] = {}
        for link in links.values():
            edges.setdefault(link.from_entity.name, []).append(link)
        reported: set[frozenset[str]] = set()
        for start in sorted(edges):
            todo = [(start, ())]
            while todo:
                at, path = todo.pop()
                for link in edges.get(at, []):
                    if link.name in path:
                        continue
                    if link.to_entity.name == start:
                        cycle = (*path, link.name)
                        if frozenset(cycle) not in reported:
                            reported.add(frozenset(cycle))
                            names = " -> ".join(f"`{n}`" for n in cycle)
                            self.error(
                                "E0214",
                                f"links form a cycle: {names} lead from `{start}` back to "
                                f"`{start}`",
                                link.span,
                                "remove one of the links",
                            )
                    elif len(path) < len(links):
                        todo.append((link.to_entity.name, (*path, link.name)))

    def link_paths(
        self, start: str, goal: str, links: dict[str, ir.Link], broken: Edges = ()
    ) -> list[tuple[str, ...]]:
        """Every chain of at most `ir.MAX_LINK_DEPTH` links from entity `start` to `goal`;
        through `broken` links too when given (name, from entity, to entity)."""
        edges = [(n, x.from_entity.name, x.to_entity.name) for n, x in links.items()]
        edges += broken
        out, todo = [], [(start, ())]
        while todo:
            at, path = todo.pop()
            if at == goal and path:
                out.append(path)
                continue
            if len(path) == ir.MAX_LINK_DEPTH:
                continue
            for name, frm, to in edges:
                if frm in (at, None) and name not in path:
                    todo.append((goal if to is None else to, (*path, name)))
        return sorted(set(out), key=lambda p: (len(p), p))

    def resolve_paths(
        self, s: ast.Service, key: ir.Entity, views, links, broken: Edges = ()
    ) -> dict | None:
        """The chain of links to each view's entity from the service's key (E0215 none, E0216
        two or more without `via`), one way per entity in a service (E0217). A `via` or a
        path that only a `broken` link could give is left unreported: that link's error is
        the one to fix."""
        dropped = {name for name, _, _ in broken}
        quiet = False  # a path left out as a broken link's consequence: no service, no error
        paths: dict[str, tuple[str, ...]] = {}
        by_entity: dict[str, tuple[tuple[str, ...], ast.FeatureRef]] = {}
        ok = True
        for r in s.refs:
            view = views.get(r.view.name)
            if view is None:
                continue
            for via in r.via:
                if via.name in dropped:
                    quiet = True
                elif via.name not in links:
                    self.error(
                        "E0217",
                        f"`via {via.name}`: unknown link",
                        via.span,
                        _suggest(via.name, links),
                    )
                    ok = False
            if not ok or (r.via and not {v.name for v in r.via} <= set(links)):
                continue
            goal = view.entity.name
            if goal == key.name:
                if r.via:
                    self.error(
                        "E0217",
                        f"`{view.name}` is keyed by `{key.name}`, the service's key: nothing "
                        "to resolve `via` a link",
                        r.via[0].span,
                    )
                    ok = False
                continue
            found = self.link_paths(key.name, goal, links)
            wanted = {v.name for v in r.via}
            chosen = [p for p in found if wanted <= set(p)]
            if not chosen and any(
                wanted <= set(p) for p in self.link_paths(key.name, goal, links, broken)
            ):
                quiet = True  # a broken link would lead there: its own error says why not
                continue
            if not chosen:
                reach = "no link leads" if not found else "no path through the `via` links leads"
                self.error(
                    "E0215",
                    f"feature view `{view.name}` (entity `{goal}`) is unreachable from the "
                    f"service's key `{key.name}`: {reach} from `{key.name}` to `{goal}` "
                    f"(within {ir.MAX_LINK_DEPTH} links)",
                    r.span,
                    "declare a `link` from the key's entity to it, or serve it from a service "
                    f"keyed by `{goal}`"
                    if not found
                    else None,
                )
                ok = False
                continue
            if len(chosen) > 1:
                shown = "; ".join(" -> ".join(p) for p in chosen)
                self.error(
                    "E0216",
                    f"feature view `{view.name}` (entity `{goal}`) is reachable from "
                    f"`{key.name}` in {len(chosen)} ways: {shown}",
                    r.span,
                    f"say which: `{r.view.name}.{r.feature.name if r.feature else '*'} via "
                    f"<link>`, one of {', '.join(sorted({n for p in chosen for n in p}))}",
                )
                ok = False
                continue
            path = chosen[0]
            earlier = by_entity.get(goal)
            if earlier is not None and earlier[0] != path:
                self.error(
                    "E0217",
                    f"service `{s.name.name}` resolves entity `{goal}` two ways: "
                    f"{' -> '.join(earlier[0])} and {' -> '.join(path)}",
                    r.span,
                    f"one way per entity in a service: give the same `via` (as at line "
                    f"{earlier[1].span.line})",
                )
                ok = False
                continue
            by_entity[goal] = (path, r)
            paths[view.name] = path
        if not ok or quiet:
            return None
        on_path = {n for p in paths.values() for n in p}
        for r in s.refs:
            if r.view.name in on_path:
                self.error(
                    "E0217",
                    f"link `{r.view.name}` resolves this service's keys; its features cannot "
                    "also be served here (the resolved keys already are)",
                    r.view.span,
                )
                return None
        return paths

    def service(
        self, s: ast.Service, views, decls, entities=None, links=None, broken: Edges = ()
    ) -> ir.Service | None:
        refs: list[tuple[str, str]] = []
        ok = True
        if not s.refs:
            self.error("E0206", f"service `{s.name.name}` has no `features`", s.name.span)
            return None
        for r in s.refs:
            view = views.get(r.view.name)
            if view is None:
                if r.view.name not in decls["view"]:
                    self.error(
                        "E0205",
                        f"unknown feature view `{r.view.name}`",
                        r.view.span,
                        _suggest(r.view.name, decls["view"]),
                    )
                ok = False
                continue
            names = [f.name for f in view.features] if r.feature is None else [r.feature.name]
            if r.feature is not None and r.feature.name not in {f.name for f in view.features}:
                self.error(
                    "E0204",
                    f"unknown feature `{r.feature.name}` in `{view.name}`",
                    r.feature.span,
                    _suggest(r.feature.name, [f.name for f in view.features]),
                )
                ok = False
                continue
            for n in names:
                if (view.name, n) not in refs:
                    refs.append((view.name, n))
        if not ok:
            return None
        # Output columns are named after features (`view__feature` with `full_feature_names`):
        # two views giving the same name would clash.
        seen: dict[str, str] = {}
        column_of: dict[str, str] = {}
        for vname, fname in refs:
            column = f"{vname}{ir.FULL_NAME_SEPARATOR}{fname}" if s.full_names else fname
            if column in seen and seen[column] != vname:
                self.error(
                    "E0207",
                    f"service `{s.name.name}` has two features named `{column}` "
                    f"(from `{seen[column]}` and `{vname}`)",
                    s.name.span,
                    "rename one of them, or add `full_feature_names` to the service to name "
                    "its columns `view__feature`",
                )
                return None
            seen[column], column_of[column] = vname, fname
        for column in _SERVED_TIMES.intersection(seen):
            fname = column_of[column]
            named = [r for r in s.refs if r.view.name == seen[column]]
            ref = next((r for r in named if r.feature and r.feature.name == fname), named[0])
            self.error(
                "E0212",
                f"feature `{fname}` of `{seen[column]}` would share its name with `{column}`, "
                f"the as-of time of every row service `{s.name.name}` serves",
                ref.feature.span if ref.feature else ref.span,
                "rename the feature",
            )
            return None
        key, paths = None, {}
        if s.key is not None:
            key = (entities or {}).get(s.key.name)
            if key is None:
                self.error(
                    "E0201",
                    f"unknown entity `{s.key.name}`",
                    s.key.span,
                    _suggest(s.key.name, decls["entity"]),
                )
                return None
            paths = self.resolve_paths(s, key, views, links or {}, broken)
            if paths is None:
                return None
            resolved = {
                k.name
                for n in {x for p in paths.values() for x in p}
                for k in links[n].to_entity.keys
            }
            clash = sorted(resolved.intersection(seen))
            if clash:
                self.error(
                    "E0207",
                    f"service `{s.name.name}` serves the resolved key `{clash[0]}` beside its "
                    "features: a feature of that name would clash",
                    s.name.span,
                    "rename the feature",
                )
                return None
        else:
            for r in s.refs:
                if r.via:
                    self.error(
                        "E0217",
                        f"`via {r.via[0].name}` in a service without `key`: links resolve "
                        "from the key a service's requests carry",
                        r.via[0].span,
                        f"add `key <entity>` to service `{s.name.name}`",
                    )
                    return None
        return ir.Service(
            s.name.name,
            tuple(refs),
            s.description.value if s.description else None,
            s.span,
            key,
            tuple((v, paths[v]) for v in dict.fromkeys(v for v, _ in refs) if v in paths),
            s.full_names,
        )


# Derived features are inlined into SQL; these bounds keep queries (and sqlglot's recursive
# generator) a sane size.
MAX_EXPANDED_NODES = 5000
MAX_EXPANDED_DEPTH = 100


def _expanded_size(expr: ir.Expr, measured: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """Node count and depth of `expr` once each feature reference is replaced by the expression
    it names, as the compiler inlines it. `measured` holds those sizes for the features already
    checked (each measured once, so a long chain costs linear time and no recursion)."""
    stack = [(expr, 1)]
    size = depth = 0
    while stack:
        node, level = stack.pop()
        if isinstance(node, ir.FeatureRef) and node.name in measured:
            n, d = measured[node.name]
            size, depth = size + n, max(depth, level - 1 + d)  # its root takes the ref's place
        else:
            size += 1
            depth = max(depth, level)
            stack.extend((c, level + 1) for c in ir.children(node))
        if size > MAX_EXPANDED_NODES or depth > MAX_EXPANDED_DEPTH:
            break
    return size, depth


def _references(e: ast.Expr) -> list[str]:
    """Names a feature expression uses outside aggregations (candidate feature references),
    in the order written; without recursion (the tree may be very deep)."""
    out: list[str] = []
    stack = [(e, False)]
    while stack:
        node, inside_agg = stack.pop()
        if isinstance(node, ast.Name):
            if not inside_agg:
                out.append(node.name)
            continue
        if isinstance(node, ast.Call):
            inside_agg = inside_agg or node.name in ir.AGGREGATES
        stack.extend((child, inside_agg) for child in reversed(ast.children(node)))
    return out
