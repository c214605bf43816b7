"""Round trip: records -> build -> calendar.ics -> import -> equivalent records.

What must survive is what subscribers see: the UID (and so the id), title, status, zone,
start and end, and every occurrence of a series with its exclusions and moved occurrences.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import recurrence
from eventfeed.build import compile_site
from eventfeed.event import Event
from eventfeed.importer import convert
from eventfeed.load import Site
from eventfeed.model import Record, Settings

from .conftest import SITE_YAML

SETTINGS = Settings.model_validate(yaml.safe_load(SITE_YAML))
ZONES = ["Europe/Zurich", "America/New_York", "Asia/Bangkok", "America/Sao_Paulo"]
NOW = datetime(2022, 12, 1, tzinfo=UTC)


@st.composite
def records(draw: st.DrawFn, index: int) -> dict[str, Any]:
    day = date(2023, 1, 2) + timedelta(days=draw(st.integers(0, 900)))
    all_day = draw(st.booleans())
    title = draw(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzÉé ,.:-", min_size=1, max_size=40).filter(
            lambda s: s.strip()
        )
    )
    data: dict[str, Any] = {
        "id": f"event-{index}",
        "title": title.strip(),
        "kind": draw(st.sampled_from(SETTINGS.kinds)),
        "status": draw(st.sampled_from(["confirmed", "tentative", "cancelled"])),
        "online": {"url": "https://example.org/join"},
        "updated": "2022-11-01",
    }
    start: date | datetime
    if all_day:
        start = day
        data["start"] = day.isoformat()
        data["end"] = (day + timedelta(days=draw(st.integers(0, 3)))).isoformat()
    else:
        start = datetime.combine(
            day, time(draw(st.integers(6, 20)), draw(st.sampled_from([0, 30])))
        )
        data["start"] = start.isoformat(timespec="minutes")
        data["end"] = (start + timedelta(minutes=draw(st.integers(1, 16)) * 30)).isoformat(
            timespec="minutes"
        )
        data["timezone"] = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        data["rrule"] = f"FREQ=WEEKLY;COUNT={draw(st.integers(3, 8))}"
        second = start + timedelta(days=7)
        third = start + timedelta(days=14)
        if draw(st.booleans()):
            data["exdates"] = [_text(second)]
        if draw(st.booleans()):
            data["overrides"] = [
                {"occurrence": _text(third), "start": _text(third + timedelta(days=1))}
                if all_day
                else {
                    "occurrence": _text(third),
                    "start": _text(third + timedelta(days=1)),
                    "end": _text(third + timedelta(days=1, hours=1)),
                }
            ]
    return data


def _text(value: date | datetime) -> str:
    return value.isoformat(timespec="minutes") if isinstance(value, datetime) else value.isoformat()


def event_of(record: Record, event_id: str) -> Event:
    return Event(id=event_id, source=f"{event_id}.md", record=record, body="", settings=SETTINGS)


def seen(event: Event) -> dict[str, Any]:
    rec = event.record
    series = list(
        recurrence.occurrences(
            rec.rrule, rec.start, event.zone, rdates=rec.rdates, exdates=rec.exdates
        )
    )
    moved = {recurrence.naive(o.occurrence): (o.start, o.end, o.status) for o in rec.overrides}
    return {
        "uid": event.uid,
        "title": rec.title,
        "status": rec.status,
        "all_day": event.all_day,
        "tzid": None if event.all_day else event.tzid,
        "start": event.start,
        "end": event.end,
        "occurrences": series,
        "moved": moved,
    }


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(*(records(i) for i in range(n)))))
def test_records_survive_build_and_import(datas: tuple[dict[str, Any], ...]) -> None:
    originals = [event_of(Record.model_validate(d), d["id"]) for d in datas]
    site = Site(settings=SETTINGS, events=tuple(originals))
    artifacts = compile_site(site, None, NOW, as_of=date(2022, 12, 1))
    conversion = convert(artifacts["calendar.ics"], SETTINGS)
    assert conversion.refused == []
    imported = {item.uid: item for item in conversion.events}
    assert sorted(imported) == sorted(e.uid for e in originals)
    for original in originals:
        item = imported[original.uid]
        again = event_of(item.record, original.id)
        assert seen(again) == seen(original)
        assert item.record.kind == original.record.kind  # categories carry the kind back


def test_a_cancelled_title_loses_the_prefix_calendars_add() -> None:
    record = Record.model_validate(
        {"title": "Call", "kind": "meeting", "status": "cancelled", "start": "2023-03-01"}
    )
    site = Site(settings=SETTINGS, events=(event_of(record, "call"),))
    artifacts = compile_site(site, None, NOW, as_of=date(2022, 12, 1))
    (item,) = convert(artifacts["events/call.ics"], SETTINGS).events
    assert item.record.title == "Call"
    assert item.uid == "call@events.example.org"
