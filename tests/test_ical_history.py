"""History in calendars: an edit changes only the lines it should, in the files it should."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from eventfeed import paths
from eventfeed.state import Manifest, read_manifest

from .ical_support import NOW, build, copy_fixture, name_of, prop, unfold

EVENT = "zurich-spring-night"
UID = f"{EVENT}@events.example.org"
RECORD = Path("2023") / f"{EVENT}.md"


def manifest_of(artifacts: dict[str, bytes], folder: Path) -> Manifest:
    folder.mkdir()
    (folder / paths.MANIFEST).write_bytes(artifacts[paths.MANIFEST])
    manifest = read_manifest(folder)
    assert manifest is not None
    return manifest


def edit(events: Path, old: str, new: str) -> None:
    path = events / RECORD
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def split_event(data: bytes) -> tuple[list[str], list[str]]:
    """The content lines of EVENT's VEVENT, and all other lines of the file."""
    inside: list[str] = []
    outside: list[str] = []
    block: list[str] | None = None
    for line in unfold(data):
        if line == "BEGIN:VEVENT":
            block = []
        if block is not None:
            block.append(line)
        else:
            outside.append(line)
        if line == "END:VEVENT" and block is not None:
            (inside if f"UID:{UID}" in block else outside).extend(block)
            block = None
    return inside, outside


def changes(before: dict[str, bytes], after: dict[str, bytes]) -> dict[str, set[str]]:
    """Per calendar that holds EVENT, the names of its properties that changed.

    Fails if any other calendar changed at all, or any line outside EVENT's VEVENT.
    """
    assert sorted(before) == sorted(after)
    found: dict[str, set[str]] = {}
    for path in sorted(before):
        if not path.endswith(".ics"):
            continue
        old_inside, old_outside = split_event(before[path])
        new_inside, new_outside = split_event(after[path])
        if not old_inside:
            assert before[path] == after[path], path
            continue
        assert old_outside == new_outside, path
        assert len(old_inside) == len(new_inside), path
        found[path] = {name_of(o) for o, n in zip(old_inside, new_inside, strict=True) if o != n}
    return found


HOLDERS = [
    "calendar.ics",
    "calendars/kind/meeting.ics",
    "calendars/language/en.ics",
    "calendars/region/europe.ics",
    paths.event_ics(EVENT),
]


def test_wording_moves_last_modified_and_a_time_change_raises_sequence(tmp_path: Path) -> None:
    events = copy_fixture(tmp_path)
    first = build(events)
    day1, day2 = NOW + timedelta(days=1), NOW + timedelta(days=2)

    edit(events, "Night of the clock change in Zurich", "Night of the clock change in Zürich")
    second = build(events, manifest_of(first, tmp_path / "one"), now=day1)
    assert changes(first, second) == dict.fromkeys(HOLDERS, frozenset({"SUMMARY", "LAST-MODIFIED"}))
    lines = unfold(second[paths.event_ics(EVENT)])
    assert prop(lines, "LAST-MODIFIED") == [day1.strftime("%Y%m%dT%H%M%SZ")]
    assert prop(lines, "DTSTAMP") == ["20230228T230000Z"]  # updated: 2023-03-01 in Zurich
    assert prop(lines, "SEQUENCE") == ["0"]

    edit(events, "end: 2023-03-26T04:00", "end: 2023-03-26T05:00")
    third = build(events, manifest_of(second, tmp_path / "two"), now=day2)
    time_change = frozenset(
        {"DTEND", "DESCRIPTION", "X-ALT-DESC", "SEQUENCE", "DTSTAMP", "LAST-MODIFIED"}
    )
    assert changes(second, third) == dict.fromkeys(HOLDERS, time_change)
    lines = unfold(third[paths.event_ics(EVENT)])
    stamp = day2.strftime("%Y%m%dT%H%M%SZ")
    assert prop(lines, "SEQUENCE") == ["1"]
    assert prop(lines, "DTSTAMP") == prop(lines, "LAST-MODIFIED") == [stamp]
    assert prop(lines, "DTEND") == ["20230326T050000"]

    states = [json.loads(a[paths.MANIFEST])["events"] for a in (first, second, third)]
    for other in states[0]:
        if other != EVENT:
            assert states[0][other] == states[1][other] == states[2][other], other


def test_a_cancelled_event_stays_in_every_calendar_with_a_raised_sequence(
    tmp_path: Path,
) -> None:
    events = copy_fixture(tmp_path)
    first = build(events)
    edit(events, "kind: meeting\n", "kind: meeting\nstatus: cancelled\n")
    second = build(events, manifest_of(first, tmp_path / "one"), now=NOW + timedelta(days=1))
    changed = changes(first, second)
    assert sorted(changed) == sorted(HOLDERS)
    lines = unfold(second[paths.event_ics(EVENT)])
    assert prop(lines, "STATUS") == ["CANCELLED"]
    assert prop(lines, "SEQUENCE") == ["1"]
    assert prop(lines, "SUMMARY") == ["Cancelled: Night of the clock change in Zurich"]
    assert prop(lines, "TRANSP") == ["TRANSPARENT"]


def test_rebuilding_from_its_own_manifest_changes_nothing(tmp_path: Path) -> None:
    first = build()
    again = build(previous=manifest_of(first, tmp_path / "one"), now=NOW + timedelta(days=30))
    assert again == first
