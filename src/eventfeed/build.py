"""The build: records in, ``{relative path: bytes}`` out. Nothing is written into out/ here
(the writer does that); large files, and the files forked workers make, wait in a folder of
the cache until it runs.

Compilers are pure functions of a :class:`BuildContext`; each returns its artifacts, and
:class:`Artifacts` refuses two compilers (or two events) claiming the same path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import itertools
import multiprocessing
import operator
import os
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast
from zoneinfo import ZoneInfo

from . import days, markdown, paths, vtimezone
from .errors import OutputError
from .event import Event
from .eventcache import Entry, EventCache, event_key, short_digest
from .forked import Forked
from .load import Site, collector_paused
from .model import Settings
from .recordstore import prefetch
from .state import (
    EventState,
    Manifest,
    advance,
    advanced,
    file_digest,
    files_listed,
    history_clock,
    manifest_head,
)
from .workers import chunks_done
from .write import check_artifact_path, copy_spilled, spares_kept, write_file

if TYPE_CHECKING:  # not imported to run: it fails where the system has no shared semaphores
    from multiprocessing.synchronize import Lock as _Lock

T = TypeVar("T")

#: What begins the memo keys of :meth:`BuildContext.shared` (a compiler's own values).
_SHARED_MEMO = "shared:"


@dataclass(frozen=True)
class BuildContext:
    site: Site
    history: Mapping[str, EventState]
    #: the day "upcoming" and the look-back windows are measured from, in the site's zone
    as_of: date
    #: orders and memberships computed once per build (every compiler asks for them, and the
    #: site asks once per page); the context is frozen, so they cannot go stale
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: the notes the per-event steps left, by compiler name and event id
    notes: Mapping[str, Mapping[str, object]] = field(default_factory=dict, compare=False)
    #: the files the per-event steps made, by path, for whole steps that reuse parts of them
    #: (read when asked for: they may be on disk)
    files: Artifacts = field(default_factory=lambda: Artifacts(), compare=False, repr=False)
    #: each event's cache key (:func:`_keyed`), when the build keeps the per-event store: the
    #: notes of an event are made of what its key digests, so a whole step may digest the
    #: key instead of the notes (the pages' dated pages, :meth:`~.pages.Renderer.dated_key`)
    keys: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def shared(self, name: str, make: Callable[[BuildContext], T]) -> T:
        """One value per build and process, made on first use (a compiler's renderer)."""
        found = self._memo.get(_SHARED_MEMO + name)
        if found is None:
            found = self._memo[_SHARED_MEMO + name] = make(self)
        return cast(T, found)

    def note(self, compiler: str, event: Event) -> object | None:
        """What ``compiler``'s per-event step noted for ``event``; None before that step."""
        return self.notes.get(compiler, {}).get(event.id)

    @property
    def settings(self) -> Settings:
        return self.site.settings

    @property
    def events(self) -> tuple[Event, ...]:
        return self.site.events

    def chronological(self) -> list[Event]:
        """Events by start (UTC), ties broken by id."""
        order = self._memo.get("")
        if order is None:
            order = self._memo[""] = tuple(sorted(self.site.events, key=lambda e: e.sort_key))
        return list(order)

    def keep_order(self, aside: Forked) -> None:
        """Take :meth:`chronological` from where it was worked out beside
        (:func:`_order_aside`), unless that failed (then it is worked out here, if asked)."""
        events = self.site.events
        data = aside.output()
        if data is None or len(data) != _INDEX.itemsize * len(events):
            return
        found = array(_INDEX.typecode)
        found.frombytes(data)
        if set(found) != set(range(len(events))):
            return  # not every event once
        self._memo[""] = tuple(events[i] for i in found)

    def collection(self, name: str) -> list[Event]:
        """The events of one collection of the settings, chronological."""
        key = "collection:" + name
        members = self._memo.get(key)
        if members is None:
            members = tuple(e for e in self.chronological() if name in self.memberships(e))
            self._memo[key] = members
        return list(members)

    def memberships(self, event: Event) -> frozenset[str]:
        """The names of the collections of the settings that ``event`` belongs to."""
        found: dict[str, frozenset[str]] | None = self._memo.get("memberships")
        if found is None:
            found = self._memo["memberships"] = {}
        names = found.get(event.id)
        if names is None:
            names = found[event.id] = memberships_of(event, self.settings)
        return names


def memberships_of(event: Event, settings: Settings) -> frozenset[str]:
    """The names of the collections of ``settings`` that ``event`` belongs to."""
    return frozenset(name for name in settings.collections if in_collection(event, settings, name))


def in_collection(event: Event, settings: Settings, name: str) -> bool:
    """An event belongs when it matches every filter the collection gives (any value of each)."""
    spec = settings.collections[name]
    rec = event.brief
    return (
        (not spec.kinds or rec.kind in spec.kinds)
        and (not spec.regions or rec.region in spec.regions)
        and (not spec.tags or not set(spec.tags).isdisjoint(rec.tags))
        and (
            not spec.organizers
            # (organisations named by their key in the settings, not given whole)
            or any(key in spec.organizers for key in event.org_keys)
        )
        and (not spec.languages or event.language in spec.languages)
    )


class DuplicatePath(Exception):
    """Two artifacts claim one path: a bug in a compiler, never a user error."""


@dataclass(frozen=True)
class _Known:
    """A file of the previous build that this build makes again, byte for byte."""

    digest: str
    size: int
    source: str
    again: Callable[[], bytes]

    def data(self) -> bytes:
        data = _previous(self.source, self.size, self.digest)
        return self.again() if data is None else data


def _previous(source: str, size: int, digest: str) -> bytes | None:
    """The bytes of the previous build's file ``source``; None when it no longer holds them
    (the previous out/ changed under the build: the caller makes the file again)."""
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data if len(data) == size and file_digest(data) == digest else None


class _Remake:
    """Makes any file of one event again, by compiling the event again: what every file a
    build takes from the previous out/ for that event holds (:class:`_Reused`), instead of
    one callable per file."""

    __slots__ = ("context", "event", "steps")

    def __init__(self, steps: list[Compiler], context: BuildContext, event: Event) -> None:
        self.steps = steps
        self.context = context
        self.event = event

    def file(self, path: str) -> bytes:
        return _again(self.steps, self.context, self.event, path)


class _Reused:
    """A file of an event that the previous build made under the same key, in the previous
    out/ (``folder``): read from there when its bytes are asked for, or, when that file no
    longer holds them, made again. What :class:`_Known` is for a whole step's file, for each
    file of every unchanged event; the files of one event share its :class:`_Remake`."""

    __slots__ = ("digest", "folder", "path", "remake", "size")

    def __init__(self, digest: str, size: int, folder: Path, path: str, remake: _Remake) -> None:
        self.digest = digest
        self.size = size
        self.folder = folder
        self.path = path
        self.remake = remake

    def data(self) -> bytes:
        data = _previous(_in(self.folder, self.path), self.size, self.digest)
        return self.remake.file(self.path) if data is None else data


@dataclass(frozen=True, slots=True)
class Spilled:
    """A file written to a spill file as soon as it was made (by a forked worker, or a large
    file of a whole step), so that the bytes of every page and calendar are not all held in
    memory until the writer runs."""

    digest: str
    size: int
    spill: Path
    offset: int

    def data(self) -> bytes:
        with open(self.spill, "rb") as handle:
            return os.pread(handle.fileno(), self.size, self.offset)

    def __reduce__(self) -> tuple[type[Spilled], tuple[str, int, Path, int]]:
        return Spilled, (self.digest, self.size, self.spill, self.offset)  # see Staged


@dataclass(frozen=True, slots=True)
class Staged:
    """A file a forked worker wrote on its own, at its path in the staging tree
    (:attr:`Artifacts.staging`), as soon as it was made. The writer moves it into the new
    tree, or takes the whole staging tree as the new tree when nothing else is to be kept
    (and moves :attr:`Artifacts.staging` with it): the bytes are written once, by the
    workers, and never copied."""

    digest: str
    size: int

    def __reduce__(self) -> tuple[type[Staged], tuple[str, int]]:
        # Sent back by the workers for every file: made again by the constructor, not by the
        # generic state of a frozen dataclass with slots, which looks its fields up each
        # time (200,000 files: 1.0-1.7 s to read back, 0.5 s now).
        return Staged, (self.digest, self.size)


@dataclass(frozen=True, slots=True)
class AsBefore:
    """A file a forked worker made with the very bytes the previous build's manifest names
    for its path: not staged (the previous out/ holds it already, and the writer keeps or
    links that file), and taken by the parent as a file of the previous out/
    (:class:`_Reused`, made again should out/ no longer hold it). After an upgrade of
    eventfeed, or a change of settings, that leaves many files as they were, the workers
    create only the files that changed, and the writer removes no staged copy of the others
    (with 100,000 events and no file changed: 200,000 files created, then removed)."""

    digest: str
    size: int

    def __reduce__(self) -> tuple[type[AsBefore], tuple[str, int]]:
        return AsBefore, (self.digest, self.size)  # see Staged


#: A file of a whole step this large or larger is spilled to disk as soon as it is added
#: (into the staging tree, when the build has one: its own file there, which the writer
#: would otherwise create). At 1 MB, the pages of a listing shared out among pages of about
#: that size (``pages.max_bytes``) were all held in memory until the build was written:
#: 170 MB more at the peak with 100,000 records, 18 MB with 10,000.
SPILL_BYTES = 64 << 10
#: The same for the whole step run beside the others (:class:`_Aside`): what it keeps as
#: bytes is pickled, sent to the first process and held there until written. With 10,000
#: records, the calendars split by month (about a hundred of 0.28-0.74 MB) raised a cold build's
#: peak from 156 to 251 MB when held so.
ASIDE_SPILL_BYTES = 64 << 10


class Artifacts(Mapping[str, bytes]):
    """The build's files by path. A file taken from the previous build is known by its digest
    and size, and read (or made again) only when its bytes are asked for; a large file is
    written to a spill file as it is added (:data:`SPILL_BYTES`)."""

    def __init__(self, folder: str | None = None, spill_bytes: int | None = None) -> None:
        self._files: dict[str, bytes | _Known | _Reused | Spilled | Staged] = {}
        #: from this size on, a file is written to the spill file (:meth:`add_parts`); None:
        #: :data:`SPILL_BYTES`
        self._spill_bytes = spill_bytes
        #: the spill folder: given, when it is another's (which removes it), or made on use
        self._folder: str | None = folder
        #: the spill file of the large files added here, in that folder
        self._spill_name = "whole.spill" if folder is None else f"whole-{os.getpid()}.spill"
        #: the digests the manifest among these files names, by path, when it was made here
        #: (the writer needs them; with 100,000 events, parsing them back took a second)
        self.manifest_files: Mapping[str, str] | None = None
        #: the staging tree, once workers were given it (:meth:`staging_tree`); the writer
        #: names the new tree here when it takes the staging tree as that
        self.staging: str | None = None
        #: whether the workers also link each file they stage into :meth:`second_tree`: set
        #: by a build into an out/ without a manifest, whose new tree is the staging tree
        self.wants_second = False
        #: that second tree, once workers were given it; the writer keeps it as the next
        #: build's spare (:func:`eventfeed.write.keep_second`)
        self.second: str | None = None
        #: the files the workers linked there (those they staged), which the writer does not
        self.in_second: set[str] = set()
        #: the paths in order (:meth:`__iter__`), as many as there were then: a path is
        #: never taken out, so the order holds while no path is added
        self._order: list[str] = []

    def spill_folder(self) -> str:
        """A temporary folder in the user's cache folder (a disk, where the system's temporary
        folder may be memory), removed when these artifacts are."""
        if self._folder is None:
            from .cache import cache_dir

            try:
                cache_dir().mkdir(parents=True, exist_ok=True)
                self._folder = tempfile.mkdtemp(prefix="spill-", dir=cache_dir())
            except OSError:
                self._folder = tempfile.mkdtemp(prefix="eventfeed-spill-")
            weakref.finalize(self, shutil.rmtree, self._folder, True)
        return self._folder

    def staging_tree(self) -> str:
        """Where forked workers write the files they make, each at its own path
        (:class:`Staged`); named in :attr:`staging` from then on."""
        if self.staging is None:
            self.staging = os.path.join(self.spill_folder(), "tree")
        return self.staging

    def second_tree(self) -> str | None:
        """Where forked workers link each file they stage, when :attr:`wants_second`: out/'s
        files under a second name, for the next build to start from (a tree of 200,000 links
        made by that build alone cost it two seconds, against a few tenths shared by the
        workers). None when it is not wanted."""
        if self.wants_second and self.second is None:
            self.second = os.path.join(self.spill_folder(), "second")
        return self.second

    def add(self, path: str, data: bytes) -> None:
        self.add_parts(path, lambda: (data,))

    def add_parts(self, path: str, make: Callable[[], Iterable[bytes]]) -> None:
        """A file made as the parts it is the join of (:meth:`Lazy.parts`). Once they come to
        :data:`SPILL_BYTES` (or the size given), they are written to the spill file one by one
        as they are made:
        a large file is never joined in memory. On a full disk it is made again, joined."""
        if path in self._files:
            raise DuplicatePath(path)
        held: list[bytes] = []
        size = 0
        limit = SPILL_BYTES if self._spill_bytes is None else self._spill_bytes
        parts = iter(make())
        for part in parts:
            held.append(part)
            size += len(part)
            if size >= limit:
                break
        else:
            self._files[path] = b"".join(held)
            return
        if self.staging is not None and _stageable(path):
            staged = self._staged(path, itertools.chain(held, parts))
            if staged is not None:
                self._files[path] = staged
                return
            parts = iter(make())  # made again, into the spill file
            held = []
        spill = Path(self.spill_folder(), self._spill_name)
        try:
            with open(spill, "ab") as handle:
                offset = handle.tell()
                digest = _written(handle, itertools.chain(held, parts))
                size = handle.tell() - offset
        except OSError:
            self._files[path] = b"".join(make())
            return
        self._files[path] = Spilled(digest, size, spill, offset)

    def _staged(self, path: str, parts: Iterable[bytes]) -> Staged | None:
        """A large file written straight to its path in the staging tree, where the workers
        wrote theirs: the writer then neither copies nor links it (with 100,000 events, a
        cold build's whole files come to about 700 MB, which the writer copied out of the
        spill file at the end, alone). None when it cannot be written there."""
        target = self._in_staging(path)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                digest = _written(handle, parts)
                size = handle.tell()
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(target)
            return None
        return Staged(digest, size)

    def add_known(self, path: str, known: _Known | Spilled | Staged) -> None:
        if path in self._files:
            raise DuplicatePath(path)
        self._files[path] = known

    def add_reused(
        self, files: Mapping[str, tuple[str, int]], folder: Path, remake: _Remake
    ) -> None:
        """Every file of one event, taken from the previous out/ in ``folder``
        (:class:`_Reused`)."""
        held = self._files
        for path, (digest, size) in files.items():
            if path in held:
                raise DuplicatePath(path)
            held[path] = _Reused(digest, size, folder, path, remake)

    def update_from(
        self,
        other: Mapping[str, bytes | Spilled | Staged | AsBefore],
        before: tuple[Path, _Remake] | None = None,
    ) -> dict[str, tuple[str, int]]:
        """Add the files one event's step made; ``before``: the previous out/ and what makes
        the event's files again, for those made as they were before (:class:`AsBefore`).
        Without it, those are not added but returned (digest and size by path), for the
        caller to add once it has what makes them again."""
        later: dict[str, tuple[str, int]] = {}
        for path in sorted(other):
            value = other[path]
            if isinstance(value, (Spilled, Staged)):
                self.add_known(path, value)
                if self.second is not None and isinstance(value, Staged):
                    self.in_second.add(path)  # (a worker's, linked there too)
            elif isinstance(value, AsBefore):
                if before is None:
                    later[path] = (value.digest, value.size)
                else:
                    self.add_reused({path: (value.digest, value.size)}, *before)
            else:
                self.add(path, value)
        return later

    def stage_spilled(self) -> Callable[[], None] | None:
        """Start copying the files spilled so far into the staging tree, at their own paths,
        in a forked process; returns what waits for it, after which those files are
        :class:`Staged` (the writer then takes them as the workers' own, and copies
        nothing), or None when there is nothing to copy, or the copy cannot run. The copy
        runs while this process makes the whole steps, on the core they leave idle: with
        100,000 events it is 3 GB that the writer copied, alone, at the end. Where the copy
        fails, the files stay spilled."""
        moves = [(p, v) for p, v in self._files.items() if isinstance(v, Spilled)]
        forks = "fork" in multiprocessing.get_all_start_methods()
        if self.staging is None or not moves or not forks:
            return None
        context = multiprocessing.get_context("fork")
        process = context.Process(target=_copy_to_tree, args=(self.staging, moves), daemon=True)
        try:
            process.start()
        except OSError:
            return None

        def finish() -> None:
            process.join()
            if process.exitcode != 0:
                return
            for path, spilled in moves:
                if self._files.get(path) is spilled:
                    self._files[path] = Staged(spilled.digest, spilled.size)

        return finish

    def spilled(self, path: str) -> Spilled | None:
        """Where the file is in a spill file, when it is in one (the writer copies it from
        there without reading it into memory)."""
        value = self._files[path]
        return value if isinstance(value, Spilled) else None

    def staged(self, path: str) -> str | None:
        """The file of the staging tree that holds the file at ``path``, when a worker wrote
        it there (:class:`Staged`)."""
        return self._in_staging(path) if isinstance(self._files[path], Staged) else None

    def _in_staging(self, path: str) -> str:
        assert self.staging is not None
        return _in(self.staging, path)  # asked of every file by the writer

    def digest(self, path: str) -> str:
        value = self._files[path]
        return file_digest(value) if isinstance(value, bytes) else value.digest

    def size(self, path: str) -> int:
        value = self._files[path]
        return len(value) if isinstance(value, bytes) else value.size

    def __getitem__(self, path: str) -> bytes:
        value = self._files[path]
        if isinstance(value, bytes):
            return value
        if isinstance(value, Staged):
            with open(self._in_staging(path), "rb") as handle:
                return handle.read()
        return value.data()

    def piece(self, path: str, offset: int, size: int) -> bytes:
        """``self[path][offset : offset + size]``, reading only those bytes of a file a
        worker staged: the calendars join every event's components from its own file
        (10,000 events: opening each as a buffered file cost a tenth of their whole step)."""
        value = self._files[path]
        if isinstance(value, Staged) and offset >= 0 and offset + size <= value.size:
            fd = os.open(self._in_staging(path), os.O_RDONLY)
            try:
                found = os.pread(fd, size, offset)
            finally:
                os.close(fd)
            if len(found) == size:
                return found
        return self[path][offset : offset + size]

    def __contains__(self, path: object) -> bool:  # without reading the file
        return path in self._files

    def __iter__(self) -> Iterator[str]:
        # asked for three times by a build, and sorting 200,000 paths takes 0.08 s
        if len(self._order) != len(self._files):
            self._order = sorted(self._files)
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._files)


def _written(handle: BinaryIO, parts: Iterable[bytes]) -> str:
    """Write ``parts`` to ``handle`` one by one; the digest of what was written, as
    :func:`~eventfeed.state.file_digest` gives it."""
    digest = hashlib.sha256()
    for part in parts:
        handle.write(part)
        digest.update(part)
    return digest.hexdigest()


class Lazy(Mapping[str, bytes]):
    """Files of a whole step, each made when it is asked for (and again if asked again).

    A file may have a key: a digest of everything its bytes depend on besides eventfeed's
    own code. When the last build made the file under the same key and the previous out/
    still holds it, the build takes it from there without making it (:func:`compile_site`).

    A file may be made as the parts it is the join of (:meth:`add_parts`): the build then
    writes a large one to disk a part at a time (:meth:`Artifacts.add_parts`), never joined
    in memory (an archive calendar or the home page of 100,000 events: about 100 MB each).

    A file may have work to begin beside (``begin``), once the build knows it makes the file
    and before it makes the step's other files; the file is then made after them.
    """

    def __init__(self) -> None:
        self._makers: dict[str, tuple[Callable[[], Iterable[bytes]], Callable[[], str | None]]] = {}
        self._begin: dict[str, Callable[[], None]] = {}

    def add(
        self, path: str, make: Callable[[], bytes], key: Callable[[], str | None] = lambda: None
    ) -> None:
        self.add_parts(path, lambda: (make(),), key)

    def add_parts(
        self,
        path: str,
        make: Callable[[], Iterable[bytes]],
        key: Callable[[], str | None] = lambda: None,
        *,
        begin: Callable[[], None] | None = None,
    ) -> None:
        if path in self._makers:
            raise DuplicatePath(path)
        self._makers[path] = (make, key)
        if begin is not None:
            self._begin[path] = begin

    def key(self, path: str) -> str | None:
        return self._makers[path][1]()

    def begin(self, path: str) -> bool:
        """Begin the work beside of the file at ``path``, if it has some (then the caller
        makes it after the others): whether it has."""
        begin = self._begin.get(path)
        if begin is None:
            return False
        begin()
        return True

    def parts(self, path: str) -> Iterable[bytes]:
        """The file as the parts it is joined from, made now."""
        return self._makers[path][0]()

    def __getitem__(self, path: str) -> bytes:
        return b"".join(self.parts(path))

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


#: What a compiler makes of one event: its own files, and a note for the compiler's whole step.
EventPart = tuple[Mapping[str, bytes], object]


@dataclass(frozen=True)
class Compiler:
    """One kind of output, in up to two steps.

    ``each`` (optional) runs once per event and depends on nothing but that event, its
    history and the settings, so events can be compiled in any order, in several processes,
    or taken from an earlier build. ``whole`` runs once, after every ``each``, and makes the
    files that gather many events; it finds the notes of ``each`` with
    :meth:`BuildContext.note` (its own compiler's only: they are dropped once it has run).
    """

    name: str
    whole: Callable[[BuildContext], Mapping[str, bytes]]
    each: Callable[[BuildContext, Event], EventPart] | None = None
    #: what ``each`` depends on besides the event, its history and the settings (say, whether
    #: the event is still coming on the build's day), part of the event's cache key, and the
    #: last day (as of) up to which it stays that (None: on every later day)
    key: Callable[[BuildContext, Event], tuple[str, date | None]] | None = None


def compilers() -> list[Compiler]:
    """Every compiler, in a fixed order. Imported here to keep the import graph one-way.

    The quick rebuild (:mod:`eventfeed.quick`) takes a past event's edit as placed alike
    when what the whole steps read of it is the same: its notes, its collections, kind,
    region and language, its order, start, all-day, zones, last day and publication
    (:func:`eventfeed.quick._placed_alike`). A whole step that reads more of an event says
    so there too (``tests/test_quick.py`` compares the two builds)."""
    from . import ical, pages

    return [
        Compiler("ical", ical.compile_calendars, ical.compile_event_files, ical.event_key),
        Compiler("feeds", _feeds),
        Compiler("pages", pages.compile_pages, pages.compile_event_page, pages.event_key),
    ]


def _feeds(context: BuildContext) -> Mapping[str, bytes]:
    """The feeds' whole step (:func:`eventfeed.feeds.compile_feeds`), imported as it runs,
    with the libraries that write feeds: a build imports the compilers before it forks its
    workers, which have no use for those (27 ms, a tenth of a build's imports, on one core
    while the other waited)."""
    from .feeds import compile_feeds

    return compile_feeds(context)


def as_of_for(now: datetime, settings: Settings) -> date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


#: Below this many events a second process costs more than it saves.
PARALLEL_MIN_EVENTS = 1000
#: Events compiled in one go (and their entries written to the store in one transaction) in
#: this process, and the most events a forked worker compiles before it sends them back.
BATCH = 1000


def compile_site(
    site: Site,
    previous: Manifest | None,
    now: datetime,
    *,
    as_of: date | None = None,
    jobs: int | None = None,
    reuse: EventCache | None = None,
    previous_out: Path | None = None,
    ahead: Ahead | None = None,
) -> Artifacts:
    """Compile every artifact in memory, the manifest last.

    First every compiler's per-event step runs for every event; with ``jobs`` of 2 or more
    (by default when there are two cores and enough events) the events are shared out among
    that many forked processes. Then each compiler's whole step runs here. Steps are pure
    functions of the context, so the bytes are the same however they were shared out.

    With ``reuse`` (the store of the last build into ``previous_out``, whose manifest is
    ``previous``), an event whose key is unchanged is not compiled: its notes come from the
    store and its files from ``previous_out`` (:mod:`eventfeed.eventcache`). With ``ahead``,
    the events the loader's workers compiled for this build are not compiled again
    (:class:`Ahead`).
    """
    # The loaded site, and what is kept of each event, live as long as the build and are
    # never garbage: the cycle collector is kept from walking them again at every one of its
    # passes (with 100,000 events, each pass touches millions of objects).
    gc.freeze()
    try:
        return _compile_site(site, previous, now, as_of, jobs, reuse, previous_out, ahead)
    finally:
        gc.unfreeze()


#: From this many events on, their order (:meth:`BuildContext.chronological`) is worked out
#: in a forked process while this one works out their history: with 100,000 events, each
#: takes about half a second, and the second core is idle then.
ORDER_ASIDE_EVENTS = 20_000
#: how the order is sent back: the position of each event in the site's events
_INDEX = array("q")


def _order_aside(events: tuple[Event, ...]) -> Forked | None:
    """The order of ``events`` (:meth:`BuildContext.chronological`), worked out in a forked
    process, for :meth:`BuildContext.keep_order`; None below :data:`ORDER_ASIDE_EVENTS`, or
    where it cannot be."""
    if len(events) < ORDER_ASIDE_EVENTS:
        return None
    return Forked.start(lambda: _order_of(events))


def _order_of(events: tuple[Event, ...]) -> bytes:
    order = sorted(range(len(events)), key=lambda i: events[i].sort_key)
    return array(_INDEX.typecode, order).tobytes()


class _NotLoaded(tuple):  # type: ignore[type-arg]
    """The events of a site still being loaded (:class:`Ahead`): a per-event step that asked
    for them would make an event's files depend on others, and fails here instead of seeing
    none."""

    def _refuse(self, *args: object) -> Any:
        raise RuntimeError("a per-event step asked for the site's events before they are loaded")

    __iter__ = __len__ = __getitem__ = __contains__ = _refuse


class Ahead:
    """The per-event steps run by the loader's workers, each event as soon as they have
    parsed and checked its record, in a build that compiles every event: a first build (into
    an out/ without a manifest), one without the per-event store of the last (a fresh
    clone), ``build --check``. There an event's history is its record's and the state the
    manifest of out/ (if any) gives it (:func:`advance`), and the per-event steps read
    nothing of other events, so the workers need nothing of the rest of the site. The build
    then neither waits for the whole load before it forks workers again, nor has those unpack
    each record that the load's workers had just packed to send it here; and what each
    worker sends back is taken here while the others work (its files, notes and store
    entries, as :func:`_compile_site` takes them).

    Made for one build by :func:`eventfeed.pipeline.compile_into`, and given to the loader
    (:func:`eventfeed.load.load_site`) and then to :func:`compile_site`, which goes on with
    what was made only when the build turns out to be the one it was made for (the same
    manifest, settings, folder, day and store), and compiles the rest itself, as it compiles
    every event when nothing was made ahead (few records, no workers)."""

    def __init__(
        self,
        now: datetime,
        as_of: date | None,
        reuse: EventCache | None,
        previous: Manifest | None = None,
        previous_out: Path | None = None,
    ) -> None:
        self.now = now
        self.as_of = as_of
        #: the per-event store the entries are written to, as the build would
        self.reuse = reuse
        #: the manifest of out/ as it was read before the load, and out/ itself
        self.previous = previous
        self.previous_out = previous_out
        #: the files of each event made as they were in that out/ (:class:`AsBefore`),
        #: taken from there once the build has the event (:func:`_compile_site`)
        self.as_before: dict[str, dict[str, tuple[str, int]]] = {}
        #: where the workers' files are, for the build to go on with
        self.artifacts = Artifacts()
        #: the events taken, their notes by compiler name, and their cache keys
        self.done: set[str] = set()
        self.notes: dict[str, dict[str, object]] = {}
        self.keys: dict[str, str] = {}
        #: the settings, events folder, day and base the events were compiled for
        self._for: tuple[Settings, str, date, str] | None = None
        #: whether two records had one id (the build fails on that)
        self._clash = False
        #: each event's history, worked out here as the loader keeps it (:meth:`loaded`),
        #: with what it is worked out from once the workers are forked
        self.history: dict[str, EventState] = {}
        self._history_of: tuple[Mapping[str, EventState], datetime, str] | None = None

    def start(self, settings: Settings, root: str) -> None:
        """Here, before the load's workers are forked: the build they compile for, as
        :func:`_each_forked` sets it for its own workers."""
        steps = compilers()
        site = Site(settings=settings, events=cast(tuple[Event, ...], _NotLoaded()), root=root)
        as_of = self.as_of or as_of_for(self.now, settings)
        context = BuildContext(site=site, history={}, as_of=as_of)
        keyed = self.reuse is not None
        base = _base(context, steps) if keyed else ""
        artifacts = self.artifacts
        previous, previous_out = self.previous, self.previous_out
        artifacts.wants_second = _wants_second(self.reuse, previous, previous_out)
        tree, folder = artifacts.staging_tree(), artifacts.spill_folder()
        keying: _Keying | None = (base, {}) if keyed else None
        second = artifacts.second_tree()
        old = previous.files if previous is not None and previous_out is not None else None
        _serve((steps, context, [], tree, folder, keying, _writing_lock(), old, second))
        self.notes = {step.name: {} for step in steps}
        self._for = (settings, root, as_of, base)
        states = previous.events if previous is not None else {}
        self._history_of = (states, history_clock(self.now), root)

    def loaded(self, event: Event) -> None:
        """Here, as the loader keeps an event: its history (:func:`advanced`) and its sort
        key, worked out while the workers run, instead of after the load on one core (with
        100,000 events, 0.9 s of a cold build, and the order then worked out beside)."""
        made = self._history_of
        if made is not None:
            old, clock, root = made
            self.history[event.id] = advanced(old, event, clock, root)
            event.sort_key  # noqa: B018 -- kept by the event, for the order after the load

    def history_for(
        self, site: Site, previous: Manifest | None, now: datetime
    ) -> dict[str, EventState] | None:
        """The history of every event of ``site`` (:func:`advance`) as worked out while it
        was loaded, in the site's order; None when it was not worked out for this very site,
        previous manifest and clock."""
        made = self._history_of
        if made is None or previous is not self.previous or now != self.now:
            return None
        history = self.history
        if made[2] != site.root or len(history) != len(site.events):
            return None
        try:
            return {event.id: history[event.id] for event in site.events}
        except KeyError:
            return None

    def stop(self) -> None:
        """Here, once the load's workers are done."""
        global _SHARED
        _SHARED = None

    def compile(self, events: list[Event]) -> list[tuple[str, Made, Keyed | None]]:
        """In a worker of the load: the per-event steps of ``events``, just checked."""
        assert _SHARED is not None
        context = _SHARED[1]
        history = cast(dict[str, EventState], context.history)
        history.update(advance(self.previous, events, self.now, context.site.root))
        made = _made_here(events)
        return [(e.id, m, k) for e, (m, k) in zip(events, made, strict=True)]

    def took(self, made: Iterable[tuple[str, Made, Keyed | None]]) -> None:
        """Here: what a worker sent back, taken as :func:`_compile_site` takes what its own
        workers send (its store entries written in one batch)."""
        entries = []
        for event_id, parts, keyed in made:
            if event_id in self.done:  # a second record with the id: the build fails
                self._clash = True
                continue
            self.done.add(event_id)
            # (its files made as before are added once the build has the event)
            files, later = _placed(event_id, parts, self.artifacts, self.notes, None)
            if later:
                self.as_before[event_id] = later
            if self.reuse is not None and keyed is not None:
                state, key, held = keyed
                kept = {name: note for name, (_, note) in parts.items()}
                entries.append((event_id, Entry(key, files, kept, state, held)))
                self.keys[event_id] = key
        if self.reuse is not None:
            self.reuse.put(entries, later=True)  # written by :func:`_whole`

    def let_go(self) -> None:
        """Here, once the build has what it needs of what was made ahead (or nothing): with
        100,000 events, letting go of what is kept of them by id lowered the build's peak
        by about 8 MB."""
        self.done, self.notes, self.keys, self.as_before = set(), {}, {}, {}
        self.history = {}

    def holds_for(
        self,
        site: Site,
        previous: Manifest | None,
        previous_out: Path | None,
        as_of: date,
        base: str,
        reuse: object,
    ) -> bool:
        """Whether what was made is what this build would make: the events were compiled
        with its very manifest (or none) and out/, the very settings of ``site``, its folder,
        the day and the base, and their entries written to its store ``reuse``."""
        if self._for is None or self._clash or reuse is not self.reuse:
            return False
        if previous is not self.previous or previous_out != self.previous_out:
            return False
        settings, root, day, made_base = self._for
        same = settings is site.settings and root == site.root
        return same and day == as_of and made_base == base


def _compile_site(
    site: Site,
    previous: Manifest | None,
    now: datetime,
    as_of: date | None,
    jobs: int | None,
    reuse: EventCache | None,
    previous_out: Path | None,
    ahead: Ahead | None = None,
) -> Artifacts:
    # The history, the keys and what is taken from the last build live as long as the build:
    # made with the collector paused, they join the site it is kept from (with 100,000
    # events, its passes over them cost a rebuild half a second).
    with collector_paused(frozen=True):
        # (what the load worked out, in a build that compiled ahead: then the events' order
        # is worked out here, from the sort keys worked out with it, :meth:`Ahead.loaded`)
        history = ahead.history_for(site, previous, now) if ahead is not None else None
        ordering = _order_aside(site.events) if history is None else None
        try:
            if history is None:
                history = advance(previous, site.events, now, site.root)
        except BaseException:
            if ordering is not None:
                ordering.stop()
            raise
        context = BuildContext(
            site=site, history=history, as_of=as_of or as_of_for(now, site.settings)
        )
        if ordering is not None:
            context.keep_order(ordering)
        steps = compilers()
        order = context.chronological()
        base = _base(context, steps) if reuse is not None else ""
        keys = {}
        marked = False
        if reuse is not None:
            # the store marked as made for this base and the manifest in out/: every entry's
            # state key is that manifest's (:meth:`EventCache.mark`), and this code wrote it
            marked = previous is not None and reuse.marked == made_for(base, previous.digest)
            kept = previous.events if previous is not None and marked else None
            keys = _keys(context, steps, order, base, reuse.entries, kept)
        # what the loader's workers compiled, when it is this build's (:class:`Ahead`)
        early = ahead
        if early is not None and not early.holds_for(
            site, previous, previous_out, context.as_of, base, reuse
        ):
            early = None
        artifacts = early.artifacts if early is not None else Artifacts()
        if early is None:  # (else its workers were told, by the same rule)
            artifacts.wants_second = _wants_second(reuse, previous, previous_out)
        notes: dict[str, dict[str, object]] = {step.name: {} for step in steps}
        if early is not None:
            # every event was compiled ahead, or is compiled now: none is taken from the
            # store (a build that has entries there to take makes nothing ahead)
            notes = early.notes
            todo = [event for event in order if event.id not in early.done]
            for event in order if early.as_before else ():
                files = early.as_before.get(event.id)
                if files is not None:
                    assert previous_out is not None
                    artifacts.add_reused(files, previous_out, _Remake(steps, context, event))
        elif reuse is not None and previous is not None and previous_out is not None:
            todo = _reused(
                steps, context, order, keys, reuse, previous, previous_out, artifacts, notes
            )
        else:
            todo = order
    if reuse is not None:  # before the workers are forked, which inherit them
        vtimezone.KNOWN.update(reuse.zones(base))
    two = (os.cpu_count() or 1) >= 2
    # The whole steps share out what they do between two processes when the site is large
    # enough, whatever is left to compile of each event (:class:`_Aside`), unless the second
    # core copies spilled files meanwhile (below).
    aside = jobs > 1 if jobs is not None else two and len(site.events) >= PARALLEL_MIN_EVENTS
    if jobs is None:
        enough = len(todo) >= PARALLEL_MIN_EVENTS and two
        jobs = min(os.cpu_count() or 1, 2) if enough else 1

    def take(made: Iterable[tuple[Event, tuple[Made, Keyed | None]]]) -> None:
        """Keep what the whole steps need of a batch of compiled events (their files, or
        where they are, and their notes), and write the batch's entries to the store, each
        under the event's keys: those worked out before (:func:`_keys`), or where the event
        was compiled, or here. What is kept lives as long as the build: it joins the frozen
        site, instead of being walked again by every full pass of the collector while the
        workers run (with 100,000 events, about 3 s of a cold build, in this process)."""
        entries = []
        with collector_paused(frozen=True):
            for event, (parts, keyed) in made:
                # (the previous out/, for the files made as before, and how to make them again)
                before = (
                    None if previous_out is None else (previous_out, _Remake(steps, context, event))
                )
                files, _ = _placed(event.id, parts, artifacts, notes, before)
                if reuse is not None:
                    kept = {name: note for name, (_, note) in parts.items()}
                    if keyed is None:
                        keyed = keys.get(event.id) or _keyed(context, steps, base, event)
                    state, key, held = keyed
                    entries.append((event.id, Entry(key, files, kept, state, held)))
                    cache_keys[event.id] = key
        if reuse is not None:
            reuse.put(entries, later=True)  # written by :func:`_whole`

    # every event's cache key: those worked out before (a taken event's is its entry's), and
    # those of the events compiled (:func:`take`)
    cache_keys = {event_id: keyed[1] for event_id, keyed in keys.items()}
    if early is not None:
        cache_keys.update(early.keys)
    if ahead is not None:
        ahead.let_go()
    # The events to compile that the record store kept read the rest of their records many at
    # a time, here, before the workers are forked (each would read one at a time)
    prefetch(event.packed_from for event in todo)
    # The events are taken as they come: what the workers send back is never all held at once.
    keying = (base, keys) if reuse is not None else None
    # the files of the previous out/, which the workers then do not stage again
    old = previous.files if previous is not None and previous_out is not None else None
    done = _each_forked(steps, context, todo, jobs, artifacts, take, keying, old) if jobs > 1 else 0
    for start in range(done, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        take(zip(batch, ((made, None) for made in _each(steps, context, batch)), strict=True))
    staged = artifacts.stage_spilled()  # while the whole steps run
    # The copy takes the second core (with 100,000 events, cold, it is what the build waits
    # for last): the whole steps then leave it to the copy.
    aside = aside and staged is None
    # (the store keeps the entries of this site's events)
    keep = functools.partial(reuse.keep_only, {e.id for e in order}) if reuse is not None else None
    # The whole steps make what the site's files are joined from, kept to the end, and next
    # to no garbage the collector alone could free (a few hundred objects at 10,000 events):
    # its passes over them freed nothing (with 100,000 events, about 1.5 s of a cold build).
    try:
        with collector_paused(frozen=True):
            _whole(
                steps,
                context,
                notes,
                artifacts,
                history,
                previous,
                previous_out,
                reuse,
                base,
                aside,
                previous if marked else None,
                cache_keys if reuse is not None else None,
                keep,
            )
    finally:
        if staged is not None:
            staged()
    return artifacts


def _whole(
    steps: list[Compiler],
    context: BuildContext,
    notes: dict[str, dict[str, object]],
    artifacts: Artifacts,
    history: Mapping[str, EventState],
    previous: Manifest | None,
    previous_out: Path | None,
    reuse: EventCache | None,
    base: str,
    aside: bool,
    ours: Manifest | None = None,
    cache_keys: Mapping[str, str] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Every whole step, then the manifest, into ``artifacts``; with ``aside``, the first
    one in a forked process (:class:`_Aside`), when it can be. ``ours``: the previous
    manifest, when this code wrote it (the manifest's text is then made from its own);
    ``cache_keys``: each event's cache key, when the build keeps the per-event store;
    ``meanwhile``: what the build does while it would wait for the step beside (or after
    the steps, without one): the per-event store's entries written, which were put while
    the workers kept both cores busy (:meth:`EventCache.put`)."""
    keyed = context
    context = dataclasses.replace(context, notes=notes, files=artifacts, keys=cache_keys or {})
    # What was worked out for the keys (the order of the events) holds for the same site and
    # day; the whole steps use it instead of working it out again. Not what a compiler made
    # for itself (:meth:`BuildContext.shared`, the pages' renderer): it holds the context it
    # was made with, and would work out again, in that one's memory, what the steps here
    # work out in this one's (whether each event is in each collection: every membership
    # twice). The whole steps place the events by their notes, not by how the keys found
    # them listed.
    context._memo.update((k, v) for k, v in keyed._memo.items() if not k.startswith(_SHARED_MEMO))
    outputs: dict[str, tuple[str, str, int]] = {}
    with markdown.memoised():
        # The first step (the calendars) runs in a forked process, beside the others here.
        beside = (
            _Aside.start(steps[0], context, artifacts, reuse, base, previous, previous_out)
            if aside
            else None
        )
        for step in steps:
            if beside is not None and step is beside.step:
                continue
            _whole_step(step, context, artifacts, outputs, reuse, base, previous, previous_out)
            # A step's notes are for its own whole step, which has now run: its files are made,
            # or taken from the last build and made again, if need be, from what the whole
            # step itself holds. They are dropped before the next step runs.
            notes.pop(step.name, None)
        # The manifest's events are known: written out now, while the calendars are made
        # beside if they are, which take the longer (with 100,000 events, the manifest's
        # text took about a second after them, on one core). So are the files made so far:
        # their digests and their lines in the manifest, and the memos are let go of
        # (below), while the calendars are made.
        head = manifest_head(context.as_of, history, ours)
        early: dict[str, str] | None = None
        listed = None
        if meanwhile is not None:
            meanwhile()
        if beside is not None:
            _let_go(context, keyed)  # first: what they held is freed before the lines are made
            early = {path: artifacts.digest(path) for path in artifacts}
            # (the last manifest's text of the files is taken when it names the same ones:
            # then no line is spelled but the few of the files changed)
            if ours is None or not early.keys() <= ours.files.keys():
                listed = files_listed(early)
            if not beside.finish(artifacts, outputs):  # then made here
                _whole_step(
                    beside.step, context, artifacts, outputs, reuse, base, previous, previous_out
                )
            notes.pop(beside.step.name, None)
    # What the steps worked out (the renderers among it) is held by the contexts' memos, and
    # holds the contexts: a cycle that only the collector, which seldom walks the oldest
    # objects, would free. Broken here, the loaded site and what was worked out of it go as
    # soon as the caller lets go of the site (a file made again, below, works it out again),
    # unless files are taken from the previous out/: those hold them, to be made again if
    # the previous out/ changed under the build.
    _let_go(context, keyed)
    if reuse is not None:
        reuse.save_outputs(outputs)
        reuse.save_zones(base, vtimezone.KNOWN)
    if early is None:
        digests = {path: artifacts.digest(path) for path in artifacts}
    else:  # (the calendars' files come last, as they were added)
        digests = early
        digests.update((p, artifacts.digest(p)) for p in artifacts if p not in early)
    manifest = Manifest(as_of=context.as_of, events=history, files=digests)
    artifacts.add_parts(paths.MANIFEST, functools.partial(manifest.parts, head, listed, ours))
    artifacts.manifest_files = digests
    if reuse is not None:  # every entry is now this build's (:func:`_keys`)
        reuse.mark(made_for(base, artifacts.digest(paths.MANIFEST)))


def _wants_second(
    reuse: EventCache | None, previous: Manifest | None, previous_out: Path | None
) -> bool:
    """Whether the workers link what they stage into a second tree (:attr:`Artifacts.
    wants_second`): into an out/ without a manifest (a first build), the writer takes the
    staging tree as out/ and has no spare tree to keep; the workers then make one as they
    stage, for the next build (:func:`eventfeed.write.keep_second`)."""
    return reuse is not None and previous is None and previous_out is not None and spares_kept()


def _placed(
    event_id: str,
    parts: Made,
    artifacts: Artifacts,
    notes: dict[str, dict[str, object]],
    before: tuple[Path, _Remake] | None,
) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[str, int]]]:
    """What the per-event steps made of one event, compiled by a worker or here: its files
    into ``artifacts`` (:meth:`Artifacts.update_from`) and its notes into ``notes``. Returns
    its files' digests and sizes, as its store entry keeps them, and the files made as
    before that ``before`` was not there to place."""
    files: dict[str, tuple[str, int]] = {}
    later: dict[str, tuple[str, int]] = {}
    for name, (own, note) in parts.items():
        later.update(artifacts.update_from(own, before))
        notes[name][event_id] = note
        files.update((p, _sized(d)) for p, d in own.items())
    return files, later


def _let_go(*contexts: BuildContext) -> None:
    """Clear what the contexts worked out (:func:`_whole` says why)."""
    for context in contexts:
        context._memo.clear()


def made_for(base: str, manifest: str) -> str:
    """What the per-event store's entries are marked as made for (:meth:`EventCache.mark`):
    the build's base and the digest of the manifest it wrote, whose history of each event
    gave the entry's state key."""
    return f"{short_digest(base)}:{manifest}"


def _whole_step(
    step: Compiler,
    context: BuildContext,
    artifacts: Artifacts,
    outputs: dict[str, tuple[str, str, int]],
    reuse: EventCache | None,
    base: str,
    previous: Manifest | None,
    previous_out: Path | None,
) -> None:
    """One whole step's files into ``artifacts``: each taken from the previous build when
    it made the file under the same key (:class:`_Known`), else made (large ones straight
    to disk); the keys into ``outputs``. What the step gave is let go of on return (the
    pages: a hundred megabytes with 100,000 events), unless a file taken from the previous
    build holds it, to be made again if need be."""
    made_whole = step.whole(context)
    if not isinstance(made_whole, Lazy):
        artifacts.update_from(made_whole)
        return
    made: list[str] = []
    begun: list[str] = []  # made last, their work begun beside
    keys: list[tuple[str, str]] = []
    for path in sorted(made_whole):
        key = made_whole.key(path) if reuse is not None else None
        if key is not None:
            key = event_key(base, [step.name, path, key])
            keys.append((path, key))
        known = reuse.output(path, key) if reuse is not None and key is not None else None
        if (
            known is not None
            and previous is not None
            and previous_out is not None
            and previous.files.get(path) == known[0]
        ):
            again = functools.partial(made_whole.__getitem__, path)
            source = _in(previous_out, path)
            artifacts.add_known(path, _Known(known[0], known[1], source, again))
        else:
            (begun if made_whole.begin(path) else made).append(path)
    for path in [*made, *begun]:
        artifacts.add_parts(path, functools.partial(made_whole.parts, path))
    outputs.update(
        (path, (key, artifacts.digest(path), artifacts.size(path))) for path, key in keys
    )


class _Aside:
    """A whole step run in a forked process while this one runs the others: the calendars
    and the pages each take about half of the whole steps, which otherwise leave the
    second core idle. The process sends back where each file it made is (large ones in a
    spill file of its own, :class:`Spilled`; small ones as bytes), which it took from the
    previous build (:class:`_Known`) and the keys; anything wrong there (an error of the
    step, a process that cannot start or dies) and the step is run here instead, with the
    same outcome."""

    def __init__(
        self, step: Compiler, context: BuildContext, process: BaseProcess, receive: Connection
    ) -> None:
        self.step = step
        self.context = context
        self._process = process
        self._receive = receive

    @classmethod
    def start(
        cls,
        step: Compiler,
        context: BuildContext,
        artifacts: Artifacts,
        reuse: EventCache | None,
        base: str,
        previous: Manifest | None,
        previous_out: Path | None,
    ) -> _Aside | None:
        """The process started; None where it cannot be (no fork): the caller then runs the
        step itself."""
        if "fork" not in multiprocessing.get_all_start_methods():
            return None
        fork = multiprocessing.get_context("fork")
        receive, send = fork.Pipe(duplex=False)
        folder = artifacts.spill_folder()
        tree = artifacts.staging
        args = (send, step, context, folder, tree, reuse, base, previous, previous_out)
        process = fork.Process(target=_aside_files, args=args, daemon=True)
        try:
            process.start()
        except OSError:
            receive.close()
            send.close()
            return None
        send.close()
        return cls(step, context, process, receive)

    def finish(self, artifacts: Artifacts, outputs: dict[str, tuple[str, str, int]]) -> bool:
        """What the process made, into ``artifacts`` and ``outputs``; False when it made
        nothing (the caller runs the step)."""
        try:
            try:
                sent = self._receive.recv()
            except (EOFError, OSError):
                return False
        finally:
            self._receive.close()
            self._process.join()
        if sent is None:
            return False
        files, keys, zones = sent
        for path, value in files:
            if isinstance(value, tuple):  # taken from the previous build there
                digest, size, source = value
                again = functools.partial(_whole_file, self.step, self.context, path)
                artifacts.add_known(path, _Known(digest, size, source, again))
            elif isinstance(value, (Spilled, Staged)):
                artifacts.add_known(path, value)
            else:
                artifacts.add(path, value)
        outputs.update(keys)
        vtimezone.KNOWN.update(zones)
        return True


def _aside_files(
    send: Connection,
    step: Compiler,
    context: BuildContext,
    folder: str,
    tree: str | None,
    reuse: EventCache | None,
    base: str,
    previous: Manifest | None,
    previous_out: Path | None,
) -> None:
    """In the forked process of :class:`_Aside`: the step's files made into a spill file of
    this process's own in ``folder`` (the build's), or, when the build has one, into the
    staging ``tree`` at their own paths, and sent back (where they are)."""
    known = set(vtimezone.KNOWN)
    made = Artifacts(folder, spill_bytes=ASIDE_SPILL_BYTES)
    made.staging = tree
    outputs: dict[str, tuple[str, str, int]] = {}
    try:
        _whole_step(step, context, made, outputs, reuse, base, previous, previous_out)
    except Exception:  # the parent runs the step again, and reports what it raises
        send.send(None)
        send.close()
        return
    files: list[tuple[str, bytes | Spilled | Staged | tuple[str, int, str]]] = []
    for path, value in made._files.items():
        if isinstance(value, _Known):  # its remaking cannot be sent: the parent remakes it
            files.append((path, (value.digest, value.size, value.source)))
        else:
            assert isinstance(value, (bytes, Spilled, Staged))
            files.append((path, value))
    zones = {k: v for k, v in vtimezone.KNOWN.items() if k not in known}
    send.send((files, outputs, zones))
    send.close()


def _whole_file(step: Compiler, context: BuildContext, path: str) -> bytes:
    """One file of a whole step, made again: the step is run once in this process, however
    many of its files are asked for (each calendar of a previous out/ that lost them all,
    at 100,000 events, ran the calendars' step again: hours)."""
    return context.shared("whole step: " + step.name, step.whole)[path]


def _reused(
    steps: list[Compiler],
    context: BuildContext,
    order: list[Event],
    keys: Mapping[str, Keyed],
    reuse: EventCache,
    previous: Manifest,
    previous_out: Path,
    artifacts: Artifacts,
    notes: dict[str, dict[str, object]],
) -> list[Event]:
    """Take from the previous build every event whose key is unchanged and whose files the
    previous manifest names with the stored digests: its files into ``artifacts`` (read from
    ``previous_out``, or made again), its notes into ``notes``. Returns the other events, to
    be compiled."""
    todo = []
    entries = reuse.entries
    old = previous.files
    for event in order:
        entry = entries.get(event.id)
        keyed = keys.get(event.id)
        if entry is None or keyed is None or entry.key != keyed[1]:
            todo.append(event)
            continue
        files = entry.files
        for path, (digest, _) in files.items():
            if old.get(path) != digest:
                todo.append(event)
                break
        else:
            artifacts.add_reused(files, previous_out, _Remake(steps, context, event))
            for name, note in entry.notes.items():
                notes[name][event.id] = note
    return todo


def _in(folder: str | Path, path: str) -> str:
    """A path of out/ (``a/b.html``) in ``folder``, as the system names it."""
    return _folder_name(folder) + os.sep + (path if os.sep == "/" else path.replace("/", os.sep))


@functools.lru_cache(maxsize=4)
def _folder_name(folder: str | Path) -> str:
    return os.fspath(folder).rstrip(os.sep)  # the root folder: ""


def _base(context: BuildContext, steps: list[Compiler]) -> str:
    """What every key of a build shares: eventfeed and its libraries, and the settings."""
    from .cache import _code_digest

    return "\0".join([_code_digest(), context.settings.model_dump_json(), *(s.name for s in steps)])


#: An event's state key (:func:`state_key`), cache key and the days that key holds on
#: (:func:`_keyed`).
Keyed = tuple[str, str, str]

_STATE_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(EventState)))


def state_key(base: str, event_id: str, state: EventState) -> str:
    """What an event is in a build: ``base`` (:func:`_base`: eventfeed and the settings) and
    the event's history, whose content digest covers the whole record."""
    return event_key(base, [event_id, *map(str, _STATE_FIELDS(state))])


def _keyed(context: BuildContext, steps: list[Compiler], base: str, event: Event) -> Keyed:
    """An event's state key, its cache key (the state key and what each compiler's ``key``
    adds: what the build's day changes of the event's files, such as whether it is still
    coming) and the days that key holds on (:func:`key_days`)."""
    state = state_key(base, event.id, context.history[event.id])
    return (state, *_key(context, steps, base, event, state))


def _key(
    context: BuildContext, steps: list[Compiler], base: str, event: Event, state: str
) -> tuple[str, str]:
    extra = []
    until: date | None = None
    for step in steps:
        if step.key is not None:
            part, last = step.key(context, event)
            extra.append(part)
            if last is not None and (until is None or last < until):
                until = last
    return event_key(base, [state, *extra]), key_days(context.as_of, until)


def key_days(as_of: date, until: date | None) -> str:
    """The days an event's key worked out on ``as_of`` holds on, as the store keeps them
    (:func:`eventfeed.days.span`): from that day up to ``until`` (the earliest day the
    compilers' keys give; None: every later day). Not before that day: builds go forward in
    time, and an earlier day is worked out again."""
    return days.span(as_of, until)


def _keys(
    context: BuildContext,
    steps: list[Compiler],
    order: list[Event],
    base: str,
    entries: Mapping[str, Entry],
    kept: Mapping[str, EventState] | None = None,
) -> dict[str, Keyed]:
    """The keys of each event whose entry in the store was made for the same state key: the
    others cannot have the same key (it digests the state key), so they are compiled, and
    keyed where they are (with 100,000 events, after an upgrade of eventfeed or a change of
    the settings: all of them). The compilers' keys depend on nothing but the event, the
    settings and the day: an entry made for the same state, on a day its key holds on
    (:func:`key_days`), has the key this build would work out, and it is taken without
    asking the compilers, which would work out how every event is listed again (with
    100,000 events, most of the keys' 5 s; on the first build of a day, 2.5-3.0 s when the
    entries held for that day only).

    ``kept``: the history of the manifest every entry was made for (the store's mark), when
    it is the previous build's: an event whose history is that very state has the entry's
    state key, which is not worked out again (with 100,000 events, about half a second)."""
    day = context.as_of.isoformat()
    history = context.history
    same = kept if kept is not None else {}
    keys = {}
    # whether each span kept holds on the day, looked at once (events share a few thousand)
    holds: dict[str, bool] = {}
    for event in order:
        entry = entries.get(event.id)
        if entry is None:
            continue
        now = history[event.id]
        # (the history keeps an unchanged event's very state)
        state = entry.state if same.get(event.id) is now else state_key(base, event.id, now)
        if entry.state != state:
            continue
        held = holds.get(entry.days)
        if held is None:
            held = holds[entry.days] = days.within(entry.days, day)
        if held:
            keys[event.id] = (state, entry.key, entry.days)
        else:
            keys[event.id] = (state, *_key(context, steps, base, event, state))
    return keys


def _again(steps: list[Compiler], context: BuildContext, event: Event, path: str) -> bytes:
    """One file of one event, compiled again."""
    for own, _ in _each(steps, context, [event])[0].values():
        if path in own:
            return own[path]
    raise KeyError(path)


#: What the per-event steps made of one event, by compiler name.
Made = dict[str, EventPart]


def _each(steps: list[Compiler], context: BuildContext, events: list[Event]) -> list[Made]:
    made = []
    for event in events:
        with markdown.memoised():  # each body is rendered once, whichever steps show it
            made.append({s.name: s.each(context, event) for s in steps if s.each is not None})
    return made


#: The base of the keys (:func:`_base`) and the keys already worked out (:func:`_keys`).
_Keying = tuple[str, Mapping[str, Keyed]]

#: The build a forked worker serves: set before the workers are forked, which inherit it.
_Shared = tuple[
    list[Compiler],
    BuildContext,
    list[Event],
    str,
    str,
    _Keying | None,
    "_Lock | None",  # (a name for type checking only)
    Mapping[str, str] | None,
    str | None,
]
_SHARED: _Shared | None = None
#: How long a worker waits for the other to finish creating its files (:func:`_each_chunk`)
#: before it creates its own anyway: a chunk's files take well under a second to create, and
#: a worker that died holding the lock does not stop the other.
WRITE_WAIT = 2.0

#: How many bytes of files each forked worker writes as files of their own into the staging
#: tree; the rest go into its spill file, copied into the tree by another process while the
#: whole steps run (:meth:`Artifacts.stage_spilled`), which then leave that process the
#: second core. A staged file costs a worker its creation; a spilled one, its bytes written
#: twice and the copy's core. With 100,000 events (2.8 GB of files, 1.4 GB a worker), staging
#: every file left the workers' part as it was on a 2-core machine and made the cold build
#: 12-14 s faster (two alternated rounds: 83.6 / 81.4 s against 95.4 / 95.7 s): no copy, and
#: the calendars beside the other whole steps. A disk that does few
#: operations a second holds back workers that create many files (measured once, with larger
#: pages and without the workers' lock: 20 s slower on a cloud disk); the cap keeps a site
#: far larger than that from finding it out.
STAGE_BYTES = 2 << 30


def _each_forked(
    steps: list[Compiler],
    context: BuildContext,
    events: list[Event],
    jobs: int,
    artifacts: Artifacts,
    take: Callable[[Iterable[tuple[Event, tuple[Made, Keyed | None]]]], None],
    keying: _Keying | None = None,
    old: Mapping[str, str] | None = None,
) -> int:
    """The per-event steps shared out among ``jobs`` forked workers, in chunks, each chunk
    given to ``take`` as it comes back (in the order of ``events``). Returns how many events
    (the first ones) were taken: all of them, unless the workers cannot run (no fork here, a
    worker killed); then the caller does the rest alone.

    Workers write the files they make into the staging tree of ``artifacts``
    (:meth:`Artifacts.staging_tree`), each at its own path, up to :data:`STAGE_BYTES`, then
    into a spill file of their own in its spill folder, and send back where they are. With
    ``keying``, they key each event not keyed yet (:func:`_keyed`): how it is listed, which
    its page needed, is at hand there. A file whose digest ``old`` (the previous manifest's
    files) names for its path is neither staged nor spilled (:class:`AsBefore`).
    """
    global _SHARED
    tree, folder = artifacts.staging_tree(), artifacts.spill_folder()
    second = artifacts.second_tree()
    _serve((steps, context, events, tree, folder, keying, _writing_lock(), old, second))
    # What the workers inherit (the loaded site, above all) is moved out of the collector's
    # sight: a collection in a worker would otherwise walk every inherited object, and so
    # touch, and copy, nearly every page of the parent's memory. (:func:`compile_site`
    # gives it back to the collector when the build is done.)
    gc.freeze()
    done = 0
    try:
        for start, end, part in chunks_done(_each_chunk, len(events), jobs, least=50, most=BATCH):
            take(zip(events[start:end], part, strict=True))
            done = end
    finally:
        _SHARED = None
    return done


def _serve(shared: _Shared) -> None:
    """Set the build that forked workers are to serve (:data:`_SHARED`), with a fresh count
    of what each stages: before they are forked, which inherit it."""
    global _SHARED
    _SHARED = shared
    _STAGED_FOLDERS.clear()
    _STAGED[0] = 0
    _SECOND[0] = True


#: The folders of staging trees this worker has made (or found), and how many bytes it has
#: staged in this build.
_STAGED_FOLDERS: set[str] = set()
_STAGED = [0]


def _writing_lock() -> _Lock | None:
    """What the forked workers take in turn to create their files (:func:`_each_chunk`);
    None where the system has no such lock to share (they then create them at once)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    try:
        return multiprocessing.get_context("fork").Lock()
    except (ImportError, OSError):  # no shared semaphores here
        return None


def _each_chunk(bounds: tuple[int, int]) -> list[tuple[Made, Keyed | None]]:
    """A chunk of the events of :data:`_SHARED` (:func:`_made_here`)."""
    assert _SHARED is not None
    return _made_here(_SHARED[2][bounds[0] : bounds[1]])


def _made_here(chunk: list[Event]) -> list[tuple[Made, Keyed | None]]:
    """In a forked worker, the per-event steps of the build of :data:`_SHARED` for ``chunk``:
    each file written to the staging tree as its own file, or, past :data:`STAGE_BYTES`, to
    this worker's spill file; with each event, its keys when asked for.

    The files of a chunk are created while this worker holds the workers' lock: two processes
    creating files in one folder at the same moment contend for it inside the kernel, which
    spins (10,000 files of 18 kB each, by each of two processes into one folder: 0.8 s of
    CPU time each, against 0.3 s one after the other). While one creates its files, the
    other compiles.

    A path the writer would refuse (:func:`eventfeed.write.check_artifact_path`) is kept in
    memory instead, to be refused there, with the build's error."""
    assert _SHARED is not None
    steps, context, _, tree, folder, keying, lock, old, second = _SHARED
    made = _each(steps, context, chunk)
    keyed: list[Keyed | None] = [None] * len(chunk)
    if keying is not None:
        base, keys = keying
        keyed = [keys.get(e.id) or _keyed(context, steps, base, e) for e in chunk]
    spill = Path(folder, f"{os.getpid()}.spill")
    asked = held = False
    try:
        with open(spill, "ab") as handle:
            for parts in made:
                for name, (own, note) in parts.items():
                    placed: dict[str, bytes | Spilled | Staged | AsBefore] = {}
                    for path, data in own.items():
                        digest = file_digest(data)
                        if old is not None and old.get(path) == digest:
                            placed[path] = AsBefore(digest, len(data))
                        elif _STAGED[0] < STAGE_BYTES:
                            if not asked and lock is not None:
                                asked, held = True, lock.acquire(timeout=WRITE_WAIT)
                            placed[path] = _stage(tree, path, data, digest, second)
                            _STAGED[0] += len(data)
                        else:
                            offset = handle.tell()
                            handle.write(data)
                            placed[path] = Spilled(digest, len(data), spill, offset)
                    parts[name] = (cast(Mapping[str, bytes], placed), note)
    finally:
        if held:
            assert lock is not None
            lock.release()
    return list(zip(made, keyed, strict=True))


def _stageable(path: str) -> bool:
    """Whether a file may be written at ``path`` in the staging tree: a path the writer would
    refuse (:func:`eventfeed.write.check_artifact_path`) is kept elsewhere, to be refused
    there, with the build's error."""
    try:
        check_artifact_path(path)
    except OutputError:
        return False
    return True


def _stage(
    tree: str, path: str, data: bytes, digest: str, second: str | None = None
) -> bytes | Staged:
    """Write a file into the staging ``tree`` at its own path and, with ``second``, link it
    into that second tree as well (best effort: that tree is only ever a spare, see
    :func:`_second_name`)."""
    if not _stageable(path):
        return data
    parts = path.split("/")
    _made(os.path.join(tree, *parts[:-1]))
    target = os.path.join(tree, *parts)
    write_file(target, data)
    if second is not None and _SECOND[0]:
        _second_name(target, second, parts)
    return Staged(digest, len(data))


#: Whether this worker still links what it stages into the second tree: its first failure
#: there (no hard links on this file system, say) ends that, and the build goes on.
_SECOND = [True]


def _second_name(target: str, second: str, parts: list[str]) -> None:
    """Link a staged file into the second tree (:meth:`Artifacts.second_tree`). The writer
    trusts nothing in a spare but a file that is out/'s own (the same inode), so a file
    missing there is only written by the next build, not wrong."""
    try:
        _made(os.path.join(second, *parts[:-1]))
        os.link(target, os.path.join(second, *parts))
    except OSError:
        _SECOND[0] = False


def _made(folder: str) -> None:
    """Make ``folder`` (and its parents), unless this worker has made or found it already."""
    if folder not in _STAGED_FOLDERS:
        os.makedirs(folder, exist_ok=True)
        _STAGED_FOLDERS.add(folder)


def _copy_to_tree(tree: str, moves: list[tuple[str, Spilled]]) -> None:
    """In a forked process: each spilled file copied to its path in the staging tree (inside
    the kernel where it can). Any failure ends the process with an error, and the build keeps
    the files spilled (a file left half-written here is written again by the writer)."""
    folders: set[str] = set()
    spills: dict[Path, int] = {}
    try:
        for path, spilled in moves:
            folder = os.path.join(tree, *path.split("/")[:-1])
            if folder not in folders:
                os.makedirs(folder, exist_ok=True)
                folders.add(folder)
            target = os.path.join(tree, *path.split("/"))
            if not copy_spilled(spilled, target, spills):
                write_file(target, spilled.data())
    finally:
        for fd in spills.values():
            os.close(fd)


def _sized(value: bytes | Spilled | Staged | AsBefore) -> tuple[str, int]:
    if isinstance(value, (Spilled, Staged, AsBefore)):
        return value.digest, value.size
    return file_digest(value), len(value)
