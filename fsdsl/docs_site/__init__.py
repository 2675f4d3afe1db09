"""`fsc docs`: the catalogue as a static site that opens from `file://`, with no server.

A person looking for a feature before writing it again should not need Python, a running server
or a network: the site is a folder of plain files, opened by double-click or attached to a CI
run. Browsers refuse `fetch()` of `file://` URLs but run `<script src>` from the same folder, so
every piece of data is a JavaScript file that hands its object to the application:

    index.html app.js style.css    the application, copied from the package's assets
    data.js                        the catalogue (`fsdsl.catalogue`) and the lineage edges
    sql/<n>.js                     one per view: its refresh query in every dialect, loaded
                                   only when a page shows it (all of them at once would be
                                   tens of megabytes for a large repository)
    .fsc-docs                      marks the folder as ours, so a rebuild may replace its files

Printing SQL is most of the cost (about 25 ms per view and dialect with sqlglot 30), so each
text is kept in the project's `.fsc/cache/docs`, keyed like `fsc run`'s compile cache by
everything it depends on (the view's IR, the dialect's class, the compiler's source, sqlglot's
version): a rebuild prints only the views that changed, and a cold build spreads the printing
over the machine's cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fsdsl import ir
from fsdsl.diagnostics import FeatError, UsageError

OUT_IS_FILE = "E0620"  # --out names a file
OUT_NOT_OURS = "E0621"  # --out is a non-empty folder that no `fsc docs` wrote

MARKER = ".fsc-docs"
ASSETS = ("index.html", "app.js", "style.css")
# Below this many texts to print, starting worker processes costs more than it saves.
_PARALLEL_FROM = 64
_CHUNK = 32  # texts per task of a worker process

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Site:
    """What a build wrote, for the CLI to report."""

    out: Path
    entries: int = 0
    views: int = 0
    features: int = 0
    services: int = 0
    dialects: tuple[str, ...] = ()
    sql_printed: int = 0  # texts compiled in this build
    sql_cached: int = 0  # texts read back from the cache
    sql_kept: int = 0  # texts of files left as the last build wrote them
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.out / "index.html"

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "index": self.index.resolve().as_uri(),
            "entries": self.entries,
            "views": self.views,
            "features": self.features,
            "services": self.services,
            "dialects": list(self.dialects),
            "sql_printed": self.sql_printed,
            "sql_cached": self.sql_cached,
            "sql_kept": self.sql_kept,
            "seconds": round(self.seconds, 3),
        }


def generate(
    path: str | Path,
    out: str | Path,
    *,
    dialects: Iterable[str] | None = None,
    sql: bool = True,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> Site:
    """Load the repository at `path` and write its site into `out`. `dialects` defaults to the
    eight built-in ones; `sql=False` leaves SQL out (the pages say so); `cache` defaults to the
    project's `.fsc/cache/docs`; `progress(stage, done, total)` follows the printing of SQL,
    which takes minutes on a first build of a large repository."""
    from fsdsl.check.cache import load_repository
    from fsdsl.project import project_root

    started = time.perf_counter()
    out = Path(out)
    _check_out(out)  # before the slow part: a wrong --out is reported at once
    chosen = _dialects(dialects) if sql else ()
    repo, diags = load_repository(Path(path))
    if repo is None:
        raise FeatError([d for d in diags if d.is_error])
    if cache is None:
        cache = project_root(path) / ".fsc" / "cache" / "docs"
    site = write_site(repo, out, project=str(path), dialects=chosen, cache=cache, progress=progress)
    site.seconds = time.perf_counter() - started
    return site


def write_site(
    repo: ir.Repository,
    out: Path,
    *,
    project: str,
    dialects: tuple[str, ...],
    cache: Path | None,
    progress: Progress | None = None,
) -> Site:
    """Write the site of an already loaded repository (`dialects=()`: without SQL)."""
    from fsdsl import catalogue

    out = Path(out)
    _check_out(out)
    cat = catalogue.build(repo)
    sql_ids = {name: _sql_id(name) for name in repo.views} if dialects else {}
    site = Site(out=out, dialects=dialects)

    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `fsc docs`, which replaces the files of this folder\n")
    assets = resources.files("fsdsl.docs_site") / "assets"
    for name in ASSETS:
        target = out / name
        target.write_bytes((assets / name).read_bytes())
        site.files.append(target)

    data = site_data(repo, cat, project, dialects, sql_ids)
    target = out / "data.js"
    target.write_text(_js_call("fsdocsData", data), encoding="utf-8")
    site.files.append(target)
    _write_sql(repo, out / "sql", sql_ids, dialects, cache, progress, site)

    site.entries = len(cat.entries)
    site.views = len(repo.views)
    site.features = sum(len(v.features) for v in repo.views.values())
    site.services = len(repo.services)
    return site


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out `{out}` is a file; give a folder", OUT_IS_FILE)
    if out.is_dir() and not (out / MARKER).exists() and any(out.iterdir()):
        raise UsageError(
            f"--out `{out}` is a folder with other files in it; `fsc docs` replaces what is in "
            "its folder, so give a new or empty one (or one it wrote before)",
            OUT_NOT_OURS,
        )


def _dialects(names: Iterable[str] | None) -> tuple[str, ...]:
    from fsdsl.compile import dialects

    if not names:
        return tuple(dialects.DIALECTS)
    chosen = tuple(dict.fromkeys(names))
    for name in chosen:
        dialects.get(name)  # an unknown name is a usage error (E0004), naming the known ones
    return chosen


def _js_call(function: str, *args: object) -> str:
    """A call of `function` with `args`: JSON is valid JavaScript, and `ensure_ascii` keeps the
    file free of characters an editor or a proxy could mangle."""
    text = ",".join(json.dumps(a, separators=(",", ":")) for a in args)
    return f"{function}({text});\n"


# ---- the data the pages show ------------------------------------------------------------------
def site_data(
    repo: ir.Repository,
    cat,
    project: str,
    dialects: tuple[str, ...],
    sql_ids: dict[str, str],
) -> dict:
    """The catalogue's entries plus what only a graph needs: which source columns a feature's
    own expression reads (the catalogue's `reads` are transitive, right for search and for
    `describe` but not for drawing one edge per step), which it reads only through its view's
    `where`, and whether it aggregates events itself."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        fsdsl_version = version("fsdsl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        fsdsl_version = "unknown"
    entries = []
    for e in cat.entries:
        d = {k: v for k, v in e.to_dict().items() if v not in (None, [], "")}
        if e.kind == "view" and e.name in sql_ids:
            d["sql"] = sql_ids[e.name]
        entries.append(d)
    graph: dict[str, dict] = {}
    for v in repo.views.values():
        prefix = f"{v.source.name}."
        where = _columns(v.where) if v.where is not None else []
        for f in v.features:
            nodes = list(ir.walk(f.expr))
            direct = _columns(f.expr)
            aggregates = any(isinstance(n, ir.Aggregate) for n in nodes)
            info: dict[str, object] = {}
            if direct:
                info["cols"] = [prefix + c for c in direct]
            if aggregates and where:
                info["filter"] = [prefix + c for c in where if c not in direct]
            graph[f"{v.name}.{f.name}"] = info
    return {
        "project": project,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "version": fsdsl_version,
        "dialects": list(dialects),
        "entries": entries,
        "graph": graph,
    }


def _columns(expr: ir.Expr) -> list[str]:
    return list(dict.fromkeys(n.name for n in ir.walk(expr) if isinstance(n, ir.Column)))


# ---- SQL, cached and printed in parallel --------------------------------------------------------
MANIFEST = "manifest.json"  # in sql/: each file's key and size, so an unchanged one is kept


def _sql_id(view: str) -> str:
    """The name of a view's SQL file (and its id in data.js): the view's name, which a person
    can find in the folder, and a digest of it, since two views may differ only in case and a
    case-insensitive file system would give them one file."""
    return f"{view}.{hashlib.sha256(view.encode()).hexdigest()[:8]}"


def _write_sql(
    repo: ir.Repository,
    folder: Path,
    sql_ids: dict[str, str],
    dialects: tuple[str, ...],
    cache: Path | None,
    progress: Progress | None,
    site: Site,
) -> None:
    """`sql/<id>.js` for each view. A file whose key (that of its texts, in the order of the
    dialects asked for) and size are those the manifest recorded is left as it is: a rebuild of
    a large repository rewrites only the views that changed. Files of views gone are removed."""
    if not dialects:
        if folder.is_dir():
            shutil.rmtree(folder)
        return
    folder.mkdir(exist_ok=True)
    keys = _keys(repo, dialects)
    try:
        before = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        before = before if isinstance(before, dict) else {}
    except (OSError, ValueError):
        before = {}
    manifest: dict[str, dict] = {}
    stale: list[str] = []
    for name, sql_id in sql_ids.items():
        key = hashlib.sha256("\n".join(keys[(name, d)] for d in dialects).encode()).hexdigest()
        manifest[sql_id] = {"key": key}
        was = before.get(sql_id)
        try:
            size = (folder / f"{sql_id}.js").stat().st_size
        except OSError:
            size = None
        if isinstance(was, dict) and was.get("key") == key and was.get("size") == size:
            manifest[sql_id]["size"] = size
            site.sql_kept += len(dialects)
        else:
            stale.append(name)
    texts, site.sql_printed, site.sql_cached = view_sql(
        repo, dialects, cache, progress, stale, keys
    )
    for name in stale:
        target = folder / f"{sql_ids[name]}.js"
        body = _js_call("fsdocsSql", sql_ids[name], texts[name])
        target.write_text(body, encoding="utf-8")
        manifest[sql_ids[name]]["size"] = target.stat().st_size
    wanted = {f"{i}.js" for i in manifest} | {MANIFEST}
    for file in folder.iterdir():
        if file.name not in wanted:
            shutil.rmtree(file) if file.is_dir() else file.unlink()
    (folder / MANIFEST).write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")


def view_sql(
    repo: ir.Repository,
    dialects: tuple[str, ...],
    cache: Path | None,
    progress: Progress | None = None,
    views: Iterable[str] | None = None,
    keys: dict[tuple[str, str], str] | None = None,
) -> tuple[dict[str, dict[str, str]], int, int]:
    """The refresh query (pretty) of each of `views` (default: all) in each dialect: `({view:
    {dialect: text}}, printed, read from the cache)`."""
    from fsdsl.online import cache as stored

    names = list(repo.views) if views is None else list(views)
    keys = keys if keys is not None else _keys(repo, dialects)
    texts: dict[str, dict[str, str]] = {name: {} for name in names}
    missing: list[tuple[str, str]] = []
    for view, dialect in ((v, d) for v in names for d in dialects):
        key = keys[(view, dialect)]
        text = stored.read(_cache_file(cache, view, dialect, key), key) if cache else None
        if text is None:
            missing.append((view, dialect))
        else:
            texts[view][dialect] = text
    for done, (view, dialect, text) in enumerate(_print_all(repo, missing), start=1):
        if progress is not None:
            progress("printing SQL", done, len(missing))
        texts[view][dialect] = text
        if cache is not None:
            key = keys[(view, dialect)]
            stored.write(_cache_file(cache, view, dialect, key), key, text)
    # dialects in the order asked for, whichever way each text came
    ordered = {v: {d: texts[v][d] for d in dialects} for v in names}
    return ordered, len(missing), len(names) * len(dialects) - len(missing)


def _keys(repo: ir.Repository, dialects: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """The cache key of each (view, dialect): `fsc run`'s compile key (`refresh._compile_key`),
    with the view's text hashed once for all dialects and a tag for the pretty form."""
    from fsdsl.compile.version import compiler_version, dialect_class

    compiler = compiler_version()
    classes = {d: dialect_class(d) for d in dialects}
    out = {}
    for name, view in repo.views.items():
        body = hashlib.sha256(repr(view).encode()).hexdigest()
        for d in dialects:
            text = f"docs pretty\n{body}\n{d}\n{classes[d]}\n{compiler}"
            out[(name, d)] = hashlib.sha256(text.encode()).hexdigest()
    return out


def _cache_file(cache: Path, view: str, dialect: str, key: str) -> Path:
    return cache / f"{view}.{dialect}.{key[:20]}.sql"


# The repository a forked worker prints from: inherited with the process, never pickled.
_REPO: ir.Repository | None = None


def _print_some(pairs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    from fsdsl.compile.refresh import refresh_query
    from fsdsl.compile.render import sql_text

    assert _REPO is not None
    return [(v, d, sql_text(refresh_query(_REPO.views[v], d), d)) for v, d in pairs]


def _print_all(repo: ir.Repository, pairs: list[tuple[str, str]]) -> Iterable[tuple[str, str, str]]:
    global _REPO
    _REPO = repo
    try:
        workers = _workers(len(pairs))
        if workers <= 1:
            yield from _print_some(pairs)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # small tasks: the workers share the load evenly, and a worker orphaned by a killed
        # parent stops after the task or two queued for it, not after a share of the whole
        chunks = [pairs[i : i + _CHUNK] for i in range(0, len(pairs), _CHUNK)]
        # fork: the workers start with the repository and the compiler already loaded
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for done in pool.map(_print_some, chunks):
                yield from done
    finally:
        _REPO = None


def _workers(n: int) -> int:
    if n < _PARALLEL_FROM or os.name != "posix":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))
