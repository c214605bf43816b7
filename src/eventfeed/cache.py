"""The no-change rebuild: know, without parsing a record, that out/ is already the build.

A build is a pure function of the record files, the settings, the previous manifest, the day
(``as_of``), the day that quiets warnings, ``--strict`` and eventfeed itself. After a build,
:meth:`Fingerprint.save` keeps a digest of all of them, together with the state of what the
writer left in out/. The next build computes the same digest; when it is equal, compiling
would give the bytes already in out/ (an unchanged event keeps its history, so the manifest is
its own successor) and the build stops there.

The fingerprint is kept in the user's cache folder (:func:`cache_dir`), not in out/ and not in
the working tree: out/ is committed and must stay byte-for-byte what a cold build writes, a
build must leave nothing else beside it (nothing to ignore in git, nothing a static host could
upload), and a cache describes one machine's files, so it must not travel through git.
Deleting it is always safe: the next build is a full one.

Reading every record at every build would cost as much as parsing them, so, as git does for
its index, the records are trusted by their file-system metadata. They are taken in chunks
(one folder's records, cut where a file name's checksum says so, so that adding a record
changes one chunk, not all that follow); a chunk's *signature* is every record's name, size,
modification and change times (nanoseconds), inode and device, and the cache maps signatures
to digests of the records' bytes. A chunk whose signature is known is not read again. With
no build remembered (a cold cache) nothing is compared, so a chunk not known is not read here
either: its digest is made after the loader, of the digests of the bytes the loader read,
which are those the build is made of (:meth:`Fingerprint.loaded`).

What this can and cannot see:

* any write to a record (also one that keeps its size and puts its modification time back
  with ``touch -r`` or ``os.utime``): writing sets the change time (ctime), which no program
  can set back, and a replaced file has a new inode;
* a record added, removed or renamed: the names are in the signature;
* the "racy" case: a record written again within the file system's timestamp granularity of
  the moment it was last looked at keeps all its metadata. A chunk with a file changed less
  than :data:`RACY_NS` before the scan (by the system clock) is not remembered, so it is read
  again at the next build, and remembered by the first one that finds it old enough;
* not seen: bytes changed without the kernel knowing (a disk edited underneath, a network
  file system that reports no change times or whose clock is behind the system's by more
  than the racy margin), and changes made while a build runs. Delete the cache file (or
  build with another ``EVENTFEED_CACHE_DIR``) to force a full build.

out/ is checked the same way, whole: every entry's path, type, size, times and inode (the
writer swaps in a new folder at each build, so its inode changes too). A file changed, added
or removed there by hand, in place or by replacing it, changes the signature. Files written
within the racy margin of the moment the signature was taken (:data:`FINE_RACY_NS` where the
file system keeps sub-second times, else :data:`RACY_NS`) are compared with the build's bytes
when it is saved, and read again by every lookup until one finds them old enough. A save
where the times are fine takes the file system's own clock for that moment instead
(:func:`_file_clock`), once it has moved past the writer's last change: then only a file
changed after the writer is racy, and nothing is waited for.

Folders are listed with ``os.scandir`` and each file costs one ``lstat``; nothing here imports
the parser, the compilers or their libraries, so that a no-change build stays short. With many
records, out/ is looked at in a forked process while the records are (:class:`_OutScan`), on
the second core: the lookup needs that look when the records are unchanged, and then waits
for the longer of the two instead of both. When they changed, the build goes on, and the
writer and the save take that look for the files the build leaves as they were, instead of
one of their own (:meth:`Fingerprint.seen`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import stat
import struct
import sys
import tempfile
import time
import zlib
import zoneinfo
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from operator import attrgetter
from pathlib import Path
from typing import Any

from . import __version__
from .forked import Forked

#: 3: a chunk's digest made of its records' digests (:func:`record_key`), which the loader
#: gives for the records it read
FORMAT = 3
#: where the fingerprints are kept, instead of the user's cache folder
CACHE_DIR_VARIABLE = "EVENTFEED_CACHE_DIR"

#: The loader's names (load.py, kept equal by a test); not imported from there, because the
#: loader brings the validation library with it.
SETTINGS_FILE = "site.yaml"
IGNORED_NAMES = frozenset({"README.md"})
MAX_FILE_BYTES = 1_000_000  # frontmatter.py: a longer record is refused
#: the manifest the writer puts in out/ (paths.py, kept equal by a test)
MANIFEST = "manifest.json"

#: A file changed less than this before its metadata was taken is "racy": the metadata may
#: not show a second change within the same timestamp tick. Two seconds and then some: the
#: coarsest file systems (FAT) keep modification times in steps of two seconds.
RACY_NS = 3_000_000_000
#: The same for out/ when its files have sub-second times (the kernel's clock ticks in a few
#: milliseconds at most); this keeps small the number of files re-read after a build.
FINE_RACY_NS = 100_000_000
#: How often the file system's clock is read while waiting for it to move (a millisecond)
CLOCK_POLL_NS = 1_000_000
#: a chunk of records ends after a name whose CRC-32 has these bits clear (about 64 records)
CHUNK_MASK = 0x3F
#: from this many files on, a save that cannot read the file system's clock (:func:`_file_clock`)
#: waits out :data:`FINE_RACY_NS` rather than read back the files the build has just written
WAIT_FILES = 256

#: The most files a build may write for its save to take what was seen of out/ before it
#: for the others (:meth:`Fingerprint._merged`): each one's inode and change time is kept
#: in the fingerprint.
LATER_FILES = 4096

#: the clock that file times are compared with
_now = time.time_ns
#: From this many chunks of records on (about 64 records each), out/ is looked at in a
#: forked process while the records are (:class:`_OutScan`): with 100,000 records each look
#: is about a second, and a no-change build then waits for the longer one instead of both.
SCAN_ASIDE_CHUNKS = 32


def cache_dir() -> Path:
    """``$EVENTFEED_CACHE_DIR``, else ``$XDG_CACHE_HOME/eventfeed``, else ``~/.cache/eventfeed``."""
    chosen = os.environ.get(CACHE_DIR_VARIABLE)
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eventfeed"


def cache_file(out_dir: Path) -> Path:
    """One small file per output folder, named by a digest of its absolute path."""
    name = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:32]
    return cache_dir() / f"{name}.json"


def _environment() -> str:
    """What eventfeed runs on: the interpreter, every installed distribution with its version
    (a serialiser, renderer or the zone data upgraded must never reuse a build; installing
    anything at all is merely a full build), and the system's time zone data.

    The distributions are named as installed, folder by folder in the order they are looked
    for in, without the folders' paths: the same libraries in another virtual environment, or
    the project checked out elsewhere, are the same environment."""
    parts = [sys.version]
    for folder in sys.path:
        try:
            with os.scandir(folder or ".") as entries:
                names = sorted(e.name for e in entries if e.name.endswith(_DISTRIBUTIONS))
        except OSError:
            continue
        if names:
            parts.append(":".join(names))
    for folder in zoneinfo.TZPATH:
        try:
            info = os.stat(os.path.join(folder, "tzdata.zi"))
        except OSError:
            continue
        parts.append(f"{folder}:{info.st_size}:{info.st_mtime_ns}")
        break
    return "\n".join(parts)


#: What names an installed distribution's folder (with its version, but in an editable
#: install of eventfeed, whose own files are digested one by one).
_DISTRIBUTIONS = (".dist-info", ".egg-info")


def _code_digest() -> str:
    """eventfeed's own code and templates, and what it runs on: a changed compiler or
    library must never reuse a build. Each file is named by its path inside the package, not
    where the package is: the same code elsewhere has the same digest."""
    digest = hashlib.sha256(__version__.encode() + b"\0" + _environment().encode())
    stack: list[tuple[Traversable, str]] = [(resources.files("eventfeed"), "")]
    found = []
    while stack:
        folder, inside = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                if entry.name != "__pycache__":
                    stack.append((entry, f"{inside}{entry.name}/"))
            elif entry.name.endswith((".py", ".html", ".css", ".svg", ".txt")):
                found.append((inside + entry.name, entry))
    for name, entry in sorted(found, key=lambda item: item[0]):
        digest.update(name.encode() + b"\0" + entry.read_bytes())
    return digest.hexdigest()


#: From this many files on, the metadata of out/ taken when the second core is idle (the
#: save after a cold build) is shared out (:func:`_metadata`): 100,000 events make 200,000
#: files there, about 0.8 s of system calls in one process.
LSTAT_ASIDE_FILES = 20_000


def _lstat_all(paths: list[str]) -> list[os.stat_result]:
    """``lstat`` of every path, in order. (Threads were measured: with the interpreter lock
    taken back after every call they made it slower, not faster.)"""
    return [os.lstat(path) for path in paths]


#: a file's metadata as the signatures hold it (:data:`ROW`): type, size, modification and
#: change times in nanoseconds, inode and device
Metadata = tuple[int, int, int, int, int, int]


def _metadata(paths: list[str], *, aside: bool) -> tuple[list[Metadata], bytes | None]:
    """The metadata of every path, in order, and the same packed (:data:`ROW`; None when a
    number is beyond 64 bits). With ``aside`` (the second core is idle) and
    :data:`LSTAT_ASIDE_FILES` paths or more, a forked process takes the second half and
    sends it back packed; when it cannot (no fork, a file gone, a number that does not
    pack), this process takes that half too, and raises what ``lstat`` raises."""
    half = len(paths) // 2
    rest = None
    if aside and len(paths) >= LSTAT_ASIDE_FILES:
        rest = Forked.start(lambda: _rows(_lstat_all(paths[half:])) or b"")
    if rest is None:
        first, half = _lstat_all(paths), len(paths)
    else:
        try:
            first = _lstat_all(paths[:half])
        except BaseException:
            rest.stop()
            raise
    packed = _rows(first)
    data = rest.output() if rest is not None else b""
    if packed is None or data is None or len(data) != ROW.size * (len(paths) - half):
        # taken here: the half beside could not be, or a number does not pack
        infos = [*first, *_lstat_all(paths[half:])]
        rows = _rows(infos)
        if rows is None:
            return [_listed(info) for info in infos], None
    else:
        rows = packed + data
    return list(ROW.iter_unpack(rows)), rows


def _listed(info: os.stat_result) -> Metadata:
    return (
        info.st_mode,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_ino,
        info.st_dev,
    )


#: a file's metadata as the signatures hold it: type, size, modification and change times
#: in nanoseconds, inode and device
ROW = struct.Struct("<6q")
_PACK = ROW.pack


def _rows(infos: list[os.stat_result]) -> bytes | None:
    """Every file's metadata packed (:data:`ROW`), in order; None when a number is beyond
    64 bits (an inode on some network file systems)."""
    try:
        return b"".join(
            [
                _PACK(i.st_mode, i.st_size, i.st_mtime_ns, i.st_ctime_ns, i.st_ino, i.st_dev)
                for i in infos
            ]
        )
    except struct.error:
        return None


def _signature(prefix: str, names: list[str], infos: list[os.stat_result]) -> str:
    """A digest of files' names and metadata: type, size, modification and change times in
    nanoseconds, inode and device (what changes when a file is written or replaced)."""
    rows = _rows(infos)
    if rows is None:
        listed = [
            (i.st_mode, i.st_size, i.st_mtime_ns, i.st_ctime_ns, i.st_ino, i.st_dev) for i in infos
        ]
        return _signed(prefix, names, b"R" + repr(listed).encode())
    return _signed(prefix, names, b"S" + rows)


def _signed(prefix: str, names: list[str], packed: bytes) -> str:
    digest = hashlib.sha256(f"{prefix}\0{len(names)}\0".encode("utf-8", "surrogateescape"))
    digest.update("\0".join(names).encode("utf-8", "surrogateescape"))
    digest.update(packed)
    return digest.hexdigest()


def _changed_since(infos: list[os.stat_result], cut: int) -> list[bool]:
    """Whether each file was written (or its metadata changed) at ``cut`` or later."""
    return [i.st_mtime_ns >= cut or i.st_ctime_ns >= cut for i in infos]


def record_signature(prefix: str, info: os.stat_result) -> str:
    """One record file's signature: what a chunk's signature holds of it (:func:`_signature`:
    type, size, modification and change times, inode and device), after ``prefix``, for the
    loader to trust a record by (:meth:`eventfeed.recordstore.RecordStore.unchanged`).

    Spelled out rather than digested: it is compared only with the one kept for the same
    file, and a digest of each cost the loader more than the ``stat`` it was taken from."""
    return (
        f"{prefix}{info.st_mode:x}:{info.st_size:x}:{info.st_mtime_ns:x}"
        f":{info.st_ctime_ns:x}:{info.st_ino:x}:{info.st_dev:x}"
    )


def scan_started() -> int:
    """The moment a scan of the records starts, by the clock file times are compared with:
    take it before the first file's metadata is taken (:func:`settled`)."""
    return _now()


def settled(info: os.stat_result, started: int) -> bool:
    """Whether a file whose metadata was taken after ``started`` had not changed for
    :data:`RACY_NS` before then: only then does its metadata show a later change (the racy
    case in this module's description; the rule a chunk is remembered by)."""
    return not _changed_since([info], started - RACY_NS)[0]


def _is_record(name: str) -> bool:
    """The loader's rule for the files it reads."""
    return name.endswith(".md") and name not in IGNORED_NAMES and not name.startswith((".", "_"))


class _Odd(Exception):
    """Something the loader would report (or that cannot be told apart): no fingerprint."""


class _Chunk:
    """Consecutive records of one folder, with their metadata."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.names: list[str] = []
        self.paths: list[str] = []
        self.infos: list[os.stat_result] = []
        #: the digest of each record's bytes (:func:`record_key`) as the loader read them,
        #: by path, when it has read them (:meth:`Fingerprint.loaded`)
        self.keys: Mapping[str, str] = {}
        #: what a record's digest starts from (:func:`record_key_base`), when known
        self.base: Any = None
        #: the digest of each record's bytes that :meth:`digest` was made of, in order
        self.digests: list[str] = []

    def signature(self) -> str:
        return _signature(self.folder, self.names, self.infos)

    def digest(self) -> str:
        """The records' names and bytes, whatever their metadata: the digest of each
        record's bytes (:func:`record_key`) given by the loader, else read here."""
        base = self.base or record_key_base(_code_digest())
        keys = []
        for path in self.paths:
            key = self.keys.get(path)
            keys.append(_record_key_of(base, path) if key is None else key)
        self.digests = keys
        return _chunk_digest(self.folder, self.names, keys)


def _record_key_of(base: Any, path: str) -> str:
    """:func:`record_key` of the record file at ``path``, read here."""
    data = read_head(path)
    if len(data) > MAX_FILE_BYTES:
        raise _Odd  # the loader refuses it
    return record_key(base, data)


def _chunk_digest(folder: str, names: list[str], keys: list[str]) -> str:
    """A chunk's digest (:meth:`_Chunk.digest`): its folder, and each record's name and the
    digest of its bytes."""
    digest = hashlib.sha256(folder.encode("utf-8", "surrogateescape") + b"\0")
    for name, key in zip(names, keys, strict=True):
        digest.update(f"{name}\0{key}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def record_key_base(code: str) -> Any:
    """What the digest of a record's bytes starts from: eventfeed's code (``code``,
    :func:`_code_digest`). The record store keeps a parsed record under this digest of the
    bytes it was parsed from, and a chunk's digest is made of its records' digests, so
    that the digests the loader takes serve the no-change check too
    (:meth:`Fingerprint.loaded`)."""
    return hashlib.sha256(f"records\0{code}\0".encode())


def record_key(base: Any, data: bytes) -> str:
    """The digest of a record's bytes: ``base`` (:func:`record_key_base`) followed by them."""
    digest = base.copy()
    digest.update(data)
    return str(digest.hexdigest())


def read_head(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """A file's bytes, at most one past ``limit``: a huge file shows it is too long without
    being read whole. Also the loader's reading (:func:`eventfeed.load._read`).

    The first read asks for the size the file has plus one byte (which shows the end, or that
    the file grew), so a small record costs no buffer of the limit's size (through an open
    file object, which makes one, reading a cold cache's records cost four times as much).
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        wanted = limit + 1
        want = min(os.fstat(fd).st_size + 1, wanted)
        parts: list[bytes] = []
        total = 0
        while total < wanted:
            piece = os.read(fd, want)
            if not piece:
                break
            parts.append(piece)
            total += len(piece)
            want = min(1 << 16, wanted - total)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


#: reading a record: no newline translation, not inherited by a program started meanwhile
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _folders(root: str, *, hidden: bool) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """(relative path, entries) of every folder under ``root`` (not followed through links;
    without ``hidden``, as the loader walks: none named with a leading dot or underscore),
    in a fixed order."""
    pending = [("", root)]
    while pending:
        rel, path = pending.pop()
        with os.scandir(path) as found:
            entries = sorted(found, key=attrgetter("name"))
        yield rel, entries
        for entry in reversed(entries):
            if entry.is_dir(follow_symlinks=False) and (
                hidden or not entry.name.startswith((".", "_"))
            ):
                pending.append((f"{rel}{entry.name}/", entry.path))


def _linked_record(entry: os.DirEntry[str], real_root: str) -> os.stat_result | None:
    """The target of a symbolic link in the events folder, when the loader reads it as a
    record; None when it ignores it; _Odd when it reports it."""
    try:
        info = os.stat(entry.path)
        target = os.path.realpath(entry.path)
    except (OSError, ValueError):  # dangling, a loop: the loader reports a record's
        if _is_record(entry.name):
            raise _Odd from None
        return None
    if stat.S_ISDIR(info.st_mode):
        raise _Odd  # the loader warns that it does not follow it
    if not _is_record(entry.name):
        return None
    if os.path.commonpath([real_root, target]) != real_root or not stat.S_ISREG(info.st_mode):
        raise _Odd
    return info


def _record_chunks(events_dir: Path) -> list[_Chunk]:
    """Every record the loader would read, in chunks; _Odd when it would report a file."""
    root = str(events_dir)
    real_root = os.path.realpath(root)
    found: list[tuple[str, str, str, os.stat_result | None]] = []  # folder, name, path, link
    for rel, entries in _folders(root, hidden=False):
        for entry in entries:
            if entry.name.startswith((".", "_")):
                continue
            linked = None
            if entry.is_symlink():
                linked = _linked_record(entry, real_root)
                if linked is None:
                    continue
            elif not _is_record(entry.name) or entry.is_dir(follow_symlinks=False):
                continue
            found.append((rel, entry.name, entry.path, linked))
    infos = iter(_lstat_all([path for _, _, path, linked in found if linked is None]))
    chunks: list[_Chunk] = []
    chunk = _Chunk("")
    for rel, name, path, linked in found:
        info = linked or next(infos)
        if not stat.S_ISREG(info.st_mode):
            raise _Odd  # the loader: "not a regular file"
        if rel != chunk.folder:
            if chunk.names:
                chunks.append(chunk)
            chunk = _Chunk(rel)
        chunk.names.append(name)
        chunk.paths.append(path)
        chunk.infos.append(info)
        if zlib.crc32(name.encode("utf-8", "surrogateescape")) & CHUNK_MASK == 0:
            chunks.append(chunk)
            chunk = _Chunk(rel)
    if chunk.names:
        chunks.append(chunk)
    return chunks


class OutState:
    """The signature of out/ and the files in it too fresh for their metadata alone; with
    what the signature was made of, for the writer and the save of a build that follows
    (:meth:`Fingerprint.seen`)."""

    def __init__(
        self,
        signature: str,
        racy: list[str],
        top: os.stat_result,
        cut: int,
        seen: tuple[list[str], list[str], bytes] | None = None,
        later: dict[str, list[int]] | None = None,
    ) -> None:
        self.signature = signature
        self.racy = racy
        #: out/ itself, and the moment before which a change shows in a file's change time
        self.top = top
        self.cut = cut
        #: the folders and files of out/ in the signature's order, and each file's metadata
        #: packed (:data:`ROW`); None when the metadata does not pack
        self.seen = seen
        #: the files and folders changed since :attr:`cut` that are as the writer left them,
        #: with their inode and change time (:func:`written_before`)
        self.later = later or {}


def _out_state(out: Path, *, aside: bool = False, clock: int | None = None) -> OutState | None:
    """Every entry of out/ with its type, size, times and inode; None if anything is odd
    (a link, a device, a folder that cannot be read). ``aside``: the second core is idle,
    and may take half of the metadata (:func:`_metadata`). ``clock``: the file system's own
    moment (:func:`_file_clock`), from which on a file is racy where its times are fine; by
    default, the racy margin before the system clock's."""
    started = _now()
    try:
        top = os.lstat(out)
        if not stat.S_ISDIR(top.st_mode):
            return None
        folders: list[str] = []
        files: list[str] = []
        paths: list[str] = []
        for rel, entries in _folders(str(out), hidden=True):
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    files.append(rel + entry.name)
                    paths.append(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(rel + entry.name)
                else:
                    return None  # a link, a device: not what the writer makes
        found, rows = _metadata(paths, aside=aside)
    except OSError:
        return None
    if not all(stat.S_ISREG(mode) for mode, *_ in found):
        return None
    fine = any(modified % 1_000_000_000 for _, _, modified, *_ in found)
    margin = FINE_RACY_NS if fine else RACY_NS
    cut = clock if fine and clock is not None else started - margin
    racy = [
        f
        for f, (_, _, modified, changed, *_) in zip(files, found, strict=True)
        if modified >= cut or changed >= cut
    ]
    place = _place(top, folders)
    if rows is None:
        return OutState(_signed(place, files, b"R" + repr(found).encode()), racy, top, cut)
    return OutState(_signed(place, files, b"S" + rows), racy, top, cut, (folders, files, rows))


def _place(top: os.stat_result, folders: list[str]) -> str:
    """What the signature of out/ holds besides its files: the folder itself, and the
    folders in it."""
    return f"{top.st_ino}:{top.st_dev}\0" + "\0".join(folders)


class _OutScan:
    """:func:`_out_state` of out/ made in a forked process, started before it is known to be
    needed (:meth:`Fingerprint.lookup` needs it only when the inputs are the same): a scan
    that is not needed is stopped. Anything wrong there (no fork, a process that fails or
    dies) and the lookup looks at out/ itself."""

    def __init__(self, out: Path, forked: Forked) -> None:
        self.out = out
        self.forked = forked

    @classmethod
    def start(cls, out: Path) -> _OutScan | None:
        forked = Forked.start(lambda: pickle.dumps(_out_state(out), pickle.HIGHEST_PROTOCOL))
        return None if forked is None else cls(out, forked)

    def result(self) -> tuple[bool, OutState | None]:
        """(True, what the scan found) once it has ended well; (False, None) otherwise. The
        process has ended on return, either way."""
        data = self.forked.output()
        if data is None:
            return False, None
        try:
            found = pickle.loads(data)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
            return False, None
        return (True, found) if found is None or isinstance(found, OutState) else (False, None)

    def stop(self) -> None:
        """Stop the scan (when :meth:`result` is not asked for), and wait for its end."""
        self.forked.stop()


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class Listed:
    """The record files a fingerprint found, for the loader to read instead of looking for
    them again (:meth:`Fingerprint.listed`): the moment the look began
    (:func:`scan_started`), and each record's path below the events folder (``/`` between
    names), its path to open, and its metadata (``os.stat``: a linked record's target's),
    in the order found."""

    started: int
    records: list[tuple[str, str, os.stat_result]]


@dataclass
class Edits:
    """What changed since the last build remembered (:meth:`Fingerprint.edits`)."""

    #: the records edited: name below the events folder, path, the digest of the bytes the
    #: last build was made of, and of the bytes now
    records: list[tuple[str, str, str, str]]
    #: the warnings that build printed
    warnings: str


class Fingerprint:
    """The inputs of one build, digested, and what the cache remembers of the last one."""

    def __init__(
        self,
        path: Path,
        inputs: str,
        settings: str,
        zone: str | None,
        chunks: dict[str, str],
        stored: dict[str, Any],
    ) -> None:
        self.path = path
        self._inputs = inputs
        #: chunks left for the loader to read (:meth:`loaded`): where each goes in
        #: :attr:`_contents`, and the signature it is remembered by (None: too fresh)
        self._unread: list[tuple[int, _Chunk, str | None]] = []
        self._contents: list[str | None] = []
        self._parts: list[str] = []
        self.settings = settings
        self._zone = zone
        self._chunks = chunks
        self._stored = stored
        #: out/ (inode, device) and the moment it was found as the writer left it
        self._written: list[Any] | None = None
        #: out/ being looked at beside (:class:`_OutScan`), until :meth:`lookup`; then, when
        #: the build goes on, until :meth:`seen`
        self._scan: _OutScan | None = None
        #: what :meth:`seen` found of out/ before the build
        self._seen: OutState | None = None
        #: when the look at the records began, and what it found, until :meth:`listed`
        self._found: tuple[int, list[_Chunk]] | None = None
        #: the chunks not known by their signature, read here (their places in the list)
        self._read: list[int] = []
        #: eventfeed's code (:func:`_code_digest`), which the chunks are digested with
        self._code = ""

    @classmethod
    def of(
        cls, events_dir: Path, out_dir: Path, clock: datetime, as_of: date | None, strict: bool
    ) -> Fingerprint | None:
        """Digest the inputs; None when the folder holds something the loader reports.

        With no build remembered to compare with (a cold cache), a chunk not known by its
        signature is not read here: the loader reads its records anyway, and the digests of
        the bytes it read complete the inputs (:meth:`loaded`), which only saving needs."""
        path = cache_file(out_dir)
        stored = _read_cache(path)
        saved = stored.get("chunks")
        known: dict[str, object] = saved if isinstance(saved, dict) else {}
        later = not isinstance(stored.get("inputs"), str)  # :meth:`lookup` can find nothing
        scan = None
        if not later and len(known) >= SCAN_ASIDE_CHUNKS:
            scan = _OutScan.start(out_dir.resolve())
        try:
            made = cls._of(events_dir, clock, as_of, strict, path, stored, known, later)
        except BaseException:
            if scan is not None:
                scan.stop()
            raise
        if made is None:
            if scan is not None:
                scan.stop()
            return None
        made._scan = scan
        return made

    @classmethod
    def _of(
        cls,
        events_dir: Path,
        clock: datetime,
        as_of: date | None,
        strict: bool,
        path: Path,
        stored: dict[str, Any],
        known: dict[str, object],
        later: bool,
    ) -> Fingerprint | None:
        started = _now()
        code = _code_digest()
        base = record_key_base(code)
        if stored.get("code") != code:
            # The chunks remembered were digested with another eventfeed's digests of the
            # records' bytes (:func:`record_key_base`): none is taken as known, and the
            # loader's digests complete the inputs, as when no build is remembered. (Else a
            # chunk read later is digested anew, and the inputs of the build remembered
            # cannot be made again from the records it was made of: :meth:`edits`.)
            known, later = {}, True
        try:
            if not events_dir.is_dir():
                return None
            chunks = _record_chunks(events_dir)
            if not chunks:
                return None
            raw_settings = (events_dir / SETTINGS_FILE).read_bytes()
            settings = hashlib.sha256(raw_settings).hexdigest()
            cut = started - RACY_NS
            remembered: dict[str, str] = {}
            contents: list[str | None] = []
            unread: list[tuple[int, _Chunk, str | None]] = []
            read: list[int] = []
            for chunk in chunks:
                signature = chunk.signature()
                settled = not any(_changed_since(chunk.infos, cut))
                content = known.get(signature)
                if not isinstance(content, str):
                    chunk.base = base
                    if later:
                        unread.append((len(contents), chunk, signature if settled else None))
                        contents.append(None)
                        continue
                    read.append(len(contents))
                    content = chunk.digest()
                if settled:
                    remembered[signature] = content
                contents.append(content)
        except (_Odd, OSError):
            return None
        zone = _zone(raw_settings, settings, stored.get("zone"))
        day = as_of or _site_day(clock, zone)
        parts = [
            str(FORMAT),
            code,
            str(events_dir.resolve()),
            settings,
            "",  # the records' digest (:func:`_inputs_digest`)
            clock.date().isoformat(),  # the day that quiets warnings
            "strict" if strict else "",
            day.isoformat(),
        ]
        made = cls(path, _UNKNOWN, settings, zone, remembered, stored)
        made._parts = parts
        made._contents = contents
        made._unread = unread
        made._found = (started, chunks)
        made._read = read
        made._code = code
        if not unread:
            made._inputs = _inputs_digest(parts, contents)
        return made

    def listed(self) -> Listed | None:
        """The record files found, and their metadata, for the loader (once: not held after).

        The loader finds the same files by the same rules (a folder holding anything it would
        report has no fingerprint), and a record's metadata taken here serves it as one it
        took itself, before reading the bytes: with 100,000 records, looking for them and
        taking their metadata again cost the loader most of a second. (Made here, not when
        the records were looked at: a build that finds nothing changed never asks.)"""
        found, self._found = self._found, None
        if found is None:
            return None
        started, chunks = found
        records = [
            (chunk.folder + name, path, info)
            for chunk in chunks
            for name, path, info in zip(chunk.names, chunk.paths, chunk.infos, strict=True)
        ]
        for chunk in chunks:
            chunk.infos = []  # taken: a chunk left to read needs only its names and paths
        return Listed(started, records)

    def edits(self, kept: Callable[[str], str | None]) -> Edits | None:
        """What changed since the last build remembered, when all that changed is a few
        records' bytes: each such record (for :mod:`eventfeed.quick`, which then asks
        whether out/ is as that build left it: :meth:`left`). ``kept``: the digest of the
        bytes the record store keeps a record parsed from, by its name below the events
        folder (:meth:`eventfeed.recordstore.RecordStore.kept`).

        None when anything else differs or cannot be told: the settings, eventfeed, the
        folder, the days, ``--strict``, a record added, removed or renamed, a record
        written while this was looked at, no build remembered.

        That only those records changed is known from the digest of the last build's
        inputs, remade here from this build's with the kept digests of the records in the
        chunks not known by their signature: the two are equal only when the store keeps,
        for each of those, the very bytes the last build was made of."""
        inputs, warnings = self._stored.get("inputs"), self._stored.get("warnings")
        found = self._found
        if (
            found is None
            or self._unread
            or not isinstance(inputs, str)
            or not isinstance(warnings, str)
        ):
            return None
        chunks = found[1]
        before = list(self._contents)
        edited: list[tuple[str, str, str, str]] = []
        try:
            for index in self._read:
                chunk = chunks[index]
                old = []
                # (each record's bytes as they were digested: one written since is found
                # changed by the quick build, which reads it)
                now = chunk.digests
                for name, path, key_now in zip(chunk.names, chunk.paths, now, strict=True):
                    name = chunk.folder + name
                    key_then = kept(name)
                    if key_then is None:
                        return None  # a record the store does not keep: added, or renamed
                    old.append(key_then)
                    if key_then != key_now:
                        edited.append((name, path, key_then, key_now))
                before[index] = _chunk_digest(chunk.folder, chunk.names, old)
        except ValueError:  # (a chunk not digested: its digests are not all there)
            return None
        if _inputs_digest(self._parts, before) != inputs:
            return None
        return Edits(edited, warnings)

    def left(self, out_dir: Path) -> OutState | None:
        """out/ as it is now, when it is as the last build remembered left it (its metadata,
        and the bytes of the files then too fresh for it); else None. (Waits for the look
        beside the records, when there is one.)"""
        stored = self._stored
        inputs, key, racy = stored.get("inputs"), stored.get("key"), stored.get("racy")
        if not isinstance(inputs, str) or not isinstance(key, str) or not isinstance(racy, dict):
            return None
        out = out_dir.resolve()
        state = self.seen(out_dir)
        if state is None:
            state = _out_state(out)
            if state is None or state.seen is None:
                return None
            self._seen = state
        if hashlib.sha256(f"{inputs}\n{state.signature}".encode()).hexdigest() != key:
            return None
        for name, digest in racy.items():
            if _file_digest(out.joinpath(name)) != digest:
                return None
        return state

    @property
    def inputs(self) -> str:
        """The digest of the build's inputs. Before :meth:`loaded` has completed it, when
        chunks were left for the loader to read, it is one that no build has."""
        return self._inputs

    def loaded(self, keys: Mapping[str, str]) -> None:
        """Complete the inputs with the records the loader read: ``keys``, the digest of each
        record's bytes (:func:`record_key`) as it read them, by path
        (:attr:`eventfeed.load.Site.record_keys`). The build is made of those very bytes,
        so the inputs describe it even when a record is changed while it runs (before or
        after the loader reads it); each chunk is remembered by its signature, taken here
        before the loader read the bytes: a record changed since has another one.

        A record the loader did not read (the folder changed between the two scans) leaves
        the inputs unknown: the next build is then a full one."""
        unread, self._unread = self._unread, []
        if not unread:
            return
        contents = list(self._contents)
        found: dict[str, str] = {}
        for index, chunk, signature in unread:
            if not all(path in keys for path in chunk.paths):
                return  # :attr:`inputs` stays unknown
            chunk.keys = keys
            try:
                content = chunk.digest()
            finally:
                chunk.keys = {}
            contents[index] = content
            if signature is not None:
                found[signature] = content
        self._chunks.update(found)
        self._inputs = _inputs_digest(self._parts, contents)

    def _key(self, state: OutState) -> str:
        return hashlib.sha256(f"{self.inputs}\n{state.signature}".encode()).hexdigest()

    def lookup(self, out_dir: Path) -> str | None:
        """The warnings text of the build already in out/, when it is this build; else None.

        When it is, what has become old enough since to be trusted by its metadata is
        remembered, so that it is not read again at the next build."""
        scan, self._scan = self._scan, None
        key, warnings, racy = (self._stored.get(k) for k in ("key", "warnings", "racy"))
        if (
            not isinstance(key, str)
            or not isinstance(warnings, str)
            or not isinstance(racy, dict)
            or self._stored.get("inputs") != self.inputs
        ):
            # Other inputs: out/ need not be looked at now. A look beside goes on, for the
            # writer (:meth:`seen`).
            self._scan = scan
            return None
        out = out_dir.resolve()
        done, state = False, None
        if scan is not None and scan.out == out:
            done, state = scan.result()
        elif scan is not None:
            scan.stop()
        if not done:
            state = _out_state(out)
        if state is None or key != self._key(state):
            self._seen = state
            return None
        # The metadata is the same as when saved, and so the files that were too fresh then:
        # each is read, however old it is now.
        for name, digest in racy.items():
            if _file_digest(out.joinpath(name)) != digest:
                return None
        if set(state.racy) != set(racy) or self._chunks != self._stored.get("chunks"):
            fresh = {name: racy[name] for name in state.racy if name in racy}
            if len(fresh) == len(state.racy):
                self._store(key, warnings, fresh)
        return warnings

    def seen(self, out_dir: Path) -> OutState | None:
        """What was found of out/ before the build (by the lookup, or the look beside the
        records, waited for here), when it holds every file's metadata: the writer trusts
        it instead of looking at each file again, and :meth:`save` takes it for the files
        the writer left as they were. None when out/ was not looked at, or the look failed.
        """
        scan, self._scan = self._scan, None
        if scan is not None:
            done, state = scan.result() if scan.out == out_dir.resolve() else (False, None)
            if not done:
                scan.stop()
            self._seen = state if done else None
        seen = self._seen
        return seen if seen is not None and seen.seen is not None else None

    def close(self) -> None:
        """Stop a look at out/ that nothing asked for (a build that failed)."""
        scan, self._scan = self._scan, None
        if scan is not None:
            scan.stop()

    def save(
        self,
        out_dir: Path,
        warnings: str,
        written: Mapping[str, bytes],
        stayed: Collection[str] | None = None,
    ) -> None:
        """Remember the build now in out/ (``written``: its files' bytes, just written); a
        cache that cannot be written is no failure, but a stale one is removed.

        ``stayed``: the files of out/ the writer left as they were when it trusted what
        :meth:`seen` gave it; their metadata is taken from there (:meth:`_merged`).

        Otherwise every file is looked at. The writer has just written or linked every file,
        and removing the previous tree changed the change time of every file linked from it:
        measured against the system's clock less the racy margin, nearly all of out/ would be
        racy and read back. On a file system with fine times, they are measured against its
        own clock instead, once it has moved past the writer's last change
        (:func:`_file_clock`: at once where its times are fine, a tick where they are
        coarser), so that only a file changed after that is read. Where that clock cannot be
        read, a build of many files waits out the margin (a tenth of a second); one of a few
        reads them back."""
        out = out_dir.resolve()
        state = self._merged(out, written, stayed) if stayed is not None else None
        if state is None:
            clock = _clock_or_wait(out, wait=len(written) > WAIT_FILES)
            # The metadata of every file of out/ is made with the collector paused: it could
            # start a collection that walks all the build still holds and frees nothing.
            from .load import collector_paused  # (loaded by the build by now)

            with collector_paused():
                state = _out_state(out, aside=True, clock=clock)
        racy: dict[str, str] = {}
        for name in state.racy if state is not None else ():
            expected = _expected_digest(written, name)
            if expected is None or _file_digest(out.joinpath(name)) != expected:
                state = None  # changed by someone else while the build ran
                break
            racy[name] = expected
        if state is None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            return
        self._written = [state.top.st_ino, state.top.st_dev, state.cut, state.later]
        self._store(self._key(state), warnings, racy)

    def _merged(
        self, out: Path, written: Mapping[str, bytes], stayed: Collection[str]
    ) -> OutState | None:
        """The state of out/ as the writer has just left it, made of what was seen before the
        build (:meth:`seen`) for the files in ``stayed`` and a look at each other file: with
        100,000 events and one of them edited, a second less than looking at every file.
        None when out/ does not hold the same paths as before, or the writer left fewer than
        half of its files or wrote more than :data:`LATER_FILES` (then every file is looked
        at).

        A file the writer left is taken to be as it was seen. So the moment before which a
        change time vouches for a file (:func:`written_before`) is the one of that look, and
        what the build changed after it (files, and folders of out/) is vouched for by its
        inode and change time, taken here: a file changed by hand while the build ran is read
        by the next build, and written again when it is not the build's."""
        before = self._seen
        if before is None or before.seen is None:
            return None
        folders, files, rows = before.seen
        if len(files) != len(written) or not all(name in written for name in files):
            return None
        racy = set(before.racy)  # looked at again: too fresh then to be vouched for
        fresh = [i for i, name in enumerate(files) if name not in stayed or name in racy]
        if len(fresh) > LATER_FILES or len(fresh) * 2 > len(files):
            return None
        made: set[str] = set()  # the folders the files are in: out/ must hold no other
        for folder in {name.rpartition("/")[0] for name in files}:
            while folder and folder not in made:
                made.add(folder)
                folder = folder.rpartition("/")[0]
        if made != set(folders):
            return None
        # measured so that what the writer wrote is not racy (as :meth:`save`)
        clock = _clock_or_wait(out, wait=True)
        if clock is not None:
            cut = clock
        else:
            cut = _now() - (FINE_RACY_NS if _fine_times(out / MANIFEST) else RACY_NS)
        root = str(out)
        try:
            top = os.lstat(out)
            places = [os.lstat(os.path.join(root, *f.split("/"))) for f in folders]
            infos = [os.lstat(os.path.join(root, *files[i].split("/"))) for i in fresh]
        except OSError:
            return None
        if not all(stat.S_ISREG(info.st_mode) for info in infos):
            return None
        if not all(stat.S_ISDIR(info.st_mode) for info in [top, *places]):
            return None
        taken = _rows(infos)
        if taken is None:
            return None
        packed = bytearray(rows)
        size = ROW.size
        for n, i in enumerate(fresh):
            packed[i * size : (i + 1) * size] = taken[n * size : (n + 1) * size]
        later: dict[str, list[int]] = {}
        left = []
        for i, info in zip(fresh, infos, strict=True):
            if info.st_mtime_ns >= cut or info.st_ctime_ns >= cut:
                left.append(files[i])  # read back by the save
            else:
                later[files[i]] = [info.st_ino, info.st_ctime_ns]
        for key, info in (("", top), *zip(folders, places, strict=True)):
            if before.cut <= info.st_ctime_ns < cut:
                later[key] = [info.st_ino, info.st_ctime_ns]
        signature = _signed(_place(top, folders), files, b"S" + bytes(packed))
        return OutState(signature, left, top, before.cut, later=later)

    def _store(self, key: str, warnings: str, racy: dict[str, str]) -> None:
        saved = {
            "format": FORMAT,
            "key": key,
            "inputs": self.inputs,  # the key's first half, which :meth:`lookup` checks first
            "warnings": warnings,
            "racy": racy,
            "zone": [self.settings, self._zone],
            "chunks": self._chunks,
            "code": self._code,
            "written": self._written or self._stored.get("written"),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps(saved, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass


#: the inputs of a fingerprint not completed (:meth:`Fingerprint.loaded`): never a digest
_UNKNOWN = "unknown"


def _inputs_digest(parts: list[str], contents: list[str | None]) -> str:
    """The digest of a build's inputs: ``parts``, the records' one (at 4) made of every
    chunk's ``contents``."""
    records = hashlib.sha256("".join(f"{content}\n" for content in contents).encode())
    return hashlib.sha256(
        "\n".join([*parts[:4], records.hexdigest(), *parts[5:]]).encode()
    ).hexdigest()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _expected_digest(written: Mapping[str, bytes], name: str) -> str | None:
    """The digest of a file the build wrote, without reading a file it took from the last
    build when the mapping knows it (the build's artifacts do)."""
    if name not in written:
        return None
    known = getattr(written, "digest", None)
    return str(known(name)) if known is not None else _digest(written[name])


def _fine_times(path: Path) -> bool:
    """Whether the file system keeps sub-second times (judged by a file just written)."""
    try:
        return os.lstat(path).st_mtime_ns % 1_000_000_000 != 0
    except OSError:
        return False


def _clock_or_wait(out: Path, *, wait: bool) -> int | None:
    """The moment the files the writer has just left in out/ are measured against: the
    clock of its file system (:func:`_file_clock`) where its times are fine and that clock
    can be read; else None, once the racy margin is waited out where the times are fine and
    ``wait`` says so (measured then against the system's clock less the margin)."""
    if not _fine_times(out / MANIFEST):
        return None
    clock = _file_clock(out)
    if clock is None and wait:
        time.sleep(FINE_RACY_NS / 1e9)
    return clock


def _file_clock(out: Path) -> int | None:
    """The clock of the file system out/ is on, once it has moved past every change made
    there so far: the change time (in nanoseconds) of a folder made for the purpose beside
    out/, when a second one made after it has a later one. A file whose times are older than
    this moment shows any later change in its change time, whatever the steps of the file
    system's times, and whatever its clock says against the system's (a network file system
    takes its server's). None when the folder cannot be made there, is on another file
    system than out/, or the clock has not moved within the racy margin (a file system
    whose times are coarser than that)."""
    parent = out.parent
    try:
        device = os.lstat(out).st_dev
        first = _folder_time(parent, out.name, device)
        if first is None:
            return None
        waited = time.monotonic() + FINE_RACY_NS / 1e9
        while True:
            # the first folder may share its tick with the writer's last change; a later
            # one does not
            later = _folder_time(parent, out.name, device)
            if later is None:
                return None
            if later > first:
                return later
            if time.monotonic() > waited:
                return None
            time.sleep(CLOCK_POLL_NS / 1e9)
    except OSError:
        return None


def _folder_time(parent: Path, name: str, device: int) -> int | None:
    """The change time of a new empty folder in ``parent`` (removed at once; one left by a
    build that was killed is removed by the next, as the writer's temporaries are); None on
    another device than ``device``."""
    made = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        info = os.lstat(made)
    finally:
        os.rmdir(made)
    return info.st_ctime_ns if info.st_dev == device else None


#: What vouches for the files of out/ by their metadata (:func:`written_before`): a moment,
#: and the files and folders changed since it whose inode and change time are known.
Trusted = tuple[int, Mapping[str, tuple[int, int]]]


def written_before(out_dir: Path) -> Trusted | None:
    """A moment before which a file of ``out_dir`` whose change time is older holds the
    bytes the last build put there, and the files (and folders) changed since that moment
    whose inode and change time say the same; None when no saved fingerprint vouches for
    this out/.

    :meth:`Fingerprint.save` found out/ as the writer left it at that moment (files changed
    after it were compared with the build's bytes then), or, when it took what was seen of
    out/ before the build (:meth:`Fingerprint._merged`), the moment of that look, with the
    metadata of what the build wrote after it. Writing a file, replacing it, linking or
    renaming it sets its change time, which no program sets back; out/ itself must be the
    same folder (the writer swaps in a new one at each build)."""
    written = _read_cache(cache_file(out_dir)).get("written")
    if not (isinstance(written, list) and len(written) in (3, 4)):
        return None
    if not all(type(n) is int for n in written[:3]):
        return None
    ino, dev, cut = written[:3]
    later: dict[str, tuple[int, int]] = {}
    if len(written) == 4:
        if not isinstance(written[3], dict):
            return None
        for key, value in written[3].items():
            if not (isinstance(value, list) and len(value) == 2):
                return None
            if not all(type(n) is int for n in value):
                return None
            later[key] = (value[0], value[1])
    try:
        top = os.lstat(out_dir)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode) or (top.st_ino, top.st_dev) != (ino, dev):
        return None
    return int(cut), later


def _read_cache(path: Path) -> dict[str, Any]:
    """The saved fingerprint; empty when there is none or it is not one of ours."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    return data


def _zone(raw_settings: bytes, settings: str, known: object) -> str | None:
    """The site's time zone named in the settings (remembered with the settings' digest, so
    that unchanged settings are not parsed); None when the settings do not say."""
    if isinstance(known, list) and len(known) == 2 and known[0] == settings:
        return known[1] if isinstance(known[1], str) else None
    from .frontmatter import read_yaml_file  # only when the settings changed

    try:
        data, _ = read_yaml_file(raw_settings)
        return str(data["timezone"])
    except Exception:  # any trouble here only means: the build reports it, or uses a default
        return None


def _site_day(clock: datetime, zone: str | None) -> date | datetime:
    """The build's day in the site's zone, as the build computes it; the clock itself when
    the settings do not say (the build then reports them, or uses the default)."""
    if zone is None:
        return clock
    try:
        return clock.astimezone(zoneinfo.ZoneInfo(zone)).date()
    except Exception:  # any trouble here only means: do not trust the cache
        return clock
