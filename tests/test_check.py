"""`eventfeed check`: every broken record is reported with its exact file, line and field."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import MINIMAL, Run, SiteDir

# (file name, record text, the exact first line of the report)
BROKEN = [
    (
        "end-before-start.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07T15:00\nend: 2022-12-07T10:00\n---\n",
        "events/end-before-start.md:5: end: must be after start (2022-12-07 15:00 Europe/Zurich)",
    ),
    (
        "allday-end-before.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nend: 2022-12-06\n---\n",
        "events/allday-end-before.md:5: end: must not be before start (2022-12-07)",
    ),
    (
        "mixed-end.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nend: 2022-12-07T10:00\n---\n",
        "events/mixed-end.md:5: end: end and start must both be dates (all-day) or both be "
        "date-times",
    ),
    (
        "unknown-zone.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\ntimezone: Europe/Geneva\n---\n",
        "events/unknown-zone.md:5: timezone: 'Europe/Geneva' is not an IANA time zone",
    ),
    (
        "dst-gap.md",
        "---\ntitle: A\nkind: meeting\nstart: 2023-03-26T02:30\ntimezone: Europe/Zurich\n---\n",
        "events/dst-gap.md:4: start: 2023-03-26 02:30 does not exist in Europe/Zurich (the clocks "
        "skip it when daylight saving starts)",
    ),
    (
        "dst-fold.md",
        "---\ntitle: A\nkind: meeting\nstart: 2023-11-05T01:30\ntimezone: America/New_York\n---\n",
        "events/dst-fold.md:4: start: 2023-11-05 01:30 happens twice in America/New_York (the "
        "clocks repeat it when daylight saving ends)",
    ),
    (
        "bad-url.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nonline:\n"
        "  url: javascript:alert(1)\n---\n",
        "events/bad-url.md:6: online.url: 'javascript:alert(1)' is not an http(s) URL",
    ),
    (
        "bad-kind.md",
        "---\ntitle: A\nkind: party\nstart: 2022-12-07\n---\n",
        "events/bad-kind.md:3: kind: 'party' is not a kind in the site settings",
    ),
    (
        "bad-region.md",
        "---\ntitle: A\nkind: meeting\nregion: mars\nstart: 2022-12-07\n---\n",
        "events/bad-region.md:4: region: 'mars' is not a region in the site settings",
    ),
    (
        "bad-org.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\norganizers:\n  - ilo\n  - nobody\n---\n",
        "events/bad-org.md:7: organizers[1]: 'nobody' is not an organisation in the site settings",
    ),
    (
        "bad-rrule.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nrrule: FREQ=SOMETIMES\n---\n",
        "events/bad-rrule.md:5: rrule: not a valid recurrence rule: FREQ=SOMETIMES is not "
        "supported; use one of DAILY, WEEKLY, MONTHLY, YEARLY",
    ),
    (
        "empty-rrule.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nrrule: FREQ=DAILY;COUNT=1\n"
        "exdates: [2022-12-07]\n---\n",
        "events/empty-rrule.md:5: rrule: produces no occurrence (every date is excluded)",
    ),
    (
        "bad-override.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nrrule: FREQ=WEEKLY;COUNT=3\n"
        "overrides:\n  - occurrence: 2022-12-08\n    status: cancelled\n---\n",
        "events/bad-override.md:7: overrides[0].occurrence: 2022-12-08 is not an occurrence of "
        "the series",
    ),
    (
        "Not_A_Slug.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\n---\n",
        "events/Not_A_Slug.md:1: id: file name 'Not_A_Slug' is not a valid id",
    ),
    (
        "bad-id.md",
        "---\nid: ../escape\ntitle: A\nkind: meeting\nstart: 2022-12-07\n---\n",
        "events/bad-id.md:2: id: '../escape' is not a slug: use lowercase letters, digits and "
        "single hyphens (at most 80 characters)",
    ),
    (
        "unknown-key.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nlocaton:\n  city: Bern\n---\n",
        "events/unknown-key.md:5: locaton: unknown field",
    ),
    (
        "missing-title.md",
        "---\nkind: meeting\nstart: 2022-12-07\n---\n",
        "events/missing-title.md:1: title: required field is missing",
    ),
    (
        "offset-time.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07T15:00+01:00\n---\n",
        "events/offset-time.md:4: start: '2022-12-07T15:00+01:00' has a UTC offset; write the "
        "local time (2022-12-07T15:00) and set 'timezone'",
    ),
    (
        "not-a-date.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-02-30\n---\n",
        "events/not-a-date.md:4: start: '2022-02-30' is not a calendar date",
    ),
    (
        "count-text.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nparticipants: about fifty\n---\n",
        "events/count-text.md:5: participants: must be a whole number",
    ),
    (
        "newline-title.md",
        '---\ntitle: "A\\nBEGIN:VEVENT"\nkind: meeting\nstart: 2022-12-07\n---\n',
        "events/newline-title.md:2: title: must be a single line of text without control "
        "characters",
    ),
    (
        "duplicate-key.md",
        "---\ntitle: A\nkind: meeting\ntitle: B\nstart: 2022-12-07\n---\n",
        "events/duplicate-key.md:4: duplicate key 'title' (first given on line 2)",
    ),
    (
        "alias.md",
        "---\ntitle: &t A\nkind: meeting\nstart: 2022-12-07\ntags: [*t]\n---\n",
        "events/alias.md:5: YAML aliases (*name) are not allowed",
    ),
    (
        "no-front-matter.md",
        "Just a body.\n",
        "events/no-front-matter.md:1: file does not start with a '---' front matter block",
    ),
    (
        "unterminated.md",
        "---\ntitle: A\nkind: meeting\n",
        "events/unterminated.md:1: front matter block is never closed",
    ),
    (
        "empty.md",
        "",
        "events/empty.md: file is empty",
    ),
    (
        "yaml-syntax.md",
        "---\ntitle: A\nkind: [meeting\nstart: 2022-12-07\n---\n",
        "events/yaml-syntax.md:4: YAML syntax: did not find expected ',' or ']' (while parsing a "
        "flow sequence that starts on line 3)",
    ),
    (
        "year-one.md",
        "---\ntitle: A\nkind: meeting\nstart: 0001-01-01\n---\n",
        "events/year-one.md:4: start: 0001-01-01 is outside the supported years 1900-2199",
    ),
    (
        "end-and-duration.md",
        "---\ntitle: A\nkind: meeting\nstart: 2022-12-07T10:00\nend: 2022-12-07T11:00\n"
        "duration: PT1H\n---\n",
        "events/end-and-duration.md:6: duration: give either end or duration, not both",
    ),
]


def first_line(stdout_or_stderr: str) -> str:
    return stdout_or_stderr.splitlines()[0]


@pytest.mark.parametrize(("name", "text", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_each_broken_record_is_reported_exactly(
    site: SiteDir, run: Run, name: str, text: str, expected: str
) -> None:
    site.record(name, text)
    result = run("check")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith(" ")]
    assert errors[0] == expected
    assert errors[-1].startswith("1 error(s)")


def test_every_problem_in_every_file_is_reported_in_one_run(site: SiteDir, run: Run) -> None:
    for name, text, _ in BROKEN:
        site.record(name, text)
    site.record("fine.md", MINIMAL)
    result = run("check")
    assert result.exit_code == 1
    reported = [line for line in result.stderr.splitlines() if line.startswith("events/")]
    expected = sorted(e for _, _, e in BROKEN)
    assert [r for r in reported if ": warning: " not in r] == expected
    assert result.stderr.splitlines()[-1] == f"{len(BROKEN)} error(s), 0 warning(s)"


def test_github_format_prints_parseable_annotations(site: SiteDir, run: Run) -> None:
    site.record("end-before-start.md", BROKEN[0][1])
    site.record("bad-kind.md", BROKEN[7][1])
    result = run("check", "--format", "github")
    assert result.exit_code == 1
    pattern = re.compile(r"^::(error|warning) file=([^,]+),line=(\d+),title=([^:]+)::(.+)$")
    parsed = [pattern.match(line) for line in result.stdout.splitlines()]
    assert all(parsed), result.stdout
    assert [(m.group(2), m.group(3), m.group(4)) for m in parsed if m] == [
        ("events/bad-kind.md", "3", "kind"),
        ("events/end-before-start.md", "5", "end"),
    ]


def test_json_format(site: SiteDir, run: Run) -> None:
    site.record("bad-kind.md", BROKEN[7][1])
    result = run("check", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {
            "path": "events/bad-kind.md",
            "line": 3,
            "field": "kind",
            "severity": "error",
            "message": "'party' is not a kind in the site settings",
            "hint": "use one of: webinar, meeting, or add it to 'kinds' in site.yaml",
        }
    ]


def test_clean_events_exit_zero(site: SiteDir, run: Run) -> None:
    site.record("fine.md", MINIMAL)
    result = run("check")
    assert result.exit_code == 0
    assert result.stderr == "0 error(s), 0 warning(s)\n1 record(s) checked in events\n"


def test_duplicate_ids_name_both_files(site: SiteDir, run: Run) -> None:
    site.record("a/same.md", MINIMAL)
    site.record("b/same.md", MINIMAL)
    result = run("check")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("events/")]
    assert lines == [
        "events/a/same.md:1: id: id 'same' is also used by events/b/same.md",
        "events/b/same.md:1: id: id 'same' is already used by events/a/same.md",
    ]


def test_warnings_fail_only_with_strict(site: SiteDir, run: Run) -> None:
    future = MINIMAL.replace("2022-12-07", "2099-12-07")
    site.record("no-link.md", future.replace("online:\n  url: https://example.org/join\n", ""))
    assert run("check").exit_code == 0
    strict = run("check", "--strict")
    assert strict.exit_code == 1
    assert (
        "events/no-link.md:4: warning: start: event has neither a location nor an online link"
        in strict.stderr
    )


def test_encodings_and_line_endings(site: SiteDir, run: Run) -> None:
    site.record("bom-crlf.md", b"\xef\xbb\xbf" + MINIMAL.replace("\n", "\r\n").encode())
    site.record("latin1.md", MINIMAL.replace("A meeting", "Réunion").encode("latin-1"))
    result = run("check")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("events/")]
    assert errors == [
        "events/latin1.md:2: file is not valid UTF-8 (byte 0xe9 at offset 12)",
    ]


def test_size_limit(site: SiteDir, run: Run) -> None:
    site.record("huge.md", MINIMAL + "x" * 1_000_001)
    result = run("check")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "events/huge.md: file is 1,000,152 bytes, over the limit of 1,000,000"
    )


def test_bad_settings_are_reported_with_lines(site: SiteDir, run: Run) -> None:
    settings = (site.events / "site.yaml").read_text()
    (site.events / "site.yaml").write_text(settings.replace("Europe/Zurich", "Mars/Olympus"))
    result = run("check")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "events/site.yaml:7: timezone: 'Mars/Olympus' is not an IANA time zone"
    )


def test_usage_error_exits_2(site: SiteDir, run: Run) -> None:
    result = run("check", "--format", "xml")
    assert result.exit_code == 2
    assert "Invalid value for '--format'" in result.stderr


def test_an_imported_uid_may_not_collide_with_another_record(site: SiteDir, run: Run) -> None:
    site.record("first.md", MINIMAL)
    site.record(
        "second.md", MINIMAL.replace("title: A meeting", "title: B\nuid: FIRST@events.example.org")
    )
    result = run("check")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("events/")]
    assert lines == [
        "events/second.md:3: uid: calendar UID 'FIRST@events.example.org' is already used by "
        "events/first.md"
    ]
