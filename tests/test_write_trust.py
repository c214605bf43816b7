"""The writer keeps a file of the previous out/ only when it still holds the bytes the
manifest names: a file edited by hand, even to the same size and with its modification time
put back, is written again by the next build. Files the saved fingerprint vouches for (by
their change times) are linked without being read."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from eventfeed import cache, write

from .conftest import MINIMAL, Run, SiteDir

AS_OF = "2022-12-01"


@pytest.fixture
def two(site: SiteDir, monkeypatch: pytest.MonkeyPatch) -> SiteDir:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1670000000")
    site.record("a.md", MINIMAL)
    site.record("b.md", MINIMAL.replace("A meeting", "B meeting"))
    return site


def build(run: Run) -> str:
    result = run("build", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    return result.output


def tamper(path: Path) -> bytes:
    """Change a file's bytes, keeping its size and modification time; return the original."""
    original = path.read_bytes()
    info = path.stat()
    path.write_bytes(
        original.swapcase() if original.swapcase() != original else b"x" * len(original)
    )
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == len(original)
    assert path.read_bytes() != original
    return original


def edit_wording(site: SiteDir, n: int) -> None:
    site.record("a.md", MINIMAL.replace("Body.", f"Body, edited {n}."))


def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = write.read_digest

    def spy(path: str) -> str | None:
        seen.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(write, "read_digest", spy)
    return seen


@pytest.mark.parametrize("name", ["events/b.ics", "icon.svg", "events/b.html"])
def test_a_file_edited_by_hand_is_repaired_by_the_next_build(
    two: SiteDir, run: Run, name: str
) -> None:
    build(run)
    edit_wording(two, 1)
    build(run)  # now the unchanged files are linked from the previous tree
    original = tamper(two.out / name)
    edit_wording(two, 2)  # a real build, not "nothing changed"
    build(run)
    assert (two.out / name).read_bytes() == original


@pytest.mark.parametrize("aside", [False, True])
@pytest.mark.parametrize("name", ["icon.svg", "events/b.ics"])
def test_a_file_edited_by_hand_is_repaired_when_nothing_else_changed(
    two: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch, aside: bool, name: str
) -> None:
    """Nothing vouches for the files of out/ (no fingerprint): the writer reads each back,
    half of them in a forked process when they are many (here: always, with ``aside``), and
    a file edited by hand in either half is written again."""
    if aside:
        monkeypatch.setattr(write, "DIGEST_ASIDE_FILES", 2)
    build(run)
    original = tamper(two.out / name)
    shutil.rmtree(os.environ["EVENTFEED_CACHE_DIR"])  # no fingerprint: the writer decides
    build(run)
    assert (two.out / name).read_bytes() == original


def test_files_read_back_beside_are_read_as_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digests read in two processes are those read in one, in order, a file that
    cannot be read included (None); when the forked process cannot read its half, this one
    does."""
    paths = []
    for n in range(9):
        (tmp_path / f"f{n}").write_bytes(bytes([n]) * n)
        paths.append(str(tmp_path / f"f{n}"))
    paths.insert(7, str(tmp_path / "missing"))
    alone = [write.read_digest(p) for p in paths]
    assert alone[7] is None
    assert alone.count(None) == 1
    monkeypatch.setattr(write, "DIGEST_ASIDE_FILES", 2)
    started: list[int] = []
    start = write.Forked.start

    def starting(work: Any) -> Any:
        made = start(work)
        started.append(made.pid if made is not None else 0)
        return made

    monkeypatch.setattr(write.Forked, "start", starting)
    assert write.read_digests(paths) == alone
    assert len(started) == 1
    assert started[0] > 0
    monkeypatch.setattr(write.Forked, "start", lambda work: None)  # no fork here
    assert write.read_digests(paths) == alone


def test_files_vouched_for_are_linked_unread_and_an_edit_after_is_caught(
    two: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No racy margin: the fingerprint vouches for every file written before it was saved.
    monkeypatch.setattr(cache, "FINE_RACY_NS", 0)
    monkeypatch.setattr(cache, "RACY_NS", 0)
    build(run)
    edit_wording(two, 1)
    seen = reads(monkeypatch)
    build(run)
    assert seen == []  # nothing read: every kept file was linked on the fingerprint's word
    time.sleep(0.05)  # past the file system's tick
    original = tamper(two.out / "events" / "b.ics")
    edit_wording(two, 2)
    build(run)
    assert seen == ["b.ics"]
    assert (two.out / "events" / "b.ics").read_bytes() == original


def test_the_fingerprint_vouches_only_for_the_folder_it_saw(two: SiteDir, run: Run) -> None:
    build(run)
    assert cache.written_before(two.out) is not None
    copy = two.root / "copy"
    shutil.copytree(two.out, copy)
    shutil.rmtree(two.out)
    copy.rename(two.out)  # the same path, another folder
    assert cache.written_before(two.out) is None


def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits of the fingerprint's module, recorded (and waited)."""
    seen: list[float] = []
    real = time.sleep

    def sleep(seconds: float) -> None:
        seen.append(seconds)
        real(seconds)

    monkeypatch.setattr(cache.time, "sleep", sleep)
    return seen


@pytest.mark.usefixtures("full_rebuilds")
@pytest.mark.parametrize("clock", ["file system", "none"])
def test_the_save_reads_back_none_of_the_files_just_written(
    two: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch, clock: str
) -> None:
    """On a file system with fine times, the save measures the files just written against
    the file system's own clock, once it has moved past the writer's last change, and
    neither reads any back nor waits. Where that clock cannot be read, it reads them back
    (a few files), or waits out the racy margin (many). Either way, the next build finds
    nothing changed."""
    digests: list[Path] = []
    original = cache._file_digest

    def spy(path: Path) -> str | None:
        digests.append(path)
        return original(path)

    monkeypatch.setattr(cache, "_file_digest", spy)
    if clock == "none":
        monkeypatch.setattr(cache, "_file_clock", lambda out: None)
    waited = naps(monkeypatch)
    build(run)
    if clock == "none":
        assert len(digests) > 10  # a few files, just written: each is read back
    else:
        assert digests == []
    assert waited == []
    digests.clear()
    monkeypatch.setattr(cache, "WAIT_FILES", 0)  # many files
    edit_wording(two, 1)
    build(run)
    assert digests == []
    assert waited == ([cache.FINE_RACY_NS / 1e9] if clock == "none" else [])
    assert [p.name for p in two.out.parent.iterdir() if p.name.startswith(".out")] == []
    assert "up to date" in run("build", "--as-of", AS_OF).output


@pytest.mark.usefixtures("full_rebuilds")
def test_a_save_from_the_look_before_the_build_waits_for_nothing(
    two: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild whose out/ was looked at beside the records saves from that look, measuring
    only the files it wrote against the file system's clock: no wait there either."""
    monkeypatch.setattr(cache, "SCAN_ASIDE_CHUNKS", 0)
    # files written a moment ago count as old to the look (as in a build that takes
    # seconds); a margin waited out would still show, as a wait of nothing
    monkeypatch.setattr(cache, "FINE_RACY_NS", 0)
    for n in range(20):  # an edit of one changes fewer than half of the files
        two.record(f"c{n}.md", MINIMAL.replace("A meeting", f"Meeting {n}"))
    merged: list[bool] = []
    real = cache.Fingerprint._merged

    def spy(self: cache.Fingerprint, *args: Any) -> Any:
        state = real(self, *args)
        merged.append(state is not None)
        return state

    monkeypatch.setattr(cache.Fingerprint, "_merged", spy)
    build(run)
    edit_wording(two, 1)
    build(run)
    waited = naps(monkeypatch)
    edit_wording(two, 2)
    build(run)
    assert merged[-1] is True
    assert waited == []
    assert "up to date" in run("build", "--as-of", AS_OF).output


@pytest.mark.usefixtures("full_rebuilds")
def test_a_file_edited_at_once_after_a_build_is_caught(
    two: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured against the file system's clock, a file the save vouches for shows an edit
    made right after the build (no tick waited) in its change time."""
    build(run)
    original = tamper(two.out / "events" / "b.ics")
    seen = reads(monkeypatch)
    edit_wording(two, 1)
    build(run)
    assert seen == ["b.ics"]
    assert (two.out / "events" / "b.ics").read_bytes() == original


def test_the_file_clock_is_past_the_last_change_beside_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for n in range(50):
        (out / f"{n}.txt").write_bytes(b"x")
    clock = cache._file_clock(out)
    assert clock is not None
    assert clock > max(max(p.stat().st_ctime_ns, p.stat().st_mtime_ns) for p in out.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # its folders are gone
    # a folder on another file system than out/ (out/ a mount point) is not its clock
    assert cache._folder_time(tmp_path, "out", os.lstat(out).st_dev + 1) is None


def test_a_coarse_file_clock_is_waited_for_and_one_that_stays_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first folder may share its tick with the writer's last change: the clock is the
    first later one. A clock that does not move within the margin is not read at all."""
    out = tmp_path / "out"
    out.mkdir()
    ticks = iter([7, 7, 7, 9])
    monkeypatch.setattr(cache, "_folder_time", lambda parent, name, device: next(ticks))
    waited = naps(monkeypatch)
    assert cache._file_clock(out) == 9
    assert waited == [cache.CLOCK_POLL_NS / 1e9] * 2
    monkeypatch.setattr(cache, "_folder_time", lambda parent, name, device: 7)
    monkeypatch.setattr(cache, "FINE_RACY_NS", 20 * cache.CLOCK_POLL_NS)
    assert cache._file_clock(out) is None
    monkeypatch.setattr(cache, "_folder_time", lambda parent, name, device: None)
    assert cache._file_clock(out) is None


@pytest.mark.usefixtures("full_rebuilds")
def test_a_build_parses_the_manifest_of_out_once(
    two: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer takes the new manifest's digests from the build, not by parsing what it
    has just made, so the old manifest, parsed when the build began, is not parsed again
    (with 100,000 events each parse took a second); the folder written is the same."""
    build(run)
    before = two.root / "out-before"
    shutil.copytree(two.out, before)
    edit_wording(two, 1)
    parsed: list[object] = []
    real = write.json.loads

    def counting(text: str | bytes) -> object:
        found = real(text)
        if isinstance(found, dict) and found.get("generator") == "eventfeed":
            parsed.append(found.get("as_of"))
        return found

    def tree(out: Path) -> dict[str, bytes]:
        return {
            p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
        }

    with monkeypatch.context() as patch:
        patch.setattr(write, "_PARSED", None)
        patch.setattr(write.json, "loads", counting)
        build(run)
    assert parsed == [AS_OF]
    written = tree(two.out)
    # The same build again from the same out/, the writer reading the new digests itself.
    shutil.rmtree(two.out)
    shutil.copytree(before, two.out)
    real_write = write.write_tree

    def parsing(*args: Any, **kwargs: Any) -> None:
        kwargs.pop("files")
        real_write(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(write, "write_tree", parsing)
        build(run)
    assert tree(two.out) == written
