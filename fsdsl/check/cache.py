"""The checked model of a repository kept between processes (`.fsc/cache`), keyed by its bytes.

Importing lark and the checker and parsing the `.feat` files is a fixed cost of every command
that loads a repository (about a tenth of a second here, more than the rest of a short `fsc
run` besides its query). When nothing it was made from has changed, the model (`ir.Repository`
and its warnings) is read back instead, and neither lark nor the checker is imported.

What it was made from is the key: the path as given (the model's spans name files by it), each
`.feat` file's name and bytes, the source of the whole package and of lark (a new parser or
checker is a miss), and the Python version. Like the compile cache (`online/cache.py`), an entry
is never trusted blindly:

* its header carries a SHA-256 of the key and the body: a truncated, garbled or edited entry, or
  one written for other files, is a miss, rebuilt and rewritten;
* the body is a pickle read by an unpickler that can build the classes of `fsdsl.ir` and
  `fsdsl.diagnostics` and nothing else, so even an entry forged with a valid digest can only
  describe a model, never run code;
* only a model without errors is kept: errors are always reported from the files themselves.

The digest guards against accidents, not against someone who recomputes it. `fsc lint` and
`fsc verify` therefore never read this cache: lint reports what the files say, and verify
compares what is served with the definitions as written, so a run made from a forged model is
found (its fingerprint is not the definition's).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import io
import pickle
import sys
import uuid
from pathlib import Path

from fsdsl import ir
from fsdsl.diagnostics import Diagnostic

_MAGIC = b"fsdsl-repo 1 "
# The modules whose classes a cached model may hold (it holds no other object than builtins).
_MODEL_MODULES = ("fsdsl.ir", "fsdsl.diagnostics")

Loaded = tuple[ir.Repository | None, list[Diagnostic]]


def load_repository(path: str | Path, folder: Path | None = None) -> Loaded:
    """`fsdsl.check.load_repository(path)`, read from `folder` (default: the project's
    `.fsc/cache`) when an entry for exactly these files exists, else computed and kept there."""
    path = Path(path)
    key = _key(path)
    if key is None:  # no such path, no files, a file that cannot be read: the loader says so
        return _load(path)
    if folder is None:
        from fsdsl.project import project_root

        folder = project_root(path) / ".fsc" / "cache"
    name = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:16]
    file = folder / f"repo.{name}.bin"
    found = _read(file, key)
    if found is not None:
        return found
    repo, diags = _load(path)
    # kept only if the files did not change while they were read (the key is of their bytes)
    if repo is not None and _key(path) == key:
        _write(file, key, (repo, diags))
    return repo, diags


def _load(path: Path) -> Loaded:
    from fsdsl.check.load import load_repository as load

    return load(path)


def _key(path: Path) -> str | None:
    from fsdsl.project import feat_files

    try:
        if not path.exists():
            return None
        files = feat_files(path)
        h = hashlib.sha256(
            f"{_code_version()}\n{sys.version_info[:3]}\n{path}\n{len(files)}\n".encode()
        )
        for f in files:
            data = f.read_bytes()
            h.update(f"{f}\0{len(data)}\0".encode())
            h.update(data)
    except OSError:
        return None
    return h.hexdigest()


@functools.cache
def _code_version() -> str:
    """The package's source (parser, checker, the model's classes and anything they use) and
    lark's version file, read once per process; lark is found, not imported."""
    here = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(here.rglob("*.py")) + sorted((here / "grammar").glob("*.lark")):
        h.update(f"{f.relative_to(here)}\0".encode())
        h.update(f.read_bytes())
    spec = importlib.util.find_spec("lark")
    h.update(Path(spec.origin).read_bytes() if spec and spec.origin else b"no lark")
    return h.hexdigest()


class _ModelUnpickler(pickle.Unpickler):
    """Builds the classes of the model and nothing else: no function, no other class."""

    def find_class(self, module: str, name: str) -> type:
        if module in _MODEL_MODULES:
            found = getattr(importlib.import_module(module), name, None)
            if (
                isinstance(found, type)
                and found.__module__ == module
                and not issubclass(found, BaseException)
            ):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not a class of the checked model")


def _decode(body: bytes) -> Loaded | None:
    try:
        value = _ModelUnpickler(io.BytesIO(body)).load()
    except Exception:  # any malformed body is a miss, never an error of the command
        return None
    if not (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], ir.Repository)
        and isinstance(value[1], list)
        and all(isinstance(d, Diagnostic) for d in value[1])
    ):
        return None
    return value[0], value[1]


def _digest(key: str, body: bytes) -> bytes:
    return hashlib.sha256(key.encode() + b"\0" + body).hexdigest().encode()


def _read(file: Path, key: str) -> Loaded | None:
    try:
        raw = file.read_bytes()
    except OSError:
        return None
    header, newline, body = raw.partition(b"\n")
    if not newline or not header.startswith(_MAGIC) or header[len(_MAGIC) :] != _digest(key, body):
        return None
    return _decode(body)


def _write(file: Path, key: str, value: Loaded) -> None:
    """Atomically (a reader sees the old entry or the new one); a model the restricted
    unpickler could not read back, or a folder that cannot be written to, is not kept."""
    try:
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return
    if _decode(body) is None:
        return
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(f"{file.name}.{uuid.uuid4().hex}.partial")
        try:
            partial.write_bytes(_MAGIC + _digest(key, body) + b"\n" + body)
            partial.replace(file)
        finally:
            partial.unlink(missing_ok=True)
    except OSError:
        pass
