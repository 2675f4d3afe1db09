"""`fsc plan` (issue #13, item 4): what a run would change, before it changes anything.

On a copy of the example repository, refreshed once by `fsc run` into a Redis of this module's
own: each test edits a copy of the definitions beside it (same project, so the same warehouse
and profile) and plans it against what that run served and recorded. Then `fsc run` itself
(it prints the same plan and records what it applied), and a generated repository of a few
hundred views whose store is filled through the library (a real run of each would take
minutes)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import duckdb
import pytest
import redis
from projects import example_project
from redis_servers import Server
from typer.testing import CliRunner

from fsdsl.check import load_repository, load_text
from fsdsl.cli import app
from fsdsl.fmt import format_text
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.plan import applied_views, record_services
from fsdsl.online.server import stop_embedded
from fsdsl.online.store import APPLIED, OnlineStore

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner(env={"COLUMNS": "200"})
AT = "2024-05-01T00:00:00"
ORDERS = 3000


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    example_project(root, users=150, orders=ORDERS, page_views=2000, labels=10, seed=11)
    yield root
    stop_embedded(root)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("plan-redis"), fsync="no").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def url(project, server) -> str:
    """db 0: the example as `fsc run` applied it, never written to by a test."""
    redis.Redis(unix_socket_path=str(server.sock), db=0).flushdb()
    r = cli("run", str(project / "definitions"), "--online", server.url, "--at", AT)
    assert r.exit_code == 0, r.output
    return server.url


def cli(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def plan(path: Path, url: str, *extra: str) -> tuple[int, dict]:
    r = cli("plan", str(path), "--online", url, "-f", "json", *extra)
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.output)


def variant(project: Path, name: str, edits: dict[str, list[tuple[str, str]]]) -> Path:
    """A copy of the example's definitions beside them, with each (old, new) replaced once."""
    folder = project / "variants" / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(project / "definitions", folder)
    for file, pairs in edits.items():
        path = folder / file
        text = path.read_text()
        for old, new in pairs:
            assert text.count(old) == 1, (file, old)
            text = text.replace(old, new)
        path.write_text(text)
    return folder


def by_name(plan_: dict) -> tuple[dict, dict]:
    return (
        {v["view"]: v for v in plan_["views"]},
        {s["service"]: s for s in plan_["services"]},
    )


def statuses(plan_: dict) -> tuple[dict, dict]:
    views, services = by_name(plan_)
    return (
        {n: v["status"] for n, v in views.items()},
        {n: s["status"] for n, s in services.items()},
    )


ALL_UNCHANGED = (
    {
        "user_orders": "unchanged",
        "user_browsing": "unchanged",
        "user_category_browsing": "unchanged",
        "device_owner": "unchanged",  # the link's view, planned like any view
    },
    {
        s: "unchanged"
        for s in ("churn_model", "churn_core", "fraud_model", "recommender", "fraud_by_device")
    },
)


# ---- views ----
def test_nothing_changed_after_a_run(project, url):
    code, p = plan(project / "definitions", url)
    assert code == 0 and not p["breaking"]
    assert statuses(p) == ALL_UNCHANGED
    assert p["rows_to_scan"] == 0
    r = cli("plan", str(project / "definitions"), "--online", url)
    assert r.exit_code == 0, r.output
    assert "0 view(s) to recompute in full" in r.output and "no breaking change" in r.output


MANGLED = [
    ("  orders_7d = count(*) over 7d\n", "  orders_7d   =   count( * )   over 7d\n"),
    ("  ttl 60d\n", "\tttl   60d\n\n\n"),
    (
        "  spend_per_order_30d = spend_30d / nullif(orders_30d, 0)\n",
        "  spend_per_order_30d = (spend_30d) / nullif( orders_30d , 0 )\n",
    ),
]


def test_a_formatting_only_edit_changes_no_fingerprint_and_recomputes_nothing(project, url):
    folder = variant(project, "formatting", {"orders.feat": MANGLED})
    # formatting only: `fsc fmt` gives the original text back
    original = (project / "definitions" / "orders.feat").read_text()
    assert format_text((folder / "orders.feat").read_text())[0] == original
    code, p = plan(folder, url)
    views, services = by_name(p)
    assert code == 0
    orders = views["user_orders"]
    assert orders["status"] == "metadata-only" and not orders["recompute"]
    assert orders["fingerprint"] == orders["served_fingerprint"]
    assert orders["changes"] == ["text only (formatting or comments)"]
    assert {v["status"] for n, v in views.items() if n != "user_orders"} == {"unchanged"}
    assert {s["status"] for s in services.values()} == {"unchanged"}


def test_comments_owner_and_description_are_metadata_only(project, url):
    folder = variant(
        project,
        "metadata",
        {
            "orders.feat": [
                ('  owner "growth"\n', '  owner "retention"  # moved teams\n'),
                (
                    "  last_amount = last(amount)\n",
                    "  # the latest\n  last_amount = last(amount)\n",
                ),
            ],
            "web.feat": [
                (
                    '  description "How a customer browses the shop"\n',
                    '  description "Browsing, all devices"\n',
                ),
            ],
        },
    )
    code, p = plan(folder, url)
    views, _ = by_name(p)
    assert code == 0
    assert views["user_orders"]["status"] == "metadata-only"
    assert views["user_orders"]["changes"] == ['owner: "growth" -> "retention"']
    assert views["user_browsing"]["status"] == "metadata-only"
    assert views["user_browsing"]["changes"] == [
        'description: "How a customer browses the shop" -> "Browsing, all devices"'
    ]
    assert views["user_category_browsing"]["status"] == "unchanged"
    assert not any(v["recompute"] for v in views.values())


def test_a_filter_change_is_a_full_refresh_with_the_rows_to_scan(project, url):
    folder = variant(
        project,
        "filter",
        {"orders.feat": [("where status = 'completed'\n", "where status != 'cancelled'\n")]},
    )
    code, p = plan(folder, url)
    views, services = by_name(p)
    orders = views["user_orders"]
    assert orders["status"] == "changed" and orders["recompute"]
    assert orders["fingerprint"] != orders["served_fingerprint"]
    assert orders["changes"] == ["new namespace, full refresh", "filter changed"]
    with duckdb.connect(str(project / ".fsc" / "warehouse.duckdb"), read_only=True) as con:
        [(rows,)] = con.execute("SELECT count(*) FROM orders").fetchall()
    assert orders["source"] == "orders" and orders["rows_to_scan"] == rows == ORDERS
    assert p["rows_to_scan"] == ORDERS
    # the values change, the interface does not: no service breaks
    assert code == 0 and {s["status"] for s in services.values()} == {"unchanged"}
    # without a warehouse: the same classification, no count
    code, p = plan(folder, url, "--no-estimate")
    assert by_name(p)[0]["user_orders"]["rows_to_scan"] is None and p["rows_to_scan"] is None


def test_a_window_change_names_the_feature_that_changes(project, url):
    folder = variant(
        project,
        "window",
        {"orders.feat": [("  orders_7d = count(*) over 7d\n", "  orders_7d = count(*) over 8d\n")]},
    )
    _, p = plan(folder, url)
    orders = by_name(p)[0]["user_orders"]
    assert orders["status"] == "changed"
    assert orders["changes"] == ["new namespace, full refresh", "expressions changed: orders_7d"]


def test_a_new_view(project, url):
    block = (
        "\nfeatures big_orders {\n  entity user\n  from orders\n  where amount > 100\n\n"
        "  big_orders_30d = count(*) over 30d\n}\n"
    )
    folder = variant(project, "new_view", {})
    (folder / "big.feat").write_text(block)
    code, p = plan(folder, url)
    views, services = by_name(p)
    assert code == 0
    assert views["big_orders"]["status"] == "new" and views["big_orders"]["recompute"]
    assert views["big_orders"]["served_fingerprint"] is None
    assert views["big_orders"]["rows_to_scan"] == ORDERS
    assert {v["status"] for n, v in views.items() if n != "big_orders"} == {"unchanged"}


def test_a_removed_view_and_the_services_that_lose_it(project, url):
    web = (project / "definitions" / "web.feat").read_text()
    start = web.index("features user_category_browsing {")
    block = web[start : web.index("}\n", start) + 2]
    folder = variant(
        project,
        "removed_view",
        {
            "web.feat": [
                (block, ""),
                ("user_browsing.*, user_category_browsing.*, ", "user_browsing.*, "),
            ]
        },
    )
    code, p = plan(folder, url)
    views, services = by_name(p)
    gone = views["user_category_browsing"]
    assert gone["status"] == "removed" and not gone["recompute"] and gone["fingerprint"] is None
    assert gone["served_fingerprint"] is not None  # still stored: nothing removes it
    assert code == 1 and p["breaking"]
    rec = services["recommender"]
    assert rec["status"] == "breaking"
    removed = ["category_views_7d", "category_dwell_7d", "category_share_7d"]
    assert rec["removed"] == removed
    assert [c for c in rec["changes"] if c.startswith("removed")] == [
        f"removed {c}" for c in removed
    ]
    # the key `category` is no longer needed: not breaking on its own
    assert "the key category is no longer needed" in rec["changes"]


def test_a_semantics_version_bump_recomputes_every_view(project, url, monkeypatch):
    """The one compiler change that reaches the stores: a bump of SEMANTICS_VERSION (a change of
    values any compiler emits) is a full refresh of every view, and says so."""
    from fsdsl.online import fingerprint as fingerprint_module

    monkeypatch.setattr(fingerprint_module, "SEMANTICS_VERSION", 2)
    code, p = plan(project / "definitions", url, "--no-estimate")
    views, services = by_name(p)
    assert code == 0 and p["semantics_version"] == 2
    for v in views.values():
        assert v["status"] == "changed"
        assert v["changes"] == ["new namespace, full refresh", "semantics version 1 -> 2"]
    assert {s["status"] for s in services.values()} == {"unchanged"}


# ---- services ----
def test_a_link_layout_bump_recomputes_the_links_only(project, url, monkeypatch):
    """A new layout of the links' strings (a store written before them has none) is a full
    refresh of the links' views, and says so; every other view is unchanged."""
    from fsdsl.online import fingerprint as fingerprint_module
    from fsdsl.online import store as store_module

    monkeypatch.setattr(store_module, "LINK_LAYOUT", store_module.LINK_LAYOUT + 1)
    monkeypatch.setattr(fingerprint_module, "LINK_LAYOUT", store_module.LINK_LAYOUT)
    code, p = plan(project / "definitions", url, "--no-estimate")
    views, _services = by_name(p)
    assert code == 0
    changed = {name: v["changes"] for name, v in views.items() if v["status"] != "unchanged"}
    was, now = store_module.LINK_LAYOUT - 1, store_module.LINK_LAYOUT
    assert changed == {
        "device_owner": ["new namespace, full refresh", f"link store layout {was} -> {now}"]
    }


def test_a_feature_removed_from_a_service_is_breaking(project, url):
    folder = variant(
        project,
        "service_removed",
        {
            "orders.feat": [
                ("user_orders.spend_30d, user_orders.orders_7d  #", "user_orders.spend_30d  #")
            ]
        },
    )
    code, p = plan(folder, url)
    _, services = by_name(p)
    assert code == 1 and p["breaking"]
    fraud = services["fraud_model"]
    assert fraud["status"] == "breaking" and fraud["breaking"]
    assert fraud["changes"] == ["removed orders_7d"] and fraud["removed"] == ["orders_7d"]
    assert {n: s["status"] for n, s in services.items() if n != "fraud_model"} == {
        "churn_model": "unchanged",
        "churn_core": "unchanged",
        "recommender": "unchanged",
        "fraud_by_device": "unchanged",
    }
    r = cli("plan", str(folder), "--online", url)
    assert r.exit_code == 1
    assert "breaking: fraud_model" in r.output and "removed orders_7d" in r.output


def test_a_feature_added_to_a_service_is_not_breaking(project, url):
    folder = variant(
        project,
        "service_added",
        {
            "orders.feat": [
                (
                    "user_orders.spend_30d, user_orders.orders_7d  #",
                    "user_orders.spend_30d, user_orders.orders_7d, user_orders.last_amount  #",
                )
            ]
        },
    )
    code, p = plan(folder, url)
    _, services = by_name(p)
    assert code == 0 and not p["breaking"]
    fraud = services["fraud_model"]
    assert fraud["status"] == "non-breaking" and not fraud["breaking"]
    assert fraud["changes"] == ["added last_amount"] and fraud["added"] == ["last_amount"]


def test_a_rename_a_type_change_and_a_removed_service_are_breaking(project, url):
    orders = (project / "definitions" / "orders.feat").read_text()
    fraud = orders[orders.index("service fraud_model {") :]
    folder = variant(
        project,
        "service_breaking",
        {
            "orders.feat": [
                ("  last_amount = last(amount)\n", "  latest_amount = last(amount)\n"),
                ("user_orders.last_amount, user_orders.active_days", "user_orders.active_days"),
                (
                    "  orders_30d: int = count(*) over 30d\n",
                    "  orders_30d: float = count(*) over 30d\n",
                ),
                (fraud, ""),
            ],
            "web.feat": [(", user_orders.last_amount\n", "\n")],
        },
    )
    code, p = plan(folder, url)
    views, services = by_name(p)
    assert code == 1
    assert views["user_orders"]["status"] == "changed"
    assert "features added: latest_amount" in views["user_orders"]["changes"]
    assert "types changed: orders_30d: int -> float" in views["user_orders"]["changes"]
    churn = services["churn_model"]
    assert churn["status"] == "breaking"
    assert "renamed last_amount -> latest_amount" in churn["changes"]
    assert "type of orders_30d: int -> float" in churn["changes"]
    assert "added latest_amount" not in churn["changes"]  # said once, as the rename
    assert services["fraud_model"]["status"] == "removed" and services["fraud_model"]["breaking"]
    assert services["fraud_model"]["removed"] == ["orders_7d", "spend_30d"]


# ---- fingerprints come from meaning ----
def test_fingerprints_ignore_text_and_metadata_but_not_values():
    text = (ROOT / "definitions" / "orders.feat").read_text()

    def fp(edits: list[tuple[str, str]]) -> str:
        t = text
        for old, new in edits:
            assert t.count(old) == 1, old
            t = t.replace(old, new)
        repo, diags = load_text(t)
        assert repo is not None, diags
        return fingerprint(repo.views["user_orders"])

    base = fp([])
    assert fp(MANGLED) == base
    assert fp([('  owner "growth"\n', '  owner "x"  # a comment\n')]) == base
    assert fp([('description "Completed orders of a customer"', 'description "y"')]) == base
    assert fp([("over 7d\n  orders_30d", "over 168h\n  orders_30d")]) == base  # the same window
    assert fp([("status = 'completed'", "'completed' = status")]) == base
    assert fp([("status = 'completed'", "status = 'shipped'")]) != base
    assert fp([("sum(amount) over 30d", "sum(amount) over 31d")]) != base


# ---- fsc run: the same plan, before it acts, and the record it leaves ----
def test_run_shows_the_plan_first_and_records_what_it_applied(project, server):
    db = server.url + "?db=1"
    redis.Redis(unix_socket_path=str(server.sock), db=1).flushdb()
    defs = project / "definitions"
    r = cli("run", str(defs), "--online", db, "--at", AT, "-f", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert statuses(out["plan"])[0] == {
        "user_orders": "new",
        "user_browsing": "new",
        "user_category_browsing": "new",
        "device_owner": "new",
    }
    assert {v["mode"] for v in out["views"]} == {"full"}
    fields = redis.Redis(unix_socket_path=str(server.sock), db=1).hkeys(APPLIED)
    assert sorted(f.decode() for f in fields) == sorted(
        [f"view:{v}" for v in ALL_UNCHANGED[0]] + [f"service:{s}" for s in ALL_UNCHANGED[1]]
    )
    assert statuses(plan(defs, db)[1]) == ALL_UNCHANGED

    # metadata only: announced as such, and the run stays incremental
    meta = variant(project, "run_meta", {"orders.feat": [('owner "growth"', 'owner "ops"')]})
    r = cli("run", str(meta), "--online", db, "--at", "2024-05-02T00:00:00")
    assert r.exit_code == 0, r.output
    plan_at = r.output.index("metadata-only")
    assert plan_at < r.output.index("fsc run as of"), r.output  # the plan comes first
    assert re.search(r"user_orders\s+│\s+incremental", r.output), r.output
    assert statuses(plan(meta, db)[1]) == ALL_UNCHANGED  # applied: nothing left to do

    # a filter change and a removed service: full refresh; the service is forgotten once applied
    orders = (meta / "orders.feat").read_text()
    changed = variant(
        project,
        "run_changed",
        {
            "orders.feat": [
                ('owner "growth"', 'owner "ops"'),
                ("where status = 'completed'", "where status = 'completed' and amount > 1"),
                (orders[orders.index("service fraud_model {") :], ""),
            ]
        },
    )
    code, before = plan(changed, db)
    assert code == 1 and by_name(before)[1]["fraud_model"]["status"] == "removed"
    r = cli("run", str(changed), "--online", db, "--at", "2024-05-03T00:00:00", "-f", "json")
    out = json.loads(r.output)
    assert out["plan"]["views"][0]["status"] == "changed"
    assert out["plan"]["breaking"] is True
    assert {v["view"]: v["mode"] for v in out["views"]}["user_orders"] == "full"
    code, after = plan(changed, db)
    assert code == 0 and "fraud_model" not in by_name(after)[1]
    assert set(statuses(after)[0].values()) == {"unchanged"}


def test_a_run_of_some_views_plans_those_only(project, server):
    db = server.url + "?db=2"
    redis.Redis(unix_socket_path=str(server.sock), db=2).flushdb()
    defs = str(project / "definitions")
    r = cli("run", defs, "--online", db, "--at", AT, "-v", "user_orders", "-f", "json")
    assert r.exit_code == 0, r.output
    assert [v["view"] for v in json.loads(r.output)["plan"]["views"]] == ["user_orders"]
    # the services reading only user_orders are applied; recommender waits for its views
    _, p = plan(project / "definitions", db, "--no-estimate")
    views, services = statuses(p)
    assert views == {
        "user_orders": "unchanged",
        "user_browsing": "new",
        "user_category_browsing": "new",
        "device_owner": "new",
    }
    assert services == {
        "churn_model": "unchanged",
        "churn_core": "unchanged",
        "fraud_model": "unchanged",
        "recommender": "new",
        "fraud_by_device": "new",  # its link and user_browsing are not applied yet
    }


# ---- errors and damage ----
def test_an_unreachable_store_is_one_line_and_exit_2(project, tmp_path):
    r = cli("plan", str(project / "definitions"), "--online", f"unix://{tmp_path}/none.sock")
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "error[E0504]" in lines[0], r.output


def test_an_unknown_view_is_a_usage_error(project, url):
    r = cli("plan", str(project / "definitions"), "--online", url, "-v", "nope")
    assert r.exit_code == 2 and "error[E0005]" in r.output, r.output


def test_a_damaged_record_is_ignored_not_believed(project, server):
    db = server.url + "?db=3"
    client = redis.Redis(unix_socket_path=str(server.sock), db=3)
    client.flushdb()
    assert cli("run", str(project / "definitions"), "--online", db, "--at", AT).exit_code == 0
    raw = client.hget(APPLIED, "service:fraud_model")
    client.hset(APPLIED, "service:fraud_model", raw.replace(b"orders_7d", b"orders_8d"))
    raw = client.hget(APPLIED, "view:user_orders")
    client.hset(APPLIED, "view:user_orders", raw.replace(b'"growth"', b'"grovth"'))
    code, p = plan(project / "definitions", db)
    views, services = statuses(p)
    # without a trustworthy record: no metadata to compare, a service is as if never applied
    assert views["user_orders"] == "unchanged" and services["fraud_model"] == "new"
    assert code == 0


# ---- a generated repository ----
VIEWS = 300


def generated(folder: Path, views: int, edit: bool = False) -> None:
    """`views` views of 4 features over one source, in 10 files, and a service per 10 views.
    `edit`: view 1 gets another filter, view 2 another owner, view 3 another layout, view 4
    is removed (with its service's reference), and service 5 loses a feature."""
    folder.mkdir(parents=True, exist_ok=True)
    head = (
        "entity user {\n  key user_id: string\n}\n\n"
        'source events {\n  table "events"\n  timestamp ts\n  columns {\n'
        "    user_id: string\n    amount: float\n    kind: string\n    ts: timestamp\n  }\n}\n"
    )
    files = {i: [] for i in range(10)}
    for i in range(views):
        if edit and i == 4:
            continue
        where = f"kind = 'k{i % 7}'" if not (edit and i == 1) else "kind = 'other'"
        owner = f"team{i % 5}" if not (edit and i == 2) else "someone else"
        body = (
            f"features v{i} {{\n  entity user\n  from events\n  where {where}\n"
            f'  owner "{owner}"\n\n'
            f"  n_{i} = count(*) over {i % 30 + 1}d\n  s_{i} = sum(amount) over {i % 30 + 1}d\n"
            f"  last_{i} = last(amount)\n  avg_{i} = s_{i} / nullif(n_{i}, 0)\n}}\n"
        )
        if edit and i == 3:
            body = body.replace(" = ", "   =   ").replace("  entity", "\tentity")
        files[i % 10].append(body)
    for s in range(views // 10):
        members = [
            f"v{i}.n_{i}" + ("" if edit and s == 5 and i == 50 else f", v{i}.s_{i}")
            for i in range(s * 10, s * 10 + 10)
            if not (edit and i == 4)
        ]
        files[s % 10].append(f"service svc{s} {{\n  features {', '.join(members)}\n}}\n")
    (folder / "a_head.feat").write_text(head)
    for n, blocks in files.items():
        (folder / f"part{n}.feat").write_text("\n".join(blocks))


def test_a_generated_repository_of_hundreds_of_views(tmp_path, server):
    shutil.copytree(ROOT / "backends", tmp_path / "backends")
    (tmp_path / ".fsc").mkdir()
    with duckdb.connect(str(tmp_path / ".fsc" / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE events AS SELECT 'u' || (i % 50) AS user_id, i * 1.0 AS amount, "
            "'k' || (i % 7) AS kind, TIMESTAMP '2024-01-01' + i * INTERVAL 1 MINUTE AS ts "
            "FROM range(5000) t(i)"
        )
    before, after = tmp_path / "before", tmp_path / "after"
    generated(before, VIEWS)
    generated(after, VIEWS, edit=True)
    repo, diags = load_repository(before)
    assert repo is not None, diags
    assert len(repo.views) == VIEWS

    # what a run of `before` leaves, written through the library (each view's state as a
    # refresh switches it, with its applied record; then the services)
    db = server.url + "?db=4"
    redis.Redis(unix_socket_path=str(server.sock), db=4).flushdb()
    online = OnlineStore(db)
    for name, record in applied_views(repo.views.values()).items():
        fp = fingerprint(repo.views[name])
        state = {"ns": f"{name}:{fp}:x", "fp": fp, "as_of": AT, "watermark": AT}
        online.set_state(name, state, applied=record)
    record_services(repo, online, complete=True)
    online.close()

    started = time.perf_counter()
    code, p = plan(before, db)
    unchanged_seconds = time.perf_counter() - started
    assert code == 0 and set(statuses(p)[0].values()) == {"unchanged"}
    assert set(statuses(p)[1].values()) == {"unchanged"}

    started = time.perf_counter()
    code, p = plan(after, db)
    seconds = time.perf_counter() - started
    views, services = statuses(p)
    changed = {n: s for n, s in views.items() if s != "unchanged"}
    assert changed == {
        "v1": "changed",
        "v2": "metadata-only",
        "v3": "metadata-only",
        "v4": "removed",
    }
    assert by_name(p)[0]["v1"]["rows_to_scan"] == 5000
    assert {n: s for n, s in services.items() if s != "unchanged"} == {
        "svc0": "breaking",  # lost v4's features
        "svc5": "breaking",  # lost s_50
    }
    assert code == 1
    # a plan of a few hundred views is interactive (the repository load dominates)
    assert unchanged_seconds < 5 and seconds < 5, (unchanged_seconds, seconds)
