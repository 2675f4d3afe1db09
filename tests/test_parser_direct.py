"""The loading parse builds the AST inside an LALR loop of its own (`parse_text`), which is what
makes `fsc lint` fast on a large repository. lark's own parse into a tree, walked by `_Build`
(what `fsc fmt` still does), is the reference: for every text, valid or not, both must give
the same module and the same diagnostics, each span included. Error messages and the golden
diagnostics print these spans as file:line:col.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsdsl.syntax import parser

ROOT = Path(__file__).resolve().parents[1]


def _large_repo_texts() -> list[tuple[str, str]]:
    spec = importlib.util.spec_from_file_location(
        "bench_large_repo", ROOT / "bench" / "large_repo.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = "\n".join(module.view_text(i, 9) for i in range(12))
    return [("common", module.common_text()), ("views", views), ("svc", module.services_text(8))]


def _files() -> list[tuple[str, str]]:
    found = [*ROOT.glob("definitions/**/*.feat"), *ROOT.glob("tests/**/*.feat")]
    found += [*ROOT.glob("bench/**/*.feat")]
    return [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted(found)]


HEAD = """entity customer {
  key customer_id: string
}
source orders {
  table "shop.orders"
  timestamp ts
  created loaded_at
  stream "orders:events"
  columns {
    customer_id: string
    amount: float
    status: string
    tags: list<list<string>>
    ts: timestamp
    loaded_at: timestamp
  }
}
"""

# Every construct of the grammar, and the places where a span is easy to get wrong: an
# expression starting or ending in parentheses (its parent's span takes them in), optional
# parts left out, keywords that are names where no keyword may stand, comments and blank
# lines anywhere, CRLF line ends, tabs, no final newline.
SNIPPETS = [
    "",
    "# only a comment",
    "\n\n   \t\n",
    HEAD,
    HEAD.replace("\n", "\r\n"),
    HEAD.replace("  ", "\t"),
    HEAD
    + """features v {  # trailing comment
  entity customer by customer_id
  from orders
  where (amount + 1) * 2 > 3 and not (status = 'a''b') or status <> "x\\ny"
  ttl 30d
  owner "team"
  description 'What \\'it\\' is'

  a = count(*) over 7d
  b: float = (sum(amount)) over 1h
  c = ((sum(amount))) over 1h
  d = (a + b) * (c - a)
  e = -(a) / +b % 3
  f = case when a > 1 then b when a is null then c else 0 end
  g = case when a is not null then 1 end
  h = cast(a as float) + extract(day from max(ts)) + greatest(a, b, 1.5e3, .5)
  i = a in (1, 2, (3)) and a not in (4) and a between 1 and (2) and b not between -1 and 1
  j = coalesce(a, 0) = nullif(b, 0) and true or false or null is null
  k: list<list<string>> = last(tags)
  l = count_distinct(lower(status)) over 14d
  m = last_k(amount, 3)
  n = f(
    a,
    b
  )
}
""",
    HEAD
    + """features dup {
  entity customer by customer_id
  from orders
  from orders
  ttl 1d
  ttl 2d
  owner "a"
  owner "b"
  description "c"
  description "d"
  x = count(*) over 1d
}
entity customer { key a: int key b: int description "x" description "y" }
source s { table "t" table "u" timestamp a timestamp b created c created d stream "x" stream "y"
  columns { a: int } columns { b: int } owner "o" owner "p" description "d" description "e" }
service svc {
  key customer
  key customer
  full_feature_names
  full_feature_names
  features v.a, v.* via l1 via l2
  features dup.x
  owner "o"
  description "d"
}
link l1 {
  from orders
  customer_id -> customer by customer_id, amount
  customer_id by status -> customer
  ttl 1d
  owner "o"
  description "d"
}
""",
    # a number Python will not read: not a syntax error, still located
    HEAD + "features v {\n  x = sum(" + "9" * 5000 + ") over 1d\n}\n",
    HEAD + "features v {\n  x = sum(" + "9" * 5000 + ") over 1d\n  y = = 1\n}\n",
    # syntax errors: unexpected token, unexpected character, end of file, in each kind of place
    HEAD + "features v {\n  x = sum(amount over 1d\n}\n",
    HEAD + "features v {\n  x = sum(amount) @ 1d\n}\n",
    HEAD + "features v {\n  x = sum(amount) over 1d\n",
    HEAD + "features v {\n  owner = 1\n}\n",
    HEAD + "features v {\n  x = 'unterminated\n}\n",
    "entity e { key k: }",
    "source s { columns { a: list<int } }",
    "link l { a -> }",
    "service s { features v. }",
    "features v { x = case end }",
    "features v { x = a between 1 }",
    "}",
]


def same_as_tree(text: str, file: str = "t.feat") -> None:
    direct = parser.parse_text(text, file)
    reference = parser._parse_via_tree(text, file)
    assert repr(direct) == repr(reference)  # repr: every field, every span
    if reference[0] is not None:  # and not by falling back to lark: the loop built it
        assert parser._parse_direct(text, parser._Build(file), parser._direct_plan()) is not None


def test_the_direct_parse_is_taken():
    """With the lark this project pins, the loading path runs its own loop: were lark's internals
    to move, parsing would still be right but slow, and this says so."""
    tables = parser._direct_plan()
    assert tables is not None
    text = HEAD + "features v {\n  entity customer by customer_id\n  from orders\n"
    text += "  a = count(*) over 7d\n}\n"
    items = parser._parse_direct(text, parser._Build("t.feat"), tables)
    assert items is not None and len(items.children) == 3


@pytest.mark.parametrize(("name", "text"), _files() + _large_repo_texts(), ids=lambda x: x[:40])
def test_files_parse_as_through_a_tree(name, text):
    same_as_tree(text, name)


@pytest.mark.parametrize("text", SNIPPETS)
def test_snippets_parse_as_through_a_tree(text):
    same_as_tree(text)


def test_the_snippets_meant_valid_are():
    """The first eight parse (the eighth with E0102s): their spans are the ones compared."""
    for text in SNIPPETS[:8]:
        module, diags = parser.parse_text(text, "t.feat")
        assert module is not None and all(d.code == "E0102" for d in diags), diags


def test_parentheses_count_in_the_enclosing_span():
    """`(a + b) * c` starts at its `(`; `a + b` inside keeps its own span."""
    text = HEAD + "features v {\n  x = (sum(amount) + 1) * 2\n}\n"
    module, diags = parser.parse_text(text, "t.feat")
    assert not diags
    expr = module.views[0].features[0].expr
    line = text.count("\n", 0, text.index("  x = ")) + 1
    assert (expr.span.line, expr.span.col, expr.span.end_col) == (line, 7, 28)
    assert (expr.left.span.col, expr.left.span.end_col) == (8, 23)


_TOKENS = [
    "(",
    ")",
    "{",
    "}",
    ",",
    "=",
    "*",
    "-",
    "->",
    ".",
    ":",
    "<",
    ">",
    "over 7d",
    "#c\n",
    "\n",
    "'s'",
    "1.5",
    "9" * 4400,
    "features",
    "entity",
    "by",
    "key",
    "from",
    "where",
    "case",
    "when",
    "then",
    "end",
    "not",
    "in",
    "between",
    "and",
    "is",
    "null",
    "x",
    "@",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(SNIPPETS[3:8]),  # valid: see above
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from(["delete", *_TOKENS])),
        min_size=1,
        max_size=4,
    ),
)
def test_edited_texts_parse_as_through_a_tree(source, edits):
    """Texts near valid ones: some still parse (the spans then matter), most fail somewhere."""
    text = source
    for at, edit in edits:
        i = int(at * len(text))
        text = text[:i] + text[i + 1 :] if edit == "delete" else text[:i] + f" {edit} " + text[i:]
    same_as_tree(text)
