"""Where a feature repository's settings live: the project root and its `backends/` profiles."""

from __future__ import annotations

import gc
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fsdsl.diagnostics import UsageError

DEFAULT_PROFILE = "duckdb"


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path | None
    warehouse_url: str
    dialect: str
    settings: dict


def project_root(path: str | Path) -> Path:
    """The nearest folder at or above `path` with a `backends/` folder; else the current one."""
    p = Path(path).resolve()
    for candidate in [p, *p.parents] if p.is_dir() else [*p.parents]:
        if (candidate / "backends").is_dir():
            return candidate
    return Path.cwd()


def feat_files(path: Path) -> list[Path]:
    """The `.feat` files of a file or folder, sorted; hidden folders (`.fsc/`, `.git/`) skipped.
    Here rather than in `check`, so that `fmt` walks folders exactly as the loader does."""
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*.feat")
            if not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    return [path]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a repository's files are read.

    Parsing and checking build a model of many small objects that stay alive and form no cycles,
    and every collection their allocation triggers rescans all that was built so far: on 1,000
    views, a quarter of `fsc lint` (bench/large_repo.py). Reference counting still frees what is
    dropped; cycles, if any, are collected once the pause ends. Nested pauses end with the
    outermost.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def load_profile(path: str | Path, name: str | None = None) -> Profile:
    root = project_root(path)
    name = name or os.environ.get("FSC_PROFILE") or DEFAULT_PROFILE
    file = root / "backends" / f"{name}.toml"
    if not file.exists():
        if name == DEFAULT_PROFILE:
            url = f"duckdb:///{(root / '.fsc' / 'warehouse.duckdb').as_posix()}"
            return Profile(name, None, url, "duckdb", {})
        raise UsageError(f"no profile `{name}`: {file} does not exist", "E0002")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read profile {file}: {e}", "E0002") from None
    wh = data.get("warehouse", {})
    url = wh.get("url")
    if not isinstance(url, str):
        raise UsageError(f"profile {file} has no [warehouse] url", "E0002")
    url = resolve_url(url, root)
    for key in ("temp_directory", "warehouse_dir"):
        value = wh.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            wh[key] = str(root / value)
    dialect = wh.get("dialect") or url.split(":", 1)[0].split("+", 1)[0]
    return Profile(name, file, url, dialect, data)


def resolve_url(url: str, root: Path) -> str:
    """Make a relative `duckdb:///path` absolute against the project root."""
    prefix = "duckdb:///"
    if url.startswith(prefix):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("/"):
            return prefix + (root / rest).as_posix()
    return url


def duckdb_path(url: str) -> str:
    prefix = "duckdb:///"
    url = url.split("?", 1)[0]
    if url == "duckdb://" or url == "duckdb:///:memory:":
        return ":memory:"
    if not url.startswith(prefix):
        raise UsageError(f"not a DuckDB URL: {url} (expected duckdb:///path.duckdb)", "E0003")
    return url[len(prefix) :] or ":memory:"


def url_settings(url: str) -> dict[str, str]:
    """Settings given in a URL's query string: duckdb:///wh.duckdb?memory_limit=12GB."""
    import urllib.parse

    query = url.split("?", 1)[1] if "?" in url else ""
    return dict(urllib.parse.parse_qsl(query))
