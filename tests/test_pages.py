"""The static site: strict HTML, links that resolve, structured data, escaping, host files."""

from __future__ import annotations

import json
import os
import posixpath
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import html5lib
import lxml.html
import pytest

from eventfeed import paths
from eventfeed.build import Artifacts, compile_site
from eventfeed.load import load_site

from .conftest import SiteDir

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "pages"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
SITE_URL = "https://example.org/untfsse-events/"


def build(events: Path, as_of: date) -> Artifacts:
    return compile_site(load_site(events), None, NOW, as_of=as_of)


@pytest.fixture(scope="module")
def shipped() -> Artifacts:
    return build(ROOT / "events", date(2022, 12, 10))


def pages(artifacts: Artifacts) -> list[str]:
    return [p for p in artifacts if p.endswith(".html")]


def tree(artifacts: Artifacts, path: str) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(artifacts[path])


def target_of(url: str, page: str) -> str | None:
    """The path in out/ a link points to, or None for links to other sites."""
    if url.startswith("webcal://"):
        url = "https://" + url.removeprefix("webcal://")
    if url.startswith(SITE_URL):
        return url.removeprefix(SITE_URL).split("#")[0] or paths.INDEX
    if urlsplit(url).scheme or url.startswith("//"):
        return None
    path = url.split("#")[0]
    if not path:
        return page
    return posixpath.normpath(posixpath.join(posixpath.dirname(page), path))


def test_every_page_is_strict_html5(shipped: Artifacts) -> None:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    for path in pages(shipped):
        try:
            parser.parse(shipped[path])
        except html5lib.html5parser.ParseError as exc:
            pytest.fail(f"{path}: {exc}")


def test_strict_parser_catches_an_unclosed_tag() -> None:
    parser = html5lib.HTMLParser(strict=True)
    with pytest.raises(html5lib.html5parser.ParseError):
        parser.parse(b"<!DOCTYPE html><html lang=en><title>x</title><div><p>open")


def test_site_files_are_written(shipped: Artifacts) -> None:
    ids = sorted(p.removeprefix("events/").removesuffix(".md") for p in _record_names())
    expected = {"index.html", "404.html", "style.css", "icon.svg", ".nojekyll", "_headers"}
    expected |= {paths.event_page(i) for i in ids}
    expected |= {"collections/task-force.html", "collections/webinars.html"}
    assert expected <= set(shipped)
    assert shipped[".nojekyll"] == b""
    site_files = {p for p in shipped if p.endswith((".html", ".css", ".svg")) or p in expected}
    assert site_files == expected


def _record_names() -> list[str]:
    return [p.name for p in (ROOT / "events").rglob("*.md") if p.name != "README.md"]


def test_internal_links_and_subscriptions_resolve(shipped: Artifacts) -> None:
    checked = 0
    for page in pages(shipped):
        doc = tree(shipped, page)
        for element, attribute, url, _pos in doc.iterlinks():
            if element.tag in ("data",) or attribute not in ("href", "src"):
                continue
            target = target_of(url, page)
            if target is None:
                continue
            assert target in shipped, f"{page}: {url} -> {target} is not built"
            checked += 1
    assert checked > 200


def test_relative_links_from_event_pages(shipped: Artifacts) -> None:
    doc = tree(shipped, "events/untfsse-41st-meeting.html")
    assert doc.xpath("//link[@rel='stylesheet']/@href") == ["../style.css"]
    assert doc.xpath("//link[@rel='alternate']/@href") == [
        "../feeds/atom.xml",
        "../feeds/rss.xml",
        "../feeds/feed.json",
    ]
    assert doc.xpath("//link[@rel='alternate']/@type") == [
        "application/atom+xml",
        "application/rss+xml",
        "application/feed+json",
    ]
    assert doc.xpath("//a[@download]/@href") == ["untfsse-41st-meeting.ics"]


def test_collection_page_discovers_its_own_feeds_first(shipped: Artifacts) -> None:
    doc = tree(shipped, "collections/webinars.html")
    assert doc.xpath("//link[@rel='alternate']/@href")[:3] == [
        "../feeds/webinars/atom.xml",
        "../feeds/webinars/rss.xml",
        "../feeds/webinars/feed.json",
    ]
    titles = [a.text_content() for a in doc.xpath("//a[@class='button']")]
    assert titles == ["Subscribe to “Webinars” in your calendar app"]
    assert doc.xpath("//a[@class='button']/@href") == [
        "webcal://example.org/untfsse-events/calendars/webinars.ics"
    ]
    assert "https://example.org/untfsse-events/calendars/webinars.ics" in doc.xpath("//a/@href")


def test_index_subscribe_section(shipped: Artifacts) -> None:
    doc = tree(shipped, "index.html")
    section = doc.get_element_by_id("subscribe").getparent()
    hrefs = section.xpath(".//a/@href")
    assert "webcal://example.org/untfsse-events/calendar.ics" in hrefs
    assert "https://example.org/untfsse-events/calendar.ics" in hrefs
    assert "webcal://example.org/untfsse-events/calendars/kind/webinar.ics" in hrefs
    text = section.text_content()
    for client in ("Google Calendar", "From URL", "Apple Calendar", "Outlook", "Thunderbird"):
        assert client in text


def test_upcoming_and_past_split_by_as_of(shipped: Artifacts) -> None:
    doc = tree(shipped, "index.html")

    def titles(section_id: str) -> list[str]:
        section = doc.get_element_by_id(section_id).getparent()
        return [" ".join(h.text_content().split()) for h in section.xpath(".//h4")]

    def groups(section_id: str) -> list[str]:
        section = doc.get_element_by_id(section_id).getparent()
        return [h.text_content() for h in section.xpath(".//h3")]

    assert groups("upcoming") == ["December 2022", "January 2023"]
    assert titles("upcoming") == [
        "How can the international recognition of SSE help achieve the SDGs through social "
        "and inclusive innovation?",
        "Accelerating Progress toward the SDGs through the SSE",
        "UNTFSSE monthly coordination call",
    ]
    assert groups("past") == ["2022", "2020"]
    assert titles("past") == [
        "Trabajo decente y ESS en América Latina y el Caribe: Avances y desafíos a partir de "
        "la Resolución de la 110ª CIT de la OIT",
        "41st regular meeting of the UN Inter-Agency Task Force on SSE",
        "Kick-off meeting for the OECD Recommendation on the SSE and Social Innovation",
        "Co-construction of SSE public policies: From the local to the global",
    ]


def test_json_ld_of_every_event_matches_its_record(shipped: Artifacts) -> None:
    site = load_site(ROOT / "events")
    for event in site.events:
        doc = tree(shipped, paths.event_page(event.id))
        (script,) = doc.xpath("//script[@type='application/ld+json']")
        data = json.loads(script.text)
        url = SITE_URL + paths.event_page(event.id)
        assert data["@type"] == "Event"
        assert data["name"] == event.record.title
        assert data["url"] == url
        assert data["inLanguage"] == event.language
        start = event.start
        assert data["startDate"] == start.isoformat()
        organisers = [o["name"] for o in data.get("organizer", [])]
        assert organisers == [o.name for o in event.organizers]
        # h-event carries the same start
        assert (
            doc.xpath("//*[contains(@class,'h-event')]//time[@class='dt-start']/@datetime")[0]
            == data["startDate"]
        )


def test_json_ld_of_a_hybrid_event(shipped: Artifacts) -> None:
    doc = tree(shipped, "events/accelerating-sdgs-through-sse-bangkok.html")
    data = json.loads(doc.xpath("//script[@type='application/ld+json']")[0].text)
    assert data["eventAttendanceMode"] == "https://schema.org/MixedEventAttendanceMode"
    assert data["eventStatus"] == "https://schema.org/EventScheduled"
    assert data["startDate"] == "2022-12-14"
    assert data["endDate"] == "2022-12-14"
    assert data["location"] == [
        {
            "@type": "Place",
            "name": "United Nations Conference Centre",
            "address": {
                "@type": "PostalAddress",
                "addressLocality": "Bangkok",
                "addressCountry": "TH",
            },
        },
        {
            "@type": "VirtualLocation",
            "name": "Livestream",
            "url": SITE_URL + "events/accelerating-sdgs-through-sse-bangkok.html",
        },
    ]
    assert data["organizer"] == [
        {
            "@type": "Organization",
            "name": "Economic and Social Commission for Asia and the Pacific",
            "url": "https://www.unescap.org/",
        }
    ]


def test_headers_file(shipped: Artifacts) -> None:
    text = shipped["_headers"].decode()
    blocks = {}
    for line in text.splitlines():
        if line.startswith("/"):
            current = line
        elif line.startswith("  Content-Type: "):
            blocks[current] = line.removeprefix("  Content-Type: ")
    assert blocks == {
        "/calendar.ics": "text/calendar; charset=utf-8",
        "/calendar.json": "application/calendar+json",
        "/calendars/*": "text/calendar; charset=utf-8",
        "/events/*.ics": "text/calendar; charset=utf-8",
        "/feeds/atom.xml": "application/atom+xml",
        "/feeds/rss.xml": "application/rss+xml",
        "/feeds/feed.json": "application/feed+json",
        "/feeds/task-force/atom.xml": "application/atom+xml",
        "/feeds/task-force/rss.xml": "application/rss+xml",
        "/feeds/task-force/feed.json": "application/feed+json",
        "/feeds/webinars/atom.xml": "application/atom+xml",
        "/feeds/webinars/rss.xml": "application/rss+xml",
        "/feeds/webinars/feed.json": "application/feed+json",
    }
    # every built calendar is covered by one of the rules
    for path in shipped:
        if path.endswith(".ics"):
            assert path == "calendar.ics" or path.startswith(("calendars/", "events/"))


def test_not_found_page_works_at_any_depth(shipped: Artifacts) -> None:
    doc = tree(shipped, "404.html")
    assert doc.xpath("//link[@rel='stylesheet']") == []
    assert doc.xpath("//style")
    for url in doc.xpath("//a/@href | //link/@href"):
        assert url.startswith(("https://", "#")), url


def test_pages_are_reproducible(shipped: Artifacts) -> None:
    again = build(ROOT / "events", date(2022, 12, 10))
    assert {p: again[p] for p in pages(again)} == {p: shipped[p] for p in pages(shipped)}


def test_golden_pages(shipped: Artifacts) -> None:
    names = ["index.html", "events/untfsse-coordination-calls.html", "_headers"]
    if os.environ.get("EVENTFEED_UPDATE_GOLDEN") == "1":
        for name in names:
            target = GOLDEN / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(shipped[name])
    for name in names:
        assert shipped[name].decode() == (GOLDEN / name).read_text(encoding="utf-8"), name


# --- add to calendar links ---------------------------------------------------------------


def link_query(doc: lxml.html.HtmlElement, prefix: str) -> dict[str, list[str]]:
    (url,) = [u for u in doc.xpath("//a/@href") if u.startswith(prefix)]
    return parse_qs(urlsplit(url).query, strict_parsing=True)


def test_google_and_outlook_links_of_a_timed_event(site: SiteDir) -> None:
    site.record(
        "talk.md",
        """\
        ---
        title: Talk & questions
        kind: webinar
        start: 2023-07-05T15:00
        end: 2023-07-05T16:30
        timezone: America/New_York
        online: {url: "https://example.org/join?id=1&x=2", platform: Zoom}
        ---
        Body text.
        """,
    )
    artifacts = build(site.events, date(2023, 7, 1))
    doc = tree(artifacts, "events/talk.html")
    google = link_query(doc, "https://calendar.google.com/calendar/render?")
    page = "https://events.example.org/sub/events/talk.html"
    assert google == {
        "action": ["TEMPLATE"],
        "text": ["Talk & questions"],
        "dates": ["20230705T190000Z/20230705T203000Z"],
        "details": [
            f"Body text.\n\nJoin online: https://example.org/join?id=1&x=2\n\nDetails: {page}"
        ],
        "location": ["https://example.org/join?id=1&x=2"],
        "ctz": ["America/New_York"],
    }
    outlook = link_query(doc, "https://outlook.office.com/calendar/0/deeplink/compose?")
    assert outlook == {
        "path": ["/calendar/action/compose"],
        "rru": ["addevent"],
        "subject": ["Talk & questions"],
        "startdt": ["2023-07-05T15:00:00-04:00"],
        "enddt": ["2023-07-05T16:30:00-04:00"],
        "body": google["details"],
        "location": ["https://example.org/join?id=1&x=2"],
    }
    live = link_query(doc, "https://outlook.live.com/calendar/0/deeplink/compose?")
    assert live == outlook


def test_google_and_outlook_links_of_an_all_day_event(site: SiteDir) -> None:
    site.record(
        "forum.md",
        """\
        ---
        title: Forum
        kind: meeting
        status: postponed
        start: 2023-07-05
        end: 2023-07-07
        location: {venue: Palais des Nations, city: Geneva, country: CH, lat: 46.2265, lon: 6.1406}
        ---
        """,
    )
    artifacts = build(site.events, date(2023, 7, 1))
    doc = tree(artifacts, "events/forum.html")
    google = link_query(doc, "https://calendar.google.com/")
    assert google["dates"] == ["20230705/20230708"]
    assert google["location"] == ["Palais des Nations, Geneva, CH"]
    outlook = link_query(doc, "https://outlook.office.com/")
    assert (outlook["startdt"], outlook["enddt"], outlook["allday"]) == (
        ["2023-07-05"],
        ["2023-07-08"],
        ["true"],
    )
    data = json.loads(doc.xpath("//script[@type='application/ld+json']")[0].text)
    assert data["eventStatus"] == "https://schema.org/EventPostponed"
    assert data["eventAttendanceMode"] == "https://schema.org/OfflineEventAttendanceMode"
    assert (data["startDate"], data["endDate"]) == ("2023-07-05", "2023-07-07")
    assert data["location"]["geo"] == {
        "@type": "GeoCoordinates",
        "latitude": 46.2265,
        "longitude": 6.1406,
    }
    banner = doc.xpath("//p[contains(@class,'banner')]")[0].text_content()
    assert banner.startswith("Postponed.")
    listing = tree(artifacts, "index.html")
    badge = listing.xpath("//*[contains(@class,'status-postponed')]")[0]
    assert badge.text_content() == "Postponed"


# --- escaping ------------------------------------------------------------------------------

EVIL = "<b>x</b><script>alert(1)</script>\"'&amp;"


def test_html_in_every_text_field_is_escaped(site: SiteDir) -> None:
    evil = json.dumps(EVIL)
    settings = (site.events / "site.yaml").read_text()
    settings = settings.replace("title: Test events", f"title: {evil}")
    settings = settings.replace("description: Events for tests.", f"description: {evil}")
    settings = settings.replace("name: Test Secretariat", f"name: {evil}")
    settings = settings.replace(
        "    title: Webinars", f"    title: {evil}\n    description: {evil}"
    )
    settings = settings.replace("name: International Labour Organization", f"name: {evil}")
    (site.events / "site.yaml").write_text(settings)
    site.record(
        "evil.md",
        f"""\
        ---
        title: {evil}
        kind: webinar
        status: cancelled
        start: 2023-07-05T15:00
        rrule: FREQ=WEEKLY;COUNT=2
        overrides:
          - occurrence: 2023-07-12T15:00
            title: {evil}
            note: {evil}
        location: {{venue: {evil}, address: {evil}, city: {evil}, country: CH}}
        online: {{url: "https://example.org/a?b=1&c=2", platform: {evil}}}
        organizers: [ilo, {{name: {evil}}}]
        partners: [{{name: {evil}}}]
        speakers: [{{name: {evil}, role: {evil}, affiliation: {evil}}}]
        links:
          documents: [{{title: {evil}, url: "https://example.org/d"}}]
        ---
        Plain <script>alert(1)</script> <img src=x onerror=alert(2)> [link](javascript:alert(3))
        """,
    )
    artifacts = build(site.events, date(2023, 7, 1))
    for path in pages(artifacts):
        html = artifacts[path].decode()
        assert "<b>x</b>" not in html, path
        assert "alert(1)</script>" not in html, path
        assert "onerror" not in html, path
        doc = lxml.html.fromstring(artifacts[path])
        scripts = doc.xpath("//script")
        assert [s.get("type") for s in scripts] == (
            ["application/ld+json"] if path == "events/evil.html" else []
        )
        assert doc.xpath("//b") == []
        assert doc.xpath("//@onerror") == []
        assert [
            u for u in doc.xpath("//@href | //@src") if u.lower().startswith("javascript")
        ] == []
    doc = tree(artifacts, "events/evil.html")
    assert doc.xpath("//h1")[0].text_content() == EVIL
    data = json.loads(doc.xpath("//script")[0].text)
    assert data["name"] == EVIL
    assert data["location"][0]["name"] == EVIL
    assert data["eventStatus"] == "https://schema.org/EventCancelled"
    text = doc.text_content()
    assert text.count(EVIL) >= 10
