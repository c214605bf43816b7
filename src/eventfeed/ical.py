"""iCalendar subscriptions, per-event files and jCal (RFC 5545, RFC 7986, RFC 7265).

What is written (paths from :mod:`eventfeed.paths`):

* ``calendar.ics``: every event that ended within ``calendars.lookback_days`` before the
  build's day, and every coming one; ``calendar.json``: the same calendar as jCal.
* ``calendars/<collection>.ics`` per collection of the settings, and with ``by_kind``,
  ``by_region``, ``by_language`` one calendar per value that occurs in any record (so a
  subscription keeps working while its events age into the archive).
* ``calendars/archive/<year>.ics``: events that ended before the look-back window, by the
  year of their last day (for a series: of its last occurrence). A series without end never
  goes there.
* ``events/<id>.ics``: one event (a whole series with its overrides) for "add to my calendar".

Each event is in exactly the calendars it belongs to; overrides travel with their master.

**Size.** When ``calendar.ics`` (which holds every event of every subscription calendar) would
be larger than ``calendars.max_bytes``, the events that ended longest ago move to the archive
of their year until it fits. When the coming events alone are too large, all past events go
to the archive and calendar.ics keeps the earliest coming events that fit; the others go to
``calendars/later/<year>.ics`` by the year they start. Every subscription calendar uses the
same split, so none is larger than calendar.ics. Nothing is dropped: every event is in exactly
one of calendar.ics, an archive or a later calendar, and always in its own file. An archive or
later calendar of a year larger than the limit is made per month instead
(``calendars/archive/<year>-<mm>.ics``), and a month larger than it in parts of consecutive
events that fit (``<year>-<mm>-part<n>.ics``): only a calendar of one event can exceed it.

**Assembly.** Each event's components are built and serialised once per build, each
VTIMEZONE once per zone and range of years (:mod:`eventfeed.vtimezone`); a calendar is its
serialised header with those serialised components placed before ``END:VCALENDAR``. Events
are written by :class:`eventfeed.serialise.Writer`, which gives icalendar's bytes (icalendar
writes the first property of each shape, and is the reference the tests compare with) at a
fraction of its cost; headers and VTIMEZONEs by icalendar. Content lines are CRLF, folded at
75 octets, never inside a UTF-8 sequence.

**Calendar properties.** PRODID is a fixed string without a version, so that upgrading
eventfeed does not change every published byte (clients never interpret it). There is no
METHOD: these are published calendars, not scheduling messages (RFC 5546), and Outlook treats
a METHOD as an invitation. NAME (RFC 7986) and X-WR-CALNAME give the name, DESCRIPTION and
X-WR-CALDESC the description, REFRESH-INTERVAL and X-PUBLISHED-TTL how often to reload, SOURCE
where to reload from and URL the site. X-WR-TIMEZONE is written only when every event with a
time in that calendar uses one zone: clients take it as the calendar's zone, and it could
only mislead in a calendar of several zones. Per-event files carry none of the subscription
properties: Outlook opens a file that has a calendar name as a new calendar instead of adding
the event to the reader's own.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import cast

from icalendar import Calendar
from icalendar.prop import vDuration, vText

from . import paths
from .build import Artifacts, BuildContext, EventPart, Lazy
from .errors import EventfeedError
from .event import Event
from .forked import Forked
from .serialise import component_bytes
from .vevent import Compiled, compile_event, series_last_day
from .vtimezone import vtimezone, vtimezone_bytes

PRODID = "-//eventfeed//eventfeed calendars//EN"
_END = b"END:VCALENDAR\r\n"


class CalendarTooLarge(EventfeedError):
    """A collection calendar exceeds ``calendars.max_bytes`` though calendar.ics fits."""


@dataclass(frozen=True)
class Header:
    """What a subscription calendar says about itself."""

    path: str
    name: str
    description: str
    url: str


def compile_event_files(context: BuildContext, event: Event) -> EventPart:
    """One event's own file, and (as the note) where its components are in that file and
    what the calendars need to know of them.

    The components' bytes are not repeated in the note: the calendars read them from the
    event's file (:attr:`BuildContext.files`), so that a build of many events does not hold
    them all in memory. Nor is their jCal text: only the few hundred events that fit in
    calendar.json are ever shown as jCal, and :func:`_jcal` makes theirs (making it for every
    event that could be there cost a quarter of this step).
    """
    state = context.history[event.id]
    compiled = compile_event(event, state, with_jcal=False)
    # what _calendar() joins for a calendar of this one event, without making it a _Part
    zones = b"".join([vtimezone_bytes(*r) for r in _zone_ranges([compiled])])
    data = b"".join((_EVENT_HEAD, zones, compiled.data, _END))
    offset = len(_EVENT_HEAD) + len(zones)
    note = (offset, len(compiled.data), compiled.zones, compiled.last_day)
    return {paths.event_ics(event.id): data}, note


def event_key(context: BuildContext, event: Event) -> tuple[str, date | None]:
    """The build's day changes the note only by whether the event can be in calendar.ics:
    it can up to the day its look-back window ends (then on no later day)."""
    last = series_last_day(event)
    if last is None:
        return "current", None
    if last < _cutoff(context):
        return "archived", None
    try:
        return "current", last + timedelta(days=context.settings.calendars.lookback_days)
    except OverflowError:  # past the last date there is
        return "current", None


def _cutoff(context: BuildContext) -> date:
    """Events that ended before this day are in no subscription calendar, only an archive."""
    return context.as_of - timedelta(days=context.settings.calendars.lookback_days)


@dataclass(frozen=True, slots=True)
class _Part:
    """An event's serialised components as the calendars see them: their bytes are read (from
    the event's own file) only when a calendar is joined, not while sizes are compared."""

    event: Event
    size: int
    zones: tuple[tuple[str, int, int], ...]
    last_day: date | None
    #: the jCal text, :func:`_packed`; empty when :func:`_jcal` makes it
    jcal: bytes
    #: the file that holds the components, from ``offset`` on
    files: Mapping[str, bytes]
    path: str
    offset: int = 0
    #: which bytes these are and what a calendar's key needs of them (the digest of the
    #: event's file, where in it, all-day and zones); empty when not known
    ident: str = ""

    @property
    def data(self) -> bytes:
        if isinstance(self.files, Artifacts):
            return self.files.piece(self.path, self.offset, self.size)
        return self.files[self.path][self.offset : self.offset + self.size]

    @classmethod
    def of(cls, compiled: Compiled, jcal: bytes = b"") -> _Part:
        data = compiled.data
        return cls(
            compiled.event,
            len(data),
            compiled.zones,
            compiled.last_day,
            jcal,
            {"": data},
            "",
        )


def _compiled(context: BuildContext, event: Event) -> _Part:
    note = context.note("ical", event)
    path = paths.event_ics(event.id)
    files = context.files
    if note is None or path not in files:  # the per-event step has not run
        compiled = compile_event(event, context.history[event.id])
        return _Part.of(compiled, _packed(compiled.jcal))
    offset, size, zones, last_day = cast(
        tuple[int, int, tuple[tuple[str, int, int], ...], date | None], note
    )
    ident = f"{files.digest(path)}:{offset}:{size}:{event.all_day}:{zones}"
    return _Part(event, size, zones, last_day, b"", files, path, offset, ident)


def compile_calendars(context: BuildContext) -> Mapping[str, bytes]:
    """Every calendar but the per-event files (:func:`compile_event_files`).

    Which events go where, and the size of every subscription calendar, are worked out here;
    each calendar's bytes are joined only when the build takes it (:class:`~.build.Lazy`),
    so that the archives of many events are not all held in memory at once, and a calendar
    whose members are the bytes of the last build is not joined at all.
    """
    settings = context.settings
    order = [_compiled(context, e) for e in context.chronological()]
    cutoff = _cutoff(context)
    current = [c for c in order if not _ended_before(c, cutoff)]
    groups = {c.event.id: _groups(context, c.event) for c in current}
    current, later = _fit(context, current, groups)
    kept = {c.event.id for c in (*current, *later)}
    archived = [c for c in order if c.event.id not in kept]

    out = Lazy()
    limit = settings.calendars.max_bytes
    for header, members in _subscriptions(context, groups, order, current):
        size = _size_without_zones(context, header, members) + _zones_size(members)
        if size > limit:
            raise CalendarTooLarge(_too_large(header.path, size, limit))
        _add(out, context, header, members)
    # (an archived event without a last day, a series without end, is in no archive)
    for kind, parts in ((_ARCHIVE, [c for c in archived if c.last_day]), (_LATER, later)):
        by_year: dict[int, list[_Part]] = {}
        for c in parts:
            by_year.setdefault(_filed_on(kind, c).year, []).append(c)
        for year in sorted(by_year):
            for header, members in _dated(context, kind, year, by_year[year]):
                _add(out, context, header, members)
    # calendar.json shows the events of calendar.ics, each converted from the same components
    main = _main_header(context)
    key = functools.partial(_members_key, context, main, current)
    converted = _Converted(context, current)
    jcal = functools.partial(_jcal, context, main, current, converted)
    out.add_parts(paths.JCAL, jcal, key, begin=converted.begin)
    return out


#: From this many events in calendar.json on, their jCal is made in a forked process while
#: the other calendars are made (:class:`_Converted`).
CONVERTED_BESIDE = 128


class _Converted:
    """The jCal of calendar.json's events (:func:`_members_jcal`), made in a forked process
    once the build knows it makes calendar.json, while it makes the other calendars: their
    conversion is about a third of the calendars' whole step (10,000 events: 672 in
    calendar.json, 0.2 s), which otherwise runs alone on its core at the end of a cold
    build. Anything wrong there, and :func:`_jcal` makes them itself."""

    def __init__(self, context: BuildContext, members: Sequence[_Part]) -> None:
        self.context = context
        self.members = members
        self._forked: Forked | None = None

    def begin(self) -> None:
        if len(self.members) >= CONVERTED_BESIDE and (os.cpu_count() or 1) >= 2:
            self._forked = Forked.start(lambda: _members_jcal(self.context, self.members))

    def take(self) -> bytes | None:
        """What the process made (None if it was not started, or failed); once."""
        forked, self._forked = self._forked, None
        return forked.output() if forked is not None else None

    def __del__(self) -> None:
        # Not taken (the step failed before calendar.json was made): the process, which
        # would wait to hand over what it made, is stopped.
        forked, self._forked = self._forked, None
        if forked is not None:
            forked.stop()


def _add(out: Lazy, context: BuildContext, header: Header, members: list[_Part]) -> None:
    """A calendar, joined when the build takes it, under :func:`_members_key` (so an unchanged
    archive is not joined again)."""
    key = functools.partial(_members_key, context, header, members)
    out.add_parts(header.path, functools.partial(_calendar_parts, context, header, members), key)


def _members_key(context: BuildContext, header: Header, members: Sequence[_Part]) -> str | None:
    """A digest of what a calendar of ``members`` under ``header`` is made of: the header, the
    settings of calendars and every member's bytes (its components in its own file); None
    when a member's bytes are not known by their digest."""
    if not all(c.ident for c in members):
        return None
    digest = hashlib.sha256()
    digest.update(repr(header).encode())
    digest.update(b"\n" + context.settings.calendars.model_dump_json().encode())
    for c in members:  # fed a member at a time: an archive may hold a great many
        digest.update(b"\n" + c.ident.encode())
    return digest.hexdigest()


# --- membership --------------------------------------------------------------------------

#: A subscription calendar but calendar.ics: ``("collection", name)`` or ``(facet, value)``.
_Group = tuple[str, str]
#: The facets with a calendar per value, in the order their calendars are listed.
_FACETS = ("kind", "region", "language")


def _ended_before(c: _Part, day: date) -> bool:
    return c.last_day is not None and c.last_day < day


def _main_header(context: BuildContext) -> Header:
    s = context.settings
    return _header(context, paths.CALENDAR, s.title, s.description or s.title)


def _groups(context: BuildContext, event: Event, *, collections: bool = True) -> tuple[_Group, ...]:
    """The calendars but calendar.ics that ``event`` belongs to when it is current, in the
    order they are listed (:func:`_calendar_list`); only its facet values without
    ``collections``."""
    s = context.settings.calendars
    names = sorted(context.memberships(event)) if collections else ()
    found = [("collection", name) for name in names]
    rec = event.brief
    for facet, enabled, value in (
        ("kind", s.by_kind, rec.kind),
        ("region", s.by_region, rec.region),
        ("language", s.by_language, event.language),
    ):
        if enabled and value:
            found.append((facet, str(value).lower()))
    return tuple(found)


def _calendar_list(
    context: BuildContext, facet_values: Iterable[_Group]
) -> list[tuple[_Group | None, Header]]:
    """Every subscription calendar in order: calendar.ics (as None), each collection of the
    settings, and a calendar per facet value in ``facet_values``."""
    s = context.settings
    listed: list[tuple[_Group | None, Header]] = [(None, _main_header(context))]
    for name in sorted(s.collections):
        spec = s.collections[name]
        header = _header(
            context,
            paths.collection_calendar(name),
            f"{s.title}: {spec.title}",
            spec.description or f"{spec.title} from {s.title}.",
            url=s.site_url + paths.collection_page(name),
        )
        listed.append((("collection", name), header))
    values = sorted(
        ((_FACETS.index(facet), value) for facet, value in facet_values if facet in _FACETS)
    )
    for position, value in values:
        facet = _FACETS[position]
        label = value.replace("-", " ").capitalize() if facet != "language" else value
        header = _header(
            context,
            paths.facet_calendar(facet, value),
            f"{s.title}: {label}",
            f"Events of {s.title} with {facet} {value}.",
        )
        listed.append(((facet, value), header))
    return listed


def _subscriptions(
    context: BuildContext,
    groups: Mapping[str, tuple[_Group, ...]],
    order: Sequence[_Part],
    current: Sequence[_Part],
) -> Iterable[tuple[Header, list[_Part]]]:
    """Each subscription calendar and its share of ``current``; a facet value has its
    calendar when any event of ``order`` has it (``groups``: :func:`_groups` by event id, for
    every event of ``current`` at least)."""
    members: dict[_Group, list[_Part]] = {}
    for c in current:
        for group in groups[c.event.id]:
            found = members.get(group)
            if found is None:
                members[group] = [c]
            else:
                found.append(c)
    values: set[_Group] = set()
    for c in order:
        own = groups.get(c.event.id)
        values.update(own if own is not None else _groups(context, c.event, collections=False))
    for listed, header in _calendar_list(context, values):
        yield header, list(current) if listed is None else members.get(listed, [])


def _fit(
    context: BuildContext, current: list[_Part], groups: Mapping[str, tuple[_Group, ...]]
) -> tuple[list[_Part], list[_Part]]:
    """Split ``current`` so that calendar.ics fits: (kept, coming events for later calendars).

    Past events go to the archive first, those that ended longest ago first; when the coming
    events alone are too large, the earliest that fit are kept.

    Every candidate is a beginning of one sequence: the coming events in order, then the
    past ones, those that ended longest ago last. So the searches ask :class:`_Sizes`, which
    has worked out each calendar's share of every beginning once, instead of sorting the
    events into calendars again for every candidate.
    """
    movable = sorted(
        (c for c in current if c.last_day is not None and c.last_day < context.as_of),
        key=lambda c: (c.last_day, c.event.id),
    )
    gone = {c.event.id for c in movable}
    coming = [c for c in current if c.event.id not in gone]
    sizes = _Sizes(context, [*coming, *reversed(movable)], groups)
    fits = sizes.fits
    if fits(len(current)):
        return current, []

    def without(count: int) -> list[_Part]:
        gone = {c.event.id for c in movable[:count]}
        return [c for c in current if c.event.id not in gone]

    if fits(len(coming)):  # the fewest past events to move: binary search, sizes only shrink
        low, high = 0, len(movable)
        while low < high:
            middle = (low + high) // 2
            if fits(len(current) - middle):
                high = middle
            else:
                low = middle + 1
        return without(low), []
    low, high = 0, len(coming)  # the most coming events, in order, that fit
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return coming[:low], coming[low:]


@dataclass
class _Share:
    """One subscription calendar's members among a sequence of events, for any beginning of
    it: positions in the sequence, and running sums, minima and maxima over them."""

    header: Header
    #: positions of the members, increasing; None for calendar.ics (every event)
    positions: list[int] | None
    #: sizes[j]: the size of the first j members
    sizes: list[int] = field(default_factory=lambda: [0])
    #: the first position of a member with a time written in UTC (no X-WR-TIMEZONE from it)
    utc: int | None = None
    #: by TZID: the first position of a member with a time in that zone
    timed: dict[str, int] = field(default_factory=dict)
    #: by TZID: the positions where the range of years of the members naming the zone grows,
    #: and that range from there
    ranges: dict[str, tuple[list[int], list[tuple[int, int]]]] = field(default_factory=dict)

    def count(self, length: int) -> int:
        """How many members are among the first ``length`` events of the sequence."""
        if self.positions is None:
            return length
        return bisect.bisect_left(self.positions, length)

    def zone(self, length: int) -> str | None:
        """:func:`_calendar_zone` of the members among the first ``length`` events."""
        if self.utc is not None and self.utc < length:
            return None
        zones = [tzid for tzid, first in self.timed.items() if first < length]
        return zones[0] if len(zones) == 1 else None

    def zone_ranges(self, length: int) -> list[tuple[str, int, int]]:
        """:func:`_zone_ranges` of the members among the first ``length`` events."""
        found = []
        for tzid in sorted(self.ranges):
            positions, ranges = self.ranges[tzid]
            j = bisect.bisect_left(positions, length)
            if j:
                found.append((tzid, *ranges[j - 1]))
        return found

    def add(self, position: int, c: _Part, timed: bool) -> None:
        self.sizes.append(self.sizes[-1] + c.size)
        if timed:
            if not c.zones and self.utc is None:
                self.utc = position
            for tzid, _, _ in c.zones:
                self.timed.setdefault(tzid, position)
        for tzid, low, high in c.zones:
            grown = self.ranges.get(tzid)
            if grown is None:
                self.ranges[tzid] = ([position], [(low, high)])
                continue
            first, last = grown[1][-1]
            if low < first or high > last:
                grown[0].append(position)
                grown[1].append((min(first, low), max(last, high)))


class _Sizes:
    """Whether calendar.ics and every other subscription calendar fit when calendar.ics holds
    the first ``length`` events of ``sequence``: the same answer as measuring the calendars of
    those events with :func:`_size_without_zones` and :func:`_zones_size`, in the same order
    (so the same VTIMEZONEs are made), with each event sorted into its calendars once."""

    def __init__(
        self,
        context: BuildContext,
        sequence: Sequence[_Part],
        groups: Mapping[str, tuple[_Group, ...]],
    ) -> None:
        settings = context.settings
        self.limit = settings.calendars.max_bytes
        self.refresh_hours = settings.calendars.refresh_hours
        self.site_url = settings.site_url
        main = _Share(_main_header(context), None)
        shares: dict[_Group, _Share] = {}
        #: the first position of an event with each facet value (it has a calendar from there)
        self.first: dict[_Group, int] = {}
        for position, c in enumerate(sequence):
            timed = not c.event.all_day
            main.add(position, c, timed)
            for group in groups[c.event.id]:
                share = shares.get(group)
                if share is None:
                    self.first[group] = position
                    share = shares[group] = _Share(main.header, [])
                assert share.positions is not None
                share.positions.append(position)
                share.add(position, c, timed)
        self.shares: list[tuple[_Group | None, _Share]] = []
        for listed, header in _calendar_list(context, self.first):
            # a collection without events has a calendar all the same
            share = main if listed is None else shares.get(listed) or _Share(header, [])
            share.header = header
            self.shares.append((listed, share))

    def fits(self, length: int) -> bool:
        # Every subscription calendar takes its share of the events; a facet calendar that
        # holds them all (one language) has a longer header than calendar.ics, so each is
        # measured, by size alone: nothing is joined while searching.
        # The VTIMEZONEs are measured only when the rest fits: making them costs the most.
        measured = []
        for group, share in self.shares:
            if group is not None and group[0] != "collection" and self.first[group] >= length:
                continue  # no event of the beginning has this facet value: no calendar
            head = _head_bytes(share.header, self.refresh_hours, self.site_url, share.zone(length))
            size = len(head) + len(_END) + share.sizes[share.count(length)]
            if size > self.limit:
                return False
            measured.append((size, share))
        return all(
            size + sum(len(vtimezone_bytes(*r)) for r in share.zone_ranges(length)) <= self.limit
            for size, share in measured
        )


#: The two kinds of calendars by date (:func:`_dated`): the archive, by the year and month of
#: an event's last day, and the later calendars, by those it starts in (:func:`_filed_on`).
_ARCHIVE, _LATER = "archive", "later"


def _filed_on(kind: str, c: _Part) -> date:
    """The day whose year and month file ``c`` among the calendars of ``kind``."""
    if kind == _ARCHIVE:
        assert c.last_day is not None
        return c.last_day
    return c.event.local_start  # (a date, or a date-time: its year and month)


def _dated(
    context: BuildContext, kind: str, year: int, members: list[_Part]
) -> Iterator[tuple[Header, list[_Part]]]:
    """The calendars of one year of the archive or of the later calendars, in order, each
    with its members: the whole year when it fits ``calendars.max_bytes``; else one calendar
    per month, and a month that does not fit either in parts, each holding as many of the
    month's events, in order, as fit (one at least, however large: a year or a month of one
    event is not split). Every event of ``members`` is in exactly one of them.

    The quick rebuild counts on these rules to keep an archive's calendars when an event's
    size changes (:func:`eventfeed.quick._spliced`): a change here is a change there
    (``tests/test_quick.py`` compares the two builds)."""
    limit = context.settings.calendars.max_bytes
    whole = _dated_header(context, kind, year, None, None)
    if _whole(context, whole, members, limit):
        yield whole, members
        return
    months: dict[int, list[_Part]] = {}
    for c in members:
        months.setdefault(_filed_on(kind, c).month, []).append(c)
    for month in sorted(months):
        share = months[month]
        header = _dated_header(context, kind, year, month, None)
        if _whole(context, header, share, limit):
            yield header, share
            continue
        part = 1
        while share:
            header = _dated_header(context, kind, year, month, part)
            count = _fitting(context, header, share, limit)
            yield header, share[:count]
            share = share[count:]
            part += 1


def _whole(context: BuildContext, header: Header, members: Sequence[_Part], limit: int) -> bool:
    """Whether the calendar of ``members`` under ``header`` is made whole: it fits within
    ``limit`` bytes, or holds one event."""
    if len(members) == 1:
        return True
    return _size_without_zones(context, header, members) + _zones_size(members) <= limit


def _fitting(context: BuildContext, header: Header, members: Sequence[_Part], limit: int) -> int:
    """How many of ``members``, from the first, a calendar under ``header`` holds within
    ``limit`` bytes (one at least). Measured as :func:`_size_without_zones` and
    :func:`_zones_size` measure (as :class:`_Share` does: the zone the header names, each
    zone's range of years), kept running as each event is added. :class:`_Share` itself,
    asked after each event, looks at every zone it has seen each time: 10,000 records with
    a limit of 400 kB took 0.45 s that way, 0.22 s so (profiled, half of it the headers)."""
    settings = context.settings
    refresh, site_url = settings.calendars.refresh_hours, settings.site_url
    heads: dict[str | None, int] = {}
    ranges: dict[str, tuple[int, int]] = {}
    zone_sizes: dict[str, int] = {}
    timed: dict[str, None] = {}  # the zones of events with a time, in order
    utc = False  # an event with a time in UTC: no zone for the header to name
    size = len(_END)  # the members' and the VTIMEZONEs' bytes, and the end
    for position, c in enumerate(members):
        size += c.size
        if not c.event.all_day:
            utc = utc or not c.zones
            for tzid, _, _ in c.zones:
                timed.setdefault(tzid)
        for tzid, first, last in c.zones:
            known = ranges.get(tzid)
            grown = (first, last) if known is None else (min(known[0], first), max(known[1], last))
            if grown != known:
                ranges[tzid] = grown
                length = len(vtimezone_bytes(tzid, *grown))
                size += length - zone_sizes.get(tzid, 0)
                zone_sizes[tzid] = length
        zone = next(iter(timed)) if len(timed) == 1 and not utc else None
        head = heads.get(zone)
        if head is None:
            head = heads[zone] = len(_head_bytes(header, refresh, site_url, zone))
        if head + size > limit and position:
            return position
    return len(members)


def _dated_header(
    context: BuildContext, kind: str, year: int, month: int | None, part: int | None
) -> Header:
    """The header of an archive or later calendar of a year, a month or a part of a month."""
    title = context.settings.title
    when = str(year) if month is None else f"{year}-{month:02d}"
    if part is not None:
        when += f", part {part}"
    if kind == _ARCHIVE:
        return _header(
            context,
            paths.archive_calendar(year, month, part),
            f"{title}: archive {when}",
            f"Events of {title} that ended in {when}.",
        )
    return _header(
        context,
        paths.later_calendar(year, month, part),
        f"{title}: more in {when}",
        f"Coming events of {title} in {when} that the main calendar has no room for.",
    )


def _too_large(path: str, size: int, limit: int) -> str:
    return (
        f"{path} would be {size:,} bytes, over calendars.max_bytes ({limit:,}) in the site "
        "settings, though calendar.ics fits; raise the limit, or shorten the collection's "
        "description"
    )


# --- assembly ----------------------------------------------------------------------------


def _header(
    context: BuildContext, path: str, name: str, description: str, url: str | None = None
) -> Header:
    return Header(path, name, description.strip(), url or context.settings.site_url)


def _bare() -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    return cal


_EVENT_HEAD = component_bytes(_bare())[: -len(_END)]


def _calendar_object(
    context: BuildContext, header: Header | None, members: Sequence[_Part]
) -> Calendar:
    if header is None:
        return _bare()
    settings = context.settings
    return _subscription(
        header, settings.calendars.refresh_hours, settings.site_url, _calendar_zone(members)
    )


def _subscription(header: Header, refresh_hours: int, site_url: str, zone: str | None) -> Calendar:
    """A subscription calendar's own properties; ``zone`` for X-WR-TIMEZONE."""
    cal = _bare()
    refresh = timedelta(hours=refresh_hours)
    # Non-standard (X-) and newer (RFC 7986) properties are typed explicitly, so their text
    # is escaped and their duration written as one (icalendar does not know them all).
    cal.add("name", vText(header.name))
    cal.add("x-wr-calname", vText(header.name))
    cal.add("description", vText(header.description))
    cal.add("x-wr-caldesc", vText(header.description))
    cal.add("refresh-interval", vDuration(refresh), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(refresh))
    cal.add("source", site_url + header.path, parameters={"VALUE": "URI"})
    cal.add("url", header.url)
    if zone is not None:
        cal.add("x-wr-timezone", vText(zone))
    return cal


def _calendar_zone(members: Sequence[_Part]) -> str | None:
    """The zone for X-WR-TIMEZONE: the one zone of every event with a time, if there is one."""
    zones: set[str] = set()
    for c in members:
        if c.event.all_day:
            continue
        if not c.zones:
            return None  # written in UTC
        zones.update(tzid for tzid, _, _ in c.zones)
        if len(zones) > 1:
            return None
    return next(iter(zones)) if zones else None


def _tzids(c: _Part) -> list[str]:
    return [tzid for tzid, _, _ in c.zones]


def _zone_ranges(members: Sequence[_Part | Compiled]) -> list[tuple[str, int, int]]:
    return merged_zones(z for c in members for z in c.zones)


def merged_zones(zones: Iterable[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Zones as a calendar's VTIMEZONEs cover them: each TZID once, by name, with the
    widest range of years it is named for."""
    ranges: dict[str, tuple[int, int]] = {}
    for tzid, first, last in zones:
        low, high = ranges.get(tzid, (first, last))
        ranges[tzid] = (min(low, first), max(high, last))
    return [(tzid, *ranges[tzid]) for tzid in sorted(ranges)]


def _head(context: BuildContext, header: Header | None, members: Sequence[_Part]) -> bytes:
    """The calendar's own lines, without END:VCALENDAR. A per-event file's are the same for
    every event, so they are serialised once; a subscription's once per zone it names."""
    if header is None:
        return _EVENT_HEAD
    settings = context.settings
    return _head_bytes(
        header, settings.calendars.refresh_hours, settings.site_url, _calendar_zone(members)
    )


@lru_cache(maxsize=256)
def _head_bytes(header: Header, refresh_hours: int, site_url: str, zone: str | None) -> bytes:
    data = component_bytes(_subscription(header, refresh_hours, site_url, zone))
    assert data.endswith(_END)
    return data[: -len(_END)]


def _size_without_zones(
    context: BuildContext, header: Header | None, members: Sequence[_Part]
) -> int:
    """``len(_calendar(context, header, members))`` but its VTIMEZONEs, without joining it."""
    return len(_head(context, header, members)) + len(_END) + sum(c.size for c in members)


def _zones_size(members: Sequence[_Part]) -> int:
    """The size of the calendar's VTIMEZONEs (each made once per zone and range of years)."""
    return sum(len(vtimezone_bytes(*r)) for r in _zone_ranges(members))


def _calendar(context: BuildContext, header: Header | None, members: Sequence[_Part]) -> bytes:
    return b"".join(_calendar_parts(context, header, members))


def _calendar_parts(
    context: BuildContext, header: Header | None, members: Sequence[_Part]
) -> Iterator[bytes]:
    """The calendar's bytes, a part at a time: its head, its zones, a member's components
    (read when its turn comes), the end."""
    yield _head(context, header, members)
    for r in _zone_ranges(members):
        yield vtimezone_bytes(*r)
    for c in members:
        yield c.data
    yield _END


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _packed(jcal: str) -> bytes:
    """An event's jCal text as it is kept until calendar.json is joined: UTF-8, compressed."""
    return zlib.compress(jcal.encode(), 1)


def _members_jcal(context: BuildContext, members: Sequence[_Part]) -> bytes:
    """The members of a jCal calendar, comma-separated (as :func:`_jcal` places them)."""
    return b",".join([_member_jcal(context, c) for c in members])


def _member_jcal(context: BuildContext, c: _Part) -> bytes:
    if c.jcal:
        return zlib.decompress(c.jcal)
    return compile_event(c.event, context.history[c.event.id]).jcal.encode()


def _jcal(
    context: BuildContext,
    header: Header,
    members: Sequence[_Part],
    converted: _Converted | None = None,
) -> Iterator[bytes]:
    """The calendar as jCal (RFC 7265), JSON with sorted keys and no insignificant space, a
    part at a time.

    icalendar converts the calendar's own properties and zones; each event's components were
    converted here, by :func:`~eventfeed.vevent.compile_event` (its per-event step does not
    make them: few events are in calendar.json), and are placed after the zones, as
    icalendar would place them (the tests compare with icalendar's conversion of the whole
    calendar).
    """
    cal = _calendar_object(context, header, members)
    for r in _zone_ranges(members):
        cal.add_component(vtimezone(*r))
    text = _json(cal.to_jcal())
    assert text.endswith("]]")
    if not members:
        yield (text + "\n").encode()
        return
    yield (text[:-2] + ("," if not text.endswith("[]]") else "")).encode()
    made = converted.take() if converted is not None else None
    if made is not None:
        yield made
    else:
        for i, c in enumerate(members):
            if i:
                yield b","
            yield _member_jcal(context, c)
    yield b"]]\n"
