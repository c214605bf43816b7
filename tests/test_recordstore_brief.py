"""A record read back from the store leaves its record packed: what every build asks of each
event (:class:`eventfeed.event.Brief`) is kept beside it, and the record is made only when a
compiler asks for more. An event left packed must answer as the event of the record made."""

from __future__ import annotations

import json
import marshal
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventfeed import ical, load, recordstore
from eventfeed.build import BuildContext, in_collection
from eventfeed.cli import main
from eventfeed.errors import StateError
from eventfeed.event import Brief, Event
from eventfeed.load import load_site
from eventfeed.model import Collection
from eventfeed.recordstore import RecordStore, pack, unpack
from eventfeed.state import advance, content_digests

from .bench_records import generate
from .conftest import MINIMAL, SiteDir
from .test_recordstore import _parts, _records

NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def _packed(record: load.RecordFile, settings: Any) -> Event:
    back = unpack(pack(record))
    assert back is not None
    event = load._event_of(back, settings)
    assert event._unpack is not None  # left packed
    return event


def test_the_brief_holds_the_records_own_values(site: SiteDir) -> None:
    for parsed in _records(site):
        brief = Brief.of(parsed.record)
        for name in Brief._fields:
            if name != "org_keys":
                assert getattr(brief, name) == getattr(parsed.record, name), name
        refs = (*parsed.record.organizers, *parsed.record.partners)
        assert brief.org_keys == tuple(r for r in refs if isinstance(r, str))
        back = unpack(pack(parsed))
        assert back is not None
        assert _parts(back.__dict__[recordstore.BRIEF]) == _parts(brief)  # types too


def test_an_event_left_packed_answers_as_the_event_of_its_record(site: SiteDir) -> None:
    settings = load_site(site.events).settings
    keys = sorted(settings.organisations)
    collections = {
        "by-kind": Collection(title="Kind", kinds=("webinar",)),
        "by-region": Collection(title="Region", regions=("asia-pacific",)),
        "by-tag": Collection(title="Tag", tags=("statistics", "sdgs")),
        "by-organiser": Collection(title="Organiser", organizers=tuple(keys[:1])),
        "by-language": Collection(title="Language", languages=("fr",)),
    }
    settings = settings.model_copy(update={"collections": collections})
    records = _records(site)
    found = dict.fromkeys(collections, 0)
    for parsed in records:
        eager = load._event_of(parsed, settings)
        packed = _packed(parsed, settings)
        for name in ("uid", "tzid", "all_day", "local_start", "cancelled", "language"):
            assert getattr(packed, name) == getattr(eager, name), (parsed.source, name)
        assert packed.categories == eager.categories
        assert packed.sort_key == eager.sort_key
        assert packed.org_keys == eager.org_keys
        for name in collections:
            member = in_collection(packed, settings, name)
            assert member == in_collection(eager, settings, name), (parsed.source, name)
            found[name] += member
        assert packed._unpack is not None, "the brief was enough"
        # the rest of the record is made when asked for, equal to the record parsed
        assert packed.record == parsed.record
        assert _parts(packed.record) == _parts(parsed.record)
        assert packed._unpack is None
        assert packed == eager
    assert all(found.values()), found  # every filter was met by some record

    # the history and the calendars of a site of events left packed are those of the records
    events = [load._event_of(p, settings) for p in records]
    packed_events = [_packed(p, settings) for p in records]
    for packed, eager in zip(packed_events, events, strict=True):
        packed.keep_digests(content_digests(eager))  # as the loader keeps them
    assert advance(None, packed_events, NOW) == advance(None, events, NOW)
    # (a cold build's history, which reads when each record was published and updated,
    # leaves the records packed: the workers that compile them make them)
    assert all(event._unpack is not None for event in packed_events)
    assert any(e.record.published for e in events)
    assert any(e.record.updated for e in events)
    packed_context, context = _context(settings, packed_events), _context(settings, events)
    for packed, eager in zip(packed_events, events, strict=True):
        assert ical._groups(packed_context, packed) == ical._groups(context, eager)


def _context(settings: Any, events: list[Event]) -> BuildContext:
    site = load.Site(settings=settings, events=tuple(events), warnings=())
    return BuildContext(site=site, history=advance(None, events, NOW), as_of=NOW.date())


def test_a_damaged_packed_record_is_parsed_again(site: SiteDir) -> None:
    """Its rest is checked when it is opened: a damaged one is parsed again from the file,
    as a damaged row always was."""
    site.record("a.md", MINIMAL)
    store_file = site.root / "store.sqlite"
    first = load_site(site.events, store=RecordStore(store_file))
    with sqlite3.connect(store_file) as db:
        (key, data) = db.execute("SELECT key, data FROM rests").fetchone()
        record, body, lines = marshal.loads(data)
        flipped = bytearray(record)
        flipped[len(flipped) // 2] ^= 0x01  # one bit: still the bytes of a marshalled value
        damaged = marshal.dumps((bytes(flipped), body, lines))
        db.execute("UPDATE rests SET data = ? WHERE key = ?", (damaged, key))
    db.close()
    parsed = load.read_record(site.events / "a.md", "events/a.md")
    assert isinstance(parsed, load.RecordFile)
    wire = pack(parsed)
    assert unpack(wire.replace(data, damaged)) is None  # sent whole: checked at once
    made: list[str] = []
    real = load.parse_record

    def counting(raw: bytes, path: Path, shown: str) -> object:
        made.append(shown)
        return real(raw, path, shown)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(load, "parse_record", counting)
        again = load_site(site.events, store=RecordStore(store_file))
        assert made == []  # the head is whole
        assert again.events[0].record == first.events[0].record
    assert made == ["events/a.md"]
    assert again == load_site(site.events)


def test_a_rest_lost_is_read_from_the_file_unless_it_changed(site: SiteDir) -> None:
    """The rest of a record read back by its head is read when asked for: from the store, or,
    when another build has removed it there, from the file if it holds the same bytes;
    otherwise the build stops with a message, never mixing two versions of the record."""
    site.record("a.md", MINIMAL)
    site.record("b.md", MINIMAL.replace("A meeting", "Another"))
    store_file = site.root / "store.sqlite"
    first = load_site(site.events, store=RecordStore(store_file))
    loaded = load_site(site.events, store=RecordStore(store_file))
    with sqlite3.connect(store_file) as db:
        db.execute("DELETE FROM rests")
    db.close()
    a, b = loaded.events
    assert a.record == first.events[0].record  # the file holds the same bytes
    assert a.body == first.events[0].body
    site.record("b.md", MINIMAL.replace("A meeting", "Changed"))
    with pytest.raises(StateError, match=r"b\.md changed while the build ran"):
        b.body  # noqa: B018


@pytest.mark.usefixtures("full_rebuilds")
def test_a_rebuild_makes_only_the_records_it_compiles_or_shows_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one edit, the records made are the edited one's and those of the feeds' entries
    (which show the whole event); every other event is listed, filed and keyed from its
    brief. The bytes are those of a cold build."""
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    events = generate(tmp_path / "records", 150)
    out = tmp_path / "out"
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", "2023-11-14"]
    # the records opened (body, record or lines asked for), by the id of the event of each
    made: list[str] = []
    real_open = recordstore.open_rest

    def counting(parsed: load.RecordFile) -> None:
        made.append(parsed.id)
        real_open(parsed)

    monkeypatch.setattr(load, "open_rest", counting)
    assert CliRunner().invoke(main, args).exit_code == 0
    edited = sorted(events.rglob("event-*.md"))[7]
    edited.write_text(edited.read_text("utf-8") + "\nOne more line.\n", "utf-8")
    made.clear()
    assert CliRunner().invoke(main, args).exit_code == 0

    # the entries of the feeds, and the events of the jCal calendar (made whole at every
    # build, from the events: few are in it)
    shown = {
        Path(item["url"]).stem
        for path in out.rglob("feed.json")
        for item in json.loads(path.read_text("utf-8"))["items"]
    }
    jcal = (out / "calendar.json").read_text("utf-8")
    shown.update(re.findall(r'\["uid",\{\},"text","([^"@]+)@', jcal))
    assert len(shown) > 20
    assert edited.stem not in made  # parsed again, not read back from the store
    assert made
    assert set(made) <= shown
    assert len(set(made)) < 150


def _rest_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that read records' rests, from every connection opened from now on."""
    queries: list[str] = []
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = real(*args, **kwargs)
        db.set_trace_callback(queries.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", connect)
    return queries


def test_records_checked_again_read_their_rests_many_at_a_time(
    site: SiteDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New settings check every record again: their rests are read before, AHEAD at a time,
    not one by one as each check asks."""
    monkeypatch.setattr(recordstore, "AHEAD", 4)
    for i in range(10):
        site.record(f"r{i}.md", MINIMAL.replace("A meeting", f"Meeting {i}"))
    store_file = site.root / "store.sqlite"
    load_site(site.events, store=RecordStore(store_file))
    settings = site.events / "site.yaml"
    settings.write_text(settings.read_text("utf-8").replace("Test events", "Renamed"), "utf-8")
    queries = _rest_reads(monkeypatch)
    again = load_site(site.events, store=RecordStore(store_file))
    reads = [q for q in queries if "FROM rests" in q]
    assert len(reads) == 3  # 10 rests, 4 at a time
    assert all(" IN (" in q for q in reads)
    assert again == load_site(site.events)


def test_events_compiled_from_kept_records_read_their_rests_many_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the per-event store, a rebuild compiles every event, from the records kept:
    their rests are read before, many at a time, and the bytes are a cold build's."""
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(recordstore, "AHEAD", 16)
    events = generate(tmp_path / "records", 40)
    out = tmp_path / "out"
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", "2023-11-14"]
    assert CliRunner().invoke(main, args).exit_code == 0
    cold = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "index.html").write_bytes(b"changed")  # not up to date: built again
    for kept in (tmp_path / "cache").glob("*.events.sqlite"):
        kept.unlink()
    queries = _rest_reads(monkeypatch)
    assert CliRunner().invoke(main, args).exit_code == 0
    reads = [q for q in queries if "FROM rests" in q]
    assert len(reads) == 3  # 40 rests, 16 at a time
    assert all(" IN (" in q for q in reads)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == cold
