"""An event's key is kept with the days it holds on: from the day it was worked out on to the
last day each compiler says its part stays the same. A later build on one of those days takes
the kept key; so each compiler's last day must be exact: its part is the same on that day
(and so, as the parts only change forward, on every day before), and another the day after.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from eventfeed import build, days, ical
from eventfeed.build import BuildContext, compilers, key_days
from eventfeed.load import Site, load_site
from eventfeed.state import advance

from .bench_records import generate

NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
DAYS = [date(2019, 6, 1), date(2023, 11, 14), date(2024, 2, 29), date(2026, 1, 1)]
LAST = date(2199, 12, 31)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return load_site(generate(tmp_path_factory.mktemp("records"), 300), today=NOW.date())


def _context(site: Site, day: date) -> BuildContext:
    return BuildContext(site=site, history=advance(None, site.events, NOW), as_of=day)


@pytest.mark.parametrize("lookback", [0, 30, 400])
def test_the_calendars_key_holds_up_to_the_day_it_gives(site: Site, lookback: int) -> None:
    calendars = site.settings.calendars.model_copy(update={"lookback_days": lookback})
    settings = site.settings.model_copy(update={"calendars": calendars})
    site = Site(settings=settings, events=site.events)
    contexts: dict[date, BuildContext] = {}

    def part(event_id: str, day: date) -> str:
        context = contexts.get(day) or contexts.setdefault(day, _context(site, day))
        return ical.event_key(context, by_id[event_id])[0]

    by_id = {e.id: e for e in site.events}
    kinds = set()
    for day in DAYS:
        context = _context(site, day)
        for event in site.events:
            now, until = ical.event_key(context, event)
            kinds.add((now, until is None))
            if until is None:
                assert part(event.id, LAST) == now, (event.id, day)
            else:
                assert until >= day
                assert part(event.id, until) == now, (event.id, day)
                assert part(event.id, until + timedelta(days=1)) != now, (event.id, day)
    assert kinds == {("current", False), ("archived", True)}  # both, with a last day or not


def test_an_events_key_holds_up_to_the_earliest_day_of_its_parts(site: Site) -> None:
    steps = compilers()
    for day in DAYS[1:3]:
        context = _context(site, day)
        for event in site.events[:60]:
            state = build.state_key("base", event.id, context.history[event.id])
            key, days = build._key(context, steps, "base", event, state)
            lasts = [s.key(context, event)[1] for s in steps if s.key is not None]
            given = [last for last in lasts if last is not None]
            assert days == key_days(day, min(given) if given else None)
            first, _, last = days.partition("..")
            assert first == day.isoformat()
            if last:  # the key is the same on its last day, and another the day after
                end = date.fromisoformat(last)
                assert build._key(_context(site, end), steps, "base", event, state)[0] == key
                after = _context(site, end + timedelta(days=1))
                assert build._key(after, steps, "base", event, state)[0] != key


@pytest.mark.parametrize(
    ("held", "day", "holds"),
    [
        ("2023-11-14..2023-11-20", "2023-11-14", True),
        ("2023-11-14..2023-11-20", "2023-11-20", True),
        ("2023-11-14..2023-11-20", "2023-11-21", False),
        ("2023-11-14..2023-11-20", "2023-11-13", False),
        ("2023-11-14..", "2199-12-31", True),
        ("2023-11-14..", "2023-11-13", False),
        ("..2023-11-20", "1900-01-01", True),
        ("..2023-11-20", "2023-11-21", False),
        ("..", "2023-11-21", True),
        ("2023-11-14", "2023-11-14", False),  # an older store's day: worked out again
        ("<=2023-11-20", "2023-11-14", False),  # an older record store's days: the same
        ("", "2023-11-14", False),
        ("2023-11-14..20231120", "2023-11-15", False),
        ("x..", "2023-11-15", False),
    ],
)
def test_kept_days_are_read_as_they_are_written(held: str, day: str, holds: bool) -> None:
    assert days.within(held, day) is holds


def test_key_days_are_spelled_for_the_store() -> None:
    assert key_days(date(2023, 11, 14), date(2023, 12, 1)) == "2023-11-14..2023-12-01"
    assert key_days(date(2023, 11, 14), None) == "2023-11-14.."
    assert days.span(None, date(2023, 12, 1)) == "..2023-12-01"
    assert days.within(key_days(date(2023, 11, 14), None), "2023-11-14")


def test_the_records_end_on_both_sides_of_the_days(tmp_path: Path) -> None:
    loaded = load_site(generate(tmp_path, 40), today=NOW.date())
    lasts = [e.last_day for e in loaded.events]
    assert min(lasts) < DAYS[1] < max(lasts)
