"""Packet loss and partitions with iptables, inside a network namespace each test makes.

The measuring script (`_EXPERIMENT`) runs through `run_in_new_network_namespace`: a TCP
server, the faults, the connection attempts, the firewall read back, and a "gonogo" child
killed with the fault in place, all in a namespace that disappears with the script.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gonogo.faults.base import FaultError, FaultNotSupported
from gonogo.faults.network import (
    ALLOW_HOST_VARIABLE,
    impair_port,
    network_supported,
    on_host_network_namespace,
    run_in_new_network_namespace,
)
from gonogo.system import Reaper

_EXPERIMENT = r"""
import json, secrets, signal, socket, subprocess, sys, threading, time
from gonogo.system import Reaper
from gonogo.faults.network import impair_port, network_supported

server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]

def serve():
    while True:
        connection, _ = server.accept()
        connection.close()

threading.Thread(target=serve, daemon=True).start()

def connections(attempts):
    made = 0
    for _ in range(attempts):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            made += 1
        except OSError:
            pass
    return made

def firewall():
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout.splitlines()

report = {"supported": network_supported(), "before": connections(3)}
with Reaper.start("net-" + secrets.token_hex(8)) as reaper:
    partition = impair_port(port, partition=True, reaper=reaper)
    report["partition"] = {"applied": partition.applied, "detail": partition.detail,
                           "rules": firewall(), "connections": connections(3)}
    partition.remove()
    partition.remove()
    report["partition"].update(evidence=partition.evidence, after=connections(3), rules_after=firewall())

    loss = impair_port(port, loss=0.3, reaper=reaper)
    report["loss"] = {"applied": loss.applied, "detail": loss.detail, "connections": connections(20)}
    loss.remove()
    report["loss"].update(evidence=loss.evidence, after=connections(3), rules_after=firewall())

# A gonogo killed while its partition is on: the watchdog takes the rules away.
gonogo = subprocess.Popen([sys.executable, "-c", '''
import secrets, sys, time
from gonogo.system import Reaper
from gonogo.faults.network import impair_port
reaper = Reaper.start("net-death-" + secrets.token_hex(8))
fault = impair_port(int(sys.argv[1]), partition=True, reaper=reaper)
print(fault.applied, flush=True)
time.sleep(120)
''', str(port)], stdout=subprocess.PIPE, text=True)
death = {"applied": gonogo.stdout.readline().strip(), "rules_while_alive": firewall()}
gonogo.send_signal(signal.SIGKILL)
gonogo.wait(10)
deadline = time.monotonic() + 20
while any("gonogo-" in rule for rule in firewall()) and time.monotonic() < deadline:
    time.sleep(0.1)
death.update(rules_after=firewall(), connections_after=connections(3))
report["death"] = death
print(json.dumps(report))
"""


def test_loss_and_partition_in_a_network_namespace(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("iptables") is None or shutil.which("unshare") is None:
        pytest.skip("needs root, iptables and unshare")
    argv = run_in_new_network_namespace([sys.executable, "-c", _EXPERIMENT])
    # Without the token of a reaper, nothing here could outlive the test but the namespace's
    # own processes, which the timeout and the script's own bounds end.
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0 and "unshare failed" in completed.stderr:
        pytest.skip(f"cannot make a network namespace here: {completed.stderr.strip()}")
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.splitlines()[-1])
    assert report["supported"] is None
    assert report["before"] == 3

    partition = report["partition"]
    assert partition["applied"], partition["detail"]
    chain = partition["evidence"]["chain"]
    assert f"-A INPUT -i lo -j {chain}" in partition["rules"]
    assert sum(rule.startswith(f"-A {chain} ") for rule in partition["rules"]) == 2
    assert partition["connections"] == 0
    assert partition["evidence"]["packets_dropped"] >= 3  # at least the three SYNs
    assert partition["after"] == 3
    assert not any(chain in rule for rule in partition["rules_after"])

    loss = report["loss"]
    assert loss["applied"], loss["detail"]
    # 30% of packets dropped: a connection needs its SYN and SYN-ACK, so about half get
    # through within half a second. Wide bounds: this is about "some, not all".
    assert 0 < loss["connections"] < 20, loss
    assert loss["evidence"]["packets_dropped"] > 0
    assert loss["evidence"]["packets"]["entered_chain"] > loss["evidence"]["packets_dropped"]
    assert loss["after"] == 3
    assert not any("gonogo-" in rule for rule in loss["rules_after"])

    death = report["death"]
    assert death["applied"] == "True"
    assert any("gonogo-" in rule for rule in death["rules_while_alive"])
    assert not any("gonogo-" in rule for rule in death["rules_after"])
    assert death["connections_after"] == 3


def test_the_host_network_namespace_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if not on_host_network_namespace():
        pytest.skip("these tests already run in a network namespace of their own")
    monkeypatch.delenv(ALLOW_HOST_VARIABLE, raising=False)
    why_not = network_supported()
    assert why_not is not None and "--isolated-network" in why_not
    with (
        Reaper.start("net-host-" + secrets.token_hex(8)) as reaper,
        pytest.raises(FaultNotSupported, match="--isolated-network"),
    ):
        impair_port(9, partition=True, reaper=reaper)


def test_bad_requests_are_refused_clearly() -> None:
    with Reaper.start("net-bad-" + secrets.token_hex(8)) as reaper:
        with pytest.raises(FaultError, match="either loss"):
            impair_port(9, reaper=reaper)
        with pytest.raises(FaultError, match="either loss"):
            impair_port(9, loss=0.5, partition=True, reaper=reaper)
        with pytest.raises(FaultError, match="fraction"):
            impair_port(9, loss=1.5, reaper=reaper)
        with pytest.raises(FaultError, match="not a TCP port"):
            impair_port(70000, partition=True, reaper=reaper)
        with pytest.raises(FaultError, match="only loopback"):
            impair_port(9, partition=True, reaper=reaper, host="10.1.2.3")
        with pytest.raises(FaultError, match="not an IP address"):
            impair_port(9, partition=True, reaper=reaper, host="localhost")


def test_the_namespace_wrapper_brings_loopback_up() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    probe = (
        "import socket; server = socket.create_server(('127.0.0.1', 0)); "
        "socket.create_connection(server.getsockname(), timeout=5).close(); print('connected')"
    )
    completed = subprocess.run(
        run_in_new_network_namespace([sys.executable, "-c", probe]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "connected"
    with pytest.raises(ValueError):
        run_in_new_network_namespace([])
