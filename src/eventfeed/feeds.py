"""Atom 1.0 (RFC 4287), RSS 2.0 and JSON Feed 1.1 news feeds, for the site and each collection.

One entry per event. The decisions that make readers behave:

* **Identity.** An entry's id is a ``tag:`` URI (RFC 4151),
  ``tag:<domain>,<year>:event/<id>``, where the year is the UTC year of the event's ``created``
  time in the build history. ``created`` is fixed the first time an event is built and never
  moves afterwards, so the id is stable forever, also when ``published`` is corrected later.
  RSS carries the same string as ``guid isPermaLink="false"``; JSON Feed as the item ``id``. An
  event has the same id in the site feed and in every collection feed. A feed's own id (Atom)
  is its URL.
* **Time.** ``published`` is the history's ``published`` (the record's ``published``, else its
  first appearance); ``updated`` is the history's ``last_modified`` (its last real edit), never
  earlier than ``published``. A feed's ``updated`` is the newest ``updated`` of the entries it
  contains; a feed without entries says 1970-01-01T00:00:00Z. No clock is read: rebuilding
  unchanged records gives the same bytes. All times are written in UTC.
* **Order.** Newest first by ``published``; entries published at the same moment are ordered by
  event id (a before b). feedgen prepends by default, which reverses a list; entries are
  appended here, in the final order.
* **Size.** The newest ``feeds.max_entries`` entries (settings, default 50) per feed.
* **Language.** The feed's language is the site's; an entry in another language says so with
  ``xml:lang`` on the Atom entry, ``dc:language`` on the RSS item and ``language`` on every JSON
  Feed item.
* **Recordings.** A recording whose URL names a media file (by its extension, see
  :data:`MEDIA_TYPES`) is an enclosure (Atom ``rel="enclosure"``, RSS ``enclosure``, JSON Feed
  ``attachments``): podcast-style clients fetch enclosures, which is right for an audio or
  video file. The length is unknown without fetching it, so Atom omits it (it is advisory) and
  RSS says 0, as the RSS Advisory Board recommends. A recording on a web page (a video site)
  is a ``rel="related"`` link instead: a client must not try to download a web page as media.
* **Content.** The body as sanitised HTML with absolute links (:func:`markdown.to_html`), then a
  short block with status, when, where and the links (join, registration, recording, page,
  documents, the event's page and its ``.ics``), built with escaping and sanitised once more
  with the same allow-list. Characters XML cannot carry are dropped, so no record breaks a feed.
"""

from __future__ import annotations

import functools
import heapq
import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import nh3
from feedgen.feed import FeedGenerator

from . import paths
from .build import BuildContext
from .event import Event, microseconds
from .markdown import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES, to_html
from .model import Settings
from .text import status_label, when_text, where_text

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
GENERATOR = "eventfeed"
#: The ``updated`` of a feed without entries: fixed, so an empty feed never changes.
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)
DC_NAMESPACE = "http://purl.org/dc/elements/1.1/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

#: Recording URLs ending in one of these are media files and become enclosures.
MEDIA_TYPES = {
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".ogv": "video/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".webm": "video/webm",
}

# Characters XML 1.0 forbids, plus C1 controls (allowed but discouraged, never meant in text).
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Drop characters that cannot appear in an XML document, so no record can break a feed."""
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class Link:
    href: str
    title: str


@dataclass(frozen=True)
class Enclosure:
    href: str
    media_type: str


@dataclass(frozen=True)
class Entry:
    id: str
    url: str
    title: str
    content_html: str
    published: datetime
    updated: datetime
    language: str
    categories: tuple[str, ...]
    enclosure: Enclosure | None
    related: tuple[Link, ...]


@dataclass(frozen=True)
class Feed:
    collection: str | None
    title: str
    subtitle: str
    home_page_url: str
    entries: tuple[Entry, ...]

    @property
    def updated(self) -> datetime:
        return max((e.updated for e in self.entries), default=EMPTY_FEED_UPDATED)


def compile_feeds(context: BuildContext) -> Mapping[str, bytes]:
    """Every feed in every format: ``feeds/atom.xml`` ... and ``feeds/<collection>/...``."""
    settings = context.settings
    limit = settings.feeds.max_entries
    rendered: dict[str, Entry] = {}

    def entries(events: Iterable[Event]) -> tuple[Entry, ...]:
        # Only the entries a feed shows are rendered: a large archive costs a sort, not HTML.
        chosen = newest(events, context, limit)
        for event in chosen:
            if event.id not in rendered:
                rendered[event.id] = entry_for(event, context)
        return tuple(rendered[event.id] for event in chosen)

    feeds = [
        Feed(
            collection=None,
            title=settings.title,
            subtitle=settings.description.strip(),
            home_page_url=settings.site_url,
            entries=entries(context.events),
        )
    ]
    for name in sorted(settings.collections):
        spec = settings.collections[name]
        feeds.append(
            Feed(
                collection=name,
                title=f"{settings.title}: {spec.title}",
                subtitle=(spec.description or settings.description).strip(),
                home_page_url=settings.site_url + paths.collection_page(name),
                entries=entries(context.collection(name)),
            )
        )
    files: dict[str, bytes] = {}
    for feed in feeds:
        files[paths.feed("atom", feed.collection)] = atom_bytes(feed, settings)
        files[paths.feed("rss", feed.collection)] = rss_bytes(feed, settings)
        files[paths.feed("json", feed.collection)] = json_feed_bytes(feed, settings)
    return files


def newest(events: Iterable[Event], context: BuildContext, limit: int | None = None) -> list[Event]:
    """Newest first by published; the same moment falls back to the id, ascending. With
    ``limit``, only that many, picked out instead of sorting every event (with 100,000
    events, two sorts for each of a site's feeds)."""
    history = context.history

    def order(event: Event) -> tuple[int, str]:
        return -microseconds(history[event.id].published), event.id

    if limit is None:
        return sorted(events, key=order)
    return heapq.nsmallest(limit, events, key=order)


# --- one entry -----------------------------------------------------------------------------


def entry_id(event: Event, created: datetime, settings: Settings) -> str:
    """``tag:<domain>,<year>:event/<id>`` (RFC 4151); the year is fixed at first build."""
    return f"tag:{settings.domain},{created.astimezone(UTC).year}:event/{event.id}"


def entry_for(event: Event, context: BuildContext) -> Entry:
    settings = context.settings
    state = context.history[event.id]
    published = state.published.astimezone(UTC)
    updated = max(state.last_modified.astimezone(UTC), published)
    label = status_label(event)
    title = f"{label}: {event.record.title}" if label else event.record.title
    recording = event.record.links.recording
    enclosure = None
    related: tuple[Link, ...] = ()
    if recording:
        media_type = media_type_of(recording)
        if media_type:
            enclosure = Enclosure(recording, media_type)
        else:
            related = (Link(recording, "Recording"),)
    return Entry(
        id=entry_id(event, state.created, settings),
        url=settings.site_url + paths.event_page(event.id),
        title=xml_safe(title),
        content_html=content_html(event, settings),
        published=published,
        updated=updated,
        language=event.language,
        categories=event.categories,
        enclosure=enclosure,
        related=related,
    )


def media_type_of(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    for suffix, media_type in MEDIA_TYPES.items():
        if path.endswith(suffix):
            return media_type
    return None


def content_html(event: Event, settings: Settings) -> str:
    """The sanitised body, then the details block; the whole sanitised again."""
    body = to_html(event.body, settings.site_url)
    return xml_safe(sanitise(body + details_html(event, settings)))


def details_html(event: Event, settings: Settings) -> str:
    """Status, when, where and the links, every value escaped."""
    rec = event.record
    esc = html.escape
    facts = []
    if label := status_label(event):
        facts.append(("Status", label))
    facts.append(("When", when_text(event)))
    if where := where_text(event):
        facts.append(("Where", where))
    links: list[tuple[str, str]] = []
    if rec.online and rec.online.url:
        links.append(("Join online", rec.online.url))
    if rec.links.registration:
        links.append(("Register", rec.links.registration))
    if rec.links.recording:
        links.append(("Recording", rec.links.recording))
    if rec.links.page:
        links.append(("More information", rec.links.page))
    links.extend((doc.title, doc.url) for doc in rec.links.documents)
    links.append(("Event page", settings.site_url + paths.event_page(event.id)))
    links.append(("Add to your calendar (.ics)", settings.site_url + paths.event_ics(event.id)))
    lines = "<br>\n".join(f"<strong>{esc(k)}:</strong> {esc(v)}" for k, v in facts)
    items = "".join(f'<li><a href="{esc(url)}">{esc(text)}</a></li>\n' for text, url in links)
    return f"<hr>\n<p>{lines}</p>\n<ul>\n{items}</ul>\n"


def sanitise(fragment: str) -> str:
    cleaned: str = _cleaner().clean(fragment)
    return cleaned


@functools.cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


# --- Atom and RSS (feedgen) ------------------------------------------------------------------


#: an lxml element, as feedgen hands it to extensions
Element = Any


class _NoFeedExtension:
    """feedgen's extension protocol (duck-typed), feed side: nothing to add."""

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_atom(self, feed: Element) -> Element:
        return feed

    def extend_rss(self, feed: Element) -> Element:
        return feed


class _DublinCoreNamespace(_NoFeedExtension):
    def extend_ns(self) -> dict[str, str]:
        return {"dc": DC_NAMESPACE}


class _EntryExtras(_NoFeedExtension):
    """What feedgen cannot write on an entry: its links with attributes, and its language.

    feedgen 1.0 loses ``rel``, ``type`` and ``title`` of entry links in Atom (it reads them from
    the new element instead of the link data), which would turn an enclosure into a second
    ``alternate`` link; so Atom entry links are written here. An entry in another language than
    the feed's gets ``xml:lang`` (XML 1.0 section 2.12, allowed on any Atom element by RFC 4287
    section 2); RSS 2.0 has no item language, so the item gets ``dc:language``.
    """

    def __init__(self) -> None:
        self.language: str | None = None
        self.links: list[dict[str, str]] = []

    def extend_atom(self, feed: Element) -> Element:
        if self.language:
            feed.set(XML_LANG, self.language)
        for attributes in self.links:
            feed.append(feed.makeelement("link", attributes))
        return feed

    def extend_rss(self, feed: Element) -> Element:
        if self.language:
            language = feed.makeelement(f"{{{DC_NAMESPACE}}}language", {})
            language.text = self.language
            feed.append(language)
        return feed


def _entry_links(entry: Entry) -> list[dict[str, str]]:
    links = [{"href": entry.url, "rel": "alternate", "type": "text/html"}]
    links.extend(
        {"href": link.href, "rel": "related", "type": "text/html", "title": link.title}
        for link in entry.related
    )
    if entry.enclosure:
        links.append(
            {"href": entry.enclosure.href, "rel": "enclosure", "type": entry.enclosure.media_type}
        )
    return links


def _generator(feed: Feed, settings: Settings, kind: str) -> FeedGenerator:
    self_url = settings.site_url + paths.feed(kind, feed.collection)
    fg = FeedGenerator()
    fg.id(self_url)
    fg.title(xml_safe(feed.title))
    # RSS requires a description; Atom's subtitle is the same field in feedgen.
    fg.subtitle(xml_safe(feed.subtitle or feed.title))
    media_type = "application/atom+xml" if kind == "atom" else "application/rss+xml"
    fg.link(href=self_url, rel="self", type=media_type)
    # RSS's channel link is the last link given: the site, not the feed.
    fg.link(href=feed.home_page_url, rel="alternate", type="text/html")
    fg.language(settings.language)
    fg.author(_author(settings))
    fg.generator(GENERATOR)
    fg.updated(feed.updated)
    if settings.feeds.icon:
        fg.icon(settings.feeds.icon)
    if settings.feeds.logo:
        fg.logo(settings.feeds.logo)
    if kind == "atom":
        fg.register_extension("extras", _NoFeedExtension, _EntryExtras, rss=False)
    elif any(_differs(e.language, settings.language) for e in feed.entries):
        fg.register_extension("extras", _DublinCoreNamespace, _EntryExtras, atom=False)
    else:
        fg.register_extension("extras", _NoFeedExtension, _EntryExtras, atom=False)
    for entry in feed.entries:
        fe = fg.add_entry(order="append")  # the default, prepend, would reverse our order
        fe.id(entry.id)
        fe.title(entry.title)
        if kind == "atom":
            fe.extras.links = _entry_links(entry)
        else:
            fe.link(href=entry.url, rel="alternate")
            if entry.enclosure:
                fe.enclosure(entry.enclosure.href, 0, entry.enclosure.media_type)
        fe.content(entry.content_html, type="html")
        fe.published(entry.published)
        fe.updated(entry.updated)
        fe.author(_author(settings))
        if entry.categories:
            fe.category([{"term": term} for term in entry.categories])
        if _differs(entry.language, settings.language):
            fe.extras.language = entry.language
    return fg


def _differs(language: str, feed_language: str) -> bool:
    return language.lower() != feed_language.lower()


def _author(settings: Settings) -> dict[str, str]:
    publisher = settings.publisher
    author = {"name": xml_safe(publisher.name)}
    if publisher.email:
        author["email"] = publisher.email
    if publisher.url:
        author["uri"] = publisher.url
    return author


def atom_bytes(feed: Feed, settings: Settings) -> bytes:
    data: bytes = _generator(feed, settings, "atom").atom_str(pretty=True, encoding="UTF-8")
    return data


def rss_bytes(feed: Feed, settings: Settings) -> bytes:
    data: bytes = _generator(feed, settings, "rss").rss_str(pretty=True, encoding="UTF-8")
    return hex_references(data)


_DESCRIPTION = re.compile(rb"(<description>.*?</description>)", re.DOTALL)
_HEX_REFERENCES = ((b"&amp;", b"&#x26;"), (b"&lt;", b"&#x3C;"), (b"&gt;", b"&#x3E;"))


def hex_references(document: bytes) -> bytes:
    """Write ``&``, ``<`` and ``>`` in RSS plain text as hexadecimal character references.

    RSS 2.0 never said which elements may hold HTML, so readers differ on ``&lt;`` in a title;
    the RSS Advisory Board's best practices (and the W3C validator) ask for ``&#x26;`` and
    ``&#x3C;`` in plain text. The two spellings are the same XML, so the document's meaning
    does not change. Item descriptions hold escaped HTML and keep the named forms (the
    channel's description, before the first item, is plain text).
    """
    head, marker, items = document.partition(b"<item>")
    parts = [head, marker, *_DESCRIPTION.split(items)]
    for index, part in enumerate(parts):
        if index < 2 or index % 2 == 0:  # odd parts after the head are item descriptions
            for named, hexadecimal in _HEX_REFERENCES:
                part = part.replace(named, hexadecimal)
            parts[index] = part
    return b"".join(parts)


# --- JSON Feed 1.1 -------------------------------------------------------------------------


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _json_authors(settings: Settings) -> list[dict[str, str]]:
    """JSON Feed authors have a name and a URL (a web page, else a mailto: link)."""
    publisher = settings.publisher
    author = {"name": publisher.name}
    if publisher.url:
        author["url"] = publisher.url
    elif publisher.email:
        author["url"] = f"mailto:{publisher.email}"
    return [author]


def json_feed_bytes(feed: Feed, settings: Settings) -> bytes:
    """JSON Feed 1.1; keys in the order the specification lists them, ``items`` last."""
    data: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": feed.title,
        "home_page_url": feed.home_page_url,
        "feed_url": settings.site_url + paths.feed("json", feed.collection),
    }
    if feed.subtitle:
        data["description"] = feed.subtitle
    if settings.feeds.icon:
        data["icon"] = settings.feeds.icon
        data["favicon"] = settings.feeds.icon
    data["authors"] = _json_authors(settings)
    data["language"] = settings.language
    data["items"] = [_json_item(entry, settings) for entry in feed.entries]
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode()


def _json_item(entry: Entry, settings: Settings) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry.id,
        "url": entry.url,
        "title": entry.title,
        "content_html": entry.content_html,
        "date_published": _rfc3339(entry.published),
        "date_modified": _rfc3339(entry.updated),
        "authors": _json_authors(settings),
    }
    if entry.categories:
        item["tags"] = list(entry.categories)
    item["language"] = entry.language
    if entry.enclosure:
        item["attachments"] = [
            {"url": entry.enclosure.href, "mime_type": entry.enclosure.media_type}
        ]
    return item
