"""However a build is made, the bytes are those of a cold build.

A few hundred records from the benchmark's generator (zones, all-day, series, cancelled,
several scripts) are built cold, rebuilt with nothing changed (the fingerprint in the cache
says so, nothing is parsed or written), and rebuilt after one edit (unchanged files
hard-linked from the previous tree); each result is compared, byte for byte, with a cold
build of the same records from the same previous manifest into an empty folder.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventfeed import build as build_module
from eventfeed import ical, pages
from eventfeed import state as state_module
from eventfeed.build import compile_site
from eventfeed.cli import main
from eventfeed.eventcache import EventCache
from eventfeed.ical import CalendarTooLarge
from eventfeed.load import Site, load_site
from eventfeed.state import advance

from .bench_records import generate
from .gc_support import tracked

RECORDS = 200
AS_OF = "2023-11-14"
NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

Build = Callable[[Path, Path], Result]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("records"), RECORDS)


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Build:
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")

    def run(events: Path, out: Path) -> Result:
        args = ["build", "--events", str(events), "--out", str(out), "--as-of", AS_OF]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        return result

    return run


def copied(events: Path, tmp_path: Path) -> Path:
    """A working folder with a copy of the records in its ``events/``, to edit, and room
    for an ``out/`` beside them."""
    work = tmp_path / "work"
    shutil.copytree(events, work / "events")
    return work


def cold(events: Path, out: Path, previous: Path | None, build: Build) -> dict[str, bytes]:
    """A build into an empty folder that holds only the given previous manifest."""
    out.mkdir()
    if previous is not None:
        shutil.copy(previous, out / "manifest.json")
    build(events, out)
    return snapshot(out)


def test_no_change_and_one_edit_rebuilds_equal_cold_builds(
    events: Path, tmp_path: Path, build: Build
) -> None:
    work = copied(events, tmp_path)
    out = work / "out"
    first = build(work / "events", out)
    assert "built" in first.stderr
    built = snapshot(out)
    assert len([p for p in built if p.startswith("events/") and p.endswith(".ics")]) == RECORDS

    before = stamps(out)
    again = build(work / "events", out)
    assert "is up to date (nothing changed)" in again.stderr
    assert stamps(out) == before  # nothing rewritten, nothing replaced

    manifest = tmp_path / "manifest-before-edit.json"
    shutil.copy(out / "manifest.json", manifest)
    edited = sorted((work / "events").rglob("event-*.md"))[7]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more sentence.\n", "utf-8")
    build(work / "events", out)
    incremental = snapshot(out)
    assert incremental != built
    changed = {p for p in incremental if incremental[p] != built.get(p)}
    assert f"events/{edited.stem}.html" in changed
    assert f"events/{edited.stem}.ics" in changed
    assert cold(work / "events", tmp_path / "cold", manifest, build) == incremental


def test_an_edit_spells_again_only_its_event_in_the_manifest(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild by the same code takes the last manifest's text, and spells again only the
    day and the history of the event edited; the bytes are a cold build's."""
    work = copied(events, tmp_path)
    out = work / "out"
    build(work / "events", out)
    manifest = tmp_path / "manifest-before-edit.json"
    shutil.copy(out / "manifest.json", manifest)
    edited = sorted((work / "events").rglob("event-*.md"))[11]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more sentence.\n", "utf-8")
    spelled: list[str] = []
    block = state_module._block

    def spelling(key: str, *args: Any) -> str:
        spelled.append(key)
        return block(key, *args)

    monkeypatch.setattr(state_module, "_block", spelling)
    build(work / "events", out)
    assert spelled == [edited.stem]
    incremental = snapshot(out)
    spelled.clear()
    assert cold(work / "events", tmp_path / "cold", manifest, build) == incremental
    assert len(spelled) == RECORDS  # the cold build spelled every event


def test_a_file_changed_in_out_is_rebuilt(events: Path, tmp_path: Path, build: Build) -> None:
    out = tmp_path / "out"
    build(events, out)
    expected = snapshot(out)
    (out / "calendar.ics").write_bytes(b"not a calendar\r\n")
    result = build(events, out)
    assert "nothing changed" not in result.stderr
    assert snapshot(out) == expected


def test_cold_build_equals_a_build_without_cache(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cold(events, tmp_path / "one", None, build)
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "other-cache"))
    assert cold(events, tmp_path / "two", None, build) == first


def test_parallel_build_equals_a_sequential_one(events: Path) -> None:
    site = load_site(events, today=NOW.date())
    sequential = compile_site(site, None, NOW, as_of=date(2023, 11, 14), jobs=1)
    parallel = compile_site(site, None, NOW, as_of=date(2023, 11, 14), jobs=2)
    assert list(parallel) == list(sequential)
    assert all(parallel[path] == sequential[path] for path in sequential)


def test_a_failure_in_the_forked_compiler_is_the_build_failure(events: Path) -> None:
    """An error in the calendars (here: a calendar over its limit) reaches the caller."""
    site = load_site(events, today=NOW.date())
    with pytest.raises(CalendarTooLarge) as sequential:
        compile_site(_limited(site), None, NOW, as_of=date(2023, 11, 14), jobs=1)
    with pytest.raises(CalendarTooLarge) as parallel:
        compile_site(_limited(site), None, NOW, as_of=date(2023, 11, 14), jobs=2)
    assert str(parallel.value) == str(sequential.value)


def _limited(site: Site) -> Site:
    """The site with a collection whose description alone is over calendars.max_bytes."""
    settings = site.settings
    name = sorted(settings.collections)[0]
    spec = settings.collections[name].model_copy(update={"description": "x" * 20_000})
    calendars = settings.calendars.model_copy(update={"max_bytes": 10_000})
    changed = settings.model_copy(
        update={"collections": {**settings.collections, name: spec}, "calendars": calendars}
    )
    return Site(settings=changed, events=site.events)


def test_an_edit_compiles_only_the_edited_event(
    events: Path, tmp_path: Path, build: Build, compiled: list[str]
) -> None:
    """The per-event store: unchanged events are taken from the last build, not compiled."""
    work = copied(events, tmp_path)
    out = work / "out"
    build(work / "events", out)
    assert len(compiled) == RECORDS
    manifest = tmp_path / "manifest-before-edit.json"
    shutil.copy(out / "manifest.json", manifest)

    compiled.clear()
    edited = sorted((work / "events").rglob("event-*.md"))[3]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")
    build(work / "events", out)
    assert compiled == [edited.stem]
    incremental = snapshot(out)
    assert cold(work / "events", tmp_path / "cold", manifest, build) == incremental

    # A damaged store is no store: everything is compiled, to the same bytes.
    compiled.clear()
    for store in (tmp_path / "cache").glob("*.events.sqlite"):
        store.write_bytes(b"not a database")
    edited.write_text(edited.read_text(encoding="utf-8") + "\nAnd another.\n", "utf-8")
    build(work / "events", out)
    assert len(compiled) == RECORDS


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(compiler, event id) of every key a compiler is asked for, and ("listed", event id)
    of every event whose listing is worked out."""
    seen: list[tuple[str, str]] = []
    listed = pages._listed

    def listing(event: Any, zone: Any, as_of: Any) -> Any:
        seen.append(("listed", event.id))
        return listed(event, zone, as_of)

    monkeypatch.setattr(pages, "_listed", listing)
    for name, module in (("ical", ical), ("pages", pages)):
        real = module.event_key

        def counting(context: Any, event: Any, name: str = name, real: Any = real) -> Any:
            seen.append((name, event.id))
            return real(context, event)

        monkeypatch.setattr(module, "event_key", counting)
    return seen


def test_a_rebuild_on_the_same_day_takes_unchanged_keys_from_the_store(
    events: Path, tmp_path: Path, build: Build, asked: list[tuple[str, str]]
) -> None:
    """The compilers' keys depend on the event, the settings and the day: on the same day,
    only the edited event's are asked for; on a later day, those of the events whose keys
    stopped holding on a day between (they ended, say); back on the first day, those worked
    out on the later day. Each build equals a cold one."""
    work = copied(events, tmp_path)
    out = work / "out"
    build(work / "events", out)
    ids = sorted(p.stem for p in (work / "events").rglob("event-*.md"))
    assert sorted(set(asked)) == sorted((n, i) for n in ("ical", "listed", "pages") for i in ids)

    asked.clear()
    edited = sorted((work / "events").rglob("event-*.md"))[5]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
    build(work / "events", out)
    # The listings place the others by their stored notes, without working out how each
    # is listed.
    assert sorted(set(asked)) == [(n, edited.stem) for n in ("ical", "listed", "pages")]

    site = load_site(work / "events", today=NOW.date())
    history = advance(None, site.events, NOW)
    steps = [s for s in build_module.compilers() if s.key is not None]

    def keys_on(day: date) -> dict[str, list[tuple[str, date | None]]]:
        context = build_module.BuildContext(site=site, history=history, as_of=day)
        return {e.id: [s.key(context, e) for s in steps if s.key] for e in site.events}

    first, later = keys_on(date(2023, 11, 14)), keys_on(date(2024, 2, 1))
    # (the compilers' keys of an event, which hold up to the earliest day they give)
    stopped = {
        i
        for i, parts in first.items()
        if any(until is not None and until < date(2024, 2, 1) for _, until in parts)
    }
    changed = {i for i in ids if [p for p, _ in first[i]] != [p for p, _ in later[i]]}
    assert changed <= stopped
    assert len(changed) >= 5
    assert len(stopped) <= len(ids) - 50  # most hold: past events, and those still to come
    manifest = tmp_path / "manifest-before.json"
    shutil.copy(out / "manifest.json", manifest)

    def rebuilt_as_of(day: str) -> None:
        """out/ rebuilt as of ``day``: the keys of the events of ``stopped`` are worked out,
        no other; the bytes are those of a cold build from the same manifest."""
        asked.clear()
        args = ["build", "--events", str(work / "events"), "--out", str(out), "--as-of", day]
        assert CliRunner().invoke(main, args).exit_code == 0
        wanted = [(n, i) for n in ("ical", "listed", "pages") for i in stopped]
        assert sorted(set(asked)) == sorted(wanted)
        fresh = tmp_path / f"fresh-{day}"
        fresh.mkdir()
        shutil.copy(manifest, fresh / "manifest.json")
        args[4] = str(fresh)
        assert CliRunner().invoke(main, args).exit_code == 0
        assert snapshot(fresh) == snapshot(out)

    rebuilt_as_of("2024-02-01")
    # back on the first day: a key kept holds from the day it was worked out on, not before
    # (those worked out again on the later day)
    rebuilt_as_of(AS_OF)


def test_state_keys_are_taken_from_a_store_marked_for_the_manifest_in_out(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build marks the per-event store as made for the manifest it wrote: the next one
    works out the state key of the edited event only. When out/ holds another manifest (put
    back from git, say), every state key is worked out; either way the bytes are a cold
    build's."""
    work = copied(events, tmp_path)
    out = work / "out"
    build(work / "events", out)
    stated: list[str] = []
    real = build_module.state_key

    def state_key(base: str, event_id: str, state: Any) -> str:
        stated.append(event_id)
        return real(base, event_id, state)

    monkeypatch.setattr(build_module, "state_key", state_key)
    records = sorted((work / "events").rglob("event-*.md"))
    first = tmp_path / "manifest-first.json"
    shutil.copy(out / "manifest.json", first)
    edited = records[5]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
    build(work / "events", out)
    assert set(stated) == {edited.stem}

    stated.clear()
    shutil.copy(first, out / "manifest.json")  # the manifest of the build before
    other = records[7]
    other.write_text(other.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
    before = tmp_path / "manifest-before.json"
    shutil.copy(out / "manifest.json", before)
    build(work / "events", out)
    assert set(stated) == {p.stem for p in records}
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(before, fresh / "manifest.json")
    build(work / "events", fresh)
    assert snapshot(fresh) == snapshot(out)

    # A build that wrote entries and failed before the end (here as it marks the store,
    # once the entries held while the workers ran are written) leaves the store unmarked.
    build(work / "events", out)
    written: list[int] = []
    real_put, real_mark = EventCache._put, EventCache.mark

    def putting(cache: EventCache, entries: Any) -> None:
        written.append(len(entries))
        real_put(cache, entries)

    def failing(*args: Any) -> None:
        raise OSError("the disk went away")

    monkeypatch.setattr(EventCache, "_put", putting)
    monkeypatch.setattr(EventCache, "mark", failing)
    text = other.read_text(encoding="utf-8")
    other.write_text(text + "\nAnd another.\n", "utf-8")
    args = ["build", "--events", str(work / "events"), "--out", str(out), "--as-of", AS_OF]
    assert CliRunner().invoke(main, args).exit_code != 0
    assert sum(written) > 0
    monkeypatch.setattr(EventCache, "_put", real_put)
    monkeypatch.setattr(EventCache, "mark", real_mark)
    other.write_text(text, "utf-8")  # put back: its history is the manifest's again
    third = records[9]
    third.write_text(third.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
    stated.clear()
    build(work / "events", out)
    assert set(stated) == {p.stem for p in records}


def test_after_a_change_of_settings_events_are_keyed_where_they_are_compiled(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of the settings (or of eventfeed) changes every event's state key, so no
    stored key can be the same: none is worked out before the events are compiled (in the
    workers, when there are any); the bytes are a cold build's."""
    work = copied(events, tmp_path)
    out = work / "out"
    build(work / "events", out)
    manifest = tmp_path / "manifest-before.json"
    shutil.copy(out / "manifest.json", manifest)
    found: list[dict[str, Any]] = []
    real = build_module._keys

    def keys(*args: Any) -> Any:
        found.append(real(*args))
        return found[-1]

    monkeypatch.setattr(build_module, "_keys", keys)
    settings = work / "events" / "site.yaml"
    text = settings.read_text(encoding="utf-8")
    assert "title: " in text
    settings.write_text(text.replace("title: ", "title: New ", 1), encoding="utf-8")
    build(work / "events", out)
    assert found == [{}]
    assert cold(work / "events", tmp_path / "cold", manifest, build) == snapshot(out)


def test_memberships_are_worked_out_once_per_build(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether an event is in a collection is worked out once per build, also when the keys
    were worked out first (the day moved on): the whole steps share one memory of it."""
    out = tmp_path / "out"
    build(events, out)
    asked: list[tuple[str, str]] = []
    real = build_module.in_collection

    def counting(event: Any, settings: Any, name: str) -> bool:
        asked.append((event.id, name))
        return real(event, settings, name)

    monkeypatch.setattr(build_module, "in_collection", counting)
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", "2024-02-01"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert asked
    assert len(asked) == len(set(asked))


def test_a_stored_file_that_out_no_longer_holds_is_made_again(
    events: Path, tmp_path: Path, build: Build
) -> None:
    """The store names a file by digest; when out/ was replaced by other bytes (here: the
    manifest of another build), the event is compiled again, not linked."""
    out = tmp_path / "out"
    build(events, out)
    expected = snapshot(out)
    page = next(p for p in sorted(expected) if p.startswith("events/") and p.endswith(".ics"))
    manifest = json.loads((out / "manifest.json").read_bytes())
    manifest["files"][page] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (out / page).write_bytes(b"stale bytes\r\n")
    build(events, out)
    assert snapshot(out) == expected


def test_the_day_moving_recompiles_only_events_it_changes(
    events: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: list[str]
) -> None:
    """An event's calendar note and page depend on the build's day only through the keys
    (ended before the look-back window; how it is listed): when the day moves on and back,
    the events whose keys changed are compiled again, and every build equals a cold one."""
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")

    def day_build(out: Path, day: str) -> dict[str, bytes]:
        args = ["build", "--events", str(events), "--out", str(out), "--as-of", day]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        return snapshot(out)

    out = tmp_path / "out"
    day_build(out, AS_OF)
    for number, day in enumerate(["2025-06-30", AS_OF]):
        previous = tmp_path / f"manifest-{number}.json"
        shutil.copy(out / "manifest.json", previous)
        compiled.clear()
        incremental = day_build(out, day)
        assert 0 < len(compiled) < RECORDS
        fresh = tmp_path / f"cold-{number}"
        fresh.mkdir()
        shutil.copy(previous, fresh / "manifest.json")
        assert day_build(fresh, day) == incremental


@pytest.mark.usefixtures("full_rebuilds")
def test_an_edit_joins_only_the_calendars_that_hold_the_event(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A calendar whose header and members are those of the last build is taken from out/
    (the store keeps each calendar's key); the others are joined again, to the same bytes
    as a cold build."""
    from eventfeed import ical

    joined: list[str] = []
    real = ical._calendar_parts

    def counting(context: Any, header: Any, members: Any) -> Iterator[bytes]:
        joined.append(header.path if header is not None else "")
        return real(context, header, members)

    def counting_jcal(context: Any, header: Any, members: Any, *more: Any) -> Iterator[bytes]:
        joined.append("calendar.json")
        return real_jcal(context, header, members, *more)

    real_jcal = ical._jcal
    monkeypatch.setattr(ical, "_calendar_parts", counting)
    monkeypatch.setattr(ical, "_jcal", counting_jcal)
    work = copied(events, tmp_path)
    out = work / "out"
    build(work / "events", out)
    everything = sorted(p for p in joined if p)
    assert any(p.startswith("calendars/archive/") for p in everything)
    assert "calendar.json" in everything
    manifest = tmp_path / "manifest-before-edit.json"
    shutil.copy(out / "manifest.json", manifest)

    # an event of an archive year: its own file, its archive year and nothing else changes
    site = load_site(work / "events")
    archived = [
        e
        for e in site.events
        if not e.record.rrule and e.last_day < date(2023, 1, 1) and not e.cancelled
    ]
    edited = work / "events" / archived[0].source.split("events/", 1)[1]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")
    joined.clear()
    build(work / "events", out)
    year = archived[0].last_day.year
    assert sorted(p for p in joined if p) == [f"calendars/archive/{year}.ics"]
    assert cold(work / "events", tmp_path / "cold", manifest, build) == snapshot(out)

    # an event calendar.json shows: calendar.ics and calendar.json are joined again
    shown = json.loads((out / "calendar.json").read_text(encoding="utf-8"))
    uid = next(p[3] for c in shown[2] if c[0] == "vevent" for p in c[1] if p[0] == "uid")
    current = next(e for e in site.events if e.uid == uid)
    edited = work / "events" / current.source.split("events/", 1)[1]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")
    shutil.copy(out / "manifest.json", manifest)
    joined.clear()
    build(work / "events", out)
    assert {"calendar.ics", "calendar.json"} <= set(joined)
    assert cold(work / "events", tmp_path / "cold-2", manifest, build) == snapshot(out)


@pytest.mark.usefixtures("full_rebuilds")
def test_an_edit_joins_only_the_calendars_of_its_month_when_the_archive_is_split(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a limit that splits each year of the archive by month, and months in parts, an
    edit of an archived event joins again only calendars of its month (a part after it may
    take other events), and the rebuild is a cold build's bytes."""
    from eventfeed import ical

    joined: list[str] = []
    real = ical._calendar_parts

    def counting(context: Any, header: Any, members: Any) -> Iterator[bytes]:
        joined.append(header.path if header is not None else "")
        return real(context, header, members)

    monkeypatch.setattr(ical, "_calendar_parts", counting)
    work = copied(events, tmp_path)
    settings = work / "events" / "site.yaml"
    text = settings.read_text(encoding="utf-8")
    assert "calendars: {lookback_days: 365}" in text
    limit = "{lookback_days: 365, max_bytes: 20000}"
    settings.write_text(text.replace("{lookback_days: 365}", limit), encoding="utf-8")
    out = work / "out"
    build(work / "events", out)
    archive = sorted(p.name for p in (out / "calendars" / "archive").iterdir())
    assert any("-part2" in name for name in archive), archive
    manifest = tmp_path / "manifest-before-edit.json"
    shutil.copy(out / "manifest.json", manifest)

    site = load_site(work / "events")
    archived = sorted(
        (e for e in site.events if not e.record.rrule and e.last_day < date(2022, 1, 1)),
        key=lambda e: e.id,
    )
    event = archived[len(archived) // 2]
    edited = work / "events" / event.source.split("events/", 1)[1]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")
    joined.clear()
    build(work / "events", out)
    month = f"calendars/archive/{event.last_day.year}-{event.last_day.month:02d}"
    assert joined
    assert [p for p in joined if not p.startswith(month)] == []
    assert cold(work / "events", tmp_path / "cold", manifest, build) == snapshot(out)


def test_an_edit_makes_again_only_the_dated_pages_that_list_the_event(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With listings split into dated pages, each dated page has a key (its place, its
    links to the others, its entries): an edit of an event makes again only the dated pages
    that list it, and the rest are taken from out/; a new event that adds a dated page
    changes every page's links to the others, and so every dated page of that listing. Each
    rebuild is a cold build's bytes."""
    made: list[str] = []
    real = pages.Renderer.dated_parts

    def counting(self: pages.Renderer, collection: str | None, page: pages.Dated) -> list[bytes]:
        made.append(page.path(collection))
        return real(self, collection, page)

    monkeypatch.setattr(pages.Renderer, "dated_parts", counting)
    work = copied(events, tmp_path)
    settings = work / "events" / "site.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8") + "pages:\n  max_bytes: 20000\n", "utf-8"
    )
    out = work / "out"
    build(work / "events", out)
    dated = sorted(made)
    assert len(dated) > 10
    assert any(p.startswith("past/") for p in dated)

    def listing(event_id: str) -> list[str]:
        """The dated pages that link to the event's page."""
        link = f"events/{event_id}.html".encode()
        return sorted(
            p for p in dated if re.search(rb'href="(\.\./)*' + link, (out / p).read_bytes())
        )

    site = load_site(work / "events")
    archived = sorted(
        (e for e in site.events if not e.record.rrule and e.last_day < date(2021, 1, 1)),
        key=lambda e: e.id,
    )
    event = next(e for e in archived if listing(e.id))
    manifest = tmp_path / "manifest-before-edit.json"
    shutil.copy(out / "manifest.json", manifest)
    edited = work / "events" / event.source.split("events/", 1)[1]
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace('title: "', 'title: "Renamed: ', 1), "utf-8")
    made.clear()
    build(work / "events", out)
    assert sorted(made) == listing(event.id)
    assert b"Renamed: " in (out / made[0]).read_bytes()
    assert cold(work / "events", tmp_path / "cold", manifest, build) == snapshot(out)

    # an event of a year no listing had: a new dated page, and the links to it on every other
    shutil.copy(out / "manifest.json", manifest)
    text = edited.read_text(encoding="utf-8")
    year = event.record.start.year
    older = re.sub(rf"\b{year}-", "1990-", text)  # (its id is its file's name)
    assert older != text
    (work / "events" / "event-1990.md").write_text(older, "utf-8")
    made.clear()
    build(work / "events", out)
    assert "past/1990.html" in made
    assert len(made) > len(dated) // 2
    assert cold(work / "events", tmp_path / "cold-2", manifest, build) == snapshot(out)


@pytest.mark.usefixtures("full_rebuilds")
def test_time_zones_of_the_last_build_are_not_made_again(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store keeps each serialised VTIMEZONE under eventfeed's code and zone data; a
    new process building the same site takes them from there instead of making them."""
    from eventfeed import vtimezone as vtz
    from eventfeed.eventcache import EventCache

    made: list[tuple[str, int, int]] = []
    real = vtz.vtimezone

    def fresh_process() -> None:
        vtz.KNOWN.clear()
        vtz.vtimezone_bytes.cache_clear()
        real.cache_clear()

    def counting(tzid: str, first: int, last: int) -> Any:
        made.append((tzid, first, last))
        return real(tzid, first, last)

    real_written = vtz._written  # the serialised form is written without the component

    def counting_written(tzid: str, first: int, last: int) -> bytes:
        made.append((tzid, first, last))
        return real_written(tzid, first, last)

    monkeypatch.setattr(vtz, "vtimezone", counting)
    monkeypatch.setattr(vtz, "_written", counting_written)
    work = copied(events, tmp_path)
    out = work / "out"
    fresh_process()
    build(work / "events", out)
    assert made
    manifest = tmp_path / "manifest-before-edit.json"
    shutil.copy(out / "manifest.json", manifest)
    edited = sorted((work / "events").rglob("event-*.md"))[5]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")
    fresh_process()
    made.clear()
    build(work / "events", out)
    assert made == []
    fresh_process()
    assert cold(work / "events", tmp_path / "cold", manifest, build) == snapshot(out)

    store = EventCache(next((tmp_path / "cache").glob("*.events.sqlite")))
    assert store.zones("another eventfeed") == {}
    fresh_process()


def test_what_a_rebuild_takes_from_the_last_build_is_kept_from_the_collector(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history, the keys and the notes of the unchanged events, taken from the last
    build, and those of the events compiled, live as long as the build: they join the loaded
    site the collector is kept from, so its passes in the whole steps do not walk them (with
    100,000 events, half a second of a rebuild that freed nothing)."""
    work = copied(events, tmp_path)
    out = work / "out"
    build(work / "events", out)
    edited = sorted((work / "events").rglob("event-*.md"))[3]
    found: list[str] = []
    real = build_module._whole

    def whole(*args: Any) -> None:
        notes, history = args[2], args[4]
        kept: dict[str, object] = {"a list made here": [history]}  # the collector sees it
        seen = tracked()
        kept.update(history=history, notes=notes)
        kept.update((f"state of {i}", state) for i, state in history.items())
        kept.update((f"note of {i}", note) for i, note in notes["pages"].items())
        found.extend(name for name, o in kept.items() if id(o) in seen)
        real(*args)

    monkeypatch.setattr(build_module, "_whole", whole)
    edited.write_text(edited.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")
    build(work / "events", out)
    assert found == ["a list made here"]  # the edited event's note too is kept from it


def test_the_collector_makes_no_pass_during_the_whole_steps(
    events: Path, tmp_path: Path, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the whole steps make is kept to the end of the build and holds next to no cycles:
    the collector is paused while they run (its passes there freed nothing)."""
    inside: list[bool] = []
    passes: list[int] = []
    real = build_module._whole

    def whole(*args: Any) -> None:
        inside.append(True)
        try:
            real(*args)
        finally:
            inside.pop()

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and inside:
            passes.append(info["generation"])

    monkeypatch.setattr(build_module, "_whole", whole)
    gc.callbacks.append(watch)
    try:
        build(events, tmp_path / "out")
        during_build = list(passes)
        inside.append(True)  # the watch does see a pass while the flag is up
        gc.collect()
        inside.pop()
    finally:
        gc.callbacks.remove(watch)
    assert during_build == []
    assert passes == [2]
