"""One event as VEVENT components (RFC 5545 section 3.6.1, RFC 7986 section 5).

A record becomes its master VEVENT and, for a recurring series, one VEVENT per override with
the same UID and a RECURRENCE-ID (RFC 5545 section 3.8.4.4). Identity and times come from the
event and its history (:class:`eventfeed.state.EventState`), never from a clock.

Choices that clients notice:

* SUMMARY of a cancelled or postponed event starts with "Cancelled: " / "Postponed: ", because
  several clients show STATUS nowhere. Postponed is STATUS:TENTATIVE (RFC 5545 has no
  "postponed") with the news at the top of DESCRIPTION.
* LOCATION of an online or hybrid event names it as online and carries the join URL: most
  clients ignore CONFERENCE, which is written as well for those that read it.
* A cancelled occurrence of a series is an override with STATUS:CANCELLED, not an EXDATE. An
  EXDATE makes the occurrence vanish without a word; the override lets Apple Calendar and
  Thunderbird show it as cancelled, Outlook show it with its "Cancelled: " title, and Google
  (which hides cancelled events) drop it, which is what an EXDATE would have done there.
* Cancelled events and occurrences are TRANSPARENT: they should not mark anyone busy.
* Recurrence dates are written one per EXDATE/RDATE line, the form every client reads.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, TypeVar

from icalendar import Event as VEvent
from icalendar.prop import vRecur, vText

from . import markdown, paths, recurrence
from .event import Event, Mode
from .model import Override, Status
from .serialise import Writer, tzid_param
from .state import EventState
from .text import when_text, where_text

_STATUS = {
    Status.CONFIRMED: "CONFIRMED",
    Status.TENTATIVE: "TENTATIVE",
    Status.POSTPONED: "TENTATIVE",
    Status.CANCELLED: "CANCELLED",
}
_TITLE_PREFIX = {Status.CANCELLED: "Cancelled: ", Status.POSTPONED: "Postponed: "}
_NEWS = {
    Status.CANCELLED: "Cancelled: this event will not take place.",
    Status.POSTPONED: "Postponed: this event will not take place at the time shown.",
    Status.TENTATIVE: "Tentative: the time is not confirmed yet.",
}
_OCCURRENCE_NEWS = {
    Status.CANCELLED: "Cancelled: this occurrence will not take place.",
    Status.POSTPONED: "Postponed: this occurrence will not take place at the time shown.",
    Status.TENTATIVE: "Tentative: the time of this occurrence is not confirmed yet.",
}


#: the labels of the facts below a description, as HTML (they need no escaping)
_LABELS = {
    label: html.escape(label)
    for label in (
        *("First occurrence", "When", "Where", "Join"),
        *("Registration", "Recording", "Event page"),
    )
}


class _Adds(Protocol):
    def add(self, name: str, value: Any, parameters: Any = None) -> Any: ...


#: an icalendar component, or a :class:`~eventfeed.serialise.Writer` that writes one
Target = TypeVar("Target", bound=_Adds)


@dataclass(frozen=True)
class Compiled:
    """An event's components, their bytes, and what calendars need to know about them."""

    event: Event
    #: the serialised components, master first (:func:`components` builds them as objects)
    data: bytes
    #: zones written as TZID, with the first and last year of the local times they cover
    zones: tuple[tuple[str, int, int], ...]
    #: the last day the event (or series) takes place on; None for a series without end
    last_day: date | None
    #: the components as jCal text, comma-separated (:func:`eventfeed.ical._jcal`); empty when
    #: not converted (see :func:`compile_event`)
    jcal: str = ""


def page_url(event: Event) -> str:
    return event.settings.site_url + paths.event_page(event.id)


def compile_event(event: Event, state: EventState, *, with_jcal: bool = True) -> Compiled:
    """The event's serialised components (master first), as iCalendar and (unless not
    ``with_jcal``) as jCal, and what calendars need to know."""
    last = _last_end(event)
    last_day = None if last is None else _last_day(event, last)
    written = _build(event, state, lambda: Writer(VEvent, jcal=with_jcal))
    data = b"".join([w.to_bytes() for w in written])
    jcal = ",".join([w.jcal() for w in written]) if with_jcal else ""
    years = [v.year for v in _local_values(event)]
    if last is not None:
        years.append(last.year)
    zones: tuple[tuple[str, int, int], ...] = ()
    if not event.all_day:
        tzid = tzid_param(event.aware(event.local_start))
        if tzid:
            zones = ((tzid, min(years), max(years)),)
    return Compiled(event, data, zones, last_day, jcal)


def series_last_day(event: Event) -> date | None:
    """The last day the event (or series, with its overrides) takes place on; None for a
    series without end. :attr:`Compiled.last_day` without compiling."""
    if not _is_series(event):
        return event.last_day  # kept by the event: the same day, from its end
    last = _last_end(event)
    return None if last is None else _last_day(event, last)


def components(event: Event, state: EventState) -> list[VEvent]:
    """The same components as icalendar objects (to check :class:`Writer`)."""
    return _build(event, state, VEvent)


def _build(event: Event, state: EventState, kind: Callable[[], Target]) -> list[Target]:
    master = _component(kind(), event, state, event.record.title, None, series=_is_series(event))
    _add_recurrence(master, event)
    built = [master]
    for override in sorted(event.record.overrides, key=lambda o: recurrence.naive(o.occurrence)):
        built.append(_override(kind(), event, state, override))
    return built


# --- properties --------------------------------------------------------------------------


def _value(event: Event, local: date | datetime) -> date | datetime:
    """A record's local value as written: a date for all-day events, else aware in its zone."""
    if event.all_day:
        return local.date() if isinstance(local, datetime) else local
    return event.aware(local)


def _component(
    c: Target,
    event: Event,
    state: EventState,
    title: str,
    occurrence: Override | None,
    *,
    series: bool,
) -> Target:
    rec = event.record
    status = rec.status
    lang = {"LANGUAGE": event.language}
    c.add("uid", event.uid)
    c.add("dtstamp", state.dtstamp.astimezone(UTC))
    c.add("created", state.created.astimezone(UTC))
    c.add("last-modified", state.last_modified.astimezone(UTC))
    c.add("sequence", state.sequence)
    if occurrence is not None:
        c.add("recurrence-id", _value(event, occurrence.occurrence))
    c.add("dtstart", _value(event, event.local_start))
    c.add("dtend", _value(event, event.local_end))
    c.add("summary", _TITLE_PREFIX.get(status, "") + title, parameters=lang)
    where = where_text(event) if rec.location is not None or rec.online is not None else None
    text, rich = _description(event, occurrence, where, series=series)
    c.add("description", text, parameters=lang)
    c.add("x-alt-desc", vText(rich), parameters={"FMTTYPE": "text/html"})
    location = _location(event, where)
    if location:
        c.add("location", location, parameters=lang)
    loc = rec.location
    if loc is not None and loc.lat is not None and loc.lon is not None:
        c.add("geo", (loc.lat, loc.lon))
    if rec.online is not None and rec.online.url:
        label = rec.online.platform or "Join online"
        c.add(
            "conference",
            rec.online.url,
            parameters={"VALUE": "URI", "FEATURE": "VIDEO", "LABEL": label},
        )
    c.add("url", page_url(event))
    if event.categories:
        c.add("categories", list(event.categories))
    c.add("status", _STATUS[status])
    organiser = next((o for o in event.organizers if o.email), None)
    if organiser is not None:
        c.add("organizer", f"mailto:{organiser.email}", parameters={"CN": organiser.name})
    c.add("class", "PUBLIC")
    transparent = event.all_day or status is Status.CANCELLED
    c.add("transp", "TRANSPARENT" if transparent else "OPAQUE")
    return c


def _location(event: Event, where: str | None) -> str:
    """LOCATION; ``where``: :func:`~eventfeed.text.where_text`, None without place or link."""
    rec = event.record
    if where is None:
        return ""
    url = rec.online.url if rec.online is not None else None
    if url and event.mode is not Mode.IN_PERSON:
        return f"{where}: {url}" if where else url
    return where


def _description(
    event: Event, occurrence: Override | None, where: str | None, *, series: bool
) -> tuple[str, str]:
    """Plain text (links as URLs) for DESCRIPTION and HTML for X-ALT-DESC; ``where`` as for
    :func:`_location`."""
    site = event.settings.site_url
    rec = event.record
    news = (_OCCURRENCE_NEWS if occurrence is not None else _NEWS).get(rec.status)
    note = occurrence.note if occurrence is not None else None
    facts: list[tuple[str, str, bool]] = [
        ("First occurrence" if series else "When", when_text(event), False),
    ]
    if where is not None:
        facts.append(("Where", where, False))
    if rec.online is not None and rec.online.url:
        facts.append(("Join", rec.online.url, True))
    if rec.links.registration:
        facts.append(("Registration", rec.links.registration, True))
    if rec.links.recording:
        facts.append(("Recording", rec.links.recording, True))
    facts.append(("Event page", page_url(event), True))

    text_parts = [p for p in (news, note and markdown.to_text(note, site)) if p]
    body = markdown.to_text(event.body, site)
    if body:
        text_parts.append(body)
    text_parts.append("\n".join(f"{label}: {value}" for label, value, _ in facts))
    text = "\n\n".join(p.strip() for p in text_parts) + "\n"

    html_parts = []
    if news:
        html_parts.append(f"<p><strong>{html.escape(news)}</strong></p>\n")
    if note:
        html_parts.append(markdown.to_html(note, site))
    html_parts.append(markdown.to_html(event.body, site))
    lines = []
    for label, value, link in facts:
        shown = html.escape(value)
        if link:
            shown = f'<a href="{shown}">{shown}</a>'
        lines.append(f"{_LABELS.get(label) or html.escape(label)}: {shown}")
    html_parts.append("<p>" + "<br>\n".join(lines) + "</p>\n")
    return text, "".join(html_parts)


# --- recurrence --------------------------------------------------------------------------


def _is_series(event: Event) -> bool:
    return event.record.rrule is not None or bool(event.record.rdates)


def _add_recurrence(component: Target, event: Event) -> None:
    """RRULE with UNTIL in UTC for zoned series (RFC 5545 section 3.3.10), EXDATE, RDATE."""
    rec = event.record
    if rec.rrule is not None:
        parts = recurrence.parse_parts(rec.rrule)
        rule = vRecur.from_ical(";".join(f"{k}={v}" for k, v in parts.items() if k != "UNTIL"))
        if "UNTIL" in parts:
            until = recurrence.local_until(parts["UNTIL"], event.zone, event.all_day)
            value = _value(event, until)
            if isinstance(value, datetime):
                value = value.astimezone(UTC)
            rule["UNTIL"] = [value]
        component.add("rrule", rule)
    for rdate in rec.rdates:
        component.add("rdate", _value(event, rdate))
    for exdate in rec.exdates:
        component.add("exdate", _value(event, exdate))


def _override_span(event: Event, override: Override) -> tuple[date | datetime, date | datetime]:
    """Start and end of an overridden occurrence as a record writes them (all-day ends
    inclusive); an end not given keeps the series' length."""
    start = override.start if override.start is not None else override.occurrence
    if override.end is not None:
        return start, override.end
    length = recurrence.naive(event.local_end) - recurrence.naive(event.local_start)
    if event.all_day:
        return start, recurrence.naive(start).date() + length - timedelta(days=1)
    return start, recurrence.naive(start) + length


def _override(c: Target, event: Event, state: EventState, override: Override) -> Target:
    """A changed occurrence: the event as it is on that day, named by RECURRENCE-ID."""
    start, end = _override_span(event, override)
    record = event.record.model_copy(
        update={
            "start": start,
            "end": end,
            "duration": None,
            "status": override.status or event.record.status,
            "rrule": None,
            "rdates": (),
            "exdates": (),
            "overrides": (),
        }
    )
    changed = dataclasses.replace(event, record=record)
    return _component(
        c, changed, state, override.title or event.record.title, override, series=False
    )


def _local_values(event: Event) -> Iterator[date | datetime]:
    rec = event.record
    yield event.local_start
    yield event.local_end
    yield from rec.rdates
    yield from rec.exdates
    for o in rec.overrides:
        yield o.occurrence
        if o.start is not None:
            yield o.start
        if o.end is not None:
            yield o.end


def _last_end(event: Event) -> date | datetime | None:
    """The (exclusive) end of the last occurrence, local; None when a series has no end."""
    rec = event.record
    if not _is_series(event):
        return event.local_end
    last_start = None
    if rec.rrule is not None:
        parts = recurrence.parse_parts(rec.rrule)
        if "COUNT" not in parts and "UNTIL" not in parts:
            return None
        if not rec.rdates and not rec.exdates:
            last_start = _counted_last_start(parts, rec.start)
    if last_start is not None:
        starts: list[date | datetime] = [last_start]
    else:
        starts = list(
            recurrence.occurrences(
                rec.rrule, rec.start, event.zone, rdates=rec.rdates, exdates=rec.exdates
            )
        )
        if len(starts) >= recurrence.MAX_OCCURRENCES:
            return None  # too long to tell: keep it with the coming events
    length = recurrence.naive(event.local_end) - recurrence.naive(event.local_start)
    ends = [recurrence.naive(s) + length for s in starts]
    for override in rec.overrides:
        end = recurrence.naive(_override_span(event, override)[1])
        ends.append(end + timedelta(days=1) if event.all_day else end)
    last = max(ends)
    return last.date() if event.all_day else last


#: Days between occurrences of a rule that has nothing but FREQ, INTERVAL and COUNT.
_STEP_DAYS = {"DAILY": 1, "WEEKLY": 7}


def _counted_last_start(parts: dict[str, str], start: date | datetime) -> datetime | None:
    """The last start (naive, local) of a rule that repeats every INTERVAL days or weeks
    COUNT times and says nothing else (RFC 5545 section 3.3.10: its occurrences are DTSTART
    plus whole steps), worked out instead of expanded; None when the rule says more, or when
    the expansion would stop early (at :data:`~recurrence.MAX_OCCURRENCES` or the horizon)."""
    step = _STEP_DAYS.get(parts["FREQ"])
    if step is None or parts.keys() - {"FREQ", "INTERVAL", "COUNT"} or "COUNT" not in parts:
        return None
    count_text, interval_text = parts["COUNT"], parts.get("INTERVAL", "1")
    if not (count_text.isascii() and interval_text.isascii()):
        return None
    count = int(count_text)
    if count >= recurrence.MAX_OCCURRENCES:
        return None
    first = recurrence.naive(start)
    days = step * int(interval_text) * (count - 1)
    if days > (recurrence.HORIZON - first).days:
        return None
    return first + timedelta(days=days)


def _last_day(event: Event, end: date | datetime) -> date:
    if isinstance(end, datetime):
        return (end - timedelta(microseconds=1)).date()
    return end - timedelta(days=1)
