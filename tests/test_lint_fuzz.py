"""Fuzzing `fsc lint` and `fsc compile` with mutated copies of the example definitions.

Whatever the bytes on disk, lint exits 0 or 1 with located diagnostics and compile exits 0, 1 or
2 with a message: never a traceback, never an uncaught exception.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fsdsl.cli import app

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = {p.name: p.read_bytes() for p in sorted((ROOT / "definitions").glob("*.feat"))}
ENV = {"COLUMNS": "100"}
runner = CliRunner()

KEYWORDS = [
    "entity",
    "source",
    "features",
    "service",
    "key",
    "table",
    "timestamp",
    "created",
    "stream",
    "columns",
    "from",
    "where",
    "ttl",
    "over",
    "owner",
    "description",
    "by",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "between",
    "case",
    "when",
    "then",
    "else",
    "end",
    "cast",
    "as",
    "extract",
    "true",
    "false",
]
CALLS = [
    "count(*)",
    "sum(",
    "avg(",
    "last_k(",
    "last(",
    "count_distinct(",
    "nullif(",
    "lower(",
    "date_trunc('day', ",
    "coalesce(",
    "round(",
    "nosuch(",
    "list<",
    "list<list<int>>",
]
OPERATORS = ["+", "-", "*", "/", "%", "=", "!=", "<>", "<=", ">=", "<", ">"]
PUNCTUATION = ["{", "}", "(", ")", ",", ".", ":", "'", '"', "#", ".*", "\n", " "]
DURATIONS = ["7q", "0d", "7d", "1h", "2w", "15m", "90s", "7D", "99999999999999999999999d", "1"]
LITERALS = [
    "0",
    "1",
    "-1",
    "3.5",
    ".5",
    "1e999",
    "1e",
    "'x'",
    "'2024-01-01'",
    "'unterminated",
    '"s"',
    "''''",
]
NAMES = [
    "user",
    "orders",
    "page_views",
    "amount",
    "status",
    "user_id",
    "event_timestamp",
    "user_orders",
    "spend_30d",
    "orders_7d",
    "nosuch",
    "string",
    "int",
    "float",
    "bool",
    "timestamp",
    "date",
    "a",
    "_",
]
UNICODE = [
    "é",
    "日本",
    "\U0001f600",
    "\u2028",
    "\u2029",
    "\x85",
    "\ufeff",
    "\u200b",
    "\t",
    "\r",
    "\r\n",
    "\f",
    "\x0b",
    "\x1c",
    "\x7f",
]
RAW_BYTES = [b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\x80"]

# Mostly well-formed tokens (so that many mutants get past the parser into the checker and
# the compiler), sometimes unicode oddities, invalid UTF-8, NUL or arbitrary bytes.
WORDS: list[bytes] = [
    w.encode() for w in KEYWORDS + CALLS + OPERATORS + PUNCTUATION + DURATIONS + LITERALS + NAMES
]
ODD: list[bytes] = [w.encode() for w in UNICODE] + RAW_BYTES
SAME_KIND: list[list[bytes]] = [
    [w.encode() for w in group] for group in (NAMES, NAMES + KEYWORDS, DURATIONS, LITERALS, CALLS)
]

WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*|[0-9]+[A-Za-z]*")

token = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS),
    st.sampled_from(WORDS),
    st.sampled_from(ODD),
    st.binary(min_size=1, max_size=6),
    st.text(min_size=1, max_size=4).map(lambda s: s.encode("utf-8", "surrogatepass")),
)
# replacing one word by another of its kind keeps the file parseable more often than not
word_token = st.one_of(st.sampled_from(SAME_KIND).flatmap(st.sampled_from), token)


# ---- well-typed-ish feature lines, to reach the checker and the compiler -----------------------
ATOMS = [
    "amount",
    "status",
    "event_timestamp",
    "created_at",
    "user_id",
    "category",
    "dwell_seconds",
    "is_mobile",
    "viewed_at",
    "spend_30d",
    "orders_7d",
    "views_7d",
    "nosuch",
    "1",
    "0",
    "2.5",
    "'a'",
    "'2024-01-01'",
    "true",
    "null",
    "*",
]
FUNCTIONS = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "last_k",
    "count_distinct",
    "coalesce",
    "nullif",
    "abs",
    "round",
    "lower",
    "length",
    "date_trunc",
    "concat",
    "greatest",
    "sqrt",
    "nosuch",
]
BINARY = ["+", "-", "*", "/", "%", "=", "!=", "<", ">=", "and", "or"]

expression = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(BINARY), inner).map(lambda t: " ".join(t)),
        st.tuples(st.sampled_from(FUNCTIONS), st.lists(inner, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        inner.map(lambda x: f"({x})"),
        inner.map(lambda x: f"not {x}"),
        inner.map(lambda x: f"{x} is not null"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]} in ({t[1]}, {t[0]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} between {t[1]} and {t[2]}"),
        st.tuples(inner, inner, inner).map(
            lambda t: f"case when {t[0]} then {t[1]} else {t[2]} end"
        ),
        st.tuples(
            inner, st.sampled_from(["int", "float", "string", "bool", "date", "list<int>"])
        ).map(lambda t: f"cast({t[0]} as {t[1]})"),
        st.tuples(st.sampled_from(["hour", "day", "week"]), inner).map(
            lambda t: f"extract({t[0]} from {t[1]})"
        ),
    ),
    max_leaves=8,
)
feature_line = st.builds(
    lambda name, typ, expr, window: f"  {name}{typ} = {expr}{window}\n",
    st.sampled_from(["fz", "fz2", "spend_30d", "views_7d"]),
    st.sampled_from(["", ": int", ": float", ": string", ": list<float>"]),
    expression,
    st.sampled_from(["", "", " over 7d", " over 1h", " over 0d", " over 7q"]),
)
FEATURE_LINE = re.compile(rb"^  [a-z_0-9]+(: *[a-z<>]+)? *= .*$", re.M)
WHERE_LINE = re.compile(rb"^  where .*$", re.M)


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(DEFINITIONS)))
    data = bytearray(DEFINITIONS[name])
    features = list(FEATURE_LINE.finditer(bytes(data)))
    where = list(WHERE_LINE.finditer(bytes(data)))
    # one new or changed feature or condition: a mostly valid file (where the file has any: a
    # file of links and sources has none)
    if (features or where) and draw(st.integers(0, 2)) == 0:
        m = draw(st.sampled_from(features + where))
        if m in where:
            data[m.start() : m.end()] = f"  where {draw(expression)}".encode()
        elif draw(st.booleans()):
            data[m.start() : m.end()] = draw(feature_line).rstrip("\n").encode()
        else:
            data[m.end() + 1 : m.end() + 1] = draw(feature_line).encode()
        return name, bytes(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(
            st.sampled_from(
                [
                    "delete",
                    "duplicate",
                    "insert",
                    "insert",
                    "replace_word",
                    "replace_word",
                    "replace_word",
                    "swap_lines",
                    "truncate",
                ]
            )
        )
        n = len(data)
        if op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i + 1, min(n, i + 80)))
            del data[i:j]
        elif op == "duplicate" and n:
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i + 1, min(n, i + 120)))
            k = draw(st.integers(0, n))
            data[k:k] = data[i:j]
        elif op == "insert":
            k = draw(st.integers(0, n))
            words = draw(st.lists(token, min_size=1, max_size=3))
            data[k:k] = b" ".join(words) if draw(st.booleans()) else b"".join(words)
        elif op == "replace_word":
            words = list(WORD.finditer(bytes(data)))
            if words:
                m = draw(st.sampled_from(words))
                data[m.start() : m.end()] = draw(word_token)
        elif op == "swap_lines":
            lines = bytes(data).split(b"\n")
            if len(lines) > 1:
                a = draw(st.integers(0, len(lines) - 1))
                b = draw(st.integers(0, len(lines) - 1))
                lines[a], lines[b] = lines[b], lines[a]
                data = bytearray(b"\n".join(lines))
        elif op == "truncate" and n:
            del data[draw(st.integers(0, n - 1)) :]
    return name, bytes(data)


def _assert_clean_exit(result, allowed: tuple[int, ...], what: str) -> None:
    output = result.output
    assert "Traceback" not in output, f"{what}: traceback in output:\n{output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{what}: uncaught {result.exception!r}"
    )
    assert result.exit_code in allowed, f"{what}: exit code {result.exit_code}:\n{output[:2000]}"
    assert "internal error" not in output, f"{what}: internal error:\n{output[:2000]}"


@settings(
    max_examples=150,
    deadline=None,
    # no `database=None`: the profile decides (tests/conftest.py): derandomized in CI, and
    # locally the failures kept in .hypothesis/ are replayed first; both print the blob
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated(), with_others=st.booleans())
def test_mutated_definitions_never_crash(case, with_others):
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "repo"
        folder.mkdir()
        (folder / name).write_bytes(data)
        if with_others:
            for other, original in DEFINITIONS.items():
                if other != name:
                    (folder / other).write_bytes(original)

        lint = runner.invoke(app, ["lint", str(folder)], env=ENV)
        _assert_clean_exit(lint, (0, 1), f"lint of mutated {name} {data[:4000]!r}")
        if lint.exit_code == 1:
            # every finding is located in a file of the folder
            assert re.search(re.escape(str(folder)) + r"/[^:\n]+:\d+:\d+: E\d{4} ", lint.output), (
                lint.output[:2000]
            )

        compile_ = runner.invoke(app, ["compile", str(folder)], env=ENV)
        _assert_clean_exit(compile_, (0, 1, 2), f"compile of mutated {name} {data[:4000]!r}")
        # what lint accepts compiles; what lint rejects does not
        if lint.exit_code == 0:
            assert compile_.exit_code == 0, compile_.output[:2000]
        else:
            assert compile_.exit_code == 1, compile_.output[:2000]
