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
