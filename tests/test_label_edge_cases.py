"""Labels that are user data, not definitions (issue #9): label columns named like the compiler's
own columns, and label times finer than a microsecond.

Both go through the real path: `fsc training-set` with a Parquet file and
`FeatureStore.training_set` with a pandas DataFrame, on DuckDB, Postgres and Spark.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import warehouse_url
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.backends import connect
from fsdsl.cli import app

runner = CliRunner(env={"COLUMNS": "100"})
BACKENDS = ["duckdb", "postgres", "spark"]
T0 = dt.datetime(2024, 1, 1, 12)
US = dt.timedelta(microseconds=1)
EPOCH = dt.datetime(1970, 1, 1)

FEAT = """\
entity user {{
  key user_id: string
}}

source events {{
  table "{table}"
  timestamp ts
  columns {{
    user_id: string
    amount: float
    ts: timestamp
  }}
}}

features v {{
  entity user
  from events

  c = count(*) over 1d
  s = sum(amount) over 1d
  l = last(amount)
}}

service s {{
  features v.*
}}
"""

# u1: events a microsecond apart around T0; u2: the same just before 1970 (negative epoch
# offsets, where truncating toward zero would round *up*).
EVENTS = [
    ("u1", 2.0, T0 - US),
    ("u1", 1.0, T0),
    ("u1", 4.0, T0 + US),
    ("u2", 8.0, EPOCH - 2 * US),
]


def project(backend: str, warehouse_urls, tmp_path: Path) -> tuple[Path, str]:
    """A .feat folder and the URL of a warehouse holding EVENTS in its own table."""
    table = f"events_{uuid.uuid4().hex[:8]}"
    data = pa.table(
        {
            "user_id": [e[0] for e in EVENTS],
            "amount": [e[1] for e in EVENTS],
            "ts": pa.array([e[2] for e in EVENTS], pa.timestamp("us")),
        }
    )
    if backend == "duckdb":  # the backend opens a file read-only: write it directly
        import duckdb

        con = duckdb.connect(str(tmp_path / "wh.duckdb"))
        con.register("data", data)
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM data')
        con.close()
        url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    else:
        url = warehouse_url(warehouse_urls, backend)
        with connect(url, {}) as wh:
            wh.create_table((table,), data)
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "t.feat").write_text(FEAT.format(table=table))
    return defs, url


def training_set_cli(defs: Path, url: str, labels: pa.Table, tmp_path: Path, *args: str):
    src, out = tmp_path / "labels.parquet", tmp_path / "out.parquet"
    pq.write_table(labels, src)
    result = runner.invoke(
        app,
        ["training-set", str(defs), "-s", "s", "-l", str(src), "-o", str(out), "-w", url, *args],
    )
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    return pq.read_table(out)


def ns(t: dt.datetime, nanos: int = 0) -> pd.Timestamp:
    return pd.Timestamp(t) + pd.Timedelta(nanoseconds=nanos)


# ---- nanosecond label times -------------------------------------------------------------------
# (key, label time, expected c, s, l). The label time is truncated *down* to its microsecond
# (docs/semantics.md): it then sees only events strictly before that microsecond. Rounding to
# the nearest microsecond (or truncating toward zero before 1970) would move some labels later.
NS_CASES = [
    ("u1", ns(T0, 900), 1, 2.0, 2.0),  # floor: T0 -> the event at T0 is not before it
    ("u1", ns(T0, 1), 1, 2.0, 2.0),
    ("u1", ns(T0 + US, 999), 2, 3.0, 1.0),  # floor: T0 + 1us -> not the event at T0 + 1us
    ("u1", ns(T0 + 2 * US, 0), 3, 7.0, 4.0),  # whole microseconds are untouched
    ("u2", ns(EPOCH, -1500), 0, None, None),  # floor: -2us -> not the event at -2us
    ("u2", ns(EPOCH, -500), 1, 8.0, 8.0),  # floor: -1us -> sees it
]


def expected(cases) -> list[tuple]:
    return [(count, total, last) for _, _, count, total, last in cases]


def got(table: pa.Table) -> list[tuple]:
    return list(zip(*(table[f].to_pylist() for f in ("c", "s", "l")), strict=True))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("zone", [None, "Europe/Paris"])
def test_nanosecond_labels_cli_parquet(backend, zone, warehouse_urls, tmp_path):
    defs, url = project(backend, warehouse_urls, tmp_path)
    times = pd.Series([t for _, t, *_ in NS_CASES], dtype="datetime64[ns]")
    if zone:
        times = times.dt.tz_localize("UTC").dt.tz_convert(zone)
    labels = pa.table(
        {
            "user_id": [k for k, *_ in NS_CASES],
            "event_timestamp": pa.Array.from_pandas(times),
        }
    )
    assert labels["event_timestamp"].type.unit == "ns"
    out = training_set_cli(defs, url, labels, tmp_path)
    assert got(out) == expected(NS_CASES)
    # the label columns come back as given: nanoseconds (and zone) kept
    assert out["event_timestamp"].equals(labels["event_timestamp"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_nanosecond_labels_pandas(backend, warehouse_urls, tmp_path):
    defs, url = project(backend, warehouse_urls, tmp_path)
    labels = pd.DataFrame(
        {
            "user_id": [k for k, *_ in NS_CASES],
            "event_timestamp": pd.Series([t for _, t, *_ in NS_CASES], dtype="datetime64[ns]"),
            "weight": range(len(NS_CASES)),
        }
    )
    with FeatureStore(defs, warehouse=url) as store:
        out = store.training_set(labels, "s")
    assert list(out.columns) == ["user_id", "event_timestamp", "weight", "c", "s", "l"]
    assert (out["event_timestamp"] == labels["event_timestamp"]).all()
    rows = [
        (count, None if pd.isna(total) else total, None if pd.isna(last) else last)
        for count, total, last in zip(out["c"], out["s"], out["l"], strict=True)
    ]
    assert rows == expected(NS_CASES)


@pytest.mark.parametrize(
    "times",
    [
        ["2024-01-01 12:00:00.000000900", "2024-01-01 12:00:00.000001999"],
        ["2024-01-01T14:00:00.000000900+02:00", "2024-01-01T13:00:00.000001999+01:00"],
    ],
    ids=["naive", "zoned"],
)
def test_nanosecond_text_labels_csv(warehouse_urls, tmp_path, times):
    """CSV text with nine fractional digits reads as a timestamp, not as 'not ISO 8601'."""
    defs, url = project("duckdb", warehouse_urls, tmp_path)
    src, out = tmp_path / "labels.csv", tmp_path / "out.parquet"
    src.write_text("user_id,event_timestamp\n" + "".join(f"u1,{t}\n" for t in times))
    result = runner.invoke(
        app, ["training-set", str(defs), "-s", "s", "-l", str(src), "-o", str(out), "-w", url]
    )
    assert result.exit_code == 0, result.output
    assert got(pq.read_table(out)) == [(1, 2.0, 2.0), (2, 3.0, 1.0)]


# ---- label columns named like the compiler's own columns ---------------------------------------
INTERNAL = ["__fsdsl_row", "__FSDSL_ROW", "__fsdsl_labels", "__t", "__ts", "__a0", "__ttl", "l0"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_label_columns_with_internal_names_pass_through(backend, warehouse_urls, tmp_path):
    """Label columns are data: any name the features do not use passes through untouched and
    the values are those of plainly named labels (once a warehouse error or a KeyError)."""
    defs, url = project(backend, warehouse_urls, tmp_path)
    keys = ["u1", "u1", "u2"]
    times = [T0 + US, T0 + 2 * US, EPOCH]
    plain = pa.table({"user_id": keys, "event_timestamp": pa.array(times, pa.timestamp("us"))})
    want = got(training_set_cli(defs, url, plain, tmp_path))
    assert want == [(2, 3.0, 1.0), (3, 7.0, 4.0), (1, 8.0, 8.0)]
    extra = {n: pa.array([f"{n}-{i}" for i in range(3)]) for n in INTERNAL}
    labels = pa.table({**extra, "user_id": keys, "event_timestamp": plain["event_timestamp"]})
    out = training_set_cli(defs, url, labels, tmp_path)
    assert out.column_names == [*labels.column_names, "c", "s", "l"]
    assert got(out) == want
    for n in INTERNAL:
        assert out[n].equals(labels[n])
    # the timestamp column itself may carry such a name
    for name in ("__t", "__fsdsl_row", "__ts"):
        renamed = plain.rename_columns(["user_id", name])
        out = training_set_cli(defs, url, renamed, tmp_path, "--timestamp-column", name)
        assert got(out) == want, name
    with FeatureStore(defs, warehouse=url) as store:
        df = store.training_set(labels.to_pandas(), "s")
    assert list(df.columns) == [*labels.column_names, "c", "s", "l"]
    assert list(df["c"]) == [c for c, _, _ in want]
