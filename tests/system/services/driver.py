"""Uses Reaper and System the way gonogo does, then waits to be signalled or killed.

usage: driver.py STATE_DIR MODE
  plain        no signal handlers: SIGTERM kills outright, SIGINT raises KeyboardInterrupt
  graceful     SIGTERM raises SystemExit, so the system is stopped on the way out
  fork-holder  like plain, and a forked child keeps the reaper's pipe open
Writes STATE_DIR/up.json once every service is ready.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from gonogo.plan.model import SystemSpec
from gonogo.system import Reaper, System, allocate_ports


class Printer:
    def on_event(self, source: str, kind: str, message: str) -> None:
        print(f"{source} {kind}: {message}", flush=True)

    def on_sample(
        self, service: str, at: datetime, cpu: float, rss: float, fds: float, threads: float
    ) -> None:
        pass

    def on_scrape(self, service: str, at: datetime, gauges: dict[str, float] | None) -> None:
        pass


def main() -> None:
    state, mode = Path(sys.argv[1]), sys.argv[2]
    # Ctrl-C raises KeyboardInterrupt, even if we were started ignoring SIGINT (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if mode == "graceful":
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    token = "driver-" + secrets.token_hex(8)
    mark = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('aborted')"
    reaper = Reaper.start(
        token,
        on_death_argv=[sys.executable, "-c", mark, str(state / "on_death")],
        log_path=state / "reaper.log",
    )
    service = [sys.executable, str(Path(__file__).with_name("service.py"))]
    port = allocate_ports(["web"])["web"]

    def forker(how: str) -> dict[str, object]:
        pidfile = state / f"{how}.pid"
        return {
            "command": [*service, "--name", how, "--fork", how, "--pidfile", str(pidfile)],
            "ready": {"command": ["test", "-s", str(pidfile)], "interval": "50ms"},
            "grace": "0.5s",
        }

    spec = SystemSpec.model_validate(
        {
            "sample_interval": 0.2,
            "services": {
                "web": {
                    "command": [*service, "--name", "web", "--port", str(port)],
                    "ready": {"http": f"http://127.0.0.1:{port}/"},
                },
                "stubborn": {
                    "command": [
                        *service,
                        "--name",
                        "stubborn",
                        "--ignore-term",
                        "--touch",
                        str(state / "stubborn.up"),
                    ],
                    "ready": {"command": ["test", "-f", str(state / "stubborn.up")]},
                    "grace": "0.5s",
                    "depends_on": ["web"],
                },
                "setsid": forker("setsid"),
                "clean": forker("setsid-clean-env"),
            },
        }
    )
    try:
        with System(
            spec,
            plan_dir=state,
            expand=lambda text: text,
            log_dir=state / "logs",
            reaper=reaper,
            observer=Printer(),
        ) as system:
            system.start()
            holder = None
            if mode == "fork-holder":
                holder = os.fork()
                if holder == 0:
                    time.sleep(60)
                    os._exit(0)
            pids = {
                **system.pids(),
                "setsid-grandchild": int((state / "setsid.pid").read_text()),
                "clean-grandchild": int((state / "setsid-clean-env.pid").read_text()),
            }
            up = {"token": token, "reaper": reaper.pid, "holder": holder, "pids": pids}
            (state / "up.tmp").write_text(json.dumps(up))
            (state / "up.tmp").rename(state / "up.json")
            while True:
                time.sleep(0.05)
                system.check_alive()
    finally:
        reaper.close()


if __name__ == "__main__":
    main()
