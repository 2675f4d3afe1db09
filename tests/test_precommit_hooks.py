"""The pre-commit hooks of `.pre-commit-hooks.yaml`, run by pre-commit itself.

A temporary git repository gets a `.pre-commit-config.yaml` with a `repo: local` copy of each
hook of this repository's `.pre-commit-hooks.yaml`: the same entry, files, arguments and
pass_filenames, only `language: system` instead of `python`, so that pre-commit runs the `fsc`
installed here rather than building an environment from the network. The copy is made on the
text (the manifest is a YAML list of hooks, which indented under `hooks:` is the same list), so
no YAML library is needed; pre-commit itself validates both files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("pre-commit") is None,
    reason="needs git and pre-commit",
)


def _hooks() -> list[dict[str, str]]:
    """The manifest's hooks, each field as written (every value fits on its line)."""
    hooks: list[dict[str, str]] = []
    for line in MANIFEST.read_text().splitlines():
        if line.startswith("- "):
            hooks.append({})
            line = line[2:]
        elif not line.startswith("  "):
            continue
        key, _, value = line.strip().partition(": ")
        hooks[-1][key] = value
    return hooks


def test_hooks_file_is_a_valid_manifest_of_both_hooks():
    done = subprocess.run(
        ["pre-commit", "validate-manifest", str(MANIFEST)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    by_id = {h["id"]: h for h in _hooks()}
    assert set(by_id) == {"fsc-lint", "fsc-fmt"}
    assert by_id["fsc-lint"]["entry"] == "fsc lint"
    assert by_id["fsc-lint"]["pass_filenames"] == "false"
    assert by_id["fsc-fmt"]["entry"] == "fsc fmt --check"
    assert by_id["fsc-fmt"]["pass_filenames"] == "true"
    for h in by_id.values():
        assert h["language"] == "python" and h["files"] == r"\.feat$"


@pytest.fixture
def repo(tmp_path: Path):
    """A git repository holding the example definitions and the hooks; returns a runner of
    `pre-commit run --all-files` (exit code, output)."""
    root = tmp_path / "features"
    shutil.copytree(ROOT / "definitions", root / "definitions")
    hooks = MANIFEST.read_text()
    assert hooks.count("\n  language: python\n") == 2
    hooks = hooks.replace("\n  language: python\n", "\n  language: system\n")
    indented = "".join(f"    {line}" for line in hooks.splitlines(keepends=True))
    config = root / ".pre-commit-config.yaml"
    config.write_text(f"repos:\n  - repo: local\n    hooks:\n{indented}")
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "NO_COLOR": "1",
    }
    env.pop("FSC_PROFILE", None)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    git("init", "-q")
    valid = subprocess.run(
        ["pre-commit", "validate-config", str(config)], env=env, capture_output=True, text=True
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr

    def run() -> tuple[int, str]:
        git("add", "-A")
        done = subprocess.run(
            ["pre-commit", "run", "--all-files", "--color", "never"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done.returncode, done.stdout + done.stderr

    run.root = root  # type: ignore[attr-defined]
    return run


def _status(output: str, name: str) -> str:
    line = next(ln for ln in output.splitlines() if ln.startswith(name))
    return line.rsplit(".", 1)[-1].strip()


def test_good_definitions_pass(repo):
    code, out = repo()
    assert code == 0, out
    assert _status(out, "fsc lint") == "Passed"
    assert _status(out, "fsc fmt") == "Passed"


def test_an_error_fails_lint(repo):
    bad = repo.root / "definitions" / "bad.feat"
    bad.write_text(
        "features broken {\n  entity user\n  from orders\n\n  total = sum(amout) over 7d\n}\n"
    )
    code, out = repo()
    assert code == 1, out
    assert _status(out, "fsc lint") == "Failed"
    assert "definitions/bad.feat:5:15: E0203 unknown column `amout`" in out
    assert _status(out, "fsc fmt") == "Passed"


def test_an_unformatted_file_fails_fmt(repo):
    messy = repo.root / "definitions" / "messy.feat"
    messy.write_text("features messy { entity user\n from orders\n  n_1h=count( * )  over 1h }\n")
    code, out = repo()
    assert code == 1, out
    assert _status(out, "fsc fmt") == "Failed"
    assert "+  n_1h = count(*) over 1h" in out
    assert _status(out, "fsc lint") == "Passed"
