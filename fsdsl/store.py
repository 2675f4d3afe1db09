"""`FeatureStore`: the Python entry point, for notebooks and pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fsdsl import ir
from fsdsl.diagnostics import FeatError, UsageError

if TYPE_CHECKING:
    from fsdsl.verify import VerifyResult


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
        from fsdsl.check import load_repository
        from fsdsl.project import load_profile

        self.path = Path(path)
        repo, diags = load_repository(self.path)
        if repo is None:
            raise FeatError([d for d in diags if d.is_error])
        self.repo: ir.Repository = repo
        self.profile = load_profile(self.path, profile)
        self.warehouse_url = warehouse or self.profile.warehouse_url
        self.online_url = online or self.profile.settings.get("online", {}).get("url")
        self._warehouse = None
        self._online = None
        self._plans: dict[str, object] = {}

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
        progress=None,
    ) -> Any:
        """Point-in-time feature values for every row of the labels, in the same order, with
        the original columns kept. `labels`: pandas or Arrow (returned as the same type), or
        the path of a Parquet/CSV file; or None and `labels_table`, a warehouse table (both
        returned as Arrow)."""
        from fsdsl.training_set import compute, read_labels_table, read_table

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
        elif isinstance(labels, str | Path):
            self.warehouse()
            say(f"reading {labels}")
            table, where = read_table(Path(labels)), str(labels)
        else:
            table = pa.Table.from_pandas(labels, preserve_index=False) if is_pandas else labels
        if not isinstance(table, pa.Table):
            raise UsageError("labels must be a pandas DataFrame or a pyarrow Table", "E0400")
        out = compute(
            self.repo,
            features,
            table,
            self.warehouse(),
            timestamp_column=timestamp_column,
            where=where,
            progress=progress,
        )
        return out.to_pandas() if is_pandas else out

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
        self, at=None, *, views: list[str] | None = None, full: bool = False, progress=None
    ) -> list:
        """Refresh the online store as of `at` (datetime or ISO text; default now)."""
        import datetime as dt

        from fsdsl.online.refresh import parse_time, refresh_view
        from fsdsl.training_set import check_sources

        when = at if isinstance(at, dt.datetime) else parse_time(at)
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        targets = self.views_named(views)
        wh, online = self.warehouse(), self.online()
        check_sources(self.repo, targets, wh)
        return [
            refresh_view(
                self.repo, v, wh, online, when, full=full, progress=progress, cache=self.cache_dir
            )
            for v in targets
        ]

    def verify(self, at=None, *, views: list[str] | None = None, sample: int = 100) -> VerifyResult:
        """Serving equals training: the online values of `sample` stored entities per view
        (and of keys never seen) against the training query at `at` (datetime or ISO text;
        default each view's last refresh time)."""
        import datetime as dt

        from fsdsl.online.refresh import parse_time
        from fsdsl.verify import verify

        when = at if isinstance(at, dt.datetime) else parse_time(at) if at else None
        if when is not None and when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        targets = self.views_named(views)
        return verify(self.repo, targets, self.warehouse(), self.online(), sample, when)

    def plan(self, service: str):
        from fsdsl.online.lookup import plan_service

        self.service_features(service)
        if service not in self._plans:
            self._plans[service] = plan_service(self.repo, service, self.cache_dir)
        return self._plans[service]

    def online_features(self, service: str, keys: Any, *, with_status: bool = False) -> Any:
        """Feature values served for `keys` (a dict, a list of dicts, a pandas DataFrame or an
        Arrow table of key columns), in one round trip; returns the same shape. An entity with
        no online value gets the values the semantics give an unseen entity, and so does one
        whose stored values fail their checksum (logged, counted in
        `online().corrupt_reads`, rewritten by the next run); if a view's unseen-entity values
        are themselves absent or damaged, such entities get nulls for that view only.
        `with_status` adds `__status` to each row: {view: "ok" | "missing" | "corrupt"}."""
        from fsdsl.online.lookup import as_table, lookup

        plan = self.plan(service)
        if isinstance(keys, dict):
            return lookup(self.online(), plan, [keys], with_status)[0]
        is_pandas = type(keys).__module__.startswith("pandas")
        if is_pandas or isinstance(keys, pa.Table):
            table = pa.Table.from_pandas(keys, preserve_index=False) if is_pandas else keys
            rows = lookup(self.online(), plan, table.to_pylist(), with_status)
            out = as_table(rows, plan, table.schema, with_status)
            return out.to_pandas() if is_pandas else out
        return lookup(self.online(), plan, list(keys), with_status)
