"""Events from outside — pushed rows, stream entries, files — checked and typed as their source
declares them, before anything is written.

One batch is accepted whole or not at all (`table`), or split into its good and bad rows
(`split`: the stream worker sends the bad ones to a dead-letter stream and goes on). A row is
bad when it names a column the source does not declare, lacks an entity key or the timestamp,
holds a value of another type, or a text that does not parse as its column's type. Texts are
what JSON lines, CSV and Redis Stream fields carry; they are parsed by the column's type, so
`"42"` is an int and `"2024-06-01T12:00:00Z"` a timestamp (zones converted to UTC and dropped,
as everywhere in fsdsl).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from fsdsl import ir
from fsdsl.arrow import arrow_type
from fsdsl.diagnostics import UsageError

_INT = re.compile(r"[-+]?\d+")
_INT64 = (-(2**63), 2**63 - 1)


class BadRows(UsageError):
    """A batch with bad rows: nothing of it was written. `rows` lists (row index, reason)."""

    def __init__(self, source: str, rows: list[tuple[int, str]]):
        self.rows = rows
        first = "; ".join(f"row {i}: {why}" for i, why in rows[:3])
        more = f" (and {len(rows) - 3} more)" if len(rows) > 3 else ""
        super().__init__(
            f"{len(rows)} bad row(s) pushed to source `{source}`, nothing written: {first}{more}",
            "E0520",
        )


@dataclass(frozen=True)
class Columns:
    """What a row of `source` must hold: any declared column, a timestamp, and the whole
    entity key of at least one view reading the source (a view counts only rows with its
    whole key; a row no view can count is a mistake, a row one view can count is an event)."""

    source: ir.Source
    key_sets: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, repo: ir.Repository, source: ir.Source) -> Columns:
        sets = dict.fromkeys(
            tuple(v.key_columns) for v in repo.views.values() if v.source.name == source.name
        )
        return cls(source, tuple(sets))

    def missing(self, present) -> str | None:
        """Why a row with the non-null columns `present` (a predicate) is bad, or None."""
        if not present(self.source.timestamp):
            return f"the timestamp `{self.source.timestamp}` is missing or null"
        if self.key_sets and not any(all(present(c) for c in ks) for ks in self.key_sets):
            nulls = [c for c in self.key_sets[0] if not present(c)]
            return f"entity key `{', '.join(nulls)}` is missing or null"
        return None

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(n, arrow_type(t)) for n, t in self.source.columns.items()])


def parse_value(text: object, t: ir.Type) -> object:
    """One value as column type `t`: a text is parsed, anything else must already be of the
    type. Raises ValueError with the reason."""
    name = t.name
    if isinstance(text, str):
        return _parse_text(text, t)
    if name == "string":
        raise ValueError(f"expected a string, got {_kind(text)}")
    if name == "int":
        if isinstance(text, bool) or not isinstance(text, int):
            raise ValueError(f"expected an int, got {_kind(text)}")
        return _int64(text)
    if name == "float":
        if isinstance(text, bool) or not isinstance(text, int | float):
            raise ValueError(f"expected a float, got {_kind(text)}")
        return float(text)
    if name == "bool":
        if not isinstance(text, bool):
            raise ValueError(f"expected a bool, got {_kind(text)}")
        return text
    if name == "timestamp":
        if not isinstance(text, dt.datetime):
            raise ValueError(f"expected a timestamp, got {_kind(text)}")
        return _naive_utc(text)
    if name == "date":
        if isinstance(text, dt.datetime) or not isinstance(text, dt.date):
            raise ValueError(f"expected a date, got {_kind(text)}")
        return text
    if name == "list":
        if not isinstance(text, list | tuple):
            raise ValueError(f"expected a list, got {_kind(text)}")
        return [None if x is None else parse_value(x, t.element) for x in text]
    raise ValueError(f"cannot take values of type {t}")


def _parse_text(text: str, t: ir.Type) -> object:
    name = t.name
    if name == "string":
        return text
    s = text.strip()
    if name == "int":
        if not _INT.fullmatch(s):
            raise ValueError(f"`{_short(text)}` is not an int")
        return _int64(int(s))
    if name == "float":
        try:
            return float(s)
        except ValueError:
            raise ValueError(f"`{_short(text)}` is not a float") from None
    if name == "bool":
        low = s.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise ValueError(f"`{_short(text)}` is not a bool (true or false)")
    if name == "timestamp":
        try:
            value = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"`{_short(text)}` is not an ISO 8601 timestamp") from None
        return _naive_utc(value)
    if name == "date":
        try:
            return dt.date.fromisoformat(s)
        except ValueError:
            raise ValueError(f"`{_short(text)}` is not an ISO 8601 date") from None
    if name == "list":
        try:
            items = json.loads(s)
        except json.JSONDecodeError:
            raise ValueError(f"`{_short(text)}` is not a JSON list") from None
        return parse_value(items, t)
    raise ValueError(f"cannot take values of type {t}")


def _int64(v: int) -> int:
    if not _INT64[0] <= v <= _INT64[1]:
        raise ValueError(f"{v} does not fit a 64-bit int")
    return v


def _naive_utc(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v


def _kind(v: object) -> str:
    return {bool: "a bool", int: "an int", float: "a float", list: "a list", dict: "an object"}.get(
        type(v), type(v).__name__
    )


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def check_row(cols: Columns, row: dict, accepted_at: dt.datetime | None) -> dict:
    """One row (a mapping of column -> value or text) as typed values; ValueError if bad."""
    src = cols.source
    if not isinstance(row, dict):
        raise ValueError(f"expected an object of columns, got {_kind(row)}")
    unknown = [c for c in row if c not in src.columns]
    if unknown:
        raise ValueError(
            f"unknown column `{unknown[0]}` (source `{src.name}` declares {', '.join(src.columns)})"
        )
    out = {}
    for name, t in src.columns.items():
        value = row.get(name)
        if value is None or (isinstance(value, float) and value != value and t.name != "float"):
            out[name] = None
            continue
        try:
            out[name] = parse_value(value, t)
        except ValueError as e:
            raise ValueError(f"column `{name}`: {e}") from None
    why = cols.missing(lambda c: out.get(c) is not None)
    if why is not None:
        raise ValueError(why)
    if src.created is not None and out.get(src.created) is None and accepted_at is not None:
        out[src.created] = accepted_at
    return out


def split(
    cols: Columns, rows: Iterable[dict], accepted_at: dt.datetime | None
) -> tuple[pa.Table, list[int], list[tuple[int, str]]]:
    """(the good rows as a table, their indexes in `rows`, (index, reason) of the bad ones)."""
    good, kept, bad = [], [], []
    for i, row in enumerate(rows):
        try:
            good.append(check_row(cols, row, accepted_at))
            kept.append(i)
        except ValueError as e:
            bad.append((i, str(e)))
    return pa.Table.from_pylist(good, schema=cols.schema), kept, bad


def _parse_column(values: list, t: ir.Type, name: str, bad: dict[int, str]) -> pa.Array:
    """A column parsed value by value (`parse_value`); the reason of each bad row in `bad`."""
    out = []
    for i, v in enumerate(values):
        try:
            out.append(None if v is None else parse_value(v, t))
        except ValueError as e:
            bad.setdefault(i, f"column `{name}`: {e}")
            out.append(None)
    return pa.array(out, type=arrow_type(t))


def _unkeyed(cols: Columns, table: pa.Table) -> dict[int, str]:
    """Rows without a timestamp, or without the whole key of any view: index -> reason."""
    import pyarrow.compute as pc

    ok = pc.is_valid(table[cols.source.timestamp])
    if cols.key_sets:
        some = None
        for ks in cols.key_sets:
            whole = pc.is_valid(table[ks[0]])
            for c in ks[1:]:
                whole = pc.and_(whole, pc.is_valid(table[c]))
            some = whole if some is None else pc.or_(some, whole)
        ok = pc.and_(ok, some)
    out = {}
    for i in pc.indices_nonzero(pc.invert(ok)).to_pylist():
        row = {c: table[c][i].is_valid for c in table.column_names}
        out[i] = cols.missing(lambda c, row=row: row[c]) or "missing key"
    return out


def split_texts(
    cols: Columns, rows: list[dict[str, str]], accepted_at: dt.datetime | None
) -> tuple[pa.Table, list[int], list[tuple[int, str]]]:
    """`split` for rows of texts (stream entries): each column is parsed whole by Arrow's
    casts, the fast path; a column Arrow refuses (a bad value, a zone offset) is parsed value
    by value, which finds the bad rows and says why. Same results as `split`."""
    import pyarrow.compute as pc

    src = cols.source
    bad: dict[int, str] = {}
    declared = src.columns
    for i, row in enumerate(rows):
        for c in row:
            if c not in declared:
                bad.setdefault(
                    i, f"unknown column `{c}` (source `{src.name}` declares {', '.join(declared)})"
                )
                break
    arrays = {}
    for name, t in declared.items():
        want = arrow_type(t)
        texts = pa.array([row.get(name) for row in rows], pa.string())
        if t.name == "string":
            arrays[name] = texts
            continue
        try:
            if t.name == "list":
                raise pa.ArrowInvalid("lists are parsed as JSON")
            arrays[name] = pc.cast(texts, want)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        arrays[name] = _parse_column(texts.to_pylist(), t, name, bad)
    table = pa.table(arrays, schema=cols.schema)
    for i, why in _unkeyed(cols, table).items():
        bad.setdefault(i, why)
    kept = [i for i in range(len(rows)) if i not in bad]
    if bad:
        table = table.take(pa.array(kept, pa.int64()))
    if src.created is not None and accepted_at is not None:
        filled = pc.fill_null(table[src.created], pa.scalar(accepted_at, pa.timestamp("us")))
        table = table.set_column(table.schema.get_field_index(src.created), src.created, filled)
    return table, kept, sorted(bad.items())


def table(cols: Columns, rows, accepted_at: dt.datetime | None) -> pa.Table:
    """Every row of `rows` (a list of dicts, a pyarrow Table or a pandas DataFrame), typed; a
    single bad row rejects the batch (BadRows, naming up to three)."""
    if isinstance(rows, pa.Table):
        return _arrow(cols, rows, accepted_at)
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        return _arrow(cols, pa.Table.from_pandas(rows, preserve_index=False), accepted_at)
    if isinstance(rows, dict):
        rows = [rows]
    try:
        rows = list(rows)
    except TypeError:
        raise UsageError(
            "push takes a list of dicts, a pyarrow Table or a pandas DataFrame, not "
            f"{type(rows).__name__}",
            "E0521",
        ) from None
    out, _, bad = split(cols, rows, accepted_at)
    if bad:
        raise BadRows(cols.source.name, bad)
    return out


def _arrow(cols: Columns, data: pa.Table, accepted_at: dt.datetime | None) -> pa.Table:
    """An Arrow batch: columns of the declared type (or one that casts safely to it) go
    through whole; others — texts to parse, mixed objects — value by value."""
    import pyarrow.compute as pc

    src = cols.source
    unknown = [c for c in data.column_names if c not in src.columns]
    if unknown:
        raise BadRows(src.name, [(0, f"unknown column `{unknown[0]}`")])
    n = data.num_rows
    arrays: dict = {}
    bad: dict[int, str] = {}
    for name, t in src.columns.items():
        want = arrow_type(t)
        if name not in data.column_names:
            arrays[name] = pa.nulls(n, want)
            continue
        column = data[name]
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        textual = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if column.type == want or (not textual and _casts(column.type, want)):
            try:
                arrays[name] = column.cast(want)  # safe: overflow and truncation raise
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        arrays[name] = _parse_column(column.to_pylist(), t, name, bad)
    table = pa.table(arrays, schema=cols.schema)
    for i, why in list(_unkeyed(cols, table).items())[:3]:
        bad.setdefault(i, why)
    if bad:
        raise BadRows(src.name, sorted(bad.items()))
    if src.created is not None and accepted_at is not None:
        filled = pc.fill_null(table[src.created], pa.scalar(accepted_at, pa.timestamp("us")))
        table = table.set_column(table.schema.get_field_index(src.created), src.created, filled)
    return table


def _casts(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether an Arrow column of type `have` holds values of type `want` as they are: ints
    for ints or floats, floats for floats, timestamps and dates for themselves."""
    if pa.types.is_integer(want):
        return pa.types.is_integer(have)
    if pa.types.is_floating(want):
        return pa.types.is_integer(have) or pa.types.is_floating(have)
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(have)
    if pa.types.is_date(want):
        return pa.types.is_date(have)
    return have == want


def read_rows(path: str):
    """The rows of a file for `fsc push`: Parquet, CSV (by extension) or JSON lines (`.jsonl`,
    `.ndjson`, `.json`, or `-` for stdin). Values are checked by `table` afterwards."""
    import sys
    from pathlib import Path

    if path == "-":
        return _json_lines(sys.stdin, "stdin")
    p = Path(path)
    if not p.exists():
        raise UsageError("no such file", "E0400", str(p))
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with p.open(encoding="utf-8") as f:
            return _json_lines(f, str(p))
    try:
        if suffix in (".csv", ".tsv"):
            from pyarrow import csv

            return csv.read_csv(
                p,
                parse_options=csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","),
                convert_options=csv.ConvertOptions(strings_can_be_null=True),
            )
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(f"cannot read rows: {str(e).splitlines()[0]}", "E0400", str(p)) from None
    raise UsageError(
        f"cannot tell the format of `{p.name}`: use .parquet, .csv, .tsv or .jsonl", "E0400"
    )


def _json_lines(f, name: str) -> list[dict]:
    rows = []
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise UsageError(f"{name}:{n}: not a JSON object: {e.msg}", "E0400") from None
    return rows
