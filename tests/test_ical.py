"""Calendars: the fixture build against golden files, read back by independent parsers."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from eventfeed import paths
from eventfeed.load import load_site
from eventfeed.vtimezone import vtimezone

from .bench_records import generate
from .ical_support import (
    build,
    calendar_files,
    copy_fixture,
    name_of,
    prop,
    read_vobject,
    split_line,
    unfold,
    vevents,
)

GOLDEN = Path(__file__).parent / "golden" / "ical"
UPDATE = os.environ.get("EVENTFEED_UPDATE_GOLDEN") == "1"
DOMAIN = "events.example.org"


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return calendar_files(build())


def ics_files(files: dict[str, bytes]) -> dict[str, bytes]:
    return {p: d for p, d in files.items() if p.endswith(".ics")}


# --- golden files --------------------------------------------------------------------------


def test_fixture_build_matches_golden_tree(files: dict[str, bytes]) -> None:
    """Regenerate with EVENTFEED_UPDATE_GOLDEN=1 and review ``git diff tests/golden``."""
    if UPDATE:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for path, data in files.items():
            target = GOLDEN / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    expected = {
        p.relative_to(GOLDEN).as_posix(): p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()
    }
    assert sorted(files) == sorted(expected)
    problems = []
    for path in sorted(files):
        if files[path] != expected[path]:
            diff = difflib.unified_diff(
                expected[path].decode().splitlines(keepends=True),
                files[path].decode().splitlines(keepends=True),
                f"golden/{path}",
                f"built/{path}",
            )
            problems.append("".join(diff))
    assert not problems, "output differs from tests/golden/ical:\n" + "\n".join(problems)


# --- the layout: every event in exactly the calendars it belongs to ------------------------

NY_NIGHT, BANGKOK, CALLS = "new-york-night-session", "bangkok-hybrid", "coordination-calls"
BRIEFINGS, ZURICH, DAY = "new-york-briefings", "zurich-spring-night", "solidarity-day"
ESS, CAFE, CANCELLED = "economia-solidaria", "community-cafe", "cancelled-webinar"
POSTPONED, DAKAR, OLD = "postponed-workshop", "africa-forum-dakar", "policy-webinar-2021"
SERIES = [CALLS, CALLS, CALLS]  # master, then its two overrides

MEMBERS = {
    "calendar.ics": [
        *(NY_NIGHT, BANGKOK, *SERIES, BRIEFINGS, ZURICH, DAY),
        *(ESS, CAFE, CANCELLED, POSTPONED, DAKAR),
    ],
    "calendars/archive/2021.ics": [OLD],
    "calendars/webinars.ics": [ESS, CANCELLED],
    "calendars/task-force.ics": [NY_NIGHT, BANGKOK, *SERIES, DAY],
    "calendars/espanol.ics": [ESS],
    "calendars/kind/conference.ics": [DAY, DAKAR],
    "calendars/kind/meeting.ics": [NY_NIGHT, *SERIES, BRIEFINGS, ZURICH, CAFE, POSTPONED],
    "calendars/kind/regional-session.ics": [BANGKOK],
    "calendars/kind/webinar.ics": [ESS, CANCELLED],
    "calendars/region/africa.ics": [DAKAR],
    "calendars/region/asia-pacific.ics": [BANGKOK],
    "calendars/region/europe.ics": [ZURICH, POSTPONED],
    "calendars/region/global.ics": [*SERIES, DAY, CAFE, CANCELLED],
    "calendars/region/latin-america-caribbean.ics": [ESS],
    "calendars/region/north-america.ics": [NY_NIGHT, BRIEFINGS],
    "calendars/language/en.ics": [
        *(NY_NIGHT, BANGKOK, *SERIES, BRIEFINGS, ZURICH, DAY),
        *(CAFE, CANCELLED, POSTPONED),
    ],
    "calendars/language/es.ics": [ESS],
    "calendars/language/fr.ics": [DAKAR],
}
ALL = [OLD, NY_NIGHT, BANGKOK, CALLS, BRIEFINGS, ZURICH, DAY, ESS, CAFE, CANCELLED, POSTPONED]
ALL += [DAKAR]


def uids(data: bytes) -> list[str]:
    return [prop(lines, "UID")[0] for lines in vevents(data)]


def test_every_event_is_in_exactly_the_calendars_it_belongs_to(files: dict[str, bytes]) -> None:
    expected = dict(MEMBERS)
    for event_id in ALL:
        expected[paths.event_ics(event_id)] = [CALLS] * 3 if event_id == CALLS else [event_id]
    assert sorted(ics_files(files)) == sorted(expected)
    for path, ids in expected.items():
        assert uids(files[path]) == [f"{i}@{DOMAIN}" for i in ids], path


# --- structure: CRLF, folding, every TZID defined, no floating times ----------------------


def test_every_line_is_crlf_at_most_75_octets_and_never_splits_a_character(
    files: dict[str, bytes],
) -> None:
    for path, data in ics_files(files).items():
        assert data.endswith(b"END:VCALENDAR\r\n"), path
        assert b"\n" not in data.replace(b"\r\n", b""), path
        assert b"\r" not in data.replace(b"\r\n", b""), path
        for line in data.split(b"\r\n")[:-1]:
            assert len(line) <= 75, (path, line)
            line.decode("utf-8")  # a fold inside a character would fail here


def test_folds_land_between_characters_of_long_emoji_text(files: dict[str, bytes]) -> None:
    data = files[paths.event_ics(CAFE)]
    physical = data.split(b"\r\n")
    continued = [line for line in physical if line.startswith(b" ") and "🎉".encode() in line]
    assert len(continued) >= 2  # the emoji run is folded more than once
    summary = prop(vevents(data)[0], "SUMMARY")[0]
    assert summary == (
        "Solidarity café ☕🌍🤝 open house for members\\, partners and neighbours 🎉🎉🎉"
    )


DATE_PROPERTIES = ("DTSTART", "DTEND", "RDATE", "EXDATE", "RECURRENCE-ID")


def test_every_tzid_has_its_vtimezone_and_no_time_floats(files: dict[str, bytes]) -> None:
    for path, data in ics_files(files).items():
        lines = unfold(data)
        defined = prop(lines, "TZID")
        assert len(defined) == len(set(defined)), path
        used = set()
        in_timezone = False
        for line in lines:
            if line == "BEGIN:VTIMEZONE":
                in_timezone = True
            elif line == "END:VTIMEZONE":
                in_timezone = False
            if in_timezone or name_of(line) not in DATE_PROPERTIES:
                continue
            head, value = split_line(line)
            tzid = re.search(r";TZID=([^;:]+)", head)
            if "VALUE=DATE" in head.split(";"):
                assert re.fullmatch(r"\d{8}", value), line
            elif tzid:
                used.add(tzid.group(1))
                assert re.fullmatch(r"\d{8}T\d{6}", value), line
            else:
                assert re.fullmatch(r"\d{8}T\d{6}Z", value), f"{path}: floating time {line}"
        assert used == set(defined), path


def test_vtimezones_use_yearly_rules_outlook_reads(files: dict[str, bytes]) -> None:
    text = files["calendar.ics"].decode()
    zurich = text[
        text.index("TZID:Europe/Zurich") : text.index(
            "END:VTIMEZONE", text.index("TZID:Europe/Zurich")
        )
    ]
    assert zurich.split("\r\n") == [
        "TZID:Europe/Zurich",
        "BEGIN:DAYLIGHT",
        "DTSTART:20220327T020000",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3",
        "TZNAME:CEST",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "DTSTART:20221030T030000",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
        "TZNAME:CET",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "END:STANDARD",
        "",
    ]
    assert "RDATE" not in "".join(line for line in text.split("END:VTIMEZONE")[:-1]), (
        "every zone of the fixture follows a yearly rule"
    )


ZONES = [
    ("Europe/Zurich", 2022, 2023),
    ("America/New_York", 2005, 2009),  # the US rules changed in 2007
    ("America/Sao_Paulo", 2017, 2020),  # daylight saving time abolished in 2019
    ("Australia/Sydney", 2023, 2024),
    ("Europe/Dublin", 2022, 2023),  # "negative" daylight saving in the database
    ("Africa/Casablanca", 2022, 2023),  # Ramadan changes, one-off onsets
    ("Asia/Bangkok", 2022, 2023),
    ("Asia/Kathmandu", 2022, 2022),
    ("Pacific/Chatham", 2022, 2023),
    ("America/Santiago", 2021, 2023),
]


@pytest.mark.parametrize(("tzid", "first", "last"), ZONES)
def test_vtimezone_agrees_with_the_zone_database(tzid: str, first: int, last: int) -> None:
    """vobject turns the VTIMEZONE into a tzinfo; it must match zoneinfo every day."""
    data = vtimezone(tzid, first, last).to_ical().decode()
    parsed = read_vobject(f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{data}END:VCALENDAR\r\n")
    tz = parsed.vtimezone.gettzinfo()
    zone = ZoneInfo(tzid)
    day = datetime(first, 1, 1, 12)  # noqa: DTZ001 - a wall-clock time in both zones
    while day.year <= last:
        assert tz.utcoffset(day) == zone.utcoffset(day), (tzid, day)
        day += timedelta(days=1)


def test_open_ended_rules_stay_right_after_the_range() -> None:
    data = vtimezone("Europe/Zurich", 2023, 2023).to_ical().decode()
    tz = read_vobject(
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{data}END:VCALENDAR\r\n"
    ).vtimezone.gettzinfo()
    for moment in (datetime(2024, 3, 31, 12), datetime(2026, 3, 29, 12)):  # noqa: DTZ001
        assert tz.utcoffset(moment) == timedelta(hours=2)
        assert tz.utcoffset(moment - timedelta(days=1)) == timedelta(hours=1)


# --- independent readers -------------------------------------------------------------------


def test_vobject_parses_and_validates_every_file(files: dict[str, bytes]) -> None:
    for path, data in ics_files(files).items():
        calendar = read_vobject(data, validate=True)
        calendar.validate()
        assert len(calendar.contents.get("vevent", [])) == len(vevents(data)), path


def occurrences(data: bytes, uid: str) -> list[tuple[str, str, str, str]]:
    calendar = Calendar.from_ical(data)
    found = recurring_ical_events.of(calendar).between(date(2000, 1, 1), date(2100, 1, 1))
    return sorted(
        (
            o["DTSTART"].dt.astimezone(UTC).isoformat(),
            o["DTEND"].dt.astimezone(UTC).isoformat(),
            str(o["STATUS"]),
            str(o["SUMMARY"]),
        )
        for o in found
        if str(o["UID"]) == uid
    )


def test_recurring_series_expands_to_exactly_the_expected_occurrences(
    files: dict[str, bytes],
) -> None:
    title = "Monthly coordination call"
    ok, cancelled = "CONFIRMED", "CANCELLED"
    expected = [  # second Thursdays at 15:00 Zurich; CET is UTC+1, CEST UTC+2
        ("2023-01-12T14:00:00+00:00", "2023-01-12T15:00:00+00:00", ok, title),
        ("2023-02-09T14:00:00+00:00", "2023-02-09T15:00:00+00:00", ok, title),
        ("2023-03-16T14:00:00+00:00", "2023-03-16T15:30:00+00:00", ok, title),  # moved
        ("2023-04-13T13:00:00+00:00", "2023-04-13T14:00:00+00:00", ok, title),
        ("2023-05-11T13:00:00+00:00", "2023-05-11T14:00:00+00:00", ok, title),
        ("2023-06-08T13:00:00+00:00", "2023-06-08T14:00:00+00:00", ok, title),
        ("2023-07-13T13:00:00+00:00", "2023-07-13T14:00:00+00:00", ok, title),
        # 10 August excluded, 24 August added
        ("2023-08-24T13:00:00+00:00", "2023-08-24T14:00:00+00:00", ok, title),
        ("2023-09-14T13:00:00+00:00", "2023-09-14T14:00:00+00:00", ok, title),
        ("2023-10-12T13:00:00+00:00", "2023-10-12T14:00:00+00:00", ok, title),
        (
            "2023-11-09T14:00:00+00:00",
            "2023-11-09T15:00:00+00:00",
            cancelled,
            "Cancelled: " + title,
        ),
        ("2023-12-14T14:00:00+00:00", "2023-12-14T15:00:00+00:00", ok, title),
    ]
    for path in ("calendar.ics", "calendars/task-force.ics", paths.event_ics(CALLS)):
        assert occurrences(files[path], f"{CALLS}@{DOMAIN}") == expected, path


def test_weekly_series_keeps_its_wall_clock_time_across_new_york_dst(
    files: dict[str, bytes],
) -> None:
    found = occurrences(files[paths.event_ics(BRIEFINGS)], f"{BRIEFINGS}@{DOMAIN}")
    assert [start for start, _, _, _ in found] == [
        "2023-03-02T14:00:00+00:00",
        "2023-03-09T14:00:00+00:00",
        "2023-03-16T13:00:00+00:00",  # EDT from 12 March
        "2023-03-23T13:00:00+00:00",
    ]


def test_dst_nights_last_their_real_length(files: dict[str, bytes]) -> None:
    ny = occurrences(files[paths.event_ics(NY_NIGHT)], f"{NY_NIGHT}@{DOMAIN}")
    zurich = occurrences(files[paths.event_ics(ZURICH)], f"{ZURICH}@{DOMAIN}")
    assert ny == [("2022-11-06T02:00:00+00:00", "2022-11-06T08:00:00+00:00", "CONFIRMED", ny[0][3])]
    assert zurich == [
        ("2023-03-25T21:00:00+00:00", "2023-03-26T02:00:00+00:00", "CONFIRMED", zurich[0][3])
    ]


def normalised(data: bytes) -> list[str]:
    """Content lines without VALUE parameters, which jCal carries as a type instead."""
    return [re.sub(r";VALUE=[A-Z-]+(?=[;:])", "", line) for line in unfold(data)]


def test_jcal_is_the_full_calendar(files: dict[str, bytes]) -> None:
    text = files[paths.JCAL].decode()
    data = json.loads(text)
    assert (
        text == json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    )
    assert normalised(Calendar.from_jcal(data).to_ical()) == normalised(files["calendar.ics"])


# --- what each event says --------------------------------------------------------------------


def event_lines(files: dict[str, bytes], event_id: str, index: int = 0) -> list[str]:
    return vevents(files[paths.event_ics(event_id)])[index]


def test_all_day_events_end_on_the_day_after(files: dict[str, bytes]) -> None:
    dakar = event_lines(files, DAKAR)
    assert "DTSTART;VALUE=DATE:20231120" in dakar
    assert "DTEND;VALUE=DATE:20231123" in dakar
    assert "TRANSP:TRANSPARENT" in dakar
    assert "SUMMARY;LANGUAGE=fr:Africa forum on the social and solidarity economy" in dakar
    day = event_lines(files, DAY)
    assert (day[1], day[2]) == ("DTSTART;VALUE=DATE:20230630", "DTEND;VALUE=DATE:20230701")


def test_times_carry_their_zone_and_utc_is_written_as_utc(files: dict[str, bytes]) -> None:
    assert "DTSTART;TZID=America/New_York:20221105T220000" in event_lines(files, NY_NIGHT)
    assert "DTEND;TZID=Asia/Bangkok:20221214T170000" in event_lines(files, BANGKOK)
    cafe = event_lines(files, CAFE)
    assert (cafe[1], cafe[2]) == ("DTSTART:20230801T120000Z", "DTEND:20230801T130000Z")
    assert "BEGIN:VTIMEZONE" not in files[paths.event_ics(CAFE)].decode()


def test_recurrence_properties(files: dict[str, bytes]) -> None:
    master, moved, cancelled = vevents(files[paths.event_ics(CALLS)])
    # UNTIL=20231231 is the end of that day in Zurich, written in UTC (RFC 5545 3.3.10)
    assert prop(master, "RRULE") == ["FREQ=MONTHLY;UNTIL=20231231T225959Z;BYDAY=2TH"]
    assert "EXDATE;TZID=Europe/Zurich:20230810T150000" in master
    assert "RDATE;TZID=Europe/Zurich:20230824T150000" in master
    assert "RECURRENCE-ID;TZID=Europe/Zurich:20230309T150000" in moved
    assert "DTSTART;TZID=Europe/Zurich:20230316T150000" in moved
    assert "RECURRENCE-ID;TZID=Europe/Zurich:20231109T150000" in cancelled
    assert prop(cancelled, "STATUS") == ["CANCELLED"]
    assert prop(cancelled, "TRANSP") == ["TRANSPARENT"]
    for lines in (master, moved, cancelled):
        assert prop(lines, "SEQUENCE") == ["0"]
        assert prop(lines, "DTSTAMP") == ["20230219T230000Z"]  # updated: 2023-02-20, Zurich


def test_cancelled_and_postponed_events_say_so(files: dict[str, bytes]) -> None:
    cancelled = event_lines(files, CANCELLED)
    assert prop(cancelled, "SUMMARY") == ["Cancelled: Financing cooperatives"]
    assert prop(cancelled, "STATUS") == ["CANCELLED"]
    assert prop(cancelled, "DESCRIPTION")[0].startswith(
        "Cancelled: this event will not take place.\\n\\n"
    )
    postponed = event_lines(files, POSTPONED)
    assert prop(postponed, "SUMMARY") == ["Postponed: Workshop on statistics of the SSE"]
    assert prop(postponed, "STATUS") == ["TENTATIVE"]


def test_online_and_hybrid_events_carry_the_join_link_where_clients_look(
    files: dict[str, bytes],
) -> None:
    bangkok = event_lines(files, BANGKOK)
    assert prop(bangkok, "LOCATION") == [
        "United Nations Conference Centre\\, Bangkok\\, TH and online (livestream): "
        "https://live.example.org/bangkok"
    ]
    assert (
        "CONFERENCE;FEATURE=VIDEO;LABEL=Livestream;VALUE=URI:https://live.example.org/bangkok"
        in bangkok
    )
    assert "GEO:13.7594;100.5085" in bangkok
    assert prop(bangkok, "URL") == ["https://events.example.org/sse/events/bangkok-hybrid.html"]
    assert prop(bangkok, "CATEGORIES") == ["regional-session,asia-pacific,sdgs"]
    assert (
        'ORGANIZER;CN="UN Inter-Agency Task Force on Social and Solidarity Economy":'
        "mailto:secretariat@example.org"
    ) in bangkok
    description = prop(bangkok, "DESCRIPTION")[0]
    assert description.endswith(
        "\\n\\nWhen: Wednesday 14 December 2022\\, 09:00–17:00 (Asia/Bangkok)"
        "\\nWhere: United Nations Conference Centre\\, Bangkok\\, TH and online (livestream)"
        "\\nJoin: https://live.example.org/bangkok"
        "\\nRegistration: https://events.example.org/sse/register/bangkok"
        "\\nEvent page: https://events.example.org/sse/events/bangkok-hybrid.html\\n"
    )
    assert "the programme (https://events.example.org/sse/programme-bangkok.html)" in description
    assert prop(event_lines(files, CAFE), "LOCATION") == ["Online: https://meet.example.org/cafe"]
    assert not prop(event_lines(files, ZURICH), "ORGANIZER")  # no address known


def test_spanish_text_keeps_its_accents_and_language(files: dict[str, bytes]) -> None:
    lines = event_lines(files, ESS)
    assert (
        "SUMMARY;LANGUAGE=es:Economía social y solidaria: ¿qué sigue después de la resolución?"
        in lines
    )
    description = prop(lines, "DESCRIPTION")[0]
    assert "¡Inscríbase! Año\\, niño\\, señal\\, acción." in description
    calendar = read_vobject(files[paths.event_ics(ESS)])
    assert calendar.vevent.summary.params["LANGUAGE"] == ["es"]


def test_subscription_calendar_properties(files: dict[str, bytes]) -> None:
    lines = unfold(files["calendars/webinars.ics"])
    header = lines[: lines.index("BEGIN:VTIMEZONE")]
    assert header == [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//eventfeed//eventfeed calendars//EN",
        "CALSCALE:GREGORIAN",
        "DESCRIPTION:Online webinars\\, one hour each.",
        "X-WR-CALDESC:Online webinars\\, one hour each.",
        "NAME:SSE test events: Webinars",
        "X-WR-CALNAME:SSE test events: Webinars",
        "REFRESH-INTERVAL;VALUE=DURATION:PT6H",
        "SOURCE;VALUE=URI:https://events.example.org/sse/calendars/webinars.ics",
        "URL:https://events.example.org/sse/collections/webinars.html",
        "X-PUBLISHED-TTL:PT6H",
    ]
    # several zones: no X-WR-TIMEZONE; one zone: the zone
    assert not prop(unfold(files["calendar.ics"]), "X-WR-TIMEZONE")
    assert prop(unfold(files["calendars/region/north-america.ics"]), "X-WR-TIMEZONE") == [
        "America/New_York"
    ]
    # a UTC event among Zurich ones: no single zone to name
    assert not prop(unfold(files["calendars/region/global.ics"]), "X-WR-TIMEZONE")


def test_per_event_files_are_not_subscriptions(files: dict[str, bytes]) -> None:
    lines = unfold(files[paths.event_ics(DAY)])
    assert lines[:4] == [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//eventfeed//eventfeed calendars//EN",
        "CALSCALE:GREGORIAN",
    ]
    assert lines[4] == "BEGIN:VEVENT"
    assert not any(
        name_of(line).startswith(("X-WR", "NAME", "REFRESH", "METHOD")) for line in lines
    )


# --- size limit ----------------------------------------------------------------------------


def test_oversized_subscription_moves_the_oldest_past_events_to_the_archive(
    tmp_path: Path,
) -> None:
    events = copy_fixture(tmp_path, "  max_bytes: 17000\n")
    files = calendar_files(build(events))
    assert len(files["calendar.ics"]) <= 17000
    moved = [NY_NIGHT, BANGKOK]  # ended longest ago; enough to fit
    assert uids(files["calendar.ics"])[:3] == [f"{CALLS}@{DOMAIN}"] * 3
    assert uids(files["calendars/archive/2022.ics"]) == [f"{i}@{DOMAIN}" for i in moved]
    assert uids(files["calendars/task-force.ics"])[0] == f"{CALLS}@{DOMAIN}"
    every = [u for p, d in files.items() if p.startswith("calendars/archive/") for u in uids(d)]
    every += uids(files["calendar.ics"])
    assert sorted(set(every)) == sorted(f"{i}@{DOMAIN}" for i in ALL)
    assert len(every) == len(ALL) + 2  # only the series repeats its UID (two overrides)


def test_coming_events_too_large_go_to_later_calendars_by_year(tmp_path: Path) -> None:
    events = copy_fixture(tmp_path, "  max_bytes: 10000\n")
    files = calendar_files(build(events))
    assert len(files["calendar.ics"]) <= 10000
    coming = [*SERIES, DAY, ESS, CAFE, CANCELLED, POSTPONED, DAKAR]  # the series has no end
    kept = uids(files["calendar.ics"])
    later = uids(files["calendars/later/2023.ics"])
    assert kept + later == [f"{i}@{DOMAIN}" for i in coming]
    assert kept == [f"{i}@{DOMAIN}" for i in coming[: len(kept)]]  # the earliest stay
    assert 3 <= len(kept) < len(coming)
    assert uids(files["calendars/archive/2022.ics"]) == [
        f"{i}@{DOMAIN}" for i in (NY_NIGHT, BANGKOK)
    ]
    assert uids(files["calendars/archive/2023.ics"]) == [
        f"{i}@{DOMAIN}" for i in (BRIEFINGS, ZURICH)
    ]
    split = [p for p in files if p.startswith(("calendars/archive/", "calendars/later/"))]
    every = kept + [uid for path in split for uid in uids(files[path])]
    assert sorted(every) == sorted([f"{i}@{DOMAIN}" for i in ALL] + [f"{CALLS}@{DOMAIN}"] * 2)
    for path in set(files) - set(split) - {paths.JCAL}:
        if not path.startswith("events/"):
            assert len(files[path]) <= 10000, path
    header = unfold(files["calendars/later/2023.ics"])
    assert prop(header, "X-WR-CALNAME") == ["SSE test events: more in 2023"]


def test_no_calendar_of_a_large_site_is_over_the_limit_and_none_drops_an_event(
    tmp_path: Path,
) -> None:
    """Benchmark records over six years, with a limit that a year of the archive, and a
    month of it, go over: each year splits by month, and a month in parts. Read back with
    icalendar: every calendar is within the limit unless it holds one event, every event is
    in exactly one of calendar.ics, the archive and the later calendars, each month's
    calendar holds events of that month, a month in parts has them numbered from 1, and
    a month of one event is not in parts. (:func:`tests.test_ical_fit.reference_dated` checks
    which events each part holds.)"""
    limit = 12_000
    events = generate(tmp_path, 160)
    site = events / "site.yaml"
    text = site.read_text(encoding="utf-8")
    assert "calendars: {lookback_days: 365}" in text
    site.write_text(
        text.replace("{lookback_days: 365}", f"{{lookback_days: 365, max_bytes: {limit}}}"),
        encoding="utf-8",
    )
    loaded = load_site(events)
    files = calendar_files(build(events))
    split = sorted(p for p in files if p.startswith(("calendars/archive/", "calendars/later/")))
    named = re.compile(
        r"calendars/(archive|later)/([0-9]{4})(?:-([0-9]{2})(?:-part([0-9]+))?)?\.ics"
    )
    assert all(named.fullmatch(path) for path in split), split
    assert any(path.endswith("-part2.ics") for path in split)  # a month in parts
    assert any(re.search(r"/[0-9]{4}-[0-9]{2}\.ics$", path) for path in split)  # a whole month
    seen: list[str] = []
    for path in ["calendar.ics", *split]:
        calendar = Calendar.from_ical(files[path])
        masters = [c for c in calendar.walk("VEVENT") if "RECURRENCE-ID" not in c]
        assert len(files[path]) <= limit or len(masters) == 1, path
        seen += [str(c["UID"]) for c in masters]
        found = named.fullmatch(path)
        if found is None or found[3] is None:
            continue
        kind, year, month = found[1], int(found[2]), int(found[3])
        for c in masters:
            if "RRULE" in c:
                continue
            start, end = c.decoded("DTSTART"), c.decoded("DTEND")
            days = [(d.year, d.month) for d in (start, end)]
            if kind == "later":
                assert days[0] == (year, month), path  # by the month it starts in
            else:
                assert days[0] <= (year, month) <= days[1], path  # it ended that month
    assert sorted(seen) == sorted(f"{e.id}@bench.example.org" for e in loaded.events)
    assert len(seen) == len(set(seen))
    # the parts of a month, in order, hold its events in the order of the whole archive
    months: dict[str, list[str]] = {}
    for path in split:
        found = named.fullmatch(path)
        assert found is not None
        if found[4] is not None:
            key = f"{found[1]}/{found[2]}-{found[3]}"
            months.setdefault(key, []).append(path)
    assert months
    for parts in months.values():
        numbers = [int(found[4]) for found in map(named.fullmatch, parts) if found]
        assert numbers == list(range(1, len(parts) + 1))
        assert len(parts) > 1, parts  # one part would be the month's own calendar


# --- reproducibility -------------------------------------------------------------------------


SNIPPET = """
import hashlib, json
from tests.ical_support import build
print(json.dumps({p: hashlib.sha256(d).hexdigest() for p, d in build().items()}))
"""


def test_same_bytes_in_another_time_zone() -> None:
    """The process time zone (TZ) must not reach the output: build in two far-apart zones."""
    root = Path(__file__).parent.parent
    digests = []
    for tz in ("Pacific/Kiritimati", "America/Los_Angeles"):
        env = {**os.environ, "TZ": tz}
        env.pop("SOURCE_DATE_EPOCH", None)
        done = subprocess.run(
            [sys.executable, "-c", SNIPPET],
            check=True,
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
        )
        digests.append(json.loads(done.stdout))
    assert digests[0] == digests[1]
    here = {p: hashlib.sha256(d).hexdigest() for p, d in build().items()}
    assert digests[0] == here
