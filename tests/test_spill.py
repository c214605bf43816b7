"""Large files of the whole steps go to a spill file as they are made; the bytes written are
the same as when every file stays in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventfeed import build
from eventfeed.build import Artifacts, Spilled, compile_site
from eventfeed.load import load_site

SHIPPED = Path(__file__).resolve().parent.parent / "events"
NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def _files(artifacts: Artifacts) -> dict[str, bytes]:
    return {path: artifacts[path] for path in artifacts}


def test_spilled_whole_step_files_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    site = load_site(SHIPPED, today=NOW.date())
    kept = compile_site(site, None, NOW, jobs=1)
    monkeypatch.setattr(build, "SPILL_BYTES", 1)
    spilled = compile_site(site, None, NOW, jobs=1)
    assert _files(spilled) == _files(kept)
    on_disk = [p for p in spilled if isinstance(spilled._files[p], Spilled)]
    assert {"calendar.ics", "index.html"} <= set(on_disk)
    assert [spilled.digest(p) for p in spilled] == [kept.digest(p) for p in kept]
    assert [spilled.size(p) for p in spilled] == [len(kept[p]) for p in kept]


def test_the_spill_folder_goes_with_the_artifacts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "SPILL_BYTES", 4)
    artifacts = Artifacts()
    artifacts.add("big.txt", b"0123456789")
    artifacts.add("small.txt", b"012")
    folder = Path(artifacts.spill_folder())
    assert isinstance(artifacts._files["big.txt"], Spilled)
    assert artifacts._files["small.txt"] == b"012"
    assert (artifacts["big.txt"], artifacts["small.txt"]) == (b"0123456789", b"012")
    assert folder.is_dir()
    del artifacts
    assert not folder.exists()


def _written(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("copy_fails", [None, "EXDEV", "ENOSYS"])
def test_spilled_files_are_written_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, copy_fails: str | None
) -> None:
    """The writer copies a spilled file from its spill file in the kernel; where the system
    cannot (another file system, an old kernel), it writes the bytes the plain way."""
    import errno
    import os

    from eventfeed.write import write_tree

    copied: list[int] = []
    if copy_fails is None and hasattr(os, "copy_file_range"):
        real = os.copy_file_range

        def counting(*args: int) -> int:
            copied.append(args[2])
            return real(*args)

        monkeypatch.setattr(os, "copy_file_range", counting)
    if copy_fails is not None:
        code = getattr(errno, copy_fails)

        def refuse(*args: object) -> int:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    monkeypatch.setattr(build, "SPILL_BYTES", 100)
    artifacts = Artifacts()
    expected = {
        "a/big.ics": bytes(range(256)) * 40,  # spilled
        "a/small.txt": b"kept in memory",
        "b/c/big.html": "é".encode() * 5000,  # spilled, after another file in the spill
        "empty.txt": b"",
    }
    for path, data in expected.items():
        artifacts.add(path, data)
    assert artifacts.spilled("a/big.ics") is not None
    assert artifacts.spilled("a/small.txt") is None
    out = tmp_path / "out"
    write_tree(out, artifacts, events_dir=None)
    assert _written(out) == expected
    if copy_fails is None and hasattr(os, "copy_file_range"):  # the two spilled files
        assert sorted(copied) == sorted([10240, 10000])
    assert oct((out / "a" / "big.ics").stat().st_mode & 0o777) == oct(
        (out / "a" / "small.txt").stat().st_mode & 0o777
    )


def test_a_file_made_in_parts_is_written_a_part_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parts go to the spill file as they come once they reach the spill size: the parts
    after that are made only when the ones before are written, and never all held."""
    from eventfeed.state import file_digest

    monkeypatch.setattr(build, "SPILL_BYTES", 10)
    made: list[int] = []

    def parts() -> Iterator[bytes]:
        for i in range(6):
            made.append(i)
            yield f"part {i};".encode()  # 7 bytes each

    artifacts = Artifacts()
    artifacts.add_parts("big.txt", parts)
    artifacts.add_parts("small.txt", lambda: [b"a", b"b", b""])
    artifacts.add_parts("empty.txt", lambda: [])
    whole = b"".join(f"part {i};".encode() for i in range(6))
    found = artifacts._files["big.txt"]
    assert isinstance(found, Spilled)
    assert made == [0, 1, 2, 3, 4, 5]
    assert (found.size, found.digest) == (len(whole), file_digest(whole))
    assert artifacts["big.txt"] == whole
    assert artifacts._files["small.txt"] == b"ab"
    assert artifacts._files["empty.txt"] == b""
    with pytest.raises(build.DuplicatePath):
        artifacts.add_parts("big.txt", parts)


def _noted_parts(calls: list[str]) -> Callable[[], Iterator[bytes]]:
    """A file of two parts of four bytes, noting in ``calls`` each time it is made."""

    def parts() -> Iterator[bytes]:
        calls.append("made")
        yield b"0123"
        yield b"4567"

    return parts


def test_a_file_in_parts_that_cannot_be_spilled_is_made_again_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A full disk half-way through: the parts already made are gone, so the file is made
    again from the start and kept in memory."""
    monkeypatch.setattr(build, "SPILL_BYTES", 4)
    calls: list[str] = []
    parts = _noted_parts(calls)
    artifacts = Artifacts()
    (tmp_path / "spill").mkdir()
    (tmp_path / "spill" / "whole.spill").mkdir()  # opening it for writing fails
    monkeypatch.setattr(artifacts, "spill_folder", lambda: str(tmp_path / "spill"))
    artifacts.add_parts("big.txt", parts)
    assert calls == ["made", "made"]
    assert artifacts._files["big.txt"] == b"01234567"


def test_with_a_staging_tree_a_large_file_is_written_at_its_path_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Where the workers staged their files, a large file of a whole step goes there too, a
    part at a time, and the writer finds it in place; a small one stays in memory, and a
    path the writer would refuse is spilled, to be refused there."""
    from eventfeed.build import Staged
    from eventfeed.state import file_digest

    monkeypatch.setattr(build, "SPILL_BYTES", 10)
    artifacts = Artifacts()
    artifacts.staging = str(tmp_path / "tree")
    made: list[int] = []

    def parts() -> Iterator[bytes]:
        for i in range(4):
            made.append(i)
            yield f"part {i};".encode()

    whole = b"".join(f"part {i};".encode() for i in range(4))
    artifacts.add_parts("calendars/archive/big.ics", parts)
    artifacts.add("small.txt", b"012")
    artifacts.add("../outside.txt", b"0123456789ab")
    assert artifacts._files["calendars/archive/big.ics"] == Staged(file_digest(whole), len(whole))
    assert made == [0, 1, 2, 3]  # made once
    assert (tmp_path / "tree" / "calendars" / "archive" / "big.ics").read_bytes() == whole
    assert artifacts.staged("calendars/archive/big.ics") is not None
    assert artifacts["calendars/archive/big.ics"] == whole
    assert artifacts._files["small.txt"] == b"012"
    assert isinstance(artifacts._files["../outside.txt"], Spilled)
    assert not (tmp_path / "outside.txt").exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["big.ics"]


def test_a_large_file_the_staging_tree_cannot_take_is_spilled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A file where the file's folder must go: nothing is written there, and the file is
    made again into the spill file, with the same bytes."""
    monkeypatch.setattr(build, "SPILL_BYTES", 4)
    calls: list[str] = []
    parts = _noted_parts(calls)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "calendars").write_bytes(b"in the way")
    artifacts = Artifacts()
    artifacts.staging = str(tmp_path / "tree")
    artifacts.add_parts("calendars/big.ics", parts)
    assert calls == ["made", "made"]
    assert isinstance(artifacts._files["calendars/big.ics"], Spilled)
    assert artifacts["calendars/big.ics"] == b"01234567"
    assert (tmp_path / "tree" / "calendars").read_bytes() == b"in the way"


def test_the_page_step_lets_go_of_what_each_page_was_made_of() -> None:
    """A worker that makes many event pages keeps no per-event working state of them; the
    pages made afterwards (and again) are the same bytes."""
    from eventfeed import pages
    from eventfeed.build import BuildContext
    from eventfeed.state import advance

    site = load_site(SHIPPED, today=NOW.date())
    context = BuildContext(site=site, history=advance(None, site.events, NOW), as_of=NOW.date())
    renderer = pages.Renderer(context)
    context._memo["shared:pages"] = renderer
    first = [pages.compile_event_page(context, event) for event in site.events]
    held = (renderer._occurrences, renderer._facts, renderer._cards, renderer._items)
    assert [len(memo) for memo in held] == [0, 0, 0, 0]
    assert len(renderer._listed) == len(site.events)  # the listings and keys still need it
    again = [pages.compile_event_page(context, event) for event in site.events]
    assert again == first
    fresh = pages.Renderer(context)
    assert [fresh.event(e) for e in site.events] == [dict(f[0]).popitem()[1] for f in first]


def test_the_paths_are_listed_in_order_as_files_are_added() -> None:
    """The order of the paths is kept between listings, and made again once a path is added
    (a path is never taken out, and adding one twice is refused)."""
    artifacts = Artifacts(spill_bytes=1 << 20)
    for path in ("b.ics", "a/z.html", "c.json"):
        artifacts.add(path, path.encode())
    assert list(artifacts) == ["a/z.html", "b.ics", "c.json"]
    assert list(artifacts) == ["a/z.html", "b.ics", "c.json"]
    with pytest.raises(build.DuplicatePath):
        artifacts.add("b.ics", b"again")
    artifacts.add("a/a.html", b"new")
    assert list(artifacts) == ["a/a.html", "a/z.html", "b.ics", "c.json"]
    assert dict(artifacts) == {
        "a/a.html": b"new",
        "a/z.html": b"a/z.html",
        "b.ics": b"b.ics",
        "c.json": b"c.json",
    }
