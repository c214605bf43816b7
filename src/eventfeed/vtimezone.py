"""VTIMEZONE components (RFC 5545 section 3.6.5) in the form Outlook understands.

icalendar's ``Timezone.from_tzid`` lists every transition as an RDATE. That is valid, but
Outlook (and Exchange behind it) reads a VTIMEZONE as one STANDARD and one DAYLIGHT rule and
misplaces events when the rule is spelled out as dates. So the transitions of the years a
calendar needs are read from the IANA database (``zoneinfo``) and grouped into yearly rules::

    BEGIN:DAYLIGHT
    DTSTART:20220327T020000
    RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
    TZOFFSETFROM:+0100
    ...

Each observance is written as ``DTSTART`` (local time in ``TZOFFSETFROM``, RFC 5545 section
3.8.2.4) plus ``RRULE:FREQ=YEARLY;BYMONTH=..;BYDAY=..`` when consecutive years follow the
same "n-th (or last) weekday of the month at the same local time" rule. The last run of a
rule that is still in force at the end of the range has no UNTIL, so a client that reads
beyond the range (an open-ended series) keeps applying the current rule. Transitions that
follow no such rule (one-off changes of offset) are written as their own observances with
RDATEs. A zone without transitions in the range gets one STANDARD observance.

The transitions of a year are found at the instants the zone's TZif file lists or its footer
rule names, each checked with ``zoneinfo``; a day-by-day scan of the year, which needs nothing
but ``zoneinfo``, is the fallback and the tests' reference.

The range is clipped to whole years: the transitions from the start of the year *before* the
first year needed (so the offset in force on 1 January is defined by a real onset) to the end
of the last year needed. Results are cached: a build asks for the same zone and years for
many calendars and event files.
"""

from __future__ import annotations

import bisect
import calendar
import importlib.resources
import os
import re
import struct
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard
from icalendar.prop import vRecur, vUTCOffset

from .serialise import escape_text, fold

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class Transition:
    """One change of offset, abbreviation or daylight saving, as an observance sees it."""

    onset: datetime  # local time in the offset before the change, naive
    offset_from: timedelta
    offset_to: timedelta
    name: str
    daylight: bool

    @property
    def observance(self) -> tuple[timedelta, timedelta, str, bool]:
        return (self.offset_from, self.offset_to, self.name, self.daylight)

    def rules(self) -> frozenset[tuple[int, int, int]]:
        """``(month, n, weekday)`` rules this onset fits: n-th weekday of the month, -1 last."""
        day = self.onset.date()
        found = {(day.month, (day.day - 1) // 7 + 1, day.weekday())}
        if day.day + 7 > calendar.monthrange(day.year, day.month)[1]:
            found.add((day.month, -1, day.weekday()))
        return frozenset(found)


def _state(zone: ZoneInfo, moment: datetime) -> tuple[timedelta, bool, str]:
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    dst = local.dst()
    return (offset, bool(dst), local.tzname() or "")


@lru_cache(maxsize=4096)
def _year_transitions(tzid: str, year: int) -> tuple[Transition, ...]:
    """Every change of state in ``year`` (UTC): at the instants the zone's data lists, or, where
    the data cannot be read or does not account for every change, by :func:`_scanned`."""
    zone = ZoneInfo(tzid)
    data = _zone_data(tzid)
    if data is not None:
        found = _listed(zone, data, year)
        if found is not None:
            return found
    return _scanned(zone, year)


def _scanned(zone: ZoneInfo, year: int) -> tuple[Transition, ...]:
    """Every change of state in ``year`` (UTC), found day by day then to the second.

    The reference: it reads nothing but ``zoneinfo``'s answers, at the cost of 365 of them a
    year (the tests compare it with :func:`_listed` for every zone).
    """
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    before = _state(zone, moment - timedelta(seconds=1))
    found: list[Transition] = []
    current = _state(zone, moment)
    if current != before:
        found.append(_transition(zone, moment, before, current))
    while moment < end:
        # _state() written out: this runs for every day of every year of every zone
        step = moment + _DAY
        if step > end:
            step = end
        local = step.astimezone(zone)
        after = (local.utcoffset() or _ZERO, bool(local.dst()), local.tzname() or "")
        if after != current:
            low, high = moment, step  # state(low) == current, state(high) != current
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    middle = low + timedelta(seconds=1)
                if _state(zone, middle) == current:
                    low = middle
                else:
                    high = middle
            changed = _state(zone, high)
            if high < end:
                found.append(_transition(zone, high, current, changed))
            current = changed
            moment = high
            continue
        moment = step
    return tuple(found)


# --- the instants of change, read from the zone's data --------------------------------------
#
# ``zoneinfo`` reads a TZif file (RFC 8536): a list of the instants at which the zone's offset,
# abbreviation or daylight flag may change, then a footer, a POSIX TZ string (RFC 8536 section
# 3.3) with the rule for the instants after the last one listed. Only those instants are read
# here; what holds at each is still asked of ``zoneinfo`` (:func:`_listed`), so the data's own
# types and its inferred daylight offsets never need reading. Anything unexpected in the file
# (no 64-bit data, leap seconds, a footer this parser does not know) leaves the zone to the scan.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_SECOND = timedelta(seconds=1)
_HEADER = struct.Struct(">4sc15x6l")

#: a POSIX TZ string: std offset [dst [offset] ,start[/time],end[/time]] (names bare or quoted)
_TZ_STRING = re.compile(
    r"""(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>) (?P<std>[+-]?[0-9:]+)
    (?: (?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>) (?P<dst>[+-]?[0-9:]+)?
        ,(?P<start>[^,/]+)(?:/(?P<start_time>[+-]?[0-9:]+))?
        ,(?P<end>[^,/]+)(?:/(?P<end_time>[+-]?[0-9:]+))? )?""",
    re.ASCII | re.VERBOSE,
)
_HMS = re.compile(r"([+-]?)([0-9]{1,3})(?::([0-9]{2}))?(?::([0-9]{2}))?", re.ASCII)
_MONTH_WEEK_DAY = re.compile(r"M([0-9]{1,2})\.([1-5])\.([0-6])", re.ASCII)
_JULIAN = re.compile(r"J([0-9]{1,3})", re.ASCII)


@dataclass(frozen=True)
class _Rule:
    """The footer's yearly change to daylight time and back, for instants after the list."""

    standard: int  # UTC offset, seconds
    daylight: int
    start: tuple[str, int, int, int]  # (kind, a, b, c) of a date rule; local seconds after
    start_time: int
    end: tuple[str, int, int, int]
    end_time: int

    def instants(self, year: int) -> tuple[int, int]:
        """The UTC seconds of the change to daylight time and back in local ``year``."""
        start = _rule_day(self.start, year) * 86400 + self.start_time - self.standard
        end = _rule_day(self.end, year) * 86400 + self.end_time - self.daylight
        return (start, end)


@dataclass(frozen=True)
class _ZoneData:
    listed: tuple[int, ...]  # UTC seconds of the listed transitions, ascending
    rule: _Rule | None  # None: no change after the last listed instant


def _seconds(text: str | None, default: int) -> int:
    """``[+-]hh[:mm[:ss]]`` in seconds; ValueError for other text."""
    if text is None:
        return default
    match = _HMS.fullmatch(text)
    if match is None:
        raise ValueError(text)
    sign, hours, minutes, seconds = match.groups()
    value = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    return -value if sign == "-" else value


def _date_rule(text: str) -> tuple[str, int, int, int]:
    """``Mm.w.d`` or ``Jn`` as ``(kind, a, b, c)``; ValueError for other text."""
    match = _MONTH_WEEK_DAY.fullmatch(text)
    if match is not None:
        month, week, weekday = (int(g) for g in match.groups())
        if 1 <= month <= 12:
            return ("M", month, week, weekday)
    match = _JULIAN.fullmatch(text)
    if match is not None and 1 <= int(match[1]) <= 365:
        return ("J", int(match[1]), 0, 0)
    # the zero-based form ``n`` is left to the scan: zoneinfo does not count it from 1 January
    # as POSIX does (and tzdata does not use it)
    raise ValueError(text)


def _rule_day(rule: tuple[str, int, int, int], year: int) -> int:
    """Days from 1970-01-01 to the day ``rule`` names in ``year``."""
    kind, a, b, c = rule
    first = date(year, 1, 1).toordinal() - _EPOCH_ORDINAL
    if kind == "J":  # 1 to 365, 29 February never counted
        return first + a - 1 + (1 if a >= 60 and calendar.isleap(year) else 0)
    # M: week b (5: the last) of month a, weekday c (0: Sunday)
    month_first = date(year, a, 1)
    day = 1 + (c - (month_first.weekday() + 1) % 7) % 7 + 7 * (b - 1)
    while day > calendar.monthrange(year, a)[1]:
        day -= 7
    return month_first.toordinal() - _EPOCH_ORDINAL + day - 1


def _footer_rule(footer: str) -> _Rule | None:
    """The footer's rule, None for a fixed offset; ValueError for a footer not understood."""
    match = _TZ_STRING.fullmatch(footer)
    if match is None:
        raise ValueError(footer)
    standard = _seconds(match["std"], 0)
    if match["start"] is None:
        return None
    # POSIX offsets count west of Greenwich as positive; daylight time is an hour ahead unless
    # the footer says otherwise
    return _Rule(
        standard=-standard,
        daylight=-_seconds(match["dst"], standard - 3600),
        start=_date_rule(match["start"]),
        start_time=_seconds(match["start_time"], 7200),
        end=_date_rule(match["end"]),
        end_time=_seconds(match["end_time"], 7200),
    )


def _zone_file(tzid: str) -> bytes | None:
    """The TZif data ``zoneinfo`` reads for ``tzid``: its search path first, then tzdata."""
    parts = tzid.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in tzid:
        return None
    for folder in zoneinfo.TZPATH:
        path = os.path.join(folder, *parts)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                return handle.read()
    try:
        resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*parts)
        return resource.read_bytes()
    except (ImportError, OSError):
        return None


@lru_cache(maxsize=1024)
def _zone_data(tzid: str) -> _ZoneData | None:
    """The listed instants and the footer's rule of ``tzid``; None where not read exactly."""
    data = _zone_file(tzid)
    return None if data is None else _tzif_data(data)


def _tzif_data(data: bytes) -> _ZoneData | None:
    """The listed instants and the footer's rule of TZif ``data``; None where not read."""
    if len(data) < _HEADER.size:
        return None
    magic, version, *counts = _HEADER.unpack_from(data)
    if magic != b"TZif" or version < b"2":
        return None
    isut, isstd, leap, times, types, chars = counts
    # skip the 32-bit data to the second header, which counts the 64-bit data
    skip = _HEADER.size + times * 5 + types * 6 + chars + leap * 8 + isstd + isut
    if len(data) < skip + _HEADER.size:
        return None
    magic, version, *counts = _HEADER.unpack_from(data, skip)
    isut, isstd, leap, times, types, chars = counts
    if magic != b"TZif" or leap:
        return None
    start = skip + _HEADER.size
    listed = struct.unpack_from(f">{times}q", data, start)
    footer_at = start + times * 9 + types * 6 + chars + isstd + isut
    footer = data[footer_at:]
    if not footer.startswith(b"\n") or footer.count(b"\n") != 2 or not footer.endswith(b"\n"):
        return None
    if list(listed) != sorted(set(listed)):
        return None
    try:
        rule = _footer_rule(footer[1:-1].decode("ascii")) if footer != b"\n\n" else None
    except ValueError:  # UnicodeDecodeError is one
        return None
    return _ZoneData(listed, rule)


def _listed(zone: ZoneInfo, data: _ZoneData, year: int) -> tuple[Transition, ...] | None:
    """Every change of state in ``year`` (UTC), at the instants the data names; None when
    ``zoneinfo`` changes state anywhere else (then the data was not read as it reads it)."""
    start = int((datetime(year, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
    end = int((datetime(year + 1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
    listed = data.listed
    instants = set(listed[bisect.bisect_left(listed, start) : bisect.bisect_left(listed, end)])
    if data.rule is not None:
        after = listed[-1] if listed else start
        for local_year in (year - 1, year, year + 1):
            instants.update(
                t for t in data.rule.instants(local_year) if start <= t < end and t >= after
            )
    found: list[Transition] = []
    state = _state(zone, _EPOCH + timedelta(seconds=start) - _SECOND)
    for instant in sorted(instants):
        at = _EPOCH + timedelta(seconds=instant)
        if _state(zone, at - _SECOND) != state:
            return None
        changed = _state(zone, at)
        if changed != state:
            found.append(_transition(zone, at, state, changed))
            state = changed
    if _state(zone, _EPOCH + timedelta(seconds=end) - _SECOND) != state:
        return None
    return tuple(found)


def _transition(
    zone: ZoneInfo,
    at: datetime,
    before: tuple[timedelta, bool, str],
    after: tuple[timedelta, bool, str],
) -> Transition:
    onset = (at + before[0]).replace(tzinfo=None)
    daylight = after[1]
    if before[1] != after[1] and before[0] != after[0]:
        # Zones with "negative" daylight saving (Europe/Dublin, Africa/Casablanca) flag their
        # lower offset as daylight time; clients expect DAYLIGHT to be the higher one.
        daylight = after[0] > before[0]
    return Transition(
        onset=onset, offset_from=before[0], offset_to=after[0], name=after[2], daylight=daylight
    )


@dataclass
class _Run:
    transitions: list[Transition]
    rules: frozenset[tuple[int, int, int]]


def _runs(transitions: list[Transition]) -> list[_Run]:
    """Group onsets of one observance into runs of consecutive years that share a rule."""
    runs: list[_Run] = []
    open_runs: dict[tuple[timedelta, timedelta, str, bool], _Run] = {}
    for t in transitions:
        run = open_runs.get(t.observance)
        if run is not None:
            last = run.transitions[-1]
            common = run.rules & t.rules()
            if (
                common
                and t.onset.year == last.onset.year + 1
                and t.onset.time() == last.onset.time()
            ):
                run.transitions.append(t)
                run.rules = common
                continue
        run = _Run([t], t.rules())
        runs.append(run)
        open_runs[t.observance] = run
    return runs


def _rule(rules: frozenset[tuple[int, int, int]]) -> tuple[int, int, int]:
    # "Last Sunday" wins over "4th Sunday" when both fit every onset seen: the database's
    # rules say "lastSun", and an open-ended last run must keep fitting in later years.
    return min(rules, key=lambda r: (r[1] >= 0, r))


def _rule_text(rule: tuple[int, int, int]) -> str:
    month, n, weekday = rule
    return f"FREQ=YEARLY;BYMONTH={month};BYDAY={n}{_WEEKDAYS[weekday]}"


@dataclass(frozen=True)
class _Observance:
    """One STANDARD or DAYLIGHT component of a VTIMEZONE."""

    daylight: bool
    onset: datetime  # local, naive
    offset_from: timedelta
    offset_to: timedelta
    name: str
    rule: tuple[int, int, int] | None = None  # yearly (month, n, weekday), as in _rule_text
    until: datetime | None = None  # UTC, the last onset of the rule


@lru_cache(maxsize=1024)
def _observances(tzid: str, first_year: int, last_year: int) -> tuple[_Observance, ...]:
    """The observances of :func:`vtimezone`, in their order."""
    zone = ZoneInfo(tzid)
    transitions = [
        t for year in range(first_year - 1, last_year + 1) for t in _year_transitions(tzid, year)
    ]
    if not transitions:
        offset, daylight, name = _state(zone, datetime(first_year, 1, 1, tzinfo=UTC))
        return (_Observance(daylight, _new_year(first_year - 1), offset, offset, name),)
    found: list[_Observance] = []
    first_onset = _new_year(first_year)
    if transitions[0].onset > first_onset:
        # the offset on 1 January is defined by an onset before the range: name it
        first = transitions[0]
        found.append(
            _Observance(
                not first.daylight,
                _new_year(first_year - 1),
                first.offset_from,
                first.offset_from,
                _state(zone, datetime(first_year - 1, 1, 1, tzinfo=UTC))[2],
            )
        )
    for run in _runs(transitions):
        first = run.transitions[0]
        rule = until = None
        if len(run.transitions) > 1:
            rule = _rule(run.rules)
            last = run.transitions[-1]
            if last.onset.year < last_year:
                until = (last.onset - last.offset_from).replace(tzinfo=UTC)
        found.append(
            _Observance(
                first.daylight,
                first.onset,
                first.offset_from,
                first.offset_to,
                first.name,
                rule,
                until,
            )
        )
    return tuple(found)


@lru_cache(maxsize=1024)
def vtimezone(tzid: str, first_year: int, last_year: int) -> Timezone:
    """The VTIMEZONE for ``tzid`` valid for local times from ``first_year`` to ``last_year``.

    The component is shared between calendars: callers must not change it.
    """
    result = Timezone()
    result.add("tzid", tzid)
    for o in _observances(tzid, first_year, last_year):
        component = TimezoneDaylight() if o.daylight else TimezoneStandard()
        component.add("dtstart", o.onset)
        component.add("tzoffsetfrom", vUTCOffset(o.offset_from))
        component.add("tzoffsetto", vUTCOffset(o.offset_to))
        if o.name:
            component.add("tzname", o.name)
        if o.rule is not None:
            rule = vRecur.from_ical(_rule_text(o.rule))
            if o.until is not None:
                rule["UNTIL"] = [o.until]
            component.add("rrule", rule)
        result.add_component(component)
    return result


def _new_year(year: int) -> datetime:
    """Midnight on 1 January as a wall-clock time: onsets of observances are local."""
    return datetime(year, 1, 1, tzinfo=UTC).replace(tzinfo=None)


def _written(tzid: str, first_year: int, last_year: int) -> bytes:
    """:func:`vtimezone` serialised as icalendar serialises it, written here: its properties
    in icalendar's order (DTSTART, then by name), with its escaping and its forms of date,
    offset and rule (the tests compare both for every zone)."""
    lines = ["BEGIN:VTIMEZONE", "TZID:" + escape_text(tzid)]
    for o in _observances(tzid, first_year, last_year):
        kind = "DAYLIGHT" if o.daylight else "STANDARD"
        lines += ("BEGIN:" + kind, "DTSTART:" + _date_time(o.onset))
        if o.rule is not None:
            month, n, weekday = o.rule
            until = "" if o.until is None else ";UNTIL=" + _date_time(o.until) + "Z"
            lines.append(f"RRULE:FREQ=YEARLY{until};BYDAY={n}{_WEEKDAYS[weekday]};BYMONTH={month}")
        if o.name:
            lines.append("TZNAME:" + escape_text(o.name))
        lines += (
            "TZOFFSETFROM:" + _offset(o.offset_from),
            "TZOFFSETTO:" + _offset(o.offset_to),
            "END:" + kind,
        )
    lines.append("END:VTIMEZONE")
    return b"".join([fold(line) for line in lines])


def _date_time(moment: datetime) -> str:
    return (
        f"{moment.year:04}{moment.month:02}{moment.day:02}"
        f"T{moment.hour:02}{moment.minute:02}{moment.second:02}"
    )


def _offset(offset: timedelta) -> str:
    """A UTC offset (RFC 5545 section 3.3.14): seconds only when there are any."""
    sign = "-" if offset < _ZERO else "+"
    minutes, seconds = divmod(int(abs(offset).total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{sign}{hours:02}{minutes:02}"
    return f"{text}{seconds:02}" if seconds else text


#: Serialised components of an earlier build of this eventfeed (and zone data), by the
#: arguments of :func:`vtimezone_bytes` (:func:`eventfeed.build.compile_site` fills it from
#: its store, and keeps what was made in it).
KNOWN: dict[tuple[str, int, int], bytes] = {}


@lru_cache(maxsize=1024)
def vtimezone_bytes(tzid: str, first_year: int, last_year: int) -> bytes:
    """The serialised component, for calendars assembled from serialised parts."""
    found = KNOWN.get((tzid, first_year, last_year))
    if found is None:
        found = KNOWN[tzid, first_year, last_year] = _written(tzid, first_year, last_year)
    return found
