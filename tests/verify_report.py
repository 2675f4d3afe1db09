"""What a passing `fsc verify` must show besides its exit code (test helper)."""

from __future__ import annotations

import json

from fsdsl.verify import UNSEEN


def assert_verified(result, views: set[str], sampled: int = 1) -> dict:
    """`result` of `fsc verify ... -f json`: passed, and passed by comparing stored values.

    Exit 0 alone also holds when the sample found no stored key (a wrong namespace, a broken
    scan): verify then compares only its UNSEEN never-seen keys, which an empty store serves
    correctly. So every feature of each view in `views` must have been compared for at least
    `sampled` stored keys besides those.
    """
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mismatches"] == 0, report
    assert not report["stale"] and not report["skipped"], report
    compared: dict[str, list[int]] = {}
    for feature in report["features"]:
        compared.setdefault(feature["view"], []).append(feature["compared"])
    assert set(compared) == views, f"verified {sorted(compared)}, expected {sorted(views)}"
    assert all(n >= UNSEEN + sampled for ns in compared.values() for n in ns), (
        f"fewer than {sampled} stored key(s) compared besides the {UNSEEN} never-seen ones: "
        f"{compared}"
    )
    return report
