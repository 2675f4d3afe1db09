"""Entity resolution (issue #12): `link`, `key ENTITY` and `via LINK`, checked and compiled.

Every lint error the issue lists has a located case (`file:line:col: CODE`, the source line and
a caret under the token), each one edit away from one valid repository (`BASE`: the issue's
example plus a second link, user -> household, for chains). Then: chains resolve, a target of
two key columns needs them all, services without `key` compile byte for byte as they did before
links existed, `fsc fmt` round-trips the syntax, and `fsc compile` shows the resolution in every
dialect, each query re-parsed by sqlglot.
"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
import sqlglot
from conftest import warehouse_url
from sqlglot import exp
from test_lint import ENV, assert_diag, assert_no_crash, header_positions, lint, loc, runner
from warehouses import BACKENDS, load_events

from fsdsl import ir
from fsdsl.backends import connect
from fsdsl.check import load_text
from fsdsl.cli import app
from fsdsl.compile import DIALECTS
from fsdsl.compile.training import RESOLVED, resolved_keys
from fsdsl.training_set import compute

BASE = """\
entity user {
  key user_id: string
}

entity device {
  key device_id: string
}

entity household {
  key household_id: string
}

source orders {
  table "orders"
  timestamp event_timestamp
  created created_at
  columns {
    order_id: string
    user_id: string
    amount: float
    event_timestamp: timestamp
    created_at: timestamp
  }
}

source device_links {
  table "device_links"
  timestamp linked_at
  created ingested_at
  columns {
    device_id: string
    user_id: string
    linked_at: timestamp
    ingested_at: timestamp
  }
}

source user_households {
  table "user_households"
  timestamp moved_at
  columns {
    user_id: string
    household_id: string
    moved_at: timestamp
  }
}

source bills {
  table "bills"
  timestamp billed_at
  columns {
    household_id: string
    total: float
    billed_at: timestamp
  }
}

features user_orders {
  entity user
  from orders
  ttl 60d

  spend_30d = sum(amount) over 30d
  orders_7d = count(*) over 7d
}

features household_bills {
  entity household
  from bills

  bills_30d = count(*) over 30d
}

link device_owner {
  from device_links
  device -> user
  ttl 365d
  owner "identity"
  description "Which user a device belongs to"
}

link user_household {
  from user_households
  user -> household
}

service fraud_by_device {
  key device
  features user_orders.spend_30d, user_orders.orders_7d, household_bills.bills_30d
}

service churn_model {
  features user_orders.*
}
"""

FRAUD_FEATURES = (
    "  features user_orders.spend_30d, user_orders.orders_7d, household_bills.bills_30d\n"
)

# a second way from device to household: device_households
SECOND_PATH = """
source device_households {
  table "device_households"
  timestamp seen_at
  columns {
    device_id: string
    household_id: string
    seen_at: timestamp
  }
}

link device_household {
  from device_households
  device -> household
}
"""

SHOP = """
entity shop {
  key shop_id: string
}

source sales {
  table "sales"
  timestamp sold_at
  columns {
    shop_id: string
    sold_at: timestamp
  }
}

features shop_sales {
  entity shop
  from sales

  sales_7d = count(*) over 7d
}
"""

# a target entity with two key columns, its link source naming them `uid` and `cat`
USER_CATEGORY = """
entity user_category {
  key user_id: string, category: string
}

source device_interests {
  table "device_interests"
  timestamp seen_at
  columns {
    device_id: string
    uid: string
    cat: string
    seen_at: timestamp
  }
}

source interest_views {
  table "interest_views"
  timestamp viewed_at
  columns {
    user_id: string
    category: string
    viewed_at: timestamp
  }
}

features interest {
  entity user_category
  from interest_views

  views = count(*)
}

link device_interest {
  from device_interests
  device -> user_category TARGET
}

service by_interest {
  key device
  features interest.views
}
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    """`text` with exactly one occurrence of `old` replaced (each case changes one thing)."""
    assert text.count(old) == 1, f"fixture edit is ambiguous or stale: {old!r}"
    return text.replace(old, new)


def serve(extra: str, text: str = BASE) -> str:
    """BASE with `extra` appended to fraud_by_device's features line."""
    return edit(FRAUD_FEATURES, FRAUD_FEATURES.rstrip("\n") + extra + "\n", text)


def repo_of(text: str) -> ir.Repository:
    repo, diags = load_text(text)
    assert repo is not None, [d.message for d in diags]
    assert not [d for d in diags if d.is_error], [d.message for d in diags]
    return repo


def chain(n: int) -> str:
    """Entities e0 .. e<n>, a link from each to the next, a view on the last, a service keyed
    by e0 that serves it: a chain of `n` links."""
    parts = [f"entity e{i} {{\n  key k{i}: string\n}}\n" for i in range(n + 1)]
    for i in range(n):
        parts.append(
            f'source s{i} {{\n  table "s{i}"\n  timestamp ts\n'
            f"  columns {{\n    k{i}: string\n    k{i + 1}: string\n    ts: timestamp\n  }}\n}}\n"
            f"link l{i} {{\n  from s{i}\n  e{i} -> e{i + 1}\n}}\n"
        )
    parts.append(
        f'source facts {{\n  table "facts"\n  timestamp ts\n'
        f"  columns {{\n    k{n}: string\n    ts: timestamp\n  }}\n}}\n"
        f"features far {{\n  entity e{n}\n  from facts\n\n  n = count(*)\n}}\n"
        "service deep {\n  key e0\n  features far.n\n}\n"
    )
    return "\n".join(parts)


# ---- the valid repository ------------------------------------------------------------------------
def test_base_is_clean(tmp_path):
    _, result = lint(tmp_path, BASE)
    assert result.exit_code == 0, result.output
    assert "All checks passed." in result.output


def test_a_chain_of_two_resolves_device_user_household():
    repo = repo_of(BASE)
    svc = repo.services["fraud_by_device"]
    assert svc.key is not None and svc.key.name == "device"
    assert svc.path("user_orders") == ("device_owner",)
    assert svc.path("household_bills") == ("device_owner", "user_household")
    assert svc.links() == ["device_owner", "user_household"]
    # the training output and `fsc get` carry the resolved keys in resolution order
    assert resolved_keys(repo, svc) == ["user_id", "household_id"]
    # a link compiles to a view of its name, keyed by the from-entity
    link = repo.links["device_owner"]
    assert repo.views["device_owner"] is link.view and link.view.link == "device_owner"
    assert [k.name for k in link.view.entity.keys] == ["device_id"]
    assert link.ttl is not None and link.ttl.seconds == 365 * 86400


def test_a_chain_of_three_resolves_and_of_four_is_unreachable(tmp_path):
    assert repo_of(chain(3)).services["deep"].path("far") == ("l0", "l1", "l2")
    text = chain(4)
    path, result = lint(tmp_path, text)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    assert_diag(result.output, path, "E0215", loc(text, "  features far.n", "far.n"))
    assert f"within {ir.MAX_LINK_DEPTH} links" in result.output


def test_via_picks_one_of_two_paths(tmp_path):
    for via, path in [
        ("user_household", ("device_owner", "user_household")),
        ("device_household", ("device_household",)),
    ]:
        text = (
            edit("household_bills.bills_30d\n", f"household_bills.bills_30d via {via}\n")
            + SECOND_PATH
        )
        _, result = lint(tmp_path, text)
        assert result.exit_code == 0, result.output
        assert repo_of(text).services["fraud_by_device"].path("household_bills") == path


def test_a_target_with_two_key_columns_needs_both():
    repo = repo_of(BASE + USER_CATEGORY.replace("TARGET", "by uid, cat"))
    link = repo.links["device_interest"]
    assert link.to_columns == ("uid", "cat")
    assert resolved_keys(repo, repo.services["by_interest"]) == ["user_id", "category"]


def test_services_without_key_compile_as_before_links_existed(tmp_path):
    """The same service and views, byte for byte, in every dialect and both targets, whether
    the repository declares links (and keyed services) or not."""
    without = BASE
    for block in (
        "entity device {\n  key device_id: string\n}\n\n",
        BASE[BASE.index("link device_owner {") : BASE.index("service churn_model {")],
    ):
        without = edit(block, "", without)
    repo_of(without)  # still valid: no link, no keyed service
    assert "\nlink " not in without and "key device" not in without
    folders = {}
    for name, text in (("with", BASE), ("without", without)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "t.feat").write_text(text)
    for dialect in DIALECTS:
        for args in (
            ["-s", "churn_model"],
            ["-s", "churn_model", "-t", "refresh"],
            ["-v", "user_orders"],
            ["-v", "household_bills", "-t", "refresh"],
        ):
            out = {}
            for name, folder in folders.items():
                result = runner.invoke(app, ["compile", str(folder), *args, "-d", dialect], env=ENV)
                assert result.exit_code == 0, result.output
                out[name] = result.output
            assert out["with"] == out["without"], (dialect, args)


# ---- located lint errors -------------------------------------------------------------------------
class Case:
    def __init__(self, id, text, code, line_has, token=None, *, nth=1, says=(), width=True):
        self.id, self.text, self.code = id, text, code
        self.at = loc(text, line_has, token, nth)
        self.says = says  # substrings the diagnostic must hold
        self.width = width


CASES = [
    # link cycles
    Case(
        "link-to-itself",
        edit("  user -> household\n", "  user -> user\n"),
        "E0214",
        "  user -> user",
        "user",
        nth=2,
        says=("to itself",),
    ),
    Case(
        "cycle-of-two",
        BASE + "\nlink back {\n  from user_households\n  household -> user\n}\n",
        "E0214",
        "link user_household {",
        "link",
        says=("cycle", "`back`", "`user_household`"),
        width=False,
    ),
    Case(
        "cycle-of-three",
        BASE + '\nsource household_devices {\n  table "hd"\n  timestamp ts\n'
        "  columns {\n    household_id: string\n    device_id: string\n    ts: timestamp\n  }\n}\n"
        "\nlink back {\n  from household_devices\n  household -> device\n}\n",
        "E0214",
        "link back {",
        "link",
        says=("cycle", "`back`", "`device_owner`", "`user_household`"),
        width=False,
    ),
    # link columns whose types differ from the entity keys
    Case(
        "target-column-type",
        edit("    household_id: string\n    moved_at", "    household_id: int\n    moved_at"),
        "E0306",
        "  user -> household",
        "household",
        says=("`household_id` is string", "is int"),
    ),
    Case(
        "renamed-target-column-type",
        edit(
            "    household_id: string\n    moved_at",
            "    hh: int\n    moved_at",
            edit("  user -> household\n", "  user -> household by hh\n"),
        ),
        "E0306",
        "  user -> household by hh",
        "hh",
    ),
    Case(
        "from-column-type",
        edit(
            "    device_id: string\n    user_id: string\n    linked_at",
            "    device_id: int\n    user_id: string\n    linked_at",
        ),
        "E0306",
        "  device -> user",
        "device",
        says=("`device_id` is string", "is int"),
    ),
    # a feature unreachable from the service key
    Case(
        "unreachable-view",
        serve(", shop_sales.sales_7d", BASE + SHOP),
        "E0215",
        "household_bills.bills_30d, shop_sales.sales_7d",
        "shop_sales.sales_7d",
        says=("unreachable", "from `device` to `shop`"),
    ),
    Case(
        "unreachable-through-via",
        edit("household_bills.bills_30d\n", "household_bills.bills_30d via device_owner\n").replace(
            "  features user_orders.spend_30d,",
            "  features user_orders.spend_30d via user_household,",
        ),
        "E0215",
        "  features user_orders.spend_30d via user_household,",
        "user_orders.spend_30d via user_household",
        says=("no path through the `via` links",),
    ),
    # ambiguous paths without `via`: the message names the candidates
    Case(
        "ambiguous-path",
        BASE + SECOND_PATH,
        "E0216",
        FRAUD_FEATURES,
        "household_bills.bills_30d",
        says=(
            "in 2 ways: device_household; device_owner -> user_household",
            "via <link>`, one of device_household, device_owner, user_household",
        ),
    ),
    # a link whose source lacks the key columns
    Case(
        "source-lacks-target-key",
        edit(
            "    device_id: string\n    user_id: string\n    linked_at",
            "    device_id: string\n    linked_at",
        ),
        "E0203",
        "  device -> user",
        "user",
        says=("source `device_links` has no column `user_id`",),
    ),
    Case(
        "source-lacks-from-key",
        edit(
            "    device_id: string\n    user_id: string\n    linked_at",
            "    user_id: string\n    linked_at",
        ),
        "E0203",
        "  device -> user",
        "device",
        says=("`device_id`",),
    ),
    Case(
        "source-lacks-renamed-column",
        edit("  user -> household\n", "  user -> household by hh\n"),
        "E0203",
        "  user -> household by hh",
        "hh",
        says=("no column `hh`",),
    ),
    # a target of two key columns: the link supplies all of them
    Case(
        "two-keys-one-by",
        BASE + USER_CATEGORY.replace("TARGET", "by uid"),
        "E0209",
        "  device -> user_category by uid",
        "uid",
        says=("2 key(s) but `by` names 1",),
    ),
    Case(
        "two-keys-no-such-columns",
        BASE + USER_CATEGORY.replace(" TARGET", ""),
        "E0203",
        "  device -> user_category",
        "user_category",
        says=("no column `user_id`",),
    ),
    # `via` misuse
    Case(
        "via-unknown-link",
        edit("household_bills.bills_30d\n", "household_bills.bills_30d via user_houshold\n"),
        "E0217",
        "household_bills.bills_30d via user_houshold",
        "user_houshold",
        says=("unknown link", "did you mean `user_household`?"),
    ),
    Case(
        "via-without-key",
        edit("  features user_orders.*\n", "  features user_orders.* via device_owner\n"),
        "E0217",
        "  features user_orders.* via device_owner",
        "device_owner",
        says=("without `key`",),
    ),
    Case(
        "via-on-a-view-of-the-key",
        edit(
            "service churn_model {\n  features user_orders.*\n",
            "service churn_model {\n  key user\n  features user_orders.* via device_owner\n",
        ),
        "E0217",
        "  features user_orders.* via device_owner",
        "device_owner",
        says=("the service's key",),
    ),
    Case(
        "one-entity-two-ways",
        edit(
            FRAUD_FEATURES,
            "  features household_bills.bills_30d via user_household\n"
            "  features household_bills.* via device_household\n",
        )
        + SECOND_PATH,
        "E0217",
        "  features household_bills.* via device_household",
        "household_bills.* via device_household",
        says=("resolves entity `household` two ways",),
    ),
    Case(
        "serving-a-link-it-resolves-through",
        serve(", device_owner.user_id"),
        "E0217",
        FRAUD_FEATURES.rstrip("\n") + ", device_owner.user_id",
        "device_owner",
        says=("resolves this service's keys",),
    ),
    # names
    Case(
        "unknown-service-key",
        edit("  key device\n", "  key devise\n"),
        "E0201",
        "  key devise",
        "devise",
        says=("did you mean `device`?",),
    ),
    Case(
        "link-named-like-a-view",
        edit("link user_household {", "link household_bills {"),
        "E0200",
        "link household_bills {",
        "household_bills",
    ),
    Case(
        "entities-share-a-key-name",
        BASE + "\nentity account {\n  key user_id: string\n}\n"
        "\nlink account_owner {\n  from device_links\n  account -> user\n}\n",
        "E0207",
        "  account -> user",
        "user",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lint_error_is_located(tmp_path, case):
    path, result = lint(tmp_path, case.text)
    assert_no_crash(result)
    assert result.exit_code == 1, result.output
    assert_diag(result.output, path, case.code, case.at, caret_width=case.width)
    for text in case.says:
        assert text in result.output, f"{text!r} not in:\n{result.output}"


def test_every_issue_lint_error_has_a_case():
    """The issue's list: cycles, key types, unreachable, ambiguous, source lacking keys."""
    assert {c.code for c in CASES} >= {"E0214", "E0306", "E0215", "E0216", "E0203", "E0217"}


def test_an_error_is_reported_once_per_cycle(tmp_path):
    text = next(c for c in CASES if c.id == "cycle-of-two").text
    path, result = lint(tmp_path, text)
    assert [code for *_, code in header_positions(result.output, path)].count("E0214") == 1


# A broken link is dropped from the model: a feature reached only through it is not reported
# unreachable (E0215) or its `via` an unknown link (E0217) on top of the link's own error.
BROKEN_LINK = (
    "link-to-itself",
    "target-column-type",
    "renamed-target-column-type",
    "from-column-type",
    "source-lacks-target-key",
    "source-lacks-from-key",
    "source-lacks-renamed-column",
    "two-keys-one-by",
    "two-keys-no-such-columns",
    "link-named-like-a-view",
)
# links broken otherwise, each an error of its own: unknown entity, unknown source, no `A -> B`
OTHER_BROKEN_LINKS = [
    ("unknown-target", edit("  user -> household\n", "  user -> housefold\n"), "E0201"),
    ("unknown-from", edit("  device -> user\n", "  devise -> user\n"), "E0201"),
    ("unknown-source", edit("  from user_households\n", "  from user_houseolds\n"), "E0202"),
    ("no-ends", edit("  user -> household\n", ""), "E0206"),
]
VIA_BROKEN = edit(
    "household_bills.bills_30d\n",
    "household_bills.bills_30d via user_household\n",
    next(c for c in CASES if c.id == "target-column-type").text,
)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in BROKEN_LINK], ids=lambda c: c.id)
def test_a_broken_link_reports_only_its_own_error(tmp_path, case):
    path, result = lint(tmp_path, case.text)
    assert [code for *_, code in header_positions(result.output, path)] == [case.code], (
        result.output
    )


@pytest.mark.parametrize(
    ("text", "code"), [c[1:] for c in OTHER_BROKEN_LINKS], ids=[c[0] for c in OTHER_BROKEN_LINKS]
)
def test_a_link_broken_otherwise_reports_only_its_own_error(tmp_path, text, code):
    path, result = lint(tmp_path, text)
    assert [code for *_, code in header_positions(result.output, path)] == [code], result.output


def test_a_via_through_a_broken_link_reports_only_the_link(tmp_path):
    path, result = lint(tmp_path, VIA_BROKEN)
    assert [code for *_, code in header_positions(result.output, path)] == ["E0306"], result.output


def test_an_unreachable_view_is_reported_beside_a_broken_link(tmp_path):
    """Only what the broken link explains is left out: `shop` is reachable by no link at all."""
    text = serve(
        ", shop_sales.sales_7d", next(c for c in CASES if c.id == "target-column-type").text + SHOP
    )
    path, result = lint(tmp_path, text)
    codes = header_positions(result.output, path)
    assert [code for *_, code in codes] == ["E0306", "E0215"], result.output
    assert_diag(
        result.output,
        path,
        "E0215",
        loc(text, FRAUD_FEATURES.rstrip("\n") + ", shop_sales", "shop_sales.sales_7d"),
    )


# ---- fmt -----------------------------------------------------------------------------------------
MESSY = """\
link   device_owner{ from device_links
  description "Which user"   owner "identity"
   device   by dev_id->user by uid   # renamed columns
  ttl 365d }
service by_device { features orders.spend via device_owner,bills.* via device_owner   via home
 key device }
"""

CANONICAL = """\
link device_owner {
  from device_links
  device by dev_id -> user by uid  # renamed columns
  ttl 365d
  owner "identity"
  description "Which user"
}

service by_device {
  key device
  features orders.spend via device_owner, bills.* via device_owner via home
}
"""


def test_fmt_round_trips_link_key_and_via(tmp_path):
    path = tmp_path / "t.feat"
    path.write_text(MESSY)
    result = runner.invoke(app, ["fmt", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
    assert path.read_text() == CANONICAL
    result = runner.invoke(app, ["fmt", "--check", str(path)], env=ENV)
    assert result.exit_code == 0, result.output  # idempotent
    assert path.read_text() == CANONICAL
    # BASE is canonical already, its link, key and via kept as written
    base = tmp_path / "base.feat"
    text = edit("household_bills.bills_30d\n", "household_bills.bills_30d via user_household\n")
    base.write_text(text + SECOND_PATH)
    result = runner.invoke(app, ["fmt", "--check", str(base)], env=ENV)
    assert result.exit_code == 0, result.output


# ---- fsc compile shows the resolution, in every dialect ------------------------------------------
def compiled(tmp_path, *args: str, text: str = BASE) -> list[dict]:
    folder = tmp_path / "repo"
    folder.mkdir(exist_ok=True)
    (folder / "t.feat").write_text(text)
    result = runner.invoke(app, ["compile", str(folder), *args, "-f", "json"], env=ENV)
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def parsed(query: dict) -> exp.Expression:
    return sqlglot.parse_one(
        query["sql"], read=query["dialect"], error_level=sqlglot.ErrorLevel.RAISE
    )


def projections(tree: exp.Expression) -> list[str]:
    return [p.alias_or_name for p in tree.selects]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compile_service_shows_the_resolution_stages(tmp_path, dialect):
    (query,) = compiled(tmp_path, "-s", "fraud_by_device", "-d", dialect)
    tree = parsed(query)
    ctes = {c.alias: c.this for c in tree.find(exp.With).expressions}
    # one stage per link, in resolution order: each adds its target's key to the labels
    first, second = ctes[f"{RESOLVED}0"], ctes[f"{RESOLVED}1"]
    assert projections(first) == ["*", "user_id"]
    assert projections(second) == ["*", "household_id"]
    assert first.find(exp.From).find(exp.Table).name == "labels"
    assert second.find(exp.From).find(exp.Table).name == f"{RESOLVED}0"
    # the features are computed over the last stage, as if the labels had carried the keys
    assert (tree.args.get("from_") or tree.args["from"]).find(exp.Table).name == f"{RESOLVED}1"
    assert projections(tree) == ["*", "spend_30d", "orders_7d", "bills_30d"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compile_view_of_a_link(tmp_path, dialect):
    (training,) = compiled(tmp_path, "-v", "device_owner", "-d", dialect)
    assert projections(parsed(training)) == ["*", ir.UNLINKED, "user_id"]
    (refresh,) = compiled(tmp_path, "-v", "device_owner", "-d", dialect, "-t", "refresh")
    cols = projections(parsed(refresh))
    assert cols[:4] == ["device_id", "as_of", ir.UNLINKED, "user_id"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compile_service_refresh_includes_its_links(tmp_path, dialect):
    queries = compiled(tmp_path, "-s", "fraud_by_device", "-d", dialect, "-t", "refresh")
    assert [q["name"] for q in queries] == [
        "device_owner",
        "user_household",
        "user_orders",
        "household_bills",
    ]
    for q in queries:
        parsed(q)


# ---- a target of several key columns: ties -------------------------------------------------------
TWO_KEYS = BASE + USER_CATEGORY.replace("TARGET", "by uid, cat")
T_TIE = dt.datetime(2024, 1, 1)
TIED_INTERESTS = [
    # (u1, b) and (u2, a) tied: the greater pair, (u2, a) — never (u2, b), which no row holds
    {"device_id": "d1", "uid": "u1", "cat": "b", "seen_at": T_TIE},
    {"device_id": "d1", "uid": "u2", "cat": "a", "seen_at": T_TIE},
    # the first column tied too: the second decides, (u1, b)
    {"device_id": "d2", "uid": "u1", "cat": "b", "seen_at": T_TIE},
    {"device_id": "d2", "uid": "u1", "cat": "a", "seen_at": T_TIE},
    # a row with a null key column unlinks, and wins its tie as an unlink does
    {"device_id": "d3", "uid": "u2", "cat": "a", "seen_at": T_TIE},
    {"device_id": "d3", "uid": "u1", "cat": None, "seen_at": T_TIE},
    # an older row, then a tie: the tie is the link
    {"device_id": "d4", "uid": "u9", "cat": "z", "seen_at": T_TIE - dt.timedelta(hours=1)},
    {"device_id": "d4", "uid": "u1", "cat": "z", "seen_at": T_TIE},
    {"device_id": "d4", "uid": "u2", "cat": "b", "seen_at": T_TIE},
]
# each pair a different count of views, so that a feature tells which pair was resolved
TIED_VIEWS = [
    {"user_id": u, "category": c, "viewed_at": T_TIE - dt.timedelta(days=1)}
    for u, c, n in [("u2", "a", 1), ("u2", "b", 2), ("u1", "b", 3), ("u1", "a", 4), ("u1", "z", 5)]
    for _ in range(n)
]
TIE_WANT = {  # device: (user_id, category, views)
    "d1": ("u2", "a", 1),
    "d2": ("u1", "b", 3),
    "d3": (None, None, 0),
    "d4": ("u2", "b", 2),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tie_resolves_every_key_column_from_one_row(backend, warehouse_urls):
    """Link rows of one device at the same time: as `last()` breaks a tie by the value, the
    link is the row greatest in the key columns, compared in order (docs/semantics.md), and
    every key column comes from that row: a device never resolves to a pair no row holds, nor
    gets that pair's features. Each `last()` on its own picked the greatest of each column."""
    repo = repo_of(TWO_KEYS)
    svc = repo.services["by_interest"]
    events = {"device_interests": TIED_INTERESTS, "interest_views": TIED_VIEWS}
    devices = [*TIE_WANT, "never"]
    at = pa.array([T_TIE + dt.timedelta(hours=1)] * len(devices), pa.timestamp("us"))
    labels = pa.table({"device_id": devices, "event_timestamp": at})
    with connect(warehouse_url(warehouse_urls, backend), {}) as wh:
        load_events(wh, repo, events)
        rows = compute(repo, list(svc.features), labels, wh, service=svc).to_pylist()
    got = {r["device_id"]: (r["user_id"], r["category"], r["views"]) for r in rows}
    assert got == {**TIE_WANT, "never": (None, None, 0)}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_link_of_two_key_columns_compiles_in_every_dialect(tmp_path, dialect):
    """The one-row-per-tie filter of such a link's view, in training and refresh SQL that each
    dialect re-parses (the goldens' link has one key column)."""
    for target in ("training", "refresh"):
        args = ("-v", "device_interest", "-d", dialect, "-t", target)
        (query,) = compiled(tmp_path, *args, text=TWO_KEYS)
        tree = parsed(query)
        assert "__tie" in {c.name for c in tree.find_all(exp.Column)}, target
