"""The writer makes large trees in several threads: the tree is the one the calling thread
alone writes, byte for byte, whichever way each file gets there (written, copied from a
spill file, linked from the previous build), and a failure in any thread leaves out/ as it
was, with no thread writing on after the writer has given up."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventfeed import write
from eventfeed.errors import OutputError
from eventfeed.write import write_tree

#: enough files for several batches in every thread
FILES = 3000


@dataclass(frozen=True)
class Where:
    spill: Path
    offset: int
    size: int


class Spilling(Mapping[str, bytes]):
    """A build whose every third file is in a spill file (as the build's workers leave
    them), the others in memory."""

    def __init__(self, files: dict[str, bytes], spill: Path) -> None:
        self._files = files
        self._where: dict[str, Where] = {}
        with open(spill, "wb") as handle:
            for n, path in enumerate(sorted(files)):
                if n % 3 == 0 and path != "manifest.json":
                    handle.write(b"junk")  # offsets that are not aligned
                    self._where[path] = Where(spill, handle.tell(), len(files[path]))
                    handle.write(files[path])

    def __getitem__(self, path: str) -> bytes:
        if path in self._where:
            raise AssertionError(f"{path} is copied from its spill file, not read")
        return self._files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def size(self, path: str) -> int:
        return len(self._files[path])

    def spilled(self, path: str) -> Where | None:
        return self._where.get(path)


def build(tag: str, *, changed: int = FILES // 2) -> dict[str, bytes]:
    """Files in nested folders; the first ``changed`` differ between tags, the others not.
    The manifest names every file's digest, so that unchanged files are linked."""
    files: dict[str, bytes] = {}
    for i in range(FILES):
        body = f"{tag if i < changed else 'same'} {i}\n".encode() * (1 + i % 7)
        folder = ("events", f"calendars/k{i % 5}", f"feeds/c{i % 3}/x")[i % 3]
        files[f"{folder}/f{i:05d}.txt"] = body
    files["index.html"] = f"<p>{tag}</p>".encode()
    digests = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
    files["manifest.json"] = json.dumps(
        {"generator": "eventfeed", "tag": tag, "files": digests}, sort_keys=True
    ).encode()
    return files


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file and folder under ``folder``, read with plain os calls."""
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        for name in dirnames:
            found[os.path.normpath(os.path.join(rel, name)) + "/"] = b""
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as handle:
                found[os.path.normpath(os.path.join(rel, name))] = handle.read()
    return found


def expected(files: Mapping[str, bytes]) -> dict[str, bytes]:
    tree = dict(files)
    for path in files:
        parts = path.split("/")[:-1]
        for n in range(1, len(parts) + 1):
            tree["/".join(parts[:n]) + "/"] = b""
    return tree


class Placements:
    """Which threads placed files (wrote, copied or linked them), and when each ended."""

    def __init__(self, slow_after: threading.Event | None = None) -> None:
        self.names: list[str] = []
        self.ends: list[float] = []
        #: once set, each placement takes a while (as on a slow disk)
        self.slow_after = slow_after

    def spy(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def spying(*args: Any, **kwargs: Any) -> Any:
            self.names.append(threading.current_thread().name)
            try:
                if self.slow_after is not None and self.slow_after.is_set():
                    time.sleep(0.05)
                return real(*args, **kwargs)
            finally:
                self.ends.append(time.perf_counter())

        monkeypatch.setattr(owner, name, spying)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every tree of more than a few files in four threads, in small batches."""
    monkeypatch.setattr(write, "FILL_THREADS", 4)
    monkeypatch.setattr(write, "PARALLEL_FILES", 16)
    monkeypatch.setattr(write, "BATCH_FILES", 64)


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def serial(tmp_path: Path, name: str, *builds: Mapping[str, bytes]) -> dict[str, bytes]:
    out = tmp_path / name / "out"
    for files in builds:
        write_tree(out, files, events_dir=None)
    return read_tree(out)


def test_a_tree_made_in_threads_is_the_serial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = build("one"), build("two", changed=FILES // 10)
    spilled = Spilling(second, tmp_path / "second.spill")
    monkeypatch.setattr(write, "FILL_THREADS", 1)
    alone = serial(tmp_path, "serial", first, spilled)
    assert alone == expected(second)
    monkeypatch.setattr(write, "FILL_THREADS", 4)
    monkeypatch.setattr(write, "PARALLEL_FILES", 16)
    monkeypatch.setattr(write, "BATCH_FILES", 64)
    copied, linked = Placements(), Placements()
    copied.spy(monkeypatch, write, "_copy_spilled")
    linked.spy(monkeypatch, os, "link")
    out = tmp_path / "threads" / "out"
    write_tree(out, first, events_dir=None)
    unchanged = os.stat(out / "events" / "f02997.txt").st_ino
    write_tree(out, spilled, events_dir=None)
    assert read_tree(out) == alone
    # the unchanged files were linked, the changed spilled ones copied, all in the pool
    assert os.stat(out / "events" / "f02997.txt").st_ino == unchanged
    assert len(linked.names) == FILES - FILES // 2
    assert len(copied.names) == sum(first[path] != second[path] for path in spilled._where)
    for names in (copied.names, linked.names):
        assert {name.startswith("eventfeed-write") for name in names} == {True}
        assert len(set(names)) > 1
    assert leftovers(out) == []


def failing_on(call: int, failure: BaseException, real: Any, failed: threading.Event) -> Any:
    """``real``, except that its ``call``-th call (counted over all threads) raises, and
    sets ``failed``."""
    lock = threading.Lock()
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls["n"] += 1
            now = calls["n"]
        if now == call:
            failed.set()
            raise failure
        return real(*args, **kwargs)

    return wrapper


class Injected(BaseException):
    """Stands for the process dying at this step."""


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), Injected(), KeyboardInterrupt()],
    ids=["disk-full", "killed", "interrupted"],
)
@pytest.mark.parametrize("step", ["write_bytes", "copy_file_range", "link"])
def test_a_failure_in_the_middle_of_a_parallel_fill_leaves_out_as_it_was(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pool: None,
    step: str,
    failure: BaseException,
) -> None:
    import pathlib

    old, new = build("old"), build("new")
    out = tmp_path / "site" / "out"
    write_tree(out, old, events_dir=None)
    assert read_tree(out) == expected(old)
    files: Mapping[str, bytes] = new
    failed = threading.Event()
    if step == "write_bytes":
        monkeypatch.setattr(
            pathlib.Path, "write_bytes", failing_on(700, failure, pathlib.Path.write_bytes, failed)
        )
    elif step == "copy_file_range":
        files = Spilling(new, tmp_path / "new.spill")
        monkeypatch.setattr(
            os, "copy_file_range", failing_on(300, failure, os.copy_file_range, failed)
        )
    else:  # linking a file of the previous build
        monkeypatch.setattr(os, "lstat", failing_on(1000, failure, os.lstat, failed))
    placed = Placements(slow_after=failed)  # the other threads are still busy
    placed.spy(monkeypatch, pathlib.Path, "write_bytes")
    placed.spy(monkeypatch, write, "_copy_spilled")
    placed.spy(monkeypatch, write, "_link")
    if step == "link" and isinstance(failure, OSError):
        # a file of the previous build that cannot be looked at is written instead
        write_tree(out, files, events_dir=None)
        monkeypatch.undo()
        assert read_tree(out) == expected(new)
        return
    expected_error = OutputError if isinstance(failure, OSError) else type(failure)
    with pytest.raises(expected_error):
        write_tree(out, files, events_dir=None)
    given_up = time.perf_counter()
    time.sleep(0.1)
    monkeypatch.undo()
    assert max(placed.ends) < given_up, "a thread went on writing after the writer gave up"
    assert len(set(placed.names)) > 1  # the failure came while several threads wrote
    assert len(placed.ends) < len(new)
    assert read_tree(out) == expected(old)
    assert leftovers(out) == []
    # and the next build writes the whole new tree
    write_tree(out, files, events_dir=None)
    assert read_tree(out) == expected(new)
    assert leftovers(out) == []


def test_a_small_tree_is_made_in_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write, "PARALLEL_FILES", FILES * 2)
    placed = Placements()
    placed.spy(monkeypatch, write, "_link")
    out = tmp_path / "out"
    write_tree(out, build("one"), events_dir=None)
    write_tree(out, build("two", changed=10), events_dir=None)
    assert set(placed.names) == {threading.current_thread().name}
    assert len(placed.names) == FILES - FILES // 2
    assert read_tree(out) == expected(build("two", changed=10))
