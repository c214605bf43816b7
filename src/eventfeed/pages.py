"""The static site: index, event and collection pages, stylesheet and host files.

Pages are rendered with Jinja2 (autoescaping on; only a sanitised record body and the escaped
JSON-LD are marked safe). Links between pages are *relative* (``../style.css`` from
``events/<id>.html``), so the site works from a sub-path (``https://example.org/repo/``), in
``eventfeed serve`` and when opened from disk. Absolute URLs, from ``settings.site_url``, are
used only where a page is read far from the site: subscribe links (``webcal://`` and the https
address to copy), the canonical URL, JSON-LD and "add to calendar" links. ``404.html`` is the
exception: a host serves it at any depth, so its links are absolute and its style is inline.

Feed autodiscovery (``<link rel="alternate">``) uses relative URLs: browsers and feed readers
resolve them against the page's own address, which keeps them right under any base path and in
a local preview.

Upcoming and past events are split by ``context.as_of`` (a day in the site's zone), never by
the clock, so the same records and day give the same bytes.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from . import paths
from .build import BuildContext, in_collection
from .event import Event, Mode, Org
from .markdown import to_html, to_text
from .model import Settings, Status
from .recurrence import naive, occurrences
from .text import place_text, status_label, when_text, where_text

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


def occurrences_of(event: Event) -> list[Occurrence]:
    """A single event, or the occurrences of a series with their overrides applied (bounded)."""
    rec = event.record
    if not (rec.rrule or rec.rdates):
        return [Occurrence(event, rec.status, "", False)]
    length = naive(event.local_end) - naive(event.local_start)
    overrides = {naive(o.occurrence): o for o in rec.overrides}
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
            if event.all_day:  # records give inclusive end dates; Event adds the day back
                end -= timedelta(days=1)
        single = rec.model_copy(
            update={
                "start": start,
                "end": end,
                "duration": None,
                "rrule": None,
                "rdates": (),
                "exdates": (),
                "overrides": (),
                "title": title,
                "status": status,
            }
        )
        result.append(Occurrence(replace(event, record=single), status, note, moved))
    return result


def _last_day_in(event: Event, zone: ZoneInfo) -> date:
    """The last day the event takes place on, seen from ``zone`` (the site's)."""
    if event.all_day:
        return event.last_day
    end = event.aware(event.local_end) - timedelta(microseconds=1)
    return end.astimezone(zone).date()


@dataclass(frozen=True)
class Listed:
    """An event in a listing, placed at the occurrence that matters for it."""

    event: Event
    shown: Occurrence
    upcoming: bool
    series: bool

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return self.shown.event.sort_key


def listed(event: Event, context: BuildContext) -> Listed:
    """Upcoming when some occurrence lasts until ``as_of`` or later; shown at the next one."""
    zone = ZoneInfo(context.settings.timezone)
    all_occurrences = occurrences_of(event)
    series = bool(event.record.rrule or event.record.rdates)
    coming = [
        o
        for o in all_occurrences
        if _last_day_in(o.event, zone) >= context.as_of and not (series and o.cancelled)
    ]
    if coming:
        return Listed(event, min(coming, key=lambda o: o.event.sort_key), True, series)
    return Listed(event, all_occurrences[0], False, series)


# --- links ---------------------------------------------------------------------------------


def relative(target: str, page: str) -> str:
    """``target`` (a path in out/) as seen from ``page`` (another path in out/)."""
    start = posixpath.dirname(page) or "."
    return posixpath.relpath(target, start)


def webcal(url: str) -> str:
    """The ``webcal://`` form of an http(s) URL: calendar apps subscribe when it is opened."""
    parts = urlsplit(url)
    return "webcal://" + url[len(parts.scheme) + 3 :]


def _utc_stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


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


def google_calendar_url(event: Event, url: str) -> str:
    """Google Calendar's event template: UTC times (or dates, end exclusive) and the zone."""
    if event.all_day:
        start, end = event.local_start, event.local_end
        assert not isinstance(start, datetime)
        assert not isinstance(end, datetime)
        dates = f"{start:%Y%m%d}/{end:%Y%m%d}"
    else:
        dates = f"{_utc_stamp(event.aware(event.local_start))}/"
        dates += _utc_stamp(event.aware(event.local_end))
    query = {
        "action": "TEMPLATE",
        "text": event.record.title,
        "dates": dates,
        "details": _link_details(event, url),
        "location": _link_location(event),
        "ctz": event.tzid,
    }
    return "https://calendar.google.com/calendar/render?" + urlencode(query)


def outlook_url(event: Event, url: str, host: str = "outlook.office.com") -> str:
    """Outlook on the web's compose deeplink: times with their UTC offset, or dates (all day)."""
    query: dict[str, str] = {"path": "/calendar/action/compose", "rru": "addevent"}
    query["subject"] = event.record.title
    if event.all_day:
        start, end = event.local_start, event.local_end
        query["startdt"] = start.isoformat()
        query["enddt"] = end.isoformat()
        query["allday"] = "true"
    else:
        query["startdt"] = event.aware(event.local_start).isoformat()
        query["enddt"] = event.aware(event.local_end).isoformat()
    query["body"] = _link_details(event, url)
    query["location"] = _link_location(event)
    return f"https://{host}/calendar/0/deeplink/compose?" + urlencode(query)


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


def json_ld(event: Event, url: str) -> dict[str, Any]:
    """schema.org ``Event`` for one record: what search engines read from the page."""
    rec = event.record
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Event",
        "@id": url,
        "url": url,
        "name": rec.title,
        "startDate": _iso(event, event.local_start),
        "endDate": _iso(event, event.local_end, end=True),
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


def script_json(data: Any) -> Markup:
    """JSON for a ``<script>`` element: ``<``, ``>`` and ``&`` escaped, so nothing in the data
    can close the element or open a comment (the JSON parses back to the same value)."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # escaped just above


# --- rendering -----------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("eventfeed", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["label"] = lambda slug: str(slug).replace("-", " ").capitalize()
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


def _calendar(context: BuildContext, title: str, path: str) -> Calendar:
    url = context.settings.site_url + path
    return Calendar(title, path, url, webcal(url))


def _feeds(settings: Settings, collection: str | None) -> list[Feed]:
    title = settings.title
    if collection is not None:
        title = f"{title}: {settings.collections[collection].title}"
    return [
        Feed(title, label, path, content_type(path))
        for kind, label in (("atom", "Atom feed"), ("rss", "RSS feed"), ("json", "JSON Feed"))
        for path in [paths.feed(kind, collection)]
    ]


def _facet_calendars(context: BuildContext) -> list[tuple[str, list[Calendar]]]:
    """Kind, region and language calendars, for every value any record uses."""
    s = context.settings
    groups: list[tuple[str, list[Calendar]]] = []
    facets = (
        ("By kind", "kind", s.calendars.by_kind, lambda e: e.record.kind),
        ("By region", "region", s.calendars.by_region, lambda e: e.record.region),
        ("By language", "language", s.calendars.by_language, lambda e: e.language),
    )
    for heading, facet, enabled, value_of in facets:
        if not enabled:
            continue
        values = sorted({str(v).lower() for v in map(value_of, context.events) if v})
        calendars = [
            _calendar(
                context,
                value if facet == "language" else value.replace("-", " ").capitalize(),
                paths.facet_calendar(facet, value),
            )
            for value in values
        ]
        if calendars:
            groups.append((heading, calendars))
    return groups


def _by_month(items: Iterable[Listed]) -> list[tuple[str, list[Listed]]]:
    groups: dict[str, list[Listed]] = {}
    for item in items:
        start = item.shown.event.local_start
        groups.setdefault(f"{start:%B %Y}", []).append(item)
    return list(groups.items())


def _by_year(items: Iterable[Listed]) -> list[tuple[str, list[Listed]]]:
    groups: dict[str, list[Listed]] = {}
    for item in items:
        groups.setdefault(str(item.shown.event.local_start.year), []).append(item)
    return list(groups.items())


def _split(events: Iterable[Event], context: BuildContext) -> tuple[list[Listed], list[Listed]]:
    items = [listed(e, context) for e in events]
    upcoming = sorted((i for i in items if i.upcoming), key=lambda i: i.sort_key)
    past = sorted((i for i in items if not i.upcoming), key=lambda i: i.sort_key, reverse=True)
    return upcoming, past


def summary(event: Event, limit: int = 280) -> str:
    """The first paragraph of the body as plain text, shortened at a word."""
    text = to_text(event.body, event.settings.site_url).strip().split("\n\n")[0]
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


class Renderer:
    """Renders pages for one build; every page knows its own path for relative links."""

    def __init__(self, context: BuildContext) -> None:
        self.context = context
        self.settings = context.settings
        self.env = _environment()

    def common(self, page: str, feeds: list[Feed]) -> dict[str, Any]:
        s = self.settings

        def link(target: str) -> str:
            return relative(target, page)

        return {
            "settings": s,
            "page": page,
            "link": link,
            "canonical": s.site_url + ("" if page == paths.INDEX else page),
            "feeds": feeds,
            "site_feeds": _feeds(s, None),
            "mode_label": lambda e: _MODE_LABELS[e.mode],
            "status_label": status_label,
            "where_text": where_text,
            "when_text": when_text,
            "summary": summary,
            "event_page": paths.event_page,
            "iso": _iso,
            "inline_style": None,
            "icon": ICON,
        }

    def render(self, template: str, **values: Any) -> bytes:
        return self.env.get_template(template).render(**values).encode("utf-8")

    def index(self) -> bytes:
        upcoming, past = _split(self.context.events, self.context)
        s = self.settings
        collections = [
            (
                name,
                s.collections[name],
                _calendar(self.context, s.collections[name].title, paths.collection_calendar(name)),
            )
            for name in sorted(s.collections)
        ]
        return self.render(
            "index.html",
            **self.common(paths.INDEX, _feeds(s, None)),
            title=s.title,
            upcoming=_by_month(upcoming),
            past=_by_year(past),
            main_calendar=_calendar(self.context, f"All events of {s.title}", paths.CALENDAR),
            collections=collections,
            facets=_facet_calendars(self.context),
            jcal=paths.JCAL,
        )

    def collection(self, name: str) -> bytes:
        spec = self.settings.collections[name]
        page = paths.collection_page(name)
        upcoming, past = _split(self.context.collection(name), self.context)
        return self.render(
            "collection.html",
            **self.common(page, _feeds(self.settings, name) + _feeds(self.settings, None)),
            title=spec.title,
            spec=spec,
            name=name,
            upcoming=_by_month(upcoming),
            past=_by_year(past),
            calendar=_calendar(self.context, spec.title, paths.collection_calendar(name)),
            collection_feeds=_feeds(self.settings, name),
        )

    def event(self, event: Event) -> bytes:
        page = paths.event_page(event.id)
        url = self.settings.site_url + page
        item = listed(event, self.context)
        target = item.shown.event  # the next occurrence of a series, else the event itself
        series = occurrences_of(event) if item.series else []
        collections = [
            (name, self.settings.collections[name])
            for name in sorted(self.settings.collections)
            if in_collection(event, self.settings, name)
        ]
        return self.render(
            "event.html",
            **self.common(page, _feeds(self.settings, None)),
            title=event.record.title,
            event=event,
            rec=event.record,
            item=item,
            body=Markup(to_html(event.body, self.settings.site_url)),  # sanitised by to_html
            ics=paths.event_ics(event.id),
            google=google_calendar_url(target, url),
            outlook=outlook_url(target, url),
            outlook_live=outlook_url(target, url, host="outlook.live.com"),
            series=series,
            json_ld=script_json(json_ld(event, url)),
            collections=collections,
        )

    def not_found(self) -> bytes:
        values = self.common(paths.NOT_FOUND, _feeds(self.settings, None))
        values["canonical"] = None
        site = self.settings.site_url
        # A host serves this page at any depth: absolute links, and the style inline.
        values["link"] = lambda target: site + ("" if target == paths.INDEX else target)
        values["inline_style"] = Markup(_stylesheet().decode("utf-8"))  # our own file
        return self.render("404.html", **values, title="Page not found")


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


def compile_pages(context: BuildContext) -> Mapping[str, bytes]:
    renderer = Renderer(context)
    out: dict[str, bytes] = {
        paths.INDEX: renderer.index(),
        paths.NOT_FOUND: renderer.not_found(),
        paths.STYLESHEET: _stylesheet(),
        ICON: _static(ICON),
        NOJEKYLL: b"",
        HEADERS: headers_file(context),
    }
    for event in context.chronological():
        out[paths.event_page(event.id)] = renderer.event(event)
    for name in sorted(context.settings.collections):
        out[paths.collection_page(name)] = renderer.collection(name)
    return out
