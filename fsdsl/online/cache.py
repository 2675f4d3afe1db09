"""Compiled refresh queries kept on disk (`.fsc/cache`), never trusted blindly.

A cached text is run against the warehouse and decides the values served, so a file that was
truncated (a full disk, a crash before the rename of an older version), garbled or edited by
hand must never be used: each entry carries a digest of its key and its text, and anything
that does not check out — a wrong digest, a wrong key, bytes that are not UTF-8, a file that
cannot be read — is a miss, recompiled and rewritten. The digest guards against accidents, not
against someone who recomputes it: `fsc verify` therefore never reads this cache, and checks a
store by its values (the training query's, on keys drawn from the store and the warehouse).

An entry's key (`refresh._compile_key`) covers the view, the dialect, the compiler's source and
sqlglot's version, so any of them changing recompiles the text. None of that is the view's
online fingerprint (`fingerprint.py`): a new text computing the same values keeps the store.

Entry layout: one header line `fsdsl-cache 1 <sha256 hex>` then the text, where the digest is
sha256 over `key`, a NUL and the text's UTF-8 bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

_MAGIC = b"fsdsl-cache 1 "


def digest(key: str, text: bytes) -> str:
    return hashlib.sha256(key.encode() + b"\0" + text).hexdigest()


def read(file: Path, key: str) -> str | None:
    """The text stored under `key` in `file`, or None unless it is exactly what was written."""
    try:
        raw = file.read_bytes()
    except OSError:
        return None
    header, newline, body = raw.partition(b"\n")
    if not newline or not header.startswith(_MAGIC):
        return None
    if header[len(_MAGIC) :].decode("ascii", "replace") != digest(key, body):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:  # cannot happen with a matching digest; cheap to be sure
        return None


def write(file: Path, key: str, text: str) -> None:
    """Store `text` under `key`, atomically (a reader sees the old entry or the new one, never
    a part); a folder that cannot be written to is left alone, the caller compiles each time."""
    body = text.encode("utf-8")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(f"{file.name}.{uuid.uuid4().hex}.partial")
        try:
            partial.write_bytes(_MAGIC + digest(key, body).encode() + b"\n" + body)
            partial.replace(file)
        finally:
            partial.unlink(missing_ok=True)
    except OSError:
        pass
