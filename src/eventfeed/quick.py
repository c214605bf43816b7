"""The quick rebuild: a few records edited since the build in out/, and nothing else.

A full rebuild reads every record's state back, takes every unchanged event from the
per-event store and works every whole step out again (each calendar's members, each
listing, each feed), to find that nearly all of it is as it was: with 100,000 records, about
ten seconds for one edited record. This module makes that build from the last one instead,
when it can show that the result is the same:

* the no-change check's fingerprint shows that nothing but the bytes of a few records
  changed since the build in out/ (:meth:`eventfeed.cache.Fingerprint.edits`), and that
  out/ is as that build left it (:meth:`~eventfeed.cache.Fingerprint.left`); the record
  store keeps the records that build was made of, and the per-event store is marked as
  made for out/'s manifest;
* each edited record, old and new, is checked with no error and the same warnings (so the
  warnings are the last build's), and keeps its id and calendar UID;
* compiled again from the record store, each old record gives the very files out/ holds for
  it (the code and settings are those of the last build);
* each event is placed by the whole steps exactly as before (its listing markup and place,
  collections, kind, region, language, zones, last day, start, and publication are the
  same; no feed shows it), and the calendars that hold it keep their members:

  * an event that ended before the look-back window is in its month's archive only, and an
    event to come that calendar.ics has no room for in the later calendar of the month it
    starts in only (:func:`_filed`); each keeps its splits (:func:`_spliced`), and
    calendar.ics still ends where it did (:class:`_Room`);
  * an event calendar.ics holds is also in calendar.json and in its share of the other
    subscription calendars; each of those still fits, and when one shrinks, calendar.ics
    held every event it may hold, or still has no room for the first it left out
    (:func:`_current_calendars`).

Then the build's files are the last build's, but for each event's own files, the calendars
that hold them (their components replaced) and the manifest (its text patched). The writer
takes the rest from out/ as it does after any rebuild, and the stores and the fingerprint
are brought up to date as a full build leaves them. Anything else takes the full build,
which gives the same bytes (``tests/test_quick.py`` compares the two).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Container, Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, cast

from . import paths
from .build import (
    BuildContext,
    Compiler,
    Made,
    _base,
    _each,
    _keyed,
    _NotLoaded,
    _previous,
    as_of_for,
    compilers,
    made_for,
    memberships_of,
)
from .cache import Edits, Fingerprint, OutState
from .errors import EventfeedError, Problem, errors_in
from .event import Event
from .eventcache import Entry, EventCache
from .ical import (
    _ARCHIVE,
    _END,
    _LATER,
    Header,
    _dated_header,
    _groups,
    _head_bytes,
    _main_header,
    merged_zones,
)
from .load import (
    SETTINGS_FILE,
    RecordFile,
    Site,
    _load_settings,
    _read,
    check_record,
    collector_paused,
    display_path,
    parse_record,
    shown_path,
)
from .model import Settings
from .recordstore import RecordStore
from .state import EventState, Manifest, advance, content_digests, file_digest, manifest_head
from .state import read_manifest as _read_manifest
from .vevent import compile_event
from .vtimezone import vtimezone_bytes
from .write import write_tree

#: The most records a quick rebuild takes; 0: never quick.
MAX_EDITED = 8


class Gone(Exception):
    """out/ no longer holds a file the quick rebuild takes from it: the full build runs."""


class Quick(Mapping[str, bytes]):
    """The files of a quick rebuild, as the writer takes them: the last build's, from out/
    (known by their digest and size, read only when asked for), but for those made here."""

    def __init__(
        self,
        out: Path,
        digests: Mapping[str, str],
        sizes: Mapping[str, int],
        made: dict[str, bytes],
        manifest_files: Mapping[str, str],
    ) -> None:
        #: the digests the manifest among these files names (the writer's ``files``)
        self.manifest_files = manifest_files
        self._out = str(out)
        self._digests = digests
        self._sizes = sizes
        self._made = made
        self._made_digests = {path: file_digest(data) for path, data in made.items()}
        self._order = sorted(digests.keys() | made.keys())

    def digest(self, path: str) -> str:
        found = self._made_digests.get(path)
        return found if found is not None else self._digests[path]

    def size(self, path: str) -> int:
        data = self._made.get(path)
        return len(data) if data is not None else self._sizes[path]

    def __getitem__(self, path: str) -> bytes:
        data = self._made.get(path)
        if data is not None:
            return data
        source = os.path.join(self._out, *path.split("/"))
        data = _previous(source, self._sizes[path], self._digests[path])
        if data is None:
            raise Gone(path)
        return data

    def __contains__(self, path: object) -> bool:
        return path in self._made or path in self._digests

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


class _Edit:
    """One record edited: its event as the last build made it, and as this one makes it."""

    def __init__(self, old: Event, new: Event, before: EventState, after: EventState) -> None:
        self.old, self.new = old, new
        self.before, self.after = before, after
        self.old_made: Made = {}
        self.new_made: Made = {}
        #: where the calendars hold it (:data:`_MAIN` or :func:`_filed`), once it is shown to
        #: be placed alike
        self.filed: str | None = None


def quick_build(
    events_dir: Path,
    out_dir: Path,
    clock: datetime,
    as_of: date | None,
    fingerprint: Fingerprint,
) -> tuple[int, int, str] | None:
    """Build ``out_dir`` from the last build into it, when only a few records changed since
    and the result can be shown to be the same (the module says when); returns the number
    of events, of files, and the warnings printed. None when the full build is to run:
    then nothing was written."""
    if MAX_EDITED <= 0:
        return None
    store = RecordStore.for_events(events_dir)
    try:
        edits = fingerprint.edits(store.kept)
        if edits is None or not 0 < len(edits.records) <= MAX_EDITED:
            return None
        try:
            plan = _plan(events_dir, out_dir, clock, as_of, store, edits, fingerprint)
        except EventfeedError:
            return None  # (a record the store lost, say: the full build says what it is)
        if plan is None:
            return None
        files, count, entries, made_for_, parsed, seen = plan
        try:
            stayed = write_tree(
                out_dir, files, events_dir=events_dir, files=files.manifest_files, seen=seen
            )
        except Gone:
            return None
        for name, key, record in parsed:
            store.put(name, key, record, None)
        store.keep_the_rest()
        store.save()
        EventCache.add(EventCache.file_for(out_dir), entries, made_for_)
        fingerprint.save(out_dir, edits.warnings, files, stayed)
        return count, len(files), edits.warnings
    finally:
        store.close()


_Plan = tuple[Quick, int, list[tuple[str, Entry]], str, list[tuple[str, str, RecordFile]], OutState]


def _plan(
    events_dir: Path,
    out_dir: Path,
    clock: datetime,
    as_of: date | None,
    store: RecordStore,
    edits: Edits,
    fingerprint: Fingerprint,
) -> _Plan | None:
    """Everything a quick rebuild writes, or None when it cannot be shown to be the build."""
    problems: list[Problem] = []
    settings = _load_settings(events_dir / SETTINGS_FILE, problems)
    if settings is None or errors_in(problems):
        return None  # (its warnings are the last build's: the settings are the same)
    root = display_path(events_dir)
    today = clock.date()
    day = as_of or as_of_for(clock, settings)
    cutoff = day - timedelta(days=settings.calendars.lookback_days)
    # The records first: most edits that the quick build leaves to the full one are found
    # here, before the manifest is read (at 100,000 records, a second).
    found: list[tuple[Event, Event, RecordFile, str]] = []
    for name, path, key_then, key_now in edits.records:
        shown = shown_path(root, name)
        old = store.get(name, key_then, shown, path)
        try:
            raw = _read(path)
        except (OSError, EventfeedError):
            return None
        if old is None or store.key(raw) != key_now:
            return None
        new = parse_record(raw, path, shown)
        if isinstance(new, list):
            return None  # the full build reports it
        events, reported = [], []
        for record in (old, new):
            problems = []
            events.append(check_record(record, settings, problems, today))
            reported.append(problems)
        if reported[1] != reported[0] or errors_in(reported[1]):
            return None  # the warnings would change (the last build's are printed), or it fails
        old_event, new_event = events
        if old_event.id != new_event.id or old_event.uid != new_event.uid:
            return None
        if not _alike(settings, old_event, new_event):
            return None  # (listed or placed elsewhere: the full build)
        found.append((old_event, new_event, new, name))
    seen = fingerprint.left(out_dir)
    if seen is None:
        return None  # out/ is not as that build left it
    try:
        # (with the collector paused, as the full build reads it: a pass over the history
        # of every event would free nothing; with 100,000 events, half a second)
        with collector_paused():
            previous = _read_manifest(out_dir)
    except EventfeedError:
        return None
    if previous is None or previous.as_of != day:
        return None
    main = _read_out(out_dir, previous, paths.CALENDAR) or b""
    steps = compilers()
    site = Site(settings=settings, events=cast(tuple[Event, ...], _NotLoaded()), root=root)
    blank = BuildContext(site=site, history={}, as_of=day)
    base = _base(blank, steps)
    if EventCache.mark_of(EventCache.file_for(out_dir)) != made_for(base, previous.digest):
        return None  # the store (and the keys of its entries) is not that build's
    changes: list[_Edit] = []
    parsed: list[tuple[str, str, RecordFile]] = []
    for (old_event, new_event, new, name), edited in zip(found, edits.records, strict=True):
        before = previous.events.get(old_event.id)
        if before is None or content_digests(old_event)[0] != before.content:
            return None
        after = advance(previous, [new_event], clock, root)[new_event.id]
        changes.append(_Edit(old_event, new_event, before, after))
        parsed.append((name, edited[3], new))
    if len({c.new.id for c in changes}) != len(changes):
        return None
    made: dict[str, bytes] = {}
    for change in changes:
        change.old_made = _compiled(steps, site, day, change.old, change.before)
        change.new_made = _compiled(steps, site, day, change.new, change.after)
        for own, _ in change.old_made.values():
            for path, data in own.items():
                if previous.files.get(path) != file_digest(data):
                    return None  # not what the last build made of it
        change.filed = _placed_alike(settings, day, change)
        if change.filed is None:
            return None
        if _named(main, change.old):
            change.filed = _MAIN
        elif change.filed == _WINDOW:
            return None  # (calendar.ics had no room for it: the archive holds it)
        for own, _ in change.new_made.values():
            made.update(own)
    if not _in_no_feed(out_dir, previous, changes):
        return None
    zones = _Zones(out_dir, previous, settings)
    room = _Room(out_dir, previous, settings, blank, main, zones, cutoff)
    spliced = _dated_calendars(out_dir, previous, settings, blank, changes, zones, room)
    if spliced is None:
        return None
    made.update(spliced)
    current = _current_calendars(out_dir, previous, settings, blank, changes, main, room)
    if current is None:
        return None
    made.update(current)
    history = dict(previous.events)
    history.update((c.new.id, c.after) for c in changes)
    digests = dict(previous.files)
    for path, data in made.items():
        if path not in digests:
            return None
        digests[path] = file_digest(data)
    manifest = Manifest(as_of=day, events=history, files=digests)
    head = manifest_head(day, history, previous)
    text = b"".join(manifest.parts(head, None, previous))
    made[paths.MANIFEST] = text
    sizes = _sizes(seen, previous.files.keys() - made.keys())
    if sizes is None:
        return None
    kept = {path: digest for path, digest in previous.files.items() if path not in made}
    files = Quick(out_dir.resolve(), kept, sizes, made, digests)
    entries = []
    for change in changes:
        context = BuildContext(site=site, history={change.new.id: change.after}, as_of=day)
        state_key, key, held = _keyed(context, steps, base, change.new)
        sized = {
            p: (files.digest(p), len(d)) for f, _ in change.new_made.values() for p, d in f.items()
        }
        notes = {name: note for name, (_, note) in change.new_made.items()}
        entries.append((change.new.id, Entry(key, sized, notes, state_key, held)))
    made_for_manifest = made_for(base, files.digest(paths.MANIFEST))
    return files, len(history), entries, made_for_manifest, parsed, seen


def _compiled(
    steps: list[Compiler], site: Site, day: date, event: Event, state: EventState
) -> Made:
    """The per-event steps of ``event`` with the history ``state``, as a build of ``site``
    on ``day`` makes them (they read nothing of the other events)."""
    context = BuildContext(site=site, history={event.id: state}, as_of=day)
    return _each(steps, context, [event])[0]


def _sizes(out: OutState, wanted: set[str]) -> dict[str, int] | None:
    """The size of each file of ``wanted`` as out/ was seen to hold it; None when out/ does
    not hold one of them."""
    from .cache import ROW

    if out.seen is None:
        return None
    _, files, rows = out.seen
    sizes = {path: row[1] for path, row in zip(files, ROW.iter_unpack(rows), strict=True)}
    if not wanted <= sizes.keys():
        return None
    return sizes


def _placed_alike(settings: Settings, day: date, change: _Edit) -> str | None:
    """Where the calendars may hold the edited event (:func:`_filed`), when the whole steps
    place it as they placed it: what they read of an event (its notes, its membership of
    collections and facets, its order and publication) is the same, its records shown
    alike already (:func:`_alike`); None otherwise."""
    before, after = change.before, change.after
    if (before.published, before.cancelled) != (after.published, after.cancelled):
        return None
    # (what the records alone say of it: :func:`_alike`, looked at before the manifest)
    if change.old_made.keys() != change.new_made.keys():
        return None
    for name, (own, note) in change.old_made.items():
        own_now, note_now = change.new_made[name]
        if own.keys() != own_now.keys():
            return None
        if name != "ical" and note != note_now:  # the listings' markup and place
            return None
    old_note = change.old_made["ical"][1]
    new_note = change.new_made["ical"][1]
    _, _, zones, last_day = cast(tuple[int, int, tuple[object, ...], date | None], old_note)
    _, _, zones_now, last_day_now = cast(tuple[int, int, tuple[object, ...], date | None], new_note)
    if zones != zones_now or last_day != last_day_now:
        return None
    return _filed(last_day, day - timedelta(days=settings.calendars.lookback_days), day)


def _alike(settings: Settings, old: Event, new: Event) -> bool:
    """Whether an edited record says the same of what the whole steps read of its event, as
    far as the record alone says it (before its history is known and it is compiled): its
    order, start, all-day, title, cancellation, publication date, kind, region, language
    and collections."""
    if old.sort_key != new.sort_key or old.all_day != new.all_day:
        return False
    if old.local_start != new.local_start or old.record.title != new.record.title:
        return False
    brief, other = old.brief, new.brief
    if (old.cancelled, brief.published) != (new.cancelled, other.published):
        return False
    if (brief.kind, brief.region, old.language) != (other.kind, other.region, new.language):
        return False
    return memberships_of(old, settings) == memberships_of(new, settings)


#: Where the calendars hold an edited event, beside ``_ARCHIVE`` (ended before the look-back
#: window: only in the archive calendar of the month it ended in) and ``_LATER`` (to come: in
#: calendar.ics, or else only in the later calendar of the month it starts in): ``_WINDOW``,
#: ended within the window (in calendar.ics, or else in the archive), and ``_MAIN``, found in
#: calendar.ics (so also in calendar.json and in its share of the other subscription
#: calendars).
_WINDOW, _MAIN = "window", "main"


def _filed(last_day: date | None, cutoff: date, day: date) -> str:
    """Where the calendars may hold an event that ends on ``last_day`` (None: a series
    without end), on ``day``, with the look-back window from ``cutoff``: :data:`_ARCHIVE`,
    :data:`_LATER` or :data:`_WINDOW`."""
    if last_day is not None and last_day < cutoff:
        return _ARCHIVE
    if last_day is None or last_day >= day:
        return _LATER
    return _WINDOW


def _named(calendar: bytes, event: Event) -> bool:
    """Whether ``calendar`` has a line with the UID of ``event`` (unfolded). A look, not a
    proof: the calendars an edit is spliced into are searched for its components."""
    return b"\r\nUID:" + event.uid.encode() + b"\r\n" in calendar


def _components(made: Made, event: Event) -> bytes:
    """The event's components, as the calendars take them from its own file."""
    own, note = made["ical"]
    offset, size = cast(tuple[int, int], note)[:2]
    return own[paths.event_ics(event.id)][offset : offset + size]


def _in_no_feed(out_dir: Path, previous: Manifest, changes: list[_Edit]) -> bool:
    """Whether no feed of the last build names any edited event (by its id, anywhere)."""
    ids = [c.new.id.encode() for c in changes]
    for path in previous.files:
        if not path.startswith("feeds/"):
            continue
        try:
            data = (out_dir / path).read_bytes()
        except OSError:
            return False
        if any(i in data for i in ids):
            return False
    return True


_MEMBERS = b"\r\nBEGIN:VEVENT\r\n"
_COMPONENT_END = b"\r\nEND:VEVENT\r\n"


def _members_at(data: bytes) -> int:
    """Where a calendar's events begin (after its own lines and its zones); -1: none."""
    found = data.find(_MEMBERS)
    return found + 2 if found >= 0 else -1


class _Member(NamedTuple):
    """An event of a calendar of out/, as the per-event store's note of it says."""

    uid: str
    id: str
    #: the size of its components
    size: int
    zones: tuple[tuple[str, int, int], ...]
    last_day: date | None


class _Zones:
    """The zones of the last build's events (each TZID with the first and last year it is
    named for), found from the components a calendar of out/ holds: what the calendars'
    VTIMEZONEs are made for, which a size compared with ``calendars.max_bytes`` may turn on.

    The per-event store's note of each event has them; the store is read when first asked
    (with 100,000 events, about 0.75 s), at most once. An event is known by the UID of its
    components (the event's id at the site's domain), and its components in the calendar
    must be the very bytes of its own file in out/ where the note says they are; else the
    answer is None."""

    def __init__(self, out_dir: Path, previous: Manifest, settings: Settings) -> None:
        self._out_dir = out_dir
        self._previous = previous
        self._suffix = "@" + settings.domain
        self._store: EventCache | None = None

    def _note(self, uid: str) -> tuple[str, int, _Member] | None:
        """The event of ``uid``: its own file, where its components are in it, and what the
        note says of it."""
        if not uid.endswith(self._suffix):
            return None
        event_id = uid[: -len(self._suffix)]
        if self._store is None:
            self._store = EventCache.for_out(self._out_dir)
        entry = self._store.entries.get(event_id)
        path = paths.event_ics(event_id)
        if entry is None or path not in self._previous.files:
            return None
        if entry.files.get(path, ("", 0))[0] != self._previous.files[path]:
            return None  # (the store's entry is not of the file out/ holds)
        note = entry.notes.get("ical")
        if not isinstance(note, tuple) or len(note) != 4:
            return None
        offset, size, zones, last_day = note
        if size <= 0:
            return None
        return path, offset, _Member(uid, event_id, size, zones, last_day)

    def first(self, data: bytes, start: int) -> _Member | None:
        """The event whose components begin at ``start`` in ``data``."""
        uid = _uid_at(data, start)
        note = None if uid is None else self._note(uid)
        if note is None:
            return None
        path, offset, member = note
        size = member.size
        try:
            with (self._out_dir / path).open("rb") as own:
                own.seek(offset)
                if own.read(size) != data[start : start + size]:
                    return None
        except OSError:
            return None
        return member

    def members(self, data: bytes) -> Iterator[_Member | None]:
        """The events of a calendar of out/, in order; None for one not known (then no
        more)."""
        start, end = _members_at(data), len(data) - len(_END)
        if start < 0:
            yield None
            return
        while start < end:
            member = self.first(data, start)
            yield member
            if member is None:
                return
            start += member.size
        if start != end:
            yield None

    def covered(self, *calendars: bytes, also: tuple[tuple[str, int, int], ...] = ()) -> int | None:
        """The size of the VTIMEZONEs of a calendar of the events of ``calendars`` (each a
        calendar of out/ as it is there) and an event of the zones ``also``."""
        found = list(also)
        for data in calendars:
            for member in self.members(data):
                if member is None:
                    return None
                found.extend(member.zones)
        return sum(len(vtimezone_bytes(*r)) for r in merged_zones(found))


def _uid_at(data: bytes, start: int) -> str | None:
    """The UID of the component that begins at ``start`` in ``data``, unfolded."""
    if not data.startswith(_MEMBERS[2:], start):
        return None
    end = data.find(_COMPONENT_END, start)
    at = data.find(b"\r\nUID:", start, end) if end >= 0 else -1
    if at < 0:
        return None
    at += len(b"\r\nUID:")
    line = data.find(b"\r\n", at)
    while data.startswith((b"\r\n ", b"\r\n\t"), line):
        line = data.find(b"\r\n", line + 3)
    try:
        return re.sub(rb"\r\n[ \t]", b"", data[at:line]).decode()
    except UnicodeDecodeError:
        return None


def _dated_calendars(
    out_dir: Path,
    previous: Manifest,
    settings: Settings,
    context: BuildContext,
    changes: list[_Edit],
    zones: _Zones,
    room: _Room,
) -> dict[str, bytes] | None:
    """The dated calendars holding the edited events (the archive's, the later ones'), with
    their components replaced; None when one of them is not found where it is expected, or
    when the new sizes could move an event from one calendar to another (:func:`_spliced`,
    :class:`_Room`)."""
    by_year: dict[tuple[str, int], list[tuple[int, bytes, bytes]]] = {}
    for change in changes:
        filed = change.filed
        if filed == _MAIN:
            continue  # (:func:`_current_calendars`)
        assert filed is not None  # (archived, or in a later calendar)
        old = _components(change.old_made, change.old)
        new = _components(change.new_made, change.new)
        if filed == _ARCHIVE:
            on = cast(tuple[int, int, object, date], change.new_made["ical"][1])[3]
        else:
            if len(new) < len(old):
                edited = any(c.filed == _MAIN for c in changes)  # (calendar.ics too)
                if not room.still_later(change.new, len(new), None if edited else room.main):
                    return None
            on = change.new.local_start  # (a date, or a date-time: its year and month)
        by_year.setdefault((filed, on.year), []).append((on.month, old, new))
    made: dict[str, bytes] = {}
    for (kind, year), edits in sorted(by_year.items()):
        spliced = _spliced(out_dir, previous, settings, context, kind, year, edits, zones)
        if spliced is None:
            return None
        made.update(spliced)
    return made


#: a dated calendar's name: the archive or later, its year, month and part
#: (:func:`eventfeed.paths.archive_calendar`, :func:`~eventfeed.paths.later_calendar`)
_DATED_NAME = re.compile(r"calendars/(archive|later)/(\d{4})(?:-(\d{2}))?(?:-part(\d+))?\.ics")


def _dated_files(previous: Manifest) -> Iterator[tuple[str, int, int, int, str]]:
    """The kind, year, month (0: the whole year) and part (0: the whole month) of each
    dated calendar of the last build, and its path."""
    for path in previous.files:
        found = _DATED_NAME.fullmatch(path)
        if found is not None:
            month, part = found.group(3), found.group(4)
            kind, year = found.group(1), int(found.group(2))
            yield kind, year, int(month) if month else 0, int(part) if part else 0, path


class _Room:
    """Whether calendar.ics, with the edits, still holds the events it held: when it left
    some out, that it still has no room for the first of them (:func:`eventfeed.ical._fit`).

    calendar.ics holds every event to come and every one that ended within the look-back
    window when every subscription calendar fits so; else the longest beginning, for which
    every one fits, of one sequence: the events to come in order (by the start in UTC),
    then those of the window, those that ended last first. Whether a beginning fits depends
    on its events alone, and a longer one never fits where a shorter one does not. So the
    beginning kept stays the same when any event after the first one left out changes size
    (its zones and calendars the same), when that first one grows, and when the events kept
    grow while every calendar still fits (:func:`_current_calendars` checks that). When the
    first one left out, or one kept, shrinks, the beginning stays if calendar.ics would
    still be too large with that first one after its events: bounded from below by their
    components, their VTIMEZONEs (:class:`_Zones`) and the shortest head (the head's zone
    line is all it leaves out).

    Which is the first one left out: when the later calendars hold events to come, the
    first event of the earliest of them. They file an event by the year and month of its
    local start, which is within 14 hours of its start in UTC, so an event that starts
    locally three days before the end of that calendar's period starts before each event
    of the later periods (and an event that starts two days after it ends, after each event
    of that calendar). Else, of the events of the window the archive holds (those of its
    calendars of the window's months that ended on its first day or after), the one that
    ended last (by its last day, then its id); none: calendar.ics held every event."""

    def __init__(
        self,
        out_dir: Path,
        previous: Manifest,
        settings: Settings,
        context: BuildContext,
        main: bytes,
        zones: _Zones,
        cutoff: date,
    ) -> None:
        self._out_dir, self._previous, self._settings = out_dir, previous, settings
        self._context, self.main, self._zones = context, main, zones
        self._cutoff = cutoff
        self._ends: date | None = None
        self._path = ""
        #: the window's archive calendars, when no later calendar holds an event
        self._window: list[str] = []
        later = []
        for kind, year, month, part, path in _dated_files(previous):
            if kind == _LATER:
                later.append((year, month, part, path))
            elif (year, month or 12) >= (cutoff.year, cutoff.month):
                self._window.append(path)
        if later:
            year, month, _, self._path = min(later)
            self._ends = date(year + 1, 1, 1) if month in (0, 12) else date(year, month + 1, 1)
            self._window = []
        self._window.sort()
        self._found: _Member | None = None
        self._looked = False
        #: whether the archive was seen to hold no event of the window (:meth:`_last_ended`)
        self._none_left = False

    def first(self) -> _Member | None:
        """The first event calendar.ics left out; None when it cannot be told, or when the
        archive holds no event of the window (:meth:`holds`)."""
        if not self._looked:
            self._looked = True
            self._found = self._first_later() if self._ends is not None else self._last_ended()
        return self._found

    def _first_later(self) -> _Member | None:
        data = _read_out(self._out_dir, self._previous, self._path)
        start = _members_at(data) if data is not None else -1
        if data is None or start < 0 or self._ends is None:
            return None
        day = _start_day(data, start)
        if day is None or day > self._ends - timedelta(days=3):
            return None
        return self._zones.first(data, start)

    def _last_ended(self) -> _Member | None:
        found: _Member | None = None
        for path in self._window:
            data = _read_out(self._out_dir, self._previous, path)
            if data is None:
                return None
            for member in self._zones.members(data):
                if member is None:
                    return None
                ended = member.last_day
                if ended is None or ended < self._cutoff:
                    continue
                if found is None or (ended, member.id) > (found.last_day, found.id):
                    found = member
        self._none_left = found is None
        return found

    def still_later(self, event: Event, size: int, main: bytes | None) -> bool:
        """Whether calendar.ics still has no room for ``event`` of the later calendars, its
        components shrunk to ``size`` bytes: sure when it is not the first of them in order;
        else when calendar.ics as ``main`` (None: not known) is too large with it after."""
        if self._ends is None:
            return False
        start = event.local_start
        day = start.date() if isinstance(start, datetime) else start
        if day >= self._ends + timedelta(days=2):
            return True
        found = self.first()
        if found is None:
            return False
        if found.uid != event.uid:
            return True
        return main is not None and self.none(main, size)

    def holds(self, main: bytes, edited: Container[str]) -> bool:
        """Whether calendar.ics as ``main`` (its events shrunk, none of them moved) still
        leaves out what it left out, none of the events of ``edited`` (UIDs) being the
        first one left out."""
        if self._ends is None and not self._window:
            return True  # (it left none out)
        found = self.first()
        if found is None:
            return self._none_left
        return found.uid not in edited and self.none(main)

    def none(self, main: bytes, first_size: int | None = None) -> bool:
        """Whether calendar.ics as ``main`` has surely no room for the first event left out,
        of ``first_size`` bytes (its own: None)."""
        found = self.first()
        if found is None or _members_at(main) < 0:
            return False
        # (calendar.ics as out/ holds it: its events' components are their files')
        covered = self._zones.covered(self.main, also=found.zones)
        if covered is None:
            return False
        size = found.size if first_size is None else first_size
        total = _shortest(self._settings, _main_header(self._context)) + _members(main)
        return total + size + covered > self._settings.calendars.max_bytes


def _shortest(settings: Settings, header: Header) -> int:
    """The size of a calendar under ``header`` without events and VTIMEZONEs, its head the
    shortest it may be (no zone line)."""
    refresh = settings.calendars.refresh_hours
    return len(_head_bytes(header, refresh, settings.site_url, None)) + len(_END)


def _members(data: bytes) -> int:
    """The size of the events' components of a calendar (:func:`_members_at`)."""
    return len(data) - _members_at(data) - len(_END)


def _start_day(data: bytes, start: int) -> date | None:
    """The day of DTSTART (as written: local, or in UTC) of the component at ``start``."""
    end = data.find(_COMPONENT_END, start)
    found = _DTSTART.search(data, start, end) if end >= 0 else None
    if found is None:
        return None
    try:
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None


_DTSTART = re.compile(rb"\r\nDTSTART[^:\r\n]*:(\d{4})(\d\d)(\d\d)")


def _current_calendars(
    out_dir: Path,
    previous: Manifest,
    settings: Settings,
    context: BuildContext,
    changes: list[_Edit],
    main: bytes,
    room: _Room,
) -> dict[str, bytes] | None:
    """calendar.ics (``main``: as out/ holds it), the other subscription calendars and
    calendar.json, with the components of the edited events calendar.ics holds replaced;
    None when one of them is not found there once, or when the new sizes could change which
    events calendar.ics holds.

    calendar.ics holds every event to come and every one that ended within the look-back
    window when every subscription calendar fits so; else the longest run of them for which
    every one fits, in an order (those to come first, soonest first, then the others, those
    that ended last first: :func:`eventfeed.ical._fit`). Whether a run fits depends on its
    events alone, and a longer one never fits where a shorter one does not. So with its
    zones and calendars the same, an event of the run may grow while every calendar that
    holds it still fits (the run still fits, and a longer one still does not), and may
    shrink when calendar.ics held all (the whole fits), or when it still has no room for
    the first event it left out (:class:`_Room`)."""
    if not any(change.filed == _MAIN for change in changes):
        return {}
    limit = settings.calendars.max_bytes
    edits: dict[str, list[tuple[bytes, bytes]]] = {}
    for change in changes:
        if change.filed != _MAIN:
            continue
        old = _components(change.old_made, change.old)
        new = _components(change.new_made, change.new)
        for path in _subscribed(context, change.new):
            edits.setdefault(path, []).append((old, new))
        olds, news = (
            compile_event(event, state).jcal.encode()
            for event, state in ((change.old, change.before), (change.new, change.after))
        )
        edits.setdefault(paths.JCAL, []).append((olds, news))
    made: dict[str, bytes] = {}
    shrunk = False
    for path, pairs in edits.items():
        data = main if path == paths.CALENDAR else _read_out(out_dir, previous, path)
        if data is None:
            return None
        spliced = _replaced(data, pairs)
        if spliced is None:
            return None
        if path != paths.JCAL:  # (calendar.json is never split)
            if len(spliced) > len(data) and len(spliced) > limit:
                return None
            shrunk = shrunk or len(spliced) < len(data)
        made[path] = spliced
    if shrunk and not room.holds(made[paths.CALENDAR], {change.new.uid for change in changes}):
        return None
    return made


def _subscribed(context: BuildContext, event: Event) -> list[str]:
    """The subscription calendars that hold ``event`` when calendar.ics does."""
    found = [paths.CALENDAR]
    for kind, value in _groups(context, event):
        is_collection = kind == "collection"
        found.append(
            paths.collection_calendar(value) if is_collection else paths.facet_calendar(kind, value)
        )
    return found


def _replaced(data: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes | None:
    """``data`` with each ``old`` of ``pairs`` replaced by its ``new``; None unless each is
    found there exactly once."""
    places = []
    for old, new in pairs:
        if data.count(old) != 1:
            return None
        places.append((data.index(old), old, new))
    places.sort()
    if any(where < at + len(old) for (at, old, _), (where, _, _) in itertools.pairwise(places)):
        return None  # (two overlap)
    return _put(data, places)


def _put(data: bytes, places: list[tuple[int, bytes, bytes]]) -> bytes:
    """``data`` with each ``old`` found at ``where`` (the places apart) replaced by ``new``."""
    pieces, at = [], 0
    for where, old, new in sorted(places):
        pieces += [data[at:where], new]
        at = where + len(old)
    pieces.append(data[at:])
    return b"".join(pieces)


def _read_out(out_dir: Path, previous: Manifest, path: str) -> bytes | None:
    """A file of out/, when it holds what the manifest says."""
    try:
        data = (out_dir / path).read_bytes()
    except OSError:
        return None
    return data if previous.files.get(path) == file_digest(data) else None


def _spliced(
    out_dir: Path,
    previous: Manifest,
    settings: Settings,
    context: BuildContext,
    kind: str,
    year: int,
    edits: list[tuple[int, bytes, bytes]],
    zones: _Zones,
) -> dict[str, bytes] | None:
    """The dated calendars of ``kind`` (the archive, the later calendars) and ``year`` that
    hold the components ``old`` of the events edited (each filed in the month given: the
    archive by the last day, the later calendars by the start), with ``new`` in their
    place; None when they cannot be shown to keep their calendars and their members
    (``eventfeed.ical._dated``).

    With their zones, starts and last days unchanged, the events keep their places among
    these calendars, and every calendar its head and zones; only sizes change. A year of
    them is one calendar when it fits ``calendars.max_bytes``, else one per month, a month
    that does not fit in parts, each as many events as fit, in order. So:

    * each calendar that grew still fits (its beginnings grow with each event, an event
      being larger than the zone line a later one may remove from the head: the whole is the
      largest);
    * a year or month that did not fit still does not: sure when it grew; when it shrank,
      its size is bounded from below by its members and the shortest head (the head's
      zone line is all it leaves out), their VTIMEZONEs counted when the rest fits
      (:class:`_Zones`);
    * a part still ends where it did, the first event of the next part not fitting after
      it: sure when the two together grew; when they shrank, bounded from below as above
      (the part's members, the next part's first event, their VTIMEZONEs).
    """
    limit = settings.calendars.max_bytes

    def shortest(month: int | None, part: int | None) -> int:
        return _shortest(settings, _dated_header(context, kind, year, month, part))

    # the calendars of each month edited (all the year's: None)
    named = paths.archive_calendar if kind == _ARCHIVE else paths.later_calendar
    whole = named(year)
    layouts: dict[int | None, list[str]] = {}
    if whole in previous.files:
        layouts[None] = [whole]
    else:
        for number in sorted({month for month, _, _ in edits}):
            layout = [named(year, number)]
            if layout[0] not in previous.files:
                layout = []
                while named(year, number, len(layout) + 1) in previous.files:
                    layout.append(named(year, number, len(layout) + 1))
            layouts[number] = layout
    held: dict[str, bytes] = {}
    for layout in layouts.values():
        for path in layout:
            data = _read_out(out_dir, previous, path)
            if data is None or _members_at(data) < 0:
                return None
            held[path] = data
    # where each event's components are
    places: dict[str, list[tuple[int, bytes, bytes]]] = {}
    for month, old, new in edits:
        found = [p for p in layouts.get(None) or layouts[month] if old in held[p]]
        if len(found) != 1 or held[found[0]].count(old) != 1:
            return None
        places.setdefault(found[0], []).append((held[found[0]].index(old), old, new))
    spliced: dict[str, bytes] = {}
    deltas: dict[str, int] = {}
    for path, placed in places.items():
        data = held[path]
        spliced[path] = _put(data, placed)
        deltas[path] = len(spliced[path]) - len(data)
        if deltas[path] > 0 and len(spliced[path]) > limit:
            return None
    shrunk = sum(deltas.values())
    if None not in layouts and shrunk < 0:
        # the year did not fit: its members (and their VTIMEZONEs) still do not
        total, year_files = 0, []
        for path in previous.files:
            if path.startswith(whole[: -len(".ics")] + "-"):
                other = held.get(path) or _read_out(out_dir, previous, path)
                if other is None or _members_at(other) < 0:
                    return None
                total += _members(other)
                year_files.append(other)
        if total + shrunk + shortest(None, None) <= limit:
            size = zones.covered(*year_files)
            if size is None or total + shrunk + shortest(None, None) + size <= limit:
                return None
    for key, layout in layouts.items():
        if key is None or len(layout) < 2:
            continue
        month = key
        grown = sum(deltas.get(path, 0) for path in layout)
        bound = sum(_members(held[p]) for p in layout) + grown + shortest(month, None)
        if grown < 0 and bound <= limit:  # (the month did not fit)
            size = zones.covered(*(held[p] for p in layout))
            if size is None or bound + size <= limit:
                return None
        for number, (path, following) in enumerate(itertools.pairwise(layout), start=1):
            after = held[following]
            start = _members_at(after)
            first = [(old, new) for where, old, new in places.get(following, ()) if where == start]
            together = deltas.get(path, 0) + sum(len(new) - len(old) for old, new in first)
            if together >= 0:
                continue  # (nothing of the two changed, or they grew)
            if first:
                first_size = len(first[0][1])
            else:  # at least its first component
                end = after.find(_COMPONENT_END, start)
                if end < 0:
                    return None
                first_size = end + len(_COMPONENT_END) - start
            own = _members(held[path]) + deltas.get(path, 0)
            if own + first_size + shortest(month, number) > limit:
                continue  # (sure without the VTIMEZONEs)
            # (the VTIMEZONEs, and the next part's first event whole)
            following_first = zones.first(after, start)
            if following_first is None:
                return None
            if not first:
                first_size = following_first.size
            size = zones.covered(held[path], also=following_first.zones)
            if size is None or own + first_size + size + shortest(month, number) <= limit:
                return None
    return spliced
