"""Generate the seeded benchmark data of one scale: users, orders (skewed activity), labels.

python bench/generate.py --scale S
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scales import DATA, SCALES, paths  # noqa: E402

from fsdsl.demo import generate  # noqa: E402


def ensure(scale: str, force: bool = False, seed: int = 7) -> tuple[Path, Path]:
    db, labels = paths(scale)
    if db.exists() and labels.exists() and not force:
        return db, labels
    DATA.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    users, events, n_labels = SCALES[scale]
    from rich.progress import Progress

    started = time.perf_counter()
    with Progress(transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{scale}: {stage}", total=total)
            bar.update(tasks[stage], completed=done)

        counts = generate(
            db,
            users=users,
            orders=events,
            page_views=1000,
            labels=n_labels,
            seed=seed,
            labels_path=labels,
            progress=progress,
        )
    print(f"generated scale {scale} in {time.perf_counter() - started:.1f}s: {counts}")
    return db, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=list(SCALES), default="S")
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args()
    ensure(args.scale, args.force)


if __name__ == "__main__":
    main()
