"""Content-addressed artifact files: `<dir>/<sha256[:2]>/<sha256>`, private to the store.

Files are streamed in chunks (an artifact can be hundreds of MB) into a temporary file
in the same directory tree, then renamed into place, so a crash never leaves a partial
file under a valid name and the same content is kept once.
"""

from __future__ import annotations

__all__ = ["ArtifactFiles", "StoredBlob"]

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gonogo.errors import InputFileError

_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class ArtifactFiles:
    """The artifact directory. Safe to use from several threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            # The digest becomes a path: never let arbitrary text through.
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put_bytes(self, content: bytes) -> StoredBlob:
        sha256 = hashlib.sha256(content).hexdigest()
        if not self.path(sha256).is_file():
            tmp = self._temp_file()
            try:
                with open(tmp, "wb") as out:
                    out.write(content)
                self._place(tmp, sha256)
            finally:
                _unlink_quietly(tmp)
        return StoredBlob(sha256, len(content))

    def put_file(self, source: Path, name: str) -> StoredBlob:
        """Copy `source` in one streaming pass that also computes its digest."""
        digest = hashlib.sha256()
        size = 0
        tmp = self._temp_file()
        try:
            try:
                src = open(source, "rb")  # noqa: SIM115 - closed below, errors told apart
            except OSError as exc:
                raise InputFileError(
                    f"cannot store artifact {name!r}: {source}: {exc.strerror or exc}"
                ) from exc
            with src, open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            sha256 = digest.hexdigest()
            if not self.path(sha256).is_file():
                self._place(tmp, sha256)
        finally:
            _unlink_quietly(tmp)
        return StoredBlob(sha256, size)

    def remove(self, sha256: str) -> None:
        _unlink_quietly(self.path(sha256))

    def _temp_file(self) -> Path:
        # Same file system as the final place, so the rename below is atomic.
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="incoming-")
        os.close(fd)
        return Path(name)

    def _place(self, tmp: Path, sha256: str) -> None:
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Evidence is not edited afterwards; read-only makes an accident less likely.
        os.chmod(tmp, 0o444)
        # Two writers of the same content race harmlessly: both files are identical.
        os.replace(tmp, final)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
