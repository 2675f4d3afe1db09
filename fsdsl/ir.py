"""The resolved, typed model of a feature repository. Backends and the compiler only see this.

Every node keeps the span of the text it came from, so a later stage (lint, the compiler, a
backend that finds a table missing) can still point at the line a user wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fsdsl.diagnostics import Span


# ---- types ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Type:
    name: str  # string int float bool timestamp date list null
    element: Type | None = None

    def __str__(self) -> str:
        return f"list<{self.element}>" if self.name == "list" else self.name

    @property
    def is_numeric(self) -> bool:
        return self.name in ("int", "float")

    @property
    def is_temporal(self) -> bool:
        return self.name in ("timestamp", "date")


STRING, INT, FLOAT, BOOL = Type("string"), Type("int"), Type("float"), Type("bool")
TIMESTAMP, DATE, NULL = Type("timestamp"), Type("date"), Type("null")
SCALARS = {t.name: t for t in (STRING, INT, FLOAT, BOOL, TIMESTAMP, DATE)}


def list_of(t: Type) -> Type:
    return Type("list", t)


# ---- durations ----------------------------------------------------------------------------------
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # one of UNIT_SECONDS

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


# ---- expressions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    type: Type
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Column(Expr):
    """A column of the view's source."""

    name: str = ""


@dataclass(frozen=True)
class Literal(Expr):
    value: object = None


@dataclass(frozen=True)
class Func(Expr):
    """A scalar function of the portable expression language (`coalesce`, `date_trunc`, ...)."""

    name: str = ""
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Unary(Expr):
    op: str = ""
    operand: Expr | None = None


@dataclass(frozen=True)
class Binary(Expr):
    op: str = ""
    left: Expr | None = None
    right: Expr | None = None


@dataclass(frozen=True)
class IsNull(Expr):
    operand: Expr | None = None
    negated: bool = False


@dataclass(frozen=True)
class InList(Expr):
    operand: Expr | None = None
    items: tuple[Expr, ...] = ()
    negated: bool = False


@dataclass(frozen=True)
class Between(Expr):
    operand: Expr | None = None
    low: Expr | None = None
    high: Expr | None = None
    negated: bool = False


@dataclass(frozen=True)
class Case(Expr):
    whens: tuple[tuple[Expr, Expr], ...] = ()
    default: Expr | None = None


@dataclass(frozen=True)
class Cast(Expr):
    operand: Expr | None = None


@dataclass(frozen=True)
class Extract(Expr):
    part: str = ""
    operand: Expr | None = None


@dataclass(frozen=True)
class Aggregate(Expr):
    """An aggregation over the visible events of an entity, optionally within a window.

    `func` is one of AGGREGATES; `arg` is a row expression (None for `count(*)`).
    """

    func: str = ""
    arg: Expr | None = None
    window: Duration | None = None
    k: int | None = None  # for last_k


@dataclass(frozen=True)
class FeatureRef(Expr):
    """A reference, in a derived feature, to another feature of the same view."""

    name: str = ""


# The column of a refresh query's output that holds its as-of time, beside the entity keys and
# the features: a feature may be named like neither (the check reports it, E0212).
AS_OF_COLUMN = "as_of"

AGGREGATES = ("count", "count_distinct", "sum", "avg", "min", "max", "first", "last", "last_k")
ORDERED_AGGREGATES = ("first", "last", "last_k")


def walk(expr: Expr):
    """Yield `expr` and every expression below it, parents first."""
    yield expr
    for child in children(expr):
        yield from walk(child)


def children(expr: Expr) -> list[Expr]:
    if isinstance(expr, Func):
        return list(expr.args)
    if isinstance(expr, Unary):
        return [expr.operand]
    if isinstance(expr, Binary):
        return [expr.left, expr.right]
    if isinstance(expr, IsNull | Cast | Extract):
        return [expr.operand]
    if isinstance(expr, InList):
        return [expr.operand, *expr.items]
    if isinstance(expr, Between):
        return [expr.operand, expr.low, expr.high]
    if isinstance(expr, Case):
        out = [x for pair in expr.whens for x in pair]
        return out + ([expr.default] if expr.default is not None else [])
    if isinstance(expr, Aggregate):
        return [expr.arg] if expr.arg is not None else []
    return []


# ---- declarations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    name: str
    type: Type


@dataclass(frozen=True)
class Entity:
    name: str
    keys: tuple[Key, ...]
    description: str | None
    span: Span = field(compare=False, repr=False)


DEFAULT_STREAM_PREFIX = "fsc:stream:"  # + the source name: a source's stream without `stream`


@dataclass(frozen=True)
class Source:
    name: str
    table: tuple[str, ...]  # ("schema", "table") or ("table",)
    timestamp: str
    created: str | None
    columns: dict[str, Type]
    description: str | None
    span: Span = field(compare=False, repr=False)
    table_span: Span | None = field(default=None, compare=False, repr=False)
    column_spans: dict[str, Span] = field(default_factory=dict, compare=False, repr=False)
    # Where the stream worker reads this source's events (`stream "..."`): transport, not
    # meaning, so neither the canonical form, the fingerprint nor the compile cache's key (the
    # view's repr) sees it.
    stream: str | None = field(default=None, compare=False, repr=False)

    def __hash__(self) -> int:
        return hash((self.name, self.table))

    @property
    def stream_key(self) -> str:
        """The Redis Stream key of this source's events: the one named by `stream`, else
        `fsc:stream:<source name>`."""
        return self.stream if self.stream is not None else f"{DEFAULT_STREAM_PREFIX}{self.name}"


@dataclass(frozen=True)
class Feature:
    name: str
    type: Type
    expr: Expr  # built from Aggregate, FeatureRef, Literal and scalar operators
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class View:
    name: str
    entity: Entity
    key_columns: tuple[str, ...]  # the source column of each entity key, in key order
    source: Source
    where: Expr | None
    ttl: Duration | None
    owner: str | None
    description: str | None
    features: tuple[Feature, ...]
    span: Span = field(compare=False, repr=False)
    # Set on the view a `link` compiles to (see `Link`): the link's name. Such a view is
    # refreshed, served and verified like any other; catalogues list it as a link.
    link: str | None = None
    # Source columns that settle a tie: of an entity's rows with equal timestamp and created,
    # the view reads only one — a row with a null in any of these columns if there is one, else
    # the greatest in them, compared in order. Set on a link's view when the target has several
    # key columns: each `last()` alone breaks a tie by its own value, so two tied rows could
    # give a pair of keys no row holds. With one row per tie, every `last()` reads that row.
    tie_columns: tuple[str, ...] = ()

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)

    def needed(self, names: list[str] | None = None) -> list[Feature]:
        """The features `names` (default: all) and every feature they reference, in view order."""
        if names is None:
            return list(self.features)
        by_name = {f.name: f for f in self.features}  # a long chain: one lookup per link
        want, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name in want:
                continue
            want.add(name)
            todo += [n.name for n in walk(by_name[name].expr) if isinstance(n, FeatureRef)]
        return [f for f in self.features if f.name in want]

    def in_dependency_order(self, names: list[str] | None = None) -> list[Feature]:
        """`needed(names)`, each feature after every feature it references: the order in which
        derived features can be built from what they use. An explicit stack, since a chain of
        derived features can be longer than Python's recursion limit."""
        by_name = {f.name: f for f in self.features}
        done: dict[str, Feature] = {}
        for f in self.needed(names):
            todo = [f.name]
            while todo:
                name = todo[-1]
                if name in done:
                    todo.pop()
                    continue
                refs = walk(by_name[name].expr)
                missing = [n.name for n in refs if isinstance(n, FeatureRef) and n.name not in done]
                if missing:
                    todo.extend(missing)
                    continue
                done[name] = by_name[name]
                todo.pop()
        return list(done.values())

    def aggregates(self, names: list[str] | None = None) -> list[Aggregate]:
        """Every distinct aggregation the features `names` (default: all) use, in first-use
        order; a query computes only what its features need."""
        seen: dict[Aggregate, None] = {}
        for f in self.needed(names):
            for node in walk(f.expr):
                if isinstance(node, Aggregate):
                    seen.setdefault(node, None)
        return list(seen)


# The feature of a link's view that says the latest link row unlinks (a null target key): 1,
# else 0 (null when there is no visible row, or under the link's TTL).
UNLINKED = "unlinked"
MAX_LINK_DEPTH = 3  # links followed from a service's key: device -> user -> household -> ...
FULL_NAME_SEPARATOR = "__"  # `view__feature`, as Feast's full_feature_names


@dataclass(frozen=True)
class Link:
    """Which `to_entity` a `from_entity` belongs to, as of any time: the latest visible row of
    `source` for the from-entity's keys names the to-entity's keys (nulls unlink).

    It compiles to `view`, an ordinary view keyed by the from-entity whose features are the
    to-entity's key names (plus `UNLINKED`), so that training, refresh, the online store, push,
    stream and verify resolve links with the machinery and semantics they have for features."""

    name: str
    source: Source
    from_entity: Entity
    from_columns: tuple[str, ...]
    to_entity: Entity
    to_columns: tuple[str, ...]
    ttl: Duration | None
    owner: str | None
    description: str | None
    view: View
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Service:
    name: str
    features: tuple[tuple[str, str], ...]  # (view, feature), in the order written
    description: str | None
    span: Span = field(compare=False, repr=False)
    # `key ENTITY`: requests and labels carry this entity's keys; every other view's entity is
    # resolved through `paths` ((view, (link, ...)), the links from `key` to the view's entity).
    key: Entity | None = None
    paths: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # `full_feature_names`: each feature's column is `view__feature` (Feast's naming), so two
    # views' features of the same name can be served side by side
    full_names: bool = False

    def views(self) -> list[str]:
        return list(dict.fromkeys(v for v, _ in self.features))

    def column(self, view: str, feature: str) -> str:
        """The name of a feature's column in this service's training sets and served rows."""
        return f"{view}{FULL_NAME_SEPARATOR}{feature}" if self.full_names else feature

    def path(self, view: str) -> tuple[str, ...]:
        return dict(self.paths).get(view, ())

    def links(self) -> list[str]:
        """The links to resolve, each after the links its from-entity is resolved by."""
        out: dict[str, None] = {}
        for depth in range(MAX_LINK_DEPTH):
            for _, path in self.paths:
                if len(path) > depth:
                    out.setdefault(path[depth], None)
        return list(out)


@dataclass(frozen=True)
class Repository:
    entities: dict[str, Entity]
    sources: dict[str, Source]
    views: dict[str, View]
    services: dict[str, Service]
    files: tuple[str, ...] = ()
    links: dict[str, Link] = field(default_factory=dict)  # each also in `views`, as its view
