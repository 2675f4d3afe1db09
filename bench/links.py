"""Online lookups through a link (issue #12): `fraud_by_device`, whose requests carry a device
that the online store resolves to its user (a link string per device: up to 16 keys one round
trip, the lookup script resolving in Redis; past that one MGET for the links, one pipeline for
the views), against `fraud_by_user`, the same features asked for by that user (one round
trip). Both from bench/resolution/, on the data of `generate.ensure_links` (devices of the
scale's users), refreshed into a Redis of its own as of 2024-06-01.

* `online_features` for 1 and for 100 keys: p50 and p99 of each service, alternating call by
  call (the order swaps every call) on the same keys: random devices linked at that time, and
  the users they resolve to. Before timing, the two services must serve the same values for
  every device (and the resolved users must be those of plain SQL, `generate.RESOLVE_SQL`).
* What bounds the ratio: raw redis-py doing the same reads, undecoded (the views' values by
  user, one MGET per view in one pipeline; the link strings by one MGET, then the views' values
  under the keys they name; all in one round trip by a Lua script that resolves in Redis), and
  a bare round trip (PING), in the same run.

    python bench/links.py --scale M --calls 2000 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import pstats
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import RESOLVE_SQL, ensure_links  # noqa: E402
from scales import DATA  # noqa: E402

SPEC = HERE / "resolution"
BY_DEVICE, BY_USER, LINK = "fraud_by_device", "fraud_by_user", "device_owner"
VIEWS = ["user_orders", "user_browsing", LINK]
AT = dt.datetime(2024, 6, 1)


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """A Redis of the benchmark's own, on a free port (other benchmarks may hold theirs)."""
    import redis

    from fsdsl.online.server import redis_binary

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        + ["no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return proc, f"redis://127.0.0.1:{port}/0"


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {
        "p50_ms": round(statistics.median(xs) * 1000, 4),
        "p99_ms": round(xs[int(len(xs) * 0.99) - 1] * 1000, 4),
    }


def resolved_at(db: Path, devices: list[str]) -> dict[str, str | None]:
    """Each device's user at AT by plain SQL (the training benchmark's own reference)."""
    import duckdb
    import pyarrow as pa

    labels = pa.table(
        {
            "device_id": devices,
            "event_timestamp": pa.array([AT] * len(devices), pa.timestamp("us")),
            "__row": pa.array(range(len(devices)), pa.int64()),
        }
    )
    with duckdb.connect(str(db), read_only=True) as con:
        con.register("labels", labels)
        rows = con.sql(RESOLVE_SQL).fetchall()
    return {r[0]: r[-1] for r in rows}


def check(store, db: Path) -> tuple[list[str], dict[str, str]]:
    """Every device of the links, looked up by device: the users must be plain SQL's, and the
    features those the user service serves for that user. Returns the linked devices and
    their users (the keys the lookups use)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        devices = [r[0] for r in con.sql("SELECT DISTINCT device_id FROM device_links").fetchall()]
    devices.sort()
    want = resolved_at(db, devices)
    owner: dict[str, str] = {}
    bad = 0
    features = None
    for i in range(0, len(devices), 1000):
        chunk = devices[i : i + 1000]
        got = store.online_features(BY_DEVICE, [{"device_id": d} for d in chunk])
        linked = [(d, r) for d, r in zip(chunk, got, strict=True) if r["user_id"] is not None]
        by_user = store.online_features(BY_USER, [{"user_id": r["user_id"]} for _, r in linked])
        for d, r in zip(chunk, got, strict=True):
            bad += r["user_id"] != want[d]
        if features is None:
            features = [k for k in got[0] if k not in ("device_id", "user_id")]
        for (d, r), u in zip(linked, by_user, strict=True):
            owner[d] = r["user_id"]
            bad += any(r[f] != u[f] for f in features)
    if bad:
        raise SystemExit(f"{bad} device(s) served otherwise than their user: not timing")
    print(
        f"checked {len(devices):,} devices: {len(owner):,} linked at {AT}, users as plain SQL's,"
        f" features ({', '.join(features or [])}) equal to the user service's",
        file=sys.stderr,
    )
    return sorted(owner), owner


RESOLVE_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local link = redis.call('GET', key)
  local row = {link}
  local c = link and string.find(link, ':', 1, true)
  if c and c < #link then
    local id = string.sub(link, c + 1)
    for a = 1, #ARGV do row[#row + 1] = redis.call('GET', ARGV[a] .. id) end
  end
  out[i] = row
end
return out
"""
"""One round trip for a lookup through a link, the resolution done in Redis: each device's
link string, then (when linked) the views' values of its user, all returned, unchecked: the
bare cost of what fsc's lookup script does."""


def latency(store, url: str, devices: list[str], owner: dict[str, str], n: int, calls: int):
    """The two services alternating (order swapped every call), plus raw redis-py reads of the
    same hashes: one pipeline (the user service's reads), two (the device service's)."""
    import redis

    from fsdsl.online.store import PREFIX

    online = store.online()
    ns = {v: online.state(v)["ns"] for v in VIEWS}
    raw = redis.Redis.from_url(url)
    rnd = random.Random(n)
    times: dict[str, list[float]] = {
        k: [] for k in ("device", "user", "raw1", "raw2", "raw_lua", "ping")
    }
    resolve = raw.register_script(RESOLVE_LUA)
    prefixes = [f"{PREFIX}:v:{ns[v]}:" for v in ("user_orders", "user_browsing")]

    def hkey(view: str, key: str) -> str:
        return f'{PREFIX}:v:{ns[view]}:["{key}"]'

    def link_key(key: str) -> str:
        return f'{PREFIX}:r:{ns[LINK]}:["{key}"]'

    for call in range(calls):
        ds = [rnd.choice(devices) for _ in range(n)]
        by_device = [{"device_id": d} for d in ds]
        by_user = [{"user_id": owner[d]} for d in ds]
        order = ("device", "user") if call % 2 else ("user", "device")
        for which in order:
            t0 = time.perf_counter()
            if which == "device":
                store.online_features(BY_DEVICE, by_device)
            else:
                store.online_features(BY_USER, by_user)
            times[which].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pipe = raw.pipeline(transaction=False)
        for view in ("user_orders", "user_browsing"):
            pipe.mget([hkey(view, owner[d]) for d in ds])
        pipe.execute()
        times["raw1"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        links = raw.mget([link_key(d) for d in ds])
        users = [v.partition(b":")[2].decode() for v in links]  # the target's key text
        pipe = raw.pipeline(transaction=False)
        for view in ("user_orders", "user_browsing"):
            pipe.mget([f"{PREFIX}:v:{ns[view]}:{u}" for u in users])
        pipe.execute()
        times["raw2"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        resolve(keys=[link_key(d) for d in ds], args=prefixes)
        times["raw_lua"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        raw.ping()
        times["ping"].append(time.perf_counter() - t0)
    out = {k: summary(v) for k, v in times.items()}
    for a, b in (("device", "user"), ("raw2", "raw1"), ("raw_lua", "raw1")):
        out[f"{a}/{b}"] = {
            "p50": round(out[a]["p50_ms"] / out[b]["p50_ms"], 3),
            "p99": round(out[a]["p99_ms"] / out[b]["p99_ms"], 3),
        }
    # what the device service adds to a call, against what a second round trip costs raw
    out["added_p50_ms"] = round(out["device"]["p50_ms"] - out["user"]["p50_ms"], 4)
    out["raw_added_p50_ms"] = round(out["raw2"]["p50_ms"] - out["raw1"]["p50_ms"], 4)
    return out


def profile(store, devices: list[str], owner: dict[str, str], n: int, calls: int) -> str:
    """cProfile of the device service's lookups, then the user service's (same keys)."""
    rnd = random.Random(7)
    batches = [[rnd.choice(devices) for _ in range(n)] for _ in range(calls)]
    report = io.StringIO()
    for service, key in ((BY_DEVICE, "device_id"), (BY_USER, "user_id")):
        prof = cProfile.Profile()
        prof.enable()
        for ds in batches:
            keys = [{key: d if key == "device_id" else owner[d]} for d in ds]
            store.online_features(service, keys)
        prof.disable()
        report.write(f"--- {service}, {calls} calls of {n} key(s)\n")
        pstats.Stats(prof, stream=report).sort_stats("tottime").print_stats(14)
    return report.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="M", choices=["XS", "S", "M", "L"])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--profile", action="store_true", help="print a cProfile of the lookups")
    args = p.parse_args()
    db, _, _ = ensure_links(args.scale)
    work = Path(tempfile.mkdtemp(prefix="fsdsl-bench-links-"))
    copy = work / "wh.duckdb"
    shutil.copy(db, copy)
    proc, url = start_redis(work)
    results: dict = {"scale": args.scale, "calls": args.calls, "at": AT.isoformat()}
    try:
        from fsdsl import FeatureStore

        with FeatureStore(SPEC, warehouse=f"duckdb:///{copy}", online=url) as store:
            t0 = time.perf_counter()
            runs = store.run(AT, views=VIEWS, full=True)
            results["refresh_seconds"] = round(time.perf_counter() - t0, 2)
            results["entities_written"] = {r.view: r.entities_written for r in runs}
            devices, owner = check(store, db)  # the original: the copy is the store's
            results["linked_devices"] = len(devices)
            for n in (1, 100):
                results[f"lookup_{n}"] = latency(store, url, devices, owner, n, args.calls)
            if args.profile:
                print(profile(store, devices, owner, 100, min(args.calls, 500)), file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    (DATA / f"results_links_online_{args.scale.lower()}.json").write_text(
        json.dumps(results, indent=2)
    )


if __name__ == "__main__":
    main()
