"""The processes of `fsc serve`: one uvicorn server per worker, sharing one listening socket.

The command loads and checks the definitions first (broken ones: exit 1 before anything
listens), binds the socket (a port in use: exit 2), and then either serves in its own process
(`--workers 1`) or forks N workers that inherit the socket and the loaded definitions and
accept on it (the kernel spreads the connections), supervised by the parent:

* SIGTERM / SIGINT: each worker stops accepting, finishes the requests in flight (uvicorn's
  graceful shutdown, bounded by DRAIN_SECONDS), and exits 0; the parent exits 0 after them.
* SIGHUP: each worker reloads its definitions (refused, old ones serving, if they do not
  check); a `POST /reload` answered by one worker sends SIGHUP to the parent, so all reload.
* A worker that dies is replaced; one that dies at once, again and again, stops the server.

uvicorn's own multi-process mode restarts every worker on SIGHUP and re-imports the app in
each; forking after the load shares the loaded definitions and keeps a reload a reload.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from fsdsl.diagnostics import UsageError
from fsdsl.serve.errors import CANNOT_LISTEN

DRAIN_SECONDS = 30.0
log = logging.getLogger("fsdsl.serve")


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {e.strerror or e}", CANNOT_LISTEN
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app, sock: socket.socket, server_state):
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn's server with fsc's signals: TERM/INT drain and exit 0 (uvicorn re-raises
        the signal after its shutdown, which would end the process by the signal), HUP
        reloads the definitions."""

        @contextlib.contextmanager
        def capture_signals(self):
            def stop(sig, frame):
                if self.should_exit and sig == signal.SIGINT:
                    self.force_exit = True
                self.should_exit = True

            def hup(sig, frame):
                loop = server_state.loop
                if loop is not None:
                    loop.call_soon_threadsafe(_reload_soon, server_state)

            old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
            old[signal.SIGHUP] = signal.signal(signal.SIGHUP, hup)
            try:
                yield
            finally:
                for s, handler in old.items():
                    signal.signal(s, handler)

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=DRAIN_SECONDS,
        timeout_keep_alive=5,
    )
    return _Server(config)


def _reload_soon(server_state) -> None:
    import asyncio

    from fsdsl.serve.errors import HttpError

    async def go():
        try:
            await server_state.reload()
        except HttpError:
            pass  # refused: logged and counted; the old definitions keep serving

    asyncio.ensure_future(go())


def run_worker(config, sock: socket.socket, defs) -> int:
    from fsdsl.serve.app import build

    app = build(config, defs)
    server = _uvicorn_server(app, sock, app.app.state.server)
    server.run(sockets=[sock])
    return 0 if server.started else 2


def serve(config, host: str, port: int, announce) -> int:
    """Load, bind, serve until SIGTERM/SIGINT; the exit code. `announce(text)` says where."""
    from fsdsl.serve.app import Definitions

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    defs = Definitions(config)  # a FeatError here: the command reports it, nothing listens
    sock = listen(host, port)
    port = sock.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="fsc-serve-metrics-")
    import dataclasses

    config = dataclasses.replace(config, metrics_dir=folder)
    shown = f"[{host}]" if ":" in host else host
    announce(
        f"fsc serve: {len(defs.pairs)} service(s) of {config.path} on http://{shown}:{port} "
        f"({config.workers} worker(s){', token required' if config.token else ''}); "
        f"docs at http://{shown}:{port}/docs"
    )
    try:
        if config.workers <= 1:
            return run_worker(config, sock, defs)
        return _supervise(config, sock, defs)
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def _supervise(config, sock: socket.socket, defs) -> int:
    """Fork the workers and keep them running until told to stop."""
    stopping = False
    reloads = 0

    def on_stop(sig, frame):
        nonlocal stopping
        stopping = True

    def on_hup(sig, frame):
        nonlocal reloads
        reloads += 1

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    children: dict[int, float] = {}  # pid -> start time
    quick_deaths = 0

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 2
            try:
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(s, signal.SIG_DFL)
                _die_with_parent()
                code = run_worker(config, sock, defs)
            except BaseException as e:  # noqa: BLE001 - a worker never unwinds into the parent
                sys.stderr.write(f"fsc serve worker {os.getpid()}: {type(e).__name__}: {e}\n")
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = time.monotonic()

    for _ in range(config.workers):
        spawn()
    seen_reloads = 0
    while children:
        if stopping:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            break
        if reloads != seen_reloads:
            seen_reloads = reloads
            defs = _reloaded(config, defs)  # what a replacement worker starts from
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
            continue
        started = children.pop(pid, None)
        if started is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < 2.0 else 0
        if quick_deaths >= 5:
            sys.stderr.write("fsc serve: workers keep exiting at start; stopping\n")
            for other in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(other, signal.SIGTERM)
            _wait_all(children)
            return 2
        sys.stderr.write(f"fsc serve: worker {pid} exited ({code}); starting another\n")
        spawn()
    _wait_all(children)
    return 0


def _reloaded(config, defs):
    from fsdsl.diagnostics import FeatError
    from fsdsl.serve.app import Definitions

    try:
        return Definitions(config)
    except (FeatError, UsageError):
        return defs  # the workers refuse it too, and say why


def _wait_all(children: dict[int, float]) -> None:
    deadline = time.monotonic() + DRAIN_SECONDS + 5
    while children and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)
        else:
            children.pop(pid, None)
    for pid in children:  # past the drain: no longer ours to wait for
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM (and drains) if the supervisor itself is killed."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
