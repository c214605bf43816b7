"""The store of parsed records: a rebuild parses only the records whose bytes changed, and
what it loads is equal to what a load without the store gives."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from eventfeed import load as load_module
from eventfeed.load import Loaded, Site, load, load_site
from eventfeed.recordstore import RecordStore

from .conftest import MINIMAL, Run, SiteDir


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The records the loader parses, by the name shown."""
    seen: list[str] = []
    real = load_module.parse_record

    def counting(raw: bytes, path: Path, shown: str) -> object:
        seen.append(shown)
        return real(raw, path, shown)

    monkeypatch.setattr(load_module, "parse_record", counting)
    return seen


def _three(site: SiteDir) -> None:
    for name in ("a.md", "b.md", "2023/c.md"):
        site.record(name, MINIMAL.replace("A meeting", f"Meeting {name}"))


def test_second_load_parses_nothing_and_equals_a_plain_load(
    site: SiteDir, parses: list[str]
) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    first = load_site(site.events, store=RecordStore(store_file))
    assert sorted(parses) == ["events/2023/c.md", "events/a.md", "events/b.md"]
    parses.clear()
    second = load_site(site.events, store=RecordStore(store_file))
    assert parses == []
    assert second == first == load_site(site.events)
    assert [e.record.title for e in second.events] == [
        "Meeting a.md",
        "Meeting b.md",
        "Meeting 2023/c.md",
    ]


def test_an_edit_parses_that_record_only(site: SiteDir, parses: list[str]) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    site.record("b.md", MINIMAL.replace("A meeting", "Renamed"))
    parses.clear()
    edited = load_site(site.events, store=RecordStore(store_file))
    assert parses == ["events/b.md"]
    assert {e.id: e.record.title for e in edited.events}["b"] == "Renamed"
    assert edited == load_site(site.events)


def test_a_record_with_problems_is_parsed_and_reported_every_time(
    site: SiteDir, parses: list[str]
) -> None:
    _three(site)
    site.record("bad.md", MINIMAL.replace("title: A meeting\n", ""))
    store_file = site.root / "store.sqlite"
    for _ in range(2):
        parses.clear()
        loaded = load(site.events, store=RecordStore(store_file))
        assert [(p.path, p.field) for p in loaded.problems] == [("events/bad.md", "title")]
    assert parses == ["events/bad.md"]


def test_a_removed_record_leaves_the_store(site: SiteDir, parses: list[str]) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    (site.events / "a.md").unlink()
    load_site(site.events, store=RecordStore(store_file))
    site.record("a.md", MINIMAL.replace("A meeting", "Meeting a.md"))
    parses.clear()
    assert len(load_site(site.events, store=RecordStore(store_file)).events) == 3
    assert parses == ["events/a.md"]


def test_the_same_bytes_under_another_name_are_parsed_again(
    site: SiteDir, parses: list[str]
) -> None:
    site.record("a.md", MINIMAL)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    (site.events / "a.md").rename(site.events / "renamed.md")
    parses.clear()
    loaded = load_site(site.events, store=RecordStore(store_file))
    assert parses == ["events/renamed.md"]
    assert [(e.id, e.source) for e in loaded.events] == [("renamed", "events/renamed.md")]


@pytest.mark.parametrize("damage", [b"", b"not a database at all" * 100])
def test_a_damaged_store_is_no_failure(site: SiteDir, parses: list[str], damage: bytes) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    store_file.write_bytes(damage)
    loaded = load_site(site.events, store=RecordStore(store_file))
    assert loaded == load_site(site.events)
    assert len(parses) == 6  # everything parsed, with the store and without
    parses.clear()
    assert load_site(site.events, store=RecordStore(store_file)) == loaded
    assert parses == []  # the damaged file was replaced by a working store


def test_a_row_that_does_not_unpickle_is_parsed_again(site: SiteDir, parses: list[str]) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    with sqlite3.connect(store_file) as db:
        db.execute("UPDATE records SET head = ? WHERE source = ?", (b"garbage", "a.md"))
    db.close()
    parses.clear()
    assert load_site(site.events, store=RecordStore(store_file)) == load_site(site.events)
    assert parses == ["events/a.md", "events/2023/c.md", "events/a.md", "events/b.md"]


def test_builds_keep_the_store_beside_the_other_caches(
    site: SiteDir, run: Run, parses: list[str]
) -> None:
    _three(site)
    assert run("build", "-q").exit_code == 0
    assert len(parses) == 3
    stores = list(Path(os.environ["EVENTFEED_CACHE_DIR"]).glob("*.records.sqlite"))
    assert len(stores) == 1
    site.record("a.md", MINIMAL.replace("A meeting", "Edited"))
    parses.clear()
    assert run("build", "-q").exit_code == 0
    assert parses == ["events/a.md"]
    assert b"Edited" in (site.out / "events" / "a.ics").read_bytes()
    parses.clear()
    assert run("build", "--check").exit_code == 0
    assert len(parses) == 3  # --check reads the records itself and keeps nothing


@pytest.fixture
def digested(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The events whose content digests are worked out (not found in the store), by id."""
    from eventfeed import state

    seen: list[str] = []
    real = state.content_fields

    def counting(event: object) -> object:
        seen.append(getattr(event, "id", ""))
        return real(event)  # type: ignore[arg-type]

    monkeypatch.setattr(state, "content_fields", counting)
    return seen


def _digests(site: SiteDir, store: RecordStore | None) -> dict[str, tuple[str, str]]:
    from eventfeed.state import content_digests

    return {e.id: content_digests(e) for e in load_site(site.events, store=store).events}


def test_content_digests_are_kept_with_the_record_under_the_settings(
    site: SiteDir, digested: list[str]
) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    first = _digests(site, RecordStore(store_file))
    assert sorted(digested) == ["a", "b", "c"]
    digested.clear()
    assert _digests(site, RecordStore(store_file)) == first
    assert digested == []  # all three found in the store
    site.record("b.md", MINIMAL.replace("A meeting", "Renamed"))
    edited = _digests(site, RecordStore(store_file))
    assert digested == ["b"]
    assert edited["a"] == first["a"]
    assert edited["b"] != first["b"]
    # Other settings (another default zone) give other digests: every one is worked out again,
    # and each equals what a load without the store works out.
    settings = site.events / "site.yaml"
    text = settings.read_text(encoding="utf-8")
    assert "timezone: Europe/Zurich" in text
    settings.write_text(
        text.replace("timezone: Europe/Zurich", "timezone: Asia/Bangkok"), encoding="utf-8"
    )
    digested.clear()
    moved = _digests(site, RecordStore(store_file))
    assert sorted(digested) == ["a", "b", "c"]
    assert moved["a"] != edited["a"]
    digested.clear()
    assert moved == _digests(site, None)
    assert sorted(digested) == ["a", "b", "c"]


def test_a_store_of_an_older_layout_is_replaced(site: SiteDir, parses: list[str]) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    with sqlite3.connect(store_file) as db:  # the first layout: no digests, no version
        db.execute("CREATE TABLE records (source TEXT PRIMARY KEY, key TEXT, data BLOB)")
        db.execute("INSERT INTO records VALUES ('events/a.md', 'k', x'00')")
    db.close()
    assert load_site(site.events, store=RecordStore(store_file)) == load_site(site.events)
    parses.clear()
    load_site(site.events, store=RecordStore(store_file))
    assert parses == []


def _mixed(site: SiteDir, n: int) -> None:
    """``n`` records: most valid, some with warnings, some that fail to parse or to check,
    and two that clash on their id."""
    for i in range(n):
        text = MINIMAL.replace("A meeting", f"Meeting {i}")
        if i % 7 == 3:
            text = text.replace("title:", "titel:")  # fails the model
        elif i % 11 == 5:
            text = "no front matter at all\n"
        site.record(f"{i // 50:02d}/r{i:04d}.md", text)
    site.record("zz/clash.md", MINIMAL.replace("---\n", "---\nid: r0001\n", 1))
    site.record("zz/huge.md", MINIMAL + "x" * 1_000_000)  # refused as it is read


def _shares_counted(monkeypatch: pytest.MonkeyPatch, least: int) -> list[int]:
    """Share the records out from ``least`` to settle on; returns the list that then gets
    how many records each load shares out."""
    monkeypatch.setattr(load_module, "PARALLEL_MIN_RECORDS", least)
    shared: list[int] = []
    real_settled = load_module._settled

    def settled(pending: list[Any], *args: Any) -> Any:
        shared.append(len(pending))
        return real_settled(pending, *args)

    monkeypatch.setattr(load_module, "_settled", settled)
    return shared


def test_a_shared_out_load_equals_one_done_here(
    site: SiteDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed(site, 240)
    alone = load(site.events, store=RecordStore(site.root / "alone.sqlite"))
    assert len(alone.events) > 150
    assert len(alone.problems) > 40
    monkeypatch.setattr(load_module, "PARALLEL_MIN_RECORDS", 10)
    shared = load(site.events, store=RecordStore(site.root / "shared.sqlite"))
    assert shared.events == alone.events
    assert shared.problems == alone.problems
    assert any(p.path == "events/zz/huge.md" for p in shared.problems)  # read by a worker
    assert [e.digests for e in shared.events] == [e.digests for e in alone.events]
    # what the workers parsed was kept: the next load parses nothing and still agrees
    again = load(site.events, store=RecordStore(site.root / "shared.sqlite"))
    assert again.events == alone.events
    assert again.problems == alone.problems


def test_a_worker_that_dies_leaves_the_rest_to_the_loader(
    site: SiteDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed(site, 120)
    alone = load(site.events)
    monkeypatch.setattr(load_module, "PARALLEL_MIN_RECORDS", 10)
    real = load_module._settle
    parent = os.getpid()

    def dying(item: load_module._Pending, *args: object, **kwargs: object) -> object:
        if os.getpid() != parent and item.shown >= "events/01/":
            os._exit(3)  # a worker, as if killed
        return real(item, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(load_module, "_settle", dying)
    shared = load(site.events, store=RecordStore(site.root / "store.sqlite"))
    assert shared.events == alone.events
    assert shared.problems == alone.problems


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The records whose checks run (not found in the store), by the name shown."""
    seen: list[str] = []
    real = load_module.check_record

    def counting(parsed: load_module.RecordFile, *args: object) -> object:
        seen.append(parsed.source)
        return real(parsed, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(load_module, "check_record", counting)
    return seen


#: a record that is warned about while it is still coming (it has no 'updated' date)
UNDATED = MINIMAL.replace("updated: 2022-12-01\n", "")


def test_a_load_from_another_folder_finds_every_record_and_shows_its_own_names(
    site: SiteDir,
    parses: list[str],
    checked: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The store keeps each record by its path below the events folder: a load given the
    folder another way (from inside it, or by its absolute path) parses and checks nothing
    again, and names each record, and the file of each problem kept, as it was given."""
    _three(site)
    site.record("w.md", UNDATED)
    store_file = site.root / "store.sqlite"
    day = date(2022, 11, 1)  # warnings about the coming undated event are given
    monkeypatch.chdir(site.root)
    first = load(Path("events"), today=day, store=RecordStore(store_file))
    assert len(parses) == 4
    assert any(p.path == "events/w.md" for p in first.problems)
    for where, folder, prefix in (
        (site.events, Path("."), ""),
        (tmp_path_factory.mktemp("elsewhere"), site.events, site.events.as_posix() + "/"),
        (site.events / "2023", Path(".."), "../"),
    ):
        monkeypatch.chdir(where)
        parses.clear()
        checked.clear()
        again = load(folder, today=day, store=RecordStore(store_file))
        assert (parses, checked) == ([], [])
        plain = load(folder, today=day)
        assert again.problems == plain.problems
        assert [p.path for p in again.problems] == [prefix + "w.md"]
        assert again.events == plain.events
        assert sorted(e.source for e in again.events) == [
            prefix + name for name in ("2023/c.md", "a.md", "b.md", "w.md")
        ]


def test_checks_are_kept_under_the_settings_and_the_days_they_hold_on(
    site: SiteDir, checked: list[str]
) -> None:
    _three(site)  # each on 2022-12-07
    site.record("w.md", UNDATED)
    site.record("late.md", UNDATED.replace("2022-12-07", "2023-09-01"))
    store_file = site.root / "store.sqlite"
    day = date(2022, 11, 1)  # before the events: warnings about coming events are given

    def both(on: date) -> tuple[Loaded, Loaded]:
        return load(site.events, today=on, store=RecordStore(store_file)), load(
            site.events, today=on
        )

    first, plain = both(day)
    assert first.problems == plain.problems
    assert any(p.path == "events/w.md" for p in first.problems)  # the test can see warnings
    checked.clear()
    again = load(site.events, today=day, store=RecordStore(store_file))
    assert checked == []  # the same settings and day: every check found in the store
    assert again.problems == first.problems
    assert again.events == first.events
    site.record("b.md", UNDATED.replace("A meeting", "Edited"))
    checked.clear()
    edited, plain = both(day)
    everything = ["events/2023/c.md", "events/a.md", "events/b.md", "events/late.md", "events/w.md"]
    assert checked == ["events/b.md", *everything]  # the edited one, then the plain load
    assert edited.problems == plain.problems
    assert edited.problems != first.problems
    # Another day before every event's last day, and that day itself: nothing is checked
    # again (only by the plain loads)
    checked.clear()
    nearer, plain = both(date(2022, 12, 6))
    last, plain_last = both(date(2022, 12, 7))
    assert checked == everything * 2
    assert nearer.problems == plain.problems == last.problems == plain_last.problems
    assert last.problems == edited.problems
    # The day after it, those events are checked again (the warnings about coming events
    # are quieted); the one still to come is not
    checked.clear()
    later, plain = both(date(2022, 12, 8))
    past = ["events/2023/c.md", "events/a.md", "events/b.md", "events/w.md"]
    assert checked == [*past, *everything]
    assert later.problems == plain.problems
    assert later.problems != edited.problems
    assert {p.path for p in edited.problems} - {p.path for p in later.problems} == {
        "events/b.md",
        "events/w.md",
    }
    # and on any later day, until the last one's end, none is
    checked.clear()
    after, plain = both(date(2023, 9, 1))
    assert checked == everything
    assert after.problems == plain.problems == later.problems
    checked.clear()
    gone, plain = both(date(2023, 9, 2))
    assert checked == ["events/late.md", *everything]
    assert gone.problems == plain.problems
    assert [p.path for p in gone.problems] == []


def test_a_record_read_on_its_own_is_kept_and_found(site: SiteDir, parses: list[str]) -> None:
    path = site.record("a.md", MINIMAL)
    store_file = site.root / "store.sqlite"
    store = RecordStore(store_file)
    first = load_module.read_record(path, "events/a.md", store)
    store.save()
    assert isinstance(first, load_module.RecordFile)
    assert parses == ["events/a.md"]
    again = load_module.read_record(path, "events/a.md", RecordStore(store_file))
    assert again == first
    assert parses == ["events/a.md"]  # found in the store, not parsed again


# --- the packed form of a record -------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"

EVERY_FIELD = """\
---
id: every-field
title: Every field
kind: meeting
status: tentative
start: 2023-03-01T09:30
duration: P1DT2H
timezone: Asia/Bangkok
location:
  venue: Hall
  address: 1 Road
  city: Bangkok
  country: TH
  lat: 13.75
  lon: 100.5
online:
  url: https://example.org/join
organizers:
  - ilo
  - name: A network
    url: https://example.org/network
partners: [unctad]
speakers:
  - name: A. Speaker
    role: Chair
region: asia-pacific
language: es-419
tags: [one, two]
links:
  registration: https://example.org/register
  documents:
    - title: Notes
      url: https://example.org/notes.pdf
published: 2023-01-02
updated: 2023-01-03T10:00
participants: 40
rrule: FREQ=WEEKLY;COUNT=3
exdates: [2023-03-08T09:30]
rdates: [2023-03-20T09:30, 2023-03-21]
overrides:
  - occurrence: 2023-03-15T09:30
    start: 2023-03-15T10:00
    status: cancelled
    note: Moved.
sequence: 2
uid: every-field@example.org
---
Body with ünïcode and **Markdown**.
"""


def _parts(value: object) -> object:
    """A value taken apart down to plain values, with the type of everything and, for a
    model, its fields in order and the fields set: equal only for the same objects."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return (
            type(value),
            [(name, _parts(item)) for name, item in value.__dict__.items()],
            sorted(value.model_fields_set),
            value.__pydantic_extra__,
            value.__pydantic_private__,
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value),
            [(f.name, _parts(getattr(value, f.name))) for f in dataclasses.fields(value)],
        )
    if isinstance(value, tuple | list):
        return (type(value), [_parts(item) for item in value])
    if isinstance(value, dict):
        return (type(value), [(_parts(k), _parts(v)) for k, v in value.items()])
    return (type(value), value)


def _records(site: SiteDir) -> list[load_module.RecordFile]:
    site.record("every-field.md", EVERY_FIELD)
    paths = [site.events / "every-field.md"]
    for folder in ("calendar-events", "feed-events"):
        paths += sorted((FIXTURES / folder).rglob("*.md"))
    found = [load_module.read_record(path, path.name) for path in paths]
    records = [r for r in found if isinstance(r, load_module.RecordFile)]
    assert len(records) == len(found) > 15
    return records


def test_a_packed_record_unpacks_to_the_same_objects(site: SiteDir) -> None:
    from eventfeed.recordstore import pack, unpack

    records = _records(site)
    every = records[0].record
    assert every.duration is not None
    assert every.overrides
    assert every.speakers
    assert every.location is not None
    assert every.location.lat == 13.75
    for record in records:
        packed = pack(record)
        assert packed[:1] == b"M"  # the packed form, not the pickle it falls back on
        back = unpack(packed)
        assert back == record
        assert back is not None
        assert _parts(back) == _parts(record)
        assert back.record.model_dump_json() == record.record.model_dump_json()


def test_a_default_model_unpacks_to_the_very_object_validation_gives(site: SiteDir) -> None:
    """Every record without links holds the one default ``Links()``, as validation made it."""
    from eventfeed.model import Record
    from eventfeed.recordstore import pack, unpack

    default = Record.model_fields["links"].default
    plain = [r for r in _records(site) if r.record.links is default]
    assert plain
    for record in plain:
        back = unpack(pack(record))
        assert back is not None
        assert back.record.links is default
    every = _records(site)[0]
    assert every.record.links is not default
    back = unpack(pack(every))
    assert back is not None
    assert back.record.links == every.record.links
    assert back.record.links is not default


def test_records_unpacked_share_a_fields_set_that_a_copy_does_not_change(site: SiteDir) -> None:
    from eventfeed.recordstore import pack, unpack

    record = _records(site)[1]
    first, second = unpack(pack(record)), unpack(pack(record))
    assert first is not None
    assert second is not None
    assert first.record.model_fields_set == record.record.model_fields_set
    assert first.record.model_fields_set is second.record.model_fields_set
    assert "sequence" not in record.record.model_fields_set
    changed = first.record.model_copy(update={"sequence": 3})
    assert "sequence" in changed.model_fields_set
    assert second.record.model_fields_set == record.record.model_fields_set
    again = unpack(pack(record))
    assert again is not None
    assert again.record.model_fields_set == record.record.model_fields_set


def test_a_value_the_packed_form_does_not_spell_is_pickled(site: SiteDir) -> None:
    from datetime import UTC, datetime

    from eventfeed.recordstore import pack, unpack

    record = _records(site)[0]
    aware = dataclasses.replace(
        record, record=record.record.model_copy(update={"start": datetime(2023, 1, 1, tzinfo=UTC)})
    )
    packed = pack(aware)
    assert packed[:1] == b"P"
    back = unpack(packed)
    assert back == aware
    assert _parts(back) == _parts(aware)


@pytest.mark.parametrize("data", [b"", b"M", b"Mgarbage", b"P\x80", b"x" * 10])
def test_data_that_is_no_packed_record_unpacks_to_none(data: bytes) -> None:
    from eventfeed.recordstore import unpack

    assert unpack(data) is None


def test_a_store_of_pickled_records_is_replaced(site: SiteDir, parses: list[str]) -> None:
    """The previous layout (3) pickled each record whole; its rows are never read."""
    import pickle

    _three(site)
    store_file = site.root / "store.sqlite"
    first = load_site(site.events, store=RecordStore(store_file))
    with sqlite3.connect(store_file) as db:
        rows = db.execute("SELECT source, head FROM records").fetchall()
        assert len(rows) == 3
        assert all(head[:1] == b"M" for _, head in rows)
        record = load_module.read_record(site.events / "a.md", "events/a.md")
        db.execute(
            "UPDATE records SET head = ? WHERE source = 'a.md'",
            (pickle.dumps(record),),
        )
        db.execute("PRAGMA user_version = 3")
    db.close()
    parses.clear()
    assert load_site(site.events, store=RecordStore(store_file)) == first
    assert sorted(parses) == ["events/2023/c.md", "events/a.md", "events/b.md"]


def test_a_store_of_the_last_layout_is_made_again_with_larger_pages(
    site: SiteDir, parses: list[str]
) -> None:
    """A store of format 12 (pages of 4 KiB, an index of the records by digest) is emptied
    and made again with pages of :data:`eventfeed.recordstore.PAGE_SIZE`, without the index;
    its file does not keep the old rows' pages."""
    from eventfeed import recordstore

    _three(site)
    store_file = site.root / "store.sqlite"
    with contextlib.closing(sqlite3.connect(store_file, isolation_level=None)) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute("CREATE TABLE records (source TEXT PRIMARY KEY, key TEXT NOT NULL)")
        db.execute("CREATE INDEX records_by_key ON records (key)")
        db.execute("CREATE TABLE rests (key TEXT PRIMARY KEY, data BLOB NOT NULL)")
        db.executemany(
            "INSERT INTO rests VALUES (?, ?)", [(str(i), bytes(3000)) for i in range(300)]
        )
        db.execute("PRAGMA user_version = 12")
    before = store_file.stat().st_size
    assert before > 900_000
    first = load_site(site.events, store=RecordStore(store_file))
    assert sorted(parses) == ["events/2023/c.md", "events/a.md", "events/b.md"]
    with contextlib.closing(sqlite3.connect(store_file)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (recordstore.FORMAT,)
        assert db.execute("PRAGMA page_size").fetchone() == (recordstore.PAGE_SIZE,)
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "records_by_key" not in names
        assert db.execute("SELECT count(*) FROM records").fetchone() == (3,)
    assert store_file.stat().st_size < before / 4
    parses.clear()
    assert load_site(site.events, store=RecordStore(store_file)) == first
    assert parses == []


@pytest.mark.parametrize(("ahead", "reads"), [(1, 7), (2, 4), (200, 1)])
def test_rows_read_ahead_give_what_rows_read_one_by_one_give(
    site: SiteDir, parses: list[str], monkeypatch: pytest.MonkeyPatch, ahead: int, reads: int
) -> None:
    from eventfeed import recordstore

    monkeypatch.setattr(recordstore, "AHEAD", ahead)
    for i in range(9):
        site.record(f"{i % 3}/r{i}.md", MINIMAL.replace("A meeting", f"Meeting {i}"))
    store_file = site.root / "store.sqlite"
    first = load_site(site.events, store=RecordStore(store_file))
    site.record("1/r4.md", MINIMAL.replace("A meeting", "Edited"))
    (site.events / "2" / "r5.md").unlink()
    site.record("0/r00.md", MINIMAL.replace("A meeting", "New"))
    queries: list[str] = []
    real = sqlite3.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        db = real(*args, **kwargs)  # type: ignore[arg-type]
        db.set_trace_callback(queries.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", connect)
    parses.clear()
    edited = load_site(site.events, store=RecordStore(store_file))
    assert sorted(parses) == ["events/0/r00.md", "events/1/r4.md"]
    assert edited == load_site(site.events)
    assert len(edited.events) == len(first.events)
    # The 7 records kept for the same bytes are read AHEAD at a time (with the edited one
    # in its place among them), and none alone.
    assert len([q for q in queries if q.startswith("SELECT source, head")]) == reads
    assert not [q for q in queries if q.startswith("SELECT head")]  # none read alone


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The record files the loader reads, by the name shown."""
    seen: list[str] = []
    real = load_module._read_or_problems

    def counting(path: Path, shown: str) -> object:
        seen.append(shown)
        return real(path, shown)

    monkeypatch.setattr(load_module, "_read_or_problems", counting)
    return seen


def _later(monkeypatch: pytest.MonkeyPatch, by: int) -> None:
    """The clock file times are compared with, ``by`` nanoseconds ahead of the system's."""
    from eventfeed import cache

    real = time.time_ns
    monkeypatch.setattr(cache, "_now", lambda: real() + by)


def _titles(loaded: Site) -> dict[str, str]:
    return {e.id: e.record.title for e in loaded.events}


def test_a_file_unchanged_since_it_was_read_is_not_read_again(
    site: SiteDir, reads: list[str], parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventfeed import cache

    _three(site)
    _later(monkeypatch, 2 * cache.RACY_NS)  # the files were written long enough ago
    store_file = site.root / "store.sqlite"
    first = load_site(site.events, store=RecordStore(store_file))
    assert sorted(reads) == ["events/2023/c.md", "events/a.md", "events/b.md"]
    reads.clear()
    parses.clear()
    second = load_site(site.events, store=RecordStore(store_file))
    assert reads == parses == []
    assert second == first == load_site(site.events)

    site.record("b.md", MINIMAL.replace("A meeting", "Renamed"))
    reads.clear()
    parses.clear()
    edited = load_site(site.events, store=RecordStore(store_file))
    assert reads == parses == ["events/b.md"]
    assert _titles(edited)["b"] == "Renamed"
    assert edited == load_site(site.events)


def test_a_write_that_keeps_the_size_and_the_modification_time_is_seen(
    site: SiteDir, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventfeed import cache

    _three(site)
    _later(monkeypatch, 2 * cache.RACY_NS)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    path = site.events / "a.md"
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    site.record("a.md", text.replace("Meeting a.md", "Meeting A.MD"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    reads.clear()
    loaded = load_site(site.events, store=RecordStore(store_file))
    assert reads == ["events/a.md"]  # its change time is new
    assert _titles(loaded)["a"] == "Meeting A.MD"


@pytest.mark.parametrize("settled", [False, True])
def test_a_racy_write_is_seen(
    site: SiteDir,
    reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
    settled: bool,
) -> None:
    """A file changed again within the timestamp granularity of the moment it was read keeps
    all its metadata (made so here); it was racy when read, so it is read again. The same
    metadata from a file settled long before is trusted (and the change not seen: the case
    the no-change check does not see either, bytes changed without the metadata)."""
    from eventfeed import cache

    _three(site)
    path = site.events / "a.md"
    real_stat = os.stat
    written = real_stat(path)
    frozen = os.stat_result(
        (written.st_mode, 7, 9, 1, 0, 0, written.st_size, 0, 0, 0, 1, 1, 1)
        + (1_700_000_000_000_000_000,) * 3
    )  # times in nanoseconds: 1,700,000,000 s

    def same_metadata(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fspath(target) == os.fspath(path):
            return frozen
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", same_metadata)
    ahead = 2 * cache.RACY_NS if settled else cache.RACY_NS // 2
    monkeypatch.setattr(cache, "_now", lambda: 1_700_000_000_000_000_000 + ahead)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    text = path.read_text(encoding="utf-8")
    site.record("a.md", text.replace("Meeting a.md", "Meeting A.MD"))
    assert os.stat(path) == frozen
    reads.clear()
    loaded = load_site(site.events, store=RecordStore(store_file))
    # (the other files keep their own metadata, newer than this clock: they are read)
    if settled:
        assert "events/a.md" not in reads
        assert _titles(loaded)["a"] == "Meeting a.md"
    else:
        assert "events/a.md" in reads
        assert _titles(loaded)["a"] == "Meeting A.MD"
        assert loaded == load_site(site.events)


def test_metadata_kept_under_another_code_is_not_trusted(
    site: SiteDir, reads: list[str], parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventfeed import cache

    _three(site)
    _later(monkeypatch, 2 * cache.RACY_NS)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    real = cache._code_digest()
    monkeypatch.setattr(cache, "_code_digest", lambda: real + "another")
    reads.clear()
    parses.clear()
    load_site(site.events, store=RecordStore(store_file))
    assert sorted(reads) == sorted(parses) == ["events/2023/c.md", "events/a.md", "events/b.md"]


def test_records_kept_under_another_code_are_shared_out_to_parse(
    site: SiteDir, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade no kept record can be taken: the loader shares them out to its
    workers, as in a first build, instead of parsing them one by one itself."""
    from eventfeed import cache

    _mixed(site, 60)
    _later(monkeypatch, 2 * cache.RACY_NS)
    store_file = site.root / "store.sqlite"
    first = load(site.events, store=RecordStore(store_file))
    # more than the records that fail (never kept, so parsed at every load), fewer than all
    shared = _shares_counted(monkeypatch, 30)
    again = load(site.events, store=RecordStore(store_file))
    assert shared == []  # the same code: every record is taken from the store
    real = cache._code_digest()
    monkeypatch.setattr(cache, "_code_digest", lambda: real + "another")
    upgraded = load(site.events, store=RecordStore(store_file))
    assert len(shared) == 1
    assert shared[0] >= 60
    assert upgraded.events == again.events == first.events
    assert upgraded.problems == first.problems


def test_a_load_without_a_store_is_shared_out_too_and_equals_one_done_here(
    site: SiteDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check`` and ``build --check`` keep no store; their many records are parsed and checked
    by the workers as well, and the events they load (packed), their problems and, when asked
    for, their digests are those of a load done here."""
    from eventfeed.state import content_digests

    _mixed(site, 240)
    alone = load(site.events)
    shared = _shares_counted(monkeypatch, 10)
    for digests in (False, True):
        loaded = load(site.events, digests=digests)
        assert loaded.events == alone.events
        assert loaded.problems == alone.problems
        assert any(p.path == "events/zz/huge.md" for p in loaded.problems)  # read by a worker
        kept = [e.digests for e in loaded.events]
        if digests:
            assert kept == [content_digests(e) for e in alone.events]
        else:
            assert kept == [None] * len(alone.events)  # not worked out where not wanted
    assert len(shared) == 2
    assert shared[0] > 200


@pytest.mark.parametrize("change", ["settings", "every record"])
def test_records_kept_but_to_check_or_parse_again_are_shared_out(
    site: SiteDir, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """After a change of the settings, every kept record is checked again; after an edit of
    every record, each is parsed again. Either way the loader shares them out to its workers
    (which read again the bytes it read to look each up), and loads what a load without the
    store loads."""
    from eventfeed import cache

    _mixed(site, 60)
    _later(monkeypatch, 2 * cache.RACY_NS)
    store_file = site.root / "store.sqlite"
    load(site.events, store=RecordStore(store_file))
    monkeypatch.setattr(load_module, "PARALLEL_MIN_RECORDS", 30)
    shared: list[int] = []
    real_settled = load_module._settled

    def settled(pending: list[Any], *args: Any) -> Any:
        shared.append(sum(map(load_module._unsettled, pending)))
        assert all(item.raw is None for item in pending)  # none held: read where parsed
        return real_settled(pending, *args)

    monkeypatch.setattr(load_module, "_settled", settled)
    load(site.events, store=RecordStore(store_file))
    assert shared == []  # nothing to do but take every record from the store
    if change == "settings":
        yaml = site.events / "site.yaml"
        yaml.write_text(yaml.read_text().replace("Test Secretariat", "The Secretariat"))
    else:
        for path in site.events.rglob("*.md"):
            path.write_text(path.read_text() + "\nEdited.\n")
    alone = load(site.events)
    assert len(shared) == 1  # a load without a store shares them out too
    shared.clear()
    again = load(site.events, store=RecordStore(store_file))
    assert len(shared) == 1
    assert shared[0] >= 60  # every record (but the one too large to read)
    assert again.events == alone.events
    assert again.problems == alone.problems
    assert [e.digests for e in again.events] == [
        e.digests for e in load(site.events, store=RecordStore(site.root / "new.sqlite")).events
    ]


def test_a_file_read_just_after_it_was_written_is_read_again(
    site: SiteDir, reads: list[str], parses: list[str]
) -> None:
    _three(site)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    reads.clear()
    parses.clear()
    load_site(site.events, store=RecordStore(store_file))  # the files are racy yet
    assert sorted(reads) == ["events/2023/c.md", "events/a.md", "events/b.md"]
    assert parses == []  # but not parsed: the bytes are those kept


def test_the_rests_no_record_names_are_removed(site: SiteDir) -> None:
    """A rest is kept by the digest of the bytes it was parsed from, once for every file
    holding them; it goes when no record kept names it (an edit, a file removed)."""
    same = MINIMAL.replace("A meeting", "The same")
    site.record("a.md", same)
    site.record("b.md", same.replace("\n---", "\nid: b\n---", 1))
    site.record("c.md", MINIMAL)
    site.record("d.md", same)  # the bytes of a.md
    store_file = site.root / "store.sqlite"

    def rests() -> set[str]:
        with contextlib.closing(sqlite3.connect(store_file)) as db:
            named = {k for (k,) in db.execute("SELECT key FROM records")}
            kept = {k for (k,) in db.execute("SELECT key FROM rests")}
        assert named == kept  # every record's rest, and no other
        return kept

    first = load_site(site.events, store=RecordStore(store_file))
    assert len(rests()) == 3
    (site.events / "d.md").unlink()  # a.md still names its rest
    site.record("c.md", MINIMAL.replace("A meeting", "Edited"))
    load_site(site.events, store=RecordStore(store_file))
    assert len(rests()) == 3
    (site.events / "a.md").unlink()
    (site.events / "b.md").unlink()
    again = load_site(site.events, store=RecordStore(store_file))
    assert len(rests()) == 1
    assert [e.record.title for e in again.events] == ["Edited"]
    assert len(first.events) == 4


def test_each_process_reads_rests_by_a_few_connections_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked worker does not use (nor close) the connections it inherited, and a process
    keeps only the latest few open."""
    from eventfeed import recordstore

    monkeypatch.setattr(recordstore, "_READERS", {})
    monkeypatch.setattr(recordstore, "_INHERITED", [])
    monkeypatch.setattr(recordstore, "_READERS_OF", [os.getpid()])
    stores = []
    for i in range(recordstore._MAX_READERS + 2):
        (tmp_path / f"site{i}").mkdir()
        site = SiteDir(tmp_path / f"site{i}")
        site.record("a.md", MINIMAL.replace("A meeting", f"Meeting {i}"))
        store_file = site.root / "store.sqlite"
        load_site(site.events, store=RecordStore(store_file))
        with contextlib.closing(sqlite3.connect(store_file)) as db:
            ((key,),) = db.execute("SELECT key FROM rests").fetchall()
        stores.append((str(store_file.resolve()), key))
    first = None
    for where, key in stores:
        assert list(recordstore._read_rests(where, [key])) == [key]
        first = first or recordstore._READERS[where]
    assert first is not None
    assert len(recordstore._READERS) == recordstore._MAX_READERS
    with pytest.raises(sqlite3.ProgrammingError):  # the oldest was closed
        first.execute("SELECT 1")
    held = dict(recordstore._READERS)
    recordstore._READERS_OF[0] = -1  # as if these were inherited from the process forked from
    where, key = stores[-1]
    assert list(recordstore._read_rests(where, [key])) == [key]
    assert [held] == recordstore._INHERITED
    assert recordstore._READERS[where] is not held[where]
    held[where].execute("SELECT 1")  # left open


def _locked_against_others(store_file: Path) -> bool:
    """Whether another connection is locked out of reading the store."""
    with contextlib.closing(sqlite3.connect(store_file, timeout=0)) as other:
        try:
            other.execute("SELECT count(*) FROM rests").fetchone()
        except sqlite3.OperationalError:
            return True
    return False


def test_the_load_reads_rests_while_its_own_writes_lock_the_store(
    site: SiteDir, parses: list[str]
) -> None:
    """The load writes the store as it goes, in one transaction; once that outgrows SQLite's
    page cache, the file is locked against every other connection. After new settings, every
    kept record is checked again and needs its rest: each is still read from the store
    (through the load's own connection), none parsed again from its file."""
    _three(site)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    yaml = site.events / "site.yaml"
    yaml.write_text(yaml.read_text().replace("Test Secretariat", "The Secretariat"))
    store = RecordStore(store_file)
    assert store._db is not None
    # the lock the load's writes take when they spill out of the page cache
    store._db.execute("COMMIT")
    store._db.execute("BEGIN EXCLUSIVE")
    assert _locked_against_others(store_file)
    parses.clear()
    again = load_site(site.events, store=store)
    assert parses == []
    assert again == load_site(site.events)


def test_a_reader_does_not_wait_for_a_store_another_build_writes(
    site: SiteDir, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store another build holds locked is not waited for (SQLite would wait five seconds
    at every record): the rests are parsed again from the records' files."""
    from eventfeed import recordstore

    monkeypatch.setattr(recordstore, "_READERS", {})
    monkeypatch.setattr(recordstore, "_READERS_OF", [os.getpid()])
    _three(site)
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    store = RecordStore(store_file)
    found = [store.get(n, store._keys[n], n, site.events / n) for n in ("a.md", "b.md")]
    store.close()
    with contextlib.closing(sqlite3.connect(store_file, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        assert _locked_against_others(store_file)
        plain = {e.source: e.body for e in load_site(site.events).events}
        parses.clear()
        assert [record.body for record in found if record is not None] == [
            plain["events/a.md"],
            plain["events/b.md"],
        ]
        assert sorted(parses) == ["a.md", "b.md"]  # parsed again from their files
        (reader,) = recordstore._READERS.values()
        assert reader is not None
        assert reader.execute("PRAGMA busy_timeout").fetchone() == (0,)


#: A build run by ``eventfeed.cli`` in a process of its own, with the record store's page
#: cache made small (a few dozen records spill out of it, as thousands do with SQLite's own)
#: and records checked out a moment ago taken as quiet. It notes each record parsed (in the
#: workers too) in the file named by ``$PARSED``, and says at the prefetch of the kept
#: records' rests whether the store is locked against other connections then.
_SMALL_CACHE_BUILD = """
import glob, os, sqlite3, sys
from eventfeed import cache, load, recordstore
from eventfeed.cli import main

recordstore.CACHE_PAGES, recordstore.BATCH = 2, 20
load.PARALLEL_MIN_RECORDS = 20
cache.RACY_NS = 0
parse, prefetch = load.parse_record, load.prefetch

def parsing(raw, path, shown):
    with open(os.environ["PARSED"], "a", encoding="utf-8") as handle:
        handle.write(shown + "\\n")
    return parse(raw, path, shown)

def prefetching(records):
    for where in glob.glob(os.path.join(os.environ["EVENTFEED_CACHE_DIR"], "*.records.sqlite")):
        other = sqlite3.connect(where, timeout=0)
        try:
            other.execute("SELECT count(*) FROM rests").fetchone()
            print("store open at the prefetch", file=sys.stderr)
        except sqlite3.OperationalError:
            print("store locked at the prefetch", file=sys.stderr)
        finally:
            other.close()
    return prefetch(records)

load.parse_record, load.prefetch = parsing, prefetching
main(sys.argv[1:])
"""


def test_a_fresh_checkout_with_new_settings_does_not_wait_for_its_own_store(
    tmp_path: Path,
) -> None:
    """The whole chain of the stall the store once had: a build, the records checked out
    afresh (every file new to the store), new settings (every record checked again, which
    needs its rest), and a rebuild whose writes spill out of the page cache, locking the
    store, before the rests are read. The rebuild reads every rest from the store (none is
    parsed again, none waited for), and its out/ is what a build without stores makes. (The
    code before the fix, given the same small cache, was stopped here by the timeout: it
    waited five seconds for each rest, in the workers.)"""
    from .bench_records import generate

    events = generate(tmp_path, 200)
    out = tmp_path / "out"
    parsed = tmp_path / "parsed"
    env = dict(
        os.environ,
        EVENTFEED_CACHE_DIR=str(tmp_path / "cache"),
        SOURCE_DATE_EPOCH="1700000000",
        CI="true",
        PARSED=str(parsed),
    )
    build = ["build", "--events", str(events), "--out", str(out), "-q", "--as-of", "2023-11-14"]

    def run(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-c", _SMALL_CACHE_BUILD, *args],
            env=dict(env, **more),
            capture_output=True,
            text=True,
            timeout=120,  # the stall took five seconds a record
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    run(*build)
    assert len(parsed.read_text(encoding="utf-8").splitlines()) == 200
    fresh = tmp_path / "checkout"
    shutil.copytree(events, fresh, copy_function=shutil.copyfile)
    shutil.rmtree(events)
    fresh.rename(events)
    settings = events / "site.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    text = settings.read_text(encoding="utf-8")
    settings.write_text(text.replace("title:", "title: Renamed", 1), encoding="utf-8")
    parsed.unlink()
    again = run(*build)
    assert "store locked at the prefetch" in again.stderr
    assert not parsed.exists()  # every rest read from the store
    # out/ is what a build without stores makes (``--check`` fails on any difference)
    run(*build, "--check", EVENTFEED_CACHE_DIR=str(tmp_path / "no-stores"))
