"""Run one command and print its wall seconds, CPU seconds and peak memory (the child's max RSS)
as JSON.

Each contender of a benchmark runs under its own `measure.py`, so peak memory is the
contender's own, not the harness's.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> None:
    cmd = sys.argv[1:]
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = usage.ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                # CPU time (user + system) of the child: less sensitive than wall time to other
                # work on a shared machine, though not to contention for caches and memory
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_mib": peak_kib / 1024,
                "returncode": proc.returncode,
                "stdout": proc.stdout[-2000:],
                "stderr": proc.stderr[-2000:],
            }
        )
    )


if __name__ == "__main__":
    main()
