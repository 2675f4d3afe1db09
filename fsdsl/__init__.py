"""fsdsl: features defined once in `.feat` files, compiled to every query that computes them."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy: `import fsdsl` stays cheap for the CLI
    if name == "FeatureStore":
        from fsdsl.store import FeatureStore

        return FeatureStore
    raise AttributeError(name)


__all__ = ["FeatureStore", "__version__"]
