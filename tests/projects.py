"""Test projects: a copy of the shipped example with a small seeded warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

from fsdsl.demo import generate

ROOT = Path(__file__).resolve().parents[1]


def example_project(root: Path, **generate_kwargs) -> Path:
    """The example's definitions and profiles under `root`, its warehouse filled by `generate`
    (`labels_path` relative to `root` when given as a plain name)."""
    shutil.copytree(ROOT / "definitions", root / "definitions")
    shutil.copytree(ROOT / "backends", root / "backends")
    (root / ".fsc").mkdir()
    generate(root / ".fsc" / "warehouse.duckdb", **generate_kwargs)
    return root
