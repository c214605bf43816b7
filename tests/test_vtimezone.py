"""The VTIMEZONE transitions read from the zone data are the ones a day-by-day scan finds.

:func:`eventfeed.vtimezone._scanned` asks ``zoneinfo`` the state of a zone every day of a year
and narrows each change down to the second: slow, but it reads nothing itself, so it is the
reference. :func:`eventfeed.vtimezone._listed` asks only at the instants the zone's TZif file
lists or its footer rule names. Both must give the same transitions for every zone, for the
zone files ``zoneinfo`` finds on this machine and for the tzdata package's (which list fewer
years, so more of their years come from the footer).

By default every zone is compared for a fixed sample of years; ``EVENTFEED_DEEP_ZONES=1``
compares every zone for every year from 1850 to 2200 (about a minute per source of data).
"""

from __future__ import annotations

import importlib.resources
import io
import itertools
import os
import random
import struct
import zoneinfo
from zoneinfo import ZoneInfo

import pytest

from eventfeed import vtimezone
from eventfeed.serialise import component_bytes
from eventfeed.vtimezone import _listed, _scanned, _tzif_data, _zone_data

ZONES = sorted(zoneinfo.available_timezones())
TZDATA_ZONES = importlib.resources.files("tzdata").joinpath("zones").read_text().split()
DEEP = os.environ.get("EVENTFEED_DEEP_ZONES") == "1"


def _years(tzid: str) -> list[int]:
    """The years compared for ``tzid``: all in a deep run, else runs of one to three years
    spread over 1970 to 2040 (fixed per zone), and the years where fat files stop listing."""
    if DEEP:
        return list(range(1850, 2201))
    pick = random.Random(tzid)
    years = {2036, 2037, 2038, 2039}
    for _ in range(4):
        first = pick.randrange(1970, 2039)
        years.update(range(first, first + pick.randint(1, 3)))
    return sorted(years)


def _tzdata_bytes(tzid: str) -> bytes:
    return importlib.resources.files("tzdata.zoneinfo").joinpath(*tzid.split("/")).read_bytes()


def _compare(zone: ZoneInfo, data: vtimezone._ZoneData | None, years: list[int]) -> list[str]:
    assert data is not None, f"{zone}: the zone file was not read"
    wrong: list[str] = []
    for year in years:
        listed = _listed(zone, data, year)
        scanned = _scanned(zone, year)
        if listed != scanned:
            wrong.append(f"{zone} {year}: listed {listed} scanned {scanned}")
    return wrong


def test_every_zone_of_this_machine_gives_the_scanned_transitions() -> None:
    wrong: list[str] = []
    for tzid in ZONES:
        wrong += _compare(ZoneInfo(tzid), _zone_data(tzid), _years(tzid))
    assert wrong == []


def test_every_zone_of_the_tzdata_package_gives_the_scanned_transitions() -> None:
    wrong: list[str] = []
    for tzid in TZDATA_ZONES:
        data = _tzdata_bytes(tzid)
        zone = ZoneInfo.from_file(io.BytesIO(data), key=tzid)
        wrong += _compare(zone, _tzif_data(data), _years(tzid))
    assert wrong == []


def test_the_sample_holds_the_zones_that_make_scans_hard() -> None:
    """Zones with one-off changes, with daylight time for a few weeks, and without any."""
    cases = {
        # Morocco leaves its +01 for Ramadan, a few weeks a year, listed to 2087
        ("Africa/Casablanca", 2023): 2,
        # Egypt: daylight time again from 2023, with a pause for Ramadan in 2014
        ("Africa/Cairo", 2014): 4,
        ("Africa/Cairo", 2023): 2,
        # Samoa skipped 30 December 2011 and kept daylight time to 2021
        ("Pacific/Apia", 2011): 3,
        # Istanbul moved to permanent +03 in September 2016: one change of name and offset
        ("Europe/Istanbul", 2016): 2,
        # Lord Howe: daylight time of half an hour
        ("Australia/Lord_Howe", 2023): 2,
        # Dublin: winter time is the daylight time of the data ("negative" daylight saving)
        ("Europe/Dublin", 2023): 2,
        ("Asia/Tokyo", 2023): 0,
        ("UTC", 2023): 0,
    }
    found = {}
    for tzid, year in cases:
        data = _tzdata_bytes(tzid)
        zone = ZoneInfo.from_file(io.BytesIO(data), key=tzid)
        listed = _listed(zone, _tzif_data(data), year)
        assert listed == _scanned(zone, year)
        found[tzid, year] = len(listed or ())
    assert found == cases


# --- the footer's rule, for the forms tzdata does not use now ---------------------------------


def _tzif(footer: str, offset: int = 0) -> bytes:
    """A version 2 TZif file without transitions: everything comes from the footer."""
    header = struct.pack(">4sc15x6l", b"TZif", b"2", 0, 0, 0, 0, 1, 4)
    body = struct.pack(">lBB", offset, 0, 0) + b"XXX\0"
    return header + body + header + body + b"\n" + footer.encode() + b"\n"


FOOTERS = [
    "EST5EDT,M3.2.0,M11.1.0",
    "IST-1GMT0,M10.5.0,M3.5.0/1",  # daylight offset below the standard one
    "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",  # a negative time of day
    "EET-2EEST,M3.4.4/50,M10.4.4/50",  # past the end of the day
    "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
    "AAA3BBB,J60/2,J300",  # Julian days: 29 February is never counted
    "AAA3BBB,J1/0,J365/25",  # daylight time all year
    "<-03>3<-02>2:30:15,M3.5.0/1:02:03,M10.1.6/23:59:59",
    "NZST-12NZDT,M9.5.0,M4.1.0/3",
    "JST-9",
    "<+0545>-5:45",
]


@pytest.mark.parametrize("footer", FOOTERS)
def test_footer_rules_give_the_scanned_transitions(footer: str) -> None:
    data = _tzif(footer)
    zone = ZoneInfo.from_file(io.BytesIO(data))
    parsed = _tzif_data(data)
    assert parsed is not None
    assert parsed.listed == ()
    assert (parsed.rule is None) == ("," not in footer)
    assert _compare(zone, parsed, list(range(1999, 2030))) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"TZif",
        _tzif("EST5EDT,M3.2.0,M11.1.0").replace(b"TZif2", b"TZif\0"),  # version 1: 32 bits
        _tzif("EST5EDT,M13.2.0,M11.1.0"),  # no 13th month
        # zero-based days: zoneinfo counts them from 31 December, POSIX from 1 January
        _tzif("AAA3BBB,59/2,299"),
        _tzif("EST5EDT,M3.2.0"),  # no end
        _tzif("EST5EDT,M3.2.0,M11.1.0/x"),
        _tzif("EST5EDT,M3.2.0,M11.1.0")[:-1],  # the footer cut short
    ],
)
def test_data_not_read_exactly_is_left_to_the_scan(data: bytes) -> None:
    assert _tzif_data(data) is None


def test_zones_whose_data_is_not_read_are_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _scanned(ZoneInfo("Europe/Zurich"), 2023)
    assert len(expected) == 2
    monkeypatch.setattr(vtimezone, "_zone_file", lambda tzid: None)
    vtimezone._zone_data.cache_clear()
    vtimezone._year_transitions.cache_clear()
    try:
        assert vtimezone._zone_data("Europe/Zurich") is None
        assert vtimezone._year_transitions("Europe/Zurich", 2023) == expected
    finally:
        vtimezone._zone_data.cache_clear()
        vtimezone._year_transitions.cache_clear()


# --- the component's bytes, written without icalendar ----------------------------------------


def test_written_bytes_are_icalendars_for_every_zone() -> None:
    """``vtimezone_bytes`` writes the lines itself; icalendar's serialisation of the same
    component is the reference, for every zone over the sampled ranges of years."""
    wrong: list[tuple[str, int, int]] = []
    for tzid in ZONES:
        years = _years(tzid)
        for first, last in {(y, y) for y in years} | set(itertools.pairwise(years)):
            reference = component_bytes(vtimezone.vtimezone(tzid, first, last))
            if vtimezone._written(tzid, first, last) != reference:
                wrong.append((tzid, first, last))
    assert wrong == []


def test_written_bytes_cover_every_form() -> None:
    """The sample holds rules with and without UNTIL, offsets with seconds, names to escape."""
    samples = [
        vtimezone._written("America/New_York", 2006, 2008),  # rules end in 2006: UNTIL
        vtimezone._written("Europe/Dublin", 1900, 1920),  # 1916: an offset of -00:25:21
        vtimezone._written("Asia/Tokyo", 2023, 2023),
    ]
    text = b"".join(samples).decode()
    assert ";UNTIL=20061029T060000Z;BYDAY=-1SU;BYMONTH=10\r\n" in text
    assert "TZOFFSETFROM:-002521\r\n" in text
    assert "TZID:Asia/Tokyo\r\nBEGIN:STANDARD\r\nDTSTART:20220101T000000\r\n" in text
    for tzid, first, last in [
        ("America/New_York", 2006, 2008),
        ("Europe/Dublin", 1900, 1920),
        ("Asia/Tokyo", 2023, 2023),
    ]:
        assert vtimezone._written(tzid, first, last) == component_bytes(
            vtimezone.vtimezone(tzid, first, last)
        )
