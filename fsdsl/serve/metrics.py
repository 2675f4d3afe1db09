"""Prometheus counters shared by every worker of one `fsc serve`, without a lock or a server.

Each worker process owns one small file of doubles (`<dir>/<pid>.bin`, memory-mapped) and only
ever writes its own; a scrape, whichever worker it reaches, adds up every file in the folder.
So `/metrics` tells the whole server's story, the cost of counting a request is a few stores
into memory, and a worker that dies leaves its counts behind (counters never go backwards).
The layout is fixed (endpoints, status codes and buckets known up front), so a file is an array
indexed by position; an aligned 8-byte store is atomic on every platform fsc runs on.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

ENDPOINTS = (
    "/get-online-features",
    "/push",
    "/reload",
    "/health",
    "/metrics",
    "/openapi.json",
    "/docs",
    "other",
)
# Each status the server answers with, then one bucket per class for anything else.
STATUSES = (200, 400, 401, 403, 404, 405, 413, 415, 422, 500, 503, "2xx", "4xx", "5xx")
# Seconds. Fine at the low end, where a lookup lives (the targets are 2 to 12 ms).
LATENCY = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
# Seconds between a served row's `_as_of` and the moment it was served.
LAG = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0, 604800.0)
COUNTERS = (
    "entities_served",
    "rows_pushed",
    "reloads",
    "reloads_refused",
    "online_unreachable",
    "corrupt_reads",
)
GAUGES = ("in_flight",)

# Offsets into the array of one worker.
_PER_ENDPOINT = len(STATUSES) + len(LATENCY) + 1 + 2  # counts, buckets (+Inf), sum, count
_LAG_AT = len(ENDPOINTS) * _PER_ENDPOINT
_COUNTERS_AT = _LAG_AT + len(LAG) + 1 + 2
_GAUGES_AT = _COUNTERS_AT + len(COUNTERS)
_LAST_SERVED_AT = _GAUGES_AT + len(GAUGES)  # epoch seconds of the newest `_as_of` served
SIZE = _LAST_SERVED_AT + 1
_STATUS_INDEX = {s: i for i, s in enumerate(STATUSES)}
for _code in range(100, 600):
    _STATUS_INDEX.setdefault(_code, STATUSES.index({4: "4xx", 5: "5xx"}.get(_code // 100, "2xx")))
_ENDPOINT_INDEX = {e: i for i, e in enumerate(ENDPOINTS)}


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


class Metrics:
    """This worker's counters: `observe` per request, `add`/`gauge` for the rest."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        path = self.folder / f"{os.getpid()}.bin"
        with open(path, "a+b") as f:
            f.truncate(SIZE * 8)
            self._map = mmap.mmap(f.fileno(), SIZE * 8)
        self._values = memoryview(self._map).cast("d")

    def endpoint(self, path: str) -> int:
        return _ENDPOINT_INDEX.get(path, _ENDPOINT_INDEX["other"])

    def observe(self, endpoint: int, status: int, seconds: float) -> None:
        v = self._values
        base = endpoint * _PER_ENDPOINT
        v[base + _STATUS_INDEX.get(status, len(STATUSES) - 1)] += 1  # beyond 599: "5xx"
        at = base + len(STATUSES)
        v[at + _bucket(LATENCY, seconds)] += 1
        at += len(LATENCY) + 1
        v[at] += seconds
        v[at + 1] += 1

    def served(self, as_of_epoch: float, now: float) -> None:
        """One response served rows as of `as_of_epoch`: the lag histogram, the newest time."""
        v = self._values
        v[_LAG_AT + _bucket(LAG, max(0.0, now - as_of_epoch))] += 1
        v[_LAG_AT + len(LAG) + 1] += now - as_of_epoch
        v[_LAG_AT + len(LAG) + 2] += 1
        if as_of_epoch > v[_LAST_SERVED_AT]:
            v[_LAST_SERVED_AT] = as_of_epoch

    def add(self, counter: str, n: float = 1) -> None:
        self._values[_COUNTERS_AT + COUNTERS.index(counter)] += n

    def gauge_add(self, gauge: str, n: float) -> None:
        self._values[_GAUGES_AT + GAUGES.index(gauge)] += n

    def close(self) -> None:
        self._values.release()
        self._map.close()


def _totals(folder: Path) -> tuple[list[float], float]:
    """Every worker's array added up; the newest served `_as_of` is a maximum, not a sum."""
    total = [0.0] * SIZE
    newest = 0.0
    for file in folder.glob("*.bin"):
        try:
            data = memoryview(file.read_bytes()).cast("d")
        except (OSError, TypeError):
            continue  # a file being created: counted at the next scrape
        if len(data) != SIZE:
            continue
        for i, x in enumerate(data):
            total[i] += x
        newest = max(newest, data[_LAST_SERVED_AT])
    return total, newest


def _histogram(out: list[str], name: str, labels: str, bounds, values, at: int) -> None:
    running = 0.0
    sep = "," if labels else ""
    for i, bound in enumerate(bounds):
        running += values[at + i]
        out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running:g}')
    running += values[at + len(bounds)]
    out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {running:g}')
    label_part = f"{{{labels}}}" if labels else ""
    out.append(f"{name}_sum{label_part} {values[at + len(bounds) + 1]:.6f}")
    out.append(f"{name}_count{label_part} {values[at + len(bounds) + 2]:g}")


def render(folder: str | Path, extra: dict[str, tuple[str, str, list[tuple[str, float]]]]) -> str:
    """The Prometheus text exposition (version 0.0.4) of every worker's counters, plus `extra`:
    {name: (type, help, [(labels, value)])}, measured by the worker answering the scrape."""
    values, newest = _totals(Path(folder))
    out: list[str] = []
    out.append("# HELP fsc_serve_requests_total HTTP requests answered, by endpoint and status.")
    out.append("# TYPE fsc_serve_requests_total counter")
    for e, endpoint in enumerate(ENDPOINTS):
        base = e * _PER_ENDPOINT
        for s, status in enumerate(STATUSES):
            if values[base + s]:
                code = str(status)
                out.append(
                    f'fsc_serve_requests_total{{endpoint="{endpoint}",status="{code}"}} '
                    f"{values[base + s]:g}"
                )
    out.append("# HELP fsc_serve_errors_total Requests answered with a 4xx or 5xx status.")
    out.append("# TYPE fsc_serve_errors_total counter")
    for e, endpoint in enumerate(ENDPOINTS):
        base = e * _PER_ENDPOINT
        for kind in ("4xx", "5xx"):
            n = sum(
                values[base + s] for s, status in enumerate(STATUSES) if str(status)[0] == kind[0]
            )
            if n:
                out.append(f'fsc_serve_errors_total{{endpoint="{endpoint}",kind="{kind}"}} {n:g}')
    out.append("# HELP fsc_serve_request_seconds Time from request to response, by endpoint.")
    out.append("# TYPE fsc_serve_request_seconds histogram")
    for e, endpoint in enumerate(ENDPOINTS):
        base = e * _PER_ENDPOINT + len(STATUSES)
        if values[base + len(LATENCY) + 2]:
            _histogram(
                out,
                "fsc_serve_request_seconds",
                f'endpoint="{endpoint}"',
                LATENCY,
                values,
                base,
            )
    out.append(
        "# HELP fsc_serve_freshness_lag_seconds Age of the served values at the moment they "
        "were served (now - _as_of), one observation per response."
    )
    out.append("# TYPE fsc_serve_freshness_lag_seconds histogram")
    _histogram(out, "fsc_serve_freshness_lag_seconds", "", LAG, values, _LAG_AT)
    out.append(
        "# HELP fsc_serve_last_served_as_of_timestamp_seconds The newest _as_of served "
        "(Unix time); time() - this is the lag of the freshest response."
    )
    out.append("# TYPE fsc_serve_last_served_as_of_timestamp_seconds gauge")
    out.append(f"fsc_serve_last_served_as_of_timestamp_seconds {newest:.3f}")
    helps = {
        "entities_served": "Entity rows served.",
        "rows_pushed": "Rows accepted by /push.",
        "reloads": "Definition reloads that took effect (SIGHUP or POST /reload).",
        "reloads_refused": "Reloads refused for errors in the definitions (the old ones serve).",
        "online_unreachable": "Requests answered 503 because the online store was unreachable.",
        "corrupt_reads": "Stored entities whose checksum failed when read (served as missing).",
    }
    for i, name in enumerate(COUNTERS):
        out.append(f"# HELP fsc_serve_{name}_total {helps[name]}")
        out.append(f"# TYPE fsc_serve_{name}_total counter")
        out.append(f"fsc_serve_{name}_total {values[_COUNTERS_AT + i]:g}")
    out.append("# HELP fsc_serve_in_flight Requests being answered now, all workers.")
    out.append("# TYPE fsc_serve_in_flight gauge")
    out.append(f"fsc_serve_in_flight {values[_GAUGES_AT]:g}")
    for name, (kind, text, samples) in extra.items():
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{{{labels}}} {value:g}" if labels else f"{name} {value:g}")
    return "\n".join(out) + "\n"
