"""The static site: index, event and collection pages, stylesheet and host files.

Pages are rendered with Jinja2 (autoescaping on; only a sanitised record body and the escaped
JSON-LD are marked safe), but for what is made once per event, an event page's own part and
its item in the listings: :mod:`.eventpage` writes those, escaping as Jinja does.

Links between pages are *relative* (``../style.css`` from ``events/<id>.html``), so the site
works from a sub-path (``https://example.org/repo/``), in ``eventfeed serve`` and when opened
from disk. Absolute URLs, from ``settings.site_url``, are used only where a page is read far
from the site: subscribe links (``webcal://`` and the https address to copy), the canonical
URL, JSON-LD and "add to calendar" links. ``404.html`` is the exception: a host serves it at
any depth, so its links are absolute and its style is inline.

Feed autodiscovery (``<link rel="alternate">``) uses relative URLs: browsers and feed readers
resolve them against the page's own address, which keeps them right under any base path and in
a local preview.

Upcoming and past events are split by ``context.as_of`` (a day in the site's zone), never by
the clock, so the same records and day give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache, partial
from importlib import resources
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from markupsafe import Markup, escape

from . import paths
from .build import BuildContext, EventPart, Lazy, in_collection
from .event import DEFAULT_DURATION, Event, Mode, Org, microseconds, moment_of
from .eventpage import EventView, event_main, h, item_parts
from .markdown import to_html, to_text
from .model import Collection, Settings, Status
from .recurrence import naive, occurrences
from .text import place_text, slug_label, status_label, when_text, where_text

NOJEKYLL = ".nojekyll"
#: The site icon; without one, browsers log a failed request for /favicon.ico.
ICON = "icon.svg"
HEADERS = "_headers"

#: Media types by file name, shared by ``_headers`` and ``eventfeed serve``.
_BY_NAME = {
    "atom.xml": "application/atom+xml",
    "rss.xml": "application/rss+xml",
    "feed.json": "application/feed+json",
    paths.JCAL: "application/calendar+json",
}
_BY_SUFFIX = {
    ".ics": "text/calendar; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

#: Occurrences of a series shown on its page and examined for listings.
MAX_LISTED = 200

_MODE_LABELS = {
    Mode.ONLINE: "Online",
    Mode.HYBRID: "Hybrid (in person and online)",
    Mode.IN_PERSON: "In person",
}
_SCHEMA_STATUS = {
    Status.CONFIRMED: "https://schema.org/EventScheduled",
    Status.TENTATIVE: "https://schema.org/EventScheduled",
    Status.POSTPONED: "https://schema.org/EventPostponed",
    Status.CANCELLED: "https://schema.org/EventCancelled",
}
_SCHEMA_MODE = {
    Mode.ONLINE: "https://schema.org/OnlineEventAttendanceMode",
    Mode.HYBRID: "https://schema.org/MixedEventAttendanceMode",
    Mode.IN_PERSON: "https://schema.org/OfflineEventAttendanceMode",
}


def content_type(path: str) -> str:
    """The media type a host should send for an output file."""
    name = posixpath.basename(path)
    if name in _BY_NAME:
        return _BY_NAME[name]
    return _BY_SUFFIX.get(posixpath.splitext(name)[1].lower(), "application/octet-stream")


# --- occurrences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event as shown: the event itself, or one date of a series."""

    event: Event
    status: Status
    note: str
    moved: bool

    @property
    def when(self) -> str:
        return when_text(self.event)

    @property
    def cancelled(self) -> bool:
        return self.status is Status.CANCELLED


@dataclass(frozen=True, slots=True)
class _Dates:
    """One occurrence of a series before it is made an :class:`Occurrence`: its local start
    and end (inclusive end date when all-day, as records give them) and what overrides it."""

    start: date | datetime
    end: date | datetime
    status: Status
    title: str
    note: str
    moved: bool


def _series_dates(event: Event) -> list[_Dates]:
    """The occurrences of a series with their overrides applied (bounded), as plain values."""
    rec = event.record
    length = naive(event.local_end) - naive(event.local_start)
    overrides = {naive(o.occurrence): o for o in rec.overrides}
    all_day = event.all_day
    result = []
    for original in occurrences(
        rec.rrule, rec.start, event.zone, rdates=rec.rdates, exdates=rec.exdates, limit=MAX_LISTED
    ):
        start: date | datetime = original
        end: date | datetime | None = None
        status, note, title, moved = rec.status, "", rec.title, False
        override = overrides.get(naive(original))
        if override is not None:
            if override.start is not None:
                start, moved = override.start, override.start != original
            end = override.end
            status = override.status or status
            title = override.title or title
            note = override.note or ""
        if end is None:
            end = start + length
            if all_day:  # records give inclusive end dates; Event adds the day back
                end -= timedelta(days=1)
        result.append(_Dates(start, end, status, title, note, moved))
    return result


def _occurrence(event: Event, dates: _Dates) -> Occurrence:
    """One occurrence of the series ``event`` as an event of its own."""
    single = event.record.model_copy(
        update={
            "start": dates.start,
            "end": dates.end,
            "duration": None,
            "rrule": None,
            "rdates": (),
            "exdates": (),
            "overrides": (),
            "title": dates.title,
            "status": dates.status,
        }
    )
    return Occurrence(replace(event, record=single), dates.status, dates.note, dates.moved)


def _is_series(event: Event) -> bool:
    return bool(event.record.rrule or event.record.rdates)


def occurrences_of(event: Event) -> list[Occurrence]:
    """A single event, or the occurrences of a series with their overrides applied (bounded)."""
    if not _is_series(event):
        return [Occurrence(event, event.record.status, "", False)]
    return [_occurrence(event, dates) for dates in _series_dates(event)]


def _last_day_in(event: Event, zone: ZoneInfo) -> date:
    """The last day the event takes place on, seen from ``zone`` (the site's)."""
    if event.all_day:
        return event.last_day
    end = event.aware(event.local_end) - timedelta(microseconds=1)
    return end.astimezone(zone).date()


_TICK = timedelta(microseconds=1)


def _dates_last_day_in(event: Event, dates: _Dates, zone: ZoneInfo) -> date:
    """:func:`_last_day_in` of the occurrence ``dates`` of the series ``event``, without
    making it an event: the occurrence has the series' zone, and an end but no duration."""
    start, end = dates.start, dates.end
    if not isinstance(start, datetime):  # all-day: the inclusive end date is the last day
        return end.date() if isinstance(end, datetime) else end
    local_end = end if isinstance(end, datetime) else start + DEFAULT_DURATION
    return (event.aware(local_end) - _TICK).astimezone(zone).date()


@dataclass(frozen=True)
class Listed:
    """An event in a listing, placed at the occurrence that matters for it."""

    event: Event
    shown: Occurrence
    upcoming: bool
    series: bool
    #: the shown occurrence's place in the series (:func:`occurrences_of`); 0 for one event
    place: int = 0
    #: the last day (as of) on which the event is listed so, from the day it was worked out
    #: for on; None: every later day
    until: date | None = None

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return self.shown.event.sort_key


def listed(event: Event, context: BuildContext) -> Listed:
    """Upcoming when some occurrence lasts until ``as_of`` or later; shown at the next one."""
    zone = ZoneInfo(context.settings.timezone)
    return _listed(event, zone, context.as_of)


def _listed(event: Event, zone: ZoneInfo, as_of: date) -> Listed:
    """How ``event`` is listed on ``as_of``. Of a series, only the shown occurrence is made an
    event: the others are weighed by their dates alone (the earliest start that has not
    ended, cancelled ones left out; the first of equal starts)."""
    if not _is_series(event):
        last = _last_day_in(event, zone)
        upcoming = last >= as_of
        shown = Occurrence(event, event.record.status, "", False)
        return Listed(event, shown, upcoming, False, until=last if upcoming else None)
    every = _series_dates(event)
    best: tuple[datetime, int, date] | None = None
    for place, dates in enumerate(every):
        if dates.status is Status.CANCELLED:
            continue
        last = _dates_last_day_in(event, dates, zone)
        if last < as_of:
            continue
        utc_start = event.aware(dates.start).astimezone(UTC)
        if best is None or utc_start < best[0]:
            best = (utc_start, place, last)
    if best is None:  # and on every later day: none is left to come
        return Listed(event, _occurrence(event, every[0]), False, True, 0)
    # On a later day fewer occurrences are left to come, and the first of them is this one
    # until its own last day has passed.
    place = best[1]
    return Listed(event, _occurrence(event, every[place]), True, True, place, until=best[2])


# --- links ---------------------------------------------------------------------------------


def relative(target: str, page: str) -> str:
    """``target`` (a path in out/) as seen from ``page`` (another path in out/)."""
    start = posixpath.dirname(page) or "."
    return posixpath.relpath(target, start)


_NOT_PLAIN = frozenset({"", ".", ".."})


def _is_plain(path: str) -> bool:
    """A relative path without empty, ``.`` or ``..`` parts, which needs no normalising."""
    return _NOT_PLAIN.isdisjoint(path.split("/"))


class Links(dict[str, str]):
    """The link to each path of out/ from one folder of it, worked out once per path.

    Templates write ``link['style.css']``: a dictionary look-up, where a call through Jinja
    costs several times more, and pages are rendered by the ten thousand. The result is
    :func:`relative`'s, which the plain paths of :mod:`paths` reach without ``relpath``.
    """

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder
        self._up = "../" * (folder.count("/") + 1) if folder else ""
        self._plain = folder == "" or _is_plain(folder)

    def __missing__(self, target: str) -> str:
        self[target] = found = self._find(target)
        return found

    def _find(self, target: str) -> str:
        if not (self._plain and _is_plain(target)):
            return relative(target, self.folder + "/" if self.folder else "")
        if not self.folder:
            return target
        inside = self.folder + "/"
        if target.startswith(inside):
            return target[len(inside) :]
        common = posixpath.commonpath([self.folder, target])
        if not common:
            return self._up + target
        return relative(target, inside)


class AbsoluteLinks(dict[str, str]):
    """Links of a page served at any depth (``404.html``): absolute, the index as the site."""

    def __init__(self, site_url: str) -> None:
        super().__init__()
        self.site_url = site_url

    def __missing__(self, target: str) -> str:
        self[target] = found = self.site_url + ("" if target == paths.INDEX else target)
        return found


#: What ``urllib.parse.quote`` never escapes (the unreserved characters of RFC 3986).
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
#: Each byte as itself when unreserved, space as ``+``, any other as ``%`` (marking the place
#: of its ``%XX``).
_FORM_MARKS = bytes(b if b in _UNRESERVED else 0x2B if b == 0x20 else 0x25 for b in range(256))
_FORM_KEPT = _UNRESERVED + b" "
#: The same, but each byte of a character beyond ASCII as itself (:func:`link_plus`).
_LINK_MARKS = bytes(b if b >= 0x80 else mark for b, mark in enumerate(_FORM_MARKS))
_LINK_KEPT = _FORM_KEPT + bytes(range(0x80, 0x100))
#: The characters beyond ASCII that the URL Standard does not let a URL hold as they are (its
#: "URL code points" leave them out): the C1 controls and the noncharacters.
_NOT_IN_URL = re.compile(
    "[\x80-\x9f\ufdd0-\ufdef"
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17))
    + "]"
)
#: What the UTF-8 of each of those holds: a C1 control is ``C2 80`` to ``C2 9F``, U+FDD0 to
#: U+FDEF are ``EF B7 90`` to ``EF B7 AF``, and the last two code points of every plane end in
#: ``BF BE`` and ``BF BF`` (as do a few other characters: the pattern above then decides).
#: Looked for in the bytes first, the pairs of bytes one by one (:func:`_may_not_be_in_url`):
#: the pattern's search of 900 characters of an event's text took 30-45 us, the bytes' 1-5.
_MAY_NOT_BE_IN_URL = re.compile(rb"\xc2[\x80-\x9f]|\xef\xb7[\x90-\xaf]|\xbf[\xbe\xbf]")
_MAY_NOT_BE_IN_URL_PAIRS = (b"\xbf\xbe", b"\xbf\xbf", b"\xef\xb7", b"\xc2")


def _may_not_be_in_url(data: bytes) -> bool:
    """Whether the UTF-8 ``data`` may hold a character of :data:`_NOT_IN_URL`. Most texts hold
    none of those bytes, which a search for each finds at once; a text in French or Spanish
    holds ``C2`` (before a no-break space, a guillemet, an inverted question mark): the
    pattern then looks at what follows each."""
    if data.isascii() or not any(pair in data for pair in _MAY_NOT_BE_IN_URL_PAIRS):
        return False
    return _MAY_NOT_BE_IN_URL.search(data) is not None


def _encoded(data: bytes, marks: bytes, kept: bytes) -> str:
    """``data`` with every byte that ``marks`` marks ``%`` written as ``%XX``, built from
    whole-string operations: the bytes translated, and the hex of the bytes not ``kept``, in
    order, put after each mark."""
    pieces = data.translate(marks).decode("utf-8").split("%")
    if len(pieces) == 1:
        return pieces[0]
    escaped = data.translate(None, kept).hex(" ").upper().split(" ")
    return pieces[0] + "%" + "%".join(map(operator.add, escaped, pieces[1:]))


def quote_plus(text: str) -> str:
    """:func:`urllib.parse.quote_plus` with nothing safe, as ``urlencode`` applies it."""
    return _encoded(text.encode("utf-8"), _FORM_MARKS, _FORM_KEPT)


def link_plus(text: str) -> str:
    """``text`` as a value of a link's query in a page, form-encoded as
    :func:`quote_plus` does, but with each character beyond ASCII written as itself.

    A browser following the link encodes those characters in UTF-8, ``%XX`` for each byte, as
    it reads the URL (the URL Standard; the pages are UTF-8): it asks for the very address
    ``quote_plus`` spells, from an attribute up to three times shorter in scripts other than
    Latin. The body goes into three "add to calendar" links per page, and spelled out in
    ``%XX`` they were half of such a page. A character a URL may not hold as it is (a C1
    control, a noncharacter) is escaped as ``quote_plus`` does.
    """
    data = text.encode("utf-8")
    encoded = _encoded(data, _LINK_MARKS, _LINK_KEPT)
    if not _may_not_be_in_url(data):
        return encoded
    return _NOT_IN_URL.sub(_quoted_match, encoded)


def _quoted_match(found: re.Match[str]) -> str:
    return quote_plus(found.group())


def _joined(query: list[tuple[str, str]], separator: str) -> str:
    """A query string of names (safe as they are) and values already form-encoded."""
    return separator.join(name + "=" + value for name, value in query)


def webcal(url: str) -> str:
    """The ``webcal://`` form of an http(s) URL: calendar apps subscribe when it is opened."""
    parts = urlsplit(url)
    return "webcal://" + url[len(parts.scheme) + 3 :]


def _utc_stamp(value: datetime) -> str:
    """``%Y%m%dT%H%M%SZ`` of the UTC time, cut from its ISO form (years have four digits)."""
    iso = value.astimezone(UTC).isoformat()
    return iso[0:4] + iso[5:7] + iso[8:13] + iso[14:16] + iso[17:19] + "Z"


def _quote_iso(iso: str) -> str:
    """:func:`quote_plus` of an ISO date or date-time (digits and ``-T:+.``)."""
    return iso.replace(":", "%3A").replace("+", "%2B")


def _link_location(event: Event) -> str:
    place = place_text(event)
    if place:
        return place
    online = event.record.online
    return online.url if online and online.url else where_text(event)


def _link_details(event: Event, url: str, limit: int = 900) -> str:
    """Plain text for the description field of an "add to calendar" link: short, then the URL."""
    text = to_text(event.body, event.settings.site_url).strip()
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    online = event.record.online
    lines = [text] if text else []
    if online and online.url:
        lines.append(f"Join online: {online.url}")
    lines.append(f"Details: {url}")
    return "\n\n".join(lines)


@dataclass(frozen=True)
class _LinkFields:
    """The form-encoded fields every "add to calendar" link of one event repeats
    (:func:`link_plus`)."""

    title: str
    details: str
    location: str

    @classmethod
    def of(cls, event: Event, url: str) -> _LinkFields:
        return cls(
            link_plus(event.record.title),
            link_plus(_link_details(event, url)),
            link_plus(_link_location(event)),
        )


def google_calendar_url(
    event: Event, url: str, fields: _LinkFields | None = None, *, separator: str = "&"
) -> str:
    """Google Calendar's event template: UTC times (or dates, end exclusive) and the zone."""
    if event.all_day:
        start, end = event.local_start, event.local_end
        assert not isinstance(start, datetime)
        assert not isinstance(end, datetime)
        # ``%Y%m%d/%Y%m%d`` form-encoded: the slash as ``%2F``
        dates = start.isoformat().replace("-", "") + "%2F" + end.isoformat().replace("-", "")
    else:
        dates = _utc_stamp(event.aware(event.local_start)) + "%2F"
        dates += _utc_stamp(event.aware(event.local_end))
    f = fields or _LinkFields.of(event, url)
    query = [
        ("action", "TEMPLATE"),
        ("text", f.title),
        ("dates", dates),
        ("details", f.details),
        ("location", f.location),
        ("ctz", quote_plus(event.tzid)),
    ]
    return "https://calendar.google.com/calendar/render?" + _joined(query, separator)


_COMPOSE = quote_plus("/calendar/action/compose")


def _outlook_query(event: Event, fields: _LinkFields, separator: str = "&") -> str:
    query = [("path", _COMPOSE), ("rru", "addevent")]
    query.append(("subject", fields.title))
    if event.all_day:
        query.append(("startdt", _quote_iso(event.local_start.isoformat())))
        query.append(("enddt", _quote_iso(event.local_end.isoformat())))
        query.append(("allday", "true"))
    else:
        query.append(("startdt", _quote_iso(event.aware(event.local_start).isoformat())))
        query.append(("enddt", _quote_iso(event.aware(event.local_end).isoformat())))
    query.append(("body", fields.details))
    query.append(("location", fields.location))
    return _joined(query, separator)


def _outlook_url(host: str, query: str) -> str:
    return f"https://{host}/calendar/0/deeplink/compose?" + query


def outlook_url(event: Event, url: str, host: str = "outlook.office.com") -> str:
    """Outlook on the web's compose deeplink: times with their UTC offset, or dates (all day)."""
    return _outlook_url(host, _outlook_query(event, _LinkFields.of(event, url)))


#: What comes before the query of each Outlook link.
_OUTLOOK_OFFICE = _outlook_url("outlook.office.com", "")
_OUTLOOK_LIVE = _outlook_url("outlook.live.com", "")


def add_links(event: Event, url: str) -> tuple[str, str, str]:
    """Google Calendar, Outlook (Microsoft 365) and Outlook.com links as HTML attribute values
    (escaped already), as the event pages put them in.

    The body and place are encoded once for all three (:func:`link_plus`), and both Outlooks
    take one query. The only character of these URLs that HTML escapes is the ``&`` between
    fields (encoded values hold only ``A-Za-z0-9_.~+%-`` and characters beyond ASCII), so
    the fields are joined with ``&amp;`` directly: the same text as escaping the URLs,
    without scanning kilobytes of them again.
    """
    fields = _LinkFields.of(event, url)
    outlook = _outlook_query(event, fields, "&amp;")
    return (
        google_calendar_url(event, url, fields, separator="&amp;"),
        _OUTLOOK_OFFICE + outlook,
        _OUTLOOK_LIVE + outlook,
    )


# --- structured data -----------------------------------------------------------------------


def _iso(event: Event, value: date | datetime, *, end: bool = False) -> str:
    if isinstance(value, datetime):
        return event.aware(value).isoformat()
    return (value - timedelta(days=1) if end else value).isoformat()


def _org_ld(org: Org) -> dict[str, Any]:
    data: dict[str, Any] = {"@type": "Organization", "name": org.name}
    if org.url:
        data["url"] = org.url
    return data


def json_ld(
    event: Event, url: str, start: str | None = None, end: str | None = None
) -> dict[str, Any]:
    """schema.org ``Event`` for one record: what search engines read from the page.

    ``start`` and ``end``, when given, are the event's own (:func:`_iso`), as the page
    already has them."""
    rec = event.record
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Event",
        "@id": url,
        "url": url,
        "name": rec.title,
        "startDate": _iso(event, event.local_start) if start is None else start,
        "endDate": _iso(event, event.local_end, end=True) if end is None else end,
        "eventStatus": _SCHEMA_STATUS[rec.status],
        "eventAttendanceMode": _SCHEMA_MODE[event.mode],
        "inLanguage": event.language,
    }
    description = to_text(event.body, event.settings.site_url).strip()
    if description:
        data["description"] = description
    locations: list[dict[str, Any]] = []
    loc = rec.location
    if loc is not None and event.mode is not Mode.ONLINE:
        place: dict[str, Any] = {"@type": "Place", "name": loc.venue or place_text(event)}
        address = {
            "@type": "PostalAddress",
            "streetAddress": loc.address,
            "addressLocality": loc.city,
            "addressCountry": loc.country,
        }
        place["address"] = {k: v for k, v in address.items() if v}
        if loc.lat is not None and loc.lon is not None:
            place["geo"] = {"@type": "GeoCoordinates", "latitude": loc.lat, "longitude": loc.lon}
        locations.append(place)
    if event.mode is not Mode.IN_PERSON:
        online = rec.online
        virtual: dict[str, Any] = {"@type": "VirtualLocation"}
        virtual["url"] = online.url if online and online.url else url
        if online and online.platform:
            virtual["name"] = online.platform
        locations.append(virtual)
    data["location"] = locations[0] if len(locations) == 1 else locations
    if event.organizers:
        data["organizer"] = [_org_ld(o) for o in event.organizers]
    if event.partners:
        data["sponsor"] = [_org_ld(o) for o in event.partners]
    if rec.speakers:
        data["performer"] = [{"@type": "Person", "name": s.name} for s in rec.speakers]
    if rec.participants is not None:
        data["maximumAttendeeCapacity"] = rec.participants
    if rec.tags:
        data["keywords"] = ", ".join(rec.tags)
    return data


class _NotPlainJson(Exception):
    """A value :func:`json_text` leaves to :func:`json.dumps`."""


def _float_json(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _json_parts(value: Any, level: int, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_json(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = "\n" + " " * (level + 1)
        separator = "{" + inner
        for key, item in sorted(value.items()):
            if not isinstance(key, str):
                raise _NotPlainJson
            if type(item) is str:  # most values: written here, not by a call
                out += (separator, encode_basestring(key), ": ", encode_basestring(item))
            else:
                out += (separator, encode_basestring(key), ": ")
                _json_parts(item, level + 1, out)
            separator = "," + inner
        out.append("\n" + " " * level + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = "\n" + " " * (level + 1)
        separator = "[" + inner
        for item in value:
            if type(item) is str:
                out += (separator, encode_basestring(item))
            else:
                out.append(separator)
                _json_parts(item, level + 1, out)
            separator = "," + inner
        out.append("\n" + " " * level + "]")
    else:
        raise _NotPlainJson


def json_text(data: Any) -> str:
    """``json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)``, the same text.

    With an indent the standard library encodes in Python, one generator step per token; this
    walks dictionaries, lists and scalars directly (strings through the same C encoder) and
    leaves anything else to :func:`json.dumps`.
    """
    out: list[str] = []
    try:
        _json_parts(data, 0, out)
    except _NotPlainJson:
        return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)
    return "".join(out)


def script_json(data: Any) -> Markup:
    """JSON for a ``<script>`` element: ``<``, ``>`` and ``&`` escaped, so nothing in the data
    can close the element or open a comment (the JSON parses back to the same value)."""
    text = json_text(data)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # escaped just above


# --- rendering -----------------------------------------------------------------------------


class Once(Extension):
    """``{% once key %}...{% endonce %}``: the enclosed markup is rendered for the first page
    that reaches it and reused by the next ones, from the ``fragments`` dictionary the page is
    given (one per folder of out/ and build, see :class:`Shell`).

    Only for markup that is the same for every page sharing that dictionary whenever the key
    is the same: the site's header and footer, which depend on the settings and the folder,
    and the feed links of the head, keyed by the feeds themselves.
    """

    tags = {"once"}  # noqa: RUF012 -- Jinja declares it a plain set attribute

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        key = parser.parse_expression()
        body = parser.parse_statements(("name:endonce",), drop_needle=True)
        fragments = nodes.Name("fragments", "load")
        call = self.call_method("_once", [fragments, key])
        made = nodes.CallBlock(call, [], [], body).set_lineno(lineno)
        # Once made, the markup is taken from the dictionary by the template itself: a call
        # from a template (and the macro of the enclosed markup it is given) costs several
        # times more, on every page. The markup kept is the macro's, safe as it is.
        kept = nodes.Output([nodes.Getitem(fragments, key, "load")]).set_lineno(lineno)
        known = nodes.Compare(key, [nodes.Operand("in", fragments)]).set_lineno(lineno)
        return nodes.If(known, [kept], [], [made]).set_lineno(lineno)

    @staticmethod
    def _once(fragments: dict[object, str], key: object, caller: Callable[[], str]) -> str:
        found = fragments.get(key)
        if found is None:
            found = fragments[key] = caller()
        return found


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("eventfeed", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=[Once],
        auto_reload=False,  # the templates ship with the package; no stat() per page
    )
    env.filters["label"] = slug_label
    return env


def _static(name: str) -> bytes:
    return resources.files("eventfeed").joinpath("static", name).read_bytes()


def _stylesheet() -> bytes:
    return _static("style.css")


@dataclass(frozen=True)
class Calendar:
    title: str
    path: str
    https: str
    webcal: str


@dataclass(frozen=True)
class Feed:
    title: str
    label: str
    path: str
    media_type: str


def _calendar(settings: Settings, title: str, path: str) -> Calendar:
    url = settings.site_url + path
    return Calendar(title, path, url, webcal(url))


def _feeds(settings: Settings, collection: str | None) -> tuple[Feed, ...]:
    title = settings.title
    if collection is not None:
        title = f"{title}: {settings.collections[collection].title}"
    return tuple(
        Feed(title, label, path, content_type(path))
        for kind, label in (("atom", "Atom feed"), ("rss", "RSS feed"), ("json", "JSON Feed"))
        for path in [paths.feed(kind, collection)]
    )


def _facet_calendars(context: BuildContext) -> list[tuple[str, list[Calendar]]]:
    """Kind, region and language calendars, for every value any record uses."""
    s = context.settings
    kinds: set[str] = set()
    regions: set[str] = set()
    languages: set[str] = set()
    for event in context.events:  # one pass for the three facets
        rec = event.brief
        kinds.add(rec.kind)
        regions.add(rec.region or "")
        languages.add(event.language)
    facets = (
        ("By kind", "kind", s.calendars.by_kind, kinds),
        ("By region", "region", s.calendars.by_region, regions),
        ("By language", "language", s.calendars.by_language, languages),
    )
    groups: list[tuple[str, list[Calendar]]] = []
    for heading, facet, enabled, used in facets:
        if not enabled:
            continue
        values = sorted({str(v).lower() for v in used if v})
        calendars = [
            _calendar(
                s,
                value if facet == "language" else value.replace("-", " ").capitalize(),
                paths.facet_calendar(facet, value),
            )
            for value in values
        ]
        if calendars:
            groups.append((heading, calendars))
    return groups


def summary(event: Event, limit: int = 280) -> str:
    """The first paragraph of the body as plain text, shortened at a word."""
    text = to_text(event.body, event.settings.site_url).strip().split("\n\n")[0]
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


@dataclass(frozen=True)
class Facts:
    """What the pages say of one event, worked out once per build, as text to escape."""

    summary: str
    status: str
    mode: str
    where: str
    kind: str
    organisers: str
    #: the event's own page, a path in out/
    page: str
    has_body: bool


def facts_of(event: Event) -> Facts:
    return Facts(
        summary=summary(event),
        status=status_label(event),
        mode=_MODE_LABELS[event.mode],
        where=where_text(event),
        kind=slug_label(event.record.kind),
        organisers=", ".join(o.short or o.name for o in event.organizers),
        page=paths.event_page(event.id),
        has_body=bool(event.body.strip()),
    )


@dataclass(frozen=True)
class Card:
    """An event in a listing: its facts, and the occurrence it is shown at."""

    item: Listed
    facts: Facts
    when: str
    start: str
    end: str

    @property
    def event(self) -> Event:
        return self.item.event


_first = operator.itemgetter(0)

#: The heading level of an event in a listing (the listings' own headings are ``h2``).
ITEM_LEVEL = 4


@dataclass(frozen=True)
class ListingItem:
    """An event's markup in the listings (:func:`listing_item`), cut where the link to its page
    goes: the same for the index and every collection page, but for that link, which is
    relative to the listing's folder. The pieces are UTF-8, as the pages are written: a listing puts
    them in its page without making a string of each item, of each group or of the page."""

    pieces: tuple[bytes, ...]
    #: where the event goes in every listing (:meth:`Renderer.placed`), which depends on
    #: how it is listed, as the markup does: a build that takes this note from the last
    #: build places the event without working out how it is listed again
    placed: Placed

    def html(self, href: str) -> str:
        """The markup with ``href`` (an escaped link) put back in."""
        return href.encode("utf-8").join(self.pieces).decode("utf-8")

    def __reduce__(self) -> tuple[Callable[..., ListingItem], tuple[object, ...]]:
        # Kept for every event in the per-event store and read back at every build that
        # takes it: the start spelled as microseconds (UTC), not as a datetime and its zone,
        # which the unpickler looks up by name for each item (with 100,000 events, 6 of the
        # 15 us each entry took to read back).
        upcoming, (start, event_id), month = self.placed
        return _listing_item, (self.pieces, upcoming, microseconds(start), event_id, month)


def _listing_item(
    pieces: tuple[bytes, ...], upcoming: bool, micros: int, event_id: str, month: int
) -> ListingItem:
    return ListingItem(pieces, (upcoming, (moment_of(micros), event_id), month))


def listing_item(card: Card) -> ListingItem:
    """The markup of ``card`` in the listings (:func:`~.eventpage.item_parts`), as UTF-8,
    and where it goes in them."""
    parts = item_parts(card, ITEM_LEVEL, past=not card.item.upcoming)
    return ListingItem(tuple(part.encode("utf-8") for part in parts), placed_of(card.item))


#: A group of a listing: its label (a month or a year) and its markup, as UTF-8 parts.
Group = tuple[str, list[bytes]]
#: Where an event goes in the listings: upcoming or not, its sort key, and the month of its
#: shown start (in the event's own zone), as ``year * 100 + month``.
Placed = tuple[bool, tuple[datetime, str], int]
#: An event in one listing: its sort key, month (as in :data:`Placed`), item, the link to its
#: page from the listing's folder, and the bytes it takes in the listing (with a line after).
Entry = tuple[tuple[datetime, str], int, "ListingItem", bytes, int]


def placed_of(item: Listed) -> Placed:
    """Where an event listed as ``item`` goes: its month is that of its shown start."""
    start = item.shown.event.local_start
    return item.upcoming, item.sort_key, start.year * 100 + start.month


def _grouped(
    items: Iterable[Entry], label_of: Callable[[int], str], up: bytes = b""
) -> list[Group]:
    """Items (in order) under the label of their month (``label_of``: its month's or its
    year's), one line apart. A label comes where its first item does. ``up``: what each link
    to an event's page needs before it on a page in a folder below the listing's."""
    groups: dict[str, list[bytes]] = {}
    for _, month, item, href, _ in items:
        if up:
            href = up + href
        label = label_of(month)
        parts = groups.get(label)
        if parts is None:
            parts = groups[label] = []
        else:
            parts.append(b"\n")
        pieces = item.pieces
        if len(pieces) == 2:  # one link, as most items have
            parts += (pieces[0], href, pieces[1])
        else:
            parts.append(pieces[0])
            for piece in pieces[1:]:
                parts += (href, piece)
    return list(groups.items())


def _mark(place: int) -> Markup:
    """What a template is given in place of markup that :func:`_spliced_parts` puts in."""
    return Markup(f"\0{place}\0")


def _spliced_parts(text: str, pieces: Sequence[Sequence[bytes]]) -> list[bytes] | None:
    """A page rendered with a mark for each of ``pieces`` (:func:`_mark`), as the UTF-8 of
    its text between the marks and, in place of mark ``i``, the bytes of ``pieces[i]``; None
    when the marks are not each there once (something else shown holds their character).

    Markup of many kilobytes put in this way is not copied into the page's text, nor encoded
    again with it: the same bytes as rendering it in place."""
    # Encoded whole and cut as bytes: one pass over the text; the marks are ASCII, and UTF-8
    # never has their bytes inside another character.
    cut = text.encode("utf-8").split(b"\0")
    places = cut[1::2]
    if len(cut) != 2 * len(pieces) + 1 or sorted(places) != _places(len(pieces)):
        return None
    out: list[bytes] = []
    for between, place in zip(cut[::2], [*places, None], strict=True):
        out.append(between)
        if place is not None:
            out += pieces[int(place)]
    return out


@cache
def _places(count: int) -> list[bytes]:
    """The places of ``count`` marks as written in a page, sorted as :func:`_spliced_parts`
    sorts the places it finds."""
    return sorted(str(i).encode("ascii") for i in range(count))


def listing_page_parts(
    template: Template,
    values: dict[str, Any],
    upcoming: list[Group],
    past: list[Group],
    *,
    splice: bool = True,
) -> list[bytes]:
    """A page with listings (``m.listing`` of ``upcoming`` and ``past`` in the template), as
    the parts it is the join of.

    Each group's markup is put in as the UTF-8 parts it is made of (:func:`_spliced_parts`),
    never joined here, where rendering the markup itself copied megabytes of it several times
    (into a string, into markup, into the page, into bytes). It is rendered in place when
    some setting shown on the page holds the marks' character (or without ``splice``).
    """
    groups = upcoming + past
    if splice:
        marks = [_mark(i) for i in range(len(groups))]
        values["upcoming"] = [(g[0], m) for g, m in zip(upcoming, marks, strict=False)]
        values["past"] = [(g[0], m) for g, m in zip(past, marks[len(upcoming) :], strict=True)]
        out = _spliced_parts(template.render(values), [g[1] for g in groups])
        if out is not None:
            return out

    def markup(group: Group) -> tuple[str, Markup]:
        return group[0], Markup(b"".join(group[1]).decode("utf-8"))  # our own items

    values["upcoming"] = [markup(g) for g in upcoming]
    values["past"] = [markup(g) for g in past]
    return [template.render(values).encode("utf-8")]


# --- listings too large for one page --------------------------------------------------------

#: The two kinds of pages a listing's surplus goes to: past events, and coming ones.
PAST, LATER = "past", "later"


@dataclass(frozen=True)
class Dated:
    """A page of events that their listing has no room for (:func:`split_listing`): the past
    ones of a year, or the coming ones of a year that they start in; of a month of it when the
    year is too large; of a part of that month when the month is."""

    kind: str
    year: int
    month: int | None
    part: int | None
    #: in the listing's order: past ones latest first, coming ones soonest first
    entries: list[Entry]

    @property
    def label(self) -> str:
        text = str(self.year) if self.month is None else _month(self.year * 100 + self.month)
        return text if self.part is None else f"{text}, part {self.part}"

    def path(self, collection: str | None) -> str:
        return paths.dated_page(self.kind, self.year, self.month, self.part, collection)


@dataclass(frozen=True)
class Split:
    """A listing shared out among its own page and dated pages (:func:`split_listing`)."""

    upcoming: list[Entry]
    past: list[Entry]
    #: the pages of coming events (soonest first), then those of past ones (latest first)
    dated: list[Dated]


def _runs(entries: Iterable[Entry], per: int) -> list[tuple[int, list[Entry]]]:
    """``entries`` gathered by year (``per`` 100) or month (``per`` 1), each where it first
    comes (the entries of each stay in order). A listing's order is by moment, its months
    are in each event's own zone: an event may come just before one of the month before."""
    found: dict[int, list[Entry]] = {}
    for entry in entries:
        value = entry[1] // per
        same = found.get(value)
        if same is None:
            found[value] = [entry]
        else:
            same.append(entry)
    return list(found.items())


@cache
def _up(collection: str | None) -> bytes:
    """What a link from a listing's page needs before it on the listing's dated pages, which
    are in a folder below it: one for the index's (``past/2021.html``), two for a
    collection's (``collections/<name>/past/2021.html`` from ``collections/<name>.html``)."""
    listing = paths.INDEX if collection is None else paths.collection_page(collection)
    dated = paths.dated_page(PAST, 2000, collection=collection)
    depth = dated.count("/") - listing.count("/")
    return b"../" * depth


_YEAR, _MONTH = 100, 1


def split_listing(upcoming: list[Entry], past: list[Entry], limit: int, surplus: int) -> Split:
    """Share out a listing so that no page lists more than ``limit`` bytes of items.

    When the items of the whole listing are larger, the past events of the years longest ago
    move to pages of their year until the rest fits; when the coming ones alone are too large,
    every past event moves, and the listing keeps the months of coming events, soonest first,
    that fit (perhaps none): the others move to pages of the year they start in. A year too
    large for a page of its own is shared out by month, and a month too large by parts of
    consecutive events that fit (one at least, however large). Every event is on exactly one
    page. ``surplus``: how much longer each link to an event's page is from a dated page than
    from the listing's own (they are in a folder below it)."""
    total = _size(upcoming) + _size(past)
    if total <= limit:
        return Split(upcoming, past, [])
    years = _runs(past, _YEAR)
    kept = len(years)
    while kept and total > limit:
        kept -= 1
        total -= _size(years[kept][1])
    months = _runs(upcoming, _MONTH)
    coming = len(months)
    if total > limit:  # no past event is left: the earliest months that fit
        total, coming = 0, 0
        for _, share in months:
            grown = total + _size(share)
            if grown > limit:
                break
            total, coming = grown, coming + 1

    later = _runs((e for _, share in months[coming:] for e in share), _YEAR)
    dated = [d for year, share in later for d in _dated(LATER, year, share, limit, surplus)]
    for year, share in years[kept:]:
        dated += _dated(PAST, year, share, limit, surplus)
    if coming < len(months):
        stay = {month for month, _ in months[:coming]}
        upcoming = [e for e in upcoming if e[1] in stay]
    stay = {year for year, _ in years[:kept]}
    return Split(upcoming, [e for e in past if e[1] // 100 in stay], dated)


def _size(entries: Iterable[Entry]) -> int:
    return sum([e[4] for e in entries])


def _dated(kind: str, year: int, entries: list[Entry], limit: int, surplus: int) -> list[Dated]:
    """The pages of ``entries`` of one year (:func:`split_listing`); ``surplus``: what each
    link to an event's page adds to an entry's size on them."""
    size = {e[0][1]: e[4] + surplus * (len(e[2].pieces) - 1) for e in entries}
    if sum(size.values()) <= limit:
        return [Dated(kind, year, None, None, entries)]
    pages: list[Dated] = []
    for month, share in _runs(entries, _MONTH):
        sizes = [size[e[0][1]] for e in share]
        if sum(sizes) <= limit:
            pages.append(Dated(kind, year, month % 100, None, share))
            continue
        part, start = 1, 0
        while start < len(share):
            end, filled = start + 1, sizes[start]
            while end < len(share) and filled + sizes[end] <= limit:
                filled += sizes[end]
                end += 1
            pages.append(Dated(kind, year, month % 100, part, share[start:end]))
            part, start = part + 1, end
    return pages


#: A link to a dated page: its label, the link from the page it is on, its path in out/.
DatedLink = tuple[str, str, str]


#: Labels of the months of the listings, by month (as in :data:`Placed`), and of the years.
_MONTHS: dict[int, str] = {}
_YEARS: dict[int, str] = {}


def _month(month: int) -> str:
    found = _MONTHS.get(month)
    if found is None:
        found = _MONTHS[month] = f"{date(month // 100, month % 100, 1):%B %Y}"
    return found


def _year(month: int) -> str:
    year = month // 100
    found = _YEARS.get(year)
    if found is None:
        found = _YEARS[year] = str(year)
    return found


@dataclass(frozen=True)
class Shell:
    """What every page in one folder of out/ shares: derived from the settings alone."""

    settings: Settings
    folder: str
    link: Mapping[str, str]
    site_feeds: tuple[Feed, ...]
    #: markup rendered once for all these pages (``{% once %}`` in the templates)
    fragments: dict[object, str] = field(default_factory=dict)

    def values(self, page: str, feeds: tuple[Feed, ...]) -> dict[str, Any]:
        s = self.settings
        return {
            "settings": s,
            "link": self.link,
            "canonical": s.site_url + ("" if page == paths.INDEX else page),
            "feeds": feeds,
            "site_feeds": self.site_feeds,
            "inline_style": None,
            "icon": ICON,
            "fragments": self.fragments,
        }


def shell(settings: Settings, folder: str) -> Shell:
    return Shell(settings, folder, Links(folder), _feeds(settings, None))


#: The values of an event page's frame (``event.html``) that differ from page to page.
_FRAME_VALUES = ("title", "description", "canonical", "json_ld", "main")
_MAIN = _FRAME_VALUES.index("main")


def _frame(template: Template, values: dict[str, Any]) -> tuple[str | int, ...] | None:
    """The frame of the event pages that share ``values`` (their folder's), rendered once: the
    text between the places of the values named in :data:`_FRAME_VALUES`, and at each place
    the value's index there. None when the frame shows the marks' character itself (a setting
    holds it): each page is then rendered whole.

    The frame shows these values as they are and tests only ``canonical``, which every event
    page has, so one rendering with marks in their places holds every page's text but for
    them."""
    blank = template.render(dict(values, **dict.fromkeys(_FRAME_VALUES, "")))
    if "\0" in blank:
        return None
    marked = dict(values, **{name: _mark(i) for i, name in enumerate(_FRAME_VALUES)})
    cut = template.render(marked).split("\0")
    return tuple(piece if i % 2 == 0 else int(piece) for i, piece in enumerate(cut))


@dataclass(frozen=True)
class EventPages:
    """Renders event pages: each a function of the event, how it is listed and the settings.

    Nothing here depends on other events or on the build's day except through the
    :class:`Listed` passed in, so a page could be kept between builds while its event, its
    listed state and the settings stay the same.

    A page is its own part (:func:`~.eventpage.event_main`) in the site's frame, which is the
    same for every event page but for a few values (:func:`_frame`).
    """

    shell: Shell
    template: Template
    #: the collections in name order, with their titles and pages
    collections: tuple[tuple[str, Collection], ...]
    frame: tuple[str | int, ...] | None

    def render(self, event: Event, card: Card, series: list[Occurrence]) -> bytes:
        """The page of ``event``, listed as ``card`` says (whose times are the event's own
        unless it is shown at another occurrence of its series)."""
        s = self.shell.settings
        item, facts = card.item, card.facts
        if item.shown.event is event:
            when, start, end = card.when, card.start, card.end
        else:
            when = when_text(event)
            start = _iso(event, event.local_start)
            end = _iso(event, event.local_end, end=True)
        page = facts.page
        url = s.site_url + page
        link = self.shell.link
        main = event_main(
            EventView(
                event,
                item,
                facts,
                url,
                when,
                start,
                end,
                body=to_html(event.body, s.site_url),  # sanitised by to_html
                series=series if item.series else (),
                collections=[
                    (link[paths.collection_page(name)], spec.title)
                    for name, spec in self.collections
                    if in_collection(event, s, name)
                ],
                ics=link[paths.event_ics(event.id)],
                index=link[paths.INDEX],
                add=add_links(item.shown.event, url),
            )
        )
        title = event.record.title
        description = facts.summary or title
        ld = script_json(json_ld(event, url, start, end))
        if self.frame is None:
            values = self.shell.values(page, self.shell.site_feeds)
            values.update(
                title=title, description=description, json_ld=ld, main=Markup("".join(main))
            )
            return self.template.render(values).encode("utf-8")
        # in the order of _FRAME_VALUES, escaped as the template escapes them; each piece is
        # encoded on its own: joined as text, the whole page would be as wide as its widest
        # character (a body in Cyrillic), copied twice and encoded as a whole
        shown = (h(title), h(description), h(url), ld)
        text: list[str] = []
        for piece in self.frame:
            if isinstance(piece, str):
                text.append(piece)
            elif piece == _MAIN:
                text += main
            else:
                text.append(shown[piece])
        return b"".join([piece.encode("utf-8") for piece in text])


def event_pages(settings: Settings) -> EventPages:
    env = _environment()
    names = sorted(settings.collections)
    shell_ = shell(settings, posixpath.dirname(paths.event_page("x")))
    template = env.get_template("event.html")
    return EventPages(
        shell_,
        template,
        tuple((name, settings.collections[name]) for name in names),
        _frame(template, shell_.values(paths.event_page("x"), shell_.site_feeds)),
    )


class Renderer:
    """Renders the pages of one build; what several pages show of an event is worked out once.

    Every page knows its own folder for relative links.
    """

    def __init__(self, context: BuildContext) -> None:
        self.context = context
        self.settings = context.settings
        self.env = _environment()
        self.zone = ZoneInfo(self.settings.timezone)
        self._occurrences: dict[str, list[Occurrence]] = {}
        self._listed: dict[str, Listed] = {}
        self._placed: dict[str, Placed] = {}
        self._facts: dict[str, Facts] = {}
        self._cards: dict[str, Card] = {}
        self._items: dict[str, ListingItem] = {}
        self._event_pages: EventPages | None = None
        self._shells: dict[str, Shell] = {}
        self._splits: dict[str | None, Split] = {}
        self._links: dict[tuple[str | None, str, str], list[DatedLink]] = {}

    def shell(self, folder: str) -> Shell:
        found = self._shells.get(folder)
        if found is None:
            found = self._shells[folder] = shell(self.settings, folder)
        return found

    # --- per-build memory, by event id (ids are unique in a build) ----------------------

    def occurrences(self, event: Event) -> list[Occurrence]:
        found = self._occurrences.get(event.id)
        if found is None:
            found = self._occurrences[event.id] = occurrences_of(event)
        return found

    def listed(self, event: Event) -> Listed:
        found = self._listed.get(event.id)
        if found is None:
            found = self._listed[event.id] = _listed(event, self.zone, self.context.as_of)
        return found

    def facts(self, event: Event) -> Facts:
        found = self._facts.get(event.id)
        if found is None:
            found = self._facts[event.id] = facts_of(event)
        return found

    def card(self, event: Event) -> Card:
        found = self._cards.get(event.id)
        if found is None:
            item = self.listed(event)
            shown = item.shown.event
            found = Card(
                item,
                self.facts(event),
                when_text(shown),
                _iso(shown, shown.local_start),
                _iso(shown, shown.local_end, end=True),
            )
            self._cards[event.id] = found
        return found

    def forget(self, event: Event) -> None:
        """Let go of what the event's page was made of (how it is listed is kept, for the
        listings): a worker that makes tens of thousands of pages would otherwise hold a few
        kilobytes of each until the end."""
        for memo in (self._occurrences, self._facts, self._cards, self._items):
            memo.pop(event.id, None)

    def seed_item(self, event: Event, item: ListingItem) -> None:
        """What the per-event step rendered (in another process, or an earlier build), and
        where it goes in the listings."""
        self._items[event.id] = item
        self._placed[event.id] = item.placed

    def item(self, event: Event) -> ListingItem:
        found = self._items.get(event.id)
        if found is None:
            found = listing_item(self.card(event))
            self._items[event.id] = found
        return found

    def placed(self, event: Event) -> Placed:
        """Where ``event`` goes in every listing: upcoming or not, its sort key and the label
        of its group (the month of its shown start when upcoming, else the year)."""
        found = self._placed.get(event.id)
        if found is None:
            found = self._placed[event.id] = placed_of(self.listed(event))
        return found

    def hrefs(self, folder: str) -> Callable[[str], bytes]:
        """The link to each event's page from ``folder``, escaped and UTF-8, by event id: the
        link to the pages' folder (:func:`relative`), worked out once, and the page's name."""
        prefixes: dict[str, str] = {}

        def href(event_id: str) -> bytes:
            page = paths.event_page(event_id)
            where, _, name = page.rpartition("/")
            prefix = prefixes.get(where)
            if prefix is None:
                up = relative(where, folder + "/" if folder else "") if where else "."
                prefix = prefixes[where] = "" if up == "." else str(escape(up)) + "/"
            return (prefix + str(escape(name))).encode("utf-8")

        return href

    def entries(self, events: Iterable[Event], folder: str) -> tuple[list[Entry], list[Entry]]:
        """Upcoming events soonest first, then past ones latest first, each with the link to
        its page from ``folder``."""
        href = self.hrefs(folder)
        upcoming: list[Entry] = []
        past: list[Entry] = []
        for event in events:
            coming, key, month = self.placed(event)
            item, link = self.item(event), href(event.id)
            pieces = item.pieces
            size = sum(map(len, pieces)) + len(link) * (len(pieces) - 1) + 1
            (upcoming if coming else past).append((key, month, item, link, size))
        # Sort keys end with the event's id, unique in a build: no two are equal.
        upcoming.sort(key=_first)
        past.sort(key=_first, reverse=True)
        return upcoming, past

    def split(self, collection: str | None) -> Split:
        """The listing of the index (``collection`` None) or of a collection's page, shared
        out among it and its dated pages (:func:`split_listing`); worked out once."""
        found = self._splits.get(collection)
        if found is None:
            if collection is None:
                page, events = paths.INDEX, self.context.events
            else:
                page = paths.collection_page(collection)
                events = tuple(self.context.collection(collection))
            folder = posixpath.dirname(page)
            upcoming, past = self.entries(events, folder)
            limit = self.settings.pages.max_bytes
            surplus = len(_up(collection))
            found = self._splits[collection] = split_listing(upcoming, past, limit, surplus)
        return found

    def _dated_links(self, collection: str | None, folder: str, kind: str) -> list[DatedLink]:
        """The links from ``folder`` to the dated pages of one kind of a listing: the same
        for all its dated pages, worked out once."""
        key = (collection, folder, kind)
        found = self._links.get(key)
        if found is None:
            link = self.shell(folder).link
            found = self._links[key] = [
                (d.label, link[path], path)
                for d in self.split(collection).dated
                if d.kind == kind and (path := d.path(collection))
            ]
        return found

    def _dated_nav(self, collection: str | None, folder: str) -> dict[str, list[DatedLink]]:
        """The template values of the links from ``folder`` to a listing's dated pages."""
        return {
            "later": self._dated_links(collection, folder, LATER),
            "earlier": self._dated_links(collection, folder, PAST),
        }

    def _listing_values(
        self, collection: str | None, values: dict[str, Any], folder: str
    ) -> tuple[list[Group], list[Group]]:
        """The groups of a listing's own page, and in ``values`` the links to its dated
        pages."""
        split = self.split(collection)
        values.update(self._dated_nav(collection, folder))
        return _grouped(split.upcoming, _month), _grouped(split.past, _year)

    # --- pages --------------------------------------------------------------------------

    def index(self) -> bytes:
        return b"".join(self.index_parts())

    def collection(self, name: str) -> bytes:
        return b"".join(self.collection_parts(name))

    def index_parts(self) -> list[bytes]:
        s = self.settings
        collections = [
            (
                name,
                s.collections[name],
                _calendar(s, s.collections[name].title, paths.collection_calendar(name)),
            )
            for name in sorted(s.collections)
        ]
        values = self.shell("").values(paths.INDEX, _feeds(s, None))
        values.update(
            title=s.title,
            main_calendar=_calendar(s, f"All events of {s.title}", paths.CALENDAR),
            collections=collections,
            facets=_facet_calendars(self.context),
            jcal=paths.JCAL,
        )
        upcoming, past = self._listing_values(None, values, "")
        template = self.env.get_template("index.html")
        return listing_page_parts(template, values, upcoming, past)

    def collection_parts(self, name: str) -> list[bytes]:
        s = self.settings
        spec = s.collections[name]
        page = paths.collection_page(name)
        folder = posixpath.dirname(page)
        values = self.shell(folder).values(page, _feeds(s, name) + _feeds(s, None))
        values.update(
            title=spec.title,
            spec=spec,
            name=name,
            calendar=_calendar(s, spec.title, paths.collection_calendar(name)),
            collection_feeds=_feeds(s, name),
        )
        upcoming, past = self._listing_values(name, values, folder)
        template = self.env.get_template("collection.html")
        return listing_page_parts(template, values, upcoming, past)

    def dated_parts(self, collection: str | None, page: Dated) -> list[bytes]:
        """A page of the events its listing has no room for (:class:`Dated`), by month, with
        links to the listing and its other dated pages."""
        s = self.settings
        path = page.path(collection)
        folder = posixpath.dirname(path)
        groups = _grouped(page.entries, _month, _up(collection))
        if collection is None:
            home, home_title, feeds = paths.INDEX, s.title, _feeds(s, None)
        else:
            home, home_title = paths.collection_page(collection), s.collections[collection].title
            feeds = _feeds(s, collection) + _feeds(s, None)
        shown = "Past events" if page.kind == PAST else "Upcoming events"
        heading = f"{shown}: {page.label}"
        shell_ = self.shell(folder)
        values = shell_.values(path, feeds)
        values.update(
            self._dated_nav(collection, folder),
            title=heading if collection is None else f"{home_title}: {heading}",
            heading=heading,
            kind=page.kind,
            home=shell_.link[home],
            home_title=home_title,
            current=path,
        )
        template = self.env.get_template("dated.html")
        if page.kind == PAST:
            return listing_page_parts(template, values, [], groups)
        return listing_page_parts(template, values, groups, [])

    def dated_key(self, collection: str | None, page: Dated) -> str:
        """A digest of all that a dated page (:meth:`dated_parts`) shows but the settings and
        eventfeed's own code, which the build's keys hold: its place, the links to its
        listing's other dated pages, and its entries (each one's month, link and markup).
        After an edit, the build takes from the last one every dated page whose key is the
        same (with 100,000 events, about 350 pages and 150 MB made and written at each
        rebuild otherwise), as it does the archive calendars."""
        path = page.path(collection)
        nav = self._dated_nav(collection, posixpath.dirname(path))
        digest = hashlib.sha256(repr((path, page.kind, page.label, nav)).encode())
        update = digest.update
        # An entry's markup is the event's note, made of what the event's cache key digests:
        # the key stands for it where the build has one (with 100,000 events, the pages'
        # 150 MB of markup were digested at every rebuild, 0.4 s, for their keys alone).
        keys = self.context.keys
        for (_, event_id), month, item, href, _ in page.entries:
            key = keys.get(event_id)
            if key is not None:
                update(b"\0%d\0k%s\0%s" % (month, key.encode(), href))
                continue
            update(b"\0%d\0%d\0%s" % (month, len(item.pieces), href))
            for piece in item.pieces:
                update(b"%d\0" % len(piece))
                update(piece)
        return digest.hexdigest()

    def event(self, event: Event) -> bytes:
        if self._event_pages is None:
            self._event_pages = event_pages(self.settings)
        return self._event_pages.render(event, self.card(event), self.occurrences(event))

    def not_found(self) -> bytes:
        s = self.settings
        values = Shell(s, "", AbsoluteLinks(s.site_url), _feeds(s, None)).values(
            paths.NOT_FOUND, _feeds(s, None)
        )
        values["canonical"] = None
        # A host serves this page at any depth: absolute links, and the style inline.
        values["inline_style"] = Markup(_stylesheet().decode("utf-8"))  # our own file
        values["title"] = "Page not found"
        return self.render("404.html", values)

    def render(self, template: str, values: dict[str, Any]) -> bytes:
        return self.env.get_template(template).render(values).encode("utf-8")


def headers_file(context: BuildContext) -> bytes:
    """``_headers`` for Netlify and Cloudflare Pages: media types of calendars and feeds.

    A handful of rules whatever the number of events (Cloudflare allows 100): the folder of
    calendars holds only ``.ics`` files, per-event files match ``/events/*.ics``, and feeds are
    named one by one. Paths are relative to the published folder, not to the base URL.
    """
    rules: list[tuple[str, str]] = [
        ("/" + paths.CALENDAR, content_type(paths.CALENDAR)),
        ("/" + paths.JCAL, content_type(paths.JCAL)),
        ("/calendars/*", content_type(paths.CALENDAR)),
        ("/events/*.ics", content_type(paths.CALENDAR)),
    ]
    for collection in [None, *sorted(context.settings.collections)]:
        for kind in ("atom", "rss", "json"):
            path = paths.feed(kind, collection)
            rules.append(("/" + path, content_type(path)))
    lines = ["# Media types for static hosts that read this file (Netlify, Cloudflare Pages)."]
    for pattern, media_type in rules:
        lines += [pattern, f"  Content-Type: {media_type}", "  X-Content-Type-Options: nosniff"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _renderer(context: BuildContext) -> Renderer:
    return context.shared("pages", Renderer)


def compile_event_page(context: BuildContext, event: Event) -> EventPart:
    """One event's page; the note is its markup in the listings (:class:`ListingItem`), which
    depends on the event, the settings and how it is listed, as the page does (its summary
    needs the body rendered, which is done here, once, with the page)."""
    renderer = _renderer(context)
    made = {paths.event_page(event.id): renderer.event(event)}, renderer.item(event)
    renderer.forget(event)  # the note is what the listings need of it
    return made


def event_key(context: BuildContext, event: Event) -> tuple[str, date | None]:
    """The build's day changes an event page only through how the event is listed; and that
    holds up to the day :attr:`Listed.until` gives."""
    item = _renderer(context).listed(event)
    # The shown occurrence is named by its place in the series: two occurrences may share a
    # start (an override moved onto another's) and differ in all else.
    shown = item.shown
    text = f"{item.upcoming}|{item.series}|{item.place}|{shown.event.sort_key}|{shown.cancelled}"
    return text, item.until


def compile_pages(context: BuildContext) -> Mapping[str, bytes]:
    """Every page but the event pages, which :func:`compile_event_page` made (all pages when
    that step did not run). Each is made when the build takes it (:class:`~.build.Lazy`), the
    pages with listings as the parts they are joined from: with many events the home page
    alone is a hundred megabytes, which is then never held whole in memory."""
    renderer = _renderer(context)
    noted = "pages" in context.notes
    if noted:
        for event in context.events:
            item = context.note("pages", event)
            if isinstance(item, ListingItem):
                renderer.seed_item(event, item)
    out = Lazy()
    out.add_parts(paths.INDEX, renderer.index_parts)
    for collection in (None, *sorted(context.settings.collections)):
        for dated in renderer.split(collection).dated:
            page = partial(renderer.dated_parts, collection, dated)
            key = partial(renderer.dated_key, collection, dated)
            out.add_parts(dated.path(collection), page, key)
    out.add(paths.NOT_FOUND, renderer.not_found)
    out.add(paths.STYLESHEET, _stylesheet)
    out.add(ICON, partial(_static, ICON))
    out.add(NOJEKYLL, bytes)
    out.add(HEADERS, partial(headers_file, context))
    if not noted:
        for event in context.chronological():
            out.add(paths.event_page(event.id), partial(renderer.event, event))
    for name in sorted(context.settings.collections):
        out.add_parts(paths.collection_page(name), partial(renderer.collection_parts, name))
    return out
