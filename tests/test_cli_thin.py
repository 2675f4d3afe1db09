"""`fsc` is a thin skin over `FeatureStore` (issue #10, item 3).

Two halves. The CLI module is read with `ast`: it holds no SQL, no database or file-format
driver, no file handling, and imports from the library only what a command calls or renders
with. Every ability the CLI gets from the library is then used from Python directly, on a copy
of the example project with its embedded defaults (the DuckDB file under `.fsc/` and the
embedded Redis), with no CLI in between.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fsdsl import FeatureStore
from fsdsl.compile.render import compile_repository
from fsdsl.diagnostics import FeatError, UsageError
from fsdsl.fmt import FormatResult, format_paths
from fsdsl.store import parse_entity_keys

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "fsdsl" / "cli.py"
TREE = ast.parse(CLI.read_text(encoding="utf-8"), str(CLI))

# What a command may import from the package: the store it calls, the fmt entry point (fmt works
# on files that do not load as a repository), lint's loader and rules (and their SARIF form), the
# diagnostics it renders, and the entry points of `fsc docs` and `fsc serve`, which are
# programs of their own over the store; and the CLI's own argument coercion (`cli_params`).
LIBRARY_SURFACE = {
    "fsdsl.cli_params",
    "fsdsl.store",
    "fsdsl.fmt",
    "fsdsl.check",
    "fsdsl.lint",
    "fsdsl.diagnostics",
    "fsdsl.docs_site",
    "fsdsl.serve",
}
DRIVERS = ("sqlglot", "duckdb", "pyarrow", "redis", "sqlalchemy", "pyspark", "psycopg")
SQL_WORD = re.compile(r"\b(SELECT|INSERT|CREATE|COPY|DROP|UPDATE|DELETE)\b")
FILE_WORK = {"write_text", "write_bytes", "read_text", "read_bytes", "exists", "mkdir", "rglob"}


def _imported() -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(TREE):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, node.module or ""))
    return out


def test_cli_holds_no_sql_and_no_driver():
    drivers = [
        f"cli.py:{line}: imports {name}"
        for line, name in _imported()
        if name.split(".")[0] in DRIVERS
    ]
    sql = [
        f"cli.py:{node.lineno}: {node.value[:60]!r}"
        for node in ast.walk(TREE)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and SQL_WORD.search(node.value)
    ]
    assert not drivers + sql, "\n".join(drivers + sql)


def test_cli_imports_only_the_library_surface():
    found = [
        f"cli.py:{line}: imports {name}"
        for line, name in _imported()
        if name.startswith("fsdsl")
        and not any(name == m or name.startswith(m + ".") for m in LIBRARY_SURFACE)
    ]
    assert not found, "\n".join(found)


def test_cli_touches_no_files():
    """Reading labels or keys, writing outputs, walking folders: the library's work."""
    found = [
        f"cli.py:{node.lineno}: {ast.unparse(node.func)}(...)"
        for node in ast.walk(TREE)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr in FILE_WORK)
            or (isinstance(node.func, ast.Name) and node.func.id == "open")
        )
    ]
    assert not found, "\n".join(found)


# ---- the same abilities from Python -------------------------------------------------------------
AT = "2024-05-01T00:00:00"
SIZES = dict(users=200, orders=3000, page_views=3000, labels=80, seed=3, days=150)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The example's definitions and profiles; nothing else, so every default is embedded."""
    from fsdsl.online.server import stop_embedded

    root = tmp_path_factory.mktemp("thin")
    shutil.copytree(ROOT / "definitions", root / "definitions")
    shutil.copytree(ROOT / "backends", root / "backends")
    yield root
    stop_embedded(root)


@pytest.fixture(scope="module")
def filled(project):
    labels = project / "labels.csv"
    data = FeatureStore.demo_data(
        project / "definitions", end=dt.date(2024, 5, 31), labels_path=labels, **SIZES
    )
    return project, data, labels


def test_demo_data_fills_the_default_warehouse(filled):
    import duckdb

    project, data, labels = filled
    warehouse = project / ".fsc" / "warehouse.duckdb"
    assert data.warehouse == str(warehouse)
    links = data.counts.pop("device_links")
    assert data.counts == {
        "orders": 3000,
        "web.page_views": 3000,
        "labels": 80,
        "device_labels": 80,
    }
    assert links >= 300  # a row per device (1.5 per user) and some re-links and unlinks
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(first, last)] = con.execute(
            "SELECT min(event_timestamp), max(event_timestamp) FROM orders"
        ).fetchall()
    assert dt.datetime(2024, 1, 2) <= first and last < dt.datetime(2024, 5, 31)
    assert pacsv.read_csv(labels).num_rows == 80


def test_demo_data_needs_no_definitions(tmp_path):
    """As `fsc demo-data`: it fills a warehouse before there is anything to check."""
    data = FeatureStore.demo_data(
        tmp_path / "nothing", warehouse=f"duckdb:///{tmp_path}/w.duckdb", users=5, orders=10,
        page_views=10, labels=3, end=dt.date(2024, 1, 31), days=10,
    )  # fmt: skip
    assert data.warehouse == f"{tmp_path}/w.duckdb" and data.counts["labels"] == 3


def test_compile_lists_the_queries(project):
    store = FeatureStore(project / "definitions")
    repo = store.repo
    everything = store.compile()  # the profile's dialect
    assert [(q.kind, q.name, q.dialect) for q in everything] == [
        ("service", name, "duckdb") for name in repo.services
    ]
    assert store.compile(view="user_orders", target="refresh", dialect="postgres") == (
        compile_repository(repo, view="user_orders", target="refresh", dialect="postgres")
    )
    with pytest.raises(UsageError, match="unknown dialect `nope`") as e:
        store.compile(dialect="nope")
    assert e.value.code == "E0004"


def test_compile_to_a_named_dialect_needs_no_profile(project, monkeypatch):
    monkeypatch.setenv("FSC_PROFILE", "no_such_profile")
    store = FeatureStore(project / "definitions")
    assert store.compile(service="churn_model", dialect="spark")[0].dialect == "spark"
    with pytest.raises(UsageError, match="no profile `no_such_profile`"):
        FeatureStore(project / "definitions").warehouse()


def test_training_set_from_a_file_a_table_or_arrow_and_written_out(filled, tmp_path):
    project, _, labels = filled
    with FeatureStore(project / "definitions") as store:
        stages = []
        out = tmp_path / "ts.parquet"
        from_file = store.training_set(labels, "churn_model", out=out, progress=stages.append)
        assert stages[-1] == f"writing {out}"
        assert pq.read_table(out).equals(from_file)
        from_table = store.training_set(None, "churn_model", labels_table="labels")
        churned = from_file.column("churned").to_pylist()
        assert from_table.column("churned").to_pylist() == churned
        again = store.training_set(pacsv.read_csv(labels), "churn_model")
        assert again.equals(from_file)
        n = len(store.service_features("churn_model"))
        assert from_file.num_columns == 3 + n


def test_run_announces_every_view_before_working(filled):
    project, _, _ = filled
    calls: list[tuple] = []
    with FeatureStore(project / "definitions") as store:
        runs = store.run(AT, progress=lambda *a: calls.append(a))
        names = [v.name for v in store.views_named(None)]
    assert [r.view for r in runs] == names
    assert calls[: len(names)] == [(n, 0, None) for n in names]
    assert {c[0] for c in calls[len(names) :]} <= set(names)


def test_online_features_from_a_keys_file_to_a_file(filled, tmp_path):
    project, _, _ = filled
    with FeatureStore(project / "definitions") as store:
        store.run(AT)
        keys = tmp_path / "keys.csv"
        pacsv.write_csv(pa.table({"user_id": ["u000001", "u000002", "nobody"]}), keys)
        served = store.online_features("churn_model", keys, with_status=True)
        assert isinstance(served, pa.Table) and served.num_rows == 3
        out = tmp_path / "served.csv"
        written = store.online_features("churn_model", keys, with_status=True, out=out)
        assert written.equals(served)
        back = pacsv.read_csv(out)
        assert "__status.user_orders" in back.column_names and back.num_rows == 3
        row = store.online_features("churn_model", parse_entity_keys(["user_id=nobody"]))
        assert row == {k: v for k, v in served.to_pylist()[2].items() if k != "__status"}


def test_parse_entity_keys():
    assert parse_entity_keys(["user_id=u1", "x=a=b", "e="]) == {
        "user_id": "u1",
        "x": "a=b",
        "e": "",
    }
    for bad in ("user_id", "=u1"):
        with pytest.raises(UsageError, match=f"`{bad}` is not KEY=VALUE") as e:
            parse_entity_keys([bad])
        assert e.value.code == "E0004"


def test_verify_after_run(filled):
    project, _, _ = filled
    with FeatureStore(project / "definitions") as store:
        store.run(AT)
        result = store.verify(sample=20)
    assert result.ok and result.compared > 0


def test_format_paths_checks_rewrites_and_reports(tmp_path):
    ugly = tmp_path / "a.feat"
    ugly.write_text("entity user {key user_id: string}\n", encoding="utf-8")
    broken = tmp_path / "b.feat"
    broken.write_text("entity {\n", encoding="utf-8")
    checked = list(format_paths([tmp_path], check=True))
    assert [(r.path, r.status) for r in checked] == [(ugly, "changed"), (broken, "broken")]
    assert checked[0].diff.startswith("---") and "key user_id" in checked[0].diff
    assert ugly.read_text(encoding="utf-8") == "entity user {key user_id: string}\n"
    assert checked[1].diagnostics and checked[1].diagnostics[0].is_error
    [rewritten] = list(format_paths([ugly]))
    assert rewritten == FormatResult(ugly, "changed", checked[0].original, checked[0].text)
    assert ugly.read_text(encoding="utf-8") == rewritten.text
    assert [r.status for r in format_paths([ugly], check=True)] == ["unchanged"]
    with pytest.raises(UsageError, match="no such file or folder") as e:
        list(format_paths([tmp_path / "missing"]))
    assert e.value.code == "E0001"


def test_broken_definitions_still_raise_at_construction(tmp_path):
    (tmp_path / "x.feat").write_text("entity {\n", encoding="utf-8")
    with pytest.raises(FeatError):
        FeatureStore(tmp_path)
