"""The online fingerprint comes from the meaning of a view (its canonical IR, the state schema, a
semantics version), never from compiled SQL text (issue #10, item 3).

A namespace is recomputed in full when the fingerprint changes, so two failures matter: an edit
that changes values but keeps the fingerprint (wrong values served), and a spelling edit or a
compiler refactoring that changes it (a needless full refresh of every store)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import warehouse_url
from projects import example_project
from redis_servers import flush
from sqlglot import exp

from fsdsl import canonical
from fsdsl.backends.base import connect, table_expression
from fsdsl.check import load_repository, load_text
from fsdsl.fmt import format_text
from fsdsl.online import fingerprint as fingerprint_module
from fsdsl.online import refresh
from fsdsl.online.fingerprint import fingerprint
from fsdsl.online.refresh import refresh_view
from fsdsl.online.store import OnlineStore

ROOT = Path(__file__).resolve().parents[1]
AT = "2024-05-01T00:00:00"

BASE = """\
entity user {
  key user_id: string
  description "A registered customer"
}

source orders {
  table "orders"
  timestamp event_timestamp
  created created_at
  columns {
    order_id: string
    user_id: string
    amount: float
    discount: float
    status: string
    event_timestamp: timestamp
    created_at: timestamp
  }
}

features user_orders {
  entity user
  from orders
  where status = 'completed' and amount > 0
  ttl 60d
  owner "growth"
  description "Completed orders of a customer"

  orders_7d = count(*) over 7d
  orders_30d: int = count(*) over 30d
  spend_30d = sum(amount + discount) over 30d
  net_30d = sum(amount * 2 - discount) over 30d
  min_amount_7d = min(amount) over 7d
  last_amount = last(amount)
  recent_amounts = last_k(amount, 3)
  big_share_30d = avg(case when amount > 100 or status != 'gift' then 1.0 else 0.0 end) over 30d
  spend_per_order_30d = spend_30d / nullif(orders_30d, 0)
}
"""

Edit = tuple[str, str] | list[tuple[str, str]]


def edited(edit: Edit, text: str = BASE) -> str:
    for old, new in [edit] if isinstance(edit, tuple) else edit:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def view_of(text: str):
    repo, diags = load_text(text, "orders.feat")
    assert repo is not None, [d.message for d in diags]
    return repo.views["user_orders"]


SPELLINGS: dict[str, Edit] = {
    "comments": [
        ("  where", "  # only what the customer paid for\n  where"),
        ("over 7d\n", "over 7d  # a week\n"),
    ],
    "whitespace": ("orders_7d = count(*) over 7d", "orders_7d   =   count( * )\n    over   7d"),
    "commutative and": (
        "status = 'completed' and amount > 0",
        "0 < amount and 'completed' = status",
    ),
    "commutative +": ("sum(amount + discount)", "sum(discount + amount)"),
    "commutative *": ("amount * 2", "2 * amount"),
    "commutative or, != spelt <>": (
        "amount > 100 or status != 'gift'",
        "'gift' <> status or 100 < amount",
    ),
    "7d as 168h": ("count(*) over 7d", "count(*) over 168h"),
    "7d as 1w": ("min(amount) over 7d", "min(amount) over 1w"),
    "ttl in hours": ("ttl 60d", "ttl 1440h"),
    "owner and description": [
        ('owner "growth"', 'owner "retention"'),
        ('"Completed orders of a customer"', '"Paid orders"'),
        ('"A registered customer"', '"Someone with an account"'),
    ],
    "redundant parentheses": (
        "sum(amount * 2 - discount)",
        "sum(((amount * 2)) - (discount))",
    ),
    "precedence spelt out": ("sum(amount * 2 - discount)", "sum((amount * 2) - discount)"),
    "derived feature declared first": [
        ("  spend_per_order_30d = spend_30d / nullif(orders_30d, 0)\n", ""),
        (
            "  orders_7d =",
            "  spend_per_order_30d = spend_30d / nullif(orders_30d, 0)\n  orders_7d =",
        ),
    ],
    "an unused source column": (
        "    discount: float\n",
        "    discount: float\n    coupon: string\n",
    ),
    "the source renamed": [
        ("source orders {", "source order_log {"),
        ("from orders", "from order_log"),
    ],
    "string literal quoting": ("'gift'", '"gift"'),
}

MEANINGS: dict[str, Edit] = {
    "window": ("orders_7d = count(*) over 7d", "orders_7d = count(*) over 8d"),
    "filter constant": ("'completed'", "'complete'"),
    "filter comparison": ("amount > 0", "amount >= 0"),
    "filter connective": ("'completed' and amount", "'completed' or amount"),
    "aggregation min -> max": ("min(amount)", "max(amount)"),
    "aggregation sum -> avg": ("sum(amount + discount)", "avg(amount + discount)"),
    "ttl": ("ttl 60d", "ttl 61d"),
    "ttl removed": ("  ttl 60d\n", ""),
    "column type": ("    amount: float", "    amount: int"),
    "created removed (or added)": ("  created created_at\n", ""),
    "operands of /": ("spend_30d / nullif(orders_30d, 0)", "orders_30d / nullif(spend_30d, 0)"),
    "operands of -": ("amount * 2 - discount", "discount - amount * 2"),
    "last_k size": ("last_k(amount, 3)", "last_k(amount, 4)"),
    "count(*) -> count(x)": ("orders_30d: int = count(*)", "orders_30d: int = count(amount)"),
    "declared type": ("orders_30d: int", "orders_30d: float"),
    "table": ('table "orders"', 'table "sales.orders"'),
    "feature renamed": ("last_amount =", "latest_amount ="),
    "feature added": ("  last_amount =", "  first_amount = first(amount)\n  last_amount ="),
    "case constant": ("then 1.0 else 0.0", "then 1.0 else 0.5"),
    "aggregations reordered (the state's layout)": [
        ("  orders_7d = count(*) over 7d\n", ""),
        ("  spend_30d =", "  orders_7d = count(*) over 7d\n  spend_30d ="),
    ],
}


@pytest.mark.parametrize("edit", list(SPELLINGS.values()), ids=list(SPELLINGS))
def test_a_spelling_edit_keeps_the_fingerprint(edit):
    before, after = view_of(BASE), view_of(edited(edit))
    assert canonical.view_form(after) == canonical.view_form(before)
    assert fingerprint(after) == fingerprint(before)


def test_the_formatted_file_keeps_the_fingerprint():
    messy = edited(
        [("  where", "  # paid only\n      where"), ("count(*) over 30d", "count( * )  over  30d")]
    )
    formatted, diags = format_text(messy, "orders.feat")
    assert formatted is not None, [d.message for d in diags]
    assert formatted != messy
    assert fingerprint(view_of(formatted)) == fingerprint(view_of(BASE))


@pytest.mark.parametrize("edit", list(MEANINGS.values()), ids=list(MEANINGS))
def test_a_change_of_meaning_changes_the_fingerprint(edit):
    assert fingerprint(view_of(edited(edit))) != fingerprint(view_of(BASE))


def test_reordered_aggregations_mean_the_same_but_store_a_different_state():
    """The stored partial aggregates are numbered by first use: the same definition written in
    another order must not read the old state into the wrong aggregation."""
    edit = MEANINGS["aggregations reordered (the state's layout)"]
    before, after = view_of(BASE), view_of(edited(edit))
    assert canonical.view_form(after) == canonical.view_form(before)
    assert fingerprint(after) != fingerprint(before)


def test_semantics_version_and_layout_are_part_of_it(monkeypatch):
    view = view_of(BASE)
    fp = fingerprint(view)
    monkeypatch.setattr(
        fingerprint_module, "SEMANTICS_VERSION", fingerprint_module.SEMANTICS_VERSION + 1
    )
    assert fingerprint(view) != fp
    monkeypatch.undo()
    monkeypatch.setattr(fingerprint_module, "LAYOUT", fingerprint_module.LAYOUT + 1)
    assert fingerprint(view) != fp


def test_the_link_layout_is_part_of_a_link_views_fingerprint_only(monkeypatch):
    """A store written before link strings existed has none: its link views must be refreshed
    in full (a new fingerprint), and nothing else."""
    from fsdsl.online import store as store_module

    repo, diagnostics = load_repository(Path(__file__).parent.parent / "definitions")
    assert repo is not None, diagnostics
    before = {name: fingerprint(view) for name, view in repo.views.items()}
    assert any(v.link for v in repo.views.values()), "the example has a link"
    monkeypatch.setattr(store_module, "LINK_LAYOUT", store_module.LINK_LAYOUT + 1)
    monkeypatch.setattr(fingerprint_module, "LINK_LAYOUT", store_module.LINK_LAYOUT)
    after = {name: fingerprint(view) for name, view in repo.views.items()}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {name for name, view in repo.views.items() if view.link}


def test_a_feature_form_is_its_meaning_whatever_its_name_or_spelling():
    """What duplicate detection will compare: derived features expanded, names gone."""
    text = edited(
        (
            "  last_amount =",
            "  spend_b = sum(discount + amount) over 720h\n"
            "  alias = spend_per_order_30d\n"
            "  ratio_b = spend_b / nullif(orders_30d, 0)\n"
            "  last_amount =",
        )
    )
    view = view_of(text)
    forms = canonical.feature_forms(view)
    assert forms["spend_b"] == forms["spend_30d"]
    assert forms["alias"] == forms["spend_per_order_30d"] == forms["ratio_b"]
    assert forms["net_30d"] != forms["spend_30d"]
    assert canonical.feature_form(view, "alias") == forms["alias"]
    assert "spend_30d" not in str(forms["alias"])  # expanded, not referenced by name
    assert "amount" in str(forms["alias"])


def test_a_long_chain_of_derived_features():
    """Chains as long as the language allows (tests/test_hostile_input.py) need no recursion."""
    feats = ["  f0 = sum(amount) over 7d"] + [f"  f{i} = f{i - 1}" for i in range(1, 5000)]
    text = edited(("  last_amount =", "\n".join(feats) + "\n  last_amount ="))
    forms = canonical.feature_forms(view_of(text))
    assert forms["f4999"] == forms["f0"]


def test_the_fingerprint_never_compiles_sql():
    """No SQL text, hence no renderer: a fresh interpreter that computes every fingerprint of
    the example never imports `fsdsl.compile.render`."""
    code = (
        "import sys\n"
        "from fsdsl.check import load_repository\n"
        "from fsdsl.online.fingerprint import fingerprint\n"
        f"repo, _ = load_repository({str(ROOT / 'definitions')!r})\n"
        "print(sorted(fingerprint(v) for v in repo.views.values()))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('fsdsl.'))\n"
        "assert 'fsdsl.compile.render' not in loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_cosmetic_compiler_change_keeps_the_fingerprint(monkeypatch, tmp_path):
    """A compiler change that prints the same query differently recompiles the cached text (its
    key holds the compiler's source), but no store is refreshed in full for it."""
    view = view_of(BASE)
    fp = fingerprint(view)
    before = refresh.refresh_sql(view, "duckdb", tmp_path)
    render = refresh.sql_text
    monkeypatch.setattr(refresh, "sql_text", lambda *a, **k: "/* v2 */ " + render(*a, **k))
    monkeypatch.setattr(refresh, "compiler_version", lambda: "a newer compiler")
    after = refresh.refresh_sql(view, "duckdb", tmp_path)
    assert after == "/* v2 */ " + before  # recompiled, not read back
    assert len(list(tmp_path.glob("user_orders.duckdb.*.sql"))) == 2
    assert fingerprint(view) == fp


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return example_project(
        tmp_path_factory.mktemp("fp"), users=120, orders=2000, page_views=1500, seed=11
    )


@pytest.mark.parametrize("backend", ["postgres", "spark"])
def test_the_same_fingerprint_from_any_warehouse(backend, project, warehouse_urls, redis_urls):
    """A store refreshed from DuckDB and one refreshed from another warehouse (the same data
    copied there) hold every view under the same fingerprint: the one `fingerprint(view)`
    gives, with no dialect involved."""
    url = warehouse_url(warehouse_urls, backend)
    online = redis_urls["embedded"]
    repo, _ = load_repository(project / "definitions")
    expected = {name: fingerprint(view) for name, view in repo.views.items()}
    at = dt.datetime.fromisoformat(AT)
    seen = {}
    with connect(f"duckdb:///{project / '.fsc' / 'warehouse.duckdb'}", {}) as duck:
        tables = {
            s.table: duck.query(exp.select(exp.Star()).from_(table_expression(s.table)))
            for s in repo.sources.values()
        }
        for wh in (duck, connect(url, {})):
            flush(online)
            store = OnlineStore(online)
            with wh:
                if wh is not duck:
                    for table, data in tables.items():
                        wh.create_table(table, data)
                runs = [refresh_view(repo, v, wh, store, at) for v in repo.views.values()]
            assert all(r.mode == "full" and r.entities_written > 0 for r in runs)
            seen[wh.dialect] = {name: store.state(name)["fp"] for name in expected}
    assert seen["duckdb"] == seen[backend] == expected
