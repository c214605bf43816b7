"""eventfeed import: fixtures shaped like real exports become exactly the expected records.

The expected records and messages live in ``tests/fixtures/import/expected/<fixture>/``;
regenerate them with EVENTFEED_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import vobject

from eventfeed.importer import iana_zone

from .conftest import Run, SiteDir

FIXTURES = Path(__file__).parent / "fixtures" / "import"
EXPECTED = FIXTURES / "expected"
UPDATE = os.environ.get("EVENTFEED_UPDATE_GOLDEN") == "1"
NAMES = ["google-calendar", "outlook", "indico"]


def written(site: SiteDir) -> dict[str, str]:
    return {
        p.relative_to(site.events).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(site.events.rglob("*.md"))
    }


def compare_golden(name: str, files: dict[str, str], stderr: str) -> None:
    folder = EXPECTED / name
    if UPDATE:
        if folder.exists():
            for old in sorted(folder.rglob("*"), reverse=True):
                old.unlink() if old.is_file() else old.rmdir()
        for rel, text in files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        (folder / "stderr.txt").write_text(stderr, encoding="utf-8")
    expected = {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*.md"))
    }
    assert sorted(files) == sorted(expected)
    for rel in files:
        assert files[rel] == expected[rel], rel
    assert stderr == (folder / "stderr.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_import_gives_the_expected_records_and_notes(name: str, site: SiteDir, run: Run) -> None:
    result = run("import", str(FIXTURES / f"{name}.ics"))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    compare_golden(name, written(site), result.stderr)


@pytest.mark.parametrize("name", NAMES)
def test_the_fixtures_are_calendars_an_independent_reader_accepts(name: str) -> None:
    raw = (FIXTURES / f"{name}.ics").read_bytes()
    assert b"\r\n" in raw
    assert all(len(line) <= 75 for line in raw.split(b"\r\n"))
    calendar = vobject.readOne(raw.decode("utf-8"))
    assert len(calendar.vevent_list) >= 3


def test_imported_records_pass_check_and_reimport_changes_nothing(site: SiteDir, run: Run) -> None:
    for name in NAMES:
        assert run("import", str(FIXTURES / f"{name}.ics")).exit_code == 0
    before = written(site)
    assert len(before) == 10
    check = run("check", "--strict")
    assert check.exit_code == 0, check.output
    for name, count in zip(NAMES, (3, 4, 3), strict=True):
        again = run("import", str(FIXTURES / f"{name}.ics"))
        assert again.exit_code == 0
        assert again.stderr.splitlines()[-1].endswith(f"0 new, 0 updated, {count} unchanged")
    assert written(site) == before


def test_reimport_of_a_changed_event_updates_the_same_record(
    site: SiteDir, run: Run, tmp_path: Path
) -> None:
    source = FIXTURES / "indico.ics"
    assert run("import", str(source)).exit_code == 0
    changed = tmp_path / "changed.ics"
    changed.write_bytes(
        source.read_bytes().replace(b"DTSTART:20230315T130000Z", b"DTSTART:20230315T120000Z")
    )
    result = run("import", str(changed))
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1] == (
        "imported 3 event(s) into events: 0 new, 1 updated, 2 unchanged"
    )
    files = written(site)
    assert len(files) == 3
    record = files["2023/2023-03-15-seminar-measuring-the-social-and-solidarity-economy.md"]
    assert "start: 2023-03-15T13:00\n" in record
    assert "uid: indico-event-1234@indico.example.org\n" in record


def test_import_from_standard_input(site: SiteDir, run: Run) -> None:
    from click.testing import CliRunner

    from eventfeed.cli import main

    raw = (FIXTURES / "indico.ics").read_bytes()
    result = CliRunner().invoke(main, ["import", "-"], input=raw)
    assert result.exit_code == 0, result.output
    assert len(written(site)) == 3


def test_import_of_something_else_is_a_user_error(site: SiteDir, run: Run) -> None:
    bad = site.root / "notes.ics"
    bad.write_text("hello\n", encoding="utf-8")
    result = run("import", str(bad))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {bad}: not an iCalendar file")
    assert written(site) == {}


def test_events_that_would_fail_check_are_refused_and_named(site: SiteDir, run: Run) -> None:
    ics = site.root / "bad.ics"
    ics.write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        b"BEGIN:VEVENT\r\nUID:gap@example.net\r\nSUMMARY:In the gap\r\n"
        b"DTSTART;TZID=Europe/Zurich:20230326T023000\r\n"
        b"DTEND;TZID=Europe/Zurich:20230326T040000\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:fine@example.net\r\nSUMMARY:Fine\r\n"
        b"DTSTART;VALUE=DATE:20230401\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    result = run("import", str(ics))
    assert result.exit_code == 1
    assert result.stderr == (
        "note: 1 event(s) have the kind 'webinar' because no category names a kind; "
        "choose another with --kind\n"
        "error: not imported: 'In the gap' (UID gap@example.net): start: 2023-03-26 02:30 "
        "does not exist in Europe/Zurich (the clocks skip it when daylight saving starts)\n"
        "imported 1 event(s) into events: 1 new, 0 updated, 0 unchanged; 1 refused\n"
    )
    assert list(written(site)) == ["2023/2023-04-01-fine.md"]


@pytest.mark.parametrize(
    ("tzid", "zone"),
    [
        ("Europe/Zurich", "Europe/Zurich"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("SE Asia Standard Time", "Asia/Bangkok"),
        ("Eastern Standard Time", "America/New_York"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/Vienna", "Europe/Vienna"),
        (
            "/mozilla.org/20050126_1/America/Argentina/Buenos_Aires",
            "America/Argentina/Buenos_Aires",
        ),
        ("Custom zone of the organiser", None),
    ],
)
def test_zone_names_map_to_iana(tzid: str, zone: str | None) -> None:
    assert iana_zone(tzid) == zone
