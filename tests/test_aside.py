"""The calendars' whole step run in a forked process beside the others (``_Aside``): the
same bytes as made in one process, what it takes from the last build made again when the
previous out/ changes under the build, and a process that fails or dies leaves the step to
the build, which then reports what the step raises, without a traceback of the process."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventfeed import build as build_module
from eventfeed import ical
from eventfeed.build import Staged, _Known, compile_site
from eventfeed.cli import main
from eventfeed.ical import CalendarTooLarge
from eventfeed.load import load_site
from eventfeed.pipeline import compile_into
from eventfeed.write import write_tree

from .bench_records import generate
from .test_cache import snapshot
from .test_incremental import _limited

RECORDS = 40
AS_OF = "2023-11-14"
NOW = datetime.fromtimestamp(1700000000, UTC)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("records"), RECORDS)


@pytest.fixture
def finished(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each aside process gave back: True when it made the step, False when it did
    not (the build then made it)."""
    seen: list[bool] = []
    real = build_module._Aside.finish

    def spying(self: build_module._Aside, *args: object) -> bool:
        done = real(self, *args)  # type: ignore[arg-type]
        seen.append(done)
        return done

    monkeypatch.setattr(build_module._Aside, "finish", spying)
    return seen


def _dying(*args: object) -> None:
    os._exit(3)


def test_the_calendars_made_aside_are_the_bytes_made_in_one_process(
    events: Path, finished: list[bool]
) -> None:
    site = load_site(events, today=NOW.date())
    alone = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=1)
    assert finished == []
    beside = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=2)
    assert finished == [True]
    assert list(beside) == list(alone)
    assert [p for p in alone if beside[p] != alone[p]] == []
    assert any(p.startswith("calendars/") for p in alone)


def test_the_files_made_aside_past_their_own_spill_size_come_back_staged(
    events: Path, finished: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the process keeps as bytes is sent through a pipe and held by the first process
    until written: from a smaller size than the first process spills its own, it writes its
    files at their paths in the staging tree the workers wrote theirs into."""
    site = load_site(events, today=NOW.date())
    alone = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=1)
    sizes = sorted(len(alone[p]) for p in alone if p.startswith("calendars/"))
    limit = sizes[len(sizes) // 2]  # half of the calendars at least, half under it
    assert limit < build_module.SPILL_BYTES
    monkeypatch.setattr(build_module, "ASIDE_SPILL_BYTES", limit)
    beside = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=2)
    assert finished == [True]
    assert [p for p in alone if beside[p] != alone[p]] == []
    calendars = [p for p in alone if p.startswith("calendars/")]
    staged = {p for p in calendars if isinstance(beside._files[p], Staged)}
    assert staged == {p for p in calendars if len(alone[p]) >= limit}
    assert {p for p in calendars if isinstance(beside._files[p], bytes)} == set(calendars) - staged
    assert beside.staging is not None
    for path in staged:  # at its own path, with its own digest and size
        assert Path(beside.staging, path).read_bytes() == alone[path]
        assert (beside.digest(path), beside.size(path)) == (alone.digest(path), len(alone[path]))


def test_an_aside_process_that_dies_leaves_the_step_to_the_build(
    events: Path, finished: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = load_site(events, today=NOW.date())
    alone = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=1)
    monkeypatch.setattr(build_module, "_aside_files", _dying)
    beside = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=2)
    assert finished == [False]
    assert list(beside) == list(alone)
    assert [p for p in alone if beside[p] != alone[p]] == []


def test_an_error_of_the_step_aside_is_the_builds_without_a_traceback(
    events: Path, finished: list[bool], capfd: pytest.CaptureFixture[str]
) -> None:
    site = _limited(load_site(events, today=NOW.date()))
    with pytest.raises(CalendarTooLarge) as raised:
        compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=2)
    assert finished == [False]
    assert "over calendars.max_bytes" in str(raised.value)
    assert "Traceback" not in capfd.readouterr().err


def test_a_calendar_taken_aside_from_the_last_build_is_made_again_when_out_changes(
    events: Path, tmp_path: Path, finished: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(build_module, "PARALLEL_MIN_EVENTS", 10)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    out = tmp_path / "out"
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", AS_OF]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    expected = snapshot(out)
    finished.clear()
    _, artifacts = compile_into(events, out, NOW, as_of=date.fromisoformat(AS_OF))
    assert finished == [True]
    calendars = sorted(p for p in expected if p.startswith("calendars/"))
    taken = [p for p in calendars if isinstance(artifacts._files[p], _Known)]
    assert taken == calendars  # every calendar taken from the last build, by the process
    # Changed under the build: the writer gets the calendars' bytes made again here, from
    # one run of the step (each event's components made once).
    one, other = calendars[0], calendars[-1]
    (out / one).write_bytes(bytes(b ^ 1 for b in expected[one]))
    (out / other).unlink()
    compiled: list[object] = []
    real = ical._compiled
    monkeypatch.setattr(ical, "_compiled", lambda *args: compiled.append(args) or real(*args))
    write_tree(out, artifacts, events_dir=events, files=artifacts.manifest_files)
    assert snapshot(out) == expected
    assert len(compiled) == RECORDS


def test_the_calendars_stay_here_while_spilled_files_are_copied(
    events: Path, finished: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of what the workers spilled takes the second core: the whole steps leave it
    to the copy (with 100,000 events it is what the build waits for last)."""
    site = load_site(events, today=NOW.date())
    alone = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=1)
    monkeypatch.setattr(build_module, "STAGE_BYTES", 0)  # every file spilled, then copied
    copied = compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=2)
    assert copied.staging is not None
    assert all(copied.staged(p) for p in copied if p.startswith("events/"))
    assert finished == []
    assert [p for p in alone if copied[p] != alone[p]] == []


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> list[bytes | None]:
    """What each process converting calendar.json's events gave back (None: it failed, or
    was not started once calendar.json was to be made), from any number of events on."""
    from eventfeed import ical

    taken: list[bytes | None] = []
    real = ical._Converted.take

    def spying(self: ical._Converted) -> bytes | None:
        made = real(self)
        taken.append(made)
        return made

    monkeypatch.setattr(ical, "CONVERTED_BESIDE", 1)
    monkeypatch.setattr(ical._Converted, "take", spying)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    return taken


@pytest.mark.parametrize("jobs", [1, 2])
def test_calendar_json_converted_beside_is_the_bytes_converted_here(
    events: Path, converted: list[bytes | None], monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """calendar.json's events are converted in a forked process while the other calendars
    are made (in the first process, or in the one beside): the same bytes as converted
    where calendar.json is joined, which is what happens when that process fails."""
    from eventfeed import ical

    site = load_site(events, today=NOW.date())
    day = date.fromisoformat(AS_OF)
    beside = compile_site(site, None, NOW, as_of=day, jobs=jobs)
    if jobs == 1:  # (in a process beside, what it took is not seen here)
        assert len(converted) == 1
        assert converted[0]
    monkeypatch.setattr(ical, "CONVERTED_BESIDE", 10**9)
    here = compile_site(site, None, NOW, as_of=day, jobs=jobs)
    monkeypatch.setattr(ical, "_members_jcal", _dying)  # the process fails
    failed = compile_site(site, None, NOW, as_of=day, jobs=jobs)
    if jobs == 1:
        assert converted[1:] == [None, None]
    assert json_events(here["calendar.json"])  # (events to convert)
    for made in (beside, failed):
        assert list(made) == list(here)
        assert [p for p in here if made[p] != here[p]] == []


def json_events(data: bytes) -> list[object]:
    import json

    return [c for c in json.loads(data)[2] if c[0] == "vevent"]


def test_calendar_json_taken_from_the_last_build_is_not_converted(
    events: Path, tmp_path: Path, converted: list[bytes | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When calendar.json is the last build's (the same events, taken from out/), nothing
    is converted, beside or here."""
    from eventfeed import ical

    begun: list[int] = []
    real = ical._Converted.begin

    def counting(self: ical._Converted) -> None:
        begun.append(len(self.members))
        real(self)

    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "out"
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", AS_OF]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert converted
    assert converted[0]
    converted.clear()
    monkeypatch.setattr(ical._Converted, "begin", counting)
    _, artifacts = compile_into(events, out, NOW, as_of=date.fromisoformat(AS_OF))
    assert isinstance(artifacts._files["calendar.json"], _Known)
    assert converted == []
    assert begun == []


def test_calendar_json_converted_beside_and_never_taken_is_stopped(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversion begun for calendar.json that the step never takes (it failed before
    joining calendar.json) does not outlive the step: its process is stopped and reaped."""
    from eventfeed import ical

    monkeypatch.setattr(ical, "CONVERTED_BESIDE", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    site = load_site(events, today=NOW.date())
    started: list[int] = []
    real = ical.Forked.start

    def starting(work: Any) -> Any:
        forked = real(work)
        if forked is not None:
            started.append(forked.pid)
        return forked

    real_parts = ical._calendar_parts

    def failing(context: Any, header: Any, members: Any) -> Any:
        if header is not None and header.path.startswith("calendars/"):  # (after calendar.json)
            raise CalendarTooLarge("made up, after calendar.json's conversion began")
        return real_parts(context, header, members)

    monkeypatch.setattr(ical.Forked, "start", starting)
    monkeypatch.setattr(ical, "_calendar_parts", failing)
    with pytest.raises(CalendarTooLarge):
        compile_site(site, None, NOW, as_of=date.fromisoformat(AS_OF), jobs=1)
    assert len(started) == 1
    with pytest.raises(ChildProcessError):  # (reaped: no such child any more)
        os.waitpid(started[0], os.WNOHANG)
