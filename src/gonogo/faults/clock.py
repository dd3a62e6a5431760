"""Clock skew for a service started under libfaketime.

A service started with `faketime_env(control_file)` in its environment reads its wall
clock through libfaketime, which re-reads `control_file` on every call. `skew_clock` writes
an offset there ("+3600", "-120.5": seconds) and `remove()` writes "+0" back, both while
the service runs. Only the wall clock moves, as with a real clock step: the monotonic clock
is left alone (see `faketime_env`).

libfaketime works through LD_PRELOAD, so statically linked programs (most Go binaries)
do not see the skew; `skew_clock` verifies with a dynamically linked probe process.
With Debian's libfaketime 0.9.10, `time.sleep` of Python 3.11 and later fails with EINVAL
in a process started this way (waits with timeouts, select and asyncio are fine).
"""

from __future__ import annotations

__all__ = ["ClockSkew", "faketime_env", "faketime_library", "faketime_supported", "skew_clock"]

import contextlib
import glob
import math
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gonogo.faults.base import ActiveFault, FaultError, FaultNotSupported

_LIBRARY = "libfaketime.so.1"
_PROBE_TIMEOUT = 20.0  # a Python start on a loaded CI machine
_TOLERANCE = 0.5  # seconds; the probe measures to well under a millisecond
_PROBE = [sys.executable, "-S", "-c", "import time; print(repr(time.time()), repr(time.monotonic()))"]


def faketime_library() -> Path | None:
    """Where libfaketime is (Debian: /usr/lib/<multiarch>/faketime/), or None."""
    patterns = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        patterns.append(f"/usr/lib/{multiarch}/faketime/{_LIBRARY}")
    patterns += [
        f"/usr/lib/*/faketime/{_LIBRARY}",
        f"/usr/lib64/faketime/{_LIBRARY}",
        f"/usr/lib/faketime/{_LIBRARY}",
        f"/usr/local/lib/faketime/{_LIBRARY}",
        f"/usr/local/lib/*/faketime/{_LIBRARY}",
    ]
    for pattern in patterns:
        for candidate in sorted(glob.glob(pattern)):
            if os.access(candidate, os.R_OK):
                return Path(candidate)
    return None


def _environment(library: Path, control_file: Path) -> dict[str, str]:
    preload = " ".join(filter(None, [str(library), os.environ.get("LD_PRELOAD")]))
    return {
        "LD_PRELOAD": preload,
        "FAKETIME_TIMESTAMP_FILE": str(control_file),
        "FAKETIME_NO_CACHE": "1",  # read the file on every call, so a change is seen at once
        # A real clock step leaves the monotonic clock alone. Faking it too would also make
        # every timed wait on a thread lock hang (libfaketime 0.9.10 does not translate
        # sem_clockwait). Known cost: Python >= 3.11's time.sleep fails with EINVAL under
        # libfaketime 0.9.10 with this setting (libfaketime issue #426, closed upstream).
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # Its "monotonic fix" (its own pthread_cond_timedwait) is for a faked monotonic clock;
        # on, it made a threaded Python HTTP service about ten times slower under 8 concurrent
        # clients (docs/chaos.md). Off, timed waits still end on time under a skew.
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
    }


def faketime_env(control_file: Path) -> dict[str, str]:
    """Environment entries to start a service with, so that its clock can be skewed later.

    Writes "+0" (no skew) to `control_file`. The entries go on top of the service's own
    environment; a FAKETIME variable in it would override the file, so leave it out.
    """
    library = faketime_library()
    if library is None:
        raise FaultNotSupported("libfaketime is not installed (Debian package libfaketime)")
    _write_offset(control_file, 0.0)
    return _environment(library, control_file)


def faketime_supported() -> str | None:
    """None when services can be started under libfaketime here; otherwise why not."""
    if not sys.platform.startswith("linux"):
        return "clock skew uses libfaketime, which gonogo supports on Linux only"
    library = faketime_library()
    if library is None:
        return "libfaketime is not installed (Debian package libfaketime)"
    with tempfile.TemporaryDirectory(prefix="gonogo-faketime-") as scratch:
        control = Path(scratch) / "offset"
        _write_offset(control, 3600.0)
        try:
            offset = _measure_offset(_environment(library, control))
        except FaultError as error:
            return f"a process under {library} did not run: {error}"
    if abs(offset - 3600.0) > _TOLERANCE:
        return f"{library} did not move the clock of a process under it (offset seen: {offset:.1f}s)"
    return None


@dataclass
class ClockSkew(ActiveFault):
    control_file: Path | None = None
    removed: bool = field(default=False, init=False)

    def remove(self) -> None:
        if self.removed or self.control_file is None:
            return
        _write_offset(self.control_file, 0.0)
        library = faketime_library()
        if library is None:
            raise FaultError("libfaketime disappeared; cannot verify the clock skew was removed")
        seen = _measure_offset(_environment(library, self.control_file))
        self.evidence["offset_seen_after_removal"] = round(seen, 3)
        if abs(seen) > _TOLERANCE:
            raise FaultError(
                f"wrote +0 to {self.control_file}, but a process under libfaketime is {seen:+.1f}s off"
            )
        self.removed = True


def skew_clock(control_file: Path, offset_seconds: float) -> ClockSkew:
    """Move the wall clock of the services started with `faketime_env(control_file)` by the offset.

    Applied once a probe process under the same libfaketime settings reads the real time
    plus the offset (within a second).
    """
    if not math.isfinite(offset_seconds):
        raise FaultError(f"clock skew: {offset_seconds} is not a number of seconds")
    if not control_file.is_file():
        raise FaultError(
            f"clock skew: {control_file} does not exist; start the service with faketime_env first"
        )
    library = faketime_library()
    if library is None:
        raise FaultNotSupported("libfaketime is not installed (Debian package libfaketime)")
    fault = ClockSkew(
        kind="clock.skew",
        description=f"wall clock moved by {offset_seconds:+g}s",
        control_file=control_file,
        evidence={"control_file": str(control_file), "offset": offset_seconds},
    )
    _write_offset(control_file, offset_seconds)
    try:
        seen = _measure_offset(_environment(library, control_file))
    except BaseException:
        with contextlib.suppress(FaultError):
            fault.remove()
        raise
    fault.evidence["offset_seen"] = round(seen, 3)
    fault.applied = abs(seen - offset_seconds) <= _TOLERANCE
    fault.detail = f"a process under libfaketime read the real time {seen:+.2f}s ({offset_seconds:+g}s asked)"
    return fault


def _format_offset(offset: float) -> str:
    """libfaketime's relative offset in seconds: "+3600", "-120.500"."""
    if offset == int(offset):
        return f"{int(offset):+d}"
    return f"{offset:+.3f}"


def _write_offset(control_file: Path, offset: float) -> None:
    """Replace the file at once, so that libfaketime never reads half of it."""
    control_file.parent.mkdir(parents=True, exist_ok=True)
    partial = control_file.with_name(control_file.name + ".new")
    partial.write_text(_format_offset(offset) + "\n")
    os.replace(partial, control_file)


def _measure_offset(faketime: dict[str, str]) -> float:
    """How far the wall clock of a process under `faketime` is from the real one, in seconds.

    The probe prints its wall clock and its monotonic clock, which libfaketime leaves alone
    and which all processes share: our own real wall clock minus monotonic clock turns the
    second into a real wall-clock time, however long the probe took to start.
    """
    env = {key: value for key, value in os.environ.items() if key != "FAKETIME"}
    env.update(faketime)
    try:
        completed = subprocess.run(
            _PROBE, env=env, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FaultError(f"the clock probe failed: {error}") from None
    real_minus_monotonic = time.time() - time.monotonic()
    try:
        wall, monotonic = (float(word) for word in completed.stdout.split())
    except ValueError:
        why = completed.stderr.strip()[-500:]
        code = completed.returncode
        raise FaultError(f"the clock probe printed no time (exit code {code}): {why}") from None
    return wall - (monotonic + real_minus_monotonic)
