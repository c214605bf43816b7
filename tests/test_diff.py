"""eventfeed diff: a scripted sequence of edits reads exactly as a reviewer should see it."""

from __future__ import annotations

import pytest

from eventfeed import diff
from eventfeed.diff import VANISHED_WARNING

from .conftest import Run, SiteDir

MEETING = """\
---
title: Task force meeting
kind: meeting
start: 2023-02-07T15:00
end: 2023-02-07T17:00
online: {url: https://example.org/join}
organizers: [ilo]
updated: 2022-12-01
---
The task force meets.
"""

WEBINAR = """\
---
title: Webinar on SSE statistics
kind: webinar
start: 2023-03-01
online: {url: https://example.org/webinar}
updated: 2022-12-01
---
Statistics.
"""

OLD_NEWS = """\
---
title: Old news
kind: meeting
start: 2023-01-20
online: {url: https://example.org/old}
updated: 2022-12-01
---
"""

SERIES = """\
---
title: Monthly call
kind: meeting
start: 2023-01-12T15:00
end: 2023-01-12T16:00
rrule: FREQ=MONTHLY;BYDAY=2TH;COUNT=6
online: {url: https://example.org/call}
updated: 2022-12-01
---
"""

NEW_EVENT = """\
---
title: Regional session in Bangkok
kind: meeting
start: 2023-05-10
end: 2023-05-11
location: {venue: UNCC, city: Bangkok, country: TH}
updated: 2023-01-05
---
"""


def published(site: SiteDir, run: Run) -> None:
    site.record("2023/task-force-meeting.md", MEETING)
    site.record("2023/webinar.md", WEBINAR)
    site.record("2023/old-news.md", OLD_NEWS)
    site.record("2023/monthly-call.md", SERIES)
    result = run("build", "--now", "2022-12-02T00:00:00", "--as-of", "2022-12-02")
    assert result.exit_code == 0, result.output


def edit(site: SiteDir) -> None:
    """Add one event, move one, cancel one, delete one, reword one, move one occurrence."""
    site.record("2023/regional-session.md", NEW_EVENT)
    site.record(
        "2023/task-force-meeting.md",
        MEETING.replace("2023-02-07T15:00", "2023-02-08T10:00")
        .replace("2023-02-07T17:00", "2023-02-08T12:00")
        .replace("2022-12-01", "2023-01-05"),
    )
    site.record(
        "2023/webinar.md",
        WEBINAR.replace("kind: webinar", "kind: webinar\nstatus: cancelled").replace(
            "2022-12-01", "2023-01-05"
        ),
    )
    (site.events / "2023/old-news.md").unlink()
    site.record(
        "2023/monthly-call.md",
        SERIES.replace(
            "updated: 2022-12-01",
            "overrides:\n  - occurrence: 2023-03-09T15:00\n    start: 2023-03-10T09:00\n"
            "updated: 2023-01-05",
        ),
    )


EXPECTED_TEXT_TEMPLATE = """\
Added (1):
  regional-session: Regional session in Bangkok
    Wednesday 10 May 2023 – Thursday 11 May 2023 (all day)
Moved (1):
  task-force-meeting: Task force meeting
    from Tuesday 7 February 2023, 15:00–17:00 (Europe/Zurich)
    to Wednesday 8 February 2023, 10:00–12:00 (Europe/Zurich)
Schedule changed (1):
  monthly-call: Monthly call
    occurrence of Thursday 9 March 2023 15:00: now Friday 10 March 2023, 09:00–10:00 (Europe/Zurich)
Cancelled (1):
  webinar: Webinar on SSE statistics
    Wednesday 1 March 2023 (all day)
{warning}
  old-news: Old news
    Friday 20 January 2023 (all day)
    was events/2023/old-news.md
Calendars that change (6):
  calendar.ics
  calendar.json
  calendars/kind/meeting.ics
  calendars/kind/webinar.ics
  calendars/language/en.ics
  calendars/webinars.ics
Feeds that change (6):
  feeds/atom.xml
  feeds/feed.json
  feeds/rss.xml
  feeds/webinars/atom.xml
  feeds/webinars/feed.json
  feeds/webinars/rss.xml
Pages that change (2):
  collections/webinars.html
  index.html
"""


EXPECTED_TEXT = EXPECTED_TEXT_TEMPLATE.replace(
    "{warning}", f"WARNING: removed without cancellation (1): {VANISHED_WARNING}"
)


def test_scripted_edits_give_exactly_the_expected_summary(site: SiteDir, run: Run) -> None:
    published(site, run)
    assert run("diff").stdout == "No change for subscribers.\n"
    edit(site)
    result = run("diff")
    assert result.exit_code == 0, result.output
    assert result.stdout == EXPECTED_TEXT
    assert run("diff").stdout == EXPECTED_TEXT  # deterministic


def test_only_the_calendar_files_that_changed_are_read_back(
    site: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event whose calendar file is the one published, byte for byte, has nothing to show
    subscribers: its files are not parsed (with many events, reading every one back took
    most of the time)."""
    published(site, run)
    read: list[bytes] = []
    real = diff.read_event_file

    def counting(data: bytes) -> diff.Shown | None:
        read.append(data)
        return real(data)

    monkeypatch.setattr(diff, "read_event_file", counting)
    assert run("diff").stdout == "No change for subscribers.\n"
    assert read == []
    edit(site)
    assert run("diff").stdout == EXPECTED_TEXT
    # the old and new files of the moved, rescheduled and cancelled events, the new one's,
    # and the removed one's old file; not the others
    titles = sorted({shown.master.title for shown in map(real, read) if shown is not None})
    assert len(read) == 8
    assert titles == [
        "Monthly call",
        "Old news",
        "Regional session in Bangkok",
        "Task force meeting",
        "Webinar on SSE statistics",
    ]


def test_the_published_calendar_files_are_read_one_at_a_time(site: SiteDir, run: Run) -> None:
    """The published per-event files are read when the comparison asks for each, not all
    before it (with 100,000 events, holding them all took 595 MB more at the peak):
    a file changed after the mapping is made is read as it is then, a missing one is None,
    and an event the published build does not have is not there."""
    published(site, run)
    out = site.root / "out"
    previous = diff.read_manifest(out)
    assert previous is not None
    files = diff._OldEventFiles(out, previous)
    ids = sorted(previous.events)
    assert sorted(files) == ids
    assert len(files) == len(ids)
    first, second = ids[0], ids[1]
    path = out / "events" / f"{first}.ics"
    path.write_bytes(b"changed after the mapping was made")
    (out / "events" / f"{second}.ics").unlink()
    assert files[first] == b"changed after the mapping was made"
    assert files.get(second, b"absent") is None
    assert files.get("no-such-event") is None
    with pytest.raises(KeyError):
        files["no-such-event"]


def test_markdown_for_a_pull_request_comment(site: SiteDir, run: Run) -> None:
    published(site, run)
    edit(site)
    result = run("diff", "--format", "markdown")
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith("### What subscribers will see\n\n**Added** (1)\n\n")
    assert "- `regional-session`: Regional session in Bangkok\n" in text
    assert (
        "> [!WARNING]\n> **Removed without cancellation** (1): subscribers' calendars keep"
    ) in text
    assert ">\n> - `old-news`: Old news\n>   - Friday 20 January 2023 (all day)\n" in text
    assert "<details><summary>Feeds that change (6)</summary>\n\n- `feeds/atom.xml`\n" in text


def test_a_wording_change_is_text_only_and_a_cancelled_removal_is_quiet(
    site: SiteDir, run: Run
) -> None:
    site.record(
        "2023/webinar.md", WEBINAR.replace("kind: webinar", "kind: webinar\nstatus: cancelled")
    )
    site.record("2023/task-force-meeting.md", MEETING)
    assert run("build", "--now", "2022-12-02T00:00:00", "--as-of", "2022-12-02").exit_code == 0
    (site.events / "2023/webinar.md").unlink()
    site.record(
        "2023/task-force-meeting.md",
        MEETING.replace("Task force meeting", "Task force plenary").replace(
            "The task force meets.", "The task force meets in plenary."
        ),
    )
    out = run("diff").stdout
    assert out.split("Calendars that change")[0] == (
        "Removed (had been cancelled) (1):\n"
        "  webinar: Webinar on SSE statistics\n"
        "    Wednesday 1 March 2023 (all day)\n"
        "    was events/2023/webinar.md\n"
        "Text changed (1):\n"
        "  task-force-meeting: Task force plenary\n"
        "    title was: Task force meeting\n"
    )


def test_against_a_folder_without_a_build(site: SiteDir, run: Run) -> None:
    site.record("2023/webinar.md", WEBINAR)
    result = run("diff", "--against", "nowhere")
    assert result.exit_code == 0
    assert result.stderr == "note: nowhere has no manifest.json; every event counts as new\n"
    assert result.stdout.startswith("Added (1):\n  webinar: Webinar on SSE statistics\n")
