"""The markup made once per event: its page's own part, what the page shows inside the site's
frame (``event.html``), and its item in the listings of the index and collection pages.

Every other page is a Jinja template. These are written in Python because they are rendered
once per event, by the ten thousand, and Jinja spent more on its machinery (a markup object
for each escaped value, an attribute look-up through the environment for each ``a.b``, a
context per render) than on the markup itself. The code follows the page from top to bottom,
one section after another, each line of markup written as it appears in the page; every
value from a record or the settings goes through :func:`h`, which escapes as Jinja's
autoescaping does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import escape

from .text import slug_label

if TYPE_CHECKING:
    from .event import Event, Org
    from .pages import Card, Facts, Listed, Occurrence


def h(value: object) -> str:
    """``value`` as Jinja's autoescaping writes it: markupsafe's escape, which writes the
    quotes as ``&#34;`` and ``&#39;`` (:func:`html.escape` writes other entities), without
    making a markup object of text that has nothing to escape."""
    if type(value) is str and not (
        "&" in value or "<" in value or ">" in value or '"' in value or "'" in value
    ):
        return value
    return escape(value)


@dataclass(frozen=True, slots=True)
class EventView:
    """What the own part of an event page shows beside the event's record."""

    event: Event
    #: how the event is listed: upcoming or past, one event or a series
    item: Listed
    facts: Facts
    #: the page's own address
    url: str
    #: the event's when line and its start and end as ISO text
    when: str
    start: str
    end: str
    #: the record's body as sanitised HTML, or empty
    body: str
    #: the dates of the series, or empty for one event
    series: Sequence[Occurrence]
    #: the link to each collection the event belongs to, and the collection's title
    collections: Sequence[tuple[str, str]]
    #: the links to the event's ``.ics`` file and to the home page
    ics: str
    index: str
    #: Google Calendar, Outlook and Outlook.com links as written in an attribute (escaped)
    add: tuple[str, str, str]


def event_main(view: EventView) -> list[str]:
    """The markup of the page's ``<main>`` (the ``main`` block of ``event.html``), as the
    parts it is the join of."""
    event, facts = view.event, view.facts
    rec = event.record
    status = rec.status.value
    title = h(rec.title)
    out: list[str] = []
    add = out.append

    if status == "confirmed":
        add('<article class="h-event event-page">\n')
    else:
        add(f'<article class="h-event event-page is-{h(status)}">\n')
    add(f'<data class="u-url" value="{h(view.url)}"></data>\n')
    add(f'<h1 class="p-name">{title}</h1>\n')
    if facts.status:
        add(f'<p class="banner status-{h(status)}"><strong>{h(facts.status)}.</strong>\n')
        add(_BANNERS.get(status, "The date is not yet final.") + "</p>\n")

    # --- details
    add('<section aria-labelledby="details">\n<h2 id="details">Details</h2>\n<dl class="facts">\n')
    add("<dt>When</dt>\n")
    add(f'<dd><time class="dt-start" datetime="{h(view.start)}">{h(view.when)}</time>\n')
    add(f'<data class="dt-end" value="{h(view.end)}"></data>\n')
    if view.item.series:
        add('<br><span class="note">The first date of a series; all dates are listed below.</span>')
    add("</dd>\n")
    add(f"<dt>Time zone</dt>\n<dd>{h(event.tzid)}")
    if not event.all_day:
        add("; calendar apps show the time in your own zone")
    add("</dd>\n")
    add(f"<dt>Format</dt>\n<dd>{h(facts.mode)}</dd>\n")
    add(f'<dt>Where</dt>\n<dd class="p-location">{h(facts.where)}</dd>\n')
    online = rec.online
    if online and online.url:
        platform = f" ({h(online.platform)})" if online.platform else ""
        add(
            f'<dt>Join online</dt>\n<dd><a href="{h(online.url)}">Join {title}{platform}</a></dd>\n'
        )
    loc = rec.location
    if loc and loc.lat is not None and loc.lon is not None:
        lat, lon = h(loc.lat), h(loc.lon)
        add("<dt>Map</dt>\n")
        add(
            f'<dd><a href="https://www.openstreetmap.org/?mlat={lat}&amp;mlon={lon}'
            f'#map=17/{lat}/{lon}">Map of the venue on OpenStreetMap</a></dd>\n'
        )
    add(f'<dt>Kind</dt>\n<dd class="p-category">{h(facts.kind)}</dd>\n')
    if rec.region:
        add(f"<dt>Region</dt>\n<dd>{h(slug_label(rec.region))}</dd>\n")
    add(f"<dt>Language</dt>\n<dd>{h(event.language)}</dd>\n")
    if event.organizers:
        add('<dt>Organisers</dt>\n<dd><ul class="plain">\n')
        out += map(_org, event.organizers)
        add("</ul></dd>\n")
    if event.partners:
        add('<dt>Partners</dt>\n<dd><ul class="plain">\n')
        out += map(_org, event.partners)
        add("</ul></dd>\n")
    if rec.speakers:
        add('<dt>Speakers</dt>\n<dd><ul class="plain">\n')
        for speaker in rec.speakers:
            role = f", {h(speaker.role)}" if speaker.role else ""
            affiliation = f", {h(speaker.affiliation)}" if speaker.affiliation else ""
            add(f"<li>{h(speaker.name)}{role}{affiliation}</li>\n")
        add("</ul></dd>\n")
    if rec.participants is not None:
        add(f"<dt>Participants</dt>\n<dd>{h(rec.participants)}</dd>\n")
    if rec.tags:
        tags = ", ".join(f'<span class="tag">{h(tag)}</span>' for tag in rec.tags)
        add(f"<dt>Tags</dt>\n<dd>{tags}</dd>\n")
    if rec.published:
        published = h(rec.published.isoformat())
        add(f'<dt>Published</dt>\n<dd><time datetime="{published}">{published}</time></dd>\n')
    if rec.updated:
        updated = h(rec.updated.isoformat())
        add(f'<dt>Updated</dt>\n<dd><time datetime="{updated}">{updated}</time></dd>\n')
    if view.collections:
        part_of = ", ".join(f'<a href="{h(href)}">{h(name)}</a>' for href, name in view.collections)
        add(f"<dt>Part of</dt>\n<dd>{part_of}</dd>\n")
    add("</dl>\n</section>\n")

    # --- links
    links = rec.links
    if links.registration or links.recording or links.page or links.documents:
        add('<section aria-labelledby="links">\n<h2 id="links">Links</h2>\n<ul>\n')
        if links.registration:
            add(f'<li><a href="{h(links.registration)}">Register for {title}</a></li>')
        if links.recording:
            add(f'<li><a href="{h(links.recording)}">Recording of {title}</a></li>')
        if links.page:
            add(f'<li><a href="{h(links.page)}">Event page of the organisers</a></li>')
        for document in links.documents:
            add(f'<li><a href="{h(document.url)}">{h(document.title)}</a></li>\n')
        add("</ul>\n</section>\n")

    # --- the body: "About" an upcoming event, the "Report" of a past one
    if view.body:
        heading = "About" if view.item.upcoming else "Report"
        add(f'<section aria-labelledby="about">\n<h2 id="about">{heading}</h2>\n')
        add('<div class="e-content body">\n')
        out += (view.body, "</div>\n</section>\n")  # sanitised markup, as it is

    # --- the dates of a series
    if view.series:
        add('<section aria-labelledby="dates">\n<h2 id="dates">All dates</h2>\n')
        if rec.rrule:
            first = "; the first 200 dates are shown" if len(view.series) >= 200 else ""
            add(f"<p>Repeats by the rule <code>{h(rec.rrule)}</code>{first}.</p>")
        add('<ol class="dates">\n')
        for occurrence in view.series:
            add(_date(occurrence, rec.title))
        add("</ol>\n</section>\n")

    # --- add to a calendar
    google, outlook, outlook_live = view.add  # escaped already
    the_next = "the next date of " if view.item.series else ""
    add('<section aria-labelledby="add" class="add">\n<h2 id="add">Add to your calendar</h2>\n')
    add('<ul class="add-links">\n')
    add(
        f'<li><a class="button" href="{h(view.ics)}" download>Download {title} as an .ics file'
        " (Apple Calendar, Outlook, Thunderbird)</a></li>\n"
    )
    for link, app in (
        (google, "Google Calendar"),
        (outlook, "Outlook (Microsoft 365)"),
        (outlook_live, "Outlook.com"),
    ):
        out += ('<li><a href="', link, f'">Add {the_next}“{title}” to {app}</a></li>\n')
    add("</ul>\n")
    if view.item.series:
        add(
            '<p class="note">The .ics file holds the whole series with its changes;'
            " the Google and Outlook links add one date.</p>"
        )
    add(
        f'<p>To get every event as it is announced, <a href="{h(view.index)}#subscribe">'
        "subscribe to a calendar</a>.</p>\n"
    )
    add("</section>\n</article>\n")
    return out


#: The banner's sentence by status (any other that has a banner: tentative).
_BANNERS = {
    "cancelled": "This event will not take place.",
    "postponed": "This event is postponed; a new date will be announced.",
}


def _org(org: Org) -> str:
    """An organiser or partner: its name, linked to its site when it has one, and its short
    name."""
    name = f'<a href="{h(org.url)}">{h(org.name)}</a>' if org.url else h(org.name)
    short = f" ({h(org.short)})" if org.short else ""
    return f"<li>{name}{short}</li>\n"


def _date(occurrence: Occurrence, title: str) -> str:
    """One date of a series: marked when cancelled or moved, with its own title (when it is
    not the series') and note."""
    if occurrence.cancelled:
        opening = (
            '<li class="is-cancelled"><strong class="status status-cancelled">Cancelled</strong> '
        )
    elif occurrence.moved:
        opening = '<li><strong class="status status-moved">Moved</strong> '
    else:
        opening = "<li>"
    own = occurrence.event.record.title
    own_title = f": {h(own)}" if own != title else ""
    note = f' <span class="note">{h(occurrence.note)}</span>' if occurrence.note else ""
    return f"{opening}{h(occurrence.when)}{own_title}{note}</li>\n"


def item_parts(card: Card, level: int, past: bool) -> list[str]:
    """An event in the listings (index and collection pages), at heading level ``level``:
    the markup around the links to its page, which a listing puts in (escaped) from its own
    folder. A past event with a body links its page twice, from its title and to the report."""
    item, facts = card.item, card.facts
    rec = item.event.record
    status = rec.status.value
    title = h(rec.title)
    parts: list[str] = []
    out: list[str] = []
    add = out.append

    def link() -> None:  # where a link to the page goes
        parts.append("".join(out))
        out.clear()

    if status == "confirmed":
        add('<article class="event h-event">\n')
    else:
        add(f'<article class="event h-event{h(" is-" + status)}">\n')
    add(f'<h{level} class="event-title">')
    if facts.status:
        add(f'<strong class="status status-{h(status)}">{h(facts.status)}</strong> ')
    add('<a class="p-name u-url" href="')
    link()
    add(f'">{title}</a></h{level}>\n')
    add('<dl class="facts">\n<dt>When</dt>\n')
    add(f'<dd><time class="dt-start" datetime="{h(card.start)}">{h(card.when)}</time>')
    if item.series:
        which = "next in a series" if item.upcoming else "first of a series"
        add(f' <span class="note">({which})</span>')
    add(f'<data class="dt-end" value="{h(card.end)}"></data></dd>\n')
    add(f"<dt>Format</dt>\n<dd>{h(facts.mode)}</dd>\n")
    add(f'<dt>Where</dt>\n<dd class="p-location">{h(facts.where)}</dd>\n')
    add(f'<dt>Kind</dt>\n<dd class="p-category">{h(facts.kind)}</dd>\n')
    if facts.organisers:
        add(f"<dt>Organisers</dt>\n<dd>{h(facts.organisers)}</dd>\n")
    add("</dl>\n")
    if facts.summary:
        add(f'<p class="p-summary">{h(facts.summary)}</p>\n')
    if past and facts.has_body:
        add('<p><a href="')
        link()
        add(f'">Read the report: {title}</a></p>\n')
    add("</article>\n")
    link()
    return parts
