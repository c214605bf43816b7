"""Large files of the whole steps go to a spill file as they are made; the bytes written are
the same as when every file stays in memory."""

from __future__ import annotations

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
