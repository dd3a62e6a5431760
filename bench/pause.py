"""Pause a process with SIGSTOP for a while, then SIGCONT it; write when, as JSON.

    python bench/pause.py --pid 1234 --after 3.0 --for 0.5 --out pause.json

Times are CLOCK_MONOTONIC seconds (comparable with the other scripts' monotonic stamps).
SIGCONT is sent even if the script is interrupted between the two signals.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--after", type=float, required=True, help="seconds before SIGSTOP")
    parser.add_argument("--for", dest="length", type=float, required=True, help="seconds stopped")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    # a TERM (the bench stopping everything) must still run the `finally` that sends SIGCONT
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    time.sleep(args.after)
    os.kill(args.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        deadline = stopped + args.length
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left)
    finally:
        os.kill(args.pid, signal.SIGCONT)
        resumed = time.monotonic()
    document = {
        "pid": args.pid,
        "started_monotonic": started,
        "stopped_monotonic": stopped,
        "resumed_monotonic": resumed,
        "stopped_after_seconds": stopped - started,
        "pause_seconds": resumed - stopped,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"paused pid {args.pid} for {1000 * (resumed - stopped):.1f} ms, "
        f"{stopped - started:.3f} s after start"
    )


if __name__ == "__main__":
    main()
