"""eventfeed list: windows, expanded series with overrides, collections, exact output."""

from __future__ import annotations

import json

from .conftest import Run, SiteDir

SERIES = """\
---
title: Monthly call
kind: meeting
start: 2023-01-12T15:00
end: 2023-01-12T16:00
rrule: FREQ=MONTHLY;BYDAY=2TH;COUNT=6
exdates: [2023-02-09T15:00]
overrides:
  - occurrence: 2023-03-09T15:00
    start: 2023-03-16T15:00
  - occurrence: 2023-04-13T15:00
    status: cancelled
    title: Monthly call (April)
online: {url: https://example.org/call, platform: Zoom}
updated: 2023-01-01
---
"""

WEBINAR = """\
---
title: Regional webinar
kind: webinar
start: 2023-03-01
end: 2023-03-02
timezone: Asia/Bangkok
location: {venue: UNCC, city: Bangkok, country: TH}
updated: 2023-01-01
---
"""


def make(site: SiteDir) -> None:
    site.record("2023/monthly-call.md", SERIES)
    site.record("2023/regional-webinar.md", WEBINAR)


def test_table_of_a_window_expands_the_series(site: SiteDir, run: Run) -> None:
    make(site)
    result = run("list", "--from", "2023-01-01", "--to", "2023-04-30")
    assert result.exit_code == 0, result.output
    when = ["Thu 2023-01-12 15:00–16:00 Europe/Zurich", "Wed 2023-03-01 – Thu 2023-03-02"]
    when += ["Thu 2023-03-16 15:00–16:00 Europe/Zurich", "Thu 2023-04-13 15:00–16:00 Europe/Zurich"]
    title = ["Monthly call", "Regional webinar", "Monthly call", "Monthly call (April) [cancelled]"]
    where = ["Online (Zoom)", "UNCC, Bangkok, TH", "Online (Zoom)", "Online (Zoom)"]
    rows = [f"{w:40}  {t:32}  {p}\n" for w, t, p in zip(when, title, where, strict=True)]
    assert result.stdout == "".join(rows)


def test_upcoming_and_past_split_at_today(site: SiteDir, run: Run) -> None:
    make(site)
    upcoming = run("list", "--today", "2023-04-14", "--format", "json")
    assert [(o["id"], o["start"]) for o in json.loads(upcoming.stdout)] == [
        ("monthly-call", "2023-05-11T15:00:00+02:00"),
        ("monthly-call", "2023-06-08T15:00:00+02:00"),
    ]
    past = run("list", "--past", "--today", "2023-03-02", "--format", "json")
    assert [(o["id"], o["start"]) for o in json.loads(past.stdout)] == [
        ("monthly-call", "2023-01-12T15:00:00+01:00"),
    ]


def test_json_fields(site: SiteDir, run: Run) -> None:
    make(site)
    result = run("list", "--from", "2023-03-01", "--to", "2023-03-01", "--format", "json")
    assert json.loads(result.stdout) == [
        {
            "id": "regional-webinar",
            "title": "Regional webinar",
            "status": "confirmed",
            "all_day": True,
            "start": "2023-03-01",
            "end": "2023-03-02",
            "timezone": "Asia/Bangkok",
            "where": "UNCC, Bangkok, TH",
            "occurrence": None,
            "source": "events/2023/regional-webinar.md",
        }
    ]


def test_collection_filter_and_unknown_collection(site: SiteDir, run: Run) -> None:
    make(site)
    result = run("list", "--collection", "webinars", "--from", "2023-01-01", "--to", "2023-12-31")
    assert result.exit_code == 0
    assert [line.split("  ")[-1] for line in result.stdout.splitlines()] == ["UNCC, Bangkok, TH"]
    bad = run("list", "--collection", "nope")
    assert bad.exit_code == 2
    assert "'nope' is not a collection in site.yaml; use one of: webinars" in bad.stderr


def test_an_empty_window_says_so_on_stderr(site: SiteDir, run: Run) -> None:
    make(site)
    result = run("list", "--from", "2030-01-01", "--to", "2030-01-31")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "no events in this window\n"


def test_records_with_errors_are_reported(site: SiteDir, run: Run) -> None:
    site.record("2023/broken.md", "---\ntitle: X\nkind: party\nstart: 2023-01-01\n---\n")
    result = run("list")
    assert result.exit_code == 1
    assert "events/2023/broken.md:3: kind: 'party' is not a kind" in result.stderr
