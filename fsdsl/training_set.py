"""The offline job: labels in, every label row with its point-in-time feature values out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from fsdsl import ir
from fsdsl.arrow import arrow_type, conform, in_row_order
from fsdsl.backends.base import Warehouse, table_expression

# the compiler (and sqlglot) is imported where a query is built: `fsc run` uses only
# `check_sources` from here
from fsdsl.diagnostics import UsageError
from fsdsl.urls import redacted

ROW = "__fsdsl_row"  # the row-number column's name, unless the labels already have one
LABELS_RELATION = "__fsdsl_labels"
Progress = Callable[[str], None]


def read_table(path: Path, what: str = "labels") -> pa.Table:
    """Parquet, or CSV by extension."""
    if not path.exists():
        raise UsageError(f"no such {what} file", "E0400", str(path))
    try:
        if path.suffix.lower() in (".csv", ".tsv"):
            from pyarrow import csv

            opts = csv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            return csv.read_csv(path, parse_options=opts)
        import pyarrow.parquet as pq

        # one file, read as such: `pq.read_table` goes through `pyarrow.dataset`, which
        # imports pandas when installed (a third of a second of every `fsc training-set`)
        with pq.ParquetFile(path) as f:
            return f.read()
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(
            f"cannot read {what}: {str(e).splitlines()[0]}", "E0400", str(path)
        ) from None


def read_labels_table(wh: Warehouse, name: str) -> pa.Table:
    """Every row of the warehouse table `name` (table, schema.table or catalog.schema.table),
    each part an identifier whatever it holds: the name is never spliced into SQL text."""
    from sqlglot import exp

    parts = tuple(name.split("."))
    ref = table_expression(parts)
    if wh.table_columns(parts) is None:
        raise UsageError(f"labels table `{name}` does not exist in {redacted(wh.url)}", "E0401")
    return wh.query(exp.select(exp.Star()).from_(ref))


def write_table(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        if path.suffix.lower() == ".csv":
            from pyarrow import csv

            csv.write_csv(_csv_safe(table), tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        tmp.replace(path)  # never leave a half-written output behind
    finally:
        tmp.unlink(missing_ok=True)


def _csv_safe(table: pa.Table) -> pa.Table:
    """CSV has no lists: write them as JSON arrays."""
    import json

    cols = []
    for column in table.columns:
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
            column = pa.array(values, pa.string())
        cols.append(column)
    return pa.table(cols, names=table.column_names)


def prepare_labels(
    labels: pa.Table,
    repo: ir.Repository,
    features: list[tuple[str, str]],
    timestamp_column: str,
    where: str = "labels",
    service: ir.Service | None = None,
) -> pa.Table:
    """Check and normalise the labels: keys typed as the entities say, naive UTC microseconds.
    A service with a `key` needs that entity's keys only (its links resolve the others)."""
    from fsdsl.compile.training import label_keys, resolved_keys

    views = [repo.views[v] for v in dict.fromkeys(v for v, _ in features)]
    names = set(labels.column_names)
    if service is not None and service.key is not None:
        key_types = {k.name: k.type for k in service.key.keys}
        needed = [*key_types, timestamp_column]
        resolved = [k for k in resolved_keys(repo, service) if k in names]
        if resolved:
            raise UsageError(
                f"column(s) {', '.join(f'`{c}`' for c in resolved)} would be overwritten by "
                f"the key(s) service `{service.name}` resolves through its links; rename or "
                "drop them",
                "E0405",
                where,
            )
    else:
        key_types = {k.name: k.type for v in views for k in v.entity.keys}
        needed = [*label_keys(views), timestamp_column]
    missing = [c for c in needed if c not in names]
    if missing:
        raise UsageError(
            f"missing column(s) {', '.join(f'`{c}`' for c in missing)} "
            f"(needed: {', '.join(needed)}; have: {', '.join(labels.column_names)})",
            "E0402",
            where,
        )
    columns = [service.column(v, f) if service else f for v, f in features]
    clash = [c for c in columns if c in names]
    if clash:
        raise UsageError(
            f"column(s) {', '.join(f'`{c}`' for c in clash)} would be "
            "overwritten by features of the same name; rename them",
            "E0405",
            where,
        )
    out = labels
    for key, t in key_types.items():
        out = _set(out, key, _key_column(out[key], key, t, where))
    out = _set(
        out, timestamp_column, _timestamp_column(out[timestamp_column], timestamp_column, where)
    )
    import numpy as np

    # the row numbers as a buffer: `pa.array` of anything Python or numpy imports pandas (0.3 s)
    numbers = pa.py_buffer(np.arange(out.num_rows, dtype=np.int64))
    rows = pa.Array.from_buffers(pa.int64(), out.num_rows, [None, numbers])
    return out.append_column(row_column(names), rows)


def row_column(names) -> str:
    """A name for the input-order column that no label column has, in any letter case (the
    label columns are the user's data and pass through the query untouched)."""
    taken = {n.casefold() for n in names}
    name, i = ROW, 0
    while name.casefold() in taken:
        i += 1
        name = f"{ROW}{i}"
    return name


def _set(table: pa.Table, name: str, column) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, column)


def _key_column(column, name: str, t: ir.Type, where: str):
    want = arrow_type(t)
    have = column.type
    if have == want or pa.types.is_null(have):
        return column.cast(want)
    lossless = (
        (
            t == ir.STRING
            and (
                pa.types.is_string(have)
                or pa.types.is_large_string(have)
                or pa.types.is_integer(have)
                or pa.types.is_dictionary(have)
            )
        )
        or (t == ir.INT and pa.types.is_integer(have))
        or (t == ir.FLOAT and (pa.types.is_floating(have) or pa.types.is_integer(have)))
    )
    if lossless:
        return column.cast(want)
    raise UsageError(f"key column `{name}` is {have} but the entity key is {t}", "E0403", where)


def _timestamp_column(column, name: str, where: str):
    """Naive UTC microseconds; time-zone aware input is converted to UTC first."""
    have = column.type
    if pa.types.is_timestamp(have):
        if have.tz is not None:
            column = pc.cast(column, pa.timestamp(have.unit, tz="UTC"))
            column = column.cast(pa.timestamp(have.unit))  # drops the zone, keeps UTC wall time
        if have.unit == "ns":
            # Down to the microsecond, toward the past (also before 1970, where a plain cast
            # would truncate toward zero): a label never sees an event after its time.
            column = pc.floor_temporal(column, unit="microsecond")
        return column.cast(pa.timestamp("us"))
    if pa.types.is_date(have):
        return column.cast(pa.timestamp("us"))
    if pa.types.is_string(have) or pa.types.is_large_string(have):
        # naive or with a zone; nanosecond digits only if microseconds do not read
        for unit in ("us", "ns"):
            for zone in (None, "UTC"):
                try:
                    parsed = pc.cast(column, pa.timestamp(unit, tz=zone))
                except pa.ArrowInvalid:
                    continue
                return _timestamp_column(parsed, name, where)
        raise UsageError(
            f"timestamp column `{name}` holds text that is not ISO 8601 timestamps",
            "E0404",
            where,
        )
    raise UsageError(f"timestamp column `{name}` is {have}, not a timestamp", "E0404", where)


def check_sources(repo: ir.Repository, views: list[ir.View], wh: Warehouse) -> None:
    """Every source table and declared column exists: a located error before any heavy work."""
    for source in dict.fromkeys(v.source for v in views):
        check_source(source, wh)


def check_source(source: ir.Source, wh: Warehouse) -> None:
    cols = wh.table_columns(source.table)
    table = ".".join(source.table)
    if cols is None:
        raise UsageError(
            f"table `{table}` of source `{source.name}` does not exist in the warehouse {wh.url}",
            "E0401",
            source.table_span or source.span,
        )
    lower = {c.lower() for c in cols}
    for c in source.columns:
        if c.lower() not in lower:
            raise UsageError(
                f"column `{c}` of source `{source.name}` is not in table "
                f"`{table}` (it has: {', '.join(cols)})",
                "E0406",
                source.column_spans.get(c) or source.span,
            )


LABELS_PER_SHARE = 2_000_000
"""Labels per query when a training set is split by entity (`compute`): at scale M of the
benchmark (1M labels, 5M events) one query peaks under 2 GB; shares keep scale L (10M labels,
50M events) under a 4 GB DuckDB memory limit without spilling much."""


def share_count(labels: int, dialect: str, asked: int | None) -> int:
    """How many queries a training set of `labels` rows is split into."""
    from fsdsl.compile import dialects

    if asked is not None and asked < 1:
        raise UsageError(f"--shares must be at least 1, not {asked}", "E0004")
    if not dialects.get(dialect).splits_by_entity:
        if asked is not None and asked > 1:
            raise UsageError(
                f"the {dialect} warehouse cannot split a training set by entity", "E0004"
            )
        return 1
    if asked is not None:
        return asked
    return max(1, -(-labels // LABELS_PER_SHARE))


def compute(
    repo: ir.Repository,
    features: list[tuple[str, str]],
    labels: pa.Table,
    wh: Warehouse,
    *,
    timestamp_column: str = "event_timestamp",
    where: str = "labels",
    progress: Progress | None = None,
    shares: int | None = None,
    service: ir.Service | None = None,
) -> pa.Table:
    """The training set: `labels` (any extra columns kept, same order) plus one column a feature.

    Labels beyond `LABELS_PER_SHARE` are computed in shares of the entities, one query each
    (`shares` overrides; see `training_query(share=...)`), then put back in label order."""
    from fsdsl.compile.training import resolved_keys, training_query

    say = progress or (lambda _msg: None)
    views = [repo.views[v] for v in dict.fromkeys(v for v, _ in features)]
    keyed = service is not None and service.key is not None
    links = [repo.links[n] for n in service.links()] if keyed else []
    views = [link.view for link in links] + views
    resolved = resolved_keys(repo, service)
    say("checking labels")
    prepared = prepare_labels(labels, repo, features, timestamp_column, where, service)
    row = prepared.column_names[-1]  # see row_column()
    say("checking warehouse tables")
    check_sources(repo, views, wh)
    say(f"computing {len(features)} features for {prepared.num_rows:,} labels")
    n = share_count(prepared.num_rows, wh.dialect, shares)
    wh.register_arrow(LABELS_RELATION, prepared)
    pieces = []
    for share in [None] if n == 1 else [(n, i) for i in range(n)]:
        if share is not None:
            say(f"computing share {share[1] + 1} of {n} of the entities")
        tree = training_query(
            repo,
            features,
            wh.dialect,
            timestamp_column=timestamp_column,
            labels=LABELS_RELATION,
            order_by=row if share is None else None,  # shares: put in order once, below
            share=share,
            service=service,
        )
        pieces.append(wh.query(tree))
    result = pieces[0] if n == 1 else pa.concat_tables(pieces)
    del pieces
    result = in_row_order(result, row)  # back in label order (shares: put in order here)
    result = result.drop_columns([row])
    # the original label columns, untouched (types as given), then the features
    # one Arrow type per feature whatever the backend returned (Decimal, tz-aware, ...)
    # the resolved keys typed as the keys of the entities the links lead to
    types: dict[str, ir.Type] = {}
    for link in links:
        for key in link.to_entity.keys:
            types.setdefault(key.name, key.type)
    named = [(service.column(v, f) if service else f, v, f) for v, f in features]
    types.update({c: repo.views[v].feature(f).type for c, v, f in named})
    added = [*resolved, *(c for c, _, _ in named)]  # the resolved keys next to the features
    cols = [conform(result[f], types[f]) for f in added]
    return pa.table([*labels.columns, *cols], names=[*labels.column_names, *added])
