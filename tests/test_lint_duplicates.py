"""`fsc lint`'s warnings: duplicate features (W0001) and names that contradict their window
(W0002), and the machine formats that carry them (`--format json|github|sarif`).

Every equivalent pair is written in two files, the way two teams would: the first file's
feature is the one to keep, the second's is reported, with a note at the first. Lines marked
`# <-` are where the warning and its note must point. The distinct fixture
(`tests/fixtures/lint/distinct.feat`) holds near misses of each kind of equivalence, beside the
example repository: not one warning may fire there.

The SARIF schema in `tests/fixtures/sarif-schema-2.1.0.json` is OASIS's own, vendored from
github.com/oasis-tcs/sarif-spec (`sarif-2.1/schema/sarif-schema-2.1.0.json`, last changed in
commit a560296ca8c921f3bdb8d4a8db57ab83dae968a7), so the test needs no network.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fsdsl.check import load_repository
from fsdsl.cli import app
from fsdsl.lint import lint_repository

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
runner = CliRunner(env={"COLUMNS": "120"})

COMMON = """\
entity user {
  key user_id: string
}

entity customer {
  key customer_id: string
}

source orders {
  table "orders"
  timestamp event_timestamp
  created created_at
  columns {
    order_id: string
    user_id: string
    amount: float
    tax: float
    quantity: int
    status: string
    event_timestamp: timestamp
    created_at: timestamp
  }
}

# a second declaration of the same table, under another name
source order_log {
  table "orders"
  timestamp event_timestamp
  created created_at
  columns {
    user_id: string
    amount: float
    status: string
    event_timestamp: timestamp
    created_at: timestamp
  }
}
"""

MARK = "# <-"


def view(name: str, *features: str, head: str = "entity user\n  from orders") -> str:
    body = "\n".join(f"  {f}" for f in features)
    return f"features {name} {{\n  {head}\n\n{body}\n}}\n"


@dataclass(frozen=True)
class Pair:
    """`first` (a.feat) and `second` (b.feat, empty when the pair is inside `first`)."""

    id: str
    first: str
    second: str = ""


PAIRS = [
    Pair(
        "commutative +",
        view("a", "with_tax_7d = sum(amount + tax) over 7d  # <-"),
        view("b", "taxed_7d = sum(tax + amount) over 7d  # <-"),
    ),
    Pair(
        "commutative *",
        view("a", "line_total_7d = sum(amount * quantity) over 7d  # <-"),
        view("b", "basket_7d = sum(quantity * amount) over 7d  # <-"),
    ),
    Pair(
        "redundant parentheses",
        view("a", "spend_7d = sum(amount) over 7d  # <-"),
        view("b", "spend_week_7d = (sum(((amount)))) over 7d  # <-"),
    ),
    Pair(
        "7d = 168h",
        view("a", "spend_7d = sum(amount) over 7d  # <-"),
        view("b", "spend_168h = sum(amount) over 168h  # <-"),
    ),
    Pair(
        "1w = 7d",
        view("a", "orders_1w = count(*) over 1w  # <-"),
        view("b", "orders_7d = count(*) over 7d  # <-"),
    ),
    Pair(
        "2w = 336h = 20160m",
        view("a", "orders_2w = count(*) over 2w  # <-"),
        view("b", "orders_20160m = count(*) over 20160m  # <-"),
    ),
    Pair(
        "1h = 3600s",
        view("a", "orders_1h = count(*) over 1h  # <-"),
        view("b", "orders_3600s = count(*) over 3600s  # <-"),
    ),
    Pair(
        "flipped comparison in the filter",
        view(
            "a",
            "big_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where amount > 10",
        ),
        view(
            "b",
            "large_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where 10 < amount",
        ),
    ),
    Pair(
        "commutative = in the filter",
        view(
            "a",
            "done_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where status = 'completed'",
        ),
        view(
            "b",
            "completed_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where 'completed' = status",
        ),
    ),
    Pair(
        "reordered and",
        view(
            "a",
            "good_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where status = 'completed' and amount > 0",
        ),
        view(
            "b",
            "valid_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where amount > 0 and (status = 'completed')",
        ),
    ),
    Pair(
        "regrouped or",
        view(
            "a",
            "closed_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where status = 'a' or (status = 'b' or status = 'c')",  # noqa: E501
        ),
        view(
            "b",
            "ended_7d = count(*) over 7d  # <-",
            head="entity user\n  from orders\n  where (status = 'c' or status = 'a') or status = 'b'",  # noqa: E501
        ),
    ),
    Pair(
        "in-list order and repetition",
        view(
            "a",
            "returns_7d = count(case when status in ('refunded', 'void') then 1 end) over 7d  # <-",
        ),
        view(
            "b",
            "undone_7d = count(case when status in ('void', 'refunded', 'void') then 1 end) over 7d"
            "  # <-",
        ),
    ),
    Pair(
        "<> is !=, either way round",
        view("a", "open_7d = count(case when status <> 'closed' then 1 end) over 7d  # <-"),
        view("b", "unclosed_7d = count(case when 'closed' != status then 1 end) over 7d  # <-"),
    ),
    Pair(
        ">= is <= flipped, inside case",
        view("a", "big_orders_7d = count(case when amount >= 100 then 1 end) over 7d  # <-"),
        view("b", "large_orders_7d = count(case when 100 <= amount then 1 end) over 7d  # <-"),
    ),
    Pair(
        "derived feature expanded",
        view(
            "a",
            "spend_7d = sum(amount) over 7d",
            "orders_7d = count(*) over 7d",
            "avg_order_7d = spend_7d / nullif(orders_7d, 0)  # <-",
        ),
        view("b", "mean_basket_1w = sum(amount) / nullif(count(*), 0) over 1w  # <-"),
    ),
    Pair(
        "two levels of derived features against one expression",
        view("a", "boosted_spend_7d = 1.0 + 2 * sum(amount) over 7d  # <-"),
        view(
            "b",
            "base_spend_7d = sum(amount) over 7d",
            "twice_7d = base_spend_7d * 2",
            "twice_plus_one_7d = twice_7d + 1.0  # <-",
        ),
    ),
    Pair(
        "an alias in the same view",
        view("a", "spend_7d = sum(amount) over 7d  # <-", "weekly_spend = spend_7d  # <-"),
    ),
    Pair(
        "another source declaration of the same table",
        view("a", "spend_30d = sum(amount) over 30d  # <-"),
        view("b", "total_30d = sum(amount) over 30d  # <-", head="entity user\n  from order_log"),
    ),
    Pair(
        "another entity on the same key column",
        view("a", "orders_30d = count(*) over 30d  # <-"),
        view(
            "b",
            "purchases_30d = count(*) over 30d  # <-",
            head="entity customer by user_id\n  from orders",
        ),
    ),
    Pair(
        "siblings reading other columns",
        view("a", "spend_7d = sum(amount) over 7d  # <-", "last_status = last(status)"),
        view("b", "n_1h = count(*) over 1h", "total_7d = sum(amount) over 7d  # <-"),
    ),
    Pair(
        "unary plus",
        view("a", "min_amount_7d = min(+amount) over 7d  # <-"),
        view("b", "smallest_7d = min(amount) over 7d  # <-"),
    ),
    Pair(
        "a cast to the type it has",
        view("a", "max_amount_7d = max(cast(amount as float)) over 7d  # <-"),
        view("b", "largest_7d = max(amount) over 7d  # <-"),
    ),
    Pair(
        "written type equal to the computed one",
        view("a", "n_7d: int = count(*) over 7d  # <-"),
        view("b", "count_7d = count(*) over 7d  # <-"),
    ),
    Pair(
        "function names in capitals, spacing and comments",
        view("a", "avg_7d = AVG(amount) over 7d  # <-"),
        view("b", "# the mean\n  mean_7d   =   avg( amount )   over   7d  # <-"),
    ),
    Pair(
        "no filter is `where true`",
        view("a", "events_30d = count(*) over 30d  # <-"),
        view(
            "b",
            "rows_30d = count(*) over 30d  # <-",
            head="entity user\n  from orders\n  where true",
        ),
    ),
    Pair(
        "the TTL in other units, and declaration order",
        view(
            "a",
            "spend_7d = sum(amount) over 7d",
            "last_amount = last(amount)  # <-",
            head='entity user\n  from orders\n  ttl 60d\n  owner "a"',
        ),
        view(
            "b",
            "latest_amount = last(amount)  # <-",
            "unrelated_1h = count(*) over 1h",
            head='ttl 1440h\n  from orders\n  entity user\n  description "b"',
        ),
    ),
    Pair(
        "nested commutative operands inside a function",
        view("a", "rounded_7d = round(sum(amount * 2.0), 1) over 7d  # <-"),
        view("b", "rounded_double_7d = round(sum(2.0 * amount), 1) over 7d  # <-"),
    ),
]


def _marked(path: Path) -> list[tuple[int, int]]:
    """(line, column) of the feature name on each line marked `# <-`."""
    out = []
    for i, line in enumerate(path.read_text().split("\n"), start=1):
        if line.rstrip().endswith(MARK):
            out.append((i, len(line) - len(line.lstrip()) + 1))
    return out


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "common.feat").write_text(COMMON)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _warnings(folder: Path):
    repo, diags = load_repository(folder)
    assert repo is not None, [d.message for d in diags]
    return lint_repository(repo)


def test_at_least_twenty_pairs():
    assert len(PAIRS) >= 20


@pytest.mark.parametrize("pair", PAIRS, ids=[p.id for p in PAIRS])
def test_equivalent_pair_is_caught_and_located(tmp_path, pair: Pair):
    files = {"a.feat": pair.first} | ({"b.feat": pair.second} if pair.second else {})
    folder = _write(tmp_path, files)
    marks = [(folder / n, at) for n in files for at in _marked(folder / n)]
    assert len(marks) == 2, marks
    (first_file, first_at), (second_file, second_at) = marks
    dups = [d for d in _warnings(folder) if d.code == "W0001"]
    assert len(dups) == 1, [d.message for d in dups]
    d = dups[0]
    assert (d.span.file, d.span.line, d.span.col) == (str(second_file), *second_at)
    (note,) = d.notes
    assert (note.span.file, note.span.line, note.span.col) == (str(first_file), *first_at)
    assert d.severity == "warning"
    assert "computes the same values as" in d.message
    assert d.hints and ("reference the existing feature" in d.hints[0] or "use `" in d.hints[0])


def test_example_repository_has_no_warnings(tmp_path):
    folder = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", folder)
    assert _warnings(folder) == []


def test_distinct_fixture_beside_the_example_has_no_warnings(tmp_path):
    """At least 50 distinct features, near misses of each other and of the example's."""
    folder = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", folder)
    shutil.copy(FIXTURES / "lint" / "distinct.feat", folder)
    repo, _ = load_repository(FIXTURES / "lint" / "distinct.feat")
    assert repo is not None
    assert sum(len(v.features) for v in repo.views.values()) >= 50
    assert [d.message for d in _warnings(folder)] == []
    result = runner.invoke(app, ["lint", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "All checks passed."


def test_duplicate_text_output(tmp_path):
    """The warning at the second feature, then the note under its own file:line:col with the
    source line and a caret, then the hint; exit 0 (a warning is not an error)."""
    a = view("a", "spend_7d = sum(amount) over 7d")
    b = view("b", "weekly_spend_1w = sum(amount) over 1w")
    folder = _write(tmp_path, {"a.feat": a, "b.feat": b})
    result = runner.invoke(app, ["lint", str(folder)])
    assert result.exit_code == 0, result.output
    fa, fb = folder / "a.feat", folder / "b.feat"
    expected = f"""\
{fb}:5:3: W0001 warning: feature `weekly_spend_1w` of `b` computes the same values as `a.spend_7d`
  |
5 |   weekly_spend_1w = sum(amount) over 1w
  |   ^^^^^^^^^^^^^^^
{fa}:5:3: note: `a.spend_7d` is defined here
  |
5 |   spend_7d = sum(amount) over 7d
  |   ^^^^^^^^
  = help: remove `weekly_spend_1w` and reference the existing feature: `features a.spend_7d` in a service

Found 0 error(s) and 1 warning(s).
"""  # noqa: E501
    assert result.output == expected


# ---- W0002: a name that contradicts its window -------------------------------------------------
CONTRADICTIONS = [
    # (feature, the part of the name pointed at, what the message says it has)
    ("orders_7d = count(*) over 30d", "7d", "aggregates over 30d"),
    ("views_1h = count(*) over 2h", "1h", "aggregates over 2h"),
    ("spend_2w = sum(amount) over 7d", "2w", "aggregates over 7d"),
    ("spend_90_days = sum(amount) over 30d", "90_days", "aggregates over 30d"),
    ("clicks_7day = count(*) over 1d", "7day", "aggregates over 1d"),
    ("spend_3mo = sum(amount) over 30d", "3mo", "aggregates over 30d"),
    ("last_amount_30d = last(amount)", "30d", "has no window"),
    ("ratio_7d = sum(amount) / nullif(count(*), 0) over 30d", "7d", "aggregates over 30d"),
]

AGREEMENTS = [
    "views_24h = count(*) over 1d",
    "views_60m = count(*) over 1h",
    "spend_2w = sum(amount) over 14d",
    "spend_90_days = sum(amount) over 90d",
    "spend_1mo = sum(amount) over 30d",
    "spend_1y = sum(amount) over 365d",
    "a_7d = count(*) over 7d\n  b_30d = count(*) over 30d\n  a_7d_per_30d = a_7d / b_30d",
    "long_orders_30s_7d = count(case when amount > 30 then 1 end) over 7d",
    "top3_7d = last_k(amount, 3) over 7d",
    "d7_orders = count(*) over 30d",  # a unit before the number is not a window
    "orders7d = count(*) over 30d",  # nor a number glued to a word
]


@pytest.mark.parametrize("feature,part,has", CONTRADICTIONS, ids=[c[0] for c in CONTRADICTIONS])
def test_name_contradicting_its_window_is_located(tmp_path, feature, part, has):
    folder = _write(tmp_path, {"a.feat": view("a", feature)})
    found = [d for d in _warnings(folder) if d.code == "W0002"]
    assert len(found) == 1, [d.message for d in found]
    d = found[0]
    name = feature.split(" ")[0]
    col = 3 + name.index(part)
    assert (d.span.file, d.span.line, d.span.col, d.span.end_col) == (
        str(folder / "a.feat"),
        5,
        col,
        col + len(part),
    )
    assert f"says {part} in its name but {has}" in d.message


def test_name_window_caret_in_text_output(tmp_path):
    folder = _write(tmp_path, {"a.feat": view("a", "orders_7d = count(*) over 30d")})
    result = runner.invoke(app, ["lint", str(folder)])
    assert result.exit_code == 0, result.output
    path = folder / "a.feat"
    assert result.output.startswith(
        f"{path}:5:10: W0002 warning: feature `orders_7d` says 7d in its name but aggregates "
        "over 30d\n"
        "  |\n"
        "5 |   orders_7d = count(*) over 30d\n"
        "  |          ^^\n"
        "  = help: rename it (e.g. `orders_30d`) or change its window\n"
    ), result.output


@pytest.mark.parametrize("feature", AGREEMENTS)
def test_name_agreeing_with_its_window_is_silent(tmp_path, feature):
    folder = _write(tmp_path, {"a.feat": view("a", feature)})
    assert [d.message for d in _warnings(folder) if d.code == "W0002"] == []


def test_ttl_counts_as_a_window(tmp_path):
    """Under `ttl 60d` an entity without an event for 60 days gets nulls: `last(amount)` is the
    last amount of the last 60 days, as its name says."""
    text = view("a", "last_amount_60d = last(amount)", head="entity user\n  from orders\n  ttl 60d")
    assert _warnings(_write(tmp_path, {"a.feat": text})) == []


# ---- machine formats -----------------------------------------------------------------------------
def _dup_repo(tmp_path: Path) -> Path:
    return _write(
        tmp_path,
        {
            "a.feat": view("a", "spend_7d = sum(amount) over 7d"),
            "b.feat": view(
                "b", "spend_168h = sum(amount) over 168h", "orders_7d = count(*) over 30d"
            ),
        },
    )


def test_json_carries_notes(tmp_path):
    folder = _dup_repo(tmp_path)
    result = runner.invoke(app, ["lint", str(folder), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(d["code"], d["line"], d["col"], d["severity"]) for d in data] == [
        ("W0001", 5, 3, "warning"),
        ("W0002", 6, 10, "warning"),
    ]
    assert data[0]["notes"] == [
        {
            "message": "`a.spend_7d` is defined here",
            "file": str(folder / "a.feat"),
            "line": 5,
            "col": 3,
            "end_line": 5,
            "end_col": 11,
        }
    ]
    assert data[1]["notes"] == []


def test_github_annotations_name_the_note(tmp_path):
    folder = _dup_repo(tmp_path)
    result = runner.invoke(app, ["lint", str(folder), "--format", "github"])
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"::warning file={folder / 'b.feat'},line=5,col=3,")
    assert "title=W0001::" in first and f"at {folder / 'a.feat'}:5)" in first


def _sarif_schema() -> dict:
    return json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text())


def test_sarif_is_valid_and_complete(tmp_path, monkeypatch):
    """Valid against the official 2.1.0 schema; paths relative to %SRCROOT% (where fsc ran),
    one rule descriptor per code, the note as a related location the message links to."""
    _dup_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["lint", "repo", "--format", "sarif"])
    assert result.exit_code == 0, result.output
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(_sarif_schema()).validate(log)
    (run,) = log["runs"]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"
    rules = run["tool"]["driver"]["rules"]
    assert [(r["id"], r["name"]) for r in rules] == [
        ("W0001", "duplicate-feature"),
        ("W0002", "name-contradicts-window"),
    ]
    assert all(r["shortDescription"]["text"] for r in rules)
    dup, name = run["results"]
    assert dup["ruleId"] == "W0001" and dup["level"] == "warning"
    assert dup["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "repo/b.feat", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 5, "startColumn": 3, "endLine": 5, "endColumn": 13},
    }
    (related,) = dup["relatedLocations"]
    assert related["id"] == 1
    assert related["physicalLocation"]["artifactLocation"]["uri"] == "repo/a.feat"
    assert related["physicalLocation"]["region"]["startLine"] == 5
    assert "](1)" in dup["message"]["text"]
    assert name["ruleId"] == "W0002"
    assert name["locations"][0]["physicalLocation"]["region"]["startColumn"] == 10


def test_sarif_of_errors_and_of_a_clean_repository(tmp_path):
    """Errors (exit 1) and no findings at all are valid logs too; an absolute path is a
    file:// URI and a path with a space is escaped."""
    schema = jsonschema.Draft4Validator(_sarif_schema())
    folder = tmp_path / "with space"
    folder.mkdir()
    (folder / "x.feat").write_text(COMMON + view("a", "n = count(*) over 7q", "m = summ(amount)"))
    result = runner.invoke(app, ["lint", str(folder), "--format", "sarif"])
    assert result.exit_code == 1, result.output
    log = json.loads(result.stdout)
    schema.validate(log)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"E0302", "E0210"}
    assert all(r["level"] == "error" for r in results)
    uri = results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == (folder / "x.feat").as_uri() and "%20" in uri

    clean = tmp_path / "clean"
    shutil.copytree(ROOT / "definitions", clean)
    result = runner.invoke(app, ["lint", str(clean), "--format", "sarif"])
    assert result.exit_code == 0, result.output
    log = json.loads(result.stdout)
    schema.validate(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


def test_sarif_escapes_brackets_in_messages():
    from fsdsl.diagnostics import Diagnostic, Span
    from fsdsl.lint.sarif import render_sarif

    d = Diagnostic("E0101", "unexpected `[`", Span("x.feat", 1, 1, 1, 2), hints=("a [b]",))
    (result,) = json.loads(render_sarif([d]))["runs"][0]["results"]
    assert result["message"]["text"] == "unexpected `\\[`\nhelp: a \\[b\\]"
    jsonschema.Draft4Validator(_sarif_schema()).validate(json.loads(render_sarif([d])))
