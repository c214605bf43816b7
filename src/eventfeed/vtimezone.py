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

The range is clipped to whole years: the transitions from the start of the year *before* the
first year needed (so the offset in force on 1 January is defined by a real onset) to the end
of the last year needed. Results are cached: a build asks for the same zone and years for
many calendars and event files.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard
from icalendar.prop import vRecur, vUTCOffset

from .serialise import component_bytes

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
    """Every change of state in ``year`` (UTC), found day by day then to the second."""
    zone = ZoneInfo(tzid)
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


def _rule_text(rules: frozenset[tuple[int, int, int]]) -> str:
    # "Last Sunday" wins over "4th Sunday" when both fit every onset seen: the database's
    # rules say "lastSun", and an open-ended last run must keep fitting in later years.
    month, n, weekday = min(rules, key=lambda r: (r[1] >= 0, r))
    return f"FREQ=YEARLY;BYMONTH={month};BYDAY={n}{_WEEKDAYS[weekday]}"


@lru_cache(maxsize=1024)
def vtimezone(tzid: str, first_year: int, last_year: int) -> Timezone:
    """The VTIMEZONE for ``tzid`` valid for local times from ``first_year`` to ``last_year``.

    The component is shared between calendars: callers must not change it.
    """
    zone = ZoneInfo(tzid)
    transitions = [
        t for year in range(first_year - 1, last_year + 1) for t in _year_transitions(tzid, year)
    ]
    result = Timezone()
    result.add("tzid", tzid)
    if not transitions:
        offset, daylight, name = _state(zone, datetime(first_year, 1, 1, tzinfo=UTC))
        result.add_component(_observance(daylight, _new_year(first_year - 1), offset, offset, name))
        return result
    first_onset = _new_year(first_year)
    if transitions[0].onset > first_onset:
        # the offset on 1 January is defined by an onset before the range: name it
        first = transitions[0]
        result.add_component(
            _observance(
                not first.daylight,
                _new_year(first_year - 1),
                first.offset_from,
                first.offset_from,
                _state(zone, datetime(first_year - 1, 1, 1, tzinfo=UTC))[2],
            )
        )
    for run in _runs(transitions):
        first = run.transitions[0]
        component = _observance(
            first.daylight, first.onset, first.offset_from, first.offset_to, first.name
        )
        if len(run.transitions) > 1:
            rule = vRecur.from_ical(_rule_text(run.rules))
            last = run.transitions[-1]
            if last.onset.year < last_year:
                rule["UNTIL"] = [(last.onset - last.offset_from).replace(tzinfo=UTC)]
            component.add("rrule", rule)
        result.add_component(component)
    return result


def _new_year(year: int) -> datetime:
    """Midnight on 1 January as a wall-clock time: onsets of observances are local."""
    return datetime(year, 1, 1, tzinfo=UTC).replace(tzinfo=None)


def _observance(
    daylight: bool, onset: datetime, offset_from: timedelta, offset_to: timedelta, name: str
) -> TimezoneStandard | TimezoneDaylight:
    component = TimezoneDaylight() if daylight else TimezoneStandard()
    component.add("dtstart", onset)
    component.add("tzoffsetfrom", vUTCOffset(offset_from))
    component.add("tzoffsetto", vUTCOffset(offset_to))
    if name:
        component.add("tzname", name)
    return component


#: Serialised components of an earlier build of this eventfeed (and zone data), by the
#: arguments of :func:`vtimezone_bytes` (:func:`eventfeed.build.compile_site` fills it from
#: its store, and keeps what was made in it).
KNOWN: dict[tuple[str, int, int], bytes] = {}


@lru_cache(maxsize=1024)
def vtimezone_bytes(tzid: str, first_year: int, last_year: int) -> bytes:
    """The serialised component, for calendars assembled from serialised parts."""
    found = KNOWN.get((tzid, first_year, last_year))
    if found is None:
        found = KNOWN[tzid, first_year, last_year] = component_bytes(
            vtimezone(tzid, first_year, last_year)
        )
    return found
