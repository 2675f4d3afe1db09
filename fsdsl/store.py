"""`FeatureStore`: the Python entry point, for notebooks and pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from fsdsl import ir
from fsdsl.diagnostics import FeatError, UsageError


class FeatureStore:
    """A feature repository (`.feat` files) bound to a warehouse.

    >>> store = FeatureStore("definitions")                      # doctest: +SKIP
    >>> df = store.training_set(labels_df, service="churn_model")  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, warehouse: str | None = None, profile: str | None = None):
        from fsdsl.check import load_repository
        from fsdsl.project import load_profile

        self.path = Path(path)
        repo, diags = load_repository(self.path)
        if repo is None:
            raise FeatError([d for d in diags if d.is_error])
        self.repo: ir.Repository = repo
        self.profile = load_profile(self.path, profile)
        self.warehouse_url = warehouse or self.profile.warehouse_url
        self._warehouse = None

    def warehouse(self):
        from fsdsl.backends import connect

        if self._warehouse is None:
            settings = dict(self.profile.settings.get("warehouse", {}))
            self._warehouse = connect(self.warehouse_url, settings)
        return self._warehouse

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

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
        self, labels: Any, service: str, *, timestamp_column: str = "event_timestamp", progress=None
    ) -> Any:
        """Point-in-time feature values for every row of `labels` (pandas or Arrow, returned
        as the same type), in the same order, with the original columns kept."""
        from fsdsl.training_set import compute

        features = self.service_features(service)
        is_pandas = type(labels).__module__.startswith("pandas")
        table = pa.Table.from_pandas(labels, preserve_index=False) if is_pandas else labels
        if not isinstance(table, pa.Table):
            raise UsageError("labels must be a pandas DataFrame or a pyarrow Table", "E0400")
        out = compute(
            self.repo,
            features,
            table,
            self.warehouse(),
            timestamp_column=timestamp_column,
            progress=progress,
        )
        return out.to_pandas() if is_pandas else out
