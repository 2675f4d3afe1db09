"""A generated large repository (issue #13's performance figures: 1,000 views x 4 features).

Each view reads one of a few sources, has a filter on some, a windowed aggregation, an
unwindowed one and a derived feature; every tenth view is served by a service, so that
lineage, `used_by` and search have something to find at scale.
"""

from __future__ import annotations

from pathlib import Path

WINDOWS = ("1h", "24h", "7d", "30d", "90d")


def write_large_repo(root: Path, views: int = 1000, per_file: int = 100) -> Path:
    """Write `views` views of 4 features each under `root/definitions` and return that folder."""
    out = root / "definitions"
    out.mkdir(parents=True, exist_ok=True)
    head = [
        'entity customer {\n  key customer_id: string\n  description "A customer"\n}\n',
    ]
    for s in range(4):
        head.append(
            f"source events_{s} {{\n"
            f'  table "events_{s}"\n'
            "  timestamp ts\n"
            f'  description "Event log number {s}"\n'
            "  columns {\n"
            "    customer_id: string\n"
            "    amount: float\n"
            "    quantity: int\n"
            "    channel: string\n"
            "    ts: timestamp\n"
            "  }\n}\n"
        )
    (out / "common.feat").write_text("\n".join(head))
    services: list[str] = []
    for first in range(0, views, per_file):
        blocks = []
        for i in range(first, min(views, first + per_file)):
            w = WINDOWS[i % len(WINDOWS)]
            where = "  where channel = 'web'\n" if i % 3 == 0 else ""
            blocks.append(
                f"features v{i:04d} {{\n"
                "  entity customer\n"
                f"  from events_{i % 4}\n"
                f"{where}"
                "  ttl 30d\n"
                f'  owner "team_{i % 7}"\n'
                f'  description "Generated view number {i}"\n'
                "\n"
                f"  total_{w}_{i} = sum(amount) over {w}\n"
                f"  count_{w}_{i} = count(*) over {w}\n"
                f"  last_quantity_{i} = last(quantity)\n"
                f"  mean_{w}_{i} = total_{w}_{i} / nullif(count_{w}_{i}, 0)\n"
                "}\n"
            )
            if i % 10 == 0:
                services.append(
                    f"service s{i:04d} {{\n"
                    f'  description "Generated service {i}"\n'
                    f"  features v{i:04d}.*\n}}\n"
                )
        (out / f"views_{first:04d}.feat").write_text("\n".join(blocks))
    (out / "services.feat").write_text("\n".join(services))
    return out
