"""`full_feature_names` on a service (issue #13, item 6): two views may have features of the same
name; a service that serves both names its columns `view__feature` (Feast's naming) instead of
failing, in training sets, in served rows, and in `fsc fmt`'s output."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from projects import example_project
from redis_servers import flush
from serving import Served
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.check import load_text
from fsdsl.cli import app
from fsdsl.fmt import format_text
from fsdsl.online.server import stop_embedded

runner = CliRunner(env={"COLUMNS": "120"})
AT = "2024-05-01T00:00:00"

# Two views with a feature named `n` each, and a service serving both.
SAME_NAMES = """
features orders_n {
  entity user
  from orders
  n = count(*) over 7d
  spend = sum(amount) over 7d
}

features views_n {
  entity user by visitor_id
  from page_views
  n = count(*) over 7d
}

service both {
  full_feature_names
  features orders_n.n, orders_n.spend, views_n.n
}
"""
COLUMNS = ["orders_n__n", "orders_n__spend", "views_n__n"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full_names")
    example_project(
        root,
        users=150,
        orders=2500,
        page_views=2500,
        labels=40,
        seed=3,
        labels_path=root / "l.parquet",
    )
    (root / "definitions" / "same_names.feat").write_text(SAME_NAMES)
    yield root
    stop_embedded(root)


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def test_same_names_without_the_option_are_an_error_that_names_the_option(root):
    text = (
        (root / "definitions" / "orders.feat").read_text()
        + ((root / "definitions" / "web.feat").read_text())
        + SAME_NAMES.replace("  full_feature_names\n", "")
    )
    _, diags = load_text(text, "x.feat")
    errors = [d for d in diags if d.is_error]
    assert len(errors) == 1, errors
    assert errors[0].code == "E0207"
    assert "two features named `n`" in errors[0].message
    assert "full_feature_names" in " ".join(errors[0].hints)


def test_fmt_keeps_the_option():
    out, diags = format_text(SAME_NAMES)
    assert not [d for d in diags if d.is_error], diags
    assert "  full_feature_names\n" in out
    assert format_text(out)[0] == out


def test_training_set_and_served_rows_use_view__feature(project, redis_urls, tmp_path):
    d = project / "definitions"
    out = tmp_path / "train.parquet"
    r = invoke(
        "training-set", str(d), "-s", "both", "-l", str(project / "l.parquet"), "-o", str(out)
    )
    assert r.exit_code == 0, r.output
    table = pq.read_table(out)
    assert table.column_names[-3:] == COLUMNS
    url = redis_urls["embedded"]
    flush(url)
    r = invoke("run", str(d), "--online", url, "--at", AT)
    assert r.exit_code == 0, r.output
    with FeatureStore(d, online=url) as store:
        users = ["u000001", "u000002", "u000007", "nobody"]
        rows = store.online_features("both", [{"user_id": u} for u in users], with_as_of=True)
        served = {r["user_id"]: [r[c] for c in COLUMNS] for r in rows}
        # the same values as the training query at the served as-of time, by column name
        labels = {"user_id": users, "event_timestamp": [rows[0]["_as_of"]] * len(users)}
        import pyarrow as pa

        trained = store.training_set(pa.table(labels), "both").to_pylist()
    assert {t["user_id"]: [t[c] for c in COLUMNS] for t in trained} == served
    assert any(v[0] for v in served.values())  # some user has orders: not all empty
    got = json.loads(
        invoke("get", str(d), "-s", "both", "--online", url, "-f", "json", "user_id=u000002").output
    )
    assert set(COLUMNS) <= set(got) and "n" not in got


def test_a_service_with_the_option_is_served_over_http_by_its_column_names(project, redis_urls):
    """`fsc serve` answers a `full_feature_names` service with its own names (`view__feature`),
    the values those of the library's rows, whether or not the request asks for full names."""
    d = project / "definitions"
    url = redis_urls["embedded"]
    flush(url)
    assert invoke("run", str(d), "--online", url, "--at", AT).exit_code == 0
    users = ["u000001", "u000002", "u000007", "nobody"]
    with FeatureStore(d, online=url) as store:
        rows = store.online_features("both", [{"user_id": u} for u in users])
    server = Served(d, url)
    try:
        for full in (False, True):
            r = server.read(
                {
                    "feature_service": "both",
                    "entities": {"user_id": users},
                    "full_feature_names": full,
                },
                token=None,
            )
            assert r.status_code == 200, r.text
            body = r.json()
            names = body["metadata"]["feature_names"]
            assert names == ["user_id", *COLUMNS]
            got = {n: res["values"] for n, res in zip(names, body["results"], strict=True)}
            assert got == {"user_id": users, **{c: [row[c] for row in rows] for c in COLUMNS}}
            assert body["results"][1]["statuses"][-1] == "NOT_FOUND"  # `nobody`
    finally:
        assert server.stop() == 0
