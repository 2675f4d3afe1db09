"""Golden SQL of the example repository in every dialect, each re-parsed by sqlglot.

Regenerate after an intended change with `FSDSL_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlglot

from fsdsl.check import load_repository
from fsdsl.compile import DIALECTS
from fsdsl.compile.render import compile_repository

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("FSDSL_UPDATE_GOLDEN"))


def _cases():
    repo, diags = load_repository(Path(__file__).resolve().parents[1] / "definitions")
    assert repo is not None, diags
    for dialect in DIALECTS:
        for target in ("training", "refresh"):
            for q in compile_repository(repo, target=target, dialect=dialect):
                yield pytest.param(q, id=f"{dialect}-{target}-{q.name}")


@pytest.mark.parametrize("query", list(_cases()))
def test_golden(query):
    path = GOLDEN / query.dialect / f"{query.name}.{query.target}.sql"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(query.sql + "\n", encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with FSDSL_UPDATE_GOLDEN=1"
    assert query.sql + "\n" == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("query", list(_cases()))
def test_reparses_in_its_dialect(query):
    tree = sqlglot.parse_one(query.sql, read=query.dialect, error_level=sqlglot.ErrorLevel.RAISE)
    again = tree.sql(dialect=query.dialect, identify=True, pretty=True)
    # one round trip may normalise spelling (DATE_PART vs EXTRACT); after that it is stable
    assert (
        sqlglot.parse_one(again, read=query.dialect).sql(
            dialect=query.dialect, identify=True, pretty=True
        )
        == again
    )
    assert isinstance(tree, sqlglot.exp.Select)
    names = [c.alias_or_name for c in tree.expressions]
    assert "__row" not in names


def test_every_dialect_compiles_every_service_and_view():
    repo, _ = load_repository(Path(__file__).resolve().parents[1] / "definitions")
    for dialect in DIALECTS:
        for service in repo.services:
            for target in ("training", "refresh"):
                assert compile_repository(repo, service=service, target=target, dialect=dialect)
