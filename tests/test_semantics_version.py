"""A change to the refresh SQL is a decision about the stores it filled.

The online fingerprint no longer hashes SQL text (fsdsl/online/fingerprint.py), so a compiler
change that alters stored values only reaches the stores through `SEMANTICS_VERSION`. This test
pins the refresh goldens of every dialect to that version: when they change, whoever changes
them says whether values change (bump the version: every store is recomputed in full) or not
(the same values in other SQL: only the pin moves). Either way it is said in the commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fsdsl.online.fingerprint import SEMANTICS_VERSION

GOLDEN = Path(__file__).parent / "golden"

# (SEMANTICS_VERSION, digest of every tests/golden/*/*.refresh.sql) as last decided
PINNED = (1, "26bd26907f270b49f0b3f881a2f99f155f4e73a26bce7d59052d116f4c769234")


def refresh_goldens_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(GOLDEN.glob("*/*.refresh.sql")):
        h.update(f.relative_to(GOLDEN).as_posix().encode())
        h.update(b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def test_refresh_sql_changes_only_with_a_semantics_decision():
    now = (SEMANTICS_VERSION, refresh_goldens_digest())
    assert now == PINNED, (
        "the refresh goldens changed (or SEMANTICS_VERSION did). If any stored value can "
        "change, bump SEMANTICS_VERSION in fsdsl/online/fingerprint.py; in both cases set "
        f"PINNED in {Path(__file__).name} to {now!r}"
    )


def test_the_pin_covers_every_dialect():
    dialects = {f.parent.name for f in GOLDEN.glob("*/*.refresh.sql")}
    assert len(dialects) == 8, dialects
