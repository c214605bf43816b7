"""An event taken from the last build (its key unchanged) names its files in the previous
out/; when those files change between the compiling and the writing, the writer gets the
event's bytes made again, never the changed ones."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventfeed import build as build_module
from eventfeed.cli import main
from eventfeed.pipeline import compile_into
from eventfeed.write import write_tree

from .bench_records import generate
from .test_cache import snapshot

RECORDS = 40
AS_OF = "2023-11-14"
NOW = datetime.fromtimestamp(1700000000, UTC)


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    events = generate(tmp_path / "records", RECORDS)
    out = tmp_path / "out"
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", AS_OF]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return events, out


def _compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = build_module._each

    def counting(steps: object, context: object, todo: list[build_module.Event]) -> object:
        seen.extend(e.id for e in todo)
        return real(steps, context, todo)  # type: ignore[arg-type]

    monkeypatch.setattr(build_module, "_each", counting)
    return seen


def test_files_of_a_reused_event_changed_in_out_are_made_again(
    built: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, out = built
    expected = snapshot(out)
    compiled = _compiled(monkeypatch)
    _, artifacts = compile_into(events, out, NOW, as_of=date.fromisoformat(AS_OF))
    assert compiled == []  # every event taken from the last build
    pages = sorted(p for p in expected if p.startswith("events/") and p.endswith(".html"))
    calendars = sorted(p for p in expected if p.startswith("events/") and p.endswith(".ics"))
    one, other = pages[3], calendars[5]
    assert artifacts.digest(one) == build_module.file_digest(expected[one])
    # Changed under the build: one to other bytes of the same size, one to other bytes.
    (out / one).write_bytes(bytes(b ^ 1 for b in expected[one]))
    (out / other).unlink()
    (out / other).write_bytes(b"BEGIN:VCALENDAR\r\n")
    # out/ is not where the writer reads them from, once swapped: the files are read (or
    # made again) while the new tree is filled.
    write_tree(out, artifacts, events_dir=events, files=artifacts.manifest_files)
    assert snapshot(out) == expected
    assert sorted(compiled) == sorted({Path(one).stem, Path(other).stem})


def test_a_reused_file_read_from_the_previous_out_is_its_bytes(
    built: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged, a reused file is read from the previous out/, not compiled."""
    events, out = built
    expected = snapshot(out)
    compiled = _compiled(monkeypatch)
    _, artifacts = compile_into(events, out, NOW, as_of=date.fromisoformat(AS_OF))
    reused = [p for p in expected if p.startswith("events/")]
    assert {p: artifacts[p] for p in reused} == {p: expected[p] for p in reused}
    assert compiled == []
    # Gone from out/ altogether, each is made again.
    shutil.rmtree(out / "events")
    assert {p: artifacts[p] for p in reused} == {p: expected[p] for p in reused}
    assert len(compiled) == len(reused)
