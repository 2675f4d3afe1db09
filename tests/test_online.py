"""`fsc run` / `fsc get` / `fsc verify` end to end on a generated project, against real Redis."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from projects import example_project
from redis_servers import Server, flush
from typer.testing import CliRunner
from verify_report import assert_verified

from fsdsl import FeatureStore
from fsdsl.cli import app
from fsdsl.demo import generate
from fsdsl.online import store as online_store
from fsdsl.online.server import stop_embedded
from fsdsl.online.store import OnlineStore

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner(env={"COLUMNS": "120"})
AT = "2024-05-01T00:00:00"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("online")
    example_project(
        root,
        users=300,
        orders=6000,
        page_views=6000,
        labels=100,
        seed=5,
        labels_path=root / "labels.parquet",
    )
    yield root
    stop_embedded(root)  # the embedded server outlives commands; not the tests


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def one_line_error(r, code: str) -> str:
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1, r.output
    assert f"error[{code}]" in lines[0], lines[0]
    return lines[0]


def test_run_get_verify_with_each_server(project, redis_urls):
    for name, url in redis_urls.items():
        flush(url)
        r = run(
            "run", str(project / "definitions"), "--online", url, "--at", AT, "--format", "json"
        )
        assert r.exit_code == 0, (name, r.output)
        views = {v["view"]: v for v in json.loads(r.output)["views"]}
        assert set(views) == {
            "user_orders",
            "user_browsing",
            "user_category_browsing",
            "device_owner",  # a link's view (definitions/identity.feat)
        }
        assert all(v["mode"] == "full" and v["entities_written"] > 0 for v in views.values())
        r = run(
            "get",
            str(project / "definitions"),
            "-s",
            "churn_model",
            "--online",
            url,
            "user_id=u000001",
        )
        assert r.exit_code == 0, r.output
        assert set(json.loads(r.output)) >= {"user_id", "orders_7d", "recent_amounts"}
        r = run(
            "verify", str(project / "definitions"), "--online", url, "--sample", "40", "-f", "json"
        )
        assert_verified(r, set(views), sampled=40)


def test_embedded_default_and_batch_get(project, tmp_path):
    """No --online and no profile entry: the embedded Redis under .fsc/ is started and used."""
    r = run("run", str(project / "definitions"), "--at", AT, "-v", "user_orders")
    assert r.exit_code == 0, r.output
    assert (project / ".fsc" / "redis.sock").exists()
    keys = tmp_path / "keys.parquet"
    pq.write_table(pa.table({"user_id": ["u000001", "u000002", "nobody", None]}), keys)
    out = tmp_path / "served.parquet"
    r = run(
        "get",
        str(project / "definitions"),
        "-s",
        "fraud_model",
        "--keys",
        str(keys),
        "--out",
        str(out),
    )
    assert r.exit_code == 0, r.output
    served = pq.read_table(out)
    assert served.column_names == [
        "user_id",
        "spend_30d",
        "orders_7d",
        "_as_of",
        "_as_of_views.user_orders",
        "__status.user_orders",
    ]
    assert served["_as_of"].to_pylist() == [dt.datetime.fromisoformat(AT)] * 4
    status = served["__status.user_orders"].to_pylist()
    assert status[0] == "ok" and status[2:] == ["missing", "missing"]
    served = served.drop_columns(["_as_of", "_as_of_views.user_orders", "__status.user_orders"])
    assert served["orders_7d"].type == pa.int64()
    # unseen entities (and a null key) get what training gives them: null under the 60d TTL
    assert served.to_pylist()[2:] == [
        {"user_id": "nobody", "spend_30d": None, "orders_7d": None},
        {"user_id": None, "spend_30d": None, "orders_7d": None},
    ]
    with FeatureStore(project / "definitions") as store:
        train = store.training_set(
            pa.table(
                {
                    "user_id": ["u000001", "u000002", "nobody", None],
                    "event_timestamp": pa.array(
                        [dt.datetime.fromisoformat(AT)] * 4, pa.timestamp("us")
                    ),
                }
            ),
            service="fraud_model",
        )
    for a, b in zip(train.to_pylist(), served.to_pylist(), strict=True):
        assert (a["spend_30d"], a["orders_7d"]) == (b["spend_30d"], b["orders_7d"])


def test_incremental_runs_touch_only_changed_entities(project, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    assert run("run", d, "--online", url, "--at", AT, "-v", "user_orders").exit_code == 0
    r = run(
        "run", d, "--online", url, "--at", "2024-05-01T01:00:00", "-v", "user_orders", "-f", "json"
    )
    inc = json.loads(r.output)["views"][0]
    assert inc["mode"] == "incremental"
    full_entities = json.loads(
        run(
            "run",
            d,
            "--online",
            url,
            "--at",
            "2024-05-01T01:00:00",
            "-v",
            "user_orders",
            "--full",
            "-f",
            "json",
        ).output
    )
    assert (
        inc["entities_written"] + inc["entities_removed"]
        < full_entities["views"][0]["entities_written"]
    )
    assert_verified(
        run("verify", d, "--online", url, "-v", "user_orders", "-f", "json"), {"user_orders"}
    )
    # going back in time needs --full
    r = run("run", d, "--online", url, "--at", "2024-04-01T00:00:00", "-v", "user_orders")
    one_line_error(r, "E0507")


def test_lost_aggregate_state_falls_back_to_a_full_refresh(project, redis_urls):
    """The aggregate state is what an incremental run starts from: without it (a key lost, a
    layout from an older version) the run recomputes everything rather than merge into
    nothing, and serves correct values."""
    url = redis_urls["embedded"]
    flush(url)
    d = str(project / "definitions")
    assert run("run", d, "--online", url, "--at", AT, "-v", "user_orders").exit_code == 0
    client = redis.Redis.from_url(url)
    stored = client.keys("fsdsl:agg:*")
    assert len(stored) == 1
    client.delete(*stored)
    r = run(
        "run", d, "--online", url, "--at", "2024-05-02T00:00:00", "-v", "user_orders", "-f", "json"
    )
    assert json.loads(r.output)["views"][0]["mode"] == "full"
    assert_verified(
        run("verify", d, "--online", url, "-v", "user_orders", "-f", "json"), {"user_orders"}
    )
    # the replaced namespace, its values and its aggregate state go once retired
    OnlineStore(url).drop_retired(wait=True)
    assert len(client.keys("fsdsl:agg:*")) == 1
    state = OnlineStore(url).state("user_orders")
    assert client.exists(f"fsdsl:agg:{state['ns']}")


def test_a_refresh_does_not_import_pandas(project, redis_urls):
    """pyarrow imports pandas (0.3-0.4 s) the first time it converts a Python value; a refresh
    gives its kernels Arrow scalars only, so a short `fsc run` does not pay for it."""
    url = redis_urls["embedded"]
    flush(url)
    script = f"""
import sys
from fsdsl import FeatureStore
with FeatureStore({str(project / "definitions")!r}, online={url!r}) as store:
    store.run("{AT}", views=["user_orders"])
    store.run("2024-05-01T02:00:00", views=["user_orders"])
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_changed_definition_gets_a_new_namespace(project, redis_urls, tmp_path, monkeypatch):
    url = redis_urls["embedded"]
    flush(url)
    repo = tmp_path / "repo"
    shutil.copytree(project / "definitions", repo / "definitions")
    shutil.copytree(project / "backends", repo / "backends")
    wh = f"duckdb:///{project / '.fsc' / 'warehouse.duckdb'}"
    d = str(repo / "definitions")
    assert run("run", d, "-w", wh, "--online", url, "--at", AT, "-v", "user_orders").exit_code == 0
    client = redis.Redis.from_url(url)
    old_ns = client.hget("fsdsl:state:user_orders", "ns").decode()
    feat = repo / "definitions" / "orders.feat"
    feat.write_text(feat.read_text().replace("ttl 60d", "ttl 45d"))
    # the old definition's values are not served for the new definition
    r = run("get", d, "-s", "fraud_model", "--online", url, "user_id=u000001")
    one_line_error(r, "E0508")
    r = run("run", d, "-w", wh, "--online", url, "--at", AT, "-v", "user_orders", "-f", "json")
    assert json.loads(r.output)["views"][0]["mode"] == "full"
    new_ns = client.hget("fsdsl:state:user_orders", "ns").decode()
    assert new_ns != old_ns
    # readers that cached the old namespace may still read it for a moment: it is retired,
    # and removed once RETIRE_AFTER has passed (by the next run, or here explicitly)
    assert client.hexists("fsdsl:retired", old_ns)
    assert list(client.scan_iter(match=f"fsdsl:v:{old_ns}:*"))
    monkeypatch.setattr(online_store, "RETIRE_AFTER", 0.0)
    OnlineStore(url).drop_retired()
    assert not list(client.scan_iter(match=f"fsdsl:v:{old_ns}:*"))  # old one removed
    assert not client.hexists("fsdsl:retired", old_ns)
    r = run("verify", d, "-w", wh, "--online", url, "-v", "user_orders", "-f", "json")
    assert_verified(r, {"user_orders"})


def test_killing_redis_mid_run_keeps_previous_state(project, tmp_path):
    """A run interrupted by the store dying leaves the previous state serving; the next run
    reaches the correct state."""
    big = tmp_path / "big"
    shutil.copytree(project / "definitions", big / "definitions")
    shutil.copytree(project / "backends", big / "backends")
    (big / ".fsc").mkdir()
    generate(
        big / ".fsc" / "warehouse.duckdb",
        users=60000,
        orders=300000,
        page_views=10,
        labels=10,
        seed=9,
    )
    server = Server(tmp_path / "redis").start()
    d = str(big / "definitions")
    try:
        assert run("run", d, "--online", server.url, "--at", AT, "-v", "user_orders").exit_code == 0
        client = redis.Redis(unix_socket_path=str(server.sock))
        before = client.hgetall("fsdsl:state:user_orders")
        served_before = json.loads(
            run("get", d, "-s", "churn_model", "--online", server.url, "user_id=u000007").output
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fsdsl.cli",
                "run",
                d,
                "--online",
                server.url,
                "--at",
                "2024-05-02T00:00:00",
                "-v",
                "user_orders",
                "--full",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        settled = client.dbsize()
        deadline = time.monotonic() + 60
        # kill the store once the new namespace is partly written
        while time.monotonic() < deadline and proc.poll() is None:
            if client.dbsize() > settled + 500:
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        server.kill()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert "Traceback" not in err
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
        assert "error[E0504]" in err

        server.start()  # the same files: what was acknowledged before the kill is back
        client = redis.Redis(unix_socket_path=str(server.sock))
        assert client.hgetall("fsdsl:state:user_orders") == before
        again = json.loads(
            run("get", d, "-s", "churn_model", "--online", server.url, "user_id=u000007").output
        )
        assert again == served_before
        r = run(
            "run", d, "--online", server.url, "--at", "2024-05-02T00:00:00", "-v", "user_orders"
        )
        assert r.exit_code == 0, r.output
        r = run(
            "verify",
            d,
            "--online",
            server.url,
            "-v",
            "user_orders",
            "--sample",
            "200",
            "-f",
            "json",
        )
        assert_verified(r, {"user_orders"}, sampled=200)
    finally:
        server.stop()


def test_errors_are_one_line(project, tmp_path):
    d = str(project / "definitions")
    one_line_error(run("run", d, "--online", "redis://127.0.0.1:1/0", "--at", AT), "E0504")
    one_line_error(run("run", d, "--online", "memcached://x", "--at", AT), "E0502")
    one_line_error(run("get", d, "-s", "nope", "user_id=u1"), "E0005")
    one_line_error(run("get", d, "-s", "fraud_model", "customer=u1"), "E0402")
    one_line_error(run("run", d, "--at", "yesterday"), "E0004")
    server = Server(tmp_path / "auth", password="s3cret").start()
    try:
        wrong = server.url.replace("s3cret", "wrong")
        line = one_line_error(run("run", d, "--online", wrong, "--at", AT), "E0503")
        assert "wrong" not in line and "s3cret" not in line  # never print a password
        r = runner.invoke(
            app,
            ["run", d, "--online", f"unix://{server.sock}", "--at", AT, "-v", "user_orders"],
            env={"FSC_REDIS_PASSWORD": "s3cret"},
        )
        assert r.exit_code == 0, r.output
    finally:
        server.stop()
