"""Human-readable "when" and "where" lines shared by feeds, pages and listings.

Times are shown in the event's own zone with the zone named, because a reader in another zone
must be able to tell; calendars (not these texts) convert to the reader's zone.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from .event import Event, Mode


@lru_cache(maxsize=1 << 14)
def _day(value: date) -> str:
    """``Wednesday 7 December 2022``: kept, as events share days and each text is asked for
    by the calendars, the feeds and the pages."""
    return f"{value:%A} {value.day} {value:%B %Y}"


def when_text(event: Event) -> str:
    """``Wednesday 7 December 2022, 15:00–17:00 (Europe/Zurich)`` or an all-day range; kept by
    the event, as its calendar, its page and the feeds each show it."""
    found = event.kept_when
    if found is None:
        found = event.keep_when(_when_text(event))
    return found


def _when_text(event: Event) -> str:
    if event.all_day:
        first, last = event.local_start, event.last_day
        assert not isinstance(first, datetime)
        if first == last:
            return f"{_day(first)} (all day)"
        return f"{_day(first)} – {_day(last)} (all day)"
    start, end = event.local_start, event.local_end
    assert isinstance(start, datetime)
    assert isinstance(end, datetime)
    # HH:MM as ``%H:%M`` writes it, without a strftime call for each
    begins = f"{start.hour:02d}:{start.minute:02d}"
    ends = f"{end.hour:02d}:{end.minute:02d}"
    first = start.date()
    if first == end.date():
        return f"{_day(first)}, {begins}–{ends} ({event.tzid})"
    return f"{_day(first)} {begins} – {_day(end.date())} {ends} ({event.tzid})"


def place_text(event: Event) -> str:
    """Venue, city and country of an in-person or hybrid event; empty when online only."""
    loc = event.record.location
    if loc is None:
        return ""
    parts = [p for p in (loc.venue, loc.address, loc.city, loc.country) if p]
    return ", ".join(dict.fromkeys(parts))


def where_text(event: Event) -> str:
    """``Online (Zoom)``, ``United Nations Headquarters, New York, US`` or both for hybrid."""
    online = event.record.online
    platform = online.platform if online and online.platform else ""
    if platform.lower().startswith("online"):
        label = platform  # "Online meeting" needs no "Online (...)" around it
    else:
        label = "Online" + (f" ({platform})" if platform else "")
    place = place_text(event)
    if event.mode is Mode.HYBRID:
        return f"{place} and {label.lower()}" if place else label
    if event.mode is Mode.IN_PERSON:
        return place
    return label


def status_label(event: Event) -> str:
    """``Cancelled`` / ``Postponed`` / ``Tentative`` for marking titles; empty when confirmed."""
    status = event.brief.status.value
    return "" if status == "confirmed" else status.capitalize()


def slug_label(slug: object) -> str:
    """A slug as words: ``side-event`` reads ``Side event``."""
    return str(slug).replace("-", " ").capitalize()
