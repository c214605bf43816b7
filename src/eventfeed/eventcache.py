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
import pickle
import sqlite3
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .load import collector_paused

#: The layout of the rows; rows of another layout are never read, and are deleted when a
#: build is done (:meth:`EventCache.keep_only`). 2: the calendars' jCal text is compressed;
#: 3: each entry names the state and the day its key was worked out for, and the pages'
#: note where the event goes in the listings; 4: the days its key holds on, not that day.
FORMAT = 4


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


class EventCache:
    """Entries by event id; read whole when opened, replaced whole by :meth:`save`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        #: what the entries were marked as made for when read (:meth:`mark`), if anything
        self.marked: str | None = None
        self._spoiled = False  # an entry of this build that could not be written
        #: files of whole steps: path -> (key, digest, size) (:class:`eventfeed.build.Lazy`)
        self.outputs: dict[str, tuple[str, str, int]] = {}
        try:
            with contextlib.closing(sqlite3.connect(path)) as db, collector_paused():
                rows = db.execute("SELECT id, data FROM events WHERE format = ?", (FORMAT,))
                for event_id, data in rows:
                    entry = pickle.loads(data)
                    if isinstance(entry, Entry):
                        self.entries[event_id] = entry
        except (sqlite3.Error, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            self.entries = {}  # missing or damaged: every event is compiled
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

    @classmethod
    def for_out(cls, out_dir: Path) -> EventCache:
        from .cache import cache_file

        return cls(cache_file(out_dir).with_suffix(".events.sqlite"))

    def get(self, event_id: str, key: str) -> Entry | None:
        entry = self.entries.get(event_id)
        return entry if entry is not None and entry.key == key else None

    def put(self, entries: Iterable[tuple[str, Entry]]) -> None:
        """Write a batch of entries (event id, entry) in one transaction; a store that cannot
        be written is no failure.

        An entry equal to the one read when the store was opened is not written again. The
        entries written are not kept in memory, and those they replace are dropped from it.
        """
        changed = [(i, e) for i, e in entries if self.entries.get(i) != e]
        if not changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(self.path)) as db, db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS events"
                    " (id TEXT PRIMARY KEY, format INTEGER, data BLOB)"
                )
                _unmark(db)  # in the same transaction as the entries
                db.executemany(
                    "INSERT OR REPLACE INTO events VALUES (?, ?, ?)",
                    ((i, FORMAT, pickle.dumps(e, pickle.HIGHEST_PROTOCOL)) for i, e in changed),
                )
        except (OSError, sqlite3.Error):
            self._spoiled = True
            return
        self.marked = None
        for event_id, _ in changed:
            self.entries.pop(event_id, None)

    def mark(self, made_for: str) -> None:
        """Mark every entry as made for ``made_for`` (:func:`eventfeed.build.made_for`: the
        build's base and the manifest it wrote), once the build has put all of them: then
        the state key of each is the one that manifest's history of its event gives, and the
        next build takes it as it is for an event whose history is unchanged
        (:func:`eventfeed.build._keys`). Any entry written later removes the mark first;
        nothing is marked after an entry of this build could not be written."""
        if self._spoiled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(self.path)) as db, db:
                _unmark(db)
                db.execute("INSERT INTO marks VALUES (?, ?)", (FORMAT, made_for))
        except (OSError, sqlite3.Error):
            return

    def keep_only(self, ids: Container[str]) -> None:
        """Delete the entries of events not in ``ids`` (gone from the site), and every row of
        another layout (:data:`FORMAT`)."""
        gone = [i for i in self.entries if i not in ids]
        try:
            if not self.path.exists():
                return
            with contextlib.closing(sqlite3.connect(self.path)) as db, db:
                db.executemany("DELETE FROM events WHERE id = ?", ((i,) for i in gone))
                db.execute("DELETE FROM events WHERE format IS NOT ?", (FORMAT,))
        except (OSError, sqlite3.Error):
            return
        for event_id in gone:
            del self.entries[event_id]

    def output(self, path: str, key: str) -> tuple[str, int] | None:
        """(digest, size) of the whole step's file ``path`` made under ``key`` last time."""
        found = self.outputs.get(path)
        return (found[1], found[2]) if found is not None and found[0] == key else None

    def save_outputs(self, outputs: Mapping[str, tuple[str, str, int]]) -> None:
        """Keep exactly ``outputs``; a store that cannot be written is no failure."""
        if outputs == self.outputs:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(self.path)) as db, db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS outputs"
                    " (path TEXT PRIMARY KEY, format INTEGER, key TEXT, digest TEXT, size INTEGER)"
                )
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
            with contextlib.closing(sqlite3.connect(self.path)) as db, db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS zones (base TEXT, tzid TEXT, first INTEGER,"
                    " last INTEGER, data BLOB, PRIMARY KEY (base, tzid, first, last))"
                )
                db.execute("DELETE FROM zones WHERE base != ?", (short_digest(base),))
                db.executemany(
                    "INSERT OR IGNORE INTO zones VALUES (?, ?, ?, ?, ?)",
                    ((short_digest(base), *key, data) for key, data in sorted(zones.items())),
                )
        except (OSError, sqlite3.Error):
            return


def _unmark(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS marks (format INTEGER, value TEXT)")
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
