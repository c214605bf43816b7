"""News feeds: golden files, read back with feedparser, JSON Feed 1.1 rules, history and order.

The fixture in ``tests/fixtures/feed-events`` has an English announcement, a Spanish webinar, a
cancelled meeting, a webinar whose recording is a media file, and a report whose recording is a
web page and whose body has relative links and hostile HTML. Two records share a ``published``
date, so the id tie-break shows in the order.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from eventfeed.build import Artifacts, compile_site
from eventfeed.feeds import hex_references, newest
from eventfeed.load import load_site
from eventfeed.state import Manifest, read_manifest

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "feed-events"
GOLDEN = HERE / "golden" / "feeds"
NOW = datetime(2023, 2, 1, 12, 0, tzinfo=UTC)
AS_OF = date(2023, 2, 1)
BASE = "https://events.example.org/network/"
ATOM = "{http://www.w3.org/2005/Atom}"

FEED_PATHS = [
    f"feeds/{collection}{name}"
    for collection in ("", "spanish/", "webinars/")
    for name in ("atom.xml", "feed.json", "rss.xml")
]

# (event id, id year, title, published, updated), newest first: the order every feed must keep.
ENTRIES = [
    (
        "annual-forum-announcement",
        2023,
        "Annual forum 2023 in Geneva",
        "2023-01-15T23:00:00+00:00",
        "2023-01-15T23:00:00+00:00",
    ),
    (
        "seminario-web-ess",
        2023,
        "Seminario web: la economía social y solidaria en América Latina",
        "2023-01-10T05:00:00+00:00",
        "2023-01-12T05:00:00+00:00",
    ),
    (
        "cancelled-coordination-meeting",
        2023,
        "Cancelled: Coordination meeting, February",
        "2023-01-04T23:00:00+00:00",
        "2023-01-19T23:00:00+00:00",
    ),
    # the next two share published; the tie-break is the id, ascending
    (
        "regional-meeting-report",
        2022,
        "Report: regional meeting <Europe> & partners",
        "2022-11-30T23:00:00+00:00",
        "2022-11-30T23:00:00+00:00",
    ),
    (
        "webinar-recording-available",
        2022,
        "Webinar on SSE statistics",
        "2022-11-30T23:00:00+00:00",
        "2022-11-30T23:00:00+00:00",
    ),
]
MEMBERS = {
    "": [e[0] for e in ENTRIES],
    "spanish/": ["seminario-web-ess"],
    "webinars/": ["seminario-web-ess", "webinar-recording-available"],
}


def tag(event_id: str) -> str:
    year = next(e[1] for e in ENTRIES if e[0] == event_id)
    return f"tag:events.example.org,{year}:event/{event_id}"


def build(
    events: Path = FIXTURE, previous: Manifest | None = None, now: datetime = NOW
) -> Artifacts:
    return compile_site(load_site(events, today=AS_OF), previous, now, as_of=AS_OF)


def feeds_of(artifacts: Artifacts) -> dict[str, bytes]:
    return {path: data for path, data in artifacts.items() if path.startswith("feeds/")}


def manifest_of(artifacts: Artifacts, folder: Path) -> Manifest:
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_bytes(artifacts["manifest.json"])
    manifest = read_manifest(folder)
    assert manifest is not None
    return manifest


@pytest.fixture(scope="module")
def built() -> dict[str, bytes]:
    return feeds_of(build())


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """A copy of the fixture to edit."""
    folder = tmp_path / "events"
    shutil.copytree(FIXTURE, folder)
    return folder


def parse(data: bytes) -> Any:
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def atom_content(data: bytes) -> dict[str, str]:
    """The HTML of each Atom entry as written (feedparser rewrites HTML while sanitising it)."""
    root = etree.fromstring(data)
    return {
        str(entry.findtext(f"{ATOM}id")): str(entry.findtext(f"{ATOM}content"))
        for entry in root.iter(f"{ATOM}entry")
    }


# --- golden files ----------------------------------------------------------------------------


def test_feeds_match_golden_files(built: dict[str, bytes]) -> None:
    """Regenerate with EVENTFEED_UPDATE_GOLDEN=1 and review ``git diff tests/golden``."""
    if os.environ.get("EVENTFEED_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for path, data in built.items():
            target = GOLDEN / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    expected = {
        p.relative_to(GOLDEN).as_posix(): p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()
    }
    assert sorted(built) == sorted(expected) == FEED_PATHS
    for path in FEED_PATHS:
        if built[path] != expected[path]:
            diff = difflib.unified_diff(
                expected[path].decode().splitlines(),
                built[path].decode().splitlines(),
                f"golden/{path}",
                f"built/{path}",
                lineterm="",
            )
            pytest.fail("\n".join(diff))


# --- independent reader: feedparser -----------------------------------------------------------


@pytest.mark.parametrize("collection", list(MEMBERS))
def test_feedparser_reads_atom_entries_in_order(built: dict[str, bytes], collection: str) -> None:
    parsed = parse(built[f"feeds/{collection}atom.xml"])
    assert parsed.version == "atom10"
    expected = [e for e in ENTRIES if e[0] in MEMBERS[collection]]
    got = [(e.id, e.title, e.published, e.updated, e.link) for e in parsed.entries]
    assert got == [
        (tag(i), title, published, updated, f"{BASE}events/{i}.html")
        for i, _, title, published, updated in expected
    ]
    # the feed's updated is its newest entry's, never the build time
    assert parsed.feed.updated == max(e[4] for e in expected)
    assert parsed.feed.language == "en"
    assert parsed.feed.generator == "eventfeed"
    assert parsed.feed.id == f"{BASE}feeds/{collection}atom.xml"
    links = {(link.rel, link.href) for link in parsed.feed.links}
    home = BASE + (f"collections/{collection.strip('/')}.html" if collection else "")
    assert links == {("self", f"{BASE}feeds/{collection}atom.xml"), ("alternate", home)}
    assert parsed.feed.icon == f"{BASE}icon.png"
    assert parsed.feed.author_detail == {
        "name": "Test Secretariat",
        "email": "secretariat@example.org",
        "href": BASE,
    }


@pytest.mark.parametrize("collection", list(MEMBERS))
def test_feedparser_reads_rss_items_in_order(built: dict[str, bytes], collection: str) -> None:
    parsed = parse(built[f"feeds/{collection}rss.xml"])
    assert parsed.version == "rss20"
    expected = [e for e in ENTRIES if e[0] in MEMBERS[collection]]
    got = [
        (e.id, e.title, datetime(*e.published_parsed[:6], tzinfo=UTC).isoformat(), e.link)
        for e in parsed.entries
    ]
    assert got == [
        (tag(i), title, published, f"{BASE}events/{i}.html")
        for i, _, title, published, _ in expected
    ]
    updated = datetime(*parsed.feed.updated_parsed[:6], tzinfo=UTC).isoformat()
    assert updated == max(e[4] for e in expected)
    home = BASE + (f"collections/{collection.strip('/')}.html" if collection else "")
    assert parsed.feed.link == home
    assert parsed.feed.language == "en"
    assert parsed.feed.image.href == f"{BASE}logo.png"
    assert [e.author for e in parsed.entries] == [
        "secretariat@example.org (Test Secretariat)"
    ] * len(expected)


def test_entry_content_categories_and_links(built: dict[str, bytes]) -> None:
    atom = {e.id: e for e in parse(built["feeds/atom.xml"]).entries}
    rss = {e.id: e for e in parse(built["feeds/rss.xml"]).entries}
    for entries in (atom, rss):
        forum = entries[tag("annual-forum-announcement")]
        assert [t.term for t in forum.tags] == ["conference", "europe", "forum", "annual"]
    forum = atom[tag("annual-forum-announcement")].content[0]
    assert forum.type == "text/html"
    assert rss[tag("annual-forum-announcement")].summary == forum.value
    assert atom_content(built["feeds/atom.xml"])[tag("annual-forum-announcement")] == (
        "<p>We are glad to announce the <strong>annual forum</strong> of the network, three days"
        " of sessions and\nmeetings in Geneva.</p>\n"
        "<p>Registration is open until 1 March.</p>\n"
        "<hr>\n"
        "<p><strong>When:</strong> Monday 20 March 2023 – Wednesday 22 March 2023 (all day)<br>\n"
        "<strong>Where:</strong> Palais des Nations, Geneva, CH</p>\n"
        "<ul>\n"
        '<li><a href="https://forms.example.org/forum-2023" rel="noopener noreferrer">'
        "Register</a></li>\n"
        '<li><a href="https://network.example.org/forum-2023" rel="noopener noreferrer">'
        "More information</a></li>\n"
        f'<li><a href="{BASE}events/annual-forum-announcement.html" rel="noopener noreferrer">'
        "Event page</a></li>\n"
        f'<li><a href="{BASE}events/annual-forum-announcement.ics" rel="noopener noreferrer">'
        "Add to your calendar (.ics)</a></li>\n"
        "</ul>\n"
    )
    content = atom_content(built["feeds/atom.xml"])
    cancelled = content[tag("cancelled-coordination-meeting")]
    assert "<p><strong>Status:</strong> Cancelled<br>" in cancelled.splitlines()
    seminar = content[tag("seminario-web-ess")]
    assert (
        "<p><strong>When:</strong> Thursday 9 February 2023, 16:00–17:30 (America/Bogota)<br>"
        in seminar.splitlines()
    )


def test_recording_is_an_enclosure_only_when_it_is_a_media_file(built: dict[str, bytes]) -> None:
    media = "https://media.example.org/webinars/sse-statistics.mp4"
    page = "https://video.example.org/watch?v=regional-2022"
    atom = {e.id: e for e in parse(built["feeds/atom.xml"]).entries}
    rss = {e.id: e for e in parse(built["feeds/rss.xml"]).entries}
    webinar, report = tag("webinar-recording-available"), tag("regional-meeting-report")
    assert [(link.rel, link.type, link.href) for link in atom[webinar].links] == [
        ("alternate", "text/html", f"{BASE}events/webinar-recording-available.html"),
        ("enclosure", "video/mp4", media),
    ]
    assert rss[webinar].enclosures == [{"href": media, "type": "video/mp4", "length": "0"}]
    assert [(link.rel, link.get("title"), link.href) for link in atom[report].links] == [
        ("alternate", None, f"{BASE}events/regional-meeting-report.html"),
        ("related", "Recording", page),
    ]
    assert atom[report].enclosures == rss[report].enclosures == []
    items = {i["id"]: i for i in json.loads(built["feeds/feed.json"])["items"]}
    assert items[webinar]["attachments"] == [{"url": media, "mime_type": "video/mp4"}]
    assert "attachments" not in items[report]


def test_entry_in_another_language_says_so(built: dict[str, bytes]) -> None:
    seminar = tag("seminario-web-ess")
    atom = parse(built["feeds/atom.xml"])
    assert {e.id: e.content[0].language for e in atom.entries} == {
        tag(e[0]): ("es" if e[0] == "seminario-web-ess" else "en") for e in ENTRIES
    }
    root = etree.fromstring(built["feeds/atom.xml"])
    marked = [
        (e.findtext(f"{ATOM}id"), e.get("{http://www.w3.org/XML/1998/namespace}lang"))
        for e in root.iter(f"{ATOM}entry")
        if e.get("{http://www.w3.org/XML/1998/namespace}lang")
    ]
    assert marked == [(seminar, "es")]
    rss = parse(built["feeds/rss.xml"])
    assert {e.id: e.get("language") for e in rss.entries} == {
        tag(e[0]): ("es" if e[0] == "seminario-web-ess" else None) for e in ENTRIES
    }
    items = json.loads(built["feeds/feed.json"])["items"]
    assert [(i["id"], i["language"]) for i in items] == [
        (tag(e[0]), "es" if e[0] == "seminario-web-ess" else "en") for e in ENTRIES
    ]


# --- JSON Feed 1.1 --------------------------------------------------------------------------


@pytest.mark.parametrize("collection", list(MEMBERS))
def test_json_feed_follows_the_1_1_rules_and_matches_atom(
    built: dict[str, bytes], collection: str
) -> None:
    data = json.loads(built[f"feeds/{collection}feed.json"])
    assert json_feed_problems(data) == []
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    assert data["feed_url"] == f"{BASE}feeds/{collection}feed.json"
    assert list(data) == [
        "version",
        "title",
        "home_page_url",
        "feed_url",
        "description",
        "icon",
        "favicon",
        "authors",
        "language",
        "items",
    ]
    atom = parse(built[f"feeds/{collection}atom.xml"])
    assert [
        (i["id"], i["title"], i["date_published"], i["date_modified"], i["url"])
        for i in data["items"]
    ] == [(e.id, e.title, e.published, e.updated, e.link) for e in atom.entries]
    content = atom_content(built[f"feeds/{collection}atom.xml"])
    assert {i["id"]: i["content_html"] for i in data["items"]} == content


def test_json_feed_checker_finds_broken_feeds() -> None:
    broken = {
        "version": "https://jsonfeed.org/version/1",
        "title": 3,
        "items": [
            {"id": 7, "title": "x"},
            {"id": "a", "content_text": "t", "date_published": "2023-01-01 10:00"},
            {"id": "b", "content_html": "<p>", "authors": [{}], "tags": "x"},
            {"id": "c", "content_html": "", "attachments": [{"url": "u"}]},
        ],
        "unknown": True,
    }
    assert json_feed_problems(broken) == [
        "version: must be https://jsonfeed.org/version/1.1",
        "title: must be a string",
        "unknown: not a JSON Feed 1.1 field (extensions start with _)",
        "items[0].id: must be a non-empty string",
        "items[0]: needs content_html or content_text",
        "items[1].date_published: not an RFC 3339 date-time",
        "items[2].tags: must be a list of strings",
        "items[2].authors[0]: needs name, url or avatar",
        "items[3].attachments[0].mime_type: must be a string",
    ]


# --- a checker of the JSON Feed 1.1 field rules (https://jsonfeed.org/version/1.1) ------------

JSON_FEED_1_1 = "https://jsonfeed.org/version/1.1"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")
_TOP_STRINGS = ("home_page_url", "feed_url", "description", "user_comment", "next_url", "icon")
_TOP_KNOWN = {"version", "title", *_TOP_STRINGS, "favicon", "authors", "author", "language"}
_TOP_KNOWN |= {"expired", "hubs", "items"}
_ITEM_STRINGS = ("url", "external_url", "title", "content_html", "content_text", "summary")
_ITEM_STRINGS += ("image", "banner_image")
_ITEM_KNOWN = {"id", *_ITEM_STRINGS, "date_published", "date_modified", "tags", "language"}
_ITEM_KNOWN |= {"authors", "author", "attachments"}


def _rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _authors(where: str, authors: Any) -> list[str]:
    if not isinstance(authors, list):
        return [f"{where}: must be a list of author objects"]
    problems = []
    for n, author in enumerate(authors):
        if not isinstance(author, dict) or not any(k in author for k in ("name", "url", "avatar")):
            problems.append(f"{where}[{n}]: needs name, url or avatar")
        elif any(not isinstance(v, str) for v in author.values()):
            problems.append(f"{where}[{n}]: values must be strings")
    return problems


def _unknown(where: str, data: dict[str, Any], known: set[str]) -> list[str]:
    return [
        f"{where}{key}: not a JSON Feed 1.1 field (extensions start with _)"
        for key in data
        if key not in known and not key.startswith("_")
    ]


def json_feed_problems(feed: Any) -> list[str]:
    """Every broken rule of the JSON Feed 1.1 field list: required fields, types, dates."""
    if not isinstance(feed, dict):
        return ["the feed must be a JSON object"]
    problems = []
    if feed.get("version") != JSON_FEED_1_1:
        problems.append(f"version: must be {JSON_FEED_1_1}")
    if not isinstance(feed.get("title"), str):
        problems.append("title: must be a string")
    problems += [
        f"{k}: must be a string" for k in _TOP_STRINGS if k in feed and not isinstance(feed[k], str)
    ]
    if "favicon" in feed and not isinstance(feed["favicon"], str):
        problems.append("favicon: must be a string")
    if "authors" in feed:
        problems += _authors("authors", feed["authors"])
    if "language" in feed and not isinstance(feed["language"], str):
        problems.append("language: must be a string")
    if "expired" in feed and not isinstance(feed["expired"], bool):
        problems.append("expired: must be true or false")
    problems += _unknown("", feed, _TOP_KNOWN)
    items = feed.get("items")
    if not isinstance(items, list):
        return [*problems, "items: must be a list"]
    seen: set[str] = set()
    for n, item in enumerate(items):
        where = f"items[{n}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object")
            continue
        ident = item.get("id")
        if not isinstance(ident, str) or not ident:
            problems.append(f"{where}.id: must be a non-empty string")
        elif ident in seen:
            problems.append(f"{where}.id: {ident} appears twice")
        else:
            seen.add(ident)
        if "content_html" not in item and "content_text" not in item:
            problems.append(f"{where}: needs content_html or content_text")
        problems += [
            f"{where}.{k}: must be a string"
            for k in _ITEM_STRINGS
            if k in item and not isinstance(item[k], str)
        ]
        problems += [
            f"{where}.{k}: not an RFC 3339 date-time"
            for k in ("date_published", "date_modified")
            if k in item and not _rfc3339(item[k])
        ]
        tags = item.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.append(f"{where}.tags: must be a list of strings")
        if "language" in item and not isinstance(item["language"], str):
            problems.append(f"{where}.language: must be a string")
        if "authors" in item:
            problems += _authors(f"{where}.authors", item["authors"])
        for m, attachment in enumerate(item.get("attachments", [])):
            for key in ("url", "mime_type"):
                if not isinstance(attachment.get(key), str):
                    problems.append(f"{where}.attachments[{m}].{key}: must be a string")
        problems += _unknown(f"{where}.", item, _ITEM_KNOWN)
    return problems


# --- limits, empty feeds ---------------------------------------------------------------------


def test_max_entries_keeps_the_newest_and_the_feed_updated_follows_them(events: Path) -> None:
    site_yaml = events / "site.yaml"
    site_yaml.write_text(site_yaml.read_text().replace("max_entries: 50", "max_entries: 2"))
    feeds = feeds_of(build(events))
    newest = [tag("annual-forum-announcement"), tag("seminario-web-ess")]
    atom = parse(feeds["feeds/atom.xml"])
    assert [e.id for e in atom.entries] == newest
    # the newest updated among these two; the cancelled meeting was edited later but is not here
    assert atom.feed.updated == "2023-01-15T23:00:00+00:00"
    assert [e.id for e in parse(feeds["feeds/rss.xml"]).entries] == newest
    assert [i["id"] for i in json.loads(feeds["feeds/feed.json"])["items"]] == newest


def test_empty_collection_gives_valid_empty_feeds_with_a_fixed_date(events: Path) -> None:
    site_yaml = events / "site.yaml"
    site_yaml.write_text(
        site_yaml.read_text().replace(
            "collections:\n",
            "collections:\n  french:\n    title: En français\n    languages: [fr]\n",
        )
    )
    feeds = feeds_of(build(events))
    atom = parse(feeds["feeds/french/atom.xml"])
    assert atom.entries == []
    assert atom.feed.updated == "1970-01-01T00:00:00+00:00"
    assert parse(feeds["feeds/french/rss.xml"]).entries == []
    data = json.loads(feeds["feeds/french/feed.json"])
    assert data["items"] == []
    assert json_feed_problems(data) == []


# --- time and history ------------------------------------------------------------------------


def test_no_clock_leaks_into_feeds(events: Path, tmp_path: Path) -> None:
    # a record without published/updated takes the build's clock once, then keeps it
    (events / "undated.md").write_text(
        "---\ntitle: Undated\nkind: meeting\nstart: 2023-04-01\n---\nBody.\n"
    )
    assert feeds_of(build(FIXTURE, now=NOW)) == feeds_of(
        build(FIXTURE, now=datetime(2031, 7, 9, 3, 4, 5, tzinfo=UTC))
    )
    first = build(events, now=NOW)
    again = build(
        events,
        previous=manifest_of(first, tmp_path / "out"),
        now=datetime(2031, 7, 9, 3, 4, 5, tzinfo=UTC),
    )
    assert feeds_of(again) == feeds_of(first)
    item = json.loads(first["feeds/feed.json"])["items"][0]
    assert (item["title"], item["date_published"]) == ("Undated", "2023-02-01T12:00:00+00:00")


def _entries(data: bytes, name: str) -> dict[str, dict[str, bytes]]:
    """Each entry's children, serialised, by the entry's id."""
    root = etree.fromstring(data)
    result = {}
    for entry in root.iter(name):
        children = {etree.QName(c).localname: etree.tostring(c) for c in entry}
        ident = entry.findtext(f"{ATOM}id") or entry.findtext("guid")
        assert ident is not None
        result[ident] = children
    return result


def _head(data: bytes, name: str) -> dict[str, bytes]:
    root = etree.fromstring(data)
    channel = root.find("channel")
    parent = root if channel is None else channel
    return {
        etree.QName(c).localname: etree.tostring(c)
        for c in parent
        if etree.QName(c).localname != name
    }


def test_an_edit_moves_only_that_entrys_updated(events: Path, tmp_path: Path) -> None:
    first = build(events)
    record = events / "webinar-recording-available.md"
    record.write_text(record.read_text().replace("is online.", "is online, with captions."))
    later = datetime(2023, 3, 1, 10, 0, tzinfo=UTC)
    second = build(events, previous=manifest_of(first, tmp_path / "out"), now=later)
    edited = tag("webinar-recording-available")
    moved = "2023-03-01T10:00:00+00:00"

    assert second["feeds/spanish/atom.xml"] == first["feeds/spanish/atom.xml"]
    for path in ("feeds/atom.xml", "feeds/webinars/atom.xml"):
        before, after = (
            _entries(first[path], f"{ATOM}entry"),
            _entries(second[path], f"{ATOM}entry"),
        )
        assert list(after) == list(before)  # same entries, same order
        changed = {i: sorted(k for k in after[i] if after[i][k] != before[i][k]) for i in after}
        assert changed == {i: (["content", "updated"] if i == edited else []) for i in after}
        head_before, head_after = _head(first[path], "entry"), _head(second[path], "entry")
        assert {k for k in head_after if head_after[k] != head_before[k]} == {"updated"}
        parsed = parse(second[path])
        assert parsed.feed.updated == moved
        assert {e.id: e.updated for e in parsed.entries}[edited] == moved
    for path in ("feeds/rss.xml", "feeds/webinars/rss.xml"):
        before, after = _entries(first[path], "item"), _entries(second[path], "item")
        changed = {i: sorted(k for k in after[i] if after[i][k] != before[i][k]) for i in after}
        assert changed == {i: (["description"] if i == edited else []) for i in after}
        head_before, head_after = _head(first[path], "item"), _head(second[path], "item")
        assert {k for k in head_after if head_after[k] != head_before[k]} == {"lastBuildDate"}
    old, new = json.loads(first["feeds/feed.json"]), json.loads(second["feeds/feed.json"])
    for item_before, item_after in zip(old["items"], new["items"], strict=True):
        changed_keys = {k for k in item_after if item_after[k] != item_before[k]}
        expected = {"content_html", "date_modified"} if item_after["id"] == edited else set()
        assert changed_keys == expected
    assert {i["id"]: i["date_modified"] for i in new["items"]}[edited] == moved


def test_entry_id_survives_a_corrected_published_date(events: Path, tmp_path: Path) -> None:
    first = build(events)
    record = events / "seminario-web-ess.md"
    record.write_text(record.read_text().replace("published: 2023-01-10", "published: 2022-12-20"))
    second = build(events, previous=manifest_of(first, tmp_path / "out"), now=NOW)
    items = {i["id"]: i for i in json.loads(second["feeds/feed.json"])["items"]}
    assert items[tag("seminario-web-ess")]["date_published"] == "2022-12-20T05:00:00+00:00"
    assert tag("seminario-web-ess").startswith("tag:events.example.org,2023:")


def test_rss_plain_text_uses_hexadecimal_references_without_changing_the_xml(
    built: dict[str, bytes],
) -> None:
    rss = built["feeds/rss.xml"]
    lines = [line.strip() for line in rss.splitlines()]
    assert b"<title>Report: regional meeting &#x3C;Europe&#x3E; &#x26; partners</title>" in lines
    assert parse(rss).entries[3].title == "Report: regional meeting <Europe> & partners"
    assert b"<description>&lt;p&gt;Read the &lt;a href=" in rss  # escaped HTML keeps its form
    named = rss.replace(b"&#x26;", b"&amp;").replace(b"&#x3C;", b"&lt;").replace(b"&#x3E;", b"&gt;")
    assert canonical(named) == canonical(rss)


def test_hex_references_spares_only_item_descriptions() -> None:
    document = (
        b"<rss><channel><title>A &amp; B</title><description>x &lt;y&gt;</description>"
        b"<item><title>&lt;t&gt;</title><description>&lt;p&gt;&amp;</description>"
        b"<link>https://e.org/?a=1&amp;b=2</link></item></channel></rss>"
    )
    assert hex_references(document) == (
        b"<rss><channel><title>A &#x26; B</title><description>x &#x3C;y&#x3E;</description>"
        b"<item><title>&#x3C;t&#x3E;</title><description>&lt;p&gt;&amp;</description>"
        b"<link>https://e.org/?a=1&#x26;b=2</link></item></channel></rss>"
    )
    assert canonical(hex_references(document)) == canonical(document)


def canonical(data: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(data), method="c14n"))


# --- the newest entries, picked out ---------------------------------------------------------

_MOMENTS = st.sampled_from(
    [
        datetime(2023, 1, 1, tzinfo=UTC),
        datetime(2023, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2023, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2099, 6, 1, 12, tzinfo=UTC),
    ]
)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    published=st.dictionaries(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), _MOMENTS),
    limit=st.none() | st.integers(0, 12),
)
def test_newest_picks_what_sorting_every_event_gives(
    published: dict[str, datetime], limit: int | None
) -> None:
    """The order the feeds had: sorted by id, then by published, newest first (a stable
    sort keeps the ids in order among equal moments); then the first ``limit``."""
    events: list[Any] = [SimpleNamespace(id=i) for i in published]
    context: Any = SimpleNamespace(
        history={i: SimpleNamespace(published=moment) for i, moment in published.items()}
    )
    by_id = sorted(events, key=lambda e: e.id)
    expected = sorted(by_id, key=lambda e: context.history[e.id].published, reverse=True)
    found = newest(events, context, limit)
    assert [e.id for e in found] == [e.id for e in expected[:limit]]
