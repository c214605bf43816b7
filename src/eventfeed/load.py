"""The loader: the only code that reads user files.

``load`` reads the settings and every record, validates them, and returns every problem found
in one pass. ``load_site`` is the same for callers that need a clean site or nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import gc
import hashlib
import marshal
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import checks
from .cache import Listed, read_head, scan_started
from .errors import Problem, ProblemsFound, Severity, errors_in
from .event import Event
from .frontmatter import MAX_FILE_BYTES, FrontMatterError, KeyPath, read_document, read_yaml_file
from .model import WINDOWS_DEVICES, Record, Settings, is_slug
from .recordstore import (
    BRIEF,
    ID_LINE,
    PACKED_LINES,
    PACKED_RECORD,
    PACKED_REST,
    REST_FETCH,
    Opened,
    RecordStore,
    days_held,
    open_rest,
    pack,
    prefetch,
    unpack,
    unpack_record,
)
from .state import content_digests
from .workers import chunks_done

if TYPE_CHECKING:  # (the build imports this module)
    from .build import Ahead, Keyed, Made

M = TypeVar("M", bound=BaseModel)
#: a record file's path: the loader keeps it as text
FilePath = str | os.PathLike[str]

SETTINGS_FILE = "site.yaml"
#: Files in the events folder that are not records.
IGNORED_NAMES = frozenset({"README.md"})
MAX_RECORDS = 200_000


@dataclass(frozen=True)
class Site:
    """Everything a build needs: valid settings and valid events (sorted by id)."""

    settings: Settings
    events: tuple[Event, ...]
    warnings: tuple[Problem, ...] = ()
    #: the events folder as the records' names show it (:func:`display_path`): each event's
    #: ``source`` is its path below the folder after it (:func:`eventfeed.state.below`)
    root: str = "."
    #: with a record store: the digest of each record's bytes (:func:`eventfeed.cache.
    #: record_key`) the site was made of, by the path read, for the no-change check
    #: (:meth:`eventfeed.cache.Fingerprint.loaded`), which then need not read them again
    record_keys: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Loaded:
    settings: Settings | None = None
    events: list[Event] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    record_keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordFile:
    """One record file read, parsed and validated: what it says on its own.

    It depends on the file's bytes and name only (and the zone database the model checks zones
    against), never on the settings, so it can be kept across builds while the file is unchanged.

    One read back from the record store (:func:`eventfeed.recordstore.unpack`) holds its
    :attr:`record`, :attr:`body` and :attr:`lines` still packed (its rest, or only where to
    read it), with the line of its id and the brief of the record that every build asks for
    (:class:`eventfeed.event.Brief`) beside them: a rebuild's loader needs no other line
    unless two records clash, and the event made of it (:func:`_event_of`) makes the record
    and body only when a compiler asks for more. Each is made on first use. (Hence no slots:
    an attribute not set yet is one of the instance's dictionary.)
    """

    #: the path as the user names it, for messages (``events/2022/x.md``)
    source: str
    #: the record's id: its ``id`` field, else the file name without ``.md``
    id: str
    record: Record
    body: str
    #: line of every key path, for messages
    lines: dict[KeyPath, int]
    #: line of the opening ``---``
    first_line: int

    def __getattr__(self, name: str) -> Any:
        # Reached only for an attribute not set: the body, lines or record of one still packed.
        state = self.__dict__
        if name in _IN_REST and (PACKED_REST in state or REST_FETCH in state):
            open_rest(self)  # the body made, the record and lines ready to be made
            return getattr(self, name)
        late = _MADE_LATE.get(name)
        packed = state.get(late[0]) if late is not None else None
        if late is None or packed is None:
            raise AttributeError(name)
        value = late[1](packed)
        object.__setattr__(self, name, value)
        return value

    @property
    def id_line(self) -> int:
        """The line of its ``id`` field (1 when it has none), for the clash messages."""
        known = self.__dict__.get(ID_LINE)
        return known if type(known) is int else self.lines.get(("id",), 1)


#: what a record read back packed makes on first use: where it keeps it packed, and how
#: it is made (:class:`RecordFile`)
_MADE_LATE: dict[str, tuple[str, Callable[[bytes], Any]]] = {
    "record": (PACKED_RECORD, unpack_record),
    "lines": (PACKED_LINES, marshal.loads),
}
#: what a record read back packed keeps in its rest, unopened (:func:`open_rest`)
_IN_REST = frozenset({"record", "body", "lines"})


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return (
            Path(os.path.relpath(path)).as_posix()
            if not os.path.relpath(path).startswith("..")
            else path.as_posix()
        )
    except ValueError:  # another drive on Windows
        return path.as_posix()


def printable(text: str) -> str:
    """Text safe to print as one line: controls, line breaks and undecodable bytes escaped.

    File names and values come from records; a name or value holding a line break must not be
    able to forge another line of the report (``events/x.md:1: ...``).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _printable(problem: Problem) -> Problem:
    texts = (problem.path, problem.field, problem.message, problem.hint)
    if all(text.isprintable() for text in texts):
        return problem  # nearly always: a copy of each of 10,000 warnings costs a second
    return dataclasses.replace(
        problem,
        path=printable(problem.path),
        field=printable(problem.field),
        message=printable(problem.message),
        hint=printable(problem.hint),
    )


def load(
    events_dir: Path,
    *,
    today: date | None = None,
    store: RecordStore | None = None,
    listed: Listed | None = None,
    digests: bool = False,
    ahead: Ahead | None = None,
) -> Loaded:
    """Read and check everything; ``today`` quiets warnings that only matter for coming events.

    With ``store``, records parsed by an earlier load from the same bytes are taken from it,
    and the records parsed now are kept in it (:mod:`eventfeed.recordstore`). ``listed``:
    the record files, and their metadata, as the no-change check found them just before
    (:meth:`eventfeed.cache.Fingerprint.listed`), taken instead of looking again. With
    ``digests`` (or a store), each event keeps the digests of its content and schedule that
    a build's history compares (:func:`eventfeed.state.content_digests`), worked out where
    its record was checked. With ``ahead``, the workers that check the records compile
    their events too (:class:`eventfeed.build.Ahead`).
    """
    with collector_paused():
        result = _load(events_dir, today, store, listed, digests or store is not None, ahead)
    result.problems = [_printable(p) for p in result.problems]
    return result


@contextlib.contextmanager
def collector_paused(*, frozen: bool | None = None) -> Iterator[None]:
    """Pause the cycle collector while records load (or a store is read back).

    Loading makes millions of small objects and keeps most of them, so the collector would walk
    the growing heap again and again and find nothing (about a tenth of the load's time at
    10,000 records). Reference counting frees everything as usual; the collector resumes after.

    What was made meanwhile is then moved out of the young generation without a pass over
    it: resuming, the collector would at once walk all of it as young, and find nothing (at
    10,000 records, 30 ms for the loaded site; at 100,000 events, 0.47 s for the per-event
    store opened during a build). When nothing is frozen, freezing and unfreezing move it to
    the oldest generation at once, and the collector's next full pass looks at it as at
    everything else. When something is frozen already (a build keeps the loaded site from
    the collector, :func:`eventfeed.pipeline.compile_into`), unfreezing would give that back
    too, so what was made joins it instead, and is given back with it. ``frozen`` says
    whether something is, when the caller knows: asking the collector walks every frozen
    object (at 100,000 events, 20 ms each time).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if frozen is None:
                frozen = gc.get_freeze_count() != 0
            gc.freeze()
            if not frozen:
                gc.unfreeze()
            gc.enable()


def _load(
    events_dir: Path,
    today: date | None,
    store: RecordStore | None,
    listed: Listed | None,
    with_digests: bool,
    ahead: Ahead | None = None,
) -> Loaded:
    result = Loaded()
    # before any record's metadata is taken (by the no-change check, when it listed them)
    started = listed.started if listed is not None else scan_started()
    root = events_dir
    if not root.is_dir():
        result.problems.append(
            Problem(
                display_path(root),
                0,
                "",
                "events folder not found",
                hint="pass --events DIR or run from the repository root",
            )
        )
        return result
    result.settings = _load_settings(root / SETTINGS_FILE, result.problems)
    infos: dict[str, os.stat_result] = {}
    if listed is not None:
        files = _listed_paths(root, listed, infos)
    else:
        files = _record_paths(root, result.problems)
    if len(files) > MAX_RECORDS:
        result.problems.append(
            Problem(
                display_path(root),
                0,
                "",
                f"{len(files):,} records, over the limit of {MAX_RECORDS:,}",
                hint="split the events into several sites",
            )
        )
        return result
    by_id: dict[str, Event] = {}
    by_uid: dict[str, Event] = {}
    keys = result.record_keys
    #: line of 'id' (or of the front matter) in each kept record, for the clash messages
    id_lines: dict[str, int] = {}
    settings = result.settings
    settings_digest = ""
    if settings is not None and store is not None:
        settings_digest = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()
    day = today.isoformat() if today is not None else ""
    # Shared out among forked workers when the records to settle are many: a worker sends
    # a record back packed, as the store keeps it, and the event made of it here leaves it
    # packed until a compiler asks for more. Otherwise each record is read, settled and let
    # go of in turn. A record is to settle when the store (if any) does not have it, or has
    # not checked it under these settings on this day (after a change of the settings:
    # every record).
    pending: Iterable[_Pending] = (
        _gather(path, shown, name, store, settings_digest, day, started, infos.pop(path, None))
        for path, shown, name in files
    )
    if store is not None:
        store.expect([name for _, _, name in files])
    gathered, many = _looked_up(pending)
    # the records kept whose checks are to run again (after new settings: every one) read
    # their rests many at a time, before the workers are forked
    prefetch(item.found for item in gathered if item.found is not None and _unsettled(item))
    pairs: Iterable[tuple[_Pending, _Settled]]
    if many:
        ahead_of = (ahead, display_path(root)) if ahead is not None else None
        settled = _settled(gathered, settings, today, store, with_digests, ahead_of)
        pairs = zip(gathered, settled, strict=True)
    else:
        pairs = (
            (item, _settle(item, settings, today, store, with_digests, ship=False))
            for item in gathered
        )
    for item, done in pairs:
        # What the store had for it; the item lets go of it (the parsed record holds the line
        # of every key, which the event does not need), so that it is freed with the record.
        found, known = item.found, item.checked
        item.raw = item.found = item.checked = None
        if item.problems is not None:
            result.problems.extend(item.problems)
            continue
        parsed, problems, digests, key, days = done
        if isinstance(parsed, bytes):  # parsed by a worker, and sent as the store keeps it
            blob, parsed = parsed, unpack(parsed)
            if parsed is None:
                raise RuntimeError(f"{item.shown}: a worker sent a record that does not unpack")
        else:
            blob = None
        if isinstance(parsed, list):
            result.problems.extend(parsed)
            continue
        if parsed is None:
            parsed = found
        assert parsed is not None
        if store is not None:
            keys[os.fspath(item.path)] = key
            derived = (settings_digest, digests, days, problems) if digests else None
            if found is None:
                store.put(item.name, key, blob or parsed, derived, item.signature)
            elif derived is not None and (item.kept is None or known is None):
                store.put_derived(item.name, *derived)
        if settings is None:
            continue  # nothing more can be checked without the settings
        result.problems.extend(problems)
        event = _event_of(parsed, settings)
        if digests is not None:
            event.keep_digests(digests)
        id_line = parsed.id_line
        other = by_id.get(event.id)
        if other is not None:
            result.problems.append(
                Problem(
                    event.source,
                    id_line,
                    "id",
                    f"id '{event.id}' is already used by {other.source}",
                    hint="give one of the two records another id (or file name)",
                )
            )
            result.problems.append(
                Problem(
                    other.source,
                    id_lines[other.source],
                    "id",
                    f"id '{event.id}' is also used by {event.source}",
                    hint="give one of the two records another id (or file name)",
                )
            )
            continue
        # An imported uid may equal another record's uid (imported or derived): clients would
        # merge the two events into one. Compared without case, as some clients do.
        uid_key = event.uid.casefold()
        twin = by_uid.get(uid_key)
        if twin is not None:
            result.problems.append(
                Problem(
                    event.source,
                    parsed.lines.get(("uid",), id_line),
                    "uid",
                    f"calendar UID '{event.uid}' is already used by {twin.source}",
                    hint="remove 'uid' from one of the two records, or give it another value",
                )
            )
            continue
        by_id[event.id] = event
        by_uid[uid_key] = event
        id_lines[event.source] = id_line
        if ahead is not None:
            ahead.loaded(event)
    if store is not None:
        store.save()
    result.events = sorted(by_id.values(), key=lambda e: e.id)
    return result


def load_site(
    events_dir: Path,
    *,
    strict: bool = False,
    today: date | None = None,
    store: RecordStore | None = None,
    listed: Listed | None = None,
    ahead: Ahead | None = None,
) -> Site:
    loaded = load(events_dir, today=today, store=store, listed=listed, digests=True, ahead=ahead)
    failing = loaded.problems if strict else errors_in(loaded.problems)
    if failing or loaded.settings is None:
        raise ProblemsFound(loaded.problems)
    warnings = tuple(p for p in loaded.problems if p.severity is Severity.WARNING)
    return Site(
        settings=loaded.settings,
        events=tuple(loaded.events),
        warnings=warnings,
        root=display_path(events_dir),
        record_keys=loaded.record_keys,
    )


def _record_files(root: Path, problems: list[Problem]) -> list[Path]:
    """Every record file under ``root``, sorted by path."""
    return [path for path, _ in _record_files_shown(root, problems)]


def _record_files_shown(root: Path, problems: list[Problem]) -> list[tuple[Path, str]]:
    """Every record file under ``root`` with its name as shown, sorted by path."""
    return [(Path(path), shown) for path, shown, _ in _record_paths(root, problems)]


def _record_paths(root: Path, problems: list[Problem]) -> list[tuple[str, str, str]]:
    """Every record file under ``root`` with its name as shown and its path below ``root``
    (``/`` between names), sorted by path; the paths as text (a ``Path`` of each, made and
    then turned back into text to open the file, cost the loader more than the system calls
    on it).

    Folders are visited top-down in name order, as ``os.walk`` would; names come from one
    directory listing each, so a plain file costs no system call of its own until it is read.
    """
    found: list[tuple[tuple[str, ...], str, str, str]] = []
    _visit(os.fspath(root), (), root.resolve(), display_path(root), found, problems)
    found.sort(key=lambda item: item[0])
    return [(path, shown, name) for _, path, shown, name in found]


def shown_path(base: str, relative: str) -> str:
    """A record's name as the user sees it: its path below the events folder shown as
    ``base`` (:func:`display_path`); :func:`eventfeed.state.below` gives it back."""
    return relative if base == "." else f"{base.rstrip('/')}/{relative}"


def _listed_paths(
    root: Path, listed: Listed, infos: dict[str, os.stat_result]
) -> list[tuple[str, str, str]]:
    """:func:`_record_paths` of the records ``listed`` (in the same order), their metadata
    into ``infos`` by path. ``listed`` is used up: what the build holds to its end does not
    hold its list (with 100,000 records, 90 MB more at the build's peak)."""
    base = display_path(root)
    found = []
    for relative, path, info in listed.records:
        shown = shown_path(base, relative)
        found.append((tuple(relative.split("/")), path, shown, relative))
        infos[path] = info
    listed.records.clear()
    found.sort(key=lambda item: item[0])
    return [(path, shown, name) for _, path, shown, name in found]


def _visit(
    folder: str,
    parts: tuple[str, ...],
    real_root: Path,
    base: str,
    found: list[tuple[tuple[str, ...], str, str, str]],
    problems: list[Problem],
) -> None:
    """Add the records of ``folder`` (at ``parts`` under the events folder) and of its
    folders to ``found``. (A function of the module, not one nested in its caller: a nested
    function that calls itself is a reference cycle, which kept the list of every record
    found for the cycle collector to free, at a pass over the whole loaded site.)"""
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return  # an unreadable folder is skipped, as os.walk skips it
    folders: list[os.DirEntry[str]] = []
    files: list[os.DirEntry[str]] = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        (folders if is_dir else files).append(entry)
    folders = sorted(
        (d for d in folders if not d.name.startswith((".", "_"))), key=lambda d: d.name
    )
    for entry in list(folders):
        if entry.is_symlink():
            problems.append(
                Problem(
                    display_path(Path(entry.path)),
                    0,
                    "",
                    "symbolic links to folders are not followed",
                    hint="move the records into the events folder",
                    severity=Severity.WARNING,
                )
            )
            folders.remove(entry)
    for entry in sorted(files, key=lambda f: f.name):
        name = entry.name
        if not name.endswith(".md") or name in IGNORED_NAMES or name.startswith((".", "_")):
            continue
        path = entry.path
        if entry.is_symlink() or not _is_plain_file(entry):
            problem = _unsafe_file(Path(path), real_root)
            if problem:
                problems.append(problem)
                continue
        relative = "/".join((*parts, name))
        found.append(((*parts, name), path, shown_path(base, relative), relative))
    for entry in folders:
        _visit(entry.path, (*parts, entry.name), real_root, base, found, problems)


def _is_plain_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _unsafe_file(path: Path, real_root: Path) -> Problem | None:
    """A problem if ``path`` leads outside the events folder or is not a regular file."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling, or a loop of links
            return Problem(
                display_path(path),
                0,
                "",
                "symbolic link leads nowhere (dangling or a loop)",
                hint="remove the link or copy the record into the events folder",
            )
        if not target.is_relative_to(real_root):
            return Problem(
                display_path(path),
                0,
                "",
                "symbolic link points outside the events folder",
                hint="copy the record into the events folder",
            )
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return Problem(display_path(path), 0, "", f"cannot read: {exc.strerror}")
    if not stat.S_ISREG(mode):
        return Problem(
            display_path(path),
            0,
            "",
            "not a regular file",
            hint="records are plain text files; remove this one",
        )
    return None


def _read(path: FilePath, limit: int = MAX_FILE_BYTES) -> bytes:
    """Read at most one byte past the limit, so a huge file is refused without loading it.

    (:func:`eventfeed.cache.read_head`, which the no-change check reads records with too.)
    """
    raw = read_head(path, limit)
    if len(raw) > limit:
        size = max(os.stat(path).st_size, len(raw))
        raise FrontMatterError(
            0,
            f"file is {size:,} bytes, over the limit of {limit:,}",
            "move long material to a linked document; records hold a summary",
        )
    return raw


def _load_settings(path: Path, problems: list[Problem]) -> Settings | None:
    shown = display_path(path)
    if path.is_symlink() or path.exists():
        problem = _unsafe_file(path, path.parent.resolve())
        if problem:
            problems.append(problem)
            return None
    try:
        raw = _read(path)
    except FrontMatterError as exc:
        problems.append(Problem(shown, exc.line, "", exc.message, exc.hint))
        return None
    except FileNotFoundError:
        problems.append(
            Problem(
                shown,
                0,
                "",
                "site settings file not found",
                hint=f"create {SETTINGS_FILE} with title, base_url, publisher, timezone and kinds",
            )
        )
        return None
    except OSError as exc:
        problems.append(Problem(shown, 0, "", f"cannot read: {exc.strerror}"))
        return None
    try:
        data, lines = read_yaml_file(raw)
    except FrontMatterError as exc:
        problems.append(Problem(shown, exc.line, "", exc.message, exc.hint))
        return None
    settings = _validate(Settings, data, lines, shown, problems, first_line=1)
    if settings is not None:
        before = len(problems)

        def report(where: KeyPath, message: str, *, hint: str = "", warning: bool = False) -> None:
            problems.append(
                checks.problem(shown, lines, where, message, hint=hint, warning=warning)
            )

        checks.check_settings(settings, report)
        if len(errors_in(problems[before:])):
            return None
    return settings


def read_record(
    path: FilePath, shown: str, store: RecordStore | None = None, name: str | None = None
) -> RecordFile | list[Problem]:
    """Read, parse and validate one record file, or say what is wrong with it; with ``store``,
    the parsed record is taken from it when the bytes match, and kept in it otherwise, under
    ``name`` (its path below the events folder; ``shown`` when not given).

    The settings play no part here (see :class:`RecordFile`); :func:`check_record` adds them.
    """
    item = _gather(path, shown, shown if name is None else name, store, "", "", scan_started())
    if item.problems is not None:
        return item.problems
    if item.found is not None:
        return item.found
    parsed, _, _, key, _ = _settle(item, None, None, store, False, ship=False)  # no checks
    assert parsed is not None
    assert not isinstance(parsed, bytes)
    if store is not None and isinstance(parsed, RecordFile):
        store.put(item.name, key, parsed, None, item.signature)
    return parsed


@dataclass(slots=True)
class _Pending:
    """One record file read: its bytes to parse, or the record the store had for them."""

    path: FilePath
    shown: str
    #: its path below the events folder, which the store keeps it by
    name: str
    #: what reading it found wrong (then nothing else is set)
    problems: list[Problem] | None = None
    raw: bytes | None = None
    #: the digest the store keeps it under
    key: str = ""
    found: RecordFile | None = None
    #: the content and schedule digests the store kept for it under the build's settings
    kept: tuple[str, str] | None = None
    #: the problems of its checks the store kept for it under the build's settings and day
    checked: list[Problem] | None = None
    #: to be read where it is parsed (by a worker, when they share the work), so that the
    #: bytes of many records are never all held at once: the store has no record of this
    #: name, or, when many are to parse, none of the bytes read to look it up
    #: (:func:`_looked_up`; the store's key is then taken of the bytes read again)
    unread: bool = False
    #: the signature of its metadata taken before it was read, when settled enough to keep
    #: (:meth:`eventfeed.recordstore.RecordStore.signature`)
    signature: str | None = None


def _read_or_problems(path: FilePath, shown: str) -> bytes | list[Problem]:
    try:
        return _read(path)
    except FileNotFoundError as exc:  # found when the records were looked for, gone now
        hint = "it was removed while the build ran; run the build again"
        return [Problem(shown, 0, "", f"cannot read: {exc.strerror}", hint=hint)]
    except OSError as exc:
        return [Problem(shown, 0, "", f"cannot read: {exc.strerror}")]
    except FrontMatterError as exc:
        return [Problem(shown, exc.line, "", exc.message, exc.hint)]


def _gather(
    path: FilePath,
    shown: str,
    name: str,
    store: RecordStore | None,
    settings: str,
    day: str,
    started: int,
    info: os.stat_result | None = None,
) -> _Pending:
    """Look one record file up in ``store``, reading it when the store needs its bytes (without
    a store, it is left to be read where it is parsed); what the store keeps for it is
    taken when it was worked out under the settings digest ``settings`` (the digests), and
    holds under them on ``day`` (the problems of the checks: the build's day, ISO, or "").

    A file whose metadata is the same as when the record kept for it was read is not read
    again (:mod:`eventfeed.recordstore` says when that is safe), when it had not changed for
    a while before ``started`` (:func:`eventfeed.cache.scan_started`, taken before the load
    began). The metadata is always taken before the bytes are read: a write in between is
    then seen by the next load. ``info``: the file's metadata, taken already (after
    ``started``). ``name``: its path below the events folder, which the store keeps it by."""
    item = _Pending(path, shown, name)
    if store is None:  # nothing to look up: the file is read where it is parsed
        item.unread = True
        return item
    if info is not None:
        item.signature = store.signature_of(info, started)
    else:
        item.signature = store.signature(name, path, started)
    if not store.holds(name):
        item.unread = True
        return item
    key = store.unchanged(name, item.signature)
    if key is not None:
        found = store.get(name, key, shown, path)
        if found is not None:
            item.key, item.found = key, found
            item.kept, item.checked = store.derived(name, settings, day)
            return item
    raw = _read_or_problems(path, shown)
    if isinstance(raw, list):
        item.problems = raw
        return item
    item.key = store.key(raw)
    item.found = store.get(name, item.key, shown, path)
    if item.found is not None:
        store.saw(name, item.signature)
        item.kept, item.checked = store.derived(name, settings, day)
        return item  # the bytes are not needed again
    item.raw = raw
    return item


def _unsettled(item: _Pending) -> bool:
    """Whether :func:`_settle` has work for a record: to parse, or to check (and digest)."""
    return item.problems is None and (
        item.found is None or item.kept is None or item.checked is None
    )


def _looked_up(pending: Iterable[_Pending]) -> tuple[list[_Pending], bool]:
    """Every record, looked up in the store, and whether enough of them are left to settle
    to share them out (:data:`PARALLEL_MIN_RECORDS`). Then none of them holds the bytes read
    to look it up: a worker reads them again where it parses them, and the bytes of a
    hundred thousand edited records are never all held here. Fewer are parsed here, from
    the bytes read once."""
    items: list[_Pending] = []
    todo = 0
    for item in pending:
        items.append(item)
        if _unsettled(item):
            todo += 1
            if todo >= PARALLEL_MIN_RECORDS:
                for each in items if todo == PARALLEL_MIN_RECORDS else (item,):
                    if each.raw is not None:
                        each.raw, each.unread = None, True
    return items, todo >= PARALLEL_MIN_RECORDS


#: What checking one record gave: the record (parsed here, or packed by a worker, or None
#: when the store had it; or what reading or parsing found wrong), the problems of its checks,
#: its content and schedule digests (None without settings or when not asked for), the
#: store's digest of its bytes, and the days its problems hold on
#: (:func:`eventfeed.recordstore.days_held`).
_Settled = tuple[
    RecordFile | bytes | list[Problem] | None, list[Problem], tuple[str, str] | None, str, str
]

#: From this many records to parse on, parsing and checking are shared out among forked
#: workers.
PARALLEL_MIN_RECORDS = 1000


def _settle(
    item: _Pending,
    settings: Settings | None,
    today: date | None,
    store: RecordStore | None,
    digests: bool,
    *,
    ship: bool,
    events: list[Event] | None = None,
) -> _Settled:
    """Read (when not yet read), parse (unless ``store`` had it), check and (with
    ``digests``) digest one record; with ``ship``, a record parsed here is returned packed,
    as the store keeps it and as a worker sends it (:func:`eventfeed.recordstore.pack`). The
    event of a record checked here without an error is added to ``events``, when given."""
    if item.problems is not None:
        return None, [], None, "", ""
    key = item.key
    parsed: RecordFile | list[Problem]
    if item.found is not None:
        parsed = item.found
    else:
        raw = _read_or_problems(item.path, item.shown) if item.unread else item.raw
        if isinstance(raw, list):
            return raw, [], None, "", ""
        assert raw is not None
        if item.unread and store is not None:
            key = store.key(raw)
        parsed = parse_record(raw, item.path, item.shown)
        if isinstance(parsed, list):
            return parsed, [], None, key, ""
    made: RecordFile | bytes | None = None
    if item.found is None:
        made = pack(parsed) if ship else parsed
    if settings is None:
        return made, [], None, key, ""
    if item.kept is not None and item.checked is not None:
        return made, item.checked, item.kept, key, ""  # the store had it all (and keeps it)
    problems: list[Problem] = []
    event = check_record(parsed, settings, problems, today)
    if item.kept is not None:
        event.keep_digests(item.kept)
    found = content_digests(event) if digests else None
    if events is not None and not errors_in(problems):
        events.append(event)
    return made, problems, found, key, days_held(today, event.last_day)


def _settled(
    pending: list[_Pending],
    settings: Settings | None,
    today: date | None,
    store: RecordStore | None,
    digests: bool,
    ahead_of: tuple[Ahead, str] | None = None,
) -> Iterator[_Settled]:
    """:func:`_settle` of every record, in order, shared out among forked workers when there
    are two cores (and done here when there are not, or they fail). With ``ahead_of`` (and
    the settings), the workers compile each event they checked without an error, for the
    build of the events folder it names (:class:`eventfeed.build.Ahead`)."""
    done = 0
    workers = min(os.cpu_count() or 1, 2)
    if workers > 1:
        global _SHARED
        ahead = None
        if ahead_of is not None and settings is not None:
            ahead = ahead_of[0]
            ahead.start(settings, ahead_of[1])
        _SHARED = (pending, settings, today, store, digests, ahead)
        try:
            for _, end, (part, made) in chunks_done(
                _settle_chunk, len(pending), workers, least=100
            ):
                if ahead is not None and made is not None:
                    ahead.took(made)
                yield from part
                done = end
        finally:
            _SHARED = None
            if ahead is not None:
                ahead.stop()
    for item in pending[done:]:
        yield _settle(item, settings, today, store, digests, ship=False)


#: The records a forked worker checks: set before the workers are forked, which inherit it.
_SHARED: (
    tuple[list[_Pending], Settings | None, date | None, RecordStore | None, bool, Ahead | None]
    | None
) = None


def _settle_chunk(
    bounds: tuple[int, int],
) -> tuple[list[_Settled], list[tuple[str, Made, Keyed | None]] | None]:
    """A chunk of the records of :data:`_SHARED`, settled; and, when the build asked for it,
    their events compiled (:meth:`eventfeed.build.Ahead.compile`)."""
    assert _SHARED is not None
    pending, settings, today, store, digests, ahead = _SHARED
    part = pending[bounds[0] : bounds[1]]
    events: list[Event] | None = [] if ahead is not None else None
    settled = [
        _settle(item, settings, today, store, digests, ship=True, events=events) for item in part
    ]
    made = ahead.compile(events) if ahead is not None and events else None
    return settled, made


def parse_record(raw: bytes, path: FilePath, shown: str) -> RecordFile | list[Problem]:
    """Parse and validate the bytes of the record file ``path``."""
    problems: list[Problem] = []
    try:
        doc = read_document(raw)
    except FrontMatterError as exc:
        return [Problem(shown, exc.line, "", exc.message, exc.hint)]
    record = _validate(Record, doc.data, doc.lines, shown, problems, first_line=doc.first_line)
    if record is None:
        return problems
    stem = _stem(path)
    if record.id is None and not is_slug(stem):
        return [
            Problem(
                shown,
                doc.first_line,
                "id",
                f"file name '{stem}' is not a valid id",
                hint="rename the file to lowercase-words-with-hyphens.md or add an 'id:' field",
            )
        ]
    if record.id is None and stem in WINDOWS_DEVICES:
        return [
            Problem(
                shown,
                doc.first_line,
                "id",
                f"file name '{stem}' is a device name reserved on Windows",
                hint="rename the file: it cannot be checked out on Windows, nor published there",
            )
        ]
    return RecordFile(
        source=shown,
        id=record.id or stem,
        record=record,
        body=doc.body,
        lines=doc.lines,
        first_line=doc.first_line,
    )


def _stem(path: FilePath) -> str:
    """The file name without its last suffix, as ``Path(path).stem`` gives it."""
    name = os.path.basename(path)
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def _event_of(parsed: RecordFile, settings: Settings) -> Event:
    state = parsed.__dict__
    if BRIEF in state and "record" not in state:  # left packed (:class:`RecordFile`)
        packed, body = state.get(PACKED_RECORD), state.get("body")
        if packed is not None and body is not None:  # its rest opened (sent by a worker)
            opened = Opened(packed, body)
            return Event.packed(parsed.id, parsed.source, state[BRIEF], opened, settings, body)
        return Event.packed(parsed.id, parsed.source, state[BRIEF], parsed, settings)
    return Event(
        id=parsed.id,
        source=parsed.source,
        record=parsed.record,
        body=parsed.body,
        settings=settings,
    )


def check_record(
    parsed: RecordFile, settings: Settings, problems: list[Problem], today: date | None
) -> Event:
    """The record as an event of this site, reporting what the settings and the date make wrong."""
    event = _event_of(parsed, settings)

    def report(where: KeyPath, message: str, *, hint: str = "", warning: bool = False) -> None:
        problems.append(
            checks.problem(
                parsed.source,
                parsed.lines,
                where,
                message,
                hint=hint,
                warning=warning,
                default_line=parsed.first_line,
            )
        )

    # Whether it is still to come is all the checks know of the day (the record store keeps
    # what they found for the days it holds on: :func:`eventfeed.recordstore.days_held`).
    checks.check_event(event, report, coming=today is None or event.last_day >= today)
    checks.check_references(event, settings, report)
    return event


def _validate(
    model: type[M],
    data: dict[str, Any],
    lines: dict[KeyPath, int],
    shown: str,
    problems: list[Problem],
    *,
    first_line: int,
) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, model, data, lines, shown, first_line))
        return None


def _problems_from(
    exc: ValidationError,
    model: type[BaseModel],
    data: dict[str, Any],
    lines: dict[KeyPath, int],
    shown: str,
    first_line: int,
) -> list[Problem]:
    """Turn pydantic's errors into one problem per field, at the line of that field."""
    chosen: dict[KeyPath, Any] = {}
    for error in exc.errors(include_url=False):
        where = _data_path(error["loc"], data)
        previous = chosen.get(where)
        if previous is None or _rank(error) > _rank(previous):
            chosen[where] = error
    # A value that fits no member of a union (a slug or a mapping) gets one error per member;
    # when the mapping member explains the problem deeper down, its type error is noise.
    deeper = {where[:cut] for where in chosen for cut in range(len(where))}
    for where in [w for w, e in chosen.items() if w in deeper and e["type"] in _TYPE_ERRORS]:
        del chosen[where]
    result = []
    for where, error in chosen.items():
        message, hint = _message(error, where, model)
        line = checks.line_of(lines, where, first_line)
        result.append(Problem(shown, line, checks.dotted(where), message, hint))
    return result


_TYPE_ERRORS = frozenset({"string_type", "model_type", "dict_type", "is_instance_of"})


def _data_path(loc: tuple[int | str, ...], data: Any) -> KeyPath:
    """Keep the parts of a pydantic location that exist in the data (drop union-member names)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and not part[:1].isupper()
            and "[" not in part
            and "-" not in part
        ):
            path.append(part)  # a missing or unknown field
            node = None
    return tuple(path)


def _rank(error: Any) -> int:
    kind = error["type"]
    if kind in ("value_error", "extra_forbidden", "missing"):
        return 3
    if kind.startswith(("string_", "greater", "less", "enum", "literal")):
        return 2
    if kind in ("model_type", "dict_type", "is_instance_of"):
        return 0
    return 1


_FIELD_NAMES = sorted(
    {
        name
        for m in (Record, Settings)
        for model in [m, *(f.annotation for f in m.model_fields.values())]
        for name in getattr(model, "model_fields", {})
    }
    | {
        "venue",
        "address",
        "city",
        "country",
        "lat",
        "lon",
        "url",
        "platform",
        "name",
        "role",
        "affiliation",
        "registration",
        "recording",
        "page",
        "documents",
        "occurrence",
        "note",
    }
)


def _message(error: Any, where: KeyPath, model: type[BaseModel]) -> tuple[str, str]:
    kind = error["type"]
    msg = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        name = str(where[-1]) if where else ""
        close = difflib.get_close_matches(name, _FIELD_NAMES, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it, or check its indentation"
        return "unknown field", hint
    if kind == "missing":
        return "required field is missing", "add it to the front matter"
    if kind == "enum":
        return msg, ""
    if kind in ("string_type",):
        return "must be text", "put the value in quotes"
    if kind == "int_type":
        return "must be a whole number", ""
    return msg, ""
