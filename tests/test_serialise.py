"""Our folding and our component writer against icalendar's own: the same bytes."""

from __future__ import annotations

import json
from dataclasses import astuple
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event
from icalendar.parser.content_line import Contentline
from icalendar.prop import vText

from eventfeed import paths, serialise
from eventfeed.build import compile_site
from eventfeed.load import load_site
from eventfeed.serialise import Writer, component_bytes, fold
from eventfeed.state import advance
from eventfeed.vevent import compile_event, components

from .bench_records import generate

ROOT = Path(__file__).resolve().parent.parent

# Letters of one, two, three and four octets, and the characters the fold treats specially.
ALPHABET = st.sampled_from(list('ab ,;:\\^"é€ßж中文字😀ñ\t'))


def reference(line: str) -> bytes:
    return bytes(Contentline(line).to_ical()) + b"\r\n"


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=0, max_size=400))
def test_fold_matches_icalendar(text: str) -> None:
    line = "DESCRIPTION:" + text
    assert fold(line) == reference(line)


def test_fold_at_the_edges() -> None:
    for size in range(60, 160):
        for filler in ("x", "é", "中", "😀", "\\", "^", "x\\", "é^"):
            line = ("SUMMARY:" + filler * size)[:size]
            assert fold(line) == reference(line), (size, filler)


def test_pieces_are_short_and_whole() -> None:
    folded = fold("DESCRIPTION:" + "中文\\n" * 300)
    for piece in folded.split(b"\r\n")[:-1]:
        assert len(piece) <= 75
        piece.decode("utf-8")  # never cut inside a character


def test_component_bytes_match_to_ical() -> None:
    event = Event()
    event.add("uid", "a@example.org")
    event.add("dtstamp", datetime(2023, 1, 1, tzinfo=UTC))
    event.add("summary", "Réunion régionale; 中文 " * 9, parameters={"LANGUAGE": "fr"})
    event.add("description", "Line one\nLine two, with \\ and ^ " * 20)
    assert component_bytes(event) == event.to_ical()


# --- the Writer against icalendar's own components ------------------------------------------


def jcal_reference(component: Any) -> str:
    """icalendar's own jCal conversion, as JSON the way calendar.json writes it."""
    return json.dumps(
        component.to_jcal(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


def _assert_same_as_icalendar(events: Path) -> int:
    site = load_site(events, today=date(2023, 11, 14))
    history = advance(None, site.events, datetime(2023, 11, 14, 12, tzinfo=UTC))
    for event in site.events:
        state = history[event.id]
        built = components(event, state)
        compiled = compile_event(event, state)
        assert compiled.data == b"".join(component_bytes(c) for c in built), event.id
        assert compiled.jcal == ",".join(jcal_reference(c) for c in built), event.id
    return len(site.events)


def test_writer_matches_icalendar_on_generated_records(tmp_path: Path) -> None:
    # many zones (UTC among them), all-day, recurring, cancelled, bodies in six scripts
    assert _assert_same_as_icalendar(generate(tmp_path, 400)) == 400


def test_every_shape_of_the_generated_records_takes_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # icalendar renders each shape once; a shape the Writer cannot reuse is still right (the
    # tests above) but slow, so a change in icalendar that breaks the reuse must show here.
    monkeypatch.setattr(serialise, "_FRAMES", {})
    _assert_same_as_icalendar(generate(tmp_path, 100))
    assert len(serialise._FRAMES) > 20
    slow = {key[1:]: frame for key, frame in serialise._FRAMES.items() if None in astuple(frame)}
    assert slow == {}


def test_writer_matches_icalendar_on_the_shipped_records() -> None:
    # overrides, exclusions, a moved and a cancelled occurrence, organisers with e-mail
    assert _assert_same_as_icalendar(ROOT / "events") >= 7


TRICKY = st.text(alphabet=st.sampled_from(list('ab ,;:"\\^\nNé中😀\r\t')), max_size=40)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(TRICKY, TRICKY, TRICKY, st.sampled_from(["Europe/Paris", "UTC", "Etc/GMT-14"]))
def test_writer_matches_icalendar_on_awkward_text(
    text: str, label: str, name: str, zone: str
) -> None:
    start = datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo(zone))

    def fill(target: Any) -> Any:
        target.add("summary", text, parameters={"LANGUAGE": "en"})
        target.add("description", text)
        target.add("x-alt-desc", vText(text), parameters={"FMTTYPE": "text/html"})
        target.add("dtstart", start)
        target.add("exdate", date(2024, 4, 1))
        target.add("exdate", start)
        target.add("categories", [text, label])
        target.add(
            "conference",
            "https://x.example/" + quote(text, safe=";,:^\\"),
            parameters={"VALUE": "URI", "LABEL": label},
        )
        target.add("organizer", "mailto:a@example.org", parameters={"CN": name})
        target.add("sequence", len(text))
        return target

    assert fill(Writer(Event)).to_bytes() == component_bytes(fill(Event()))
    written, reference = fill(Writer(Event, jcal=True)), fill(Event())
    assert written.to_bytes() == component_bytes(reference)
    assert written.jcal() == jcal_reference(reference)


def test_writer_refuses_an_integer_out_of_range_as_icalendar_does() -> None:
    for number in (2**31, -(2**31) - 1):
        with pytest.raises(ValueError, match="outside the RFC 5545 range"):
            Event().add("sequence", number)
        with pytest.raises(ValueError, match="outside the RFC 5545 range"):
            Writer(Event).add("sequence", number)


def test_writer_refuses_a_uri_with_a_line_break_as_icalendar_does() -> None:
    with pytest.raises(ValueError, match="may not contain CR or LF"):
        Event().add("url", "https://x.example/\nX-INJECTED:1")
    with pytest.raises(ValueError, match="may not contain CR or LF"):
        Writer(Event).add("url", "https://x.example/\nX-INJECTED:1")


def test_jcal_spliced_from_events_matches_icalendar(tmp_path: Path) -> None:
    """calendar.json holds icalendar's conversion of each event's components, though each
    event's part was converted on its own (the calendar's own part: the golden files)."""
    events = generate(tmp_path, 150)
    site = load_site(events, today=date(2023, 11, 14))
    now = datetime(2023, 11, 14, 12, tzinfo=UTC)
    artifacts = compile_site(site, None, now, as_of=date(2023, 11, 14), jobs=1)
    history = advance(None, site.events, now)
    calendar = Calendar.from_ical(artifacts[paths.CALENDAR])
    by_uid = {e.uid: e for e in site.events}
    masters = [str(c["UID"]) for c in calendar.walk("VEVENT") if "RECURRENCE-ID" not in c]
    assert len(masters) > 20
    expected = [
        component.to_jcal()
        for uid in masters
        for component in components(by_uid[uid], history[by_uid[uid].id])
    ]
    jcal = json.loads(artifacts[paths.JCAL])
    assert [c for c in jcal[2] if c[0] == "vevent"] == expected
    assert [c[0] for c in jcal[2]] == sorted(c[0] for c in jcal[2])[::-1]  # zones first


ZONES = st.sampled_from([UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/St_Johns")])
EARLIEST = datetime(1, 1, 2)  # noqa: DTZ001 (hypothesis bounds are naive; a zone is added)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    st.lists(st.datetimes(min_value=EARLIEST, timezones=ZONES), min_size=1, max_size=4),
    st.lists(st.dates(), min_size=1, max_size=3),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
def test_writer_times_and_numbers_match_icalendar_in_every_year(
    times: list[datetime], days: list[date], number: int
) -> None:
    # years below 1000 are written by strftime as icalendar writes them, the rest by f-strings
    def fill(target: Any) -> Any:
        target.add("dtstamp", times[0].astimezone(UTC))
        for value in times:
            target.add("dtstart", value)
        for day in days:
            target.add("rdate", day)
        target.add("sequence", number)
        return target

    written, reference = fill(Writer(Event, jcal=True)), fill(Event())
    assert written.to_bytes() == component_bytes(reference)
    assert written.jcal() == jcal_reference(reference)
