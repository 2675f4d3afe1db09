"""The syntax tree of a `.feat` file: what was written, where, before any name is resolved."""

from __future__ import annotations

from dataclasses import dataclass, field

from fsdsl.diagnostics import Span


# ---- types ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TypeRef:
    name: str
    span: Span
    element: TypeRef | None = None  # set for `list<T>`


# ---- expressions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    span: Span


def children(e: Expr) -> list[Expr]:
    """The expressions directly below `e`, in the order written. A field holds an expression,
    a tuple of them, or a tuple of tuples (the branches of `case`); walking fields keeps every
    tree walker in step with the node types."""
    out = []
    for value in vars(e).values():
        for item in value if isinstance(value, tuple) else (value,):
            for part in item if isinstance(item, tuple) else (item,):
                if isinstance(part, Expr):
                    out.append(part)
    return out


@dataclass(frozen=True)
class Literal(Expr):
    value: object  # str | int | float | bool | None
    kind: str  # "string" | "int" | "float" | "bool" | "null"


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]
    star: bool = False  # `count(*)`
    name_span: Span | None = None


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "-" | "+" | "not"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # + - * / % = != < <= > >= and or
    left: Expr
    right: Expr


@dataclass(frozen=True)
class IsNull(Expr):
    operand: Expr
    negated: bool


@dataclass(frozen=True)
class InList(Expr):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True)
class Between(Expr):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool


@dataclass(frozen=True)
class Case(Expr):
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None


@dataclass(frozen=True)
class Cast(Expr):
    operand: Expr
    to: TypeRef


@dataclass(frozen=True)
class Extract(Expr):
    part: str
    operand: Expr
    part_span: Span | None = None


# ---- declarations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Ident:
    name: str
    span: Span


@dataclass(frozen=True)
class Duration:
    text: str
    span: Span


@dataclass(frozen=True)
class Text:
    value: str
    span: Span


@dataclass(frozen=True)
class Column:
    name: Ident
    type: TypeRef


@dataclass(frozen=True)
class Entity:
    name: Ident
    keys: tuple[Column, ...]
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Source:
    name: Ident
    table: Text | None
    timestamp: Ident | None
    created: Ident | None
    columns: tuple[Column, ...]
    description: Text | None
    owner: Text | None
    span: Span
    stream: Text | None = None  # the Redis Stream key the stream worker reads, if not the default


@dataclass(frozen=True)
class Feature:
    name: Ident
    type: TypeRef | None
    expr: Expr
    window: Duration | None
    span: Span


@dataclass(frozen=True)
class View:
    name: Ident
    entity: Ident | None
    entity_by: tuple[Ident, ...]
    source: Ident | None
    where: Expr | None
    ttl: Duration | None
    owner: Text | None
    description: Text | None
    features: tuple[Feature, ...]
    span: Span
    # statements written twice (e.g. two `ttl` lines): reported by the checker
    repeated: tuple[Ident, ...] = field(default=())


@dataclass(frozen=True)
class FeatureRef:
    view: Ident
    feature: Ident | None  # None for `view.*`
    span: Span
    via: tuple[Ident, ...] = ()  # `via LINK`: the links to resolve the view's entity through


@dataclass(frozen=True)
class Service:
    name: Ident
    refs: tuple[FeatureRef, ...]
    description: Text | None
    owner: Text | None
    span: Span
    key: Ident | None = None  # `key ENTITY`: what requests carry; links resolve the rest
    full_names: bool = False  # `full_feature_names`: columns named `view__feature`


@dataclass(frozen=True)
class LinkEnd:
    entity: Ident
    by: tuple[Ident, ...]  # the source columns of the entity's keys (default: the keys' names)


@dataclass(frozen=True)
class Link:
    """`link NAME { from SOURCE  A -> B  ttl D ... }`: which B an A belongs to, over time."""

    name: Ident
    source: Ident | None
    from_end: LinkEnd | None
    to_end: LinkEnd | None
    ttl: Duration | None
    owner: Text | None
    description: Text | None
    span: Span


@dataclass(frozen=True)
class Module:
    """One parsed file."""

    path: str
    text: str
    entities: tuple[Entity, ...]
    sources: tuple[Source, ...]
    views: tuple[View, ...]
    services: tuple[Service, ...]
    links: tuple[Link, ...] = ()
