"""Disk fill: one file that leaves a filesystem with about `leave_free` bytes available.

Free space is what an unprivileged process can still use (statvfs `f_bavail`), which is
what a service running as a normal user sees. The file is removed by the watchdog too
(`Reaper.add_undo`), so a disk is never left full because gonogo was killed.
"""

from __future__ import annotations

__all__ = ["DiskFillFault", "fill_disk", "free_bytes"]

import contextlib
import errno
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gonogo.faults.base import ActiveFault, FaultError
from gonogo.system.reaper import Reaper

_CHUNK = 1024 * 1024
# How far above the target free space may stay and still count as filled: other writers
# and filesystem metadata move free space a little all the time.
_SLACK_FRACTION = 0.01
_MIN_SLACK = 1024 * 1024


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged process can still write on the filesystem of `directory`."""
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def _total_bytes(directory: Path) -> int:
    stat = os.statvfs(directory)
    return stat.f_blocks * stat.f_frsize


@dataclass
class DiskFillFault(ActiveFault):
    path: Path | None = None
    allocated: int = 0
    undo_handle: int | None = None
    reaper: Reaper | None = None
    removed: bool = field(default=False, init=False)

    def remove(self) -> None:
        if self.removed or self.path is None:
            return
        before = free_bytes(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self.path.exists():
            raise FaultError(f"could not delete the fill file {self.path}")
        after = free_bytes(self.path.parent)
        self.removed = True
        if self.reaper is not None and self.undo_handle is not None:
            self.reaper.remove_undo(self.undo_handle)
        self.evidence.update(free_before_removal=before, free_after_removal=after)
        # The file's blocks come back at once unless a process still holds it open.
        if after - before < self.allocated // 2:
            raise FaultError(
                f"deleted {self.path}, but only {after - before} of its {self.allocated} bytes came back: "
                "a process may still hold it open"
            )


def fill_disk(directory: Path, *, leave_free: int, max_fill: int, reaper: Reaper) -> DiskFillFault:
    """Fill the filesystem of `directory` until about `leave_free` bytes are left.

    Refuses (FaultError) when that would take more than `max_fill` bytes, so a mistaken
    plan never fills a real disk. The fault is applied once statvfs shows the free space
    at the target (within 1% of the filesystem or 1 MiB).
    """
    if leave_free < 0:
        raise FaultError(f"disk fill: leave_free must not be negative, not {leave_free}")
    if max_fill <= 0:
        raise FaultError(f"disk fill: max_fill must be positive, not {max_fill}")
    if not directory.is_dir():
        raise FaultError(f"disk fill: {directory} is not a directory")
    free = free_bytes(directory)
    total = _total_bytes(directory)
    needed = free - leave_free
    if needed > max_fill:
        raise FaultError(
            f"disk fill: leaving {leave_free} bytes free on the filesystem of {directory} "
            f"({free} bytes free of {total}) means writing {needed} bytes, more than max_fill ({max_fill}); "
            "point it at a smaller filesystem or raise max_fill"
        )
    path = directory / f".gonogo-disk-fill-{secrets.token_hex(4)}"
    fault = DiskFillFault(
        kind="disk.fill",
        description=f"fill the filesystem of {directory} to leave {leave_free} bytes free",
        path=path,
        reaper=reaper,
        evidence={"path": str(path), "free_before": free, "total": total, "target_free": leave_free},
    )
    # Registered first: a gonogo killed while writing still leaves no full disk behind.
    # An absolute path: the watchdog runs it with whatever PATH it has.
    fault.undo_handle = reaper.add_undo([shutil.which("rm") or "/bin/rm", "-f", "--", str(path)])
    try:
        size = max(needed, 0)
        with open(path, "xb") as file:
            _allocate(file.fileno(), size)
            os.fsync(file.fileno())
        fault.allocated = os.stat(path).st_blocks * 512
        after = free_bytes(directory)
        slack = max(_MIN_SLACK, int(total * _SLACK_FRACTION))
        fault.evidence.update(file_bytes=size, allocated_bytes=fault.allocated, free_after=after)
        if needed <= 0:
            fault.applied = after <= leave_free + slack
            fault.detail = f"{after} bytes were already free, at most {leave_free} wanted: nothing written"
        else:
            fault.applied = after <= leave_free + slack
            fault.detail = f"wrote {size} bytes to {path}; statvfs now shows {after} bytes free"
    except BaseException:
        with contextlib.suppress(OSError):
            fault.remove()
        raise
    return fault


def _allocate(fd: int, size: int) -> None:
    """Reserve `size` bytes for real: fallocate, or writing zeros where it is not supported."""
    if size == 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as error:
        # ENOSPC: something else wrote in the meantime (the service under test, say); filling
        # what is left chunk by chunk still gets the disk as full as asked.
        if error.errno not in (errno.ENOSPC, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise FaultError(f"disk fill: could not reserve {size} bytes: {error.strerror}") from None
    zeros = bytes(_CHUNK)
    written = 0
    try:
        while written < size:
            written += os.write(fd, zeros[: min(_CHUNK, size - written)])
    except OSError as error:
        if error.errno == errno.ENOSPC:
            return  # full: whether that is close enough to the target is judged from statvfs
        why = error.strerror
        raise FaultError(f"disk fill: writing stopped after {written} of {size} bytes: {why}") from None
