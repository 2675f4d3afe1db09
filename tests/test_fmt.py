"""The formatter: canonical layout, comments kept, idempotent, and never a change of meaning."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from fsdsl.fmt import format_text, unified_diff
from fsdsl.syntax import ast
from fsdsl.syntax.parser import parse_text

DEFINITIONS = sorted((Path(__file__).resolve().parent.parent / "definitions").glob("*.feat"))
_POSITIONS = {"span", "name_span", "part_span"}


def shape(node: object) -> object:
    """The tree without positions (written independently of the formatter's own check)."""
    if isinstance(node, ast.Module):
        return shape((node.entities, node.sources, node.views, node.services))
    if dataclasses.is_dataclass(node):
        return (
            type(node).__name__,
            {
                f.name: shape(getattr(node, f.name))
                for f in dataclasses.fields(node)
                if f.name not in _POSITIONS
            },
        )
    if isinstance(node, tuple):
        return tuple(shape(n) for n in node)
    return node


def comments(text: str) -> list[str]:
    """The comments of a formatted file: every `#` outside a string starts one."""
    found = []
    for line in text.splitlines():
        quote = None
        i = 0
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = None
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                found.append(line[i:].rstrip())
                break
            i += 1
    return found


def fmt(text: str) -> str:
    out, diags = format_text(text)
    assert out is not None, diags
    return out


def assert_faithful(text: str) -> str:
    """Format, then check the promises: parses, same meaning, same comments, idempotent."""
    out = fmt(text)
    before, _ = parse_text(text)
    after, diags = parse_text(out)
    assert after is not None and not diags, diags
    assert shape(after) == shape(before)
    assert fmt(out) == out
    assert not out.endswith("\n\n")
    assert all(line == line.rstrip() for line in out.splitlines())
    return out


def view(*body: str, header: str = "") -> str:
    return "features v {\n" + header + "".join(f"  {b}\n" for b in body) + "}\n"


# ---- the example definitions ------------------------------------------------------------------
@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_examples_format_faithfully(path: Path):
    text = path.read_text(encoding="utf-8")
    out = assert_faithful(text)
    assert sorted(comments(out)) == sorted(comments(text))


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_examples_are_canonical(path: Path):
    # Fails while an example is not in canonical form; the diff says what `fsc fmt` would change.
    text = path.read_text(encoding="utf-8")
    out = fmt(text)
    assert out == text, "\n" + unified_diff(text, out, path.name)


# ---- blocks and statements --------------------------------------------------------------------
def test_statements_in_canonical_order_and_blocks_one_blank_line_apart():
    text = """
service s { owner "ml"  features a.*, b.x description "d" }


entity e { description "people" key a: string, b: int }
source src { columns { a: int } owner "o" description "d" created c timestamp ts table "t" }
features v { f1 = 1  description "d" owner "o" ttl 7d where a > 1 from src entity e by c1, c2
  f2 = 2 }
"""
    assert (
        assert_faithful(text)
        == """\
service s {
  description "d"
  owner "ml"
  features a.*, b.x
}

entity e {
  key a: string, b: int
  description "people"
}

source src {
  table "t"
  timestamp ts
  created c
  description "d"
  owner "o"
  columns {
    a: int
  }
}

features v {
  entity e by c1, c2
  from src
  where a > 1
  ttl 7d
  owner "o"
  description "d"

  f1 = 1
  f2 = 2
}
"""
    )


def test_features_keep_type_and_window_only_when_written():
    out = assert_faithful(
        "features v {\n f:list<float>=last_k(x,3)  over 7d\ng:INT=count( * )\nh=x}"
    )
    assert out == view("f: list<float> = last_k(x, 3) over 7d", "g: int = count(*)", "h = x")


def test_service_features_statements_merge_into_one_line():
    out = assert_faithful("service s {\n features a.*\n features b.x,c.y\n}")
    assert out == "service s {\n  features a.*, b.x, c.y\n}\n"


def test_empty_blocks_and_empty_file():
    assert assert_faithful("entity e {}") == "entity e {\n}\n"
    assert assert_faithful("source s { columns {} }") == "source s {\n  columns {\n  }\n}\n"
    assert fmt("") == ""
    assert fmt(" \n\n\t\n") == ""


def test_strings():
    out = assert_faithful(
        "source s { table 'a''b' description \"say \\\"hi\\\" # not a comment\" }\n"
        "features v { f = x = \"it's\" or x = 'back\\\\slash' or x = 'tab\\tnew\\nline' }"
    )
    assert out == (
        "source s {\n"
        '  table "a\'b"\n'
        '  description "say \\"hi\\" # not a comment"\n'
        "}\n\n"
        "features v {\n"
        "  f = x = 'it''s' or x = 'back\\\\slash' or x = 'tab\\tnew\\nline'\n"
        "}\n"
    )
    assert comments(out) == []


def test_crlf_and_tabs():
    out = assert_faithful("entity e {\r\n\tkey a: int\t# k\r\n}\r\n")
    assert out == "entity e {\n  key a: int  # k\n}\n"


# ---- expressions ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("a+b*c", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("((a + b)) * (c)", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a / (b * c)", "a / (b * c)"),
        ("a * b % c", "a * b % c"),
        ("-(a + b)", "-(a + b)"),
        ("- -5", "- -5"),
        ("-(-5)", "- -5"),
        ("a - -1", "a - -1"),
        ("+x", "+x"),
        ("-2.50", "-2.50"),
        ("1E3 + .5 + 007 + 1.0e-2", "1E3 + .5 + 007 + 1.0e-2"),
        ("not (a or b)", "not (a or b)"),
        ("not a or b", "not a or b"),
        ("not (a = b)", "not a = b"),
        ("(not a) = b", "(not a) = b"),
        ("not not a", "not not a"),
        ("(a or b) and c", "(a or b) and c"),
        ("a or (b and c)", "a or b and c"),
        ("a or (b or c)", "a or (b or c)"),
        ("a and (b and c)", "a and (b and c)"),
        ("(a = b) = c", "(a = b) = c"),
        ("a <> b", "a != b"),
        ("a<=b", "a <= b"),
        ("(a + 1) > b * 2", "a + 1 > b * 2"),
        ("x is  null", "x is null"),
        ("(x is not null) = true", "(x is not null) = true"),
        ("x in (1, 2,3)", "x in (1, 2, 3)"),
        ("x not in ('a', (b or c))", "x not in ('a', b or c)"),
        ("(x in (1)) in (true)", "(x in (1)) in (true)"),
        ("x between 1 and 10", "x between 1 and 10"),
        ("x not between -1 and (a + b)", "x not between -1 and a + b"),
        ("x between (a and b) and c", "x between (a and b) and c"),
        ("(x between 1 and 2) and y", "x between 1 and 2 and y"),
        ("COUNT( * )", "count(*)"),
        ("Sum(x) / nullif(COUNT(*), 0)", "sum(x) / nullif(count(*), 0)"),
        ("now()", "now()"),
        ("cast(x + 1 as INT)", "cast(x + 1 as int)"),
        ("cast(x as list<string>)", "cast(x as list<string>)"),
        ("extract(HOUR from ts)", "extract(hour from ts)"),
        (
            "extract(day from cast(ts as timestamp)) + 1",
            "extract(day from cast(ts as timestamp)) + 1",
        ),
        (
            "case when a then 1 when b then (2) else case when c then 3 end end",
            "case when a then 1 when b then 2 else case when c then 3 end end",
        ),
        (
            "(case when x between 1 and 2 then cast(y as float) end) * 2",
            "case when x between 1 and 2 then cast(y as float) end * 2",
        ),
        ("coalesce(a, null, true, false, 'x')", "coalesce(a, null, true, false, 'x')"),
        ("FALSE", "FALSE"),  # a column: keywords are case-sensitive in this language
    ],
)
def test_expressions(written: str, canonical: str):
    out = assert_faithful(f"features v {{ f = {written} }}")
    assert out == view(f"f = {canonical}")


def test_where_and_entity_by():
    out = assert_faithful("features v { where not (a or b) and c>=1\nentity x by c1 ,c2 }")
    assert out == view("entity x by c1, c2", "where not (a or b) and c >= 1")


def test_long_chains_do_not_overflow():
    terms = " + ".join(f"c{i}" for i in range(300))
    out = assert_faithful(f"features v {{ f = {terms} }}")
    assert out == view(f"f = {terms}")


# ---- comments ---------------------------------------------------------------------------------
def test_comments_trailing_own_line_and_inside_statements():
    text = """\
# file header

# about e
entity e { # on the brace
  description "d"   # trailing description
  # above key
  key a: int,   # inside key
      b: int    # after key
  # end of e
}   # after e
# between

source s {
  columns {   # cols
    a: int # ta

    # lead b
    b: list<list<string>>
    # end of columns
  }  # after columns
  # above table
  table "t#x"
}
# end of file 1

# end of file 2
"""
    out = assert_faithful(text)
    assert (
        out
        == """\
# file header

# about e
entity e {  # on the brace
  # above key
  # inside key
  key a: int, b: int  # after key
  description "d"  # trailing description
  # end of e
}  # after e

# between

source s {
  # above table
  table "t#x"
  columns {  # cols
    a: int  # ta

    # lead b
    b: list<list<string>>
    # end of columns
  }  # after columns
}
# end of file 1

# end of file 2
"""
    )


def test_comments_in_views_and_blank_lines_between_features():
    text = """\
features v {
  f1 = a +   # inside f1
    b
  # above f2



  f2 = 2 over 7d # f2
  f3 = case   # inside case
         when x then 1
       end


  f4 = 4
  ttl 7d owner "o" # trailing owner
  # above where
  where x = 1

  # end of view
}
"""
    out = assert_faithful(text)
    assert (
        out
        == """\
features v {
  # above where
  where x = 1
  ttl 7d
  owner "o"  # trailing owner

  # inside f1
  f1 = a + b
  # above f2

  f2 = 2 over 7d  # f2
  # inside case
  f3 = case when x then 1 end

  f4 = 4

  # end of view
}
"""
    )


def test_comment_between_keyword_and_brace_moves_above_block():
    out = assert_faithful("features\n# one\nv\n# two\n{ f = 1 }")
    assert out == "# one\n# two\n" + view("f = 1")


def test_comment_only_file():
    assert (
        assert_faithful("  # just a note   \n\n\n# and another\n")
        == "# just a note\n\n# and another\n"
    )


def test_merged_service_lines_keep_all_comments():
    out = assert_faithful(
        'service s { features a.x  # first\n  owner "o"\n  features b.* # second\n}'
    )
    assert out == 'service s {\n  owner "o"\n  # first\n  features a.x, b.*  # second\n}\n'


# ---- errors and robustness --------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "entity {",
        "features v { f = }",
        "service s { features a }",
        "\x00",
        "entity e { key a: int } }",
        "'unterminated",
    ],
)
def test_syntax_errors_give_the_parser_diagnostics(text: str):
    out, diags = format_text(text, "x.feat")
    assert out is None
    assert diags == parse_text(text, "x.feat")[1]
    assert diags and all(d.span.file == "x.feat" for d in diags)


def test_statement_written_twice_is_refused_not_dropped():
    out, diags = format_text("features v { ttl 7d\n ttl 30d\n f = 1 }")
    assert out is None
    assert [d.code for d in diags] == ["E0102"]


def _deep(kind: str, n: int) -> str:
    return {
        "signs": "-" * n + "1",
        "negation": "-(" * n + "x" + ")" * n,
        "not": "not " * n + "x",
        "right-sum": "x + (" * n + "x" + ")" * n,
        "right-product": "x * (" * n + "x - 1" + ")" * n,
        "calls": "abs(" * n + "x" + ")" * n,
        "in-lists": "x in (" * n + "1" + ")" * n,
        "between": "x between (" * n + "1" + ") and 2" * n,
        "is-null": "(" * n + "x" + " is null)" * n,
        "case": "case when x then " * n + "1" + " end" * n,
        "cast": "cast(" * n + "x" + " as int)" * n,
        "extract": "extract(day from " * n + "x" + ")" * n,
        "list-type": "cast(x as " + "list<" * n + "int" + ">" * n + ")",
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "signs",
        "negation",
        "not",
        "right-sum",
        "right-product",
        "calls",
        "in-lists",
        "between",
        "is-null",
        "case",
        "cast",
        "extract",
        "list-type",
    ],
)
def test_any_nesting_the_parser_accepts_formats_faithfully(kind):
    """The parser has no depth limit, so neither has the formatter (it once recursed)."""
    text = "features v { f = " + _deep(kind, 4000) + " }"
    before, diags = parse_text(text)
    assert before is not None and not diags
    out, diags = format_text(text)
    assert out is not None, diags
    after, diags = parse_text(out)
    assert after is not None and not diags
    assert format_text(out)[0] == out


@pytest.mark.parametrize(
    "kind, canonical",
    [
        ("signs", "- - -1"),
        ("negation", "- - -x"),
        ("not", "not not not x"),
        ("right-sum", "x + (x + (x + x))"),
        ("right-product", "x * (x * (x * (x - 1)))"),
        ("calls", "abs(abs(abs(x)))"),
        ("between", "x between (x between (x between 1 and 2) and 2) and 2"),
        ("case", "case when x then case when x then case when x then 1 end end end"),
        ("list-type", "cast(x as list<list<list<int>>>)"),
    ],
)
def test_deep_nesting_prints_as_shallow_nesting_does(kind, canonical):
    """The stack-based printer lays out three levels as the recursive one did."""
    assert fmt("features v { f = " + _deep(kind, 3) + " }") == view(f"f = {canonical}")


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_mangled_examples_never_raise_and_stay_faithful(path: Path):
    text = path.read_text(encoding="utf-8")
    rng = random.Random(path.name)
    pieces = ["#", "\n", "(", ")", "'", '"', " ", "-", "not ", "{", "}", ",", "x"]
    formatted = 0
    for k in range(150):
        i = rng.randrange(len(text) + 1)
        j = min(len(text), i + rng.choice((0, 0, 1, 3)))
        piece = rng.choice(pieces)
        mangled = text[:i] + piece + text[j:]
        # the reproducer (the seed is the file name): which edit, and the text around it
        around = mangled[max(0, i - 60) : i + 60]
        case = f"{path.name} edit {k}: [{i}:{j}] -> {piece!r} in {around!r}"
        out, diags = format_text(mangled)
        if out is None:
            assert diags, case
            continue
        formatted += 1
        assert shape(parse_text(out)[0]) == shape(parse_text(mangled)[0]), case
        assert fmt(out) == out, case
    assert formatted > 0


# ---- --check ----------------------------------------------------------------------------------
def test_unified_diff():
    assert unified_diff("a\n", "a\n", "x.feat") == ""
    diff = unified_diff("entity e {}", fmt("entity e {}"), "x.feat")
    assert diff.startswith("--- x.feat\t(original)\n+++ x.feat\t(formatted)\n")
    assert "-entity e {}\n\\ No newline at end of file\n" in diff
    assert "+entity e {\n" in diff and "+}\n" in diff
