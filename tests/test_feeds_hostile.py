"""Hostile Markdown and text in feeds: only safe HTML comes out, and every feed still parses.

The HTML is checked by structure (tags, attributes, URL schemes as an HTML parser sees them),
not by searching for substrings: ``javascript:`` shown as text is harmless, a link to it is not.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from eventfeed.build import BuildContext
from eventfeed.feeds import compile_feeds, sanitise
from eventfeed.load import Site, load_site
from eventfeed.markdown import ALLOWED_ATTRIBUTES, ALLOWED_TAGS
from eventfeed.state import advance

from .test_feeds import json_feed_problems

FIXTURE = Path(__file__).parent / "fixtures" / "feed-events"
NOW = datetime(2023, 2, 1, 12, 0, tzinfo=UTC)
AS_OF = date(2023, 2, 1)
ATOM = "{http://www.w3.org/2005/Atom}"
REPORT = "tag:events.example.org,2022:event/regional-meeting-report"


class Markup(HTMLParser):
    """Every tag, attribute and link of an HTML fragment, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def unsafe(fragment: str) -> list[str]:
    """What a sanitised fragment must not contain: the empty list when it is safe."""
    parser = Markup()
    parser.feed(fragment)
    parser.close()
    problems = []
    for tag, attrs in parser.tags:
        if tag not in ALLOWED_TAGS:
            problems.append(f"tag {tag}")
        allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ({"rel"} if tag == "a" else set())
        problems += [f"{tag} {name}=" for name in attrs if name not in allowed]
        for name in ("href", "src"):
            value = attrs.get(name)
            if value is not None and urlsplit(value).scheme not in ("http", "https", "mailto"):
                problems.append(f"{tag} {name}={value}")
    return problems


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(FIXTURE, today=AS_OF)


def feeds_with(site: Site, body: str, title: str | None = None) -> dict[str, bytes]:
    """The feeds of the fixture with the report's body (and title) replaced, unvalidated."""
    events = []
    for event in site.events:
        if event.id == "regional-meeting-report":
            record = event.record.model_copy(update={"title": title or event.record.title})
            event = dataclasses.replace(event, body=body, record=record)
        events.append(event)
    changed = dataclasses.replace(site, events=tuple(events))
    context = BuildContext(site=changed, history=advance(None, changed.events, NOW), as_of=AS_OF)
    return dict(compile_feeds(context))


def contents(feeds: dict[str, bytes]) -> dict[str, str]:
    """The report's HTML as written in each format, read with lxml and json."""
    atom = etree.fromstring(feeds["feeds/atom.xml"])
    rss = etree.fromstring(feeds["feeds/rss.xml"])
    items = json.loads(feeds["feeds/feed.json"])["items"]
    return {
        "atom": next(
            str(e.findtext(f"{ATOM}content"))
            for e in atom.iter(f"{ATOM}entry")
            if e.findtext(f"{ATOM}id") == REPORT
        ),
        "rss": next(
            str(i.findtext("description")) for i in rss.iter("item") if i.findtext("guid") == REPORT
        ),
        "json": next(i["content_html"] for i in items if i["id"] == REPORT),
    }


def test_fixture_report_is_sanitised_with_absolute_links(site: Site) -> None:
    feeds = feeds_with(site, next(e.body for e in site.events if e.id == "regional-meeting-report"))
    html = contents(feeds)
    assert html["atom"] == html["rss"] == html["json"]
    assert unsafe(html["atom"]) == []
    parser = Markup()
    parser.feed(html["atom"])
    links = [attrs.get("href") or attrs.get("src") for _, attrs in parser.tags if _ in ("a", "img")]
    base = "https://events.example.org/"
    assert links == [
        f"{base}docs/agenda.html",  # root-relative: against the host
        f"{base}network/notes/regional-2022.html",  # relative: against the base URL
        f"{base}network/img/group.jpg",
        f"{base}network/x",  # the <img src=x onerror=...>, without its handler
        None,  # [a javascript link](javascript:...): its text, without the href
        None,  # [a data link](data:text/html...): likewise
        None,  # the raw <a href="JaVaScRiPt:..." onclick=...>, without href and handler
        "https://meet.example.org/regional",
        "https://video.example.org/watch?v=regional-2022",
        f"{base}network/events/regional-meeting-report.html",
        f"{base}network/events/regional-meeting-report.ics",
    ]
    lowered = html["atom"].lower()
    for gone in ("<script", 'alert("body', "onerror", "onclick", "onmouseover", "<iframe"):
        assert gone not in lowered
    assert "<style" not in lowered
    assert "display: none" not in lowered
    assert "<b>bold in a raw block</b>" in html["atom"]


HOSTILE = {
    "script": "<script>alert(1)</script>",
    "event handler": '<img src="a.png" onerror="alert(1)">',
    "javascript link": "[x](javascript:alert(1))",
    "javascript raw link": '<a href=" JaVaScRiPt:alert(1)">x</a>',
    "entity-encoded javascript": '<a href="&#106;avascript:alert(1)">x</a>',
    "data link": "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "data image": '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "raw block": '<div onclick="alert(1)">\n<iframe src="https://evil.example.org/"></iframe>\n</div>',
    "svg": "<svg><script>alert(1)</script></svg>",
    "style": '<p style="background:url(javascript:alert(1))">x</p>',
    "form": '<form action="https://evil.example.org/"><input name="q"></form>',
    "comment and cdata": "<!-- <script>x</script> --> <![CDATA[ <script> ]]>",
    "control characters": "a\x01b\x0bc\ufffed\x85e",
    "markdown autolink": "<javascript:alert(1)>",
}


@pytest.mark.parametrize("body", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_markdown_never_reaches_a_feed(site: Site, body: str) -> None:
    feeds = feeds_with(site, body)
    for data in (feeds["feeds/atom.xml"], feeds["feeds/rss.xml"]):
        assert feedparser.parse(data).bozo == 0
    html = contents(feeds)
    assert html["atom"] == html["rss"] == html["json"]
    assert unsafe(html["atom"]) == []
    assert sanitise(html["atom"]) == html["atom"]  # nothing left for the sanitiser to remove
    assert not any(c in html["atom"] for c in "\x01\x0b\ufffe\x85")


FRAGMENTS = [*HOSTILE.values(), "\n\n", "&", "&amp;", "<", ">", '"', "'", "*", "[", "](", ")"]
FRAGMENTS += ["<div>", "</div>", "<a href=", "![i](", "`", "\u2028", "é", "😀"]


@settings(derandomize=True, max_examples=25, deadline=None)
@given(
    body=st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=10).map("".join),
    title=st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
        min_size=1,
        max_size=40,
    ).filter(str.strip),
)
def test_any_body_and_title_give_parseable_safe_feeds(site: Site, body: str, title: str) -> None:
    feeds = feeds_with(site, body, title)
    for data in (feeds["feeds/atom.xml"], feeds["feeds/rss.xml"]):
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0
        assert REPORT in [e.id for e in parsed.entries]
    assert json_feed_problems(json.loads(feeds["feeds/feed.json"])) == []
    html = contents(feeds)
    assert html["atom"] == html["rss"] == html["json"]
    assert unsafe(html["atom"]) == []
