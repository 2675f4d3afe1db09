"""`fsc verify` on the example's link (`device_owner`, definitions/identity.feat): it samples
devices of every kind the data has — linked, re-linked, unlinked, never seen — and checks the
device-keyed service end to end, so a wrong stored link is caught, against real Redis and DuckDB.

The kinds are worked out here by brute force from the rows of `device_links`, independently of
how verify picks them."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest
from projects import example_project
from redis_servers import flush
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.cli import app
from fsdsl.online.codec import key_text, stored_names, values_text
from fsdsl.verify import UNSEEN

AT = dt.datetime(2024, 5, 1)
KINDS = ("linked", "re-linked", "unlinked", "never seen")
runner = CliRunner(env={"COLUMNS": "120"})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from fsdsl.online.server import stop_embedded

    root = tmp_path_factory.mktemp("verify_links")
    example_project(root, users=120, orders=2000, page_views=2000, labels=10, seed=5)
    yield root
    stop_embedded(root)


@pytest.fixture(scope="module")
def truth(project) -> dict[str, str]:
    """Read before the store opens the warehouse (DuckDB allows one configuration a file)."""
    return kinds(project, AT)


@pytest.fixture
def store(project, truth, redis_urls):
    url = redis_urls["embedded"]
    flush(url)
    with FeatureStore(project / "definitions", online=url) as s:
        s.run(AT)
        yield s


def kinds(project, at: dt.datetime) -> dict[str, str]:
    """Each device's kind at `at`, from the rows visible then (`linked_at` and `ingested_at`
    before it): the latest by (linked_at, ingested_at, unlink first) decides; a device never
    linked to two users is `linked`."""
    with duckdb.connect(str(project / ".fsc" / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT device_id, user_id, linked_at, ingested_at FROM device_links"
        ).fetchall()
    visible: dict[str, list] = {}
    for device, user, ts, created in rows:
        visible.setdefault(device, [])
        if ts < at and created < at:
            visible[device].append((ts, created, user is None, user))
    out = {}
    for device, seen in visible.items():
        if not seen:
            out[device] = "never seen"
        elif max(seen)[2]:
            out[device] = "unlinked"
        elif len({u for *_, u in seen if u is not None}) > 1:
            out[device] = "re-linked"
        else:
            out[device] = "linked"
    return out


def test_every_kind_of_device_is_sampled(truth, store):
    """A sample of 3 stored devices could hold only linked ones: verify adds devices of each
    kind from the link's source, and keys never seen."""
    assert {k for k in truth.values() if k != "never seen"} == set(KINDS[:3]), "data lacks a kind"
    result = store.verify(sample=3)
    assert result.ok, result.to_dict()
    sampled = [key[0] for key in result.keys["device_owner"]]
    got = {truth.get(d, "never seen") for d in sampled}
    assert got == set(KINDS), f"sampled kinds {sorted(got)} of {sampled}"
    assert sum(truth.get(d, "never seen") == "never seen" for d in sampled) >= UNSEEN
    assert {k: n > 0 for k, n in result.categories["device_owner"].items()} == dict.fromkeys(
        KINDS, True
    )


def test_the_device_keyed_service_is_verified_end_to_end(store):
    result = store.verify(sample=20)
    assert result.ok, result.to_dict()
    checked = {r.column: r.compared for r in result.services if r.service == "fraud_by_device"}
    assert list(checked) == ["user_id", "spend_30d", "orders_7d", "views_1h"]
    assert all(n >= 20 + UNSEEN for n in checked.values()), checked
    assert {r.at for r in result.services} == {AT.isoformat()}


def test_a_wrong_stored_link_is_caught(project, truth, store):
    """A device's stored owner replaced by another user's id, with a valid checksum (only its
    value is wrong): verify reports the link's view and the service, and fails."""
    device = sorted(d for d, k in truth.items() if k == "linked")[0]
    served = store.online_features("fraud_by_device", {"device_id": device})
    other = next(
        u
        for u in (f"u{i:06d}" for i in range(1, 121))
        if u != served["user_id"]
        and store.online_features("fraud_model", {"user_id": u})["spend_30d"] != served["spend_30d"]
    )
    online = store.online()
    ns = online.state("device_owner")["ns"]
    key = key_text([device])
    view = store.repo.views["device_owner"]
    names = stored_names(view.features)
    stored = online.client.get(online.entity_key(ns, key)).split(b":", 1)[1]
    values = dict(zip(names, json.loads(stored), strict=True))
    assert values["user_id"] == served["user_id"], values
    values["user_id"] = other
    types = {f.name: f.type for f in view.features}
    text = values_text(list(values.values()), [types[n] for n in names])
    online.write_batch(ns, [(key, text)], [], links=[(key, key_text([other]))])
    assert store.online_features("fraud_by_device", {"device_id": device})["user_id"] == other

    r = runner.invoke(
        app,
        [
            "verify",
            str(project / "definitions"),
            "--online",
            online.url,
            "--sample",
            "10000",
            "-f",
            "json",
        ],
    )
    assert r.exit_code == 1, r.output
    report = json.loads(r.stdout)
    wrong = {(f["view"], f["feature"]) for f in report["features"] if f["mismatches"]}
    assert wrong == {("device_owner", "user_id")}, wrong
    by_column = {s["column"]: s for s in report["services"] if s["mismatches"]}
    assert set(by_column) >= {"user_id", "spend_30d"}, report["services"]
    assert by_column["user_id"]["examples"][0]["key"] == [device]
    assert by_column["user_id"]["mismatches"] == 1

    text = runner.invoke(
        app, ["verify", str(project / "definitions"), "--online", online.url, "--sample", "10000"]
    )
    assert text.exit_code == 1
    assert f"mismatch fraud_by_device.user_id at ['{device}']" in text.output, text.output


def test_a_service_served_as_of_several_times_is_compared_view_by_view(store):
    """A push moves only its source's views: the device-keyed service then equals no single
    training query, so it is said to be unchecked (not a failure), its views compared alone."""
    row = {"view_id": "pv-x", "visitor_id": "u000001", "viewed_at": AT.isoformat()}
    store.push("page_views", [row], at=AT + dt.timedelta(minutes=1))
    result = store.verify(sample=5)
    assert result.ok and not result.services, result.to_dict()
    assert "served as of different times" in result.unchecked["fraud_by_device"]
    assert "user_browsing 2024-05-01T00:01:00" in result.unchecked["fraud_by_device"]
