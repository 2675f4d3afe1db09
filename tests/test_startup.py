"""The fixed cost of `fsc run` with no new data (issue #11 point 10) and of `fsc lint`: what
was removed from it must stay removed, and stay exact.

* fsc's own process converts its arguments without pydantic (`fsdsl/cli_params.py`), with the
  same values, and typer's own errors for values it does not handle;
* a run of some views reads only their run states, not a SCAN of the store;
* the aggregate state is written with lz4, a state written with zstd (before) still serves an
  incremental run, and a run with no new events still lowers the values of entities whose
  events left a window (the merge of the changed rows replaces theirs).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from projects import example_project
from redis_servers import flush
from typer.testing import CliRunner
from verify_report import assert_verified

from fsdsl import FeatureStore
from fsdsl.cli import app
from fsdsl.online import aggstate

ROOT = Path(__file__).resolve().parents[1]
AT, LATER = "2024-05-01T00:00:00", "2024-05-04T00:00:00"
runner = CliRunner(env={"COLUMNS": "120"})
LZ4_FRAME = b"\x04\x22\x4d\x18"  # the magic number each lz4 frame starts with


def _fsc(args: list[str], cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`fsc ARGS` as the installed script runs it (`cli.main`) in a fresh interpreter; with the
    modules it imported."""
    code = (
        "import json, sys\n"
        f"sys.argv = ['fsc', *{args!r}]\n"
        "from fsdsl.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "print('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env
    )
    out, _, modules = done.stdout.rpartition("\nMODULES ")
    done.stdout = out
    return done, json.loads(modules)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return example_project(
        tmp_path_factory.mktemp("startup"), users=200, orders=4000, page_views=2000, seed=7
    )


def test_fsc_lint_and_run_import_no_pydantic(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    defs = str(project / "definitions")
    done, modules = _fsc(["lint", defs, "-f", "json"])
    assert done.returncode == 0, done.stderr
    assert "pydantic" not in modules
    args = ["run", defs, "--online", url, "-v", "user_orders", "-f", "json"]
    done, _ = _fsc([*args, "--at", AT])  # full: fills the caches
    assert done.returncode == 0, done.stderr
    done, modules = _fsc([*args, "--at", LATER])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["views"][0]["mode"] == "incremental"
    assert "pydantic" not in modules


@pytest.mark.parametrize(
    "args",
    [
        ["run", "/nonexistent", "-f", "xml"],  # an unknown choice
        ["get", "definitions", "-s", "churn_model", "u1", "-f", "JSON"],  # choices are exact
        ["search", "definitions", "orders", "--limit", "x"],  # not a number
        ["search", "definitions", "orders", "--limit", "-3", "-f", "json"],  # left to typer
        ["search", "definitions", "orders", "--limit", "002", "-f", "json"],
        ["list", "definitions", "views", "-f", "json"],
        ["compile", "definitions", "-v", "user_orders", "-s", "churn_model", "-f", "json"],
    ],
)
def test_arguments_convert_as_typer_converts_them(args):
    """Output and exit code of `fsc` (plain coercion) equal those of typer's own coercion."""
    ours, _ = _fsc(args)
    typers = runner.invoke(app, args)
    assert ours.returncode == typers.exit_code
    assert ours.stdout.strip() == typers.stdout.strip()
    if ours.returncode == 2 and "Usage" in typers.output:
        # the error box: the same message (the program's name differs: `fsc` against `root`)
        assert _box(ours.stderr) == _box(typers.output)


def _box(text: str) -> str:
    return " ".join(line.strip("│ ") for line in text.splitlines() if line.startswith("│"))


def test_a_run_of_some_views_reads_their_states_only(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    with FeatureStore(project / "definitions", online=url) as store:
        store.run(AT, views=["user_orders", "user_browsing"])
        online = store.online()
        every = online.all_states()
        assert set(every) == {"user_orders", "user_browsing"}
        named = online.all_states(["user_orders", "device_owner"])
        assert named == {"user_orders": every["user_orders"]}


def _zstd(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_a_run_without_new_events_lowers_what_left_a_window(project, redis_urls):
    """Three days later, no row added to the warehouse (only rows ingested in between become
    visible): the entities whose orders left `orders_7d` are
    rewritten with lower values, every stored value equals the training query's, and the state
    read back is the one the run wrote (lz4) — also when the previous run stored it with zstd,
    as fsc did before."""
    url = redis_urls["embedded"]
    flush(url)
    defs = str(project / "definitions")
    with FeatureStore(defs, online=url) as store:
        (full,) = store.run(AT, views=["user_orders"])
        online = store.online()
        view = store.repo.views["user_orders"]
        ns = online.state("user_orders")["ns"]
        users = [{"user_id": f"u{i:06d}"} for i in range(1, 201)]
        before = store.online_features("churn_model", users)
        # the state as a run before this change stored it
        state = aggstate.loads(online.read_aggregates(ns), view)
        online.set_state("user_orders", online.state("user_orders"), aggregates=_zstd(state))
        (run,) = store.run(LATER, views=["user_orders"])
        assert run.mode == "incremental" and run.entities_written + run.entities_removed > 0
        after = store.online_features("churn_model", users)
        dropped = [
            u
            for u, b, a in zip(users, before, after, strict=True)
            if (a["orders_7d"] or 0) < (b["orders_7d"] or 0)
        ]
        assert dropped, "no entity lost an order from its 7 days: the test proves nothing"
        stored = online.read_aggregates(ns)
        keys = pa.ipc.open_stream(stored).read_all()["user_id"].to_pylist()
        assert len(keys) == len(set(keys)) and set(state["user_id"].to_pylist()) <= set(keys)
        assert LZ4_FRAME in stored and LZ4_FRAME not in _zstd(state)
    result = runner.invoke(
        app,
        ["verify", defs, "--online", url, "-v", "user_orders", "--sample", "1000", "-f", "json"],
    )
    assert_verified(result, {"user_orders"})


def test_merge_replaces_the_changed_entities_rows(project):
    """The single-key merge (the key column itself) against the text-key one it replaced."""
    with FeatureStore(project / "definitions") as store:
        view = store.repo.views["user_orders"]
    old = aggstate.empty(view)
    cols = {f.name: pa.nulls(3, f.type) for f in old.schema}
    cols["user_id"] = pa.array(["a", "b", "c"])
    cols["__lt"] = pa.array([dt.datetime(2024, 1, d) for d in (1, 2, 3)], pa.timestamp("us"))
    old = pa.table(cols, schema=old.schema)
    changed = old.filter(pa.array([False, True, False])).set_column(
        old.schema.get_field_index("__lt"),
        "__lt",
        pa.array([dt.datetime(2024, 2, 2)], pa.timestamp("us")),
    )
    changed = pa.concat_tables([changed, old.slice(0, 1).set_column(0, "user_id", pa.array(["d"]))])
    merged = aggstate.merge(view, old, changed).sort_by("user_id")
    assert merged["user_id"].to_pylist() == ["a", "b", "c", "d"]
    assert merged["__lt"].to_pylist() == [
        dt.datetime(2024, 1, 1),
        dt.datetime(2024, 2, 2),
        dt.datetime(2024, 1, 3),
        dt.datetime(2024, 1, 1),
    ]
