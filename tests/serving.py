"""A real `fsc serve` process on a free loopback port, for tests over HTTP (httpx)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

TOKEN = "t0ken-for-tests-only"


class Served:
    """One `fsc serve` process; `log` collects its stderr as it runs."""

    def __init__(self, path: Path, online: str, *extra: str, token: str | None = None):
        env = {k: v for k, v in os.environ.items() if k != "FSC_SERVE_TOKEN"}
        if token is not None:
            env["FSC_SERVE_TOKEN"] = token  # as a deployment passes it: never on the command line
        cmd = [sys.executable, "-m", "fsdsl.cli", "serve", str(path), "--online", online]
        cmd += ["--port", "0", *extra]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.log: list[str] = []
        announced = threading.Event()
        self.url = ""

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
                if found and not self.url:
                    self.url = found.group(1)
                    announced.set()
            announced.set()

        threading.Thread(target=read, daemon=True).start()
        if not announced.wait(60) or not self.url:
            self.stop()
            raise AssertionError("fsc serve did not start: " + "".join(self.log))
        self.client = httpx.Client(base_url=self.url, timeout=20)
        deadline = time.monotonic() + 30
        while True:  # listening already; the first answer once uvicorn has started
            try:
                self.client.get("/openapi.json")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "".join(self.log)
                time.sleep(0.05)

    def read(self, body, token: str | None = TOKEN, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post("/get-online-features", json=body, headers=headers, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(40)
        finally:
            if hasattr(self, "client"):
                self.client.close()
