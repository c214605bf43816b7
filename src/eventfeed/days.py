"""Spans of build days, as the stores keep them beside what holds on them.

What a build works out from the day it is made as of (the problems of a record's checks,
an event's key) is kept with the span of days on which it comes out the same; a later build
on a day of that span takes it as it was, and works it out again on any other day. A span
is spelled ``FIRST..LAST`` in ISO days, either side left empty where it has no bound. ISO
days compare as their text does.
"""

from __future__ import annotations

import re
from datetime import date

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def span(first: date | None, last: date | None) -> str:
    """The days from ``first`` to ``last``, both included (None: no bound on that side)."""
    return f"{first.isoformat() if first else ''}..{last.isoformat() if last else ''}"


def within(days: str, day: str) -> bool:
    """Whether ``day`` (ISO) is one of ``days`` (:func:`span`); a text not of that form (kept
    by an older eventfeed, or damaged) holds on no day."""
    first, sep, last = days.partition("..")
    if not sep or (first and not _ISO_DAY.fullmatch(first)):
        return False
    if last and not _ISO_DAY.fullmatch(last):
        return False
    return (not first or first <= day) and (not last or day <= last)
