"""Helpers shared by the calendar tests: building the fixture and reading content lines."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import vobject

from eventfeed import build as build_module
from eventfeed import ical, paths
from eventfeed.build import compile_site
from eventfeed.load import load_site
from eventfeed.state import Manifest

FIXTURE = Path(__file__).parent / "fixtures" / "calendar-events"
NOW = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)
AS_OF = date(2023, 6, 1)


def build(
    events: Path = FIXTURE,
    previous: Manifest | None = None,
    now: datetime = NOW,
    as_of: date = AS_OF,
) -> dict[str, bytes]:
    """The calendars and the manifest of a build of ``events``.

    The real :func:`compile_site` runs (history, manifest, duplicate-path checks) with the
    calendar compiler alone, so these tests judge calendars and nothing else.
    """
    site = load_site(events)
    calendars = build_module.Compiler("ical", ical.compile_calendars, ical.compile_event_files)
    with mock.patch.object(build_module, "compilers", return_value=[calendars]):
        return dict(compile_site(site, previous, now, as_of=as_of).items())


def copy_fixture(root: Path, settings_extra: str = "") -> Path:
    """A copy of the fixture events under ``root``, with lines added to its calendars block."""
    events = root / "events"
    shutil.copytree(FIXTURE, events)
    site = events / "site.yaml"
    site.write_text(site.read_text(encoding="utf-8") + settings_extra, encoding="utf-8")
    return events


def read_vobject(data: bytes | str, *, validate: bool = False) -> Any:
    """Parse one calendar with vobject as a client reading only this file would.

    vobject keeps the first VTIMEZONE it meets for a TZID for the rest of the process, and our
    VTIMEZONEs are clipped to the years each calendar needs: forget the zones this file
    defines, so its own definitions are the ones used.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    for tzid in re.findall(r"^TZID:(.+?)\r?$", text, flags=re.MULTILINE):
        vobject.icalendar.registerTzid(tzid, None)
    return vobject.readOne(text, validate=validate)


def calendar_files(artifacts: dict[str, bytes]) -> dict[str, bytes]:
    return {
        path: data
        for path, data in artifacts.items()
        if path.endswith(".ics") or path == paths.JCAL
    }


def unfold(data: bytes) -> list[str]:
    """Logical content lines (RFC 5545 section 3.1), from CRLF-separated physical lines."""
    lines: list[str] = []
    for raw in data.decode("utf-8").split("\r\n")[:-1]:
        if raw.startswith((" ", "\t")):
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    return lines


def vevents(data: bytes) -> list[list[str]]:
    """The content lines of each VEVENT, in file order."""
    result: list[list[str]] = []
    current: list[str] | None = None
    for line in unfold(data):
        if line == "BEGIN:VEVENT":
            current = []
        elif line == "END:VEVENT":
            assert current is not None
            result.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return result


def split_line(line: str) -> tuple[str, str]:
    """``(name;params, value)``: the first colon outside a quoted parameter value."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:index], line[index + 1 :]
    raise AssertionError(f"not a content line: {line!r}")


def name_of(line: str) -> str:
    return split_line(line)[0].split(";")[0]


def prop(lines: list[str], name: str) -> list[str]:
    """Values of property ``name`` (parameters dropped) among ``lines``."""
    return [split_line(line)[1] for line in lines if name_of(line) == name]
