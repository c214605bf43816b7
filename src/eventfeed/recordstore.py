"""Parsed records from the last build, so that a rebuild parses only the records that changed.

Parsing and validating a record (YAML, then the model) costs far more than reading its bytes.
A :class:`eventfeed.load.RecordFile` depends on nothing but the file's bytes, its name and
eventfeed itself (the model, and the zone data it checks zones against), so this store keeps,
per record file, a digest of those and the parsed record. The loader still reads every file;
a record whose digest is the one stored is taken from here instead of being parsed again.
Unlike the no-change check (:mod:`eventfeed.cache`), nothing is trusted by file metadata.

Only records without problems are kept: a record with problems is parsed again at every build,
so its messages are always those of the current code. The store is one SQLite file per events
folder in the user's cache folder; deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .load import RecordFile

FORMAT = 1


class RecordStore:
    """Parsed records by the name the user sees, each with the digest it was parsed from."""

    def __init__(self, path: Path) -> None:
        from .cache import _code_digest

        self.path = path
        self._base = hashlib.sha256(f"{FORMAT}\0{_code_digest()}\0".encode())
        self._db: sqlite3.Connection | None = None
        with contextlib.suppress(sqlite3.Error):
            if path.exists():
                self._db = sqlite3.connect(path)
                self._db.execute("SELECT source, key, data FROM records LIMIT 0")
        self._new: dict[str, tuple[str, bytes]] = {}
        self._seen: set[str] = set()

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

    def get(self, source: str, key: str) -> RecordFile | None:
        """The record parsed from the file ``source`` when it had the digest ``key``."""
        from .load import RecordFile

        self._seen.add(source)
        if self._db is None:
            return None
        try:
            row = self._db.execute(
                "SELECT data FROM records WHERE source = ? AND key = ?", (source, key)
            ).fetchone()
            found = pickle.loads(row[0]) if row is not None else None
        except (sqlite3.Error, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return None
        return found if isinstance(found, RecordFile) and found.source == source else None

    def put(self, source: str, key: str, parsed: RecordFile) -> None:
        """Keep a record just parsed; written by :meth:`save`."""
        self._seen.add(source)
        self._new[source] = (key, pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL))

    def save(self) -> None:
        """Write the records parsed in this load and forget those of files not read in it;
        a store that cannot be written is no failure."""
        try:
            if self._db is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path)
            with self._db:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS records"
                    " (source TEXT PRIMARY KEY, key TEXT NOT NULL, data BLOB NOT NULL)"
                )
                gone = [
                    source
                    for (source,) in self._db.execute("SELECT source FROM records")
                    if source not in self._seen
                ]
                self._db.executemany("DELETE FROM records WHERE source = ?", ((s,) for s in gone))
                self._db.executemany(
                    "INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                    ((s, k, d) for s, (k, d) in sorted(self._new.items())),
                )
        except (OSError, sqlite3.Error):
            pass
        finally:
            self.close()
        self._new = {}

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
