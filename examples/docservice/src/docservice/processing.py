"""What the worker computes about a stored document, reading it once in chunks.

Content may be anything (uploads are often binary): it is decoded as UTF-8 with
`errors="replace"`, so line and word counts of binary data are well defined, if not
meaningful.
"""

from __future__ import annotations

__all__ = ["EXCERPT_BYTES", "FileStats", "analyze_file", "count_words"]

import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path

from docservice.config import env_flag

CHUNK_BYTES = 1024 * 1024
EXCERPT_BYTES = 4096

# Deliberate failure switch for gonogo's own tests (see README): with
# DOCSERVICE_BREAK_UNIT_TEST=1 at import time, a word split across two read chunks is
# counted twice -- a realistic off-by-one that exactly one unit test catches.
BREAK_CHUNK_BOUNDARY = env_flag("DOCSERVICE_BREAK_UNIT_TEST")


@dataclass(frozen=True)
class FileStats:
    size: int
    sha256: str
    lines: int
    words: int
    chars: int
    excerpt: str  # the first EXCERPT_BYTES, decoded

    def as_dict(self) -> dict[str, int | str]:
        return {
            "size": self.size,
            "sha256": self.sha256,
            "lines": self.lines,
            "words": self.words,
            "chars": self.chars,
        }


def count_words(text: str) -> int:
    """Whitespace-separated words in a piece of text."""
    return len(text.split())


def analyze_file(path: Path, *, chunk_bytes: int = CHUNK_BYTES) -> FileStats:
    """Size, SHA-256, line/word/character counts and an excerpt, in one streaming pass."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    size = lines = words = chars = 0
    excerpt = bytearray()
    last_byte = b""
    ended_inside_word = False  # did the previous decoded piece end in the middle of a word?
    with path.open("rb") as stream:
        while True:
            chunk = stream.read(chunk_bytes)
            final = not chunk
            text = decoder.decode(chunk, final=final)
            if text:
                words += count_words(text)
                if ended_inside_word and not text[0].isspace() and not BREAK_CHUNK_BOUNDARY:
                    words -= 1  # the word continues from the previous piece
                ended_inside_word = not text[-1].isspace()
                chars += len(text)
            if final:
                break
            size += len(chunk)
            digest.update(chunk)
            lines += chunk.count(b"\n")
            last_byte = chunk[-1:]
            if len(excerpt) < EXCERPT_BYTES:
                excerpt += chunk[: EXCERPT_BYTES - len(excerpt)]
    if size and last_byte != b"\n":
        lines += 1  # a last line without its newline still counts
    return FileStats(
        size=size,
        sha256=digest.hexdigest(),
        lines=lines,
        words=words,
        chars=chars,
        excerpt=bytes(excerpt).decode("utf-8", errors="replace"),
    )
