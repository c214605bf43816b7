"""eventfeed new: exact files, refusal to overwrite, prompting, and records that pass check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import new
from eventfeed.frontmatter import read_document
from eventfeed.model import Record

from .conftest import Run, SiteDir

ONLINE_MEETING = """\
---
title: 'Task force meeting: 1e5 ideas'
kind: meeting
start: 2022-12-07T15:00
duration: PT2H
online:
  url: https://example.org/join
  platform: Zoom
tags: [task-force, presidency]
updated: 2022-12-01
---
"""

FORUM = """\
---
title: SSE forum – Asia and the Pacific
kind: webinar
status: tentative
start: 2023-05-10
end: 2023-05-12
location:
  venue: United Nations Conference Centre
  city: Bangkok
  country: TH
region: global
updated: 2023-01-02
---
"""


def test_new_from_options_writes_the_exact_record_and_it_passes_check(
    site: SiteDir, run: Run
) -> None:
    result = run(
        "new",
        "--title",
        "Task force meeting: 1e5 ideas",
        "--kind",
        "meeting",
        "--start",
        "2022-12-07T15:00",
        "--duration",
        "PT2H",
        "--online",
        "https://example.org/join",
        "--platform",
        "Zoom",
        "--tag",
        "task-force",
        "--tag",
        "presidency",
        "--updated",
        "2022-12-01",
    )
    assert result.exit_code == 0, result.output
    path = "events/2022/2022-12-07-task-force-meeting-1e5-ideas.md"
    assert result.stdout == path + "\n"
    assert (site.root / path).read_text(encoding="utf-8") == ONLINE_MEETING
    check = run("check", "--strict")
    assert check.exit_code == 0, check.output
    assert check.stderr == "0 error(s), 0 warning(s)\n1 record(s) checked in events\n"


def test_new_all_day_in_person(site: SiteDir, run: Run) -> None:
    result = run(
        "new",
        "--title",
        "SSE forum – Asia and the Pacific",
        "--kind",
        "webinar",
        "--start",
        "2023-05-10",
        "--end",
        "2023-05-12",
        "--status",
        "tentative",
        "--location",
        "United Nations Conference Centre",
        "--city",
        "Bangkok",
        "--country",
        "TH",
        "--region",
        "global",
        "--updated",
        "2023-01-02",
    )
    assert result.exit_code == 0, result.output
    path = site.root / "events/2023/2023-05-10-sse-forum-asia-and-the-pacific.md"
    assert path.read_text(encoding="utf-8") == FORUM
    assert run("check", "--strict").exit_code == 0


def test_new_refuses_to_overwrite(site: SiteDir, run: Run) -> None:
    args = ("new", "--title", "Call", "--kind", "meeting", "--start", "2023-02-01T10:00")
    assert run(*args, "--online", "https://example.org/a").exit_code == 0
    path = site.root / "events/2023/2023-02-01-call.md"
    before = path.read_bytes()
    again = run(*args, "--online", "https://example.org/b")
    assert again.exit_code == 1
    assert again.stderr == (
        "error: events/2023/2023-02-01-call.md already exists; edit it, "
        "or choose another title or date\n"
    )
    assert path.read_bytes() == before


def test_new_reports_a_kind_not_in_the_settings(site: SiteDir, run: Run) -> None:
    result = run("new", "--title", "X", "--kind", "party", "--start", "2023-02-01")
    assert result.exit_code == 1
    assert result.stderr == (
        "events/2023/2023-02-01-x.md: kind: 'party' is not a kind in the site settings\n"
        "    fix: use one of: webinar, meeting, or add it to 'kinds' in site.yaml\n"
    )
    assert not (site.events / "2023").exists()


def test_new_without_a_terminal_needs_the_required_options(site: SiteDir, run: Run) -> None:
    result = run("new", "--title", "X", "--kind", "meeting")
    assert result.exit_code == 2
    assert "--start is required (in a terminal you are asked for it)" in result.stderr


def test_new_rejects_an_offset_time_as_usage_error(site: SiteDir, run: Run) -> None:
    result = run("new", "--title", "X", "--kind", "meeting", "--start", "2023-02-01T10:00Z")
    assert result.exit_code == 2
    assert "has a UTC offset" in result.stderr


def test_new_asks_in_a_terminal(site: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from eventfeed.cli import main

    monkeypatch.setattr(new, "stdin_is_terminal", lambda: True)
    answers = (
        "Regional webinar\n2023-03-01T14:00\n2023-03-01T15:30\nwebinar\nhttps://example.org/w\n\n"
    )
    result = CliRunner().invoke(main, ["new", "--updated", "2023-02-01"], input=answers)
    assert result.exit_code == 0, result.output
    text = (site.events / "2023/2023-03-01-regional-webinar.md").read_text(encoding="utf-8")
    assert text == (
        "---\ntitle: Regional webinar\nkind: webinar\nstart: 2023-03-01T14:00\n"
        "end: 2023-03-01T15:30\nonline:\n  url: https://example.org/w\nupdated: 2023-02-01\n---\n"
    )


def test_event_id_is_date_and_slug_within_80_characters() -> None:
    from datetime import date

    assert new.event_id(date(2022, 12, 7), "Ça va? Économie sociale & solidaire!") == (
        "2022-12-07-ca-va-economie-sociale-solidaire"
    )
    assert new.event_id(date(2022, 12, 7), "会议") == "2022-12-07-event"
    long_id = new.event_id(date(2022, 12, 7), "word " * 40)
    assert len(long_id) <= 80
    assert long_id.endswith("-word")


# Text that a careless YAML writer would turn into numbers, booleans or nulls.
AWKWARD = st.sampled_from(
    ["NO", "yes", "null", "~", "1e5", "0123", "12:30", "- dash", "#hash", "a: b", " pad", "@x"]
)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and s)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(title=st.one_of(AWKWARD, TEXT), venue=st.one_of(AWKWARD, TEXT))
def test_render_record_reads_back_identically(title: str, venue: str) -> None:
    record = Record.model_validate(
        {"title": title, "kind": "meeting", "start": "2023-01-01", "location": {"venue": venue}}
    )
    text = new.render_record(record, "Body *text*.")
    doc = read_document(text.encode())
    assert Record.model_validate(doc.data) == record
    assert doc.body == "Body *text*.\n"
