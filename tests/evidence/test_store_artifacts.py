"""Artifacts: content-addressed files, stored once, copied by streaming."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from gonogo.errors import InputFileError
from gonogo.evidence import Store

BeginRun = Callable[..., str]  # the `begin_run` fixture


def stored_files(artifacts_dir: Path) -> list[Path]:
    return sorted(p for p in artifacts_dir.rglob("*") if p.is_file())


def test_bytes_round_trip(store: Store, begin_run: BeginRun, artifacts_dir: Path) -> None:
    run_id = begin_run()
    content = b"GET /health 200\n" * 100
    sha256 = hashlib.sha256(content).hexdigest()

    ref = store.add_artifact(run_id, content, name="api.log", media_type="text/plain", check="unit")

    assert (ref.sha256, ref.name, ref.size) == (sha256, "api.log", len(content))
    path = store.artifact_path(sha256)
    assert path == artifacts_dir / sha256[:2] / sha256
    assert path.read_bytes() == content
    (record,) = store.artifacts(run_id)
    assert (record.sha256, record.name, record.size) == (sha256, "api.log", len(content))
    assert (record.media_type, record.check) == ("text/plain", "unit")
    assert record.created_at.tzinfo is not None


def test_file_round_trip(store: Store, begin_run: BeginRun, artifacts_dir: Path, tmp_path: Path) -> None:
    run_id = begin_run()
    source = tmp_path / "junit.xml"
    source.write_bytes(b"<testsuite tests='1'/>")

    ref = store.add_artifact(run_id, source, name="junit.xml")

    assert store.artifact_path(ref.sha256).read_bytes() == source.read_bytes()
    assert source.exists()  # copied, not moved
    (record,) = store.artifacts(run_id)
    assert (record.media_type, record.check) == ("application/octet-stream", None)
    # Evidence is not edited in place; nothing half-written is left around.
    assert not store.artifact_path(ref.sha256).stat().st_mode & stat.S_IWUSR
    assert stored_files(artifacts_dir) == [store.artifact_path(ref.sha256)]


def test_same_content_is_one_file(
    store: Store, begin_run: BeginRun, artifacts_dir: Path, tmp_path: Path
) -> None:
    first, second = begin_run(), begin_run()
    source = tmp_path / "report.json"
    source.write_bytes(b'{"ok": true}')
    refs = [
        store.add_artifact(first, b'{"ok": true}', name="report.json"),
        store.add_artifact(first, source, name="copy.json"),
        store.add_artifact(second, source, name="report.json"),
    ]
    assert len({ref.sha256 for ref in refs}) == 1
    assert stored_files(artifacts_dir) == [store.artifact_path(refs[0].sha256)]
    assert sorted(a.name for a in store.artifacts(first)) == ["copy.json", "report.json"]
    assert [a.name for a in store.artifacts(second)] == ["report.json"]


def test_two_checks_writing_the_same_name_keep_both(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    unit = store.add_artifact(run_id, b"unit output", name="tests.log", check="unit")
    e2e = store.add_artifact(run_id, b"e2e output", name="tests.log", check="e2e")
    service = store.add_artifact(run_id, b"api output", name="tests.log")  # the run's own
    assert (unit.name, e2e.name, service.name) == ("tests.log", "tests.log", "tests.log")
    stored = {(a.check, a.name): a.sha256 for a in store.artifacts(run_id)}
    assert stored == {("unit", "tests.log"): unit.sha256, ("e2e", "tests.log"): e2e.sha256,
                      (None, "tests.log"): service.sha256}  # fmt: skip
    for ref in (unit, e2e, service):
        assert store.artifact_path(ref.sha256).exists()


def test_a_check_storing_a_name_again_gets_the_next_free_name(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    first = store.add_artifact(run_id, b"first attempt", name="logs/output.log", check="unit")
    again = store.add_artifact(run_id, b"first attempt", name="logs/output.log", check="unit")
    second = store.add_artifact(run_id, b"second attempt", name="logs/output.log", check="unit")
    third = store.add_artifact(run_id, b"third attempt", name="logs/output.log", check="unit")
    bare = [store.add_artifact(run_id, content, name="README", check="unit") for content in (b"a", b"b")]
    assert again == first  # the same evidence is kept once
    assert [second.name, third.name] == ["logs/output-2.log", "logs/output-3.log"]
    assert [ref.name for ref in bare] == ["README", "README-2"]
    names = {a.name: a.sha256 for a in store.artifacts(run_id)}
    assert names == {"logs/output.log": first.sha256, "logs/output-2.log": second.sha256,
                     "logs/output-3.log": third.sha256, "README": bare[0].sha256,
                     "README-2": bare[1].sha256}  # fmt: skip


def test_missing_file_is_a_clear_error(sqlite_store: Store, tmp_path: Path, artifacts_dir: Path) -> None:
    run_id = sqlite_store.begin_run(
        name="x",
        plan_path="x",
        plan_hash="x",
        plan_text="",
        git_commit=None,
        host="h",
        tool_versions={},
        owner_pid=os.getpid(),
    )
    missing = tmp_path / "nothing-here.xml"
    with pytest.raises(InputFileError, match=r"cannot store artifact 'junit': .*nothing-here"):
        sqlite_store.add_artifact(run_id, missing, name="junit")
    with pytest.raises(InputFileError, match="cannot store artifact 'dir'"):
        sqlite_store.add_artifact(run_id, tmp_path, name="dir")
    assert sqlite_store.artifacts(run_id) == []
    assert stored_files(artifacts_dir) == []


def test_artifact_path_refuses_what_is_not_a_digest(sqlite_store: Store) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        sqlite_store.artifact_path("../../etc/passwd")


def test_large_file_is_streamed(sqlite_store: Store, tmp_path: Path) -> None:
    run_id = sqlite_store.begin_run(
        name="x",
        plan_path="x",
        plan_hash="x",
        plan_text="",
        git_commit=None,
        host="h",
        tool_versions={},
        owner_pid=os.getpid(),
    )
    size = 100 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    source = tmp_path / "big.bin"
    with open(source, "wb") as out:
        for i in range(size // len(block)):
            chunk = bytes([i % 256]) + block[1:]  # no two blocks alike
            digest.update(chunk)
            out.write(chunk)

    tracemalloc.start()
    try:
        ref = sqlite_store.add_artifact(run_id, source, name="big.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (ref.sha256, ref.size) == (digest.hexdigest(), size)
    assert sqlite_store.artifact_path(ref.sha256).stat().st_size == size
    # Reading it whole would take 100 MB; a streaming copy needs about one chunk.
    assert peak < 8 * 1024 * 1024, f"peak Python memory {peak / 1e6:.1f} MB"
