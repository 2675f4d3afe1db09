"""The catalogue: one model of what a repository defines, for `fsc list/describe/search` and the
static docs site alike.

Finding a feature before writing it again needs more than the IR gives directly: the text a
person wrote (with its `file:line`), who owns it, which source columns it reads, and what reads
it (derived features, services). `build` gathers that once, from the resolved repository and the
text of its files, into flat `Entry` records that both a terminal table and a web page can show.

Lineage is column-level and transitive: a derived feature reads what the features it references
read. A view's `where` is part of what every one of its features reads, since a change to a
filtered column changes their values; entity keys and the event timestamp are not listed, since
every feature of a view reads them alike and they would drown the columns that tell features
apart.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from fsdsl import ir
from fsdsl.diagnostics import Span, UsageError

KINDS = ("entity", "source", "view", "feature", "service", "link")
SQL_KINDS = ("view", "feature", "service")  # the kinds `entry_sql` compiles
UNKNOWN_NAME = "E0610"  # a name `describe` cannot find in the catalogue
NO_SQL = "E0611"  # `entry_sql` asked for an entity, source or link

# Search tiers, best first; a multi-word query scores the mean of its words' tiers.
EXACT, PREFIX, TOKEN, PART, TEXT, COLUMN = 100.0, 80.0, 60.0, 45.0, 40.0, 20.0
_TIE_ORDER = {
    k: i for i, k in enumerate(("feature", "view", "service", "source", "entity", "link"))
}
_SPLIT = re.compile(r"[._\s\-:]+")


@dataclass(frozen=True)
class Entry:
    kind: str  # one of KINDS
    name: str  # features are "view.feature"; everything else its own name
    type: str | None  # features: the type; other kinds: None
    owner: str | None  # features: their view's owner
    description: str | None
    window: str | None  # "30d" for a windowed aggregation ("7d, 30d" if it mixes windows)
    ttl: str | None  # views and their features
    filter: str | None  # the view's `where` as written (views and their features)
    file: str  # the path as the repository was loaded from
    line: int  # 1-based
    definition: str  # the definition's text, dedented: a feature's line, a whole block
    reads: tuple[str, ...]  # "source.column", transitively for derived features
    derives_from: tuple[str, ...]  # features it references (a service: the features it serves)
    derived_by: tuple[str, ...]  # features that reference it
    used_by: tuple[str, ...]  # services that serve it (or any feature of it / built on it)
    # Beyond the lineage: what a page about the entry lists.
    entity: str | None = None  # views, features: the entity they are keyed by
    source: str | None = None  # views, features: the source they read
    columns: tuple[str, ...] = ()  # sources: "column: type"; entities: "key: type"
    features: tuple[str, ...] = ()  # views, services: their features, qualified
    views: tuple[str, ...] = ()  # sources, entities: the views built on them

    @property
    def short_name(self) -> str:
        """A feature's own name; any other entry's name."""
        return self.name.split(".", 1)[1] if self.kind == "feature" else self.name

    @property
    def view(self) -> str | None:
        """The view a feature belongs to (a view: itself)."""
        if self.kind == "feature":
            return self.name.split(".", 1)[0]
        return self.name if self.kind == "view" else None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "type": self.type,
            "owner": self.owner,
            "description": self.description,
            "window": self.window,
            "ttl": self.ttl,
            "filter": self.filter,
            "file": self.file,
            "line": self.line,
            "definition": self.definition,
            "reads": list(self.reads),
            "derives_from": list(self.derives_from),
            "derived_by": list(self.derived_by),
            "used_by": list(self.used_by),
            "entity": self.entity,
            "source": self.source,
            "columns": list(self.columns),
            "features": list(self.features),
            "views": list(self.views),
        }


@dataclass(frozen=True)
class _Keys:
    """An entry's lowered search fields, computed once per catalogue."""

    name: str
    short: str
    tokens: frozenset[str]
    text: str  # description and owner
    reads: str


@dataclass
class Catalogue:
    entries: list[Entry]
    _by_name: dict[tuple[str, str], Entry] = field(default_factory=dict, init=False, repr=False)
    _keys: list[_Keys] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {(e.kind, e.name): e for e in self.entries}

    def of_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    def matches(self, name: str) -> list[Entry]:
        """Every entry `name` can mean: `kind:name` picks a kind; a qualified feature name, any
        entry of that exact name, else a feature of that bare name (several if views share it).
        Exact names come first, in the order views, features, services, sources, entities,
        links, so that a view and a feature of the same name resolve to the view."""
        kind, _, bare = name.partition(":")
        if bare and kind in KINDS:
            e = self._by_name.get((kind, bare))
            if e is None and kind == "feature":
                return [f for f in self.of_kind("feature") if f.short_name == bare]
            return [e] if e else []
        order = ("view", "feature", "service", "source", "entity", "link")
        exact = [self._by_name[(k, name)] for k in order if (k, name) in self._by_name]
        if exact:
            return exact
        return [e for e in self.entries if e.kind == "feature" and e.short_name == name]

    def get(self, name: str) -> Entry | None:
        """The entry `name` means (see `matches`), or None when it means none or several
        features of that bare name."""
        found = self.matches(name)
        if len(found) > 1 and all(e.kind == "feature" for e in found):
            return None
        return found[0] if found else None

    def find(self, name: str) -> Entry:
        """`get`, or a usage error naming what `name` might have meant."""
        found = self.get(name)
        if found is not None:
            return found
        close = ", ".join(f"`{c}`" for c in self.suggestions(name))
        if len(self.matches(name)) > 1:
            raise UsageError(
                f"`{name}` names features of several views; give one of {close}", UNKNOWN_NAME
            )
        hint = f"; did you mean {close}?" if close else ""
        raise UsageError(f"nothing is called `{name}`{hint}", UNKNOWN_NAME)

    def suggestions(self, name: str, n: int = 3) -> list[str]:
        """Close names for a name `get` cannot resolve: the features of that bare name when
        several views share it, else difflib's nearest names (bare feature names included)."""
        import difflib

        found = self.matches(name)
        if len(found) > 1:
            return [e.name for e in found]
        names: dict[str, str] = {}
        for e in self.entries:
            names.setdefault(e.name, e.name)
            if e.kind == "feature":
                names.setdefault(e.short_name, e.name)
        close = difflib.get_close_matches(name, list(names), n=n, cutoff=0.6)
        return list(dict.fromkeys(names[c] for c in close))

    def search(self, text: str, limit: int = 20) -> list[tuple[float, Entry]]:
        """Entries matching every word of `text`, best first: an exact name, then a name
        prefix, a whole word of the name, a part of the name, the description or owner, then
        the source columns read. Case-insensitive; ties go to features, then views, then the
        shorter name."""
        words = [w for w in text.lower().split() if w]
        if not words:
            return []
        if self._keys is None:
            self._keys = [_keys(e) for e in self.entries]
        whole = " ".join(words)
        hits: list[tuple[float, int, int, str, Entry]] = []
        for k, e in zip(self._keys, self.entries, strict=True):
            if whole == k.name or whole == k.short:
                score = EXACT
            else:
                scores = [_word_score(w, k) for w in words]
                if not all(scores):
                    continue
                score = sum(scores) / len(scores)
            hits.append((-score, _TIE_ORDER.get(e.kind, 9), len(e.name), e.name, e))
        hits.sort(key=lambda h: h[:4])
        return [(-h[0], h[4]) for h in hits[: max(0, limit)]]


def _keys(e: Entry) -> _Keys:
    name = e.name.lower()
    short = e.short_name.lower()
    text = " ".join(x for x in (e.description, e.owner) if x).lower()
    return _Keys(name, short, frozenset(_SPLIT.split(name)), text, " ".join(e.reads).lower())


def _word_score(w: str, k: _Keys) -> float:
    if w == k.name or w == k.short:
        return EXACT
    if k.name.startswith(w) or k.short.startswith(w):
        return PREFIX
    if w in k.tokens:
        return TOKEN
    if w in k.name:
        return PART
    if w in k.text:
        return TEXT
    if w in k.reads:
        return COLUMN
    return 0.0


# ---- building ---------------------------------------------------------------------------------
class _Texts:
    """The text of each file, read once, split into lines."""

    def __init__(self, given: dict[str, str] | None):
        self.given = given or {}
        self.lines: dict[str, list[str] | None] = {}

    def _file(self, file: str) -> list[str] | None:
        if file not in self.lines:
            text = self.given.get(file)
            if text is None:
                try:
                    text = Path(file).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    text = None
            # the parser counts only \n as a line break
            self.lines[file] = None if text is None else text.split("\n")
        return self.lines[file]

    def block(self, span: Span) -> str:
        """The whole lines of `span`, dedented: a definition as its author laid it out."""
        lines = self._file(span.file)
        if lines is None:
            return ""
        if span.end_line <= span.line:
            return lines[span.line - 1].strip() if span.line <= len(lines) else ""
        return textwrap.dedent("\n".join(lines[span.line - 1 : span.end_line])).strip("\n")

    def exact(self, span: Span) -> str | None:
        """The characters of `span` itself: a `where` as written."""
        lines = self._file(span.file)
        if lines is None or span.end_line > len(lines):
            return None
        if span.line == span.end_line:
            return lines[span.line - 1][span.col - 1 : span.end_col - 1]
        part = [lines[span.line - 1][span.col - 1 :]]
        part += lines[span.line : span.end_line - 1]
        part.append(lines[span.end_line - 1][: span.end_col - 1])
        return "\n".join(part)


def _columns(expr: ir.Expr) -> list[str]:
    return [n.name for n in ir.walk(expr) if isinstance(n, ir.Column)]


def _windows(expr: ir.Expr) -> str | None:
    found = sorted(
        {n.window for n in ir.walk(expr) if isinstance(n, ir.Aggregate) and n.window},
        key=lambda d: d.seconds,
    )
    return ", ".join(str(d) for d in found) or None


def _sorted(names) -> tuple[str, ...]:
    return tuple(sorted(set(names)))


def build(repo: ir.Repository, texts: dict[str, str] | None = None) -> Catalogue:
    """The catalogue of `repo`. `texts` maps file names to their text when the repository was
    not loaded from files (`load_text`); otherwise each file is read once, from its path."""
    src = _Texts(texts)
    used_by: dict[tuple[str, str], list[str]] = {}
    for s in repo.services.values():
        for pair in s.features:
            used_by.setdefault(pair, []).append(s.name)

    entries: list[Entry] = []
    view_entries: list[Entry] = []
    view_reads: dict[str, tuple[str, ...]] = {}
    view_users: dict[str, tuple[str, ...]] = {}
    feature_reads: dict[tuple[str, str], tuple[str, ...]] = {}
    for v in _views(repo):
        refs = {
            f.name: [n.name for n in ir.walk(f.expr) if isinstance(n, ir.FeatureRef)]
            for f in v.features
        }
        referenced_by: dict[str, list[str]] = {}
        for name, targets in refs.items():
            for t in targets:
                referenced_by.setdefault(t, []).append(name)
        filter_cols = _columns(v.where) if v.where is not None else []
        where = src.exact(v.where.span) if v.where is not None else None
        ttl = str(v.ttl) if v.ttl else None
        prefix = f"{v.name}."
        reads: dict[str, tuple[str, ...]] = {}
        for f in v.in_dependency_order():  # a referenced feature's reads are known first
            cols = set(_columns(f.expr)) | set(filter_cols)
            for t in refs[f.name]:
                cols.update(reads[t])
            reads[f.name] = tuple(sorted(cols))
        feats = []
        for f in v.features:
            qualified = (v.name, f.name)
            feature_reads[qualified] = tuple(f"{v.source.name}.{c}" for c in reads[f.name])
            feats.append(
                Entry(
                    kind="feature",
                    name=prefix + f.name,
                    type=str(f.type),
                    owner=v.owner,
                    description=None,
                    window=_windows(f.expr),
                    ttl=ttl,
                    filter=where,
                    file=f.span.file,
                    line=f.span.line,
                    definition=src.block(f.span),
                    reads=feature_reads[qualified],
                    derives_from=tuple(prefix + t for t in dict.fromkeys(refs[f.name])),
                    derived_by=tuple(prefix + t for t in referenced_by.get(f.name, ())),
                    used_by=tuple(used_by.get(qualified, ())),
                    entity=v.entity.name,
                    source=v.source.name,
                )
            )
        view_reads[v.name] = _sorted(r for f in feats for r in f.reads)
        view_users[v.name] = _sorted(s for f in feats for s in f.used_by)
        view_entries.append(
            Entry(
                kind="view",
                name=v.name,
                type=None,
                owner=v.owner,
                description=v.description,
                window=None,
                ttl=ttl,
                filter=where,
                file=v.span.file,
                line=v.span.line,
                definition=src.block(v.span),
                reads=view_reads[v.name],
                derives_from=(),
                derived_by=(),
                used_by=view_users[v.name],
                entity=v.entity.name,
                source=v.source.name,
                features=tuple(f.name for f in feats),
            )
        )
        entries.extend(feats)

    def over(views: list[ir.View]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        names = tuple(v.name for v in views)
        return names, _sorted(s for n in names for s in view_users[n])

    for e in repo.entities.values():
        names, users = over([v for v in _views(repo) if v.entity.name == e.name])
        keyed = [s.name for s in repo.services.values() if _name(getattr(s, "key", None)) == e.name]
        users = _sorted([*users, *keyed])
        entries.append(
            Entry(
                kind="entity",
                name=e.name,
                type=None,
                owner=getattr(e, "owner", None),
                description=e.description,
                window=None,
                ttl=None,
                filter=None,
                file=e.span.file,
                line=e.span.line,
                definition=src.block(e.span),
                reads=(),
                derives_from=(),
                derived_by=(),
                used_by=users,
                columns=tuple(f"{k.name}: {k.type}" for k in e.keys),
                views=names,
            )
        )
    for s in repo.sources.values():
        names, users = over([v for v in _views(repo) if v.source.name == s.name])
        entries.append(
            Entry(
                kind="source",
                name=s.name,
                type=None,
                owner=getattr(s, "owner", None),
                description=s.description,
                window=None,
                ttl=None,
                filter=None,
                file=s.span.file,
                line=s.span.line,
                definition=src.block(s.span),
                reads=(),
                derives_from=(),
                derived_by=(),
                used_by=users,
                columns=tuple(f"{c}: {t}" for c, t in s.columns.items()),
                views=names,
            )
        )
    entries.extend(view_entries)
    for s in repo.services.values():
        qualified = tuple(f"{v}.{f}" for v, f in s.features)
        entries.append(
            Entry(
                kind="service",
                name=s.name,
                type=None,
                owner=getattr(s, "owner", None),
                description=s.description,
                window=None,
                ttl=None,
                filter=None,
                file=s.span.file,
                line=s.span.line,
                definition=src.block(s.span),
                reads=_sorted(r for pair in s.features for r in feature_reads.get(pair, ())),
                derives_from=qualified,
                derived_by=(),
                used_by=(),
                features=qualified,
            )
        )
    # Entity resolution (#12): a link compiles to a view of `repo.views` (its `link` set), which
    # is listed once, as the link. Read through getattr, so a repository without links works.
    for link in (getattr(repo, "links", None) or {}).values():
        entries.append(_link_entry(link, repo, src))
    order = {k: i for i, k in enumerate(KINDS)}
    entries.sort(key=lambda e: order[e.kind])  # stable: file order within a kind
    return Catalogue(entries)


def _views(repo: ir.Repository) -> list[ir.View]:
    """The views a person wrote: not those that links compile to."""
    return [v for v in repo.views.values() if getattr(v, "link", None) is None]


def _name(x) -> str | None:
    return getattr(x, "name", None)


def _link_entry(link, repo: ir.Repository, src: _Texts) -> Entry:
    """A link: which `to` entity a `from` entity belongs to, read from a source."""
    span = getattr(link, "span", None) or Span.unknown()
    source = _name(getattr(link, "source", None))
    cols = (*getattr(link, "from_columns", ()), *getattr(link, "to_columns", ()))
    users = [
        s.name
        for s in repo.services.values()
        if callable(getattr(s, "links", None)) and link.name in s.links()
    ]
    frm, to = _name(getattr(link, "from_entity", None)), _name(getattr(link, "to_entity", None))
    ttl = getattr(link, "ttl", None)
    return Entry(
        kind="link",
        name=link.name,
        type=f"{frm} -> {to}" if frm and to else None,
        owner=getattr(link, "owner", None),
        description=getattr(link, "description", None),
        window=None,
        ttl=str(ttl) if ttl else None,
        filter=None,
        file=span.file,
        line=span.line,
        definition=src.block(span),
        reads=_sorted(f"{source}.{c}" for c in cols) if source else (),
        derives_from=(),
        derived_by=(),
        used_by=_sorted(users),
        entity=frm,
        source=source,
        columns=tuple(f"{k.name}: {k.type}" for k in getattr(link.to_entity, "keys", ()))
        if to
        else (),
    )


def entry_sql(repo: ir.Repository, entry: Entry, dialect: str) -> str:
    """The SQL behind an entry, pretty: a view's refresh query, a feature's training query
    (that one feature, as of each label row), a service's training query."""
    from fsdsl.compile.render import compile_repository, sql_text
    from fsdsl.compile.training import training_query

    if entry.kind == "view":
        return compile_repository(repo, view=entry.name, target="refresh", dialect=dialect)[0].sql
    if entry.kind == "service":
        return compile_repository(repo, service=entry.name, dialect=dialect)[0].sql
    if entry.kind == "feature":
        view, feature = entry.name.split(".", 1)
        return sql_text(training_query(repo, [(view, feature)], dialect), dialect, pretty=True)
    raise UsageError(f"a {entry.kind} has no SQL of its own: `{entry.name}`", NO_SQL)
