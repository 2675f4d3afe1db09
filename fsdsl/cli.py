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
    sarif = "sarif"


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


_OWN_PROCESS = False  # set by main(): the process is fsc's own, not a caller's (tests, embedders)


def _one_shot() -> None:
    """For a command that reads definitions, reports and exits (lint, fmt): no cyclic garbage
    collection for the rest of fsc's own process. What it builds stays alive to the end and
    holds no cycles, so a collection (and the one at exit) only rescans it: 0.1 s of `fsc lint`
    on 1,000 views. A process that goes on after the command keeps its collector."""
    if _OWN_PROCESS:
        import gc

        gc.disable()


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
            "json: a list of objects; github: workflow annotations; sarif: SARIF 2.1.0 (code "
            "scanning).",
        ),
    ] = LintFormat.text,
) -> None:
    """Check .feat files: syntax, names, types, durations, cycles; then warn about duplicate
    features and names that contradict their window. Exit 1 on any error (warnings: 0)."""
    from fsdsl.check import load_repository
    from fsdsl.diagnostics import render_github, render_json, render_text

    _one_shot()
    repo, diags = load_repository(path)
    if repo is not None:
        from fsdsl.lint import lint_repository

        diags = sorted(
            [*diags, *lint_repository(repo)],
            key=lambda d: (d.span.file, d.span.line, d.span.col, d.code),
        )
    errors = sum(d.is_error for d in diags)
    if format is LintFormat.json:
        typer.echo(render_json(diags))
    elif format is LintFormat.sarif:
        from fsdsl.lint.sarif import render_sarif

        typer.echo(render_sarif(diags))
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

    _one_shot()
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


class ListKind(StrEnum):
    entities = "entities"
    sources = "sources"
    views = "views"
    features = "features"
    services = "services"
    links = "links"


RICH_ROWS = 1000  # rich lays out ~0.4 ms a row: longer listings are printed as plain columns


def _print_entries(rows, title: str | None, scores: list[float] | None = None) -> None:
    """A table of entries: rich's, or for more than RICH_ROWS rows the same columns aligned as
    plain text (one line per entry, which `grep` and a pager also like), in a tenth of the
    time."""
    from rich.markup import escape

    heads = (["score"] if scores is not None else []) + [
        "kind",
        "name",
        "type",
        "window",
        "owner",
        "description",
    ]
    cells = [
        ([f"{scores[i]:.0f}"] if scores is not None else [])
        + [e.kind, e.name, e.type or "", e.window or "", e.owner or "", e.description or ""]
        for i, e in enumerate(rows)
    ]
    if len(rows) > RICH_ROWS:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
        lines = [title] if title else []
        for row in [heads, *cells]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        typer.echo("\n".join(lines))
        return
    from rich.table import Table

    table = Table(title=title and escape(title), title_justify="left")
    for h in heads:
        table.add_column(
            h,
            justify="right" if h == "score" else "left",
            no_wrap=h in ("score", "kind", "name"),
            overflow="fold",
        )
    for row in cells:
        table.add_row(*(escape(c) for c in row))
    _console().print(table)


@app.command("list")
@guarded
def list_(
    path: PathArg,
    kind: Annotated[
        ListKind | None,
        typer.Argument(help="Only these: entities, sources, views, features, services, links."),
    ] = None,
    format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text: a table; json: one object per definition."),
    ] = Format.text,
) -> None:
    """List what the repository defines: names, types, owners, descriptions, windows."""
    from fsdsl.store import FeatureStore

    cat = FeatureStore(path).catalogue
    singular = {"entities": "entity"}.get(kind, kind and kind.value[:-1])
    rows = cat.entries if kind is None else cat.of_kind(singular)
    if format is Format.json:
        typer.echo(json.dumps([e.to_dict() for e in rows], indent=2))
        return
    _print_entries(rows, f"{len(rows)} definition(s) in {path}")


@app.command()
@guarded
def describe(
    path: PathArg,
    name: Annotated[
        str,
        typer.Argument(
            help="A feature (view.feature, or its name alone if unique), view, source, service, "
            "entity or link; kind:name picks a kind.",
            show_default=False,
        ),
    ],
    dialect: Annotated[
        str, typer.Option("--dialect", "-d", help="The dialect of the SQL shown.")
    ] = "duckdb",
    format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text: a summary and the SQL; json: every field."),
    ] = Format.text,
) -> None:
    """Everything about one definition: its text and file:line, type, owner, window, TTL,
    filter, the source columns it reads, what it derives from and what derives from it, the
    services that use it, and its SQL (a view's refresh query, a feature's or a service's
    training query)."""
    from fsdsl.store import FeatureStore

    entry, sql = FeatureStore(path).describe(name, dialect)
    if format is Format.json:
        typer.echo(json.dumps({**entry.to_dict(), "dialect": dialect, "sql": sql}, indent=2))
        return
    _describe_text(entry, sql, dialect)


def _describe_text(entry, sql: str | None, dialect: str) -> None:
    from rich.markup import escape
    from rich.syntax import Syntax
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{entry.kind} {escape(entry.name)}[/bold]  {escape(entry.location)}")
    console.print(escape(entry.definition), highlight=False)
    console.print("")
    listed = lambda xs: ", ".join(xs) or "-"  # noqa: E731
    fields = {
        "feature": ("type", "owner", "window", "ttl", "filter", "entity", "source"),
        "view": ("owner", "description", "entity", "source", "ttl", "filter"),
        "service": ("owner", "description"),
        "source": ("owner", "description"),
        "entity": ("description",),
        "link": ("type", "owner", "description", "entity", "source", "ttl"),
    }[entry.kind]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for f in fields:
        table.add_row(f, escape(getattr(entry, f) or "-"))
    lists = {
        {"entity": "keys", "link": "to keys"}.get(entry.kind, "columns"): (
            entry.columns if entry.kind in ("source", "entity", "link") else None
        ),
        "features": entry.features if entry.kind in ("view", "service") else None,
        "views": entry.views if entry.kind in ("source", "entity") else None,
        "reads": entry.reads if entry.kind not in ("source", "entity") else None,
        "derives from": entry.derives_from if entry.kind == "feature" else None,
        "derived by": entry.derived_by if entry.kind == "feature" else None,
        "used by": entry.used_by if entry.kind != "service" else None,
    }
    for label, xs in lists.items():
        if xs is not None:
            table.add_row(label, escape(listed(xs)))
    console.print(table)
    if sql is None:
        return
    what = {"view": "refresh", "feature": "training", "service": "training"}[entry.kind]
    text = f"-- {what} query of {entry.kind} {entry.name} ({dialect})\n{sql};"
    console.print("")
    if console.is_terminal:
        console.print(Syntax(text, "sql", theme="ansi_dark", word_wrap=True))
    else:
        typer.echo(text)


@app.command()
@guarded
def search(
    path: PathArg,
    text: Annotated[
        str, typer.Argument(help="Words to find (all of them), any case.", show_default=False)
    ],
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many matches.")] = 20,
    format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text: a ranked table; json: scored objects."),
    ] = Format.text,
) -> None:
    """Find definitions by name, description, owner or the source columns they read, best
    first: an exact name, a name prefix, a word of a name, then descriptions and owners, then
    columns."""
    from fsdsl.store import FeatureStore

    hits = FeatureStore(path).catalogue.search(text, limit=limit)
    if format is Format.json:
        typer.echo(json.dumps([{"score": s, **e.to_dict()} for s, e in hits], indent=2))
        return
    if not hits:
        typer.echo(f"no match for `{text}`")
        return
    _print_entries([e for _, e in hits], None, scores=[s for s, _ in hits])


@app.command()
@guarded
def docs(
    path: PathArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="The folder to write the site into: new, empty, or one `fsc docs` wrote before.",
        ),
    ],
    dialect: Annotated[
        list[str] | None,
        typer.Option(
            "--dialect",
            "-d",
            help="Print each view's SQL in this dialect (repeatable; default: all eight).",
        ),
    ] = None,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql/--no-sql",
            help="Include each view's refresh query. Printing SQL is most of a first build's "
            "time on a large repository; texts are cached in .fsc/cache/docs for the next one.",
        ),
    ] = True,
    format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text: a summary; json: one object."),
    ] = Format.text,
) -> None:
    """Write the catalogue as a static site that opens from file:// with no server: an index,
    a page per view, feature, service and source, search, lineage graphs and SQL."""
    from fsdsl.docs_site import generate

    with _live(format is Format.text, bars=True) as progress:
        site = generate(path, out, dialects=dialect, sql=sql, progress=progress)
    if format is Format.json:
        typer.echo(json.dumps(site.to_dict()))
        return
    sql_note = (
        f"SQL in {len(site.dialects)} dialect(s): {site.sql_printed:,} printed, "
        f"{site.sql_cached:,} from the cache, {site.sql_kept:,} unchanged"
        if site.dialects
        else "no SQL"
    )
    typer.echo(
        f"{site.views:,} views, {site.features:,} features, {site.services:,} services; "
        f"{sql_note}; {site.seconds:.2f}s"
    )
    typer.echo(f"open {site.index.resolve().as_uri()}")


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
    plans = []
    # On a terminal the plan is shown before anything is written; in a log (no terminal) it
    # heads the output once the run is done, so that an error stays the output's one line.
    at_once = format is Format.text and _console().is_terminal

    def shown(plan) -> None:
        plans.append(plan)
        if at_once:
            _print_plan(plan)

    with FeatureStore(path, warehouse=warehouse, profile=profile, online=online) as store:
        with _live(format is Format.text, bars=True) as progress:
            runs = store.run(at, views=view, full=full, progress=progress, on_plan=shown)
    seconds = time.perf_counter() - started
    if format is Format.text and not at_once and plans:
        _print_plan(plans[0])
    if format is Format.json:
        plan = plans[0].to_dict() if plans else None
        views = [r.to_dict() for r in runs]
        typer.echo(json.dumps({"plan": plan, "views": views, "seconds": round(seconds, 3)}))
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


def _print_plan(plan) -> None:
    """The plan as two tables (views, services) of what changes; unchanged ones are counted."""
    from rich.table import Table

    console = _console()
    style = {"changed": "yellow", "new": "green", "removed": "red", "breaking": "red"}
    views = [v for v in plan.views if v.status != "unchanged"]
    if views:
        table = Table(title="views", title_justify="left")
        for col in ("view", "status", "rows to scan", "why"):
            table.add_column(col, justify="right" if col == "rows to scan" else "left")
        for v in views:
            rows = "" if v.rows_to_scan is None else f"{v.rows_to_scan:,}"
            color = style.get(v.status)
            status = f"[{color}]{v.status}[/{color}]" if color else v.status
            table.add_row(v.name, status, rows, "; ".join(v.changes))
        console.print(table)
    services = [s for s in plan.services if s.status != "unchanged"]
    if services:
        table = Table(title="services", title_justify="left")
        for col in ("service", "status", "changes"):
            table.add_column(col)
        for s in services:
            color = "red" if s.breaking else "green" if s.status == "new" else None
            status = f"[{color}]{s.status}[/{color}]" if color else s.status
            table.add_row(s.name, status, "; ".join(s.changes))
        console.print(table)
    recompute = [v for v in plan.views if v.recompute]
    scan = f" (~{plan.rows_to_scan:,} rows to scan)" if plan.rows_to_scan is not None else ""
    breaking = [s.name for s in plan.services if s.breaking]
    typer.echo(
        f"{len(recompute)} view(s) to recompute in full{scan}, "
        f"{sum(v.status == 'metadata-only' for v in plan.views)} metadata-only, "
        f"{sum(v.status == 'unchanged' for v in plan.views)} unchanged; "
        + (f"breaking: {', '.join(breaking)}" if breaking else "no breaking change")
    )


@app.command()
@guarded
def plan(
    path: PathArg,
    online: OnlineOpt = None,
    warehouse: WarehouseOpt = None,
    profile: ProfileOpt = None,
    view: Annotated[
        list[str] | None,
        typer.Option("--view", "-v", help="Plan only this view (repeatable). Default: every view."),
    ] = None,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate/--no-estimate",
            help="Count the rows each view to recompute reads (one COUNT per source on the "
            "warehouse); --no-estimate connects to the online store only.",
        ),
    ] = True,
    format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text: tables of what changes; json: the full plan."),
    ] = Format.text,
) -> None:
    """Show what `fsc run` would change, without changing anything: per view unchanged,
    metadata-only, changed (full refresh into a new namespace), new or removed; per service
    breaking or not. Exit 1 when a service changes in a breaking way, for CI."""
    from fsdsl.store import FeatureStore

    with FeatureStore(path, warehouse=warehouse, profile=profile, online=online) as store:
        result = store.plan_changes(views=view, estimate=estimate)
    if format is Format.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_plan(result)
    raise typer.Exit(1 if result.breaking else 0)


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
        for s in result.services:  # a service with a `key`, end to end (links resolved)
            bad_s = f"[red]{s.mismatches}[/red]" if s.mismatches else "0"
            table.add_row(f"{s.service} (service)", s.column, str(s.compared), bad_s)
        console = _console()
        console.print(table)
        for name, why in skipped.items():
            typer.echo(f"skipped {name}: {why}")
        for name, why in result.unchecked.items():
            typer.echo(f"service {name} not compared end to end: {why}")
        for name, why in stale.items():
            typer.echo(f"stale {name}: {why}")
        for r in reports:
            for ex in r.examples:
                typer.echo(
                    f"mismatch {r.view}.{r.feature} at {ex['key']}: training "
                    f"{ex['training']} != online {ex['online']}"
                )
        for s in result.services:
            for ex in s.examples:
                typer.echo(
                    f"mismatch {s.service}.{s.column} at {ex['key']} (as of {s.at}): training "
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
    batch: Annotated[int, typer.Option(help="Entries per micro-batch, at most.")] = 20_000,
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


@app.command()
@guarded
def serve(
    path: PathArg,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (loopback by default: say 0.0.0.0 to open it)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (Feast's default; 0: any free).")
    ] = 6566,
    online: OnlineOpt = None,
    warehouse: WarehouseOpt = None,
    profile: ProfileOpt = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes sharing the port (about one per core).")
    ] = 1,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FSC_SERVE_TOKEN",
            help="Require `Authorization: Bearer TOKEN` on every request but /health, /metrics "
            "and the docs; push and reload are refused without one. Prefer $FSC_SERVE_TOKEN "
            "(a command line is visible to other users).",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Serve features over HTTP: POST /get-online-features (Feast's request and response),
    POST /push, POST /reload, GET /health, GET /metrics (Prometheus), /openapi.json, /docs.
    Runs until SIGTERM or Ctrl-C, which finish the requests in flight; SIGHUP reloads the
    definitions (refused, the old ones serving, if they do not check)."""
    from fsdsl.serve.app import ServeConfig
    from fsdsl.serve.run import serve as run_server

    if workers < 1:
        fail("--workers must be at least 1", "E0004")
    if not 0 <= port <= 65535:
        fail(f"--port {port} is not a port number", "E0004")
    if token is not None and not token.strip():
        fail("the token is empty", "E0004")
    config = ServeConfig(
        str(path),
        online=online,
        warehouse=warehouse,
        profile=profile,
        token=token,
        workers=workers,
    )
    code = run_server(config, host, port, lambda text: print(text, file=sys.stderr, flush=True))
    raise typer.Exit(code)


def main() -> None:
    """The `fsc` script: `app()`, with each parameter converted without pydantic
    (`cli_params.py`), a tenth of a second of every command."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    from fsdsl.cli_params import plain_coercion

    plain_coercion()
    app()


if __name__ == "__main__":
    main()
