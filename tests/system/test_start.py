"""Starting a system: order, readiness, and services that fail to start."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gonogo.errors import ServiceFailed
from gonogo.system import allocate_ports

from .conftest import MakeSystem
from .helpers import SERVICE, alive


def web(name: str, *extra: str) -> dict[str, Any]:
    """A service serving HTTP on {port.NAME}, ready when it answers 200."""
    return {
        "command": [*SERVICE, "--name", name, "--port", f"{{port.{name}}}", *extra],
        "ready": {"http": f"http://127.0.0.1:{{port.{name}}}/health", "timeout": 10},
    }


def port_placeholders(*names: str) -> dict[str, str]:
    return {f"port.{name}": str(port) for name, port in allocate_ports(names).items()}


def test_dependency_order_up_and_reverse_order_down(make_system: MakeSystem, tmp_path: Path) -> None:
    record = tmp_path / "started"
    services = {
        "web": {**web("web", "--record", str(record)), "depends_on": ["api"]},
        "api": {
            "command": [*SERVICE, "--name", "api", "--port", "{port.api}", "--record", str(record)],
            "ready": {"tcp": "127.0.0.1:{port.api}"},
            "depends_on": ["db"],
        },
        "db": {**web("db", "--delay", "0.3", "--record", str(record))},
    }
    placeholders = port_placeholders("web", "api", "db")
    system, recorder = make_system(services, placeholders=placeholders)

    with system:
        system.start()
        assert recorder.sequence("ready") == ["db", "api", "web"]
        # Each one is started only once what it depends on is ready.
        events = [(source, kind) for source, kind, _ in recorder.events]
        assert events.index(("db", "ready")) < events.index(("api", "starting"))
        assert events.index(("api", "ready")) < events.index(("web", "starting"))
        assert [line.split()[0] for line in record.read_text().splitlines()] == ["db", "api", "web"]
        assert httpx.get(f"http://127.0.0.1:{placeholders['port.web']}/").status_code == 200
        pids = system.pids()
    assert recorder.sequence("stopped") == ["web", "api", "db"]
    assert not any(alive(pid) for pid in pids.values())
    assert set(system.log_files()) == {"db", "api", "web"}
    assert "api: pid" in system.log_files()["api"].read_text()


def test_http_probe_accepts_the_listed_statuses(make_system: MakeSystem) -> None:
    service = web("api", "--status", "204")
    service["ready"]["status"] = [200, 204]
    system, recorder = make_system({"api": service}, placeholders=port_placeholders("api"))
    with system:
        system.start()
    assert "ready" in recorder.kinds("api")


def test_command_probe(make_system: MakeSystem, tmp_path: Path) -> None:
    flag = tmp_path / "initialised"
    service = {
        "command": [*SERVICE, "--delay", "0.3", "--touch", str(flag)],
        "ready": {"command": "test -f {work_dir}/initialised", "interval": "50ms"},
    }
    system, recorder = make_system({"worker": service}, placeholders={"work_dir": str(tmp_path)})
    with system:
        system.start()
        assert flag.exists()
    assert recorder.kinds("worker")[:3] == ["starting", "started", "ready"]


def test_a_service_without_probe_is_ready_once_it_has_settled(make_system: MakeSystem) -> None:
    system, recorder = make_system({"worker": {"command": [*SERVICE, "--name", "worker"]}})
    started = time.monotonic()
    with system:
        system.start()
        assert time.monotonic() - started >= 0.4
        assert alive(system.pids()["worker"])
    assert recorder.kinds("worker") == ["starting", "started", "ready", "stopping", "stopped"]


def test_exit_at_startup_fails_with_the_last_log_lines_and_stops_the_rest(
    make_system: MakeSystem,
) -> None:
    services = {
        "db": web("db"),
        "api": {**web("api", "--lines", "30", "--exit", "3"), "depends_on": ["db"]},
        "web": {**web("web"), "depends_on": ["api"]},
    }
    system, recorder = make_system(services, placeholders=port_placeholders("db", "api", "web"))

    with pytest.raises(ServiceFailed) as caught:
        system.start()

    failure = caught.value
    assert failure.service == "api"
    assert failure.reason == "exited with code 3 before it was ready"
    assert len(failure.last_log_lines) == 20
    assert failure.last_log_lines[-2:] == ["line 29", "api: giving up"]  # stderr too
    assert "line 29" in str(failure)
    assert recorder.messages("api", "failed") == [failure.reason]
    assert "web" not in system.pids()  # never started
    assert not alive(system.pids()["db"])  # stopped again
    assert recorder.sequence("stopped") == ["api", "db"]


def test_exit_right_after_start_without_probe_fails(make_system: MakeSystem) -> None:
    system, _ = make_system({"job": {"command": [*SERVICE, "--exit", "0"]}})
    with pytest.raises(ServiceFailed, match="exited with code 0 right after it started"):
        system.start()


def test_never_ready_fails_after_the_probe_timeout(make_system: MakeSystem) -> None:
    service = web("api", "--status", "503")
    service["ready"]["timeout"] = "1s"
    system, _ = make_system({"api": service}, placeholders=port_placeholders("api"))
    started = time.monotonic()

    with pytest.raises(ServiceFailed) as caught:
        system.start()

    assert 1.0 <= time.monotonic() - started < 5
    assert "was not ready within 1s" in caught.value.reason
    assert "HTTP 503, expected 200" in caught.value.reason
    assert any("serving on" in line for line in caught.value.last_log_lines)
    assert not alive(system.pids()["api"])


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        ({"command": "no-such-program-anywhere"}, "could not be started: No such file"),
        ({"command": "true", "cwd": "missing"}, "could not be started: No such file"),
        # (a command that cannot be split is refused when the plan loads: tests/plan)
        (
            {"command": [*SERVICE], "ready": {"http": "http://192.0.2.1:8080/"}},
            "which is not on this machine",
        ),
        (
            {"command": [*SERVICE], "ready": {"command": "no-such-probe-program"}},
            "has a readiness command that cannot start: No such file",
        ),
    ],
)
def test_services_that_cannot_start(make_system: MakeSystem, service: dict[str, Any], reason: str) -> None:
    system, recorder = make_system({"broken": service})
    with pytest.raises(ServiceFailed, match="broken") as caught:
        system.start()
    assert reason in caught.value.reason
    assert recorder.kinds("broken")[-1] in ("failed", "stopped")


def test_command_forms_cwd_env_and_placeholders(make_system: MakeSystem, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    script = "import os, sys; print(sys.argv[1:], os.getcwd(), os.environ['GREETING'], flush=True)"
    services = {
        "split": {
            "command": f"{sys.executable} -c \"{script}; import time; time.sleep(60)\" 'two words' {{word}}",
            "cwd": "sub",
            "env": {"GREETING": "hello {word}"},
        },
        "shell": {
            "command": 'echo "$GREETING from $(pwd)"; exec sleep 60',
            "shell": True,
            "cwd": "{plan_dir}/sub",
            "env": {"GREETING": "hi"},
        },
    }
    system, _ = make_system(services, placeholders={"word": "expanded", "plan_dir": str(tmp_path)})
    with system:
        system.start()
        logs = system.log_files()
        assert logs["split"].read_text().strip() == (
            f"['two words', 'expanded'] {tmp_path / 'sub'} hello expanded"
        )
        assert logs["shell"].read_text().strip() == f"hi from {tmp_path / 'sub'}"


def test_stop_is_idempotent_and_start_happens_once(make_system: MakeSystem) -> None:
    system, recorder = make_system({"worker": {"command": [*SERVICE]}})
    system.stop()  # before start: nothing to do
    system, recorder = make_system({"worker": {"command": [*SERVICE]}})
    system.start()
    with pytest.raises(RuntimeError):
        system.start()
    system.stop()
    system.stop()
    assert recorder.kinds("worker").count("stopped") == 1
