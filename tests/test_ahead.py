"""A build that compiles every event (a first build, a fresh clone's, ``build --check``)
compiles each one in the worker that loaded its record (:class:`eventfeed.build.Ahead`).
out/ then holds the bytes of a build made in one process, the per-event store serves the
next build as any first build's does, a record with an error (or two records with one id)
fails the build as it fails any, and a build that finds another manifest than the one the
workers compiled with compiles again what was made ahead."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventfeed import build, pipeline, write
from eventfeed import load as load_module
from eventfeed.cli import main

from .bench_records import generate
from .test_faults import snapshot

RECORDS = 60
AS_OF = "2023-11-14"


def _build(events: Path, out: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(cache))
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", AS_OF, "-q"]
    return CliRunner().invoke(main, args)


def _in_one_process(events: Path, tmp_path: Path, name: str) -> dict[str, bytes]:
    """out/ of a first build made without workers (under the thresholds, at 60 records)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", "1700000000")
        result = _build(events, tmp_path / name, tmp_path / f"{name}-cache", patch)
    assert result.exit_code == 0, result.output
    return snapshot(tmp_path / name)


def _with_workers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """Records loaded by forked workers; what each build said of what they made ahead:
    whether it held, and for how many events."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(load_module, "PARALLEL_MIN_RECORDS", 10)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    said: list[tuple[bool, int]] = []
    holds_for = build.Ahead.holds_for

    def spying(self: build.Ahead, *args: Any) -> bool:
        held = holds_for(self, *args)
        said.append((held, len(self.done)))
        return held

    monkeypatch.setattr(build.Ahead, "holds_for", spying)
    return said


def _edit(events: Path) -> None:
    record = next(iter(sorted(events.rglob("event-*.md"))))
    record.write_text(record.read_text(encoding="utf-8") + "\nEdited.\n", encoding="utf-8")


@pytest.mark.usefixtures("full_rebuilds")
@pytest.mark.skipif(write._renameat2() is None, reason="the spare needs the atomic exchange")
def test_a_first_build_compiles_each_event_where_its_record_was_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: list[str]
) -> None:
    events = generate(tmp_path / "records", RECORDS)
    expected = _in_one_process(events, tmp_path, "expected")
    said = _with_workers(monkeypatch)
    compiled.clear()  # (what the builds above compiled)
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = _build(events, out, cache, monkeypatch)
    assert result.exit_code == 0, result.output
    assert said == [(True, RECORDS)]  # every event made ahead, and taken
    assert compiled == []  # none compiled again here
    assert snapshot(out) == expected
    # the workers linked what they made into the spare, as the build's own workers do
    (spare,) = (cache / "trees").iterdir()
    assert {p: os.lstat(spare / p).st_ino for p in expected} == {
        p: os.lstat(out / p).st_ino for p in expected
    }

    # The entries the workers made serve the next build: an edit compiles one event, and
    # gives the bytes of the same edit after a first build made in one process.
    _edit(events)
    result = _build(events, out, cache, monkeypatch)
    assert result.exit_code == 0, result.output
    assert len(compiled) == 1
    assert said == [(True, RECORDS)]  # (a rebuild makes nothing ahead)
    assert snapshot(out) == _in_one_process(events, tmp_path, "expected")
    check = CliRunner().invoke(
        main,
        ["build", "--check", "--events", str(events), "--out", str(out), "--as-of", AS_OF],
    )
    assert check.exit_code == 0, check.output


def test_a_first_build_compiles_here_what_the_record_store_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: list[str]
) -> None:
    """A first build whose record store has some of the records (out/ deleted, the cache
    kept): the workers compile the events of the records they parse, and the build those of
    the records it took from the store, to the bytes of a build made in one process."""
    events = generate(tmp_path / "records", RECORDS)
    said = _with_workers(monkeypatch)
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert _build(events, out, cache, monkeypatch).exit_code == 0
    shutil.rmtree(out)
    edited = sorted(events.rglob("event-*.md"))[::3]
    for record in edited:
        record.write_text(record.read_text(encoding="utf-8") + "\nEdited.\n", encoding="utf-8")
    compiled.clear()
    result = _build(events, out, cache, monkeypatch)
    assert result.exit_code == 0, result.output
    assert said == [(True, RECORDS), (True, len(edited))]
    assert sorted(compiled) == sorted(
        record.stem for record in events.rglob("event-*.md") if record not in edited
    )
    assert snapshot(out) == _in_one_process(events, tmp_path, "expected")


def test_a_fresh_clone_and_a_check_compile_each_event_where_its_record_was_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: list[str]
) -> None:
    """Where out/ has a manifest but the build has no per-event store (a fresh clone of a
    site whose out/ is committed), or keeps none (``build --check``), every event is
    compiled too, each with the state that manifest gives it."""
    events = generate(tmp_path / "records", RECORDS)
    _in_one_process(events, tmp_path, "committed")
    _edit(events)
    shutil.copytree(tmp_path / "committed", tmp_path / "plain")
    expected = _in_one_process(events, tmp_path, "plain")  # (a cache of its own)
    clone = tmp_path / "clone"
    shutil.copytree(tmp_path / "committed", clone)
    check = ["build", "--check", "--events", str(events), "--out", str(clone), "--as-of", AS_OF]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    plain = CliRunner().invoke(main, check)
    said = _with_workers(monkeypatch)
    # the history of the events, worked out here as they were loaded, not again after
    here: list[int] = []
    parent, advance = os.getpid(), build.advance

    def advancing(*args: Any) -> Any:
        if os.getpid() == parent:
            here.append(len(args[1]))
        return advance(*args)

    monkeypatch.setattr(build, "advance", advancing)
    ordered: list[int] = []  # (nor their order worked out beside: their sort keys are kept)
    order_aside = build._order_aside
    monkeypatch.setattr(build, "_order_aside", lambda e: ordered.append(len(e)) or order_aside(e))
    compiled.clear()  # (what the builds above compiled)
    checked = CliRunner().invoke(main, check)
    assert plain.exit_code == 1  # the edited event's files are stale
    assert (checked.exit_code, checked.output) == (plain.exit_code, plain.output)
    result = _build(events, clone, tmp_path / "cache", monkeypatch)
    assert result.exit_code == 0, result.output
    assert said == [(True, RECORDS), (True, RECORDS)]
    assert compiled == []
    assert here == []
    assert ordered == []
    assert snapshot(clone) == expected


def test_a_build_that_finds_a_manifest_after_all_compiles_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: list[str]
) -> None:
    """What was made ahead assumed no earlier build: where one turns up (here, as if out/
    had been written while the records were loaded), it is not taken. (The same holds for
    a manifest changed meanwhile: the build takes what was made only with the manifest
    object the workers had, which is read again only from the same bytes.)"""
    events = generate(tmp_path / "records", RECORDS)
    out, cache = tmp_path / "out", tmp_path / "cache"
    _in_one_process(events, tmp_path, "out")  # (into out/, with its own cache)
    _in_one_process(events, tmp_path, "expected")
    _edit(events)
    said = _with_workers(monkeypatch)
    compiled.clear()  # (what the builds above compiled)
    ahead = pipeline._ahead

    def blind(events_dir: Path, out_dir: Path, *args: Any) -> build.Ahead | None:
        made = ahead(events_dir, out_dir, *args)
        if out_dir == out:  # (not the build that gives the bytes expected)
            assert made is not None
            assert made.previous is not None
            made.previous = None  # as if out/ had no manifest while the records were loaded
        return made

    monkeypatch.setattr(pipeline, "_ahead", blind)
    result = _build(events, out, cache, monkeypatch)
    assert result.exit_code == 0, result.output
    assert said == [(False, RECORDS)]
    assert len(compiled) == RECORDS  # (another cache: nothing of the earlier build kept)
    assert snapshot(out) == _in_one_process(events, tmp_path, "expected")


@pytest.mark.parametrize("fault", ["too long", "one id twice"])
def test_a_record_with_an_error_fails_a_first_build_as_it_fails_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The workers compile only the events of records without an error, and what they made
    is dropped with the build: the problems are reported as without them, nothing is
    written."""
    events = generate(tmp_path / "records", RECORDS)
    first, second = sorted(events.rglob("event-*.md"))[:2]
    text = first.read_text(encoding="utf-8")
    if fault == "too long":  # a check of the event, not of the record's fields, fails
        text = re.sub(r"(?m)^end: (\d{4})", lambda m: f"end: {int(m.group(1)) + 2}", text)
        assert "end: " in text
    else:
        text = text.replace("---\n", f"---\nid: {second.stem}\n", 1)
    first.write_text(text, encoding="utf-8")

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    plain = _build(events, tmp_path / "plain", tmp_path / "plain-cache", monkeypatch)
    said = _with_workers(monkeypatch)
    result = _build(events, tmp_path / "out", tmp_path / "cache", monkeypatch)
    assert plain.exit_code == 1, plain.output
    assert (result.exit_code, result.output) == (plain.exit_code, plain.output)
    assert first.name in result.output
    assert said == []  # the build stopped after the load
    assert not (tmp_path / "out").exists()


def test_a_build_into_a_refused_out_compiles_nothing_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An out/ the build will refuse (not empty, not eventfeed's) gets nothing compiled for
    it: the build fails after the load with the error it always gave, out/ untouched."""
    events = generate(tmp_path / "records", RECORDS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not a build\n", encoding="utf-8")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    plain = _build(events, out, tmp_path / "plain-cache", monkeypatch)
    started: list[object] = []
    monkeypatch.setattr(build.Ahead, "start", lambda self, *args: started.append(args))
    said = _with_workers(monkeypatch)
    result = _build(events, out, tmp_path / "cache", monkeypatch)
    assert plain.exit_code == 1
    assert "was not made by eventfeed" in plain.output
    assert (result.exit_code, result.output) == (plain.exit_code, plain.output)
    assert started == []
    assert said == []
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
