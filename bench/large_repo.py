"""A large, valid feature repository for timing `fsc lint`, `fsc fmt --check` and the catalogue.

python bench/large_repo.py OUT [--views 1000] [--features 4] [--per-file 20] [--time 5]

With `--time N` it then runs `fsc lint OUT` and `fsc fmt --check OUT` N times each and prints
the best wall-clock and CPU (user + system) time of each whole process: on a busy machine the
CPU time is the steadier figure.

The repository looks like a real one grown over time: a handful of entities and sources, views
spread over files by team, each with comments, an owner, a description, a filter of its own and
windowed, unwindowed and derived features, plus services picking features from many views. Every
feature is distinct (each view filters on its own value), so `fsc lint` finds nothing to report,
and the files are already in `fsc fmt`'s layout, so `fmt --check` changes nothing: both time the
whole work on a clean repository, the common case in CI. The output is a pure function of the
arguments.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

TEAMS = ("growth", "payments", "search", "risk", "ads", "support", "logistics", "content")
# (source, table, key column, amount column, category column); every source has the same shape
SOURCES = (
    ("orders", "shop.orders", "user_id", "amount", "status"),
    ("payments", "billing.payments", "payer_id", "value", "method"),
    ("page_views", "web.page_views", "visitor_id", "dwell_seconds", "category"),
    ("searches", "web.searches", "visitor_id", "latency_ms", "query_kind"),
    ("tickets", "support.tickets", "customer_id", "minutes_open", "priority"),
    ("shipments", "logistics.shipments", "customer_id", "weight_kg", "carrier"),
)
WINDOWS = ("1h", "24h", "7d", "14d", "30d", "90d")


def _features(i: int, amount: str, category: str, n: int) -> list[str]:
    """`n` features of view `i`: windowed aggregations, an unwindowed one, then derived ones."""
    w1, w2 = WINDOWS[i % len(WINDOWS)], WINDOWS[(i + 2) % len(WINDOWS)]
    pool = [
        f"events_{w1} = count(*) over {w1}",
        f"total_{w2} = sum({amount}) over {w2}",
        f"last_{category} = last({category})",
        f"per_event_{w2} = total_{w2} / nullif(events_{w1}, 0)",
        f"max_{amount}_{w2} = max({amount}) over {w2}",
        f"kinds_{w1} = count_distinct(lower({category})) over {w1}",
        f"recent_{amount} = last_k({amount}, 3)",
        f"mean_{amount}_{w1} = avg({amount}) over {w1}",
    ]
    out = pool[:n]
    for j in range(len(pool), n):  # more than the pool: plain counts over growing windows
        out.append(f"events_{j}h = count(*) over {j}h")
    return out


def view_text(i: int, features: int) -> str:
    name, _, key, amount, category = SOURCES[i % len(SOURCES)]
    team = TEAMS[i % len(TEAMS)]
    body = "\n".join(f"  {f}" for f in _features(i, amount, category, features))
    return (
        f"# View {i}: {team}'s signals from {name}, segment {i}.\n"
        f"features v{i:04d}_{name} {{\n"
        f"  entity customer by {key}\n"
        f"  from {name}\n"
        f"  where {amount} >= {i} and {category} is not null  # segment {i}\n"
        f"  ttl {30 + i % 60}d\n"
        f'  owner "{team}"\n'
        f'  description "Segment {i} of {name}, maintained by {team}"\n'
        f"\n{body}\n"
        "}\n"
    )


def common_text() -> str:
    parts = [
        "# Shared declarations: the customer and the event logs every view reads.\n",
        "entity customer {\n"
        "  key customer_id: string\n"
        '  description "A customer, whatever system they came from"\n'
        "}\n",
    ]
    for name, table, key, amount, category in SOURCES:
        parts.append(
            f"\nsource {name} {{\n"
            f'  table "{table}"\n'
            "  timestamp event_time\n"
            "  created loaded_at\n"
            f'  description "Events of {table}"\n'
            "  columns {\n"
            "    event_id: string\n"
            f"    {key}: string\n"
            f"    {amount}: float\n"
            f"    {category}: string\n"
            "    event_time: timestamp\n"
            "    loaded_at: timestamp\n"
            "  }\n"
            "}\n"
        )
    return "".join(parts)


def services_text(views: int) -> str:
    """One service per team serving one of its views whole (two views of one source share
    feature names, which one service cannot serve together)."""
    parts = []
    for t, team in enumerate(TEAMS[: min(views, len(TEAMS))]):
        name = SOURCES[t % len(SOURCES)][0]
        parts.append(
            f"service {team}_model {{\n"
            f'  description "What {team} serves"\n'
            f"  features v{t:04d}_{name}.*\n"
            "}\n"
        )
    return "\n".join(parts)


def write(out: Path, views: int = 1000, features: int = 4, per_file: int = 20) -> list[Path]:
    """Write the repository under `out` (created); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "common.feat"]
    files[0].write_text(common_text(), encoding="utf-8")
    for start in range(0, views, per_file):
        team = TEAMS[(start // per_file) % len(TEAMS)]
        f = out / team / f"views_{start // per_file:03d}.feat"
        f.parent.mkdir(exist_ok=True)
        stop = min(views, start + per_file)
        f.write_text("\n".join(view_text(i, features) for i in range(start, stop)), "utf-8")
        files.append(f)
    svc = out / "services.feat"
    svc.write_text(services_text(views), encoding="utf-8")
    files.append(svc)
    return files


def timed(args: list[str], runs: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of `runs` runs of a command (output discarded)."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


def fsc() -> list[str]:
    """The `fsc` next to this interpreter, else the module: the same code either way."""
    found = shutil.which("fsc", path=os.path.dirname(sys.executable)) or shutil.which("fsc")
    return [found] if found else [sys.executable, "-m", "fsdsl.cli"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--views", type=int, default=1000)
    ap.add_argument("--features", type=int, default=4)
    ap.add_argument("--per-file", type=int, default=20)
    ap.add_argument("--time", type=int, default=0, metavar="N", help="time N runs of each")
    args = ap.parse_args()
    files = write(args.out, args.views, args.features, args.per_file)
    print(f"{len(files)} files, {args.views} views x {args.features} features in {args.out}")
    for what in (["lint"], ["fmt", "--check"]):
        if args.time:
            wall, cpu = timed([*fsc(), *what, str(args.out)], args.time)
            print(f"fsc {' '.join(what)}: best of {args.time}: {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
