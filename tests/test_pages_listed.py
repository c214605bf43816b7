"""How an event is listed (upcoming or past, at which occurrence) is worked out from the
dates of its series alone; it must be what making every occurrence an event gives."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from eventfeed import pages
from eventfeed.build import BuildContext
from eventfeed.event import Event
from eventfeed.load import load_site
from eventfeed.model import Status
from eventfeed.state import advance

from .bench_records import generate
from .conftest import SiteDir

ROOT = Path(__file__).resolve().parents[1]


def _reference(event: Event, zone: ZoneInfo, as_of: date) -> tuple[pages.Occurrence, bool, int]:
    """The rule written out plainly: every occurrence made an event, the earliest that has
    not ended (cancelled ones of a series left out), else the first."""
    every = pages.occurrences_of(event)
    series = bool(event.record.rrule or event.record.rdates)
    coming = [
        (o.event.sort_key, place, o)
        for place, o in enumerate(every)
        if pages._last_day_in(o.event, zone) >= as_of and not (series and o.cancelled)
    ]
    if coming:
        _, place, shown = min(coming, key=lambda c: c[0])
        return shown, True, place
    return every[0], False, 0


def _same(event: Event, zone: ZoneInfo, as_of: date) -> None:
    got = pages._listed(event, zone, as_of)
    shown, upcoming, place = _reference(event, zone, as_of)
    where = f"{event.source} on {as_of}"
    series = bool(event.record.rrule or event.record.rdates)
    assert (got.upcoming, got.place, got.series) == (upcoming, place, series), where
    assert got.shown.event == shown.event, where
    assert (got.shown.status, got.shown.note, got.shown.moved) == (
        shown.status,
        shown.note,
        shown.moved,
    ), where
    assert got.sort_key == shown.event.sort_key, where
    assert pages.when_text(got.shown.event) == pages.when_text(shown.event), where
    # listed so up to the day it says, and not the day after (on later days fewer
    # occurrences are left to come: what holds on the last day held on every day before)
    now = (upcoming, place)
    if got.until is None:
        assert _reference(event, zone, date(2199, 12, 31))[1:] == now, where
    else:
        assert got.until >= as_of, where
        assert _reference(event, zone, got.until)[1:] == now, where
        assert _reference(event, zone, got.until + timedelta(days=1))[1:] != now, where


SERIES = {
    # timed, in a zone far from the site's: its days end at other hours
    "tokyo.md": """\
---
title: Tokyo call
kind: meeting
start: 2023-01-10T23:30
end: 2023-01-11T00:30
timezone: Asia/Tokyo
rrule: FREQ=DAILY;COUNT=6
exdates: [2023-01-12T23:30]
overrides:
  - occurrence: 2023-01-11T23:30
    start: 2023-01-10T23:30
    end: 2023-01-11T02:00
    note: Moved onto the first one's start.
  - occurrence: 2023-01-13T23:30
    status: cancelled
  - occurrence: 2023-01-14T23:30
    end: 2023-01-16T01:00
online:
  url: https://example.org/join
updated: 2023-01-01
---
""",
    # all-day, some occurrences given by dates only, one moved and one cancelled
    "days.md": """\
---
title: Open days
kind: meeting
start: 2023-01-09
end: 2023-01-10
rrule: FREQ=WEEKLY;COUNT=4
rdates: [2023-01-12, 2023-01-13]
overrides:
  - occurrence: 2023-01-16
    start: 2023-01-20
    end: 2023-01-24
    title: Open days, longer
  - occurrence: 2023-01-23
    status: cancelled
online:
  url: https://example.org/join
updated: 2023-01-01
---
""",
    # ends at midnight in the site's zone: its last day is the day before
    "midnight.md": """\
---
title: Late session
kind: meeting
start: 2023-01-10T22:00
end: 2023-01-11T00:00
rrule: FREQ=DAILY;COUNT=3
online:
  url: https://example.org/join
updated: 2023-01-01
---
""",
    # every occurrence cancelled: listed as past, at the first
    "cancelled.md": """\
---
title: Called off
kind: meeting
start: 2023-01-10T10:00
rdates: [2023-01-11T10:00]
overrides:
  - occurrence: 2023-01-10T10:00
    status: cancelled
  - occurrence: 2023-01-11T10:00
    status: cancelled
online:
  url: https://example.org/join
updated: 2023-01-01
---
""",
    # a single event: never weighed by its occurrences
    "single.md": """\
---
title: Once
kind: webinar
status: cancelled
start: 2023-01-11T23:30
end: 2023-01-12T00:30
online:
  url: https://example.org/join
updated: 2023-01-01
---
""",
}


def test_listed_series_as_every_occurrence_made_an_event(site: SiteDir) -> None:
    for name, text in SERIES.items():
        site.record(name, text)
    loaded = load_site(site.events)
    assert len(loaded.events) == len(SERIES)
    zone = ZoneInfo(loaded.settings.timezone)
    shown_places = set()
    by_id = {e.id: e for e in loaded.events}
    for event in loaded.events:
        for offset in range(-2, 20):
            as_of = date(2023, 1, 8) + timedelta(days=offset)
            _same(event, zone, as_of)
            shown_places.add((event.id, pages._listed(event, zone, as_of).place))
    # the days above reach later occurrences, not only the first
    assert {p for i, p in shown_places if i == "tokyo"} == {0, 3}  # 1 ties with 0: 0 wins
    assert {p for i, p in shown_places if i == "days"} == {0, 1, 2, 3, 5}  # 4 is cancelled
    assert pages._listed(by_id["midnight"], zone, date(2023, 1, 11)).place == 1


def test_listed_events_of_the_site_and_the_benchmark(tmp_path: Path) -> None:
    for folder in (ROOT / "events", generate(tmp_path, 300)):
        loaded = load_site(folder)
        zone = ZoneInfo(loaded.settings.timezone)
        for event in loaded.events:
            for as_of in (date(2020, 1, 1), date(2023, 3, 10), date(2023, 11, 14)):
                _same(event, zone, as_of)


def test_event_key_names_the_place(site: SiteDir) -> None:
    site.record("tokyo.md", SERIES["tokyo.md"])
    loaded = load_site(site.events)
    (event,) = loaded.events
    history = advance(None, loaded.events, datetime(2023, 1, 1, tzinfo=UTC))
    context = BuildContext(site=loaded, history=history, as_of=date(2023, 1, 13))
    shown = pages._renderer(context).listed(event).shown
    assert shown.note == ""
    assert shown.status is Status.CONFIRMED
    assert pages.event_key(context, event) == (
        f"True|True|3|{shown.event.sort_key}|False",  # the 4th date: the 3rd is cancelled
        pages._last_day_in(shown.event, ZoneInfo(loaded.settings.timezone)),  # then the 5th
    )


@pytest.mark.parametrize("folder", ["", "events", "collections", "a/b"])
def test_listing_links_as_relative_links(folder: str) -> None:
    site = load_site(ROOT / "events")
    context = BuildContext(
        site=site,
        history=advance(None, site.events, datetime(2024, 1, 1, tzinfo=UTC)),
        as_of=date(2022, 12, 10),
    )
    renderer = pages.Renderer(context)
    href = renderer.hrefs(folder)
    for event in site.events:
        page = pages.paths.event_page(event.id)
        assert href(event.id) == pages.relative(page, folder + "/" if folder else "").encode()


def _pages(context: BuildContext) -> dict[str, bytes]:
    renderer = pages.Renderer(context)
    names = sorted(context.settings.collections)
    return {"index": renderer.index()} | {name: renderer.collection(name) for name in names}


def _whole(monkeypatch: pytest.MonkeyPatch, context: BuildContext) -> dict[str, bytes]:
    """The listing pages with each group's markup rendered in place by the template."""
    with monkeypatch.context() as patch:
        plain = functools.partial(pages.listing_page_parts, splice=False)
        patch.setattr(pages, "listing_page_parts", plain)
        return _pages(context)


def test_listings_put_in_their_pages_as_rendered_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    site = load_site(ROOT / "events")
    context = BuildContext(
        site=site,
        history=advance(None, site.events, datetime(2024, 1, 1, tzinfo=UTC)),
        as_of=date(2022, 12, 10),
    )
    spliced = _pages(context)
    assert len(spliced) == 3
    assert spliced == _whole(monkeypatch, context)
    assert all(b"\0" not in page for page in spliced.values())


@pytest.mark.parametrize("text", ["a \0 b", "\x000\x00", "\x001\x00 and \x000\x00"])
def test_a_setting_holding_the_marks(
    site: SiteDir, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """Settings refuse control characters; were one to hold the marks' character, the
    listings are rendered in place instead."""
    site.record("tokyo.md", SERIES["tokyo.md"])
    site.record("single.md", SERIES["single.md"])
    loaded = load_site(site.events)
    odd = loaded.settings.model_copy(update={"description": text})
    loaded = dataclasses.replace(loaded, settings=odd)
    history = advance(None, loaded.events, datetime(2023, 1, 1, tzinfo=UTC))
    context = BuildContext(site=loaded, history=history, as_of=date(2023, 1, 12))
    spliced = _pages(context)
    assert spliced == _whole(monkeypatch, context)
    assert spliced["index"].count(text.encode()) == 2  # the description, twice
    assert spliced["index"].count(b"Tokyo call") == 1
    assert spliced["index"].count(b'<h4 class="event-title">') == 2
