"""Every value an ``Event`` derives is the value the straightforward ``Event`` derived.

``Event`` keeps each derived value once computed; ``event_reference`` is the class before it
did. For every record in the repository and for records made to reach every branch (all-day
ends given as dates, date-times or durations, mixed end types, inline and unknown
organisations, repeated categories), each property must be equal, of the same type and, for
times, in the very same zone object -- on first use, on a second, after ``replace`` and after
a pickle round trip.
"""

from __future__ import annotations

import dataclasses
import pickle
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from eventfeed.event import Event
from eventfeed.load import load
from eventfeed.model import Record

from . import event_reference as reference

ROOT = Path(__file__).parent.parent
FOLDERS = [ROOT / "events", *(p for p in (ROOT / "tests" / "fixtures").iterdir() if p.is_dir())]
FOLDERS = [f for f in FOLDERS if (f / "site.yaml").is_file()]

PROPERTIES = [
    "uid",
    "tzid",
    "zone",
    "all_day",
    "local_start",
    "local_end",
    "last_day",
    "start",
    "end",
    "sort_key",
    "cancelled",
    "language",
    "mode",
    "organizers",
    "partners",
    "categories",
]

VARIANTS: list[dict[str, Any]] = [
    {"start": "2022-12-07"},
    {"start": "2022-12-07", "end": "2022-12-09"},
    {"start": "2022-12-07", "end": "2022-12-09T10:00"},
    {"start": "2022-12-07", "duration": "P3D"},
    {"start": "2022-12-07", "duration": "PT5H"},
    {"start": "2022-12-07T23:30", "timezone": "Pacific/Auckland"},
    {"start": "2022-12-07T15:00", "end": "2022-12-08"},
    {"start": "2022-12-07T15:00", "end": "2022-12-08T00:00"},
    {"start": "2023-03-26T02:30", "duration": "PT30M", "timezone": "Europe/Paris"},
    {"start": "2023-10-29T02:30", "end": "2023-10-29T02:45", "timezone": "Europe/Paris"},
    {
        "start": "2022-12-07T15:00",
        "status": "cancelled",
        "language": "es-419",
        "uid": "kept@example.net",
        "region": "global",
        "tags": ["meeting", "global", "a-b"],
        "online": {"url": "https://example.org/j"},
        "location": {"city": "Geneva"},
        "organizers": ["ilo", {"name": "One-off", "url": "https://x.example/"}, "unknown"],
        "partners": ["ilo"],
    },
    {"start": "2022-12-07T15:00", "location": {"country": "CH"}},
    {"start": "2022-12-07T15:00", "online": {}},
]


def events() -> list[Event]:
    found = [e for folder in FOLDERS for e in load(folder).events]
    settings = load(FOLDERS[0]).settings
    assert settings is not None
    for index, variant in enumerate(VARIANTS):
        record = Record.model_validate({"title": "Variant", "kind": "meeting", **variant})
        found.append(
            Event(id=f"v{index}", source=f"v{index}.md", record=record, body="", settings=settings)
        )
    return found


EVENTS = events()


def straightforward(event: Event) -> reference.Event:
    return reference.Event(
        id=event.id,
        source=event.source,
        record=event.record,
        body=event.body,
        settings=event.settings,
    )


def same(value: Any, expected: Any) -> None:
    if isinstance(expected, tuple) and expected and dataclasses.is_dataclass(expected[0]):
        assert [dataclasses.astuple(v) for v in value] == [dataclasses.astuple(e) for e in expected]
        return
    if isinstance(expected, reference.Mode):
        assert (type(value).__name__, str(value)) == ("Mode", str(expected))
        return
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, tuple):
        for v, e in zip(value, expected, strict=True):
            same(v, e)
    if isinstance(expected, datetime):
        assert value.tzinfo is expected.tzinfo
        assert value.fold == expected.fold


def test_the_records_reach_every_kind_of_event() -> None:
    assert len(EVENTS) > 30
    assert {e.all_day for e in EVENTS} == {True, False}
    assert {str(e.mode) for e in EVENTS} == {"online", "hybrid", "in-person"}


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.source)
def test_every_property_is_the_straightforward_value(event: Event) -> None:
    expected = straightforward(event)
    for _ in range(2):  # the first use computes, the second reads what was kept
        for name in PROPERTIES:
            same(getattr(event, name), getattr(expected, name))
    for value in (event.record.start, date(2022, 1, 1), datetime(2022, 1, 1, 5)):  # noqa: DTZ001
        same(event.aware(value), expected.aware(value))
    thawed = pickle.loads(pickle.dumps(event))
    assert thawed == event
    for name in PROPERTIES:
        same(getattr(thawed, name), getattr(expected, name))


def test_replace_starts_afresh() -> None:
    first, second = EVENTS[-3], EVENTS[0]
    for name in PROPERTIES:
        getattr(first, name)
    changed = dataclasses.replace(first, id=second.id, record=second.record)
    expected = straightforward(changed)
    for name in PROPERTIES:
        same(getattr(changed, name), getattr(expected, name))
