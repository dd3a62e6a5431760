"""Document bytes on the local filesystem, written in a streaming fashion.

An upload is written to `<root>/tmp/` while it arrives, hashed and size-checked chunk by
chunk, and moved into place (`<root>/<2 hex>/<id>`) with an atomic rename only once it is
complete, so a reader never sees a partial file and an aborted upload leaves nothing.
"""

from __future__ import annotations

__all__ = ["Storage", "TooLarge", "UploadWriter", "is_disk_full"]

import errno
import hashlib
import os
import re
import time
import uuid
from pathlib import Path
from typing import BinaryIO

KEY_PATTERN = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}$")


STALE_PART_SECONDS = 3600.0  # a .part file untouched this long belongs to a crashed upload


class TooLarge(Exception):
    """The upload went over the size limit."""


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class UploadWriter:
    """Receives one upload's bytes: writes, hashes and counts them, enforcing the limit."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()
        self._file: BinaryIO | None = path.open("xb")

    def write(self, data: bytes | memoryview) -> None:
        if self._file is None:
            raise ValueError("upload already finished or aborted")
        self.size += len(data)
        if self.size > self.max_bytes:
            self.abort()
            raise TooLarge(f"upload exceeds {self.max_bytes} bytes")
        self._digest.update(data)
        self._file.write(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        """Flush and close the file (it stays in the temporary area until committed)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


class Storage:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def initialize(self) -> None:
        """Create the folders and delete what crashed uploads left in the temporary area."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_PART_SECONDS
        for part in self.tmp.glob("*.part"):
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
            except FileNotFoundError:  # another process swept it first
                pass

    @staticmethod
    def key_for(doc_id: str) -> str:
        return f"{doc_id[:2]}/{doc_id}"

    def path_for(self, key: str) -> Path:
        """The file of a storage key; keys are validated so no path escapes the root."""
        if not KEY_PATTERN.match(key):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    def new_upload(self, max_bytes: int) -> UploadWriter:
        return UploadWriter(self.tmp / f"{uuid.uuid4().hex}.part", max_bytes)

    def commit(self, upload: UploadWriter, key: str) -> Path:
        """Move a finished upload to its final place, atomically."""
        upload.close()
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.path, target)
        _fsync_directory(target.parent)  # the rename itself must survive a crash too
        return target

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
