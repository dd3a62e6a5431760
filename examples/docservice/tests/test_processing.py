"""What the worker computes about a file, in one streaming pass."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from docservice.processing import EXCERPT_BYTES, analyze_file, count_words


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "doc"
    path.write_bytes(content)
    return path


def test_text_file_counts(tmp_path: Path) -> None:
    content = b"hello world\nsecond line here\n\nlast\n"
    stats = analyze_file(write(tmp_path, content))
    assert stats.size == len(content)
    assert stats.sha256 == hashlib.sha256(content).hexdigest()
    assert (stats.lines, stats.words, stats.chars) == (4, 6, len(content))
    assert stats.excerpt == content.decode()
    assert stats.as_dict() == {
        "size": len(content),
        "sha256": stats.sha256,
        "lines": 4,
        "words": 6,
        "chars": len(content),
    }


def test_last_line_without_newline_counts(tmp_path: Path) -> None:
    assert analyze_file(write(tmp_path, b"one\ntwo")).lines == 2


def test_empty_file(tmp_path: Path) -> None:
    stats = analyze_file(write(tmp_path, b""))
    assert (stats.size, stats.lines, stats.words, stats.chars, stats.excerpt) == (0, 0, 0, 0, "")
    assert stats.sha256 == hashlib.sha256(b"").hexdigest()


def test_words_split_across_read_chunks_count_once(tmp_path: Path) -> None:
    # with 4-byte reads "alphabet soup\nfor everyone" is cut inside most of its words
    content = b"alphabet soup\nfor everyone"
    assert analyze_file(write(tmp_path, content), chunk_bytes=4).words == 4


def test_multibyte_characters_across_chunks_decode_cleanly(tmp_path: Path) -> None:
    content = "naïve café — über straße".encode()
    stats = analyze_file(write(tmp_path, content), chunk_bytes=3)
    assert stats.chars == len(content.decode())
    assert "\ufffd" not in stats.excerpt


def test_binary_content_is_handled(tmp_path: Path) -> None:
    content = os.urandom(3 * EXCERPT_BYTES)
    stats = analyze_file(write(tmp_path, content), chunk_bytes=1000)
    assert stats.size == len(content)
    assert stats.sha256 == hashlib.sha256(content).hexdigest()
    assert stats.lines >= content.count(b"\n")
    assert stats.excerpt == content[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def test_count_words() -> None:
    assert count_words("  a\tb\nc  ") == 3
    assert count_words("") == 0
