"""An event page's store key names the occurrence the page is shown at, so a day that shows
another occurrence of a series never reuses the page of the last build."""

from __future__ import annotations

from datetime import UTC, date, datetime

from eventfeed import pages
from eventfeed.build import BuildContext
from eventfeed.load import load_site
from eventfeed.state import advance

from .conftest import SiteDir

# The third occurrence is moved onto the second one's start, and lasts until the 13th.
SERIES = """\
---
title: Daily briefing
kind: meeting
start: 2023-01-10T15:00
end: 2023-01-10T16:00
rrule: FREQ=DAILY;COUNT=3
overrides:
  - occurrence: 2023-01-12T15:00
    start: 2023-01-11T15:00
    end: 2023-01-13T10:00
    note: Moved, and longer.
online:
  url: https://example.org/join
updated: 2023-01-01
---
Body.
"""


def test_two_occurrences_with_one_start_have_different_keys(site: SiteDir) -> None:
    site.record("briefing.md", SERIES)
    loaded = load_site(site.events)
    (event,) = loaded.events
    now = datetime(2023, 1, 1, tzinfo=UTC)
    history = advance(None, loaded.events, now)
    seen = {}
    for day in (date(2023, 1, 11), date(2023, 1, 12)):
        context = BuildContext(site=loaded, history=history, as_of=day)
        shown = pages._renderer(context).listed(event).shown
        seen[day] = (shown.note, shown.event.sort_key, pages.event_key(context, event))
    first, second = seen[date(2023, 1, 11)], seen[date(2023, 1, 12)]
    assert first[1] == second[1]  # the same start: the start alone cannot tell them apart
    assert (first[0], second[0]) == ("", "Moved, and longer.")  # another occurrence shown
    assert first[2] != second[2]
