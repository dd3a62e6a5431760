"""Packet loss and partitions for one loopback TCP port, with iptables.

The rules live in a chain of their own (`gonogo-<random id>`), jumped to from INPUT for
packets arriving on the loopback interface: every loopback packet, to the port or from it,
passes there, so one chain covers both directions. Removing the fault deletes the jump and
the chain; the watchdog does the same (`Reaper.add_undo`) if gonogo dies first.

Firewall rules belong to a whole network namespace. So that an experiment never touches
the host's firewall, these functions act only in a network namespace other than the
host's initial one (`run_in_new_network_namespace`, gonogo's `--isolated-network`), or
when GONOGO_ALLOW_HOST_IPTABLES=1 says the host's own is fine.
"""

from __future__ import annotations

__all__ = [
    "ALLOW_HOST_VARIABLE",
    "PortImpairment",
    "impair_port",
    "network_supported",
    "run_in_new_network_namespace",
]

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gonogo.faults.base import ActiveFault, FaultError, FaultNotSupported
from gonogo.system.reaper import Reaper

ALLOW_HOST_VARIABLE = "GONOGO_ALLOW_HOST_IPTABLES"
# Since Linux 6.? the initial namespaces have fixed inode numbers (include/linux/proc_ns.h);
# dynamically allocated ones start at 0xF0000000, so this number can only be the host's.
_INITIAL_NETNS_INODE = 0xEFFFFFF9
_COMMAND_TIMEOUT = 15.0
_PROBE_TIMEOUT = 0.3

# Brings the loopback interface of a fresh network namespace up (it starts down), then
# becomes the command. Standard library only, so it needs neither iproute2 nor net-tools.
_LOOPBACK_UP = """\
import fcntl, os, socket, struct, sys
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    request = struct.pack("16sH14x", b"lo", 0)
    flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
os.execvp(sys.argv[1], sys.argv[1:])
"""


def run_in_new_network_namespace(argv: Sequence[str]) -> list[str]:
    """`argv` wrapped so that it runs in a new network namespace whose loopback works.

    Inside, only loopback exists: the system under test, its load and its faults share it,
    and firewall rules there cannot touch the host. Needs root, or unprivileged user
    namespaces (then the command runs as root of its own user namespace).
    """
    if not argv:
        raise ValueError("no command to run in a new network namespace")
    prefix = ["unshare", "--net"]
    if os.geteuid() != 0:
        prefix.append("--map-root-user")
    return [*prefix, "--", sys.executable, "-c", _LOOPBACK_UP, *argv]


def _netns_inode(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def on_host_network_namespace() -> bool:
    """True when we are (or might be) in the host's initial network namespace."""
    own = _netns_inode("self")
    if own is None:
        return True
    initial = _netns_inode("1")
    if initial is not None:
        return own == initial
    # pid 1 is hidden from us (a hardened container or VM): judge by what we can see.
    if own == _INITIAL_NETNS_INODE:
        return True
    # A parent in another network namespace means someone made this one for us.
    parent = os.getppid()
    while parent > 1:
        inode = _netns_inode(str(parent))
        if inode is not None and inode != own:
            return False
        parent = _parent_of(parent)
    return True  # cannot tell: take the safe side


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
        return int(data[data.rfind(b")") + 2 :].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _iptables(host: str) -> str:
    return "ip6tables" if ipaddress.ip_address(host).version == 6 else "iptables"


def _program_path(name: str) -> str:
    """The absolute path: the watchdog runs the undo command with whatever PATH it has."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin") or name


def network_supported(host: str = "127.0.0.1") -> str | None:
    """None when impair_port can work here; otherwise why not."""
    if os.geteuid() != 0:
        return "changing firewall rules needs root (or root of a user namespace)"
    program = _iptables(host)
    if not os.path.isabs(_program_path(program)):
        return f"{program} is not installed (Debian package iptables)"
    program = _program_path(program)
    if on_host_network_namespace() and os.environ.get(ALLOW_HOST_VARIABLE) != "1":
        return (
            "this is the host's own network namespace, whose firewall gonogo does not touch: "
            f"run gonogo with --isolated-network (or set {ALLOW_HOST_VARIABLE}=1 to allow it)"
        )
    listing = _run([program, "-w", "-S", "INPUT"], check=False)
    if listing.returncode != 0:
        return f"{program} does not work here: {listing.stderr.strip() or listing.returncode}"
    # Loading the match's help fails when the kernel or iptables lacks it.
    statistic = _run([program, "-m", "statistic", "-h"], check=False)
    if statistic.returncode != 0:
        return f"{program} has no 'statistic' match, needed for random packet loss"
    return None


@dataclass
class PortImpairment(ActiveFault):
    """iptables rules dropping loopback TCP packets to and from one port."""

    program: str = "iptables"
    chain: str = ""
    jump: list[str] = field(default_factory=list)
    reaper: Reaper | None = None
    undo_handle: int | None = None
    removed: bool = field(default=False, init=False)

    def dropped_packets(self) -> dict[str, int]:
        """Packets dropped so far, per direction ("to_port", "from_port"), and entered the chain."""
        listing = _run([self.program, "-w", "-L", self.chain, "-v", "-x", "-n"], check=True).stdout
        dropped = {"to_port": 0, "from_port": 0}
        for line in listing.splitlines():
            words = line.split()
            if len(words) > 2 and words[0].isdigit() and words[2] == "DROP":
                direction = "to_port" if "dpt:" in line else "from_port"
                dropped[direction] += int(words[0])
        jump = _run([self.program, "-w", "-L", "INPUT", "-v", "-x", "-n"], check=True).stdout
        dropped["entered_chain"] = sum(
            int(words[0])
            for words in map(str.split, jump.splitlines())
            if len(words) > 2 and words[0].isdigit() and words[2] == self.chain
        )
        return dropped

    def remove(self) -> None:
        if self.removed or not self.chain:
            return
        with contextlib.suppress(FaultError):
            counters = self.dropped_packets()
            self.evidence["packets"] = counters
            self.evidence["packets_dropped"] = counters["to_port"] + counters["from_port"]
        for argv in _undo_commands(self.program, self.chain, self.jump):
            _run(argv, check=False)  # each is fine to fail: the rule may never have been made
        left = [line for line in _rules(self.program) if self.chain in line.split()]
        if left:
            raise FaultError(f"{self.program} rules of {self.chain} are still there: {left}")
        self.removed = True
        if self.reaper is not None and self.undo_handle is not None:
            self.reaper.remove_undo(self.undo_handle)


def impair_port(
    port: int,
    *,
    loss: float | None = None,
    partition: bool = False,
    reaper: Reaper,
    host: str = "127.0.0.1",
) -> PortImpairment:
    """Drop TCP packets to and from `host:port` on loopback: a fraction `loss`, or all (partition).

    Raises FaultNotSupported where `network_supported()` says it cannot work (including
    on the host's own network namespace), FaultError for a bad request or a failed rule.
    Applied once the rules read back as written and a probe connection's packets were
    counted passing through them.
    """
    if partition == (loss is not None):
        raise FaultError("network fault: give either loss (a fraction) or partition, not both or neither")
    if loss is not None and not 0 < loss <= 1:
        raise FaultError(f"network fault: loss is a fraction in (0, 1], not {loss}")
    if not 0 < port < 65536:
        raise FaultError(f"network fault: {port} is not a TCP port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise FaultError(f"network fault: {host!r} is not an IP address") from None
    if not address.is_loopback:
        raise FaultError(f"network fault: only loopback addresses can be impaired, not {host}")
    why_not = network_supported(host)
    if why_not is not None:
        raise FaultNotSupported(why_not)
    program = _program_path(_iptables(host))
    chain = f"gonogo-{secrets.token_hex(4)}"
    jump = ["-i", "lo", "-j", chain]
    drop = ["-j", "DROP"]
    if loss is not None and loss < 1:
        drop = ["-m", "statistic", "--mode", "random", "--probability", f"{loss:.6f}", *drop]
    what = "partition" if partition else f"{loss:.0%} packet loss"
    fault = PortImpairment(
        kind="network.partition" if partition else "network.loss",
        description=f"{what} on {host}:{port} (TCP, both directions)",
        program=program,
        chain=chain,
        jump=jump,
        reaper=reaper,
        evidence={"chain": chain, "host": host, "port": port, "loss": loss, "partition": partition},
    )
    # Registered first: a gonogo killed half-way still leaves no rule behind.
    undo_script = "; ".join(" ".join(argv) for argv in _undo_commands(program, chain, jump))
    fault.undo_handle = reaper.add_undo([_program_path("sh"), "-c", undo_script])
    try:
        to_port = ["-p", "tcp", "-d", host, "--dport", str(port)]
        from_port = ["-p", "tcp", "-s", host, "--sport", str(port)]
        _run([program, "-w", "-N", chain], check=True)
        _run([program, "-w", "-A", chain, *to_port, *drop], check=True)
        _run([program, "-w", "-A", chain, *from_port, *drop], check=True)
        _run([program, "-w", "-I", "INPUT", "1", *jump], check=True)
        rules = _rules(program)
        fault.evidence["rules"] = [line for line in rules if chain in line.split()]
        written = sum(1 for line in rules if line.startswith(f"-A {chain} ") and line.endswith("-j DROP"))
        jumping = f"-A INPUT -i lo -j {chain}" in rules
        if written != 2 or not jumping:
            fault.detail = f"the rules did not read back as written: {fault.evidence['rules']}"
            return fault
        before = fault.dropped_packets()["entered_chain"]
        _probe(host, port)
        counters = fault.dropped_packets()
        fault.evidence["probe_packets"] = counters
        if counters["entered_chain"] > before:
            fault.applied = True
            fault.detail = (
                f"chain {chain} in place and jumped to from INPUT; a probe connection to {host}:{port} "
                f"sent {counters['entered_chain'] - before} packet(s) through it"
            )
        else:
            fault.detail = f"chain {chain} in place, but a probe connection's packets did not pass through it"
    except BaseException:
        with contextlib.suppress(FaultError):
            fault.remove()
        raise
    return fault


def _undo_commands(program: str, chain: str, jump: list[str]) -> list[list[str]]:
    return [
        [program, "-w", "-D", "INPUT", *jump],
        [program, "-w", "-F", chain],
        [program, "-w", "-X", chain],
    ]


def _rules(program: str) -> list[str]:
    return _run([program, "-w", "-S"], check=True).stdout.splitlines()


def _probe(host: str, port: int) -> None:
    """One connection attempt, whose packets the rules count (and may drop)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(_PROBE_TIMEOUT)
        with contextlib.suppress(OSError):
            sock.connect((host, port))
    time.sleep(0.05)  # let the handshake's last packets arrive


_SAFE_WORD = re.compile(r"[A-Za-z0-9_.:/-]+")


def _run(argv: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
    assert all(_SAFE_WORD.fullmatch(word) for word in argv), argv  # they also go into `sh -c`
    try:
        completed = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FaultError(f"{' '.join(argv)} failed: {error}") from None
    if check and completed.returncode != 0:
        raise FaultError(f"{' '.join(argv)} failed: {completed.stderr.strip() or completed.returncode}")
    return completed
