"""Every import of the code, tests and benchmarks is declared in pyproject.toml.

deptry reads the imports; the modules that tests/ and bench/ import from their own folder (they
are put on sys.path, not installed) are first-party, named from the files themselves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def local_modules() -> list[str]:
    return sorted({p.stem for d in ("tests", "bench") for p in (ROOT / d).glob("*.py")})


def deptry(root: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("deptry") or str(Path(sys.executable).with_name("deptry"))
    args = [exe, str(root), "--no-ansi"]
    for name in local_modules():
        args += ["--known-first-party", name]
    return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=120)


def test_every_import_is_declared():
    done = deptry(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout + done.stderr, done.stdout + done.stderr


def test_an_undeclared_import_fails(tmp_path):
    """The check above can fail: the same project with one undeclared import is refused."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "fsdsl", tmp_path / "fsdsl", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("import click\n")
    done = deptry(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    # DEP001 where nothing installs click, DEP003 where a declared package brings it along
    assert re.search(r"test_x.py:1:8: DEP00[13] 'click' imported but", done.stdout + done.stderr), (
        done.stdout + done.stderr
    )
