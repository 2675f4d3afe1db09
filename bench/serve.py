"""Benchmark `fsc serve` (issue #14): a bounded load generator on loopback, with the server,
Redis and the client on this machine, and the baselines in the same run.

* p50 / p95 / p99 at batch sizes 1, 10, 50 and 100 entities, at a fixed rate (open loop:
  each latency runs from the request's scheduled time, so a slow answer also delays what was
  due after it), for the example service `fraud_model` and a generated service of 50
  features over 5 views (`wide50`); the same keys, in the same order, through the in-process
  `store.online_features` and raw redis-py (one pipeline of an MGET per view, no decoding);
* the maximum sustained requests/s at 1 entity (closed loop, a few keep-alive connections
  from one client process), with `--workers 1` and `--workers 2`;
* with `--feast-venv PATH`: Feast's `feast serve`, from that virtual environment (this code
  never imports feast), on the same users and the same two features (`fraud_model`), values
  materialized from what fsc serves, the same requests at the same rate;
* with `--soak`: 60 s at 500 req/s against one server: errors and RSS growth.

    python bench/serve.py --scale M
    python bench/serve.py --scale M --feast-venv /tmp/feastvenv
    python bench/serve.py --scale M --soak
    python bench/serve.py --scale M --service wide50 --workers 2   # one service's series only
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate import ensure  # noqa: E402
from online import start_redis  # noqa: E402
from scales import DATA, SCALES  # noqa: E402

AT = dt.datetime(2024, 6, 1)  # inside the generated history (2024-01-01 + 180 days)
BATCHES = (1, 10, 50, 100)
SERVICES = ("fraud_model", "wide50")
WIDE_VIEWS = 5


def wide_feat() -> str:
    """5 views of 10 features over `orders` (each its own filter and windows): 50 features."""
    filters = [
        "status = 'completed'",
        "amount > 0",
        "amount > 50",
        "status <> 'cancelled'",
        "amount <= 50",
    ]
    out = []
    for i, where in enumerate(filters, 1):
        short, long = (1, 7, 14, 3, 2)[i - 1], (30, 60, 90, 45, 21)[i - 1]
        out.append(
            textwrap.dedent(f"""
            features wide_{i} {{
              entity user
              from orders
              where {where}
              ttl 120d

              w{i}_count_{short}d = count(*) over {short}d
              w{i}_count_{long}d = count(*) over {long}d
              w{i}_sum_{short}d = sum(amount) over {short}d
              w{i}_sum_{long}d = sum(amount) over {long}d
              w{i}_avg_{long}d = avg(amount) over {long}d
              w{i}_min_{long}d = min(amount) over {long}d
              w{i}_max_{long}d = max(amount) over {long}d
              w{i}_last = last(amount)
              w{i}_first_{long}d = first(amount) over {long}d
              w{i}_ratio_{long}d = w{i}_sum_{long}d / nullif(w{i}_count_{long}d, 0)
            }}
            """)
        )
    views = ", ".join(f"wide_{i}.*" for i in range(1, WIDE_VIEWS + 1))
    out.append(f"service wide50 {{\n  features {views}\n}}\n")
    return "\n".join(out)


def project(work: Path, db: Path) -> Path:
    """The example definitions plus `wide.feat`, its profile pointing at the bench's copy."""
    (work / "definitions").mkdir()
    for feat in (ROOT / "definitions").glob("*.feat"):
        shutil.copy(feat, work / "definitions" / feat.name)
    (work / "definitions" / "wide.feat").write_text(wide_feat())
    (work / "backends").mkdir()
    (work / "backends" / "duckdb.toml").write_text(
        f'[warehouse]\nurl = "duckdb:///{db}"\ndialect = "duckdb"\n'
    )
    (work / ".fsc").mkdir()
    return work / "definitions"


def quantiles(xs: list[float]) -> dict:
    xs = sorted(xs)

    def q(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 3)

    return {"p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99), "n": len(xs)}


# ---- a small HTTP/1.1 client: keep-alive, pre-encoded requests, no parsing beyond need ----
class Http:
    def __init__(self, port: int):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def request(path: str, body: bytes) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def send(self, raw: bytes) -> tuple[int, bytes]:
        try:
            return self._send(raw)
        except (ConnectionError, OSError):  # a server that closed an idle keep-alive: again
            self.sock.close()
            self.sock = socket.create_connection(("127.0.0.1", self.port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = b""
            return self._send(raw)

    def _send(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return status, rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        return chunk

    def close(self) -> None:
        self.sock.close()


def paced(calls: int, rate: float, fn) -> tuple[list[float], int]:
    """Call `fn(i)` `calls` times at `rate`/s; latency from each call's scheduled time.
    Returns the latencies and the number of errors (fn returning False)."""
    out, errors = [], 0
    interval = 1.0 / rate
    start = time.perf_counter() + 0.01
    for i in range(calls):
        due = start + i * interval
        now = time.perf_counter()
        if now < due:
            time.sleep(max(0.0, due - now - 0.0002))
            while time.perf_counter() < due:
                pass
        ok = fn(i)
        out.append(time.perf_counter() - due)
        errors += ok is False
    return out, errors


def key_batches(users: int, batch: int, calls: int, seed: int) -> list[list[str]]:
    rnd = random.Random(seed)
    return [[f"u{rnd.randint(1, users):06d}" for _ in range(batch)] for _ in range(calls)]


def start_server(defs: Path, url: str, port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fsdsl.cli",
            "serve",
            str(defs),
            "--online",
            url,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "FSC_SERVE_TOKEN"},
    )
    wait_port(port, proc)
    return proc


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answers on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def http_series(port: int, service: str, batches, rate: float, path="/get-online-features"):
    client = Http(port)
    requests = [
        Http.request(
            path, json.dumps({"feature_service": service, "entities": {"user_id": ks}}).encode()
        )
        for ks in batches
    ]
    for raw in requests[:50]:  # warm: connections, caches
        client.send(raw)

    def one(i: int) -> bool:
        status, _ = client.send(requests[i])
        return status == 200

    lat, errors = paced(len(requests), rate, one)
    client.close()
    return {**quantiles(lat), "errors": errors}


def inproc_series(store, service: str, batches, rate: float):
    for ks in batches[:50]:
        store.online_features(
            service, [{"user_id": k} for k in ks], with_status=True, with_as_of=True
        )

    def one(i: int) -> None:
        store.online_features(
            service, [{"user_id": k} for k in batches[i]], with_status=True, with_as_of=True
        )

    lat, _ = paced(len(batches), rate, one)
    return quantiles(lat)


def raw_series(url: str, store, service: str, batches, rate: float):
    import redis

    from fsdsl.online.store import PREFIX

    online = store.online()
    views = [v for v in dict.fromkeys(v for v, _ in store.service_features(service))]
    spaces = [online.state(v)["ns"] for v in views]
    client = redis.Redis.from_url(url)

    def one(i: int) -> None:
        pipe = client.pipeline(transaction=False)
        for ns in spaces:
            pipe.mget([f'{PREFIX}:v:{ns}:["{k}"]' for k in batches[i]])
        pipe.execute()

    for i in range(50):
        one(i)
    lat, _ = paced(len(batches), rate, one)
    client.close()
    return quantiles(lat)


async def _closed_loop(port: int, body: bytes, connections: int, seconds: float):
    raw = Http.request("/get-online-features", body)
    done, errors, lat = 0, 0, []
    stop_at = time.perf_counter() + seconds

    async def worker():
        nonlocal done, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            done += 1
            errors += head[9:12] != b"200"
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.perf_counter() - started), errors, lat


def max_rate(port: int, service: str, users: int, connections: int = 8, seconds: float = 8.0):
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    body = json.dumps({"feature_service": service, "entities": {"user_id": ["u000042"]}}).encode()
    asyncio.run(_closed_loop(port, body, connections, 1.0))  # warm
    rate, errors, lat = asyncio.run(_closed_loop(port, body, connections, seconds))
    return {
        "requests_per_s": round(rate),
        "errors": errors,
        "connections": connections,
        **{k: v for k, v in quantiles(lat).items() if k != "n"},
    }


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def soak(port: int, proc: subprocess.Popen, users: int, seconds: float = 60, rate: float = 500):
    """A fixed rate for `seconds`: errors, RSS of the server's processes at start and end."""
    pids = [proc.pid] + [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    batches = key_batches(users, 1, int(seconds * rate), 99)
    warm = http_series(port, "fraud_model", batches[:2000], 1000)
    before = rss_kib(pids)
    result = http_series(port, "fraud_model", batches, rate)
    after = rss_kib(pids)
    return {
        "seconds": seconds,
        "rate": rate,
        **result,
        "warm_errors": warm["errors"],
        "rss_kib_before": before,
        "rss_kib_after": after,
        "rss_growth": round(after / before - 1, 4),
    }


# ---- Feast, from its own virtual environment ----
FEAST_REPO = """
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"])
source = FileSource(path="{parquet}", timestamp_field="event_timestamp")
user_orders = FeatureView(
    name="user_orders",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[Field(name="spend_30d", dtype=Float64), Field(name="orders_7d", dtype=Int64)],
    source=source,
)
fraud_model = FeatureService(name="fraud_model", features=[user_orders])
"""


def feast_server(venv: Path, work: Path, store, users: int, redis_port: int, port: int):
    """A Feast repository holding the values fsc serves for `fraud_model` (one row per user,
    as of AT), materialized into db 1 of the same Redis, and `feast serve` on `port`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = work / "feast_repo"
    repo.mkdir()
    keys = pa.table({"user_id": [f"u{i:06d}" for i in range(1, users + 1)]})
    values = store.online_features("fraud_model", keys)
    values = values.append_column(
        "event_timestamp", pa.array([AT] * values.num_rows, pa.timestamp("us"))
    )
    pq.write_table(values, repo / "values.parquet")
    (repo / "feature_store.yaml").write_text(
        textwrap.dedent(f"""
        project: bench
        registry: {repo / "registry.db"}
        provider: local
        online_store:
          type: redis
          connection_string: "127.0.0.1:{redis_port},db=1"
        offline_store:
          type: file
        entity_key_serialization_version: 3
        """)
    )
    (repo / "features.py").write_text(FEAST_REPO.format(parquet=repo / "values.parquet"))
    feast = str(venv / "bin" / "feast")
    env = {**os.environ, "FEAST_USAGE": "False"}
    for args in (["apply"], ["materialize", "2024-01-01T00:00:00", "2024-06-02T00:00:00"]):
        out = subprocess.run([feast, *args], cwd=repo, capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(f"feast {args[0]} failed: {out.stderr[-2000:]}")
    proc = subprocess.Popen(
        # its defaults otherwise: one worker; no restart every 1,000 requests (fsc has none)
        [
            feast,
            "serve",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--no-access-log",
            "--max-requests",
            "100000000",
            "--keep-alive-timeout",
            "600",
        ],
        cwd=repo,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    body = json.dumps({"feature_service": "fraud_model", "entities": {"user_id": ["u000042"]}})
    while True:
        try:
            c = Http(port)
            status, _ = c.send(Http.request("/get-online-features", body.encode()))
            c.close()
            if status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"feast serve did not start: {proc.stderr.read()[-2000:]}")
        time.sleep(0.5)


def throughput(defs: Path, url: str, port: int, users: int) -> dict:
    """Closed-loop requests/s at 1 entity with one worker, then two."""
    out = {}
    for workers in (1, 2):
        server = start_server(defs, url, port, workers)
        try:
            out[f"max_rate_workers_{workers}"] = max_rate(port, "fraud_model", users)
            out[f"max_rate_workers_{workers}_wide50"] = max_rate(port, "wide50", users)
        finally:
            stop(server)
        print(f"max rate, {workers} worker(s)", out[f"max_rate_workers_{workers}"], flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", default="M", choices=list(SCALES))
    p.add_argument("--calls", type=int, default=2000, help="requests per series")
    p.add_argument("--rate", type=float, default=100.0, help="requests/s of each series")
    p.add_argument("--feast-venv", type=Path, help="a virtualenv with feast[redis] installed")
    p.add_argument("--soak", action="store_true", help="60 s at 500 req/s: errors, RSS growth")
    p.add_argument("--port", type=int, default=6581)
    p.add_argument("--feast-only", action="store_true", help="only the side by side with Feast")
    p.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        help="only this service's series (repeatable), no throughput runs",
    )
    p.add_argument("--workers", type=int, default=1, help="`fsc serve --workers` of the series")
    args = p.parse_args()
    users = SCALES[args.scale][0]
    db, _ = ensure(args.scale)
    work = Path(tempfile.mkdtemp(prefix="fsdsl-bench-serve-"))
    copy = work / "wh.duckdb"
    shutil.copy(db, copy)
    redis_proc, url = start_redis(work)
    redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
    defs = project(work, copy)
    results: dict = {"scale": args.scale, "rate": args.rate, "calls": args.calls}
    procs: list[subprocess.Popen] = []
    try:
        from fsdsl import FeatureStore

        with FeatureStore(defs, online=url) as store:
            t = time.perf_counter()
            views = ["user_orders"]
            if not (args.soak or args.feast_only):
                views += [f"wide_{i}" for i in range(1, WIDE_VIEWS + 1)]
            store.run(AT, views=views)
            results["refresh_seconds"] = round(time.perf_counter() - t, 1)
            server = start_server(defs, url, args.port, args.workers)
            procs.append(server)
            results["workers"] = args.workers
            if args.soak:
                results["soak"] = soak(args.port, server, users)
                print(json.dumps(results, indent=2))
                return
            series: dict = {}
            for service in () if args.feast_only else args.service or SERVICES:
                for batch in BATCHES:
                    keys = key_batches(users, batch, args.calls, batch)
                    series[f"{service}/{batch}"] = {
                        "http": http_series(args.port, service, keys, args.rate),
                        "in_process": inproc_series(store, service, keys, args.rate),
                        "raw_redis": raw_series(url, store, service, keys, args.rate),
                    }
                    print(service, batch, json.dumps(series[f"{service}/{batch}"]), flush=True)
            stop(server)
            if not args.feast_only:
                results["series"] = series
            if not (args.feast_only or args.service):
                results.update(throughput(defs, url, args.port, users))
            if args.feast_venv:
                feast = feast_server(args.feast_venv, work, store, users, redis_port, args.port + 1)
                procs.append(feast)
                server = start_server(defs, url, args.port, 1)
                procs.append(server)
                side: dict = {}
                for batch in (1, 50, 100):
                    keys = key_batches(users, batch, args.calls, 1000 + batch)
                    side[str(batch)] = {
                        "fsc": http_series(args.port, "fraud_model", keys, args.rate),
                        "feast": http_series(args.port + 1, "fraud_model", keys, args.rate),
                    }
                    print("vs feast", batch, json.dumps(side[str(batch)]), flush=True)
                results["feast"] = side
                results["feast_max_rate"] = max_rate(args.port + 1, "fraud_model", users, 1, 5)
                results["fsc_max_rate_sequential"] = max_rate(args.port, "fraud_model", users, 1, 5)
    finally:
        for proc in procs:
            stop(proc)
        redis_proc.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    name = f"results_serve_{args.scale.lower()}.json"
    (DATA / name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
