"""Dialects as subclasses with one registry: the built-in ones each a class, no branch on a
dialect's name left, and plug-ins (a `fsdsl.dialects` entry point, or a backend that brings its
own dialect) found through real, installed-looking distributions."""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from pathlib import Path

import pytest
import sqlglot
from typer.testing import CliRunner

from fsdsl.backends.base import connect
from fsdsl.check import load_repository
from fsdsl.cli import app
from fsdsl.compile import dialects
from fsdsl.compile.render import compile_repository
from fsdsl.diagnostics import UsageError

ROOT = Path(__file__).resolve().parents[1]
COMPILE = ROOT / "fsdsl" / "compile"
runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def registry(monkeypatch):
    """The registry as it was before the test: a plug-in registered here stays here."""
    monkeypatch.setattr(dialects, "_CLASSES", dict(dialects._CLASSES))


def install(site: Path, dist: str, group: str, entries: dict[str, str], module: str, code: str):
    """A distribution as pip would leave it: `<dist>.dist-info` with METADATA and
    entry_points.txt, next to its module; `site` must be on sys.path."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")
    (site / f"{module}.py").write_text(textwrap.dedent(code))


@pytest.fixture
def site(tmp_path, monkeypatch, registry):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("toy_"):
            del sys.modules[name]


def repo():
    r, diags = load_repository(ROOT / "definitions")
    assert r is not None, diags
    return r


def _dialect_name_compare(node: ast.Compare) -> bool:
    """`x.name == "bigquery"`, `self.name in ("spark", ...)`, `dialect == "duckdb"`: a
    comparison that names a dialect, or that tests a dialect object's own name."""
    operands = [node.left, *node.comparators]
    consts = []
    for o in operands:
        elts = o.elts if isinstance(o, ast.Tuple | ast.List | ast.Set) else [o]
        consts += [e.value for e in elts if isinstance(e, ast.Constant)]
    if any(isinstance(c, str) and c in dialects.DIALECTS for c in consts):
        return True
    return any(
        isinstance(o, ast.Attribute)
        and o.attr == "name"
        and isinstance(o.value, ast.Name)
        and o.value.id in ("self", "d", "dialect")
        for o in operands
    )


def test_no_branch_on_a_dialect_name_in_the_compiler():
    """What differs between dialects lives in their classes, never in `if name == ...`."""
    found = []
    for path in sorted(COMPILE.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and _dialect_name_compare(node):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)


def test_every_listed_dialect_is_a_registered_class_sqlglot_knows():
    for name in dialects.DIALECTS:
        d = dialects.get(name)
        cls = type(d)
        assert cls is not dialects.Dialect and issubclass(cls, dialects.Dialect), name
        assert cls.__module__ == dialects.__name__ and cls.name == name == d.name
        assert dialects._CLASSES[name] is cls
        sqlglot.Dialect.get_or_raise(cls.sqlglot_dialect)  # raises for a name sqlglot lacks
    assert list(dialects.names())[: len(dialects.DIALECTS)] == list(dialects.DIALECTS)
    # capabilities are class attributes, read without an instance
    assert dialects._CLASSES["duckdb"].has_asof is True
    assert not any(dialects._CLASSES[n].has_asof for n in dialects.DIALECTS if n != "duckdb")


def test_unknown_dialect_is_one_usage_error_listing_the_dialects():
    with pytest.raises(UsageError) as e:
        dialects.get("postgress")
    assert e.value.code == "E0004"
    assert str(e.value).startswith("unknown dialect `postgress`; choose one of duckdb, postgres")


TOY_DIALECT = """
    from sqlglot import exp
    from fsdsl.compile.dialects import Postgres

    class LoudPostgres(Postgres):
        \"\"\"Postgres, with its epoch seconds spelled by a function of its own.\"\"\"

        name = "loudpg"

        def epoch_seconds(self, t):
            return exp.Anonymous(this="LOUD_EPOCH", expressions=[t])
"""


def test_plugin_dialect_through_entry_point(site):
    install(
        site,
        "toy-dialect",
        "fsdsl.dialects",
        {"loudpg": "toy_dialect:LoudPostgres"},
        "toy_dialect",
        TOY_DIALECT,
    )
    # listed before it is imported: loading waits for the first use
    assert "loudpg" in dialects.names() and "toy_dialect" not in sys.modules
    r = repo()
    [pg] = compile_repository(r, service="churn_model", dialect="postgres")
    [loud] = compile_repository(r, service="churn_model", dialect="loudpg")
    assert loud.dialect == "loudpg" and dialects.get("loudpg").name == "loudpg"
    assert "LOUD_EPOCH(" in loud.sql and "LOUD_EPOCH(" not in pg.sql
    assert "DATE_PART('epoch'" in pg.sql and "DATE_PART('epoch'" not in loud.sql
    # everything else is inherited: the same text once the one change is undone, and the
    # refresh query binds its parameters by position as postgres does
    undone = re.sub(r'LOUD_EPOCH\(("\w+")\)', r"DATE_PART('epoch', \1)", loud.sql)
    assert undone == pg.sql
    [refresh] = compile_repository(r, view="user_orders", target="refresh", dialect="loudpg")
    assert "$1" in refresh.sql and ":as_of" not in refresh.sql


def test_plugin_dialect_is_offered_by_fsc_compile(site):
    install(
        site,
        "toy-dialect2",
        "fsdsl.dialects",
        {"loudpg": "toy_dialect2:LoudPostgres"},
        "toy_dialect2",
        TOY_DIALECT,
    )
    r = runner.invoke(
        app, ["compile", str(ROOT / "definitions"), "-s", "churn_model", "-d", "loudpg"]
    )
    assert r.exit_code == 0, r.output
    assert "LOUD_EPOCH(" in r.output
    r = runner.invoke(app, ["compile", str(ROOT / "definitions"), "-d", "nope"])
    assert r.exit_code == 2
    [line] = [x for x in r.output.splitlines() if x.strip()]
    assert line.startswith("error[E0004]: unknown dialect `nope`; choose one of duckdb,")
    assert line.endswith(", loudpg"), line


def test_broken_dialect_plugin_is_one_usage_error(site):
    install(
        site,
        "toy-broken",
        "fsdsl.dialects",
        {"gone": "toy_missing:Gone", "notone": "toy_notone:NotADialect"},
        "toy_notone",
        "class NotADialect:\n    name = 'notone'\n",
    )
    with pytest.raises(
        UsageError, match=r"`gone` dialect plug-in \(toy_missing:Gone\) cannot be loaded"
    ) as e:
        dialects.get("gone")
    assert e.value.code == "E0006"
    with pytest.raises(UsageError, match=r"`notone` .* not a subclass of .*Dialect") as e:
        dialects.get("notone")
    assert e.value.code == "E0006"


TOY_BACKEND = """
    from sqlglot import exp
    from fsdsl.backends.duckdb import DuckDBWarehouse
    from fsdsl.compile.dialects import DuckDB

    class TaggedDuck(DuckDB):
        \"\"\"DuckDB whose ordered lists are built by a function of its own.\"\"\"

        name = "taggedduck"

        def empty_list(self, element):
            return exp.Anonymous(this="TAGGED_EMPTY_LIST", expressions=[])

    class ToyWarehouse(DuckDBWarehouse):
        dialect = TaggedDuck

        def __init__(self, url, settings):
            super().__init__("duckdb:///:memory:", settings)
"""


def test_backend_plugin_brings_its_dialect(site):
    install(
        site,
        "toy-backend",
        "fsdsl.backends",
        {"toyduck": "toy_backend:ToyWarehouse"},
        "toy_backend",
        TOY_BACKEND,
    )
    assert "taggedduck" not in dialects.names()
    with connect("toyduck://x") as wh:
        assert wh.dialect == "taggedduck"
        assert type(dialects.get(wh.dialect)).__name__ == "TaggedDuck"
        assert "taggedduck" in dialects.names()
        [q] = compile_repository(repo(), service="churn_model", dialect=wh.dialect)
        assert "TAGGED_EMPTY_LIST()" in q.sql
        # and the warehouse runs what it compiles, rendered in its own dialect
        assert wh.query(sqlglot.exp.select(sqlglot.exp.Literal.number(1))).num_rows == 1


BAD_BACKENDS = """
    from fsdsl.backends.duckdb import DuckDBWarehouse

    class Unknown(DuckDBWarehouse):
        dialect = "nosuch"
"""


def test_backend_plugin_with_an_unknown_dialect_is_refused_at_connect(site):
    install(
        site, "toy-bad", "fsdsl.backends", {"toybad": "toy_bad:Unknown"}, "toy_bad", BAD_BACKENDS
    )
    with pytest.raises(UsageError) as e:
        connect("toybad://x")
    assert e.value.code == "E0004"
    assert str(e.value).startswith("the `toybad` backend plug-in: unknown dialect `nosuch`")


def test_backend_dialect_without_a_name_of_its_own_is_refused(registry):
    from fsdsl.backends.duckdb import DuckDBWarehouse

    class Nameless(dialects.Postgres):
        pass

    with pytest.raises(UsageError, match="has no `name` of its own") as e:

        class Toy(DuckDBWarehouse):
            dialect = Nameless

    assert e.value.code == "E0006"
    assert dialects.get("postgres") == dialects.Postgres()  # not replaced


def test_refused_plugin_leaves_the_builtin_it_named(site):
    """A plug-in under the entry point `shadow` whose class calls itself `duckdb` is refused;
    loading it defined (and so registered) that class, which must not replace the built-in."""
    install(
        site,
        "toy_shadow",
        "fsdsl.dialects",
        {"shadow": "toy_shadow:Shadow"},
        "toy_shadow",
        """
        from fsdsl.compile.dialects import DuckDB

        class Shadow(DuckDB):
            name = "duckdb"
        """,
    )
    with pytest.raises(UsageError) as e:
        dialects.get("shadow")
    assert e.value.code == "E0006"
    assert type(dialects.get("duckdb")) is dialects.DuckDB


def test_plugin_printing_with_a_dialect_sqlglot_lacks_is_refused(site):
    install(
        site,
        "toy_noprint",
        "fsdsl.dialects",
        {"noprint": "toy_noprint:NoPrint"},
        "toy_noprint",
        """
        from fsdsl.compile.dialects import Dialect

        class NoPrint(Dialect):
            name = "noprint"
        """,
    )
    with pytest.raises(UsageError) as e:
        dialects.get("noprint")
    assert e.value.code == "E0006" and "sqlglot does not know" in str(e.value)
    assert "noprint" not in dialects._CLASSES
