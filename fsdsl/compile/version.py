"""What the compiler's output depends on besides the IR: the class that prints each dialect and
the compiler's own version. They key the compile cache of `fsc run` (`online/refresh.py`) and
the SQL texts `fsc docs` keeps (`docs_site`); neither imports sqlglot, so a cache hit does not.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path


def dialect_class(name: str) -> str:
    """The class that prints `name`, not only its name: a plug-in may register under a
    built-in's. Registering one imports `fsdsl.compile.dialects` (a backend plug-in's
    `Warehouse.dialect`, an entry point): until then `get(name)` is the built-in of that name,
    or the entry point so named, the same in every process, so the name stands for its class
    without importing sqlglot; a built-in reads the same once the module is loaded."""
    dialects = sys.modules.get("fsdsl.compile.dialects")
    if dialects is not None:
        cls = type(dialects.get(name))
        if cls.__module__ != dialects.__name__:
            return f"{cls.__module__}.{cls.__qualname__}"
    return f"{name}, as first loaded"


@functools.cache
def compiler_version() -> str:
    """sqlglot's version and a hash of the compiler's source: read once per process. It keys
    the compile cache only: a compiler change recompiles the text, but changes the fingerprint
    (a full refresh of every store) only through SEMANTICS_VERSION, when it changes values.
    sqlglot's version file is read, not imported (a cache hit needs no sqlglot)."""
    import importlib.util

    spec = importlib.util.find_spec("sqlglot")
    found = Path(spec.origin).with_name("_version.py") if spec and spec.origin else None
    if found is not None and found.is_file():
        h = hashlib.sha256(found.read_bytes())
    else:
        import sqlglot

        h = hashlib.sha256(sqlglot.__version__.encode())
    here = Path(__file__).resolve().parents[1]
    for module in sorted((here / "compile").glob("*.py")) + [here / "ir.py"]:
        h.update(module.read_bytes())
    return h.hexdigest()
