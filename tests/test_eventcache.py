"""The per-event store: written a batch at a time as events are compiled, read back whole;
rows of an older layout are replaced, never read."""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import sqlite3
import time
from array import array
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from eventfeed import build as build_module
from eventfeed import eventcache, ical, pages
from eventfeed.build import compile_site
from eventfeed.eventcache import Entry, EventCache
from eventfeed.load import Site, load_site

from .bench_records import generate
from .gc_support import tracked

RECORDS = 120
NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
AS_OF = date(2023, 11, 14)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return load_site(generate(tmp_path_factory.mktemp("records"), RECORDS), today=NOW.date())


def rows(path: Path) -> list[tuple[int, object, list[tuple[str, Any]]]]:
    """The store's rows in the order they were written (row, format, entries), read with
    sqlite3 and pickle alone."""
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT row, format, data FROM entries ORDER BY row").fetchall()
    return [(int(r), f, pickle.loads(d)) for r, f, d in found]


def stored(path: Path) -> dict[str, Any]:
    """The latest entry of each event: a later row's replaces an earlier one's."""
    return {i: e for _, _, batch in rows(path) for i, e in batch}


def held(path: Path) -> list[list[str]]:
    """The events each row holds an entry of."""
    return [[i for i, _ in batch] for _, _, batch in rows(path)]


def entry(key: str) -> Entry:
    return Entry(key, {f"events/{key}.ics": ("d" * 64, 10)}, {"ical": (1, 2, (), None, b"[]")})


def test_batches_are_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = EventCache(path)
    store.put([("a", entry("ka")), ("b", entry("kb"))])
    store.put([("c", entry("kc"))])
    assert store.entries == {}  # what was written is not held in memory
    assert held(path) == [["a", "b"], ["c"]]  # a batch to a row
    assert {f for _, f, _ in rows(path)} == {eventcache.FORMAT}
    again = EventCache(path)
    assert again.entries == {"a": entry("ka"), "b": entry("kb"), "c": entry("kc")}
    assert again.get("a", "ka") == entry("ka")
    assert again.get("a", "another key") is None

    again.put([("a", entry("ka")), ("b", entry("kb2"))])
    assert sorted(again.entries) == ["a", "c"]  # b was replaced, a is unchanged
    assert held(path) == [["a", "b"], ["c"], ["b"]]  # the later row's b is the one read
    assert EventCache(path).entries == {"a": entry("ka"), "b": entry("kb2"), "c": entry("kc")}
    again.keep_only({"a", "b"})
    assert sorted(again.entries) == ["a"]
    assert stored(path) == {"a": entry("ka"), "b": entry("kb2")}
    assert EventCache(path).entries == {"a": entry("ka"), "b": entry("kb2")}


def test_a_row_whose_entries_were_all_written_again_is_deleted(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    EventCache(path).put([("a", entry("ka")), ("b", entry("kb"))])
    store = EventCache(path)
    store.put([("a", entry("ka2"))])
    assert held(path) == [["a", "b"], ["a"]]
    store.put([("b", entry("kb2"))])
    assert held(path) == [["a"], ["b"]]
    assert EventCache(path).entries == {"a": entry("ka2"), "b": entry("kb2")}


def test_rows_mostly_out_of_date_or_small_are_joined_when_a_build_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventcache, "SMALL", 3)
    path = tmp_path / "store.sqlite"
    names = [f"e{n}" for n in range(8)]
    store = EventCache(path)
    store.put([(i, entry(i)) for i in names[:4]])
    store.put([(i, entry(i)) for i in names[4:]])
    store.keep_only(set(names))
    assert held(path) == [names[:4], names[4:]]  # two full rows: nothing to join

    # Builds after an edit each write a row of one entry: one such row is left as it is,
    # two are joined.
    store = EventCache(path)
    store.put([("e0", entry("e0 again"))])
    store.keep_only(set(names))
    assert held(path) == [names[:4], names[4:], ["e0"]]
    store = EventCache(path)
    store.put([("e5", entry("e5 again"))])
    store.keep_only(set(names))
    assert held(path) == [names[:4], names[4:], ["e0", "e5"]]

    # e1 and e2 written again leave the first row with one latest entry of four: it is
    # joined with the small rows (in the order they were written), and the rows then hold
    # each event once.
    store = EventCache(path)
    store.put([("e1", entry("e1 again")), ("e2", entry("e2 again"))])
    store.keep_only(set(names))
    assert held(path) == [names[4:], ["e3", "e0", "e5", "e1", "e2"]]
    latest = {i: entry(i) for i in names} | {
        i: entry(f"{i} again") for i in ("e0", "e1", "e2", "e5")
    }
    assert stored(path) == latest
    assert EventCache(path).entries == latest

    # Events gone from the site are forgotten: a row left with none of the latest goes.
    store = EventCache(path)
    store.keep_only({"e0", "e1", "e2", "e3", "e5"})
    assert held(path) == [["e3", "e0", "e5", "e1", "e2"]]
    assert EventCache(path).entries == {i: latest[i] for i in ("e0", "e1", "e2", "e3", "e5")}


def test_a_row_mostly_out_of_date_is_written_again_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventcache, "SMALL", 1)  # no row is small
    path = tmp_path / "store.sqlite"
    names = [f"e{n}" for n in range(6)]
    EventCache(path).put([(i, entry(i)) for i in names])
    store = EventCache(path)
    store.put([(i, entry(f"{i} again")) for i in names[:3]])
    store.keep_only(set(names))
    assert held(path) == [names, names[:3]]  # half of the first row is the latest
    store = EventCache(path)
    store.put([("e3", entry("e3 again"))])
    store.keep_only(set(names))
    # two latest of six: the first row goes, its latest entries are written anew
    assert held(path) == [names[:3], ["e3"], ["e4", "e5"]]
    assert EventCache(path).entries == {i: entry(i) for i in names[4:]} | {
        i: entry(f"{i} again") for i in names[:4]
    }


def test_rows_of_an_older_layout_are_not_read_and_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    old = Entry("k", {}, {"ical": (1, 2, (), None, "jCal as text")})
    with sqlite3.connect(path) as db:  # layout 4: an entry to a row
        db.execute("CREATE TABLE events (id TEXT PRIMARY KEY, format INTEGER, data BLOB)")
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?)",
            [("a", 4, pickle.dumps(old)), ("b", 4, pickle.dumps(old))],
        )
        db.execute("CREATE TABLE entries (row INTEGER PRIMARY KEY, format INTEGER, data BLOB)")
        db.execute("INSERT INTO entries VALUES (7, 99, ?)", (pickle.dumps([("c", old)]),))
    store = EventCache(path)
    assert store.entries == {}
    assert store.get("a", "k") is None
    store.put([("a", entry("k"))])
    store.keep_only({"a", "b", "c"})
    assert [(f, batch) for _, f, batch in rows(path)] == [(eventcache.FORMAT, [("a", entry("k"))])]
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "events" not in tables


@pytest.mark.parametrize(
    "data", [b"not a pickle", pickle.dumps("not a batch"), pickle.dumps([("a", "not an entry")])]
)
def test_a_damaged_store_is_read_as_empty_and_its_rows_replaced(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "store.sqlite"
    EventCache(path).put([("x", entry("kx"))])
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO entries VALUES (NULL, ?, ?)", (eventcache.FORMAT, data))
    store = EventCache(path)
    assert store.entries == {}  # every event is compiled
    store.put([("a", entry("ka"))])
    assert held(path) == [["a"]]
    assert EventCache(path).entries == {"a": entry("ka")}


def test_after_a_write_that_failed_nothing_more_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite"
    EventCache(path).put([("a", entry("ka")), ("b", entry("kb"))])
    store = EventCache(path)
    real = EventCache._insert

    def failing(self: EventCache, db: sqlite3.Connection, batch: Any) -> int:
        real(self, db, batch)
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(EventCache, "_insert", failing)
    store.put([("a", entry("ka2"))])
    monkeypatch.undo()
    assert held(path) == [["a", "b"]]  # the failed row was not written
    store.put([("b", entry("kb2"))])
    store.keep_only(set())
    store.mark("a build")
    assert held(path) == [["a", "b"]]
    again = EventCache(path)
    assert again.entries == {"a": entry("ka"), "b": entry("kb")}
    assert again.marked is None


def test_a_store_that_cannot_be_written_is_no_failure(tmp_path: Path) -> None:
    folder = tmp_path / "a folder"
    folder.mkdir()
    store = EventCache(folder)
    store.put([("a", entry("k"))])
    store.keep_only(set())
    store = EventCache(tmp_path / "missing" / "store.sqlite")
    store.keep_only(set())
    assert not (tmp_path / "missing").exists()


def _built(site: Site, tmp_path: Path, name: str, jobs: int) -> tuple[dict[str, bytes], Path]:
    out = tmp_path / name
    store = EventCache(tmp_path / f"{name}.sqlite")
    artifacts = compile_site(site, None, NOW, as_of=AS_OF, jobs=jobs, reuse=store, previous_out=out)
    return {p: artifacts[p] for p in artifacts}, store.path


def test_entries_are_written_a_batch_at_a_time(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    real = EventCache._put

    def counting(self: EventCache, entries: Any) -> None:
        entries = list(entries)
        batches.append(len(entries))
        real(self, entries)

    monkeypatch.setattr(EventCache, "_put", counting)
    monkeypatch.setattr(build_module, "BATCH", 50)
    files, path = _built(site, tmp_path, "one", jobs=1)
    assert batches == [50, 50, 20]
    entries = stored(path)
    assert sorted(entries) == sorted(e.id for e in site.events)
    for event_id, found in entries.items():
        assert found.files == {
            p: (hashlib.sha256(files[p]).hexdigest(), len(files[p])) for p in found.files
        }
        assert sorted(found.files) == [f"events/{event_id}.html", f"events/{event_id}.ics"]


def test_entries_put_to_be_written_later_are_held_up_to_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch put ``later`` is held (nothing of it in the file) until a batch is written,
    the held entries pass the bound, or the store keeps only some events or is marked; then
    every batch held is written, in the order put, as the rows :meth:`put` writes."""
    monkeypatch.setattr(eventcache, "LATER_ENTRIES", 3)
    path = tmp_path / "store.events.sqlite"
    store = EventCache(path)

    def made(n: int) -> Entry:
        return entry(f"key{n}")

    store.put([("e1", made(1)), ("e2", made(2))], later=True)
    store.put([("e3", made(3))], later=True)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        stored(path)
    store.put([("e4", made(4))], later=True)  # four held: past the bound
    assert stored(path) == {f"e{n}": made(n) for n in (1, 2, 3, 4)}
    store.put([("e5", made(5))], later=True)
    assert "e5" not in stored(path)
    store.put([("e1", made(6))])  # written at once, after what is held
    assert stored(path) == {"e1": made(6), **{f"e{n}": made(n) for n in (2, 3, 4, 5)}}
    store.put([("e2", made(7))], later=True)
    store.keep_only({"e1", "e2", "e3"})
    assert stored(path) == {"e1": made(6), "e2": made(7), "e3": made(3)}
    store.put([("e3", made(8))], later=True)
    store.mark("made for")
    again = EventCache(path)
    assert again.marked == "made for"
    assert again.entries == {"e1": made(6), "e2": made(7), "e3": made(8)}


def test_a_worker_that_dies_leaves_the_rest_to_the_build(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks taken before a worker died are kept; the build compiles the others itself,
    to the bytes and the store of a build in one process."""
    sequential, one = _built(site, tmp_path, "one", jobs=1)
    parent = os.getpid()
    real = build_module._each
    doomed = max(site.events, key=lambda e: e.sort_key).id  # in the last chunk
    # Written once the build has taken a chunk from the workers. (The store's file is made
    # when the store is opened, before any chunk: a worker that died as soon as it existed
    # could take the chunks already done with it, and the build then made every event itself.)
    taken = tmp_path / "taken"
    put = EventCache.put
    here: list[str] = []

    def taking(cache: EventCache, entries: Any, *, later: bool = False) -> None:
        put(cache, entries, later=later)
        if os.getpid() == parent:
            taken.touch()

    def dying(steps: Any, context: Any, events: Any) -> Any:
        if os.getpid() == parent:
            here.extend(e.id for e in events)
        elif any(e.id == doomed for e in events):
            deadline = time.monotonic() + 60
            while not taken.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # until the build has taken a chunk
            os._exit(1)
        return real(steps, context, events)

    monkeypatch.setattr(EventCache, "put", taking)
    monkeypatch.setattr(build_module, "_each", dying)
    monkeypatch.setattr(build_module, "BATCH", 10)
    parallel, two = _built(site, tmp_path, "two", jobs=2)
    assert doomed in here
    assert 0 < len(here) < RECORDS  # the chunks before the doomed one came from the workers
    assert list(parallel) == list(sequential)
    assert parallel == sequential
    assert stored(two) == stored(one)


def test_parallel_builds_in_small_chunks_equal_a_sequential_one(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequential, one = _built(site, tmp_path, "one", jobs=1)
    monkeypatch.setattr(build_module, "BATCH", 7)
    parallel, two = _built(site, tmp_path, "two", jobs=2)
    assert list(parallel) == list(sequential)
    assert parallel == sequential
    assert stored(two) == stored(one)


def test_workers_key_the_events_they_compile(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With forked workers, the build itself asks no compiler for an event's key: each
    worker keys the events it compiles, to the keys of a build in one process."""
    sequential, one = _built(site, tmp_path, "one", jobs=1)
    parent = os.getpid()
    asked: list[str] = []
    for module in (ical, pages):
        real = module.event_key

        def counting(context: Any, event: Any, real: Any = real) -> Any:
            if os.getpid() == parent:
                asked.append(event.id)
            return real(context, event)

        monkeypatch.setattr(module, "event_key", counting)
    parallel, two = _built(site, tmp_path, "two", jobs=2)
    assert asked == []
    assert parallel == sequential
    assert stored(two) == stored(one)
    assert all(e.state and e.days.startswith(f"{AS_OF}..") for e in stored(two).values())


@pytest.mark.parametrize("enabled", [True, False])
def test_entries_are_read_back_with_the_cycle_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    """Opening pauses the collector while entries are made, and leaves it as it found it."""
    path = tmp_path / "store.sqlite"
    EventCache(path).put([("a", entry("ka")), ("b", entry("kb"))])
    seen: list[bool] = []
    real = pickle.loads

    def watching(data: bytes) -> Any:
        seen.append(gc.isenabled())
        return real(data)

    monkeypatch.setattr(eventcache.pickle, "loads", watching)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        store = EventCache(path)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False]  # one batch
    assert store.entries == {"a": entry("ka"), "b": entry("kb")}


def test_entries_read_back_in_a_build_are_kept_from_the_collector_with_the_site(
    tmp_path: Path,
) -> None:
    """A build opens the store with its loaded site frozen (kept from the collector): the
    entries join it, instead of being walked as young when the collector resumes (at 100,000
    events, a pass of half a second that frees nothing)."""
    path = tmp_path / "store.sqlite"
    EventCache(path).put([("a", entry("ka")), ("b", entry("kb"))])
    was = gc.isenabled()
    gc.enable()
    try:
        gc.freeze()
        store = EventCache(path)
        seen = tracked()
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()
    assert store.entries == {"a": entry("ka"), "b": entry("kb")}
    kept = [store.entries["a"], store.entries["a"].files, store.entries["b"].notes]
    assert not {id(o) for o in kept} & seen


def test_the_order_worked_out_beside_the_history_is_the_same(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From :data:`eventfeed.build.ORDER_ASIDE_EVENTS` events on, their order is worked out
    in a forked process while the history is: the same files and store as when it is
    worked out here; and an order that does not come back, or is not one of every event,
    is worked out here."""
    from eventfeed.build import BuildContext, _order_aside
    from eventfeed.forked import Forked
    from eventfeed.state import advance

    here, kept_here = _built(site, tmp_path, "here", jobs=1)
    monkeypatch.setattr(build_module, "ORDER_ASIDE_EVENTS", 1)
    started: list[int] = []
    start = Forked.start

    def starting(work: Any) -> Any:
        made = start(work)
        started.append(made.pid if made is not None else 0)
        return made

    monkeypatch.setattr(Forked, "start", starting)
    beside, kept_beside = _built(site, tmp_path, "beside", jobs=1)
    assert len(started) == 1
    assert started[0] > 0
    assert beside == here
    assert stored(kept_beside) == stored(kept_here)

    history = advance(None, site.events, NOW, site.root)
    expected = sorted(site.events, key=lambda e: (e.sort_key[0], e.id))
    aside = _order_aside(site.events)
    assert aside is not None
    context = BuildContext(site=site, history=history, as_of=AS_OF)
    context.keep_order(aside)
    assert "" in context._memo
    assert context.chronological() == expected
    count = len(site.events)
    shifted = array("q", range(1, count + 1)).tobytes()  # one past the last event
    for sent in (None, b"", bytes(8 * count), b"\xff" * 8 * count, shifted):

        class Sent:
            def output(self, sent: bytes | None = sent) -> bytes | None:
                return sent

        monkeypatch.setattr(Forked, "start", lambda work: Sent())
        aside = _order_aside(site.events)
        assert aside is not None
        context = BuildContext(site=site, history=history, as_of=AS_OF)
        context.keep_order(aside)
        assert "" not in context._memo  # not taken: worked out here when asked
        assert context.chronological() == expected
