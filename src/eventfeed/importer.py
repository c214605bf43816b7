"""``eventfeed import``: an existing iCalendar file (RFC 5545) to event records.

The conversion is a pure function (:func:`convert`): calendar bytes and the site settings in,
records and a list of what could not be carried over out. The command around it matches
records by UID, chooses file names and writes.

What is kept and how:

* UID is kept (``uid:`` in the record unless it is the site's own ``<id>@<domain>``), so a
  subscriber who moves from the old calendar to the new one sees no duplicates, and importing
  the same file again updates the same records.
* Times keep their zone. TZIDs are mapped to IANA names: IANA names as they are, "globally
  unique" TZIDs (``/mozilla.org/.../Europe/Berlin``) by their IANA tail, Windows names
  (``W. Europe Standard Time``) through the Unicode CLDR table that icalendar ships. A TZID
  that maps to nothing keeps the instant, converted to the calendar's zone (X-WR-TIMEZONE) or
  the site's. UTC times of single events are shown in that zone too; UTC series stay in UTC so
  they repeat at the same instant.
* HTML descriptions (X-ALT-DESC;FMTTYPE=text/html, or HTML inside DESCRIPTION as Google writes
  it) become Markdown with markdownify.
* Everything else that carries meaning and has no place in a record is listed per event;
  :data:`BOOKKEEPING` names the properties that only describe the old calendar's own
  bookkeeping and are left out without a word.
"""

from __future__ import annotations

import copy
import os
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import click
import icalendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from markdownify import markdownify
from pydantic import ValidationError

from . import recurrence
from .errors import Severity
from .event import Event
from .load import display_path, load
from .model import Record, Settings, is_slug, known_zones
from .new import check_record, duration_text, event_id, record_path, render_record, slugify
from .options import events_option
from .progress import Progress

#: icalendar's components and property values are typed as wide unions; shapes are checked here.
VEvent = Any

#: Properties that describe the old calendar's bookkeeping, not the event: dropped quietly.
BOOKKEEPING = frozenset(
    {
        "UID",
        "DTSTAMP",
        "TRANSP",
        "PRIORITY",
        "X-MICROSOFT-DISALLOW-COUNTER",
        "X-MICROSOFT-DONOTFORWARDMEETING",
        "X-MICROSOFT-ISRESPONSEREQUESTED",
        "X-MICROSOFT-REQUESTEDATTENDANCEMODE",
        "X-MICROSOFT-LOCATIONS",  # a JSON copy of LOCATION
        "X-MOZ-GENERATION",
        "X-MOZ-LASTACK",
    }
)
#: Outlook's scheduling state (busy status, importance, appointment sequence, owner ids).
BOOKKEEPING_PREFIXES = ("X-MICROSOFT-CDO-", "X-MS-OLK-")

_STATUS = {"CONFIRMED": None, "TENTATIVE": "tentative", "CANCELLED": "cancelled"}
_HTML = re.compile(r"<(?:br|p|b|i|a\s|ul|ol|li|div|span|strong|em|u|h[1-6])\b[^>]*>", re.I)
_GOOGLE_BLOCK = re.compile(r"\n*-::~[:~]*::-\n.*?-::~[:~]*::-\n*", re.S)
_TEAMS_BLOCK = re.compile(r"\n*_{20,}\s*\n.*?_{20,}\s*\n*", re.S)
_ONLINE_LOCATIONS = re.compile(
    r"^(?:microsoft teams(?: meeting)?|teams|zoom(?: meeting)?|google meet|webex|online"
    r"(?: meeting)?|skype meeting)$",
    re.I,
)


@dataclass
class Imported:
    """One event converted: the record, its body, and the notes on what was not kept."""

    uid: str
    record: Record
    body: str
    notes: list[str] = field(default_factory=list)
    #: no category named a kind, so the default kind was given
    kind_defaulted: bool = False


@dataclass
class Refused:
    uid: str
    title: str
    reasons: list[str]


@dataclass
class Conversion:
    calendar_name: str | None
    events: list[Imported]
    refused: list[Refused]
    #: notes about the calendar as a whole (components without a place in records)
    notes: list[str]


class ImportError_(Exception):
    """The file is not a calendar at all."""


# --- zones ---------------------------------------------------------------------------------


def iana_zone(tzid: str) -> str | None:
    """The IANA name for a TZID parameter, or None when it names no known zone."""
    name = tzid.strip().strip('"')
    zones = known_zones()
    if name in zones:
        return name
    parts = [p for p in name.split("/") if p]
    for size in (3, 2, 1):  # "globally unique" TZIDs end in the IANA name
        tail = "/".join(parts[-size:])
        if len(parts) >= size and tail in zones:
            return tail
    mapped = WINDOWS_TO_OLSON.get(name)
    if mapped and mapped in zones:
        return mapped
    return None


def _same_offsets(value: datetime, zone: ZoneInfo) -> bool:
    local = value.replace(tzinfo=None)
    return value.utcoffset() == local.replace(tzinfo=zone).utcoffset()


# --- small helpers -------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_ESCAPE = re.compile(r"\\([\\;,nN])")


def unescape_text(value: str) -> str:
    """RFC 5545 section 3.3.11 TEXT escapes, for X- properties icalendar leaves raw."""
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def html_to_markdown(html: str) -> str:
    text: str = markdownify(html, heading_style="ATX", bullets="-", strip=["img"])
    lines = [line.rstrip() for line in text.replace("\r", "").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _plain_description(text: str, notes: list[str]) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _GOOGLE_BLOCK.search(text):
        text = _GOOGLE_BLOCK.sub("\n\n", text)
        notes.append("Google Meet joining instructions left out of the description")
    if _TEAMS_BLOCK.search(text) and "teams" in text.lower():
        text = _TEAMS_BLOCK.sub("\n\n", text)
        notes.append("Microsoft Teams joining instructions left out of the description")
    if _HTML.search(text):
        return html_to_markdown(text)
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def _http(value: str) -> bool:
    return value.startswith(("http://", "https://")) and not any(c.isspace() for c in value)


# --- one event -----------------------------------------------------------------------------


class _Event:
    """Converts one VEVENT (and its RECURRENCE-ID overrides) into record data."""

    def __init__(self, component: VEvent, converter: Converter) -> None:
        self.c = component
        self.conv = converter
        self.settings = converter.settings
        self.notes: list[str] = []
        self.used: set[str] = set()
        self.data: dict[str, Any] = {}
        self.zone_name = converter.zone_name
        self.zone = ZoneInfo(self.zone_name)
        self.all_day = False
        #: an override takes its zone and all-day-ness from its series
        self.fixed = False
        self.kind_defaulted = True

    def get(self, name: str) -> Any:
        self.used.add(name)
        return self.c.get(name)

    # --- times ----------------------------------------------------------------------
    def choose_zone(self, prop: Any) -> None:
        value = prop.dt
        if not isinstance(value, datetime) or value.tzinfo is None:
            return
        tzid = prop.params.get("TZID")
        if tzid:
            mapped = iana_zone(str(tzid))
            if mapped is None:
                self.notes.append(
                    f"time zone '{tzid}' is not a known zone; times converted to {self.zone_name}"
                )
                return
            zone = ZoneInfo(mapped)
            if not _same_offsets(value, zone):
                self.notes.append(
                    f"time zone '{tzid}' does not agree with {mapped} at {value:%Y-%m-%d %H:%M};"
                    f" times converted to {self.zone_name}"
                )
                return
            self.zone_name, self.zone = mapped, zone
        elif value.utcoffset() == timedelta(0) and self.c.get("RRULE") is not None:
            self.zone_name, self.zone = "UTC", ZoneInfo("UTC")

    def local(self, value: date | datetime, tz: tzinfo | None = None) -> date | datetime:
        """A value as the record writes it: a date, or a naive time in the event's zone."""
        if self.all_day:
            return value.date() if isinstance(value, datetime) else value
        if not isinstance(value, datetime):
            assert isinstance(self.data["start"], datetime)
            value = datetime.combine(value, self.data["start"].time())
        if value.tzinfo is None:
            return value
        return value.astimezone(self.zone).replace(tzinfo=None)

    def times(self) -> bool:
        start_prop = self.get("DTSTART")
        if start_prop is None:
            return False
        start = start_prop.dt
        end_prop, duration_prop = self.get("DTEND"), self.get("DURATION")
        end = end_prop.dt if end_prop is not None else None
        outlook_all_day = str(self.c.get("X-MICROSOFT-CDO-ALLDAYEVENT", "")).upper() == "TRUE"
        if (
            outlook_all_day
            and isinstance(start, datetime)
            and start.time() == time()
            and (end is None or (isinstance(end, datetime) and end.time() == time()))
        ):
            start = start.date()
            end = end.date() if isinstance(end, datetime) else None
        if self.fixed:
            pass
        elif not isinstance(start, datetime):
            self.all_day = True
            self.zone_name = self.settings.timezone
            self.zone = ZoneInfo(self.zone_name)
        else:
            self.all_day = False
            self.choose_zone(start_prop)
        self.data["start"] = self.local(start)
        if not self.all_day and not self.fixed:
            self.data["timezone"] = self.zone_name
        if self.all_day:
            first = self.data["start"]
            last = None
            if isinstance(end, date):
                last = (end.date() if isinstance(end, datetime) else end) - timedelta(days=1)
            elif duration_prop is not None:
                days = max(1, duration_prop.dt.days)
                last = first + timedelta(days=days - 1)
            if last is not None and last > first:
                self.data["end"] = last
            return True
        if end is not None:
            local_end = self.local(end)
            if local_end > self.data["start"]:
                self.data["end"] = local_end
            else:
                self.notes.append(
                    "DTEND is not after DTSTART; the default length of 1 hour is used"
                )
        elif duration_prop is not None:
            length = duration_prop.dt
            if length > timedelta(0) and not length.seconds % 60:
                self.data["duration"] = duration_text(length)
            elif length > timedelta(0):
                self.data["end"] = self.data["start"] + length
            else:
                self.notes.append("DURATION is not positive; the default length of 1 hour is used")
        else:
            self.notes.append("no DTEND or DURATION; the default length of 1 hour is used")
        return True

    def moment(self, name: str) -> datetime | None:
        prop = self.get(name)
        if prop is None or not isinstance(prop.dt, datetime):
            return None
        value: datetime = prop.dt
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(self.zone).replace(tzinfo=None, microsecond=0)

    # --- the rest -------------------------------------------------------------------
    def convert(self) -> dict[str, Any] | None:
        summary = self.get("SUMMARY")
        title = _one_line(str(summary)) if summary is not None else ""
        if str(self.c.get("STATUS", "")).upper() == "CANCELLED":
            for prefix in ("Cancelled: ", "Canceled: "):  # eventfeed's and Outlook's habit
                title = title.removeprefix(prefix)
        if not title:
            title = "Untitled event"
            self.notes.append("no SUMMARY; titled 'Untitled event'")
        if len(title) > 300:
            title = title[:299].rstrip() + "…"
            self.notes.append("SUMMARY shortened to 300 characters")
        self.data["title"] = title
        self.data["kind"] = self.conv.default_kind
        if not self.times():
            return None
        self.status()
        self.where()
        self.categories()
        self.organizer()
        self.links()
        self.recurrence()
        self.history()
        self.leftovers()
        return self.data

    def status(self) -> None:
        value = self.get("STATUS")
        if value is None:
            return
        key = str(value).upper()
        if key not in _STATUS:
            self.notes.append(f"STATUS:{key} has no equivalent; imported as confirmed")
        elif _STATUS[key]:
            self.data["status"] = _STATUS[key]

    def where(self) -> None:
        online: dict[str, str] = {}
        for name, platform in (
            ("CONFERENCE", None),
            ("X-GOOGLE-CONFERENCE", "Google Meet"),
            ("X-MICROSOFT-SKYPETEAMSMEETINGURL", "Microsoft Teams"),
        ):
            for value in _list(self.get(name)):
                if "url" not in online and _http(str(value)):
                    online["url"] = str(value)
                    if platform:
                        online["platform"] = platform
        conf_link = self.get("X-MICROSOFT-ONLINEMEETINGCONFLINK")
        if conf_link is not None and not _http(str(conf_link)) and "url" not in online:
            self.notes.append(f"online meeting link '{conf_link}' is not a web address")
        location = self.get("LOCATION")
        text = _one_line(str(location)) if location is not None else ""
        place: dict[str, Any] = {}
        if text and _http(text):
            online.setdefault("url", text)
        elif text and _ONLINE_LOCATIONS.match(text):
            online.setdefault("platform", text)
        elif text:
            if len(text) > 300:
                self.notes.append("LOCATION shortened to 300 characters")
                text = text[:299].rstrip() + "…"
            place["venue"] = text
        geo = self.get("GEO")
        if geo is not None:
            if place:
                place["lat"], place["lon"] = float(geo.latitude), float(geo.longitude)
            else:
                self.notes.append("GEO without a LOCATION not imported")
        if place:
            self.data["location"] = place
        if online:
            self.data["online"] = online

    def categories(self) -> None:
        settings = self.settings
        kind_set = False
        tags: list[str] = []
        for prop in _list(self.get("CATEGORIES")):
            for raw in getattr(prop, "cats", [prop]):
                name = str(raw).strip()
                key = name.lower().replace(" ", "-").replace("_", "-")
                if not name:
                    continue
                if not is_slug(key):
                    self.notes.append(f"category '{name}' is not a slug; not imported as a tag")
                elif key in settings.kinds and not kind_set:
                    self.data["kind"], kind_set = key, True
                elif key in settings.regions and "region" not in self.data:
                    self.data["region"] = key
                elif key not in tags:
                    tags.append(key)
        if tags:
            self.data["tags"] = tags
        self.kind_defaulted = not kind_set

    def organizer(self) -> None:
        prop = self.get("ORGANIZER")
        if prop is None:
            return
        address = str(prop).removeprefix("mailto:").removeprefix("MAILTO:")
        name = _one_line(str(prop.params.get("CN", "")))
        for key, org in sorted(self.settings.organisations.items()):
            if (org.email and org.email.lower() == address.lower()) or name in (
                org.name,
                org.short,
            ):
                self.data["organizers"] = [key]
                return
        if name:
            self.data["organizers"] = [{"name": name}]
            self.notes.append(f"organizer address {address} not kept (records name organisers)")
        else:
            self.notes.append(f"organizer {address} has no name (CN); not imported")

    def links(self) -> None:
        url = self.get("URL")
        if url is not None:
            if _http(str(url)):
                self.data["links"] = {"page": str(url)}
            else:
                self.notes.append(f"URL '{url}' is not a web address; not imported")
        documents = []
        for attach in _list(self.get("ATTACH")):
            target = str(attach)
            if _http(target):
                title = _one_line(str(attach.params.get("FILENAME", ""))) or "Attachment"
                documents.append({"title": title, "url": target})
            else:
                self.notes.append("an ATTACH that is not a web link was not imported")
        if documents:
            self.data.setdefault("links", {})["documents"] = documents

    def recurrence(self) -> None:
        rules = _list(self.get("RRULE"))
        if len(rules) > 1:
            self.notes.append(f"{len(rules) - 1} RRULE(s) after the first not imported")
        if rules:
            text = rules[0].to_ical().decode()
            try:
                recurrence.parse_parts(text)
            except recurrence.RuleError as exc:
                self.notes.append(f"RRULE:{text} not imported: {exc}")
            else:
                self.data["rrule"] = text
        for name, key in (("EXDATE", "exdates"), ("RDATE", "rdates")):
            values: list[date | datetime] = []
            for prop in _list(self.get(name)):
                for item in prop.dts:
                    value = item.dt
                    if isinstance(value, tuple):
                        self.notes.append(f"{name} period {value[0]} kept as a start only")
                        value = value[0]
                    local = self.local(value)
                    if local not in values:
                        values.append(local)
            if values:
                self.data[key] = sorted(values, key=recurrence.naive)

    def history(self) -> None:
        created, modified = self.moment("CREATED"), self.moment("LAST-MODIFIED")
        if created is not None:
            self.data["published"] = created
        if modified is not None:
            self.data["updated"] = max(modified, created) if created else modified
        sequence = self.get("SEQUENCE")
        if sequence is not None and int(sequence) > 0:
            self.notes.append(f"SEQUENCE:{int(sequence)} not kept; the new calendar counts from 0")
        klass = self.get("CLASS")
        if klass is not None and str(klass).upper() != "PUBLIC":
            self.notes.append(
                f"CLASS:{str(klass).upper()} - this event will be published; "
                "delete the record if it must stay private"
            )

    def leftovers(self) -> None:
        for name in sorted(set(self.c.keys()) - self.used):
            if name in BOOKKEEPING or name.startswith(BOOKKEEPING_PREFIXES):
                continue
            if name in ("DESCRIPTION", "X-ALT-DESC", "RECURRENCE-ID"):
                continue
            count = len(_list(self.c.get(name)))
            self.notes.append(f"{name}" + (f" ({count}x)" if count > 1 else "") + " not imported")
        for sub in self.c.subcomponents:
            label = "reminder (VALARM)" if sub.name == "VALARM" else sub.name
            self.notes.append(f"{label} not imported")

    def body(self) -> str:
        alt = [p for p in _list(self.c.get("X-ALT-DESC")) if "html" in str(p.params.get("FMTTYPE"))]
        if alt:
            html = str(alt[0])
            if not isinstance(alt[0], icalendar.vText):
                html = unescape_text(html)
            return html_to_markdown(html)
        description = self.c.get("DESCRIPTION")
        if description is None:
            return ""
        return _plain_description(str(description), self.notes)


# --- the calendar --------------------------------------------------------------------------


class Converter:
    def __init__(self, settings: Settings, default_kind: str, zone_name: str) -> None:
        self.settings = settings
        self.default_kind = default_kind
        self.zone_name = zone_name

    def master(self, component: VEvent, overrides: list[VEvent], uid: str) -> Imported | Refused:
        ev = _Event(component, self)
        title = _one_line(str(component.get("SUMMARY", ""))) or "Untitled event"
        data = ev.convert()
        if data is None:
            return Refused(uid, title, ["no DTSTART"])
        body = ev.body()
        self.apply_overrides(ev, overrides, body)
        try:
            record = Record.model_validate(data)
        except ValidationError as exc:
            reasons = [
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            return Refused(uid, title, reasons)
        return Imported(
            uid=uid, record=record, body=body, notes=ev.notes, kind_defaulted=ev.kind_defaulted
        )

    def apply_overrides(self, ev: _Event, overrides: list[VEvent], body: str) -> None:
        if not overrides:
            return
        data = ev.data
        if "rrule" not in data and "rdates" not in data:
            ev.notes.append(f"{len(overrides)} RECURRENCE-ID override(s) of a single event ignored")
            return
        start = data["start"]
        zone = ev.zone
        series = {
            recurrence.naive(o)
            for o in recurrence.occurrences(
                data.get("rrule"), start, zone, rdates=tuple(data.get("rdates", ()))
            )
        }
        length = _length(data)
        result = []
        for component in sorted(overrides, key=lambda c: _sort_time(c["RECURRENCE-ID"].dt)):
            sub = _Event(component, self)
            sub.all_day, sub.zone, sub.zone_name = ev.all_day, ev.zone, ev.zone_name
            sub.fixed = True
            sub.data["start"] = start
            occurrence = sub.local(component["RECURRENCE-ID"].dt)
            label = f"override of {_show(occurrence)}"
            if recurrence.naive(occurrence) not in series:
                ev.notes.append(f"{label}: not an occurrence of the series; not imported")
                continue
            if component["RECURRENCE-ID"].params.get("RANGE"):
                ev.notes.append(f"{label}: RANGE=THISANDFUTURE applied to this occurrence only")
            item: dict[str, Any] = {"occurrence": occurrence}
            sub_data: dict[str, Any] = {"title": "", "kind": ""}
            sub.data = sub_data
            sub.times()
            new_start = sub_data.get("start", occurrence)
            new_end = sub_data.get("end")
            if new_end is None and "duration" in sub_data:
                new_end = new_start + _length(sub_data)
            if new_start != occurrence:
                item["start"] = new_start
            if ev.all_day:
                expected_end = new_start + (data["end"] - start) if "end" in data else None
            else:
                expected_end = new_start + length
            if new_end is not None and new_end != expected_end:
                item["end"] = new_end
            status = str(component.get("STATUS", "CONFIRMED")).upper()
            if _STATUS.get(status) != data.get("status"):
                item["status"] = _STATUS.get(status) or "confirmed"
            summary = _one_line(str(component.get("SUMMARY", "")))
            if summary and summary != data["title"]:
                item["title"] = summary[:300]
            sub_body = sub.body()
            if sub_body and sub_body != body:
                item["note"] = sub_body
            for name in ("LOCATION", "URL", "CATEGORIES", "CONFERENCE"):
                if str(component.get(name, "")) != str(ev.c.get(name, "")):
                    ev.notes.append(f"{label}: changed {name} not imported")
            if "exdates" in data:
                data["exdates"] = [d for d in data["exdates"] if d != occurrence]
                if not data["exdates"]:
                    del data["exdates"]
            result.append(item)
        if result:
            data["overrides"] = result


def _sort_into(result: Imported | Refused, events: list[Imported], refused: list[Refused]) -> None:
    if isinstance(result, Imported):
        events.append(result)
    else:
        refused.append(result)


def _length(data: dict[str, Any]) -> timedelta:
    if "end" in data:
        return data["end"] - data["start"]  # type: ignore[no-any-return]
    if "duration" in data:
        from .model import parse_duration

        return parse_duration(data["duration"])
    return timedelta(hours=1)


def _sort_time(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(), tzinfo=UTC)


def _show(value: date | datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if isinstance(value, datetime) else value.isoformat()


def convert(raw: bytes, settings: Settings, *, default_kind: str | None = None) -> Conversion:
    """Convert a whole calendar. Pure: no file is read or written."""
    try:
        calendars = icalendar.Calendar.from_ical(raw, multiple=True)
    except ValueError as exc:
        raise ImportError_(f"not an iCalendar file: {exc}") from None
    if not calendars:
        raise ImportError_("not an iCalendar file: no VCALENDAR found")
    notes: list[str] = []
    name: str | None = None
    events: list[Imported] = []
    refused: list[Refused] = []
    kind = default_kind or settings.kinds[0]
    for calendar in calendars:
        cal_name = calendar.get("X-WR-CALNAME")
        name = name or (str(cal_name) if cal_name else None)
        wr_zone = calendar.get("X-WR-TIMEZONE")
        zone_name = settings.timezone
        if wr_zone is not None:
            zone_name = iana_zone(str(wr_zone)) or zone_name
        converter = Converter(settings, kind, zone_name)
        masters: dict[str, VEvent] = {}
        children: dict[str, list[VEvent]] = defaultdict(list)
        duplicates: dict[str, int] = defaultdict(int)
        for component in calendar.walk("VEVENT"):
            uid = _one_line(str(component.get("UID", "")))
            if not uid:
                refused.append(
                    Refused("", _one_line(str(component.get("SUMMARY", ""))), ["no UID"])
                )
                continue
            if component.get("RECURRENCE-ID") is not None:
                children[uid].append(component)
            elif uid in masters:
                duplicates[uid] += 1
            else:
                masters[uid] = component
        for other in ("VTODO", "VJOURNAL", "VFREEBUSY"):
            count = len(calendar.walk(other))
            if count:
                notes.append(f"{count} {other} component(s) not imported: records are events")
        for uid, component in masters.items():
            result = converter.master(component, children.pop(uid, []), uid)
            if isinstance(result, Imported) and duplicates.get(uid):
                result.notes.append(f"{duplicates[uid]} more VEVENT(s) with this UID ignored")
            _sort_into(result, events, refused)
        for uid, orphans in sorted(children.items()):
            # a moved occurrence exported without its series: import it as a single event
            first, rest = orphans[0], orphans[1:]
            single = copy.deepcopy(first)
            del single["RECURRENCE-ID"]
            result = converter.master(single, [], uid)
            if isinstance(result, Imported):
                result.notes.append("occurrence exported without its series; imported alone")
                if rest:
                    result.notes.append(f"{len(rest)} more occurrence(s) of it not imported")
            _sort_into(result, events, refused)
    events.sort(key=lambda i: (recurrence.naive(i.record.start), i.uid))
    return Conversion(calendar_name=name, events=events, refused=refused, notes=notes)


# --- placing records in the events folder ----------------------------------------------------


@dataclass(frozen=True)
class Planned:
    path: Path
    text: str
    #: "add", "update" or "same"
    action: str
    imported: Imported


def plan(
    conversion: Conversion,
    settings: Settings,
    events_dir: Path,
    existing: dict[str, tuple[str, Path, str | None]],
    taken: set[str],
    shown: Any,
) -> tuple[list[Planned], list[Refused]]:
    """Decide the file of every imported record.

    ``existing`` maps a UID to (id, path, explicit id or None) of a record already in the
    folder; ``taken`` holds every id in use. ``shown`` turns a path into its display form.
    """
    planned: list[Planned] = []
    refused = list(conversion.refused)
    for item in conversion.events:
        record = item.record
        found = existing.get(item.uid)
        changes: dict[str, Any] = {}
        if found is not None:
            new_id, path, explicit = found
            if explicit is not None:
                changes["id"] = explicit
        else:
            local, _, domain = item.uid.rpartition("@")
            if domain == settings.domain and is_slug(local) and local not in taken:
                new_id = local
            else:
                base = event_id(record.start, record.title)
                new_id, number = base, 1
                while new_id in taken:
                    number += 1
                    suffix = f"-{number}"
                    new_id = base[: 80 - len(suffix)].rstrip("-") + suffix
            path = record_path(events_dir, record.start, new_id)
            taken.add(new_id)
        if item.uid != f"{new_id}@{settings.domain}":
            changes["uid"] = item.uid
        if changes:
            record = record.model_copy(update=changes)
            record = Record.model_validate(record.model_dump())
        errors = [
            p
            for p in check_record(record, new_id, shown(path), settings)
            if p.severity is Severity.ERROR
        ]
        if errors:
            refused.append(
                Refused(
                    item.uid,
                    record.title,
                    [f"{p.field}: {p.message}" if p.field else p.message for p in errors],
                )
            )
            continue
        text = render_record(record, item.body)
        try:
            current = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        action = "add" if current is None else ("same" if current == text else "update")
        planned.append(Planned(path=path, text=text, action=action, imported=item))
    return planned, refused


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the command -----------------------------------------------------------------------------


@click.command("import")
@click.argument("source", metavar="FILE.ics|-", type=click.File("rb"))
@events_option("Folder of event records (with site.yaml) to write into.")
@click.option(
    "--kind",
    help="Kind of events whose categories name no kind. Default: the first kind in site.yaml.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be written; write nothing.")
def import_command(source: BinaryIO, events_dir: Path, kind: str | None, dry_run: bool) -> None:
    """Import an iCalendar file (Google Calendar, Outlook, Indico exports) as records.

    Each event keeps its UID; an event already imported (same UID) is updated in place, so
    importing the same file twice changes nothing. Whatever cannot be carried over into a
    record is listed per event on standard error. Events that would not pass
    'eventfeed check' are listed and not written; the exit code is then 1.

    \b
    Examples:
      eventfeed import calendar.ics
      eventfeed import --kind webinar --events events exported.ics
      curl -s https://example.org/calendar.ics | eventfeed import -
    """
    loaded = load(events_dir)
    settings = loaded.settings
    if settings is None:
        for problem in loaded.problems:
            click.echo(problem.format_text(), err=True)
        click.echo("error: the site settings are needed to import; fix them first", err=True)
        sys.exit(1)
    if kind is not None and kind not in settings.kinds:
        raise click.BadParameter(
            f"'{kind}' is not one of the kinds in site.yaml: {', '.join(settings.kinds)}",
            param_hint="--kind",
        )
    raw = source.read()
    try:
        conversion = convert(raw, settings, default_kind=kind)
    except ImportError_ as exc:
        click.echo(f"error: {getattr(source, 'name', '-')}: {exc}", err=True)
        sys.exit(1)
    existing = {
        e.uid: (e.id, Path(e.source), e.record.id) for e in sorted(loaded.events, key=_by_id)
    }
    taken = {e.id for e in loaded.events}
    if events_dir.is_dir():
        taken |= {p.stem for p in events_dir.rglob("*.md")}
    planned, refused = plan(conversion, settings, events_dir, existing, taken, display_path)
    counts = {"add": 0, "update": 0, "same": 0}
    with Progress("importing", len(planned)) as progress:
        for item in planned:
            counts[item.action] += 1
            if item.action != "same" and not dry_run:
                try:
                    write_text_atomic(item.path, item.text)
                except OSError as exc:
                    click.echo(f"error: cannot write {display_path(item.path)}: {exc}", err=True)
                    sys.exit(1)
            progress.advance()
    for note in conversion.notes:
        click.echo(f"note: {note}", err=True)
    for item in planned:
        for note in item.imported.notes:
            click.echo(f"{display_path(item.path)}: {note}", err=True)
    defaulted = sum(1 for item in planned if item.imported.kind_defaulted)
    if defaulted:
        click.echo(
            f"note: {defaulted} event(s) have the kind '{kind or settings.kinds[0]}' because no "
            "category names a kind; choose another with --kind",
            err=True,
        )
    for r in refused:
        reasons = "; ".join(r.reasons)
        click.echo(
            f"error: not imported: {r.title!r} (UID {r.uid or 'missing'}): {reasons}", err=True
        )
    name = f" from '{conversion.calendar_name}'" if conversion.calendar_name else ""
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"{verb} {len(planned)} event(s){name} into {display_path(events_dir)}: "
        f"{counts['add']} new, {counts['update']} updated, {counts['same']} unchanged"
        + (f"; {len(refused)} refused" if refused else ""),
        err=True,
    )
    sys.exit(1 if refused else 0)


def _by_id(event: Event) -> str:
    return event.id


__all__ = ["Conversion", "Imported", "Refused", "convert", "iana_zone", "plan", "slugify"]
