"""Golden SQL of the example repository in every dialect, each re-parsed by sqlglot.

Regenerate after an intended change with `FSDSL_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlglot
from conftest import IN_CI

from fsdsl.check import load_repository
from fsdsl.compile import DIALECTS
from fsdsl.compile.refresh import state_columns
from fsdsl.compile.render import compile_repository
from fsdsl.compile.training import RESOLVED

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("FSDSL_UPDATE_GOLDEN"))


def _repo():
    repo, diags = load_repository(Path(__file__).resolve().parents[1] / "definitions")
    assert repo is not None, diags
    return repo


def _output_columns(query) -> list[str]:
    """What each query returns, by contract rather than by golden text (a regenerated golden
    file is reviewed by eye): a training set is the labels' own columns then one column per
    requested feature, in order; a refresh returns keys, `as_of`, the features, then the state
    row the runner stores. A helper column (spine time, row ordinal, partial aggregate) leaking
    into a training set, or a feature lost or reordered, breaks it."""
    repo = _repo()
    if query.kind == "service":
        features = [f for _, f in repo.services[query.name].features]
    else:
        features = [f.name for f in repo.views[query.name].features]
    if query.target == "training":
        return ["*", *features]
    view = repo.views[query.name]
    keys = [k.name for k in view.entity.keys]
    state = [name for name, _ in state_columns(view)]
    assert state[: len(keys)] == keys, state
    return [*keys, "as_of", *features, *state[len(keys) :]]


def _cases():
    repo = _repo()
    for dialect in DIALECTS:
        for target in ("training", "refresh"):
            for q in compile_repository(repo, target=target, dialect=dialect):
                yield pytest.param(q, id=f"{dialect}-{target}-{q.name}")


@pytest.mark.parametrize("query", list(_cases()))
def test_golden(query):
    path = GOLDEN / query.dialect / f"{query.name}.{query.target}.sql"
    # rewriting then comparing cannot fail: a regeneration is for a person to review, not CI
    assert not (UPDATE and IN_CI), "FSDSL_UPDATE_GOLDEN is set in CI"
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
    # (this once asserted that "__row" was absent: only the test helper tests/duck.py adds that
    # column, through `order_by`, which no golden query uses, so it could not fail)
    assert [c.alias_or_name for c in tree.expressions] == _output_columns(query)
    if query.target == "training":
        star, source = tree.expressions[0], tree.args["from_"].this
        assert isinstance(star.this, sqlglot.exp.Star), star
        # a service with a `key` reads the labels through one stage per link, each adding the
        # keys it resolves: the star is the labels' columns, then the resolved keys
        service = _repo().services.get(query.name) if query.kind == "service" else None
        links = service.links() if service is not None and service.key is not None else []
        relation = f"{RESOLVED}{len(links) - 1}" if links else "labels"
        assert (source.name, star.table) == (relation, source.alias_or_name), tree.args["from_"]


def test_every_dialect_compiles_every_service_and_view():
    repo, _ = load_repository(Path(__file__).resolve().parents[1] / "definitions")
    for dialect in DIALECTS:
        for service in repo.services:
            for target in ("training", "refresh"):
                assert compile_repository(repo, service=service, target=target, dialect=dialect)
