"""The build keeps the cycle collector from walking what it holds for the whole build, and
leaves the collector as it found it, whether the build succeeds or fails."""

from __future__ import annotations

import gc
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from eventfeed import cache, pipeline
from eventfeed.errors import OutputError

from .bench_records import generate

NOW = datetime.fromtimestamp(1700000000, UTC)


@pytest.fixture
def events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    return generate(tmp_path / "records", 5)


def test_the_previous_build_is_read_with_the_loaded_site_frozen(
    events: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen: list[int] = []
    real = pipeline.read_manifest

    def reading(out: Path, *known: Any) -> object:
        frozen.append(gc.get_freeze_count())
        return real(out, *known)

    monkeypatch.setattr(pipeline, "read_manifest", reading)
    assert gc.get_freeze_count() == 0
    pipeline.compile_into(events, tmp_path / "out", NOW, as_of=date(2023, 11, 14))
    assert frozen[0] > 0
    assert gc.get_freeze_count() == 0


def test_a_refused_target_leaves_nothing_frozen(events: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not a build", encoding="utf-8")
    with pytest.raises(OutputError):
        pipeline.compile_into(events, out, NOW, as_of=date(2023, 11, 14))
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_saving_a_fingerprint_leaves_the_collector_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    seen: list[bool] = []
    real = cache._out_state

    def state(out: Path, **shared: bool) -> object:
        seen.append(gc.isenabled())
        return real(out, **shared)

    monkeypatch.setattr(cache, "_out_state", state)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_bytes(b"{}")
    fingerprint = cache.Fingerprint(tmp_path / "fp.json", "inputs", "settings", None, {}, {})
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        fingerprint.save(out, "", {"manifest.json": b"{}"})
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False]
