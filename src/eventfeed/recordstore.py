"""Parsed records from the last build, so that a rebuild parses only the records that changed.

Parsing and validating a record (YAML, then the model) costs far more than reading its bytes.
A :class:`eventfeed.load.RecordFile` depends on nothing but the file's bytes, its name and
eventfeed itself (the model, and the zone data it checks zones against), so this store keeps,
per record file, a digest of those and the parsed record. The loader still reads every file;
a record whose digest is the one stored is taken from here instead of being parsed again.
Unlike the no-change check (:mod:`eventfeed.cache`), nothing is trusted by file metadata.

Beside each record the store keeps what the loader works out for it from the settings: the
digests of its content and schedule that the build's history compares
(:func:`eventfeed.state.content_digests`), under the digest of the settings (they depend on the
default zone and language); and the problems its checks found (:func:`eventfeed.load.
check_record`), under the settings digest and the day that quiets warnings about past events.
A rebuild on the same day with the same settings checks only the records that changed.

Only records that parse are kept: one that does not is parsed again at every build. Every key
holds a digest of eventfeed's code, so the messages are always those of the current code. The
store is one SQLite file per events folder in the user's cache folder; deleting it is always
safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .errors import Problem
    from .load import RecordFile

FORMAT = 3
#: rows written with one statement
BATCH = 500


class RecordStore:
    """Parsed records by the name the user sees, each with the digest it was parsed from."""

    def __init__(self, path: Path) -> None:
        from .cache import _code_digest

        self.path = path
        self._base = hashlib.sha256(f"{FORMAT}\0{_code_digest()}\0".encode())
        self._db: sqlite3.Connection | None = None
        self._seen: set[str] = set()
        #: what was kept beside each record found: (settings digest, content digest,
        #: schedule digest, what its checks were run under, their problems pickled)
        self._derived: dict[str, tuple[str, str, str, str, bytes]] = {}
        self._writable = True
        #: the digest each kept record was parsed from, by source
        self._keys: dict[str, str] = {}
        #: rows and digest updates not yet written (:meth:`_flush`)
        self._rows: list[tuple[object, ...]] = []
        self._updates: list[tuple[object, ...]] = []
        for attempt in range(2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, isolation_level=None)
                if self._db.execute("PRAGMA user_version").fetchone()[0] != FORMAT:
                    self._db.execute("DROP TABLE IF EXISTS records")  # an older layout
                    self._db.execute(f"PRAGMA user_version = {FORMAT}")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS records"
                    " (source TEXT PRIMARY KEY, key TEXT NOT NULL, data BLOB NOT NULL,"
                    " settings TEXT, content TEXT, schedule TEXT, checked TEXT, problems BLOB)"
                )
                # One transaction for the whole load: what it parses is written as it goes
                # (not held in memory), and made visible at once by :meth:`save`.
                self._db.execute("BEGIN")
                self._keys = dict(self._db.execute("SELECT source, key FROM records"))
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
        from .cache import cache_dir

        name = hashlib.sha256(str(events_dir.resolve()).encode()).hexdigest()[:32]
        return cls(cache_dir() / f"{name}.records.sqlite")

    def key(self, raw: bytes) -> str:
        """The digest a record's bytes are stored under (with eventfeed's own code)."""
        digest = self._base.copy()
        digest.update(raw)
        return digest.hexdigest()

    def holds(self, source: str) -> bool:
        """Whether a record of the file ``source`` is kept (parsed from whatever bytes)."""
        return self._db is not None and source in self._keys

    def get(self, source: str, key: str) -> RecordFile | None:
        """The record parsed from the file ``source`` when it had the digest ``key``."""
        from .load import RecordFile

        self._seen.add(source)
        if self._db is None or self._keys.get(source) != key:
            return None  # not kept, or kept for other bytes: nothing to ask the database
        try:
            row = self._db.execute(
                "SELECT data, settings, content, schedule, checked, problems FROM records"
                " WHERE source = ?",
                (source,),
            ).fetchone()
            found = pickle.loads(row[0]) if row is not None else None
        except (sqlite3.Error, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return None
        if not isinstance(found, RecordFile) or found.source != source:
            return None
        if all(isinstance(value, str) for value in row[1:5]) and isinstance(row[5], bytes):
            self._derived[source] = row[1:]
        return found

    def derived(
        self, source: str, settings: str, checked: str
    ) -> tuple[tuple[str, str] | None, list[Problem] | None]:
        """What was kept beside the record just found for ``source``, each part when it was
        worked out under the same settings: its content and schedule digests (under the
        settings digest ``settings``), and the problems of its checks (under ``checked``, the
        settings digest and the day). Asked once: it is not kept here any longer."""
        found = self._derived.pop(source, None)
        if found is None:
            return None, None
        digests = (found[1], found[2]) if found[0] == settings else None
        if found[3] != checked:
            return digests, None
        try:
            problems = pickle.loads(found[4])
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return digests, None
        return digests, problems if isinstance(problems, list) else None

    def put_derived(
        self,
        source: str,
        settings: str,
        digests: tuple[str, str],
        checked: str,
        problems: list[Problem],
    ) -> None:
        """Keep what was worked out for the record kept for ``source``: its digests under
        the settings ``settings``, and the problems of its checks run under ``checked``."""
        blob = pickle.dumps(problems, pickle.HIGHEST_PROTOCOL)
        self._updates.append((settings, *digests, checked, blob, source))
        if len(self._updates) >= BATCH:
            self._flush()

    def put(
        self,
        source: str,
        key: str,
        parsed: RecordFile | bytes,
        derived: tuple[str, tuple[str, str], str, list[Problem]] | None,
    ) -> None:
        """Keep a record just parsed (or its pickle) and, when known, what was worked out
        for it (as :meth:`put_derived` takes it); written by :meth:`save`."""
        self._seen.add(source)
        data = (
            parsed if isinstance(parsed, bytes) else pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL)
        )
        if derived is None:
            self._rows.append((source, key, data, None, None, None, None, None))
        else:
            settings, digests, checked, problems = derived
            blob = pickle.dumps(problems, pickle.HIGHEST_PROTOCOL)
            self._rows.append((source, key, data, settings, *digests, checked, blob))
        if len(self._rows) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        """Write the rows and digests kept so far (many at a time: one statement each costs
        more than the pickling)."""
        rows, updates = self._rows, self._updates
        self._rows, self._updates = [], []
        if self._db is None or not self._writable:
            return
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
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
                self._db.execute("COMMIT")
            else:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
