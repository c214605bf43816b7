"""Parsed records from the last build, so that a rebuild parses only the records that changed.

Parsing and validating a record (YAML, then the model) costs far more than reading its bytes.
A :class:`eventfeed.load.RecordFile` depends on nothing but the file's bytes, its name and
eventfeed itself (the model, and the zone data it checks zones against), so this store keeps,
per record file, a digest of those and the parsed record. A record whose digest is the one
stored is taken from here instead of being parsed again.

A file is not even read when its metadata shows it unchanged, by the rules of the no-change
check (:mod:`eventfeed.cache`, whose functions decide): beside each record the store keeps the
signature of the file's metadata (type, size, modification and change times in nanoseconds,
inode and device: :func:`eventfeed.cache.record_signature`, with eventfeed's code) as it was
just *before* the bytes the record was parsed from were read, and only when the file had not
changed for :data:`eventfeed.cache.RACY_NS` before the load began (:func:`eventfeed.cache.
settled`): a file written again within the file system's timestamp granularity of that moment
may keep all its metadata, so a fresh file is read at every load until one finds it old enough.
A load that finds the same signature takes the record without reading the file. So any write
is seen (it sets the change time, which no program sets back; a replaced file has another
inode), also one that keeps the size and puts the modification time back; not seen, as by the
no-change check, are bytes changed without the kernel knowing, and a file system whose clock
is behind the system's by more than the margin. Deleting the store forces a full read.

Beside each record the store keeps what the loader works out for it from the settings: the
digests of its content and schedule that the build's history compares
(:func:`eventfeed.state.content_digests`), under the digest of the settings (they depend on the
default zone and language); and the problems its checks found (:func:`eventfeed.load.
check_record`), under the settings digest and the days they hold on. Of the day, the checks
know only whether the event is still to come (warnings about a past event are quieted), so
what they found holds up to the event's last day, or from the day after it on. A rebuild
with the same settings checks only the records that changed, on any day but the one after an
event's last day (:meth:`RecordStore.derived`).

Only records that parse are kept: one that does not is parsed again at every build. Every key
holds a digest of eventfeed's code, so the messages are always those of the current code. The
store is one SQLite file per events folder in the user's cache folder; deleting it is always
safe.

A record is kept in a packed form (:func:`pack`): plain values that ``marshal`` writes, the
models' fields in their declared order, which :func:`unpack` makes back into the same models
as validation made them (equal values of the same types, the same fields set) without running
the validators. A general pickle of a record took about 35 us to read back, most of it in
looking up a class or a function by name for every model, date and enum member inside; the
packed form names none. A record holding a value the packed form does not spell is pickled.
The line of every key, which only messages need, is packed apart, with the line of the id
beside it: a record read back makes its lines only when asked for them
(:class:`eventfeed.load.RecordFile`). So is the record itself, and its brief beside it
(:class:`eventfeed.event.Brief`: what every build asks of every event, whether it compiles
it or not): the event of a record read back makes its record only when a compiler asks for
more (:meth:`eventfeed.event.Event.packed`).

What every build reads of every record (its head: name, id, brief, the line of its id) is
kept apart from what only the records it compiles need (its rest: the record, its body and
its lines, nine tenths of the bytes), in a table of rests by the digest of the bytes each
was parsed from. A load reads the heads alone; a record's rest is read when it is first asked
for (one by one: the feeds' entries, the jCal calendar's events), or many at a time for the
records a build compiles or checks again (:func:`prefetch`), by each process with its own
connection. At 100,000 events, after one edit, the load took 2.6-2.7 s instead of 3.4-3.8 s
and the build's peak memory was 0.93 GB instead of 1.15 GB. A record a load's worker parsed
comes back whole, and is opened before the build's workers are forked (:class:`Opened`). A
rest the store has lost (another build removed it when the file changed) is read from the
file, parsed again, if it holds the same bytes; otherwise the build stops and asks to be run
again (:class:`_Rest`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import marshal
import os
import pickle
import sqlite3
import zlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from . import cache, days, model
from .event import Brief

if TYPE_CHECKING:
    from .errors import Problem
    from .load import RecordFile
    from .model import Record

#: 4: records packed (:func:`pack`) instead of pickled; 5: each file's metadata kept;
#: 6: a field's default model packed as a reference to it; 7: metadata spelled out, not digested,
#: and the records' digests those of the no-change check; 8: the lines of a record packed apart;
#: 9: the record packed apart too, with its brief and a checksum beside it
#: 10: the brief holds when the record was published and updated; 11: records by their path
#: below the events folder, not as shown; 12: each record's body, record and lines kept apart
#: from its head (:func:`pack`), in a table of their own, read only for the records asked for;
#: 13: no index of the records by digest, pages of 16 KiB
FORMAT = 13
#: A rest is 2.8 kB on average (a body of 200 to 2,000 characters): pages of 4 KiB held one
#: each, with a quarter of the page left empty. With 100,000 records, pages of 16 KiB made the
#: store 417 MB instead of 468 MB, and writing it took 1.15 s of CPU instead of 1.41 s.
PAGE_SIZE = 16384
#: The page cache of the connection a load writes through, in pages; None: SQLite's own (about
#: 2 MB). Once a load's writes outgrow it, SQLite writes them to the file and holds it locked
#: against every other connection until the load ends. A test makes it small, so that a few
#: dozen records do what many thousands do.
CACHE_PAGES: int | None = None
#: rows written with one statement
BATCH = 500
#: rows read with one statement (:meth:`RecordStore.expect`)
AHEAD = 200
#: the problems of a record whose checks found none, as kept
_NO_PROBLEMS = pickle.dumps([], pickle.HIGHEST_PROTOCOL)


class RecordStore:
    """Parsed records by their path below the events folder, each with the digest it was
    parsed from.

    The store is one per events folder, and a record is named in it as the manifest names it
    (:func:`eventfeed.state.below`), not as the user sees it: a build run from another folder,
    or given the folder spelled another way, finds every record it kept. The name a record
    is shown by (in messages, and in the problems of its checks) is the load's: a record
    found under another one is given the load's (:meth:`get`, :meth:`derived`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The digest of a record's bytes, which the no-change check shares (another format
        # of the store drops every row, so the format need not be in it).
        self._base = cache.record_key_base(cache._code_digest())
        #: what the metadata signatures are taken under (another code: none is trusted)
        self._prefix = self._base.hexdigest()[:32] + ":"
        self._db: sqlite3.Connection | None = None
        self._seen: set[str] = set()
        #: what was kept beside each record found: (settings digest, content digest,
        #: schedule digest, what its checks were run under, their problems pickled)
        self._derived: dict[str, tuple[str, str, str, str, bytes]] = {}
        #: the name each record found was shown by when kept, and the one the load shows it
        #: by, where they differ (:meth:`get`): the problems kept beside it name the first
        self._renamed: dict[str, tuple[str, str]] = {}
        self._writable = True
        #: the digest each kept record was parsed from, by source
        self._keys: dict[str, str] = {}
        #: the signature of each kept record's file when it was read (:meth:`unchanged`)
        self._files: dict[str, str] = {}
        #: the records the load will ask for, in its order, from :attr:`_next` on
        #: (:meth:`expect`), and the rows read ahead for them, by source
        self._expected: list[str] = []
        self._position: dict[str, int] = {}
        self._next = 0
        self._ahead: dict[str, tuple[Any, ...]] = {}
        #: rows and digest updates not yet written (:meth:`_flush`)
        self._rows: list[tuple[object, ...]] = []
        self._rests: list[tuple[str, bytes]] = []
        self._updates: list[tuple[object, ...]] = []
        #: digests whose rest no record may name any more (:meth:`save` removes those none does)
        self._dropped: set[str] = set()
        #: the digest of each record kept in this load (:meth:`put`), by source
        self._put: dict[str, str] = {}
        #: where a record read back by its head fetches its rest (:class:`_Rest`)
        self._where = os.path.abspath(path)
        self._file_updates: list[tuple[str, str]] = []
        for attempt in range(2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, isolation_level=None)
                if self._db.execute("PRAGMA user_version").fetchone()[0] != FORMAT:
                    self._db.execute("DROP TABLE IF EXISTS records")  # an older layout
                    self._db.execute("DROP TABLE IF EXISTS rests")
                    # (the pages of the old layout let go of, and the page size taken)
                    self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                    self._db.execute("VACUUM")
                    self._db.execute(f"PRAGMA user_version = {FORMAT}")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS records"
                    " (source TEXT PRIMARY KEY, key TEXT NOT NULL, head BLOB NOT NULL,"
                    " settings TEXT, content TEXT, schedule TEXT, checked TEXT, problems BLOB,"
                    " file TEXT)"
                )
                # the rest of each record (:func:`pack`), by the digest of the bytes it was
                # parsed from: what those bytes make, whichever file holds them
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS rests (key TEXT PRIMARY KEY, data BLOB NOT NULL)"
                )
                if CACHE_PAGES is not None:
                    self._db.execute(f"PRAGMA cache_size = {int(CACHE_PAGES)}")
                # One transaction for the whole load: what it parses is written as it goes
                # (not held in memory), and made visible at once by :meth:`save`.
                self._db.execute("BEGIN")
                for source, key, file in self._db.execute("SELECT source, key, file FROM records"):
                    self._keys[source] = key
                    if file is not None:
                        self._files[source] = file
                _WRITERS[self._where] = (os.getpid(), self._db)
                break
            except sqlite3.DatabaseError as exc:
                self.close()
                if attempt or isinstance(exc, sqlite3.OperationalError):
                    break  # locked, read-only: left as it is
                with contextlib.suppress(OSError):
                    path.unlink()  # not a database (damaged): start a new one
            except OSError:
                self.close()
                break

    @classmethod
    def for_events(cls, events_dir: Path) -> RecordStore:
        name = hashlib.sha256(str(events_dir.resolve()).encode()).hexdigest()[:32]
        return cls(cache.cache_dir() / f"{name}.records.sqlite")

    def key(self, raw: bytes) -> str:
        """The digest a record's bytes are stored under (with eventfeed's own code,
        :func:`eventfeed.cache.record_key`)."""
        return cache.record_key(self._base, raw)

    def signature(self, source: str, path: str | os.PathLike[str], started: int) -> str | None:
        """The signature of the file ``path`` (of the record ``source``) as it is now, taken
        before its bytes are read; None when it changed too short a time before ``started``
        (:func:`eventfeed.cache.scan_started`, taken before the load began) to be trusted
        by it, or cannot be taken (reading it will tell why)."""
        if self._db is None:
            return None
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return None
        return self.signature_of(info, started)

    def signature_of(self, info: os.stat_result, started: int) -> str | None:
        """:meth:`signature` of a file whose metadata ``info`` was taken after ``started``."""
        if self._db is None or not cache.settled(info, started):
            return None
        return cache.record_signature(self._prefix, info)

    def unchanged(self, source: str, signature: str | None) -> str | None:
        """The digest of the record kept for ``source`` when its file's ``signature``
        (:meth:`signature`) is the one kept with it: the file need not be read."""
        if signature is None or self._files.get(source) != signature:
            return None
        return self._keys.get(source)

    def kept(self, source: str) -> str | None:
        """The digest of the bytes the record kept for ``source`` was parsed from."""
        return self._keys.get(source)

    def keep_the_rest(self) -> None:
        """Keep, at :meth:`save`, the records of the files not asked for in this load (a
        load that reads only the records edited since the last)."""
        self._seen.update(self._keys)

    def saw(self, source: str, signature: str | None) -> None:
        """Keep ``signature``, taken before the file was read, with the record kept for
        ``source``, which :meth:`get` has just found for the bytes read."""
        if signature is not None and self._files.get(source) != signature:
            self._file_updates.append((signature, source))
            if len(self._file_updates) >= BATCH:
                self._flush()

    def holds(self, source: str) -> bool:
        """Whether a record of the file ``source`` is kept (parsed from whatever bytes) that
        this eventfeed may take: not one whose file's signature was taken under another code
        (its digest holds that code too, so no bytes can match it). After an upgrade, the
        loader then shares every record out to its workers to parse, as in a first build,
        instead of parsing them one by one."""
        if self._db is None or source not in self._keys:
            return False
        file = self._files.get(source)
        return file is None or file.startswith(self._prefix)

    def expect(self, sources: list[str]) -> None:
        """Say which records :meth:`get` will be asked for, in order: their rows are then
        read many at a time (one query for each costs about half of what unpacking does)."""
        self._expected = [source for source in sources if source in self._keys]
        self._position = {source: i for i, source in enumerate(self._expected)}
        self._next = 0
        self._ahead = {}

    def _row(self, source: str) -> tuple[Any, ...] | None:
        """The stored row of ``source``: read ahead with the next expected ones, or alone."""
        assert self._db is not None
        row = self._ahead.pop(source, None)
        if row is not None:
            return row
        position = self._position.get(source, -1)
        if position >= self._next:
            wanted = self._expected[position : position + AHEAD]
            self._next = position + len(wanted)
            marks = ",".join("?" * len(wanted))
            found = self._db.execute(
                "SELECT source, head, settings, content, schedule, checked, problems"
                f" FROM records WHERE source IN ({marks})",
                wanted,
            )
            self._ahead = {str(r[0]): r[1:] for r in found}
            return self._ahead.pop(source, None)
        found = self._db.execute(
            "SELECT head, settings, content, schedule, checked, problems FROM records"
            " WHERE source = ?",
            (source,),
        ).fetchone()
        return tuple(found) if found is not None else None

    def get(
        self, source: str, key: str, shown: str, path: str | os.PathLike[str]
    ) -> RecordFile | None:
        """The record parsed from the file ``source`` when it had the digest ``key``, named
        ``shown`` as the load shows it; ``path``: the file, where its rest is read from if
        the store has lost it (:class:`_Rest`). Only its head is read here: its body, record
        and lines are read when first asked for (:func:`open_rest`), or with many others
        (:func:`prefetch`)."""
        self._seen.add(source)
        if self._db is None or self._keys.get(source) != key:
            return None  # not kept, or kept for other bytes: nothing to ask the database
        try:
            row = self._row(source)
        except sqlite3.Error:
            return None
        if row is None or not isinstance(row[0], bytes):
            return None
        found = _unpacked(row[0], _Rest(self._where, key, os.fspath(path), shown, self._base))
        if found is None or type(found.source) is not str:
            return None
        if found.source != shown:  # kept by a load run from another folder
            self._renamed[source] = found.source, shown
            found.__dict__["source"] = shown
        settings, content, schedule, checked, problems = row[1:]
        if (
            type(settings) is str
            and type(content) is str
            and type(schedule) is str
            and type(checked) is str
            and type(problems) is bytes
        ):
            self._derived[source] = row[1:]
        return found

    def derived(
        self, source: str, settings: str, day: str
    ) -> tuple[tuple[str, str] | None, list[Problem] | None]:
        """What was kept beside the record just found for ``source``, each part when it was
        worked out under the same settings: its content and schedule digests (under the
        settings digest ``settings``), and the problems of its checks, when they hold under
        those settings on ``day`` (ISO, or "" for checks run without a day). Asked once: it
        is not kept here any longer.

        The problems are kept under the settings digest and the days they hold on, joined by
        a NUL: a span of days (:func:`days_held`), or nothing for checks run without a day."""
        found = self._derived.pop(source, None)
        renamed = self._renamed.pop(source, None)
        if found is None:
            return None, None
        digests = (found[1], found[2]) if found[0] == settings else None
        if not _holds_on(found[3], settings, day):
            return digests, None
        if found[4] == _NO_PROBLEMS:
            return digests, []  # nearly every record: nothing to unpickle
        try:
            problems = pickle.loads(found[4])
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return digests, None
        if not isinstance(problems, list):
            return digests, None
        if renamed is not None:  # the file as this load shows it
            before, shown = renamed
            problems = [replace(p, path=shown) if p.path == before else p for p in problems]
        return digests, problems

    def put_derived(
        self,
        source: str,
        settings: str,
        digests: tuple[str, str],
        held: str,
        problems: list[Problem],
    ) -> None:
        """Keep what was worked out for the record kept for ``source``: its digests under
        the settings ``settings``, and the problems of its checks, which hold under them on
        ``held`` (:func:`days_held`)."""
        blob = pickle.dumps(problems, pickle.HIGHEST_PROTOCOL)
        self._updates.append((settings, *digests, f"{settings}\0{held}", blob, source))
        if len(self._updates) >= BATCH:
            self._flush()

    def put(
        self,
        source: str,
        key: str,
        parsed: RecordFile | bytes,
        derived: tuple[str, tuple[str, str], str, list[Problem]] | None,
        signature: str | None = None,
    ) -> None:
        """Keep a record just parsed (or packed, :func:`pack`) and, when known, what was worked out
        for it (as :meth:`put_derived` takes it) and the signature of its file taken before it
        was read (:meth:`signature`); written by :meth:`save`."""
        self._seen.add(source)
        self._put[source] = key
        head, rest = _parts(parsed if isinstance(parsed, bytes) else pack(parsed))
        before = self._keys.get(source)
        if before is not None and before != key:
            self._dropped.add(before)
        if rest is not None:
            self._rests.append((key, rest))
        if derived is None:
            self._rows.append((source, key, head, None, None, None, None, None, signature))
        else:
            settings, digests, held, problems = derived
            blob = pickle.dumps(problems, pickle.HIGHEST_PROTOCOL)
            checked = f"{settings}\0{held}"  # (:meth:`derived`)
            self._rows.append((source, key, head, settings, *digests, checked, blob, signature))
        if len(self._rows) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        """Write the rows and digests kept so far (many at a time: one statement each costs
        more than the pickling)."""
        rows, rests, updates, files = self._rows, self._rests, self._updates, self._file_updates
        self._rows, self._rests, self._updates, self._file_updates = [], [], [], []
        if self._db is None or not self._writable:
            return
        try:
            self._db.executemany("INSERT OR REPLACE INTO rests VALUES (?, ?)", rests)
            self._db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            self._db.executemany("UPDATE records SET file = ? WHERE source = ?", files)
            self._db.executemany(
                "UPDATE records SET settings = ?, content = ?, schedule = ?, checked = ?,"
                " problems = ? WHERE source = ?",
                updates,
            )
        except sqlite3.Error:
            self._writable = False  # a full disk, a locked file: this load keeps nothing

    def save(self) -> None:
        """Commit the records parsed in this load and forget those of files not read in it;
        a store that cannot be written is no failure."""
        if self._db is None:
            return
        try:
            self._flush()
            if self._writable:
                gone = [(source,) for source in self._keys if source not in self._seen]
                self._db.executemany("DELETE FROM records WHERE source = ?", gone)
                self._dropped.update(self._keys[source] for (source,) in gone)
                # What the records left name: the digests kept in this load, and those kept
                # before of the others found. Worked out here, not by an index of the records
                # by digest, which cost a cold load of 100,000 records 0.4 s of its writes.
                named = set(self._put.values())
                named.update(
                    key
                    for source, key in self._keys.items()
                    if source in self._seen and source not in self._put
                )
                self._db.executemany(
                    "DELETE FROM rests WHERE key = ?",
                    [(key,) for key in sorted(self._dropped - named)],
                )
                self._db.execute("COMMIT")
            else:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Close the database and let go of what was read of it: a closed store holds
        nothing (the build that loaded through it keeps it until it ends; with 100,000
        records, the names, digests and signatures read take about 35 MB)."""
        if self._db is not None:
            if _WRITERS.get(self._where, (0, None))[1] is self._db:
                del _WRITERS[self._where]
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._keys, self._files, self._derived, self._renamed = {}, {}, {}, {}
        self._expected, self._position, self._ahead = [], {}, {}
        self._seen, self._dropped, self._put = set(), set(), {}


# The packed form of a record. A value is kept as it is when ``marshal`` writes it exactly
# (text, numbers, None, and tuples of these); anything else becomes a list that starts with one
# of these tags, and only a list is ever unpacked.
_TUPLE, _DATETIME, _DATE, _TIMEDELTA, _ENUM, _MODEL, _SHARED = range(7)
_PACKED = b"M"
_PICKLED = b"P"
_PLAIN = frozenset({str, int, float, bool, type(None)})
#: The models and enums a record is made of, by number (the numbers are the packed form's:
#: a change here needs another :data:`FORMAT`).
_MODELS: tuple[type[BaseModel], ...] = (
    model.Record,
    model.Location,
    model.Online,
    model.InlineOrganisation,
    model.Speaker,
    model.Document,
    model.Links,
    model.Override,
)
_ENUMS: tuple[type[Enum], ...] = (model.Status,)
_MODEL_NUMBERS = {cls: number for number, cls in enumerate(_MODELS)}
_ENUM_NUMBERS = {cls: number for number, cls in enumerate(_ENUMS)}
#: each model's field names, in the order validation fills them in
_NAMES = tuple(tuple(cls.model_fields) for cls in _MODELS)
#: each enum's members by value
_MEMBERS = tuple({member.value: member for member in cls} for cls in _ENUMS)
#: The models that are a field's default: validation gives every record without the field
#: that very object (the one ``Links()`` of every record without links), and so does
#: :func:`unpack`, by its number here.
_DEFAULTS: tuple[BaseModel, ...] = tuple(
    field.default
    for cls in _MODELS
    for field in cls.model_fields.values()
    if isinstance(field.default, BaseModel)
)
_DEFAULT_NUMBERS = {id(value): number for number, value in enumerate(_DEFAULTS)}
#: The fields set of a model, by its number and one bit per field: one set shared by every
#: model unpacked with the same fields set (equal to the one validation makes for each, and
#: never changed: the models are frozen, and ``model_copy`` changes a copy of it). A set of
#: ten names takes 728 bytes, about a seventh of what a record read back holds.
_FIELDS_SET: tuple[dict[int, set[str]], ...] = tuple({} for _ in _MODELS)
#: the bits of a fields set, by model number and the set
_BITS: dict[tuple[int, frozenset[str]], int] = {}

_new = object.__new__
#: where a record read back packed keeps its packed lines and the line of its id
#: (:class:`eventfeed.load.RecordFile`), in the instance's dictionary
PACKED_LINES = "_packed_lines"
ID_LINE = "_id_line"
#: where a record read back packed keeps its record still packed (:func:`unpack_record`),
#: and the brief of it (:class:`eventfeed.event.Brief`)
PACKED_RECORD = "_packed_record"
BRIEF = "_brief"
#: where a record read back packed keeps its rest (:func:`pack`) while it is not opened, or
#: what reads it from the store (:class:`_Rest`), and the checksum of it
PACKED_REST = "_packed_rest"
REST_FETCH = "_rest_fetch"
REST_CRC = "_rest_crc"
_set = object.__setattr__


def days_held(today: date | None, last_day: date) -> str:
    """The days on which the checks of an event whose last day is ``last_day`` find what
    they found on ``today``, as the store keeps them (:func:`eventfeed.days.span`): of the
    day, the checks know only whether the event is still to come
    (:func:`eventfeed.load.check_record`), so what they found holds up to its last day, or
    from the day after it; "" for checks run without a day."""
    if today is None:
        return ""
    if last_day >= today:
        return days.span(None, last_day)
    return days.span(last_day + timedelta(days=1), None)  # (today is a later day: one exists)


def _holds_on(checked: str, settings: str, day: str) -> bool:
    """Whether problems kept under ``checked`` hold under the settings digest ``settings`` on
    ``day`` (:meth:`RecordStore.derived`)."""
    kept, sep, held = checked.partition("\0")
    if not sep or kept != settings:
        return False
    if not day or not held:
        return day == held
    return days.within(held, day)


class _NotPacked(Exception):
    """A value the packed form does not spell: the record is pickled instead."""


def pack(parsed: RecordFile) -> bytes:
    """A record as the store keeps it: packed (:func:`unpack` gives it back), or pickled
    when it holds a value the packed form does not spell.

    A packed record is its head, then its rest. The head is what every build asks of every
    record: its name, id, first line and the line of its id, the brief of it
    (:class:`eventfeed.event.Brief`) and a checksum of the rest. The rest is what only the
    records a build compiles (or checks again) need: the record itself, its body, and the
    line of every key, each packed apart again, to be made only when asked for
    (:class:`eventfeed.load.RecordFile`). The store keeps the two apart (:func:`_parts`)."""
    try:
        record = marshal.dumps(_pack(parsed.record))
        if type(parsed.source) is not str or type(parsed.body) is not str:
            raise _NotPacked
        rest = marshal.dumps((record, parsed.body, marshal.dumps(parsed.lines)))
        head = marshal.dumps(
            (
                parsed.source,
                parsed.id,
                _pack(tuple(Brief.of(parsed.record))),
                parsed.first_line,
                parsed.id_line,
                zlib.crc32(rest),
            )
        )
        return b"".join((_PACKED, len(head).to_bytes(4, "little"), head, rest))
    except (_NotPacked, ValueError):  # marshal: "unmarshallable object"
        return _PICKLED + pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL)


def _parts(data: bytes) -> tuple[bytes, bytes | None]:
    """What the store keeps of a record :func:`pack` gave: the head (marked as packed), and
    the rest apart; a pickled record whole, without a rest."""
    if data[:1] != _PACKED:
        return data, None
    head, rest = _split(data)
    return _PACKED + head, rest


def _split(data: bytes) -> tuple[memoryview, bytes]:
    """The head and the rest of a record :func:`pack` packed."""
    size = int.from_bytes(data[1:5], "little")
    return memoryview(data)[5 : 5 + size], data[5 + size :]


def unpack(data: bytes) -> RecordFile | None:
    """The record :func:`pack` was given; None when ``data`` is not one (damaged).

    Of a packed record, the head is made here (the brief, above all), and the rest, checked
    (the checksum), is opened: its body is made, its record and lines are kept packed, to be
    made when a compiler or a check asks for them."""
    return _unpacked(data, None)


def _unpacked(data: bytes, fetch: _Rest | None) -> RecordFile | None:
    """:func:`unpack` of ``data`` as :func:`pack` gave it (``fetch`` None), or a record the
    store keeps (its head, :func:`_parts`), whose rest ``fetch`` reads when asked for; None
    when ``data`` is not one (damaged)."""
    made = _record_file()
    try:
        if data[:1] == _PICKLED:
            found = pickle.loads(data[1:])
        elif data[:1] == _PACKED and fetch is not None:
            found = _from_head(memoryview(data)[1:])
            if found is not None:
                found.__dict__[REST_FETCH] = fetch
        elif data[:1] == _PACKED:
            head, rest = _split(data)
            found = _from_head(head)
            if found is None or zlib.crc32(rest) != found.__dict__[REST_CRC]:
                return None
            found.__dict__[PACKED_REST] = rest
            open_rest(found)
        else:
            return None
    except Exception:  # anything a damaged row can raise means: parse the record again
        return None
    return found if isinstance(found, made) else None


def _from_head(head: memoryview) -> RecordFile | None:
    source, id_, brief, first_line, id_line, crc = marshal.loads(head)
    if type(id_line) is not int or type(crc) is not int or type(first_line) is not int:
        return None
    found = _new(_record_file())
    state = found.__dict__
    state.update(source=source, id=id_, first_line=first_line)
    state[BRIEF] = Brief._make(_unpack(brief) if type(brief) is list else brief)
    state[ID_LINE] = id_line
    state[REST_CRC] = crc
    return found


def open_rest(parsed: RecordFile) -> None:
    """Make the body of a record read back packed, and keep its record and lines ready to be
    made (:class:`eventfeed.load.RecordFile`): from the rest it holds, or read from the store
    (:class:`_Rest`)."""
    state = parsed.__dict__
    rest = state.pop(PACKED_REST, None)
    if rest is None:  # (never both: :func:`prefetch` replaces the one by the other)
        got = state.pop(REST_FETCH).rest(state[REST_CRC])
        if not isinstance(got, bytes):  # parsed again from the file
            state.update(record=got.record, body=got.body, lines=got.lines)
            return
        rest = got
    record, body, lines = marshal.loads(rest)
    state["body"] = body
    state[PACKED_RECORD] = record
    state[PACKED_LINES] = lines


class Opened:
    """The record and body of a record read back packed whose rest is opened
    (:func:`open_rest`), for the event made of it (:meth:`eventfeed.event.Event.packed`),
    which then holds neither the record read back nor anything the workers that compile it
    change: a page of memory a forked worker writes to is copied (at 10,000 records, an
    event that held the record read back cost a cold build about 5% more)."""

    __slots__ = ("body", "data")

    def __init__(self, data: bytes, body: str) -> None:
        self.data, self.body = data, body

    @property
    def record(self) -> Record:
        return unpack_record(self.data)


class _Rest:
    """Where the rest of a record the store keeps is read from, when it is asked for: the
    store, read by each process with a connection of its own (a build's forked workers read
    it too); else the file, parsed again, when it still holds the bytes the head was made
    from (the store may have lost the rest: removed by another build, or damaged)."""

    __slots__ = ("base", "key", "path", "shown", "where")

    def __init__(self, where: str, key: str, path: str, shown: str, base: Any) -> None:
        self.where, self.key, self.path, self.shown, self.base = where, key, path, shown, base

    def rest(self, crc: int) -> bytes | RecordFile:
        found = _read_rests(self.where, [self.key]).get(self.key)
        if found is not None and zlib.crc32(found) == crc:
            return found
        from .errors import StateError
        from .load import parse_record

        again = f"{self.shown} changed while the build ran; run the build again"
        try:
            raw = cache.read_head(self.path)  # (a file grown past the limit has another digest)
        except OSError as exc:
            raise StateError(again) from exc
        if cache.record_key(self.base, raw) != self.key:
            raise StateError(again)
        parsed = parse_record(raw, self.path, self.shown)
        if isinstance(parsed, list):  # (the same bytes parsed before)
            raise StateError(again)
        return parsed


def prefetch(records: Iterable[object]) -> None:
    """Read the rests of the records among ``records`` that the store keeps and that have not
    read theirs yet, many with one statement, before they are asked for one by one (the
    records a build compiles, or checks again: with new settings, all of them)."""
    wanted: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        state: dict[str, Any] = getattr(record, "__dict__", {})
        fetch = state.get(REST_FETCH)
        if isinstance(fetch, _Rest):
            wanted.setdefault(fetch.where, {}).setdefault(fetch.key, []).append(state)
    for where, by_key in wanted.items():
        for key, data in _read_rests(where, list(by_key)).items():
            crc = zlib.crc32(data)
            for state in by_key[key]:
                if state.get(REST_CRC) == crc and REST_FETCH in state:
                    del state[REST_FETCH]
                    state[PACKED_REST] = data


#: this process's connection to each store it reads rests from (:func:`_read_rests`), the
#: latest few (a process that builds many sites, the tests, does not keep a file open for
#: each), and the process they are of: a forked worker opens its own, and leaves those it
#: inherited alone (:data:`_INHERITED`), neither using nor closing them
_READERS: dict[str, sqlite3.Connection | None] = {}
_READERS_OF = [os.getpid()]
_INHERITED: list[dict[str, sqlite3.Connection | None]] = []
_MAX_READERS = 4
#: the connection of each store a :class:`RecordStore` has open for writing, and the process
#: that opened it: that process reads the store's rests through it (:func:`_read_rests`)
_WRITERS: dict[str, tuple[int, sqlite3.Connection]] = {}


def _read_rests(where: str, keys: list[str]) -> dict[str, bytes]:
    """The rests the store ``where`` keeps of the digests ``keys``, read by this process's own
    connection (a connection must not cross a fork); what cannot be read is left out.

    The process that writes the store reads through the writing connection. The load writes
    as it goes, in one transaction: once that holds more than SQLite's page cache, SQLite
    locks the file against every other connection until the commit. Another connection of
    this process would be locked out too, and so would the forked workers. A reader
    never waits for such a lock: a rest it cannot read is parsed again from its file
    (:class:`_Rest`), where waiting would cost every record SQLite's wait (with 10,000
    records kept and new settings, the load did not end)."""
    global _READERS
    writer = _WRITERS.get(where)
    if writer is not None and writer[0] == os.getpid():
        return _select_rests(writer[1], keys)
    if _READERS_OF[0] != os.getpid():
        _INHERITED.append(_READERS)
        _READERS, _READERS_OF[0] = {}, os.getpid()
    if where in _READERS:
        db = _READERS[where]
    else:
        try:
            db = sqlite3.connect(
                Path(where).as_uri() + "?mode=ro", uri=True, check_same_thread=False, timeout=0
            )
        except (sqlite3.Error, ValueError):
            db = None
        while len(_READERS) >= _MAX_READERS:
            oldest = _READERS.pop(next(iter(_READERS)))
            if oldest is not None:
                oldest.close()
        _READERS[where] = db
    if db is None:
        return {}
    return _select_rests(db, keys)


def _select_rests(db: sqlite3.Connection, keys: list[str]) -> dict[str, bytes]:
    """The rests of the digests ``keys`` that ``db`` gives."""
    found: dict[str, bytes] = {}
    for start in range(0, len(keys), AHEAD):
        some = keys[start : start + AHEAD]
        try:
            rows = db.execute(
                f"SELECT key, data FROM rests WHERE key IN ({','.join('?' * len(some))})", some
            ).fetchall()
        except sqlite3.Error:
            return found
        found.update((str(k), v) for k, v in rows if type(v) is bytes)
    return found


def unpack_record(data: bytes) -> Record:
    """The record a packed one (:func:`unpack`) holds still packed, made."""
    record = _unpack(marshal.loads(data))
    assert type(record) is model.Record
    return record


@functools.cache
def _record_file() -> type[RecordFile]:
    """The class of a record read (imported once: the loader imports this module)."""
    from .load import RecordFile

    return RecordFile


def _pack(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is tuple:
        items = [item if type(item) in _PLAIN else _pack(item) for item in value]
        if list in map(type, items):
            return [_TUPLE, *items]
        return tuple(items)
    if kind is datetime:
        if value.tzinfo is not None or value.fold:
            raise _NotPacked
        return [
            _DATETIME,
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        ]
    if kind is date:
        return [_DATE, value.year, value.month, value.day]
    if kind is timedelta:
        return [_TIMEDELTA, value.days, value.seconds, value.microseconds]
    number = _ENUM_NUMBERS.get(kind)
    if number is not None:
        return [_ENUM, number, value.value]
    number = _DEFAULT_NUMBERS.get(id(value))
    if number is not None and _DEFAULTS[number] is value:
        return [_SHARED, number]
    number = _MODEL_NUMBERS.get(kind)
    if number is None:
        raise _NotPacked
    names = _NAMES[number]
    fields = value.__dict__
    if (
        value.__pydantic_extra__ is not None
        or value.__pydantic_private__ is not None
        or tuple(fields) != names
    ):
        raise _NotPacked
    chosen = frozenset(value.__pydantic_fields_set__)
    bits = _BITS.get((number, chosen))
    if bits is None:
        bits = sum(1 << i for i, name in enumerate(names) if name in chosen)
        if len(chosen) != bits.bit_count():
            raise _NotPacked  # a name that is not a field's
        _BITS[number, chosen] = bits
    return [
        _MODEL,
        number,
        bits,
        *[item if type(item) in _PLAIN else _pack(item) for item in fields.values()],
    ]


def _unpack(value: list[Any]) -> Any:
    tag = value[0]
    if tag == _MODEL:
        number, bits = value[1], value[2]
        made = _new(_MODELS[number])
        names = _NAMES[number]
        values = [_unpack(item) if type(item) is list else item for item in value[3:]]
        _set(made, "__dict__", dict(zip(names, values, strict=True)))
        sets = _FIELDS_SET[number]
        chosen = sets.get(bits)
        if chosen is None:
            chosen = sets[bits] = {name for i, name in enumerate(names) if bits >> i & 1}
        _set(made, "__pydantic_fields_set__", chosen)
        _set(made, "__pydantic_extra__", None)
        _set(made, "__pydantic_private__", None)
        return made
    if tag == _DATETIME:
        return datetime(*value[1:])  # noqa: DTZ001 - a record's local time, as it was packed
    if tag == _DATE:
        return date(*value[1:])
    if tag == _ENUM:
        return _MEMBERS[value[1]][value[2]]
    if tag == _SHARED:
        return _DEFAULTS[value[1]]
    if tag == _TUPLE:
        return tuple([_unpack(item) if type(item) is list else item for item in value[1:]])
    if tag == _TIMEDELTA:
        return timedelta(*value[1:])
    raise ValueError("not a packed value")
