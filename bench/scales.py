"""The benchmark scales of the training-set issue, and where their data lives."""

from __future__ import annotations

from pathlib import Path

SCALES = {
    # name: (users, events, labels)
    "XS": (1_000, 50_000, 10_000),
    "S": (10_000, 500_000, 100_000),
    "M": (100_000, 5_000_000, 1_000_000),
    "L": (1_000_000, 50_000_000, 10_000_000),
}
DATA = Path(__file__).resolve().parent / "data"


def paths(scale: str) -> tuple[Path, Path]:
    return DATA / f"{scale.lower()}.duckdb", DATA / f"{scale.lower()}_labels.parquet"
