"""Pluggable warehouses: the same CLI on Postgres and Spark with only the URL changed, a
plug-in found through its entry point, and one-line errors for what users get wrong."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import warehouse_url
from redis_servers import flush
from typer.testing import CliRunner
from verify_report import assert_verified

from fsdsl.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner(env={"COLUMNS": "120"})
AT = "2024-05-01T00:00:00"
DEMO = [
    "--users",
    "200",
    "--orders",
    "3000",
    "--page-views",
    "3000",
    "--label-rows",
    "150",
    "--end",
    "2024-06-30",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backends")
    shutil.copytree(ROOT / "definitions", root / "definitions")
    shutil.copytree(ROOT / "backends", root / "backends")
    r = runner.invoke(
        app,
        ["demo-data", str(root / "definitions"), "--labels", str(root / "labels.parquet"), *DEMO],
    )
    assert r.exit_code == 0, r.output
    return root


def cli(*args: str):
    r = runner.invoke(app, list(args))
    assert "Traceback" not in r.output, r.output
    return r


def same_tables(a: Path, b: Path) -> int:
    ta, tb = pq.read_table(a).to_pylist(), pq.read_table(b).to_pylist()
    assert len(ta) == len(tb)
    bad = 0
    for x, y in zip(ta, tb, strict=True):
        for k in x:
            u, v = x[k], y[k]
            ok = u == v or (
                isinstance(u, float)
                and isinstance(v, float)
                and math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12)
            )
            bad += not ok
    return bad


@pytest.mark.parametrize("backend", ["postgres", "spark"])
def test_same_cli_with_only_the_url_changed(backend, project, warehouse_urls, redis_urls, tmp_path):
    url = warehouse_url(warehouse_urls, backend)
    d = str(project / "definitions")
    r = cli("demo-data", d, "-w", url, *DEMO)  # the same seeded data, in that warehouse
    assert r.exit_code == 0, r.output
    ref, got = tmp_path / "duckdb.parquet", tmp_path / f"{backend}.parquet"
    assert (
        cli(
            "training-set",
            d,
            "-s",
            "churn_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(ref),
        ).exit_code
        == 0
    )
    r = cli(
        "training-set",
        d,
        "-s",
        "churn_model",
        "-l",
        str(project / "labels.parquet"),
        "-o",
        str(got),
        "-w",
        url,
    )
    assert r.exit_code == 0, r.output
    assert same_tables(ref, got) == 0

    online = redis_urls["embedded"]
    flush(online)
    r = cli("run", d, "-w", url, "--online", online, "--at", AT, "-f", "json")
    assert r.exit_code == 0, r.output
    views = json.loads(r.output)["views"]
    assert all(v["entities_written"] > 0 for v in views)
    r = cli("verify", d, "-w", url, "--online", online, "--sample", "30", "-f", "json")
    assert_verified(r, {v["view"] for v in views}, sampled=30)


def test_plugin_backend_through_entry_point(project, tmp_path):
    """A toy backend in its own (fake-installed) distribution is picked up by `fsc`."""
    site = tmp_path / "site"
    dist = site / "toy_backend-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fsdsl.backends]\ntoy = toy_backend:ToyWarehouse\n")
    (site / "toy_backend.py").write_text(
        textwrap.dedent('''
        from pathlib import Path
        from fsdsl.backends.duckdb import DuckDBWarehouse

        class ToyWarehouse(DuckDBWarehouse):
            """toy:///path.duckdb: DuckDB under another name, and it leaves a trace."""

            def __init__(self, url, settings):
                Path(url[len("toy:///"):] + ".toy").write_text("used")
                super().__init__("duckdb:///" + url[len("toy:///"):], settings)
    ''')
    )
    db = project / ".fsc" / "warehouse.duckdb"
    out = tmp_path / "toy.parquet"
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fsdsl.cli",
            "training-set",
            str(project / "definitions"),
            "-s",
            "fraud_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(out),
            "-w",
            f"toy:///{db}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(f"{db}.toy").read_text() == "used"
    assert pq.read_table(out).num_rows == 150
    # and it is listed among the known schemes when a URL is wrong
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fsdsl.cli",
            "training-set",
            str(project / "definitions"),
            "-s",
            "fraud_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(out),
            "-w",
            "nope://x",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "toy" in proc.stderr


def one_line(r, code: str) -> str:
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1, r.output
    assert f"error[{code}]" in lines[0]
    return lines[0]


def test_unknown_scheme(project, tmp_path):
    line = one_line(
        cli(
            "training-set",
            str(project / "definitions"),
            "-s",
            "fraud_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
            "-w",
            "mysql://db.internal/features",
        ),
        "E0003",
    )
    assert "unknown warehouse URL scheme `mysql`" in line and "postgresql" in line


def test_connection_failure(project, tmp_path):
    line = one_line(
        cli(
            "training-set",
            str(project / "definitions"),
            "-s",
            "fraud_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
            "-w",
            "postgresql+psycopg://fsdsl:secret@127.0.0.1:1/features",
        ),
        "E0003",
    )
    assert "cannot connect" in line and "secret" not in line


def test_missing_driver_names_what_to_install(project, tmp_path, monkeypatch):
    from fsdsl.backends import base

    monkeypatch.setitem(
        base.BUILTIN, "postgresql", ("fsdsl_no_such_driver_module", "X", "sqlalchemy, psycopg")
    )
    line = one_line(
        cli(
            "training-set",
            str(project / "definitions"),
            "-s",
            "fraud_model",
            "-l",
            str(project / "labels.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
            "-w",
            "postgresql+psycopg://x@127.0.0.1/db",
        ),
        "E0003",
    )
    assert "pip install 'fsdsl[postgres]'" in line
