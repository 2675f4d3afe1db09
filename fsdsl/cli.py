"""`fsc`: a thin typer app. Parse arguments, call the library, render; nothing else lives here.

Exit codes follow ruff: 0 clean, 1 findings (diagnostics in .feat files, a failed check),
2 usage, configuration, connection or internal errors. Imports stay inside commands so that
`fsc --help` and short commands start fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="fsc",
    help="fsdsl: features defined once in .feat files, compiled to every query that computes them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(StrEnum):
    text = "text"
    json = "json"


class LintFormat(StrEnum):
    text = "text"
    json = "json"
    github = "github"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def fail(message: str, code: str = "E0001", exit_code: int = 2) -> None:
    """One line on stderr, no traceback."""
    sys.stderr.write(f"error[{code}]: {message}\n")
    raise typer.Exit(exit_code)


def guarded(fn: Callable) -> Callable:
    """Turn every error a user can cause into a one-line message and an exit code."""

    @wraps(fn)
    def run(*args, **kwargs):
        from fsdsl.diagnostics import FeatError, UsageError, render_text

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except FeatError as e:
            for d in e.diagnostics:
                sys.stderr.write(render_text(d) + "\n")
            raise typer.Exit(1) from None
        except UsageError as e:
            sys.stderr.write(e.one_line() + "\n")
            raise typer.Exit(2) from None
        except Exception as e:  # a bug: still no traceback unless asked for
            if os.environ.get("FSC_DEBUG"):
                raise
            fail(
                f"internal error: {type(e).__name__}: {e} (set FSC_DEBUG=1 for a traceback)",
                "E9999",
            )

    return run


PathArg = Annotated[
    Path, typer.Argument(help="A .feat file or a folder of them.", show_default=False)
]


@app.command()
@guarded
def compile(
    path: PathArg,
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="Compile the features of this service.")
    ] = None,
    view: Annotated[
        str | None,
        typer.Option("--view", "-v", help="Compile one feature view (all its features)."),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            "-t",
            help="training: feature values as of each row of a `labels` relation. "
            "refresh: values as of the parameter as_of for entities changed since the "
            "parameter watermark (one query per view); postgres binds them by position, "
            "$1 = as_of and $2 = watermark.",
        ),
    ] = "training",
    dialect: Annotated[
        str,
        typer.Option(
            "--dialect",
            "-d",
            help="SQL dialect: duckdb, postgres, spark, snowflake, bigquery, trino, databricks, "
            "redshift.",
        ),
    ] = "duckdb",
    timestamp_column: Annotated[
        str, typer.Option(help="The labels' timestamp column (training target).")
    ] = "event_timestamp",
    format: Annotated[
        Format,
        typer.Option(
            "--format", "-f", help="text: SQL (highlighted on a terminal); json: machine-readable."
        ),
    ] = Format.text,
) -> None:
    """Print the SQL compiled from the .feat files, without running it.

    With neither --service nor --view: every service (training) or every view (refresh).
    """
    from fsdsl.store import FeatureStore

    queries = FeatureStore(path).compile(
        service=service,
        view=view,
        target=target,
        dialect=dialect,
        timestamp_column=timestamp_column,
    )
    if format is Format.json:
        payload = [
            {"name": q.name, "kind": q.kind, "target": q.target, "dialect": q.dialect, "sql": q.sql}
            for q in queries
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    console = _console()
    for i, q in enumerate(queries):
        text = f"-- {q.target} query of {q.kind} {q.name} ({q.dialect})\n{q.sql};"
        if i:
            typer.echo("")
        if console.is_terminal:
            from rich.syntax import Syntax

            console.print(Syntax(text, "sql", theme="ansi_dark", word_wrap=True))
        else:
            typer.echo(text)


@app.command()
@guarded
def lint(
    path: PathArg,
    format: Annotated[
        LintFormat,
        typer.Option(
            "--format",
            "-f",
            help="text: located messages with the source line and a caret; "
            "json: a list of objects; github: workflow annotations.",
        ),
    ] = LintFormat.text,
) -> None:
    """Check .feat files: syntax, names, types, durations, cycles. Exit 1 on any error."""
    from fsdsl.check import load_repository
    from fsdsl.diagnostics import render_github, render_json, render_text

    _, diags = load_repository(path)
    errors = sum(d.is_error for d in diags)
    if format is LintFormat.json:
        typer.echo(render_json(diags))
    elif format is LintFormat.github:
        for d in diags:
            typer.echo(render_github(d))
    else:
        for d in diags:
            typer.echo(render_text(d))
            typer.echo("")
        warnings = len(diags) - errors
        summary = (
            "All checks passed."
            if not diags
            else f"Found {errors} error(s) and {warnings} warning(s)."
        )
        typer.echo(summary)
    raise typer.Exit(1 if errors else 0)


@app.command()
@guarded
def fmt(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders to format.", show_default=False)
    ],
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Change nothing; print a diff and exit 1 if a file would change."
        ),
    ] = False,
) -> None:
    """Rewrite .feat files in the canonical layout (comments kept; idempotent)."""
    from fsdsl.diagnostics import render_text
    from fsdsl.fmt import format_paths

    changed, broken = 0, 0
    for r in format_paths(paths, check=check):
        if r.status == "broken":
            sources = None if r.original is None else {str(r.path): r.original}
            for d in r.diagnostics:
                sys.stderr.write(render_text(d, sources) + "\n")
            broken += 1
        elif r.status == "changed":
            changed += 1
            if check:
                typer.echo(r.diff, nl=False)
            else:
                typer.echo(f"formatted {r.path}")
    if check and changed:
        typer.echo(f"{changed} file(s) would be reformatted", err=True)
    if broken:
        raise typer.Exit(1)
    raise typer.Exit(1 if check and changed else 0)


@app.command("demo-data")
@guarded
def demo_data(
    path: Annotated[
        Path,
        typer.Argument(help="The feature repository (its project's profile names the warehouse)."),
    ] = Path("definitions"),
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse",
            "-w",
            help="Warehouse URL, e.g. duckdb:///demo.duckdb (default: the duckdb profile).",
        ),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Also write the labels to this Parquet/CSV file.")
    ] = None,
    users: Annotated[int, typer.Option(help="Number of users.")] = 2000,
    orders: Annotated[int, typer.Option(help="Number of orders.")] = 40000,
    page_views: Annotated[int, typer.Option(help="Number of page views.")] = 80000,
    label_rows: Annotated[int, typer.Option("--label-rows", help="Number of label rows.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 7,
    days: Annotated[int, typer.Option(help="Days of history.")] = 180,
    end: Annotated[
        str | None,
        typer.Option(
            help="The history ends on this day (ISO date; default today, so `fsc run` without "
            "--at finds live entities)."
        ),
    ] = None,
) -> None:
    """Fill a warehouse (the DuckDB profile by default, or any backend URL) with seeded example
    data for the definitions/ example."""
    import datetime as dt

    from fsdsl.store import FeatureStore

    try:
        last = dt.date.fromisoformat(end) if end else None
    except ValueError:
        fail(f"--end `{end}` is not an ISO date", "E0004")
    filled = FeatureStore.demo_data(
        path,
        warehouse=warehouse,
        users=users,
        orders=orders,
        page_views=page_views,
        labels=label_rows,
        seed=seed,
        days=days,
        end=last,
        labels_path=labels,
    )
    for table, n in filled.counts.items():
        typer.echo(f"{table:<16} {n:>10,} rows")
    typer.echo(f"warehouse: {filled.warehouse}")


@app.command("training-set")
@guarded
def training_set(
    path: PathArg,
    service: Annotated[
        str,
        typer.Option(
            "--service", "-s", help="The service whose features to compute.", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output file: Parquet, or CSV by extension (lists become JSON).",
            show_default=False,
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            "-l",
            help="Labels file (Parquet, or CSV by extension): the entity keys, "
            "a timestamp column and any other columns to keep.",
        ),
    ] = None,
    labels_table: Annotated[
        str | None,
        typer.Option(help="Read the labels from this warehouse table instead of a file."),
    ] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse",
            "-w",
            help="Warehouse URL, e.g. duckdb:///path.duckdb (default: the profile in backends/).",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="Profile name in backends/ (default: $FSC_PROFILE or duckdb)."),
    ] = None,
    timestamp_column: Annotated[
        str, typer.Option(help="The labels' timestamp column: features are computed as of it.")
    ] = "event_timestamp",
    shares: Annotated[
        int | None,
        typer.Option(
            help="Run one query per share of the entities (by key hash), so each fits the "
            "warehouse's memory (DuckDB). Default: one per 2,000,000 labels.",
        ),
    ] = None,
    format: Annotated[
        Format,
        typer.Option(
            "--format", "-f", help="text: a summary table; json: a machine-readable summary."
        ),
    ] = Format.text,
) -> None:
    """Compute a point-in-time-correct training set: every label row, in input order, with one
    column per feature of the service as of the row's timestamp."""
    import time

    from fsdsl.store import FeatureStore

    if (labels is None) == (labels_table is None):
        fail("give exactly one of --labels FILE or --labels-table NAME", "E0004")
    started = time.perf_counter()
    store = FeatureStore(path, warehouse=warehouse, profile=profile)
    with _live(format is Format.text) as say, store:
        result = store.training_set(
            labels,
            service,
            labels_table=labels_table,
            timestamp_column=timestamp_column,
            out=out,
            progress=say,
            shares=shares,
        )
    seconds = time.perf_counter() - started
    features = store.service_features(service)
    summary = {
        "service": service,
        "rows": result.num_rows,
        "features": len(features),
        "out": str(out),
        "seconds": round(seconds, 3),
    }
    if format is Format.json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"wrote {result.num_rows:,} rows x {len(features)} features to {out} in {seconds:.2f}s"
        )


class _live:
    """Rich progress on stderr while a command works; silent when not wanted or not on a
    terminal. Without `bars`: one spinner naming the current stage (the callback takes a
    message). With `bars`: one bar per name, laid out as each name is first reported (the
    callback takes name, done, total)."""

    def __init__(self, enabled: bool, bars: bool = False):
        self.enabled = enabled and sys.stderr.isatty()
        self.bars = bars

    def __enter__(self):
        if not self.enabled:
            return lambda *_args: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
        )

        if not self.bars:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        else:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self.progress = Progress(*columns, console=_console(stderr=True), transient=True)
        self.progress.__enter__()
        if not self.bars:
            task = self.progress.add_task("starting", total=None)
            return lambda msg: self.progress.update(task, description=msg)
        tasks: dict[str, TaskID] = {}

        def bar(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = self.progress.add_task(name, total=None)
            self.progress.update(tasks[name], completed=done, total=total)

        return bar

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.__exit__(*exc)


OnlineOpt = Annotated[
    str | None,
    typer.Option(
        "--online",
        help="Online store URL: redis://[:password@]host:port/db, rediss://..., "
        "unix:///path.sock (password also from $FSC_REDIS_PASSWORD). Default: the profile's "
        "[online] url, else an embedded Redis under .fsc/.",
    ),
]
WarehouseOpt = Annotated[
    str | None,
    typer.Option(
        "--warehouse",
        "-w",
        help="Warehouse URL, e.g. duckdb:///path.duckdb (default: the profile in backends/).",
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option(help="Profile name in backends/ (default: $FSC_PROFILE or duckdb).")
]


@app.command()
@guarded
def run(
    path: PathArg,
    warehouse: WarehouseOpt = None,
    online: OnlineOpt = None,
    profile: ProfileOpt = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="Compute values as of this time (ISO 8601, UTC unless a zone is given; default "
            "now)."
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Recompute every entity into a fresh namespace instead of only the "
            "entities that changed since the last run.",
        ),
    ] = False,
    view: Annotated[
        list[str] | None,
        typer.Option(
            "--view", "-v", help="Refresh only this view (repeatable). Default: every view."
        ),
    ] = None,
    format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="text: a summary table; json: one object per view, for schedulers.",
        ),
    ] = Format.text,
) -> None:
    """Refresh the online store: compute every view as of --at and write it to Redis.

    The first run of a view (or --full, or a changed definition) computes every entity; later
    runs only the entities whose values can have changed since the previous run."""
    import time

    from fsdsl.store import FeatureStore

    started = time.perf_counter()
    with FeatureStore(path, warehouse=warehouse, profile=profile, online=online) as store:
        with _live(format is Format.text, bars=True) as progress:
            runs = store.run(at, views=view, full=full, progress=progress)
    seconds = time.perf_counter() - started
    if format is Format.json:
        typer.echo(json.dumps({"views": [r.to_dict() for r in runs], "seconds": round(seconds, 3)}))
        return
    from rich.table import Table

    table = Table(title=f"fsc run as of {runs[0].as_of if runs else '-'}", title_justify="left")
    for col in ("view", "mode", "written", "removed", "values", "seconds", "rows/s"):
        table.add_column(col, justify="left" if col in ("view", "mode") else "right", no_wrap=True)
    for r in runs:
        d = r.to_dict()
        table.add_row(
            r.view,
            r.mode,
            f"{r.entities_written:,}",
            f"{r.entities_removed:,}",
            f"{r.values_written:,}",
            f"{r.seconds:.2f}",
            f"{d['rows_per_second'] or 0:,.0f}",
        )
    _console().print(table)
    typer.echo(f"done in {seconds:.2f}s")


class GetFormat(StrEnum):
    json = "json"  # the one format of `get`: a file or table goes through --keys/--out


def _iso_as_of(row: dict) -> dict:
    """A served row with `_as_of`/`_as_of_views` as ISO 8601 text (`str` of a datetime has a
    space, and other readers of the JSON expect the `T`)."""
    iso = lambda t: t.isoformat() if t is not None else None  # noqa: E731
    views = row.get("_as_of_views") or {}
    return {
        **row,
        "_as_of": iso(row.get("_as_of")),
        "_as_of_views": {v: iso(t) for v, t in views.items()},
    }


@app.command()
@guarded
def get(
    path: PathArg,
    keys: Annotated[
        list[str] | None,
        typer.Argument(help="Entity keys as KEY=VALUE (e.g. user_id=u000042).", show_default=False),
    ] = None,
    service: Annotated[
        str,
        typer.Option(
            "--service", "-s", help="The service whose features to serve.", show_default=False
        ),
    ] = ...,
    keys_file: Annotated[
        Path | None,
        typer.Option("--keys", help="A Parquet/CSV file of key columns: serve a batch."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="With --keys: write the key columns + one column per feature "
            "here (Parquet, or CSV by extension).",
        ),
    ] = None,
    online: OnlineOpt = None,
    profile: ProfileOpt = None,
    format: Annotated[
        GetFormat,
        typer.Option("--format", "-f", help="json: one object per entity (the only format)."),
    ] = GetFormat.json,
) -> None:
    """Serve feature values from the online store, as JSON (or a file with --keys/--out).
    Each row carries `__status`, per view: ok, missing (no stored value: the values of an
    unseen entity) or corrupt (stored values that fail their checksum, served as missing and
    rewritten by the next `fsc run`); `_as_of`, the time its values are exact at (the
    earliest of its views' last refresh times), and `_as_of_views`, each view's."""
    from fsdsl.store import FeatureStore, parse_entity_keys

    if (keys_file is None) == (not keys):
        fail("give KEY=VALUE arguments or --keys FILE", "E0004")
    with FeatureStore(path, profile=profile, online=online) as store:
        if keys_file is None:
            row = parse_entity_keys(keys or [])
            result = store.online_features(service, row, with_status=True, with_as_of=True)
        else:
            result = store.online_features(
                service, keys_file, with_status=True, with_as_of=True, out=out
            )
    if keys_file is None:
        typer.echo(json.dumps(_iso_as_of(result), default=str, indent=2))
    elif out is None:
        rows = [_iso_as_of(r) for r in result.to_pylist()]
        typer.echo(json.dumps(rows, default=str, indent=2))
    else:
        typer.echo(f"wrote {result.num_rows:,} rows to {out}")


@app.command()
@guarded
def verify(
    path: PathArg,
    sample: Annotated[int, typer.Option(help="Entity keys sampled per view.")] = 100,
    at: Annotated[
        str | None,
        typer.Option(
            help="Compare with the training query at this time (default: each view's last "
            "refresh time)."
        ),
    ] = None,
    view: Annotated[
        list[str] | None, typer.Option("--view", "-v", help="Check only this view (repeatable).")
    ] = None,
    warehouse: WarehouseOpt = None,
    online: OnlineOpt = None,
    profile: ProfileOpt = None,
    format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text: a per-feature table; json: the full report."),
    ] = Format.text,
) -> None:
    """Check that serving equals training: online values of sampled entities (and of keys
    never seen) against the training query at the refresh time. Exit 1 on any mismatch, or
    when a view is served under another fingerprint than the current definition compiles to."""
    from fsdsl.store import FeatureStore

    with FeatureStore(path, warehouse=warehouse, profile=profile, online=online) as store:
        result = store.verify(at, views=view, sample=sample)
    reports, skipped, stale = result.features, result.skipped, result.stale
    bad = result.mismatches
    if format is Format.json:
        typer.echo(json.dumps(result.to_dict(), default=str, indent=2))
    else:
        from rich.table import Table

        table = Table(title="online vs training", title_justify="left")
        for col in ("view", "feature", "compared", "mismatches"):
            table.add_column(col, justify="right" if col in ("compared", "mismatches") else "left")
        for r in reports:
            table.add_row(
                r.view,
                r.feature,
                str(r.compared),
                f"[red]{r.mismatches}[/red]" if r.mismatches else "0",
            )
        console = _console()
        console.print(table)
        for name, why in skipped.items():
            typer.echo(f"skipped {name}: {why}")
        for name, why in stale.items():
            typer.echo(f"stale {name}: {why}")
        for r in reports:
            for ex in r.examples:
                typer.echo(
                    f"mismatch {r.view}.{r.feature} at {ex['key']}: training "
                    f"{ex['training']} != online {ex['online']}"
                )
        typer.echo(f"{bad} mismatch(es) in {result.compared:,} values")
    if not result.ok:
        raise typer.Exit(1)


class PushMode(StrEnum):
    online_and_offline = "online_and_offline"
    online = "online"
    offline = "offline"


@app.command()
@guarded
def push(
    path: PathArg,
    source: Annotated[str, typer.Argument(help="The source the rows belong to.")],
    file: Annotated[
        str,
        typer.Argument(
            help="Parquet, CSV or JSON lines (by extension); `-` reads JSON lines from stdin."
        ),
    ],
    warehouse: WarehouseOpt = None,
    online: OnlineOpt = None,
    profile: ProfileOpt = None,
    mode: Annotated[
        PushMode,
        typer.Option(
            help="online_and_offline: append to the warehouse and update online values; "
            "online: online values only; offline: append only (the next run applies them)."
        ),
    ] = PushMode.online_and_offline,
    format: Annotated[
        Format, typer.Option("--format", "-f", help="text: a summary; json: one object.")
    ] = Format.text,
) -> None:
    """Push events: append rows to a source's table and update the online values they change,
    by the views' own refresh queries. A batch with a bad row is rejected whole."""
    import sys

    from fsdsl.store import FeatureStore

    with FeatureStore(path, warehouse=warehouse, profile=profile, online=online) as store:
        result = store.push(
            source, file, mode=mode.value, waiting=lambda m: print(m, file=sys.stderr)
        )
    if format is Format.json:
        typer.echo(json.dumps(result.to_dict()))
        return
    served = f", values served as of {result.as_of}" if result.as_of else ""
    views = ", ".join(
        f"{v.view} ({v.entities_written + v.entities_removed:,})" for v in result.views
    )
    typer.echo(
        f"pushed {result.rows:,} row(s) to `{result.source}` ({result.mode}){served}"
        + (f"; entities rewritten: {views}" if views else "")
        + f" in {result.seconds:.3f}s"
    )


@app.command()
@guarded
def stream(
    path: PathArg,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="Consume this source's stream (repeatable). Default: every source a view reads.",
        ),
    ] = None,
    warehouse: WarehouseOpt = None,
    online: OnlineOpt = None,
    profile: ProfileOpt = None,
    tick: Annotated[
        float,
        typer.Option(help="Seconds between refreshes by time alone (windows and TTLs move)."),
    ] = 1.0,
    batch: Annotated[int, typer.Option(help="Entries per micro-batch, at most.")] = 5000,
    group: Annotated[
        str, typer.Option(help="The consumer group: workers of one group share the work.")
    ] = "fsc",
    consumer: Annotated[
        str | None,
        typer.Option(
            help="This worker's name in its group (default $FSC_STREAM_CONSUMER, else "
            "host:pid:nonce); restarted under its name, it resumes what it left unacked.",
            show_default=False,
        ),
    ] = None,
    report_every: Annotated[
        float, typer.Option("--report-every", help="Seconds between reports.")
    ] = 5.0,
    format: Annotated[
        Format,
        typer.Option(
            "--format", "-f", help="text: a live status line; json: one JSON line per report."
        ),
    ] = Format.text,
) -> None:
    """Consume events from Redis Streams (key `fsc:stream:<source>`, or the source's `stream`
    clause) and apply them in micro-batches: append to the warehouse, update online values,
    then acknowledge. Runs until SIGTERM or Ctrl-C, which finish the batch in hand."""
    from fsdsl.store import FeatureStore

    def line(r) -> str:
        lag = sum(r.lag.values()) if r.lag else 0
        fresh = (
            f"p50 {r.freshness_p50_ms:,.0f} ms, p99 {r.freshness_p99_ms:,.0f} ms"
            if r.freshness_p99_ms is not None
            else "-"
        )
        text = (
            f"{r.events:,} events ({r.events_per_second:,.0f}/s), lag {lag:,}, "
            f"freshness {fresh}, dead letters {r.dead:,}, as of {r.as_of or '-'}"
        )
        return text + (f" — {r.waiting}" if r.waiting else "")

    def json_line(r) -> None:
        typer.echo(json.dumps(r.to_dict()))
        sys.stdout.flush()  # a pipe is block-buffered: each report goes out when made

    with FeatureStore(path, warehouse=warehouse, profile=profile, online=online) as store:
        if format is Format.json:
            report = store.stream(
                source,
                tick=tick,
                batch=batch,
                group=group,
                consumer=consumer,
                report_every=report_every,
                on_report=json_line,
            )
            return
        from rich.live import Live

        with Live(console=_console(stderr=True), transient=False, auto_refresh=False) as live:

            def show(r) -> None:
                live.update(line(r), refresh=True)

            report = store.stream(
                source,
                tick=tick,
                batch=batch,
                group=group,
                consumer=consumer,
                report_every=report_every,
                on_report=show,
            )
    typer.echo(f"stopped: {line(report)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
