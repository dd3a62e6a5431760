"""What `stream` costs the load engine (bench/RESULTS.md, "Streaming responses"): engine CPU
per response on one worker pinned to core 0, against tests/checks/load/engine_server.py on
core 1, loopback only, bounded in time.

    .venv/bin/python bench/stream_cost.py            # the static case, then 64 KiB bodies scanned
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/stream_cost.py static
                                                     # the same against another build (A/B)

For an A/B, build the other commit's engine in place in its own checkout (`git worktree add
/tmp/old <commit> && cd /tmp/old && ../main/.venv/bin/python setup.py build_ext --inplace`) and
alternate the two runs a few times: the machine's noise is larger than one run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from gonogo.loadgen.engine import run_load
from gonogo.loadgen.spec import Endpoint, LoadSpec

SERVER = Path(__file__).resolve().parents[1] / "tests" / "checks" / "load" / "engine_server.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_per_response(port: int, path: str, stream: str | None, users: int, seconds: float) -> float:
    endpoint = Endpoint(name="e", path=path, stream=stream) if stream else Endpoint(name="e", path=path)
    spec = LoadSpec(
        host="127.0.0.1",
        port=port,
        endpoints=[endpoint],
        model="closed",
        users=users,
        duration=seconds,
        warmup=0.5,
        workers=1,
        cpus=[0],
    )
    result = run_load(spec)
    return result.cpu_seconds / max(1, result.total.responses) * 1e6


def main() -> None:
    only = sys.argv[1] if len(sys.argv) > 1 else "all"
    port = _free_port()
    server = subprocess.Popen(["taskset", "-c", "1", sys.executable, str(SERVER), str(port)])
    try:
        for _ in range(100):  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        print(f"engine from {os.path.dirname(sys.modules['gonogo'].__file__ or '')}")
        static = _cpu_per_response(port, "/fixed/100", None, 32, 4)
        print(f"static GET /fixed/100, 32 users, 4 s: {static:.2f} µs")
        if only == "static":
            return
        for stream in (None, "chunks", "sse", "lines"):
            cost = _cpu_per_response(port, "/chunked/65536/16", stream, 16, 3)
            print(f"64 KiB in 16 chunks, stream {stream or 'none'}, 16 users, 3 s: {cost:.2f} µs")
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
