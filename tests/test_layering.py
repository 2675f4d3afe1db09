"""The package's import graph runs down the stack (issue #10, item 3).

Every module under `fsdsl/` is parsed with `ast`; every import counts, function-local ones
included (they are how the CLI stays fast to start, not a way around the layers). A module may
import its own group or a lower layer, never a sibling group of the same rank: `online` and
`training_set` are peers, both built on the compiler and the backends, and what needs both (the
skew check, the `FeatureStore`) sits above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fsdsl"

# (rank, group) by module-name prefix, longest prefix first; bottom-up.
LAYERS: list[tuple[str, int, str]] = [
    ("fsdsl.diagnostics", 0, "core"),
    ("fsdsl.ir", 0, "core"),
    ("fsdsl.canonical", 0, "core"),
    ("fsdsl.arrow", 0, "core"),
    ("fsdsl.urls", 0, "core"),
    ("fsdsl.project", 0, "core"),
    ("fsdsl.ingest", 0, "core"),  # rows from outside, typed by their source's declaration
    ("fsdsl.syntax", 1, "syntax"),
    ("fsdsl.fmt", 2, "fmt"),
    ("fsdsl.check", 2, "check"),
    ("fsdsl.lint", 2, "lint"),  # rules over a checked repository: warnings, never errors
    ("fsdsl.compile", 3, "compile"),
    ("fsdsl.backends", 4, "backends"),
    ("fsdsl.training_set", 5, "training_set"),
    ("fsdsl.online", 5, "online"),
    ("fsdsl.demo", 5, "demo"),
    ("fsdsl.verify", 6, "verify"),
    ("fsdsl.catalogue", 6, "catalogue"),  # what a repository defines, for list/describe/docs
    ("fsdsl.store", 7, "store"),
    ("fsdsl.docs_site", 7, "docs_site"),  # `fsc docs`: the catalogue as a static site
    ("fsdsl.serve", 8, "serve"),  # `fsc serve`: HTTP over the FeatureStore
    ("fsdsl.cli_params", 9, "cli"),  # the option conversion of fsc's own process
    ("fsdsl.cli", 9, "cli"),
    ("fsdsl", 10, "package"),  # the package itself: a lazy re-export of FeatureStore
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The fsdsl modules `name` imports anywhere in its body (`from fsdsl import ir` is the
    module fsdsl.ir, not the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m == "fsdsl" or m.startswith("fsdsl.")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[int, str]:
    for prefix, rank, group in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return rank, group
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _offenders(sources: str, targets: tuple[str, ...], allowed: str | None = None) -> list[str]:
    return sorted(
        f"{src} imports {dst}"
        for src, deps in GRAPH.items()
        if _under(src, sources) and src != allowed
        for dst in deps
        if any(_under(dst, t) for t in targets)
    )


@pytest.mark.parametrize("lower", ["fsdsl.compile", "fsdsl.backends"])
def test_compiler_and_backends_do_not_import_online(lower):
    found = _offenders(lower, ("fsdsl.online",))
    assert not found, "\n".join(found)


def test_only_the_cli_imports_the_cli():
    found = _offenders("fsdsl", ("fsdsl.cli",), allowed="fsdsl.cli")
    assert not found, "\n".join(found)


def test_online_imports_neither_training_set_nor_store():
    found = _offenders("fsdsl.online", ("fsdsl.training_set", "fsdsl.store", "fsdsl.verify"))
    assert not found, "\n".join(found)


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_imports_run_down_the_stack():
    """Own group, or a strictly lower rank; never a peer group or anything above."""
    upward = []
    for src, deps in GRAPH.items():
        rank, group = _layer(src)
        for dst in deps:
            if dst not in MODULES:
                upward.append(f"{src} imports {dst}, which does not exist")
                continue
            r, g = _layer(dst)
            if g != group and r >= rank:
                upward.append(f"{src} ({group}, {rank}) imports {dst} ({g}, {r})")
    assert not upward, "\n".join(sorted(upward))
