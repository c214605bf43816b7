"""What the per-event steps made of each event in the last build, so an edit rebuilds one event.

A compiler's per-event step (:class:`eventfeed.build.Compiler`) is a pure function of the
event, its history, the settings, eventfeed itself and what the compiler's ``key`` names. The
build digests all of these into one key per event. This store keeps, per event id, the key of
the last build and what the steps made with it: the digest and size of each file, and each
compiler's note. When the key is the same, the build takes the notes from here and the files
from the previous out/ (the writer links them into the new tree), instead of compiling the
event again.

Working out the key asks each compiler what the build's day changes of the event (how it
is listed, above all), which took most of a rebuild's keys. So each entry also names the
event's state key (the base and the event's history, which covers the whole record) and the
days its key holds on, from the day it was worked out on to the day the compilers say it
stops holding (an event's last day, say, after which it is listed among the past ones): a
build with the same state key, on one of those days, takes the entry's key as it is. A build that
has put every entry marks the store as made for its base and the manifest it wrote
(:meth:`EventCache.mark`); the next build, finding that manifest in out/, takes the state key
of each event whose history is unchanged from its entry too, instead of digesting the
history again. Writing any entry removes the mark first.

A file is reused only when the previous build's manifest, still in out/, names it with the
same digest; otherwise the event is compiled as if it were new. So the store can never put
bytes into out/ that a build would not make: it only says which files of the out/ in place
are already right, and the manifest in that out/ must agree. Entries are written as the
build's per-event steps make them, a batch at a time (so that a build of many events never
holds every entry, nor every pickled entry, at once), whether or not the rest of the build
succeeds; they stay true either way, because each says only what a key produces (and which
key a state has on a day).

The store is one SQLite file per output folder in the user's cache folder, beside the
no-change fingerprints (:mod:`eventfeed.cache`); deleting it is always safe.

Entries are kept a batch to a row, as the build puts them (one pickle of the batch's list),
not one to a row: with 100,000 events, writing a row per entry cost 0.8 s of SQLite in the
build's first process, a row per batch of 1,000 costs 0.2 s, and opening the store reads
them back in 0.73 s instead of 1.0 s (the pickle of a batch names the classes, the
compilers and the repeated strings once). Rows are read in the order they were written, so
an entry written again in a later row replaces the one before. The store counts, for each row, the
entries in it that are still the latest of their event: a row left with none is deleted,
and rows that are mostly replaced or small (the one-entry row of a build after an edit)
are joined into new ones at the end of a build (:meth:`EventCache.keep_only`), so the rows
stay few and hold little that is out of date.

Every entry is read back when the store is opened (a rebuild asks for nearly all of them),
with the cycle collector paused: while the entries are made, it would walk the whole heap of
the loaded site again and again and find nothing to free (four fifths of the opening's time
at 10,000 events). A packed form (``marshal`` of plain values, the notes' dates and
dataclasses rebuilt by hand) was measured too: no faster than a pickle once the collector is
paused, so entries stay pickled.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import operator
import pickle
import sqlite3
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

from .load import collector_paused

#: The layout of the rows; rows of another layout are never read, and are deleted when a
#: build is done (:meth:`EventCache.keep_only`). 2: the calendars' jCal text is compressed;
#: 3: each entry names the state and the day its key was worked out for, and the pages'
#: note where the event goes in the listings; 4: the days its key holds on, not that day;
#: 5: a batch of entries to a row, not one.
FORMAT = 5
#: A row holding fewer of the latest entries than this is joined with others when a build
#: ends, if at least two such rows are left or a row mostly out of date is written again
#: (:meth:`EventCache.keep_only`).
SMALL = 64
#: entries to a row joined from others
_JOINED = 1000
_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)


@dataclass(frozen=True)
class Entry:
    """What one event's per-event steps made, under one key."""

    key: str
    #: path -> (digest as in the manifest, size in bytes)
    files: Mapping[str, tuple[str, int]]
    #: compiler name -> its note
    notes: Mapping[str, object]
    #: the event's state key (:func:`eventfeed.build.state_key`) and the days :attr:`key`
    #: holds on (:func:`eventfeed.build.key_days`): a build with the same state key on one
    #: of those days has the same key for the event without asking the compilers (empty:
    #: never the same)
    state: str = ""
    days: str = ""


#: The most entries :meth:`EventCache.put` holds back to write later (with ``later``): past
#: it, what it holds is written at once (the notes the entries hold are the build's own).
LATER_ENTRIES = 16_384


class EventCache:
    """Entries by event id: read whole when opened, written a batch at a time (:meth:`put`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        #: batches put to be written later (:meth:`put`), and how many entries they hold
        self._held: list[list[tuple[str, Entry]]] = []
        self._held_count = 0
        #: what the entries were marked as made for when read (:meth:`mark`), if anything
        self.marked: str | None = None
        self._spoiled = False  # a write of this build failed: nothing more is written
        #: files of whole steps: path -> (key, digest, size) (:class:`eventfeed.build.Lazy`)
        self.outputs: dict[str, tuple[str, str, int]] = {}
        #: the row of each event's latest entry, and per row the entries in it, and how many
        #: of them are still the latest of their event
        self._row_of: dict[str, int] = {}
        self._rows: dict[int, list[int]] = {}
        #: the rows could not be read: the next write deletes them all first
        self._damaged = False
        sizes: dict[int, int] = {}
        try:
            with contextlib.closing(sqlite3.connect(path)) as db, collector_paused():
                found = db.execute(
                    "SELECT row, data FROM entries WHERE format = ? ORDER BY row", (FORMAT,)
                )
                # (whole-batch operations: a call per entry cost a fifth of the opening)
                for row, data in found:
                    batch = pickle.loads(data)
                    if type(batch) is not list or not all(
                        isinstance(e, Entry) for e in map(_SECOND, batch)
                    ):
                        raise ValueError("not a batch of entries")
                    sizes[row] = len(batch)
                    self.entries.update(batch)
                    self._row_of.update(zip(map(_FIRST, batch), repeat(row)))
            latest = Counter(self._row_of.values())
            self._rows = {row: [size, latest[row]] for row, size in sizes.items()}
        except sqlite3.OperationalError:
            self._forget()  # no store yet, or not this layout
        except (
            sqlite3.Error,
            pickle.UnpicklingError,
            EOFError,
            AttributeError,
            ValueError,
            TypeError,
        ):
            self._forget()  # damaged: every event is compiled, and the rows are replaced
            self._damaged = True
        try:
            with contextlib.closing(sqlite3.connect(path)) as db:
                found = db.execute(
                    "SELECT path, key, digest, size FROM outputs WHERE format = ?", (FORMAT,)
                )
                self.outputs = {str(p): (str(k), str(d), int(n)) for p, k, d, n in found}
        except (sqlite3.Error, ValueError, TypeError):
            self.outputs = {}
        try:
            with contextlib.closing(sqlite3.connect(path)) as db:
                row = db.execute("SELECT value FROM marks WHERE format = ?", (FORMAT,)).fetchone()
                self.marked = str(row[0]) if row is not None and self.entries else None
        except (sqlite3.Error, TypeError):
            self.marked = None

    def _forget(self) -> None:
        self.entries, self._row_of, self._rows = {}, {}, {}

    def _assign(self, event_id: str, row: int) -> None:
        """Count ``row`` as holding the latest entry of ``event_id``, and the row it was in
        before as holding one fewer."""
        before = self._row_of.get(event_id)
        if before is not None:
            self._rows[before][1] -= 1
        self._row_of[event_id] = row
        self._rows[row][1] += 1

    @classmethod
    def for_out(cls, out_dir: Path) -> EventCache:
        return cls(cls.file_for(out_dir))

    @staticmethod
    def file_for(out_dir: Path) -> Path:
        """Where the store of the builds into ``out_dir`` is."""
        from .cache import cache_file

        return cache_file(out_dir).with_suffix(".events.sqlite")

    @staticmethod
    def mark_of(path: Path) -> str | None:
        """What the store at ``path`` is marked as made for (:meth:`mark`), without reading
        its entries; None when nothing is."""
        if not path.exists():
            return None
        try:
            with contextlib.closing(sqlite3.connect(path)) as db:
                row = db.execute("SELECT value FROM marks WHERE format = ?", (FORMAT,)).fetchone()
        except (sqlite3.Error, TypeError):
            return None
        return str(row[0]) if row is not None else None

    @staticmethod
    def add(path: Path, entries: list[tuple[str, Entry]], made_for: str) -> None:
        """Write ``entries`` to the store at ``path`` without reading it, as one row after the
        others (which the entries it holds of the same events are then older than), and mark
        it as made for ``made_for``, in one transaction: for a build that compiled only those
        events, and left every other entry as it was. A store that cannot be written is no
        failure: the next build compiles those events again."""
        data = pickle.dumps(entries, pickle.HIGHEST_PROTOCOL)
        try:
            with _transaction(
                path, "entries (row INTEGER PRIMARY KEY, format INTEGER, data BLOB)"
            ) as db:
                _unmark(db)
                db.execute("INSERT INTO entries VALUES (NULL, ?, ?)", (FORMAT, data))
                db.execute("INSERT INTO marks VALUES (?, ?)", (FORMAT, made_for))
        except (OSError, sqlite3.Error):
            return

    def get(self, event_id: str, key: str) -> Entry | None:
        entry = self.entries.get(event_id)
        return entry if entry is not None and entry.key == key else None

    def put(self, entries: Iterable[tuple[str, Entry]], *, later: bool = False) -> None:
        """Write a batch of entries (event id, entry) in one transaction, as one row; a store
        that cannot be written is no failure.

        An entry equal to the one read when the store was opened is not written again. The
        entries written are not kept in memory, and those they replace are dropped from it.
        A row whose entries have all been written again since is deleted.

        With ``later``, the batch is held (up to :data:`LATER_ENTRIES` entries in all) and
        written with the next batch written, or by :meth:`write_held`: a build puts its
        entries while its workers keep both cores busy, and writes them once it waits for
        the second (with 10,000 events, 0.12 s of a cold build moved off the workers' cores).
        :meth:`keep_only` and :meth:`mark` write what is held first.
        """
        self._held.append(list(entries))
        self._held_count += len(self._held[-1])
        if not later or self._held_count > LATER_ENTRIES:
            self.write_held()

    def write_held(self) -> None:
        """Write the batches :meth:`put` holds, in the order they were put."""
        held, self._held, self._held_count = self._held, [], 0
        for batch in held:
            self._put(batch)

    def _put(self, entries: list[tuple[str, Entry]]) -> None:
        changed = [(i, e) for i, e in entries if self.entries.get(i) != e]
        if not changed:
            return
        try:
            with self._writing() as db:
                _unmark(db)  # in the same transaction as the entries
                row = self._insert(db, changed)
                for event_id, _ in changed:
                    self._assign(event_id, row)
                self._drop_empty(db)
        except (OSError, sqlite3.Error):
            return
        self.marked = None
        for event_id, _ in changed:
            self.entries.pop(event_id, None)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the store, made if missing (its rows deleted first, if they
        could not be read). Once one has failed, nothing more is written in this build: the
        counts of the rows may not be those of the file then. Each row holds its entries
        whole, so what the file holds is right either way."""
        if self._spoiled:
            raise sqlite3.OperationalError("the store could not be written before")
        try:
            with _transaction(
                self.path, "entries (row INTEGER PRIMARY KEY, format INTEGER, data BLOB)"
            ) as db:
                if self._damaged:
                    db.execute("DELETE FROM entries")
                yield db
        except BaseException:
            self._spoiled = True
            raise
        self._damaged = False

    def _insert(self, db: sqlite3.Connection, batch: list[tuple[str, Entry]]) -> int:
        data = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        row = db.execute("INSERT INTO entries VALUES (NULL, ?, ?)", (FORMAT, data)).lastrowid
        assert row is not None
        self._rows[row] = [len(batch), 0]
        return row

    def _drop_empty(self, db: sqlite3.Connection) -> None:
        empty = [row for row, (_, latest) in self._rows.items() if latest == 0]
        db.executemany("DELETE FROM entries WHERE row = ?", ((row,) for row in empty))
        for row in empty:
            del self._rows[row]

    def mark(self, made_for: str) -> None:
        """Mark every entry as made for ``made_for`` (:func:`eventfeed.build.made_for`: the
        build's base and the manifest it wrote), once the build has put all of them: then
        the state key of each is the one that manifest's history of its event gives, and the
        next build takes it as it is for an event whose history is unchanged
        (:func:`eventfeed.build._keys`). Any entry written later removes the mark first;
        nothing is marked after an entry of this build could not be written."""
        self.write_held()
        if self._spoiled:
            return
        try:
            with _transaction(self.path, _MARKS) as db:
                _unmark(db)
                db.execute("INSERT INTO marks VALUES (?, ?)", (FORMAT, made_for))
        except (OSError, sqlite3.Error):
            return

    def keep_only(self, ids: Container[str]) -> None:
        """Forget the entries of events not in ``ids`` (gone from the site), delete the rows
        of another layout (:data:`FORMAT`), and join the rows that are mostly out of date or
        small into new ones (called once a build has put every entry)."""
        self.write_held()
        gone = [i for i in self._row_of if i not in ids]
        if not self.path.exists():
            return
        try:
            with self._writing() as db:
                for event_id in gone:
                    self._rows[self._row_of.pop(event_id)][1] -= 1
                self._drop_empty(db)
                self._join(db)
                db.execute("DELETE FROM entries WHERE format IS NOT ?", (FORMAT,))
                db.execute("DROP TABLE IF EXISTS events")  # of layouts before 5
        except (OSError, sqlite3.Error):
            return
        for event_id in gone:
            self.entries.pop(event_id, None)

    def _join(self, db: sqlite3.Connection) -> None:
        """Write the latest entries of some rows into new ones, and delete those rows: the
        rows that hold more out-of-date entries than latest ones, and those that hold fewer
        than :data:`SMALL` latest entries when there are two such rows or more."""
        stale = {row for row, (size, latest) in self._rows.items() if latest * 2 < size}
        small = {row for row, (_, latest) in self._rows.items() if latest < SMALL} - stale
        if not stale and len(small) < 2:
            return
        loose = sorted(stale | small)  # in the order they were written
        kept: list[tuple[str, Entry]] = []
        for row in loose:
            (data,) = db.execute("SELECT data FROM entries WHERE row = ?", (row,)).fetchone()
            kept.extend((i, e) for i, e in pickle.loads(data) if self._row_of.get(i) == row)
        for start in range(0, len(kept), _JOINED):
            batch = kept[start : start + _JOINED]
            new = self._insert(db, batch)
            for event_id, _ in batch:
                self._assign(event_id, new)
        self._drop_empty(db)

    def output(self, path: str, key: str) -> tuple[str, int] | None:
        """(digest, size) of the whole step's file ``path`` made under ``key`` last time."""
        found = self.outputs.get(path)
        return (found[1], found[2]) if found is not None and found[0] == key else None

    def save_outputs(self, outputs: Mapping[str, tuple[str, str, int]]) -> None:
        """Keep exactly ``outputs``; a store that cannot be written is no failure."""
        if outputs == self.outputs:
            return
        try:
            with _transaction(
                self.path,
                "outputs (path TEXT PRIMARY KEY, format INTEGER, key TEXT, digest TEXT,"
                " size INTEGER)",
            ) as db:
                db.execute("DELETE FROM outputs")
                db.executemany(
                    "INSERT INTO outputs VALUES (?, ?, ?, ?, ?)",
                    ((p, FORMAT, k, d, n) for p, (k, d, n) in sorted(outputs.items())),
                )
        except (OSError, sqlite3.Error):
            return
        self.outputs = dict(outputs)

    def zones(self, base: str) -> dict[tuple[str, int, int], bytes]:
        """Serialised VTIMEZONEs kept by a build with the same ``base`` (code and zone data)."""
        try:
            with contextlib.closing(sqlite3.connect(self.path)) as db:
                rows = db.execute(
                    "SELECT tzid, first, last, data FROM zones WHERE base = ?",
                    (short_digest(base),),
                )
                return {(str(z), int(f), int(t)): bytes(d) for z, f, t, d in rows}
        except (sqlite3.Error, ValueError, TypeError):
            return {}

    def save_zones(self, base: str, zones: Mapping[tuple[str, int, int], bytes]) -> None:
        """Keep ``zones`` for builds with the same ``base``, forgetting those of others."""
        if not zones:
            return
        try:
            with _transaction(
                self.path,
                "zones (base TEXT, tzid TEXT, first INTEGER, last INTEGER, data BLOB,"
                " PRIMARY KEY (base, tzid, first, last))",
            ) as db:
                db.execute("DELETE FROM zones WHERE base != ?", (short_digest(base),))
                db.executemany(
                    "INSERT OR IGNORE INTO zones VALUES (?, ?, ?, ?, ?)",
                    ((short_digest(base), *key, data) for key, data in sorted(zones.items())),
                )
        except (OSError, sqlite3.Error):
            return


@contextlib.contextmanager
def _transaction(path: Path, table: str) -> Iterator[sqlite3.Connection]:
    """One transaction on the store at ``path``, made if missing, with ``table`` (its name
    and columns) made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(f"CREATE TABLE IF NOT EXISTS {table}")
        yield db


_MARKS = "marks (format INTEGER, value TEXT)"


def _unmark(db: sqlite3.Connection) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {_MARKS}")
    db.execute("DELETE FROM marks")


def short_digest(base: str) -> str:
    return hashlib.sha256(base.encode()).hexdigest()


def event_key(base: str, parts: Iterable[str]) -> str:
    """One event's key: the build's base (code, settings) and the event's own parts.

    The base (the settings among it) is digested once per build, not once per event."""
    digest = _base_digest(base).copy()
    digest.update("\0".join(("", *parts)).encode())
    return str(digest.hexdigest())


@functools.lru_cache(maxsize=4)
def _base_digest(base: str) -> Any:
    return hashlib.sha256(base.encode())
