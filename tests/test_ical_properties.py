"""Generated records, written as files and read by the real loader, compile into calendars
that vobject reads back with the same UIDs, starts, ends, summaries and statuses."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eventfeed import paths

from .ical_support import build, read_vobject, vevents

SITE = """\
title: Generated events
base_url: https://gen.example.org/
publisher: {name: Generator}
timezone: Europe/Zurich
kinds: [meeting, webinar]
calendars: {lookback_days: 36500}
"""

ZONES = [
    "Europe/Zurich",
    "America/New_York",
    "Asia/Bangkok",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "America/Sao_Paulo",
    "Etc/UTC",
    "Etc/GMT-14",
]
STATUS = {
    "confirmed": ("CONFIRMED", ""),
    "tentative": ("TENTATIVE", ""),
    "postponed": ("TENTATIVE", "Postponed: "),
    "cancelled": ("CANCELLED", "Cancelled: "),
}

text_characters = st.characters(categories=["L", "N", "P", "S", "Zs"])


@dataclass(frozen=True)
class Spec:
    title: str
    body: str
    status: str
    zone: str
    start: date | datetime
    end: date | datetime  # exclusive for all-day

    def record(self) -> str:
        if isinstance(self.start, datetime):
            assert isinstance(self.end, datetime)
            when = f"start: {self.start:%Y-%m-%dT%H:%M}\nend: {self.end:%Y-%m-%dT%H:%M}\n"
        else:
            when = f"start: {self.start}\nend: {self.end - timedelta(days=1)}\n"
        return (
            "---\n"
            f"title: {json.dumps(self.title, ensure_ascii=False)}\n"
            f"kind: meeting\nstatus: {self.status}\ntimezone: {self.zone}\n{when}"
            "online: {url: 'https://gen.example.org/join'}\nupdated: 2020-01-01\n---\n"
            f"{self.body}\n"
        )


def exists_once(value: datetime, zone: ZoneInfo) -> bool:
    """Neither in a gap nor in an overlap of the zone's clock."""
    first = value.replace(tzinfo=zone, fold=0)
    second = value.replace(tzinfo=zone, fold=1)
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return first.utcoffset() == second.utcoffset() and back == value


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    title = draw(st.text(text_characters, min_size=1, max_size=80)).strip()
    assume(title)
    body = draw(st.text(text_characters, max_size=200))
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.dates(min_value=date(1995, 1, 1), max_value=date(2036, 12, 31)))
    status = draw(st.sampled_from(sorted(STATUS)))
    if draw(st.booleans()):
        return Spec(title, body, status, zone, day, day + timedelta(days=draw(st.integers(1, 5))))
    start = datetime.combine(day, datetime.min.time()) + timedelta(
        minutes=15 * draw(st.integers(0, 95))
    )
    end = start + timedelta(minutes=15 * draw(st.integers(1, 4 * 72)))
    assume(exists_once(start, ZoneInfo(zone)) and exists_once(end, ZoneInfo(zone)))
    return Spec(title, body, status, zone, start, end)


def instant(value: date | datetime, zone: str) -> date | datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return value


def parsed(value: date | datetime) -> date | datetime:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


@settings(derandomize=True, max_examples=30, deadline=None)
@given(st.lists(specs(), min_size=1, max_size=4))
def test_generated_records_parse_back_the_same(records: list[Spec]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        events = Path(folder) / "events"
        events.mkdir()
        (events / "site.yaml").write_text(SITE, encoding="utf-8")
        for index, spec in enumerate(records):
            (events / f"e{index}.md").write_text(spec.record(), encoding="utf-8")
        files = build(events)
        assert build(events) == files  # and twice gives the same bytes

    expected = {
        f"e{i}@gen.example.org": (
            instant(s.start, s.zone),
            instant(s.end, s.zone),
            STATUS[s.status][1] + s.title,
            STATUS[s.status][0],
        )
        for i, s in enumerate(records)
    }
    calendar = read_vobject(files["calendar.ics"], validate=True)
    found = {
        str(v.uid.value): (
            parsed(v.dtstart.value),
            parsed(v.dtend.value),
            str(v.summary.value),
            str(v.status.value),
        )
        for v in calendar.vevent_list
    }
    assert found == expected
    for index in range(len(records)):
        data = files[paths.event_ics(f"e{index}")]
        assert len(vevents(data)) == 1
        for line in data.split(b"\r\n")[:-1]:
            assert len(line) <= 75
            line.decode("utf-8")
