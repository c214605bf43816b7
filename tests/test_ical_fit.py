"""The calendars' shortcuts against plain references: the split, and a series' last day.

:func:`eventfeed.ical._fit` works out each calendar's share of the events once and answers
every candidate of its searches from running sums. The reference below measures every
candidate the plain way, sorting the events into their calendars again each time; both
must keep the same events, send the same ones to the later calendars, and list the same
calendars with the same members.

:func:`eventfeed.vevent.series_last_day` works out the last start of a rule that only repeats
every few days or weeks a number of times, instead of expanding it; it must give the day the
expansion gives, and None where the expansion stops at its limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import ical, paths, recurrence, vevent
from eventfeed.build import BuildContext
from eventfeed.event import Event
from eventfeed.ical import _Part
from eventfeed.load import Site, load_site
from eventfeed.model import Record

from .ical_support import AS_OF, FIXTURE

SITE = load_site(FIXTURE)
ZONES = ("Europe/Zurich", "America/New_York", "Asia/Bangkok")


# --- the reference: every candidate measured from scratch --------------------------------


def reference_subscriptions(
    context: BuildContext, order: Sequence[_Part], current: Sequence[_Part]
) -> Iterable[tuple[ical.Header, list[_Part]]]:
    s = context.settings
    yield ical._main_header(context), list(current)
    for name in sorted(s.collections):
        spec = s.collections[name]
        header = ical._header(
            context,
            paths.collection_calendar(name),
            f"{s.title}: {spec.title}",
            spec.description or f"{spec.title} from {s.title}.",
            url=s.site_url + paths.collection_page(name),
        )
        yield header, [c for c in current if name in context.memberships(c.event)]
    facets: tuple[tuple[str, bool, Callable[[_Part], str | None]], ...] = (
        ("kind", s.calendars.by_kind, lambda c: c.event.record.kind),
        ("region", s.calendars.by_region, lambda c: c.event.record.region),
        ("language", s.calendars.by_language, lambda c: c.event.language),
    )
    for facet, enabled, value_of in facets:
        if not enabled:
            continue
        values = sorted({str(v).lower() for v in map(value_of, order) if v})
        for value in values:
            label = value.replace("-", " ").capitalize() if facet != "language" else value
            header = ical._header(
                context,
                paths.facet_calendar(facet, value),
                f"{s.title}: {label}",
                f"Events of {s.title} with {facet} {value}.",
            )
            members = [c for c in current if (v := value_of(c)) and str(v).lower() == value]
            yield header, members


def reference_size(context: BuildContext, header: ical.Header, members: list[_Part]) -> int:
    """The calendar's length, joined for real."""
    return len(ical._calendar(context, header, members))


def reference_fit(context: BuildContext, current: list[_Part]) -> tuple[list[_Part], list[_Part]]:
    limit = context.settings.calendars.max_bytes

    def fits(members: list[_Part]) -> bool:
        return all(
            reference_size(context, header, subset) <= limit
            for header, subset in reference_subscriptions(context, members, members)
        )

    if fits(current):
        return current, []
    movable = sorted(
        (c for c in current if c.last_day is not None and c.last_day < context.as_of),
        key=lambda c: (c.last_day, c.event.id),
    )

    def without(count: int) -> list[_Part]:
        gone = {c.event.id for c in movable[:count]}
        return [c for c in current if c.event.id not in gone]

    coming = without(len(movable))
    if fits(coming):
        low, high = 0, len(movable)
        while low < high:
            middle = (low + high) // 2
            if fits(without(middle)):
                high = middle
            else:
                low = middle + 1
        return without(low), []
    low, high = 0, len(coming)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(coming[:middle]):
            low = middle
        else:
            high = middle - 1
    return coming[:low], coming[low:]


# --- generated calendars -------------------------------------------------------------------


Spec = tuple[int, int, tuple[tuple[str, int, int], ...], int | None]


@st.composite
def part_lists(draw: st.DrawFn) -> list[Spec]:
    """Parts: which fixture event, its size, its zones and its last day (days from the
    build's). Small sizes, so that a header's X-WR-TIMEZONE or a VTIMEZONE can decide; zones
    from a small pool, so that many calendars have one zone."""
    pool = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True))
    always_zoned = draw(st.booleans())
    specs = []
    for _ in range(draw(st.integers(0, 30))):
        event = draw(st.integers(0, len(SITE.events) - 1))
        size = draw(st.integers(0, 600))
        zones: tuple[tuple[str, int, int], ...] = ()
        if always_zoned or draw(st.booleans()):
            first = draw(st.integers(2021, 2024))
            zones = ((draw(st.sampled_from(pool)), first, first + draw(st.integers(0, 2))),)
        last = draw(st.none() | st.integers(-60, 60))
        specs.append((event, size, zones, last))
    return specs


def make_parts(specs: list[Spec]) -> list[_Part]:
    parts = []
    for number, (index, size, zones, last) in enumerate(specs):
        base = SITE.events[index]
        event: Event = dataclasses.replace(base, id=f"{base.id}-{number}")
        data = b"x" * size
        last_day = None if last is None else AS_OF + timedelta(days=last)
        parts.append(_Part(event, size, zones, last_day, "", {"": data}, ""))
    return parts


def context_for(
    limit: int, facets: tuple[bool, bool, bool], description: str | None = None
) -> BuildContext:
    calendars = SITE.settings.calendars.model_copy(
        update={
            "max_bytes": limit,
            "by_kind": facets[0],
            "by_region": facets[1],
            "by_language": facets[2],
        }
    )
    update: dict[str, object] = {"calendars": calendars}
    if description is not None:  # and no collections: only the facet calendars compete
        update["description"] = description
        update["collections"] = {}
    site = Site(SITE.settings.model_copy(update=update), SITE.events)
    return BuildContext(site=site, history={}, as_of=AS_OF)


def ids(parts: Iterable[_Part]) -> list[str]:
    return [c.event.id for c in parts]


def largest(context: BuildContext, members: list[_Part]) -> int:
    calendars = reference_subscriptions(context, members, members)
    return max(reference_size(context, header, subset) for header, subset in calendars)


def candidates(context: BuildContext, current: list[_Part]) -> list[list[_Part]]:
    """Every set of events the searches may measure: without the k past events that ended
    first, and the first m coming events."""
    movable = sorted(
        (c for c in current if c.last_day is not None and c.last_day < context.as_of),
        key=lambda c: (c.last_day, c.event.id),
    )
    found = []
    for k in range(len(movable) + 1):
        gone = {c.event.id for c in movable[:k]}
        found.append([c for c in current if c.event.id not in gone])
    coming = found[-1]
    return found + [coming[:m] for m in range(len(coming))]


@settings(derandomize=True, max_examples=80, deadline=None)
@given(specs=part_lists(), data=st.data())
def test_fit_keeps_what_measuring_every_candidate_keeps(
    specs: list[Spec], data: st.DataObject
) -> None:
    current = make_parts(specs)
    facets = data.draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    unlimited = context_for(1, facets)
    # a limit at the size of a set the searches may measure (that set just fits; a byte
    # less and it just does not), or anywhere from no events to all
    if data.draw(st.booleans()):
        sets = candidates(unlimited, current)
        limit = largest(unlimited, data.draw(st.sampled_from(sets)))
        limit -= data.draw(st.integers(0, 1))
    else:
        low, high = largest(unlimited, []), largest(unlimited, current) + 1
        limit = low + (high - low) * data.draw(st.integers(0, 100)) // 100
    context = context_for(limit, facets)
    groups = {c.event.id: ical._groups(context, c.event) for c in current}

    kept, later = ical._fit(context, current, groups)
    expected_kept, expected_later = reference_fit(context, current)

    assert (ids(kept), ids(later)) == (ids(expected_kept), ids(expected_later))
    shares = [
        (header, ids(members))
        for header, members in ical._subscriptions(context, groups, current, kept)
    ]
    expected = [
        (header, ids(members))
        for header, members in reference_subscriptions(context, current, expected_kept)
    ]
    assert shares == expected


def test_a_facet_calendar_longer_than_calendar_ics_decides_the_split() -> None:
    """Every event in one language, and calendar.ics without a description of its own: the
    language calendar holds every event under a longer header, so it decides the split
    (measuring calendar.ics alone would keep six events)."""
    english = [i for i, e in enumerate(SITE.events) if e.language == "en"]
    current = make_parts([(english[n % len(english)], 10, (), 30) for n in range(8)])
    context = context_for(1, (False, False, True), description="")
    main = ical._main_header(context)
    language = ical._calendar_list(context, [("language", "en")])[-1][1]
    assert language.path == "calendars/language/en.ics"
    limit = reference_size(context, language, current[:3])
    assert reference_size(context, main, current[:6]) <= limit
    context = context_for(limit, (False, False, True), description="")
    groups = {c.event.id: ical._groups(context, c.event) for c in current}

    kept, later = ical._fit(context, current, groups)

    assert (ids(kept), ids(later)) == (ids(current[:3]), ids(current[3:]))
    assert reference_fit(context, current) == (kept, later)


# --- the archive and the later calendars of a year, split --------------------------------


def reference_dated(
    context: BuildContext, kind: str, year: int, members: list[_Part]
) -> list[tuple[ical.Header, list[str]]]:
    """:func:`ical._dated` the plain way: every calendar joined for real, and a part grown
    an event at a time until the next would not fit."""
    limit = context.settings.calendars.max_bytes

    def fits(header: ical.Header, subset: list[_Part]) -> bool:
        return reference_size(context, header, subset) <= limit

    def month_of(c: _Part) -> int:
        day = c.last_day if kind == "archive" else None
        return day.month if day is not None else c.event.local_start.month

    whole = ical._dated_header(context, kind, year, None, None)
    if len(members) == 1 or fits(whole, members):  # one event: not split, however large
        return [(whole, ids(members))]
    found = []
    for month in sorted({month_of(c) for c in members}):
        share = [c for c in members if month_of(c) == month]
        header = ical._dated_header(context, kind, year, month, None)
        if len(share) == 1 or fits(header, share):
            found.append((header, ids(share)))
            continue
        part = 1
        while share:
            header = ical._dated_header(context, kind, year, month, part)
            count = 1
            while count < len(share) and fits(header, share[: count + 1]):
                count += 1
            found.append((header, ids(share[:count])))
            share = share[count:]
            part += 1
    return found


@settings(derandomize=True, max_examples=60, deadline=None)
@given(specs=part_lists(), data=st.data())
def test_a_year_over_the_limit_is_split_as_measuring_every_calendar_splits_it(
    specs: list[Spec], data: st.DataObject
) -> None:
    members = [c for c in make_parts(specs) if c.last_day is not None]
    year = AS_OF.year
    members = [c for c in members if c.last_day is not None and c.last_day.year == year]
    kind = data.draw(st.sampled_from(["archive", "later"]))
    unlimited = context_for(1, (False, False, False))
    whole = ical._dated_header(unlimited, kind, year, None, None)
    # from a calendar of no event (every part holds one) to the whole year (no split)
    low = reference_size(unlimited, whole, [])
    high = reference_size(unlimited, whole, members) + 1
    limit = max(low + (high - low) * data.draw(st.integers(0, 100)) // 100, 1)
    context = context_for(limit, (False, False, False))

    split = [(header, ids(part)) for header, part in ical._dated(context, kind, year, members)]

    assert split == reference_dated(context, kind, year, members)
    assert sorted(i for _, part in split for i in part) == sorted(ids(members))
    for header, part in split:
        assert (
            len(part) == 1
            or reference_size(context, header, [c for c in members if c.event.id in set(part)])
            <= limit
        )


# --- the last day of a series, worked out or expanded ---------------------------------------


def reference_last_day(event: Event) -> date | None:
    """:func:`vevent.series_last_day` as it was: every series expanded."""
    rec = event.record
    if rec.rrule is None and not rec.rdates:
        end: date | datetime = event.local_end
    else:
        if rec.rrule is not None:
            parts = recurrence.parse_parts(rec.rrule)
            if "COUNT" not in parts and "UNTIL" not in parts:
                return None
        starts = list(
            recurrence.occurrences(
                rec.rrule, rec.start, event.zone, rdates=rec.rdates, exdates=rec.exdates
            )
        )
        if len(starts) >= recurrence.MAX_OCCURRENCES:
            return None
        length = recurrence.naive(event.local_end) - recurrence.naive(event.local_start)
        ends = [recurrence.naive(s) + length for s in starts]
        for override in rec.overrides:
            last = recurrence.naive(vevent._override_span(event, override)[1])
            ends.append(last + timedelta(days=1) if event.all_day else last)
        end = max(ends).date() if event.all_day else max(ends)
    if isinstance(end, datetime):
        return (end - timedelta(microseconds=1)).date()
    return end - timedelta(days=1)


@st.composite
def series(draw: st.DrawFn) -> dict[str, object]:
    """Records of simple counted rules (worked out) and of others (expanded)."""
    day = draw(
        st.dates(date(1900, 1, 1), date(2199, 12, 31))
        | st.dates(date(2150, 1, 1), date(2199, 12, 31))
    )
    timed = draw(st.booleans())
    start: date | datetime = day
    if timed:
        start = datetime.combine(day, time(draw(st.integers(0, 23)), 30))
    rule = [f"FREQ={draw(st.sampled_from(['DAILY', 'WEEKLY', 'MONTHLY']))}"]
    rule.append(f"COUNT={draw(st.integers(1, 60))}")
    if draw(st.booleans()):
        rule.append(f"INTERVAL={draw(st.integers(1, 1000))}")
    if draw(st.integers(0, 4)) == 0:
        rule.append("BYDAY=MO,TH")
    record: dict[str, object] = {
        "title": "Series",
        "kind": "meeting",
        "start": start.isoformat(),
        "rrule": ";".join(draw(st.permutations(rule))),
    }
    if timed:
        record["duration"] = f"PT{draw(st.integers(1, 30))}H"
    if draw(st.integers(0, 4)) == 0:
        record["exdates"] = [start.isoformat()]
    if draw(st.integers(0, 4)) == 0:
        record["rdates"] = [(start + timedelta(days=3)).isoformat()]
    if draw(st.integers(0, 4)) == 0:
        record["overrides"] = [
            {"occurrence": start.isoformat(), "end": (start + timedelta(days=2)).isoformat()}
        ]
    return record


def outcome(last_day: Callable[[Event], date | None], event: Event) -> object:
    """The last day, or the error (a series whose every date is excluded, which the checks
    refuse before a build) -- the same either way."""
    try:
        return last_day(event)
    except ValueError as error:
        return type(error)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(record=series())
def test_series_last_day_is_that_of_the_expanded_series(record: dict[str, object]) -> None:
    event = Event(
        id="s",
        source="s.md",
        record=Record.model_validate(record),
        body="",
        settings=SITE.settings,
    )
    assert outcome(vevent.series_last_day, event) == outcome(reference_last_day, event)


def test_a_long_simple_series_is_worked_out_to_its_last_day() -> None:
    """Weekly for 5,000 weeks would stop at the expansion limit (and so has no last day); one
    week less ends 4,998 weeks after it began."""
    start = datetime(2030, 1, 7, 18, 0)  # noqa: DTZ001 - local wall-clock time
    for count, expected in ((5000, None), (4999, date(2125, 10, 22))):
        rule = f"FREQ=WEEKLY;COUNT={count}"
        event = Event(
            id="s",
            source="s.md",
            record=Record.model_validate(
                {"title": "S", "kind": "meeting", "start": start.isoformat(), "rrule": rule}
            ),
            body="",
            settings=SITE.settings,
        )
        assert vevent.series_last_day(event) == expected == reference_last_day(event)
