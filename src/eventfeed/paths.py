"""The layout of ``out/``: every path a compiler writes is named here, and nowhere else.

Paths are relative, use ``/`` and contain only slugs, so they are the same on every host and
safe on case-insensitive file systems (ids are lowercase by construction).

====================================  ==========================================================
``index.html``                        upcoming then past events, subscribe section
``events/<id>.html``                  one page per event
``events/<id>.ics``                   "add to my calendar" file for one event
``calendar.ics``                      every event within the look-back window
``calendar.json``                     the same calendar as jCal (RFC 7265)
``calendars/<collection>.ics``        one per collection in the settings
``calendars/kind/<kind>.ics``         one per kind that occurs
``calendars/region/<region>.ics``     one per region that occurs
``calendars/language/<lang>.ics``     one per language that occurs
``calendars/archive/<year>.ics``      events that ended before the look-back window, by year;
                                      a year over ``calendars.max_bytes``: ``<year>-<mm>.ics``
                                      by month, a month over it: ``<year>-<mm>-part<n>.ics``
``calendars/later/<year>.ics``        coming events beyond what ``calendars.max_bytes`` allows
                                      (split as the archive is)
``collections/<collection>.html``     a page per collection with its subscribe links
``past/<year>.html``                  past events a listing over ``pages.max_bytes`` has no
                                      room for, by year (split as the archive is)
``later/<year>.html``                 coming events it has no room for (only for very large
                                      sites), by the year they start
``collections/<collection>/past/...`` the same for a collection's page
``collections/<collection>/later/...``
``feeds/atom.xml`` ``rss.xml``        site news feeds (Atom 1.0, RSS 2.0)
``feeds/feed.json``                   JSON Feed 1.1
``feeds/<collection>/atom.xml`` ...   the same per collection
``manifest.json``                     build state: content hashes, SEQUENCE and times per event
====================================  ==========================================================
"""

from __future__ import annotations

MANIFEST = "manifest.json"
INDEX = "index.html"
CALENDAR = "calendar.ics"
JCAL = "calendar.json"
STYLESHEET = "style.css"
NOT_FOUND = "404.html"


def event_page(event_id: str) -> str:
    return f"events/{event_id}.html"


def event_ics(event_id: str) -> str:
    return f"events/{event_id}.ics"


def collection_calendar(name: str) -> str:
    return f"calendars/{name}.ics"


def facet_calendar(facet: str, value: str) -> str:
    """``facet`` is ``kind``, ``region`` or ``language``."""
    return f"calendars/{facet}/{value.lower()}.ics"


def archive_calendar(year: int, month: int | None = None, part: int | None = None) -> str:
    return f"calendars/archive/{_dated(year, month, part)}.ics"


def later_calendar(year: int, month: int | None = None, part: int | None = None) -> str:
    return f"calendars/later/{_dated(year, month, part)}.ics"


def _dated(year: int, month: int | None, part: int | None) -> str:
    """``2021``, ``2021-03`` or ``2021-03-part2``: a year, a month of it, a part of that."""
    name = str(year) if month is None else f"{year}-{month:02d}"
    return name if part is None else f"{name}-part{part}"


def collection_page(name: str) -> str:
    return f"collections/{name}.html"


def dated_page(
    kind: str,
    year: int,
    month: int | None = None,
    part: int | None = None,
    collection: str | None = None,
) -> str:
    """A page of the events a listing has no room for: ``kind`` is ``past`` or ``later``;
    the listing is the index, or the page of ``collection``."""
    folder = kind if collection is None else f"collections/{collection}/{kind}"
    return f"{folder}/{_dated(year, month, part)}.html"


def feed(kind: str, collection: str | None = None) -> str:
    """``kind`` is ``atom``, ``rss`` or ``json``."""
    name = {"atom": "atom.xml", "rss": "rss.xml", "json": "feed.json"}[kind]
    return f"feeds/{collection}/{name}" if collection else f"feeds/{name}"
