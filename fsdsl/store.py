"""`FeatureStore`: the Python entry point, for notebooks and pipelines, and all that `fsc` does.

Every `fsc` command is one method here (or `fsdsl.fmt.format_paths`, for files that need not
load as a repository); the CLI only parses its arguments and renders the result.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsdsl import ir
from fsdsl.diagnostics import FeatError, UsageError

if TYPE_CHECKING:
    from fsdsl.catalogue import Catalogue, Entry
    from fsdsl.compile.render import CompiledQuery
    from fsdsl.demo import DemoData
    from fsdsl.online.plan import Plan as ChangePlan
    from fsdsl.online.refresh import ViewRun
    from fsdsl.project import Profile
    from fsdsl.verify import VerifyResult

# A file of labels or keys: Parquet, or CSV/TSV by extension.
FileName = str | os.PathLike


class FeatureStore:
    """A feature repository (`.feat` files) bound to a warehouse.

    >>> store = FeatureStore("definitions")                      # doctest: +SKIP
    >>> df = store.training_set(labels_df, service="churn_model")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        warehouse: str | None = None,
        profile: str | None = None,
        online: str | None = None,
    ):
        from fsdsl.check.cache import load_repository

        self.path = Path(path)
        repo, diags = load_repository(self.path)
        if repo is None:
            raise FeatError([d for d in diags if d.is_error])
        self.repo: ir.Repository = repo
        self._profile_name = profile
        self._warehouse_arg = warehouse
        self._online_arg = online
        self._warehouse = None
        self._online = None
        self._plans: dict[str, object] = {}

    # ---- settings ----
    # The profile is read on first use: compiling and planning need none, so a missing or
    # broken profile only stops what connects. A method that connects reads it before looking
    # at its own arguments: a broken setup is reported first, whatever else is wrong.
    @cached_property
    def profile(self) -> Profile:
        """The `backends/<name>.toml` profile (`profile=`, else $FSC_PROFILE, else duckdb)."""
        from fsdsl.project import load_profile

        return load_profile(self.path, self._profile_name)

    def _profile_first(self) -> None:
        """Read the profile before a method that connects looks at its own arguments."""
        _ = self.profile

    @property
    def warehouse_url(self) -> str:
        return self._warehouse_arg or self.profile.warehouse_url

    @property
    def online_url(self) -> str | None:
        return self._online_arg or self.profile.settings.get("online", {}).get("url")

    @property
    def cache_dir(self) -> Path:
        """Where compiled refresh queries are kept between runs (`.fsc/cache`)."""
        from fsdsl.project import project_root

        return project_root(self.path) / ".fsc" / "cache"

    def warehouse(self):
        from fsdsl.backends import connect

        if self._warehouse is None:
            settings = dict(self.profile.settings.get("warehouse", {}))
            self._warehouse = connect(self.warehouse_url, settings)
        return self._warehouse

    def online(self):
        """The online store: `online=` / the profile's [online] url, else the embedded Redis."""
        from fsdsl.online.store import OnlineStore

        if self._online is None:
            url = self.online_url
            if not url:
                from fsdsl.online.server import ensure_embedded
                from fsdsl.project import project_root

                url = ensure_embedded(project_root(self.path))
            store = OnlineStore(url)
            store.check()
            self._online = store
        return self._online

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
        if self._online is not None:
            self._online.close()
            self._online = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- without a warehouse ----
    @classmethod
    def demo_data(
        cls,
        path: str | Path = "definitions",
        *,
        warehouse: str | None = None,
        profile: str | None = None,
        users: int = 2000,
        orders: int = 40000,
        page_views: int = 80000,
        labels: int = 5000,
        seed: int = 7,
        days: int = 180,
        end: dt.date | None = None,
        labels_path: FileName | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        devices: int | None = None,
    ) -> DemoData:
        """Fill a warehouse with seeded example data for the `definitions/` example: the
        tables `orders`, `web.page_views`, `device_links`, `labels` and `device_labels`,
        created or replaced (`devices`: default 1.5 per user; `labels` rows in each label
        table).

        A class method: the data comes before there is anything to check, so `path` is only
        where the project (its profile) is found, and need not hold valid definitions.
        `warehouse` (a URL) overrides the profile's. The history covers the `days` before
        `end` (default today, UTC, so a refresh without a time finds live entities);
        `labels_path` also receives the labels, as CSV by extension, else Parquet; the same
        `seed` gives the same data. `progress(table, done, total)` follows the writing."""
        from fsdsl.demo import fill
        from fsdsl.project import load_profile

        last = end if end is not None else dt.datetime.now(dt.UTC).date()
        start = dt.datetime.combine(last, dt.time()) - dt.timedelta(days=days)
        chosen = load_profile(path, profile)
        return fill(
            warehouse or chosen.warehouse_url,
            dict(chosen.settings.get("warehouse", {})),
            start=start,
            days=days,
            users=users,
            orders=orders,
            page_views=page_views,
            labels=labels,
            seed=seed,
            labels_path=None if labels_path is None else Path(labels_path),
            progress=progress,
            devices=devices,
        )

    def compile(
        self,
        *,
        service: str | None = None,
        view: str | None = None,
        target: str = "training",
        dialect: str | None = None,
        timestamp_column: str = "event_timestamp",
    ) -> list[CompiledQuery]:
        """The SQL compiled from the definitions, without running it (as `dbt compile`): the
        training query of `service` (as of each row of a `labels` relation), or the refresh
        query of `view` (as of the parameter `as_of`, for entities changed since `watermark`);
        with neither, every service (training) or every view (refresh). `dialect` defaults to
        the profile's warehouse dialect."""
        from fsdsl.compile import dialects
        from fsdsl.compile.render import compile_repository

        dialect = dialect or self.profile.dialect
        dialects.get(dialect)  # an unknown name is a usage error, whatever else is wrong
        return compile_repository(
            self.repo,
            service=service,
            view=view,
            target=target,
            dialect=dialect,
            timestamp_column=timestamp_column,
        )

    # ---- the catalogue (`fsc list / describe / search`) ----
    @cached_property
    def catalogue(self) -> Catalogue:
        """What the repository defines, with its text, owners and lineage: for finding a
        feature before writing it again."""
        from fsdsl.catalogue import build

        return build(self.repo)

    def describe(self, name: str, dialect: str = "duckdb") -> tuple[Entry, str | None]:
        """The entry `name` means (`Catalogue.get`) and its SQL in `dialect`: a view's refresh
        query, a feature's or a service's training query; None for other kinds."""
        from fsdsl.catalogue import SQL_KINDS, entry_sql
        from fsdsl.compile import dialects

        dialects.get(dialect)  # an unknown dialect is a usage error, whatever the name
        entry = self.catalogue.find(name)
        sql = entry_sql(self.repo, entry, dialect) if entry.kind in SQL_KINDS else None
        return entry, sql

    def service_features(self, service: str) -> list[tuple[str, str]]:
        if service not in self.repo.services:
            from fsdsl.compile.render import _unknown

            raise UsageError(_unknown("service", service, self.repo.services), "E0005")
        return list(self.repo.services[service].features)

    def training_set(
        self,
        labels: Any,
        service: str,
        *,
        labels_table: str | None = None,
        timestamp_column: str = "event_timestamp",
        out: FileName | None = None,
        progress: Callable[[str], None] | None = None,
        shares: int | None = None,
    ) -> Any:
        """Point-in-time feature values for every row of the labels, in the same order, with
        the original columns kept. `labels`: pandas or Arrow (returned as the same type), or
        the path of a Parquet/CSV file; or None and `labels_table`, a warehouse table (both
        returned as Arrow). `out` also writes the result there (Parquet, or CSV by
        extension, lists as JSON text). `progress(message)` names each stage as it starts.
        `shares`: run one query per share of the entities (by key hash) so that each fits the
        warehouse's memory; by default one per `training_set.LABELS_PER_SHARE` labels where
        the warehouse can split (DuckDB), else one."""
        import pyarrow as pa

        from fsdsl.training_set import compute, read_labels_table, read_table, write_table

        self._profile_first()
        features = self.service_features(service)
        if (labels is None) == (labels_table is None):
            raise UsageError("give exactly one of --labels FILE or --labels-table NAME", "E0004")
        is_pandas = type(labels).__module__.startswith("pandas")
        where = "labels"
        say = progress or (lambda _msg: None)
        if labels_table is not None:
            wh = self.warehouse()  # a connection error first, as for any warehouse command
            say(f"reading table {labels_table}")
            table, where = read_labels_table(wh, labels_table), labels_table
        elif isinstance(labels, str | os.PathLike):
            self.warehouse()
            say(f"reading {labels}")
            table, where = read_table(Path(labels)), str(labels)
        else:
            table = pa.Table.from_pandas(labels, preserve_index=False) if is_pandas else labels
        if not isinstance(table, pa.Table):
            raise UsageError("labels must be a pandas DataFrame or a pyarrow Table", "E0400")
        result = compute(
            self.repo,
            features,
            table,
            self.warehouse(),
            timestamp_column=timestamp_column,
            where=where,
            progress=progress,
            shares=shares,
            service=self.repo.services[service],
        )
        if out is not None:
            say(f"writing {out}")
            write_table(result, Path(out))
        return result.to_pandas() if is_pandas else result

    # ---- online ----
    def views_named(self, names: list[str] | None) -> list[ir.View]:
        if not names:
            return list(self.repo.views.values())
        unknown = [n for n in names if n not in self.repo.views]
        if unknown:
            from fsdsl.compile.render import _unknown

            raise UsageError(_unknown("view", unknown[0], self.repo.views), "E0005")
        return [self.repo.views[n] for n in names]

    def run(
        self,
        at: dt.datetime | str | None = None,
        *,
        views: list[str] | None = None,
        full: bool = False,
        progress: Callable[[str, int, int | None], None] | None = None,
        on_plan: Callable[[ChangePlan], None] | None = None,
    ) -> list[ViewRun]:
        """Refresh the online store as of `at` (datetime or ISO text; default now): every
        view, or those named in `views`, in the order the definitions list them. The first
        run of a view (or `full`, or a changed definition) computes every entity; later runs
        only the entities whose values can have changed since the previous run.

        `progress(view, done, total)` is called once per view with (0, None) before any work,
        so a caller can lay out one bar per view, then as each view's entities are written.
        `on_plan(plan)` receives the classification of `plan_changes` (without row counts)
        before anything is written. Each view's definition is recorded with the state that
        serves it, and each service whose views all serve their definitions after the run, for
        the next plan to compare with."""
        from fsdsl.online.plan import applied_views, make_plan, record_services
        from fsdsl.online.refresh import parse_time, refresh_view
        from fsdsl.training_set import check_sources

        self._profile_first()
        targets = self.views_named(views)
        when = at if isinstance(at, dt.datetime) else parse_time(at)
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        if progress is not None:
            for v in targets:
                progress(v.name, 0, None)
        wh, online = self.warehouse(), self.online()
        if at is None:
            # "now" once the warehouse is open: opening may wait for the file while a stream
            # worker writes it and moves the views past the time this call began (E0507)
            when = parse_time(None)
        check_sources(self.repo, targets, wh)
        if on_plan is not None:
            on_plan(make_plan(self.repo, online, views=views or None))
        records = applied_views(targets)
        runs = [
            refresh_view(
                self.repo,
                v,
                wh,
                online,
                when,
                full=full,
                progress=progress,
                cache=self.cache_dir,
                applied=records[v.name],
            )
            for v in targets
        ]
        record_services(self.repo, online, complete=not views, refreshed=[v.name for v in targets])
        return runs

    def plan_changes(self, *, views: list[str] | None = None, estimate: bool = True) -> ChangePlan:
        """What `run` would change, without changing anything (`fsc plan`): per view unchanged,
        metadata-only, changed (a full refresh into a new namespace), new or removed; per
        service breaking or not; compared with what the online store serves and what the last
        run applied. `estimate`: count the rows each recomputed view's source holds (a query
        per source on the warehouse)."""
        from fsdsl.online.plan import make_plan

        self._profile_first()
        self.views_named(views)
        online = self.online()
        wh = self.warehouse() if estimate else None
        return make_plan(self.repo, online, views=views or None, warehouse=wh)

    def push(
        self,
        source: str,
        rows: Any,
        *,
        mode: str = "online_and_offline",
        ids: list[str] | None = None,
        waiting: Callable[[str], None] | None = None,
        at: dt.datetime | str | None = None,
    ):
        """Append `rows` (a list of dicts, a pyarrow Table or a pandas DataFrame of the source's
        columns, or the path of a Parquet, CSV or JSON-lines file, `-` for JSON lines on stdin;
        texts are parsed by the column's type) to `source`'s warehouse table and
        update the online values of the entities they touch, by each view's refresh query.
        Returns once both are durable, with `as_of`: the time τ the served values are exact at.

        A batch with a bad row (a missing or null entity key or timestamp, an unknown column,
        a value of another type, a text that does not parse) is rejected whole (`BadRows`,
        E0520), before anything is written. A row without the source's `created` gets the
        time the push was accepted. `mode`: "online_and_offline" (default), "online" (the
        warehouse never holds the rows) or "offline" (the next run applies them). `ids`: one
        idempotence key per row; a row whose key was appended before is not appended again.
        `at` replays a push as of a time (tests, backfills): the rows are accepted just
        before it and the values refreshed to it.
        See `fsdsl/online/push.py` for why a crash at any point loses and doubles nothing."""
        from fsdsl import ingest
        from fsdsl.online.push import MODES, apply, now, source_named

        self._profile_first()
        if mode not in MODES:
            raise UsageError(f"unknown push mode `{mode}`; use one of {', '.join(MODES)}", "E0525")
        src = source_named(self.repo, source)
        if isinstance(rows, str | os.PathLike):  # a file, `-` for JSON lines on stdin
            rows = ingest.read_rows(str(rows))
        when = None
        if at is not None:
            from fsdsl.online.refresh import parse_time

            when = at if isinstance(at, dt.datetime) else parse_time(at)
            if when.tzinfo is not None:
                when = when.astimezone(dt.UTC).replace(tzinfo=None)
        accepted = now() if when is None else when - dt.timedelta(microseconds=1)
        data = ingest.table(ingest.Columns.of(self.repo, src), rows, accepted)
        if ids is not None and len(ids) != data.num_rows:
            raise UsageError(f"{len(ids)} ids for {data.num_rows} rows", "E0526")
        online = self.online()
        with self.writable_warehouse() as wh:
            from fsdsl.training_set import check_source

            check_source(src, wh)
            return apply(
                self.repo,
                src,
                data,
                wh,
                online,
                mode=mode,
                ids=ids,
                accepted_at=accepted,
                cache=self.cache_dir,
                waiting=waiting,
                at=when,
                keep_state=True,
            )

    def stream(
        self,
        sources: list[str] | None = None,
        *,
        tick: float = 1.0,
        batch: int | None = None,
        report_every: float = 5.0,
        on_report: Callable | None = None,
        group: str | None = None,
        until_idle: bool = False,
        consumer: str | None = None,
    ):
        """Run the stream worker (`fsdsl/online/stream.py`) until SIGTERM/SIGINT: consume each
        source's Redis Stream (`stream "..."`, else `fsc:stream:<source>`) in micro-batches
        through a consumer group, apply them as pushes, tick every `tick` seconds. Returns the
        final `Report`; `on_report(report)` is called every `report_every` seconds.
        `consumer`: this worker's name in its group (default $FSC_STREAM_CONSUMER, else
        host:pid:nonce); a worker restarted under its name resumes what it left unacked."""
        from fsdsl.online.stream import BATCH, GROUP, Worker

        self._profile_first()
        worker = Worker(
            self,
            sources,
            tick=tick,
            batch=batch or BATCH,
            report_every=report_every,
            on_report=on_report,
            group=group or GROUP,
            consumer=consumer or "",
        )
        return worker.run(until_idle=until_idle)

    def writable_warehouse(self):
        """A connection that may append rows, for a push (closed after it) or a stream worker
        (kept between batches while nobody waits for the file, `backends/handoff.py`): the
        read-only one this store holds is closed first (DuckDB allows one writer per file, and
        a process cannot hold it both ways)."""
        from fsdsl.backends import connect

        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
        settings = dict(self.profile.settings.get("warehouse", {}))
        return connect(self.warehouse_url, {**settings, "writable": True})

    def verify(
        self,
        at: dt.datetime | str | None = None,
        *,
        views: list[str] | None = None,
        sample: int = 100,
    ) -> VerifyResult:
        """Serving equals training: the online values of `sample` stored entities per view
        (and of keys never seen) against the training query at `at` (datetime or ISO text;
        default each view's last refresh time). Not `ok` on any mismatch, or when a view is
        served under another fingerprint than the current definition compiles to."""
        from fsdsl.check import load_repository
        from fsdsl.online.refresh import parse_time
        from fsdsl.verify import verify

        self._profile_first()
        when = at if isinstance(at, dt.datetime) else parse_time(at) if at else None
        if when is not None and when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        # against the definitions as written, never the parse cache (`fsdsl/check/cache.py`)
        repo, diags = load_repository(self.path)
        if repo is None:
            raise FeatError([d for d in diags if d.is_error])
        self.repo = repo
        targets = self.views_named(views)
        return verify(self.repo, targets, self.warehouse(), self.online(), sample, when)

    def plan(self, service: str):
        from fsdsl.online.lookup import plan_service

        self.service_features(service)
        if service not in self._plans:
            self._plans[service] = plan_service(self.repo, service)
        return self._plans[service]

    def online_features(
        self,
        service: str,
        keys: Any,
        *,
        with_status: bool = False,
        with_as_of: bool = False,
        out: FileName | None = None,
    ) -> Any:
        """Feature values served for `keys` (a dict, a list of dicts, a pandas DataFrame or an
        Arrow table of key columns, or the path of a Parquet/CSV file of them, read as Arrow),
        in one round trip; returns the same shape. An entity with no online value gets the
        values the semantics give an unseen entity, and so does one whose stored values fail
        their checksum (logged, counted in `online().corrupt_reads`, rewritten by the next
        run); if a view's unseen-entity values are themselves absent or damaged, such
        entities get nulls for that view only. `with_status` adds `__status` to each row:
        {view: "ok" | "missing" | "corrupt"}. `with_as_of` adds `_as_of`, the time the row's
        values are exact at (a naive UTC datetime: the earliest as-of time of the views they
        come from), and `_as_of_views`, {view: its as-of time}; both are read in the same
        atomic round trip as the values, which makes that one a little longer (one more small
        string per view, never served from the reader's cache). `out`, for keys given as a table
        or file, also writes the key columns and one column per feature there (Parquet, or CSV
        by extension; `__status` and `_as_of_views` as one `<name>.<view>` column per view)."""
        import pyarrow as pa

        from fsdsl.online.lookup import as_table, lookup, lookup_columns
        from fsdsl.training_set import read_table, write_table

        self._profile_first()
        if isinstance(keys, str | os.PathLike):
            keys = read_table(Path(keys), "keys")
        plan = self.plan(service)
        is_pandas = type(keys).__module__.startswith("pandas")
        if out is not None and not (is_pandas or isinstance(keys, pa.Table)):
            raise UsageError("out= needs the keys as a table or a file", "E0004")
        if isinstance(keys, dict):
            return lookup(self.online(), plan, [keys], with_status, with_as_of)[0]
        if is_pandas or isinstance(keys, pa.Table):
            table = pa.Table.from_pandas(keys, preserve_index=False) if is_pandas else keys
            got = lookup_columns(self.online(), plan, table.to_pylist(), with_status, with_as_of)
            result = as_table(got, plan, table.schema, with_status, with_as_of)
            if out is not None:
                write_table(result.flatten(), Path(out))  # `__status.<view>`: CSV-safe
            return result.to_pandas() if is_pandas else result
        return lookup(self.online(), plan, list(keys), with_status, with_as_of)


def parse_entity_keys(pairs: Iterable[str]) -> dict[str, str]:
    """One entity's keys from `KEY=VALUE` texts (as `fsc get` takes them): the value is the
    text after the first `=`, so it may hold `=` itself or be empty."""
    row = {}
    for item in pairs:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"`{item}` is not KEY=VALUE", "E0004")
        row[name] = value
    return row
