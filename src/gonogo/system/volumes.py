"""A small filesystem of its own for a service's data (`data:` of a service in the plan).

A tmpfs of `size` is mounted at the service's `data.path` before any service starts and
unmounted once every service has stopped, so that a `disk_full` fault fills that filesystem
and never the host's disk. The unmount is also registered with the watchdog
(`Reaper.add_undo`): a gonogo killed with SIGKILL leaves no mount behind.

Mounting needs root (CAP_SYS_ADMIN); without it the run stops before any service starts,
with a message that says what to do.
"""

from __future__ import annotations

__all__ = ["DataVolumes", "MountedVolume", "volume_path"]

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gonogo.errors import RunFailed, ServiceFailed
from gonogo.plan.model import DataVolume, Service
from gonogo.system.observer import SystemObserver
from gonogo.system.reaper import Reaper
from gonogo.units import format_value

_MOUNT_TIMEOUT = 30.0
# tmpfs rounds its size to whole pages; statvfs may show that much more or less.
_PAGE_SLACK = 64 * 1024


def volume_path(data: DataVolume, expand: Callable[[str], str], plan_dir: Path) -> Path:
    """Where the volume of `data` is mounted: its path with placeholders filled in, relative
    to the plan's directory unless absolute."""
    path = Path(expand(data.path)).expanduser()
    return path if path.is_absolute() else plan_dir / path


@dataclass(frozen=True)
class MountedVolume:
    service: str
    path: Path
    size: int
    undo_handle: int


class DataVolumes:
    """The data volumes of one System: mounted by `mount_all`, unmounted by `unmount_all`."""

    def __init__(self, reaper: Reaper) -> None:
        self._reaper = reaper
        self._mounted: list[MountedVolume] = []

    def mount_all(
        self,
        services: Mapping[str, Service],
        *,
        expand: Callable[[str], str],
        plan_dir: Path,
        observer: SystemObserver,
    ) -> None:
        """Mount the volume of every service that declares `data`.

        Raises ServiceFailed naming the first service whose volume could not be mounted
        (the ones mounted before stay mounted until `unmount_all`).
        """
        for name, service in services.items():
            if service.data is None:
                continue
            path = volume_path(service.data, expand, plan_dir)
            try:
                volume = self._mount(name, path, service.data.size)
            except RunFailed as error:
                reason = f"has a data volume that could not be mounted: {error}"
                observer.on_event(name, "failed", reason)
                raise ServiceFailed(name, reason) from None
            observer.on_event(
                name, "mounted", f"data volume: tmpfs of {format_value(volume.size, 'bytes')} at {path}"
            )

    def unmount_all(self, observer: SystemObserver) -> None:
        """Unmount every volume mounted so far, newest first. Idempotent.

        A volume still busy (a process left holding a file in it) is detached lazily: it is
        gone from the directory tree at once and freed when the last file closes. Raises
        RunFailed if one is still mounted after that.
        """
        problems: list[str] = []
        while self._mounted:
            volume = self._mounted.pop()
            detail = _unmount(volume.path)
            if os.path.ismount(volume.path):
                problems.append(f"{volume.path} is still mounted: {detail}")
                observer.on_event(volume.service, "unmount-failed", problems[-1])
                continue  # the watchdog's undo stays registered: it tries again when gonogo exits
            self._reaper.remove_undo(volume.undo_handle)
            observer.on_event(volume.service, "unmounted", f"data volume at {volume.path} unmounted{detail}")
        if problems:
            raise RunFailed("data volumes left mounted: " + "; ".join(problems))

    def _mount(self, service: str, path: Path, size: int) -> MountedVolume:
        mount, umount = shutil.which("mount"), shutil.which("umount")
        if mount is None or umount is None:
            raise RunFailed("the mount and umount commands are missing (install util-linux)")
        if os.path.ismount(path):
            raise RunFailed(f"something is mounted at {path} already; give data.path a directory of its own")
        try:
            path.mkdir(parents=True, exist_ok=True)
            entries = sum(1 for _ in path.iterdir())
        except OSError as error:
            raise RunFailed(f"cannot use {path} as a mount point: {error.strerror or error}") from None
        if entries:
            raise RunFailed(
                f"{path} is not empty ({entries} entries) and a tmpfs mounted there would hide them; "
                "point data.path at a new or empty directory, e.g. {run_dir}/" + f"{service}-data"
            )
        stat = path.stat()  # the volume gets the directory's owner and mode, as if it were that directory
        mode = stat.st_mode & 0o7777
        options = f"size={size},mode={mode:o},uid={stat.st_uid},gid={stat.st_gid},nosuid,nodev"
        # Registered before the mount: a gonogo killed right after mounting still leaves nothing.
        handle = self._reaper.add_undo([umount, "--lazy", str(path)])
        try:
            result = subprocess.run(
                [mount, "-t", "tmpfs", "-o", options, f"gonogo-{service}", str(path)],
                capture_output=True,
                text=True,
                timeout=_MOUNT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self._reaper.remove_undo(handle)
            raise RunFailed(f"mount did not run: {error}") from None
        if result.returncode != 0 or not os.path.ismount(path):
            self._reaper.remove_undo(handle)
            said = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
            raise RunFailed(f"mount -t tmpfs at {path} failed ({said}); {_privilege_advice()}")
        volume = MountedVolume(service, path, size, handle)
        self._mounted.append(volume)
        total = _total_bytes(path)
        if abs(total - size) > _PAGE_SLACK:
            raise RunFailed(
                f"the tmpfs at {path} has {format_value(total, 'bytes')}, not the "
                f"{format_value(size, 'bytes')} asked for"
            )
        return volume


def _privilege_advice() -> str:
    if os.geteuid() != 0:
        return (
            "mounting a filesystem needs root: run gonogo as root (in a CI container or a VM), or "
            "remove `data:` from the service and point a `disk_fill:` fault at a small filesystem "
            "you mount yourself"
        )
    return (
        "root may not mount here: a container needs CAP_SYS_ADMIN (docker run --cap-add SYS_ADMIN) "
        "or remove `data:` from the service and point a `disk_fill:` fault at a small filesystem "
        "you mount yourself"
    )


def _total_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_blocks * stat.f_frsize


def _unmount(path: Path) -> str:
    """Unmount `path`; lazily if it is busy. What happened beyond a plain unmount, for the event."""
    if not os.path.ismount(path):
        return " (it was not mounted any more)"
    umount = shutil.which("umount") or "/bin/umount"
    plain = _run([umount, str(path)])
    if plain is None:
        return ""
    lazy = _run([umount, "--lazy", str(path)])
    if lazy is None:
        return f" lazily: it was busy ({plain}); freed once the last file in it is closed"
    return f"umount said: {plain}; umount --lazy said: {lazy}"


def _run(argv: list[str]) -> str | None:
    """None if `argv` succeeded, else what it said."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=_MOUNT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
