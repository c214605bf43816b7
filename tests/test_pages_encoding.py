"""The site's own encoders against the standard library they stand in for, byte for byte."""

from __future__ import annotations

import json
import math
import posixpath
import re
import urllib.parse
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from eventfeed import paths
from eventfeed.load import load_site
from eventfeed.markdown import memoised
from eventfeed.pages import (
    AbsoluteLinks,
    Links,
    add_links,
    google_calendar_url,
    json_text,
    link_plus,
    outlook_url,
    quote_plus,
)

FAST = settings(derandomize=True, max_examples=300, deadline=None)


def test_quote_plus_of_every_character() -> None:
    """Each code point (one to four UTF-8 bytes), beside the characters ``urlencode`` treats
    specially: space, ``+``, ``%`` and the unreserved ones."""
    for point in range(0x110000):
        if 0xD800 <= point < 0xE000:  # surrogates do not encode to UTF-8
            continue
        text = chr(point) + " a+%~" + chr(point)
        assert quote_plus(text) == urllib.parse.quote_plus(text, safe=""), hex(point)


@FAST
@given(st.text())
def test_quote_plus_matches_the_standard_library(text: str) -> None:
    assert quote_plus(text) == urllib.parse.quote_plus(text, safe="")


#: Every printable ASCII character: what :func:`as_requested` leaves as it is.
PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))
#: What a link's query may hold (:func:`link_plus`): form-encoded ASCII, and beyond ASCII
#: the URL Standard's "URL code points" (from U+00A0, no surrogates or noncharacters).
LINK_TEXT = re.compile(
    "[A-Za-z0-9_.~+%\\-\u00a0-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd"
    + "".join(f"{chr(p << 16)}-{chr(p << 16 | 0xFFFD)}" for p in range(1, 17))
    + "]*"
)


def as_requested(url: str) -> str:
    """The address a browser asks for when it follows ``url`` from a UTF-8 page: each
    character beyond ASCII as ``%XX`` of its UTF-8 bytes (the URL Standard's query state;
    the ASCII of these links is escaped already)."""
    return urllib.parse.quote(url, safe=PRINTABLE)


def check_link_plus(text: str) -> None:
    linked = link_plus(text)
    assert as_requested(linked) == urllib.parse.quote_plus(text, safe="")
    assert LINK_TEXT.fullmatch(linked), ascii(linked)


@FAST
@given(st.text())
def test_link_plus_asks_for_what_quote_plus_spells(text: str) -> None:
    check_link_plus(text)


def test_link_plus_of_every_character() -> None:
    """Each code point (one to four UTF-8 bytes), beside the characters form encoding treats
    specially, 256 code points at a time."""
    points = [p for p in range(0x110000) if not 0xD800 <= p < 0xE000]  # no UTF-8 surrogates
    for start in range(0, len(points), 256):
        check_link_plus(" a+%~".join(map(chr, points[start : start + 256])))


def test_link_plus_escapes_each_character_a_url_may_not_hold_alone() -> None:
    """Each C1 control and noncharacter is escaped, beside letters of other scripts, and
    beside characters whose UTF-8 shares some of its bytes (``C2`` of a no-break space and of
    "¿", ``EF B7`` of U+FDCF) without being one: the looks at the bytes that come before the
    pattern miss none of them. Alone, so that no other character sends the text to the
    pattern in its stead."""
    c1 = [chr(p) for p in range(0x80, 0xA0)]
    noncharacters = [chr(p) for p in range(0xFDD0, 0xFDF0)]
    noncharacters += [chr(plane << 16 | low) for plane in range(17) for low in (0xFFFE, 0xFFFF)]
    for char in c1 + noncharacters:
        escaped = quote_plus(char)
        assert link_plus(f"\u0424 {char} \u4e00") == f"\u0424+{escaped}+\u4e00"
        assert link_plus(f"\xa0¿\ufdcf {char}") == f"\xa0¿\ufdcf+{escaped}"


def test_link_plus_of_hand_cases() -> None:
    assert link_plus("Économie sociale: 社会 (¿sí?) 100%") == (
        "Économie+sociale%3A+社会+%28¿sí%3F%29+100%25"
    )
    assert link_plus("التعاونيات\n\nhttps://example.org/a?b=c&d=e") == (
        "التعاونيات%0A%0Ahttps%3A%2F%2Fexample.org%2Fa%3Fb%3Dc%26d%3De"
    )
    # not URL code points: a C1 control, noncharacters
    assert link_plus("a\x85b \ufdd0 \U0010ffffé") == "a%C2%85b+%EF%B7%90+%F4%8F%BF%BFé"
    with pytest.raises(UnicodeEncodeError):
        link_plus("a \ud800")


def test_quote_plus_of_long_mixed_text() -> None:
    text = "Réunion régionale: 社会 团结 (https://example.org/a?b=c&d=e)\n\n" * 40 + "100% done"
    assert quote_plus(text) == urllib.parse.quote_plus(text, safe="")


SEGMENT = st.sampled_from(["events", "feeds", "calendars", "a", "kind", ".", "..", "", "x.ics"])
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)


@FAST
@given(folder=st.lists(SEGMENT.filter(bool), max_size=3).map("/".join), target=PATH)
def test_links_match_relpath(folder: str, target: str) -> None:
    page = (folder + "/" if folder else "") + "page.html"
    expected = posixpath.relpath(target, posixpath.dirname(page) or ".") if target else None
    if expected is None:  # relpath refuses an empty path; so does a link to nothing
        return
    links = Links(folder)
    assert links[target] == expected
    assert links[target] == expected  # the remembered answer too


def test_links_of_the_site_layout() -> None:
    assert Links("")["index.html"] == "index.html"
    assert Links("events")["index.html"] == "../index.html"
    assert Links("events")["events/a.ics"] == "a.ics"
    assert Links("events")["feeds/atom.xml"] == "../feeds/atom.xml"
    assert Links("collections")["events/a.html"] == "../events/a.html"
    assert Links("events/x")["events/a.ics"] == "../a.ics"
    site = AbsoluteLinks("https://example.org/repo/")
    assert site["index.html"] == "https://example.org/repo/"
    assert site["style.css"] == "https://example.org/repo/style.css"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)


@FAST
@given(JSON)
def test_json_text_matches_json_dumps(data: Any) -> None:
    assert json_text(data) == dumps(data)


def test_json_text_of_edge_values() -> None:
    for data in (
        {},
        [],
        {"a": {}, "b": [], "c": [[]], "d": ({"e": None},)},
        [math.nan, math.inf, -math.inf, -0.0, 1e300, True, False, 10**30],
        {"<script>": "</script> & \u2028 \x00 é 社会"},
        {1: "a key that is not a string is left to json.dumps"},
    ):
        assert json_text(data) == dumps(data), data


def test_add_links_are_the_escaped_urls() -> None:
    """``add_links`` joins fields with ``&amp;``: the same text as escaping each URL."""
    site = load_site(Path(__file__).resolve().parents[1] / "events")
    with memoised():
        for event in site.events:
            url = site.settings.site_url + paths.event_page(event.id)
            google, outlook, live = add_links(event, url)
            assert google == escape(google_calendar_url(event, url))
            assert outlook == escape(outlook_url(event, url))
            assert live == escape(outlook_url(event, url, host="outlook.live.com"))


def test_quote_plus_of_hand_cases() -> None:
    for text in ("", "AZaz09_.-~", "~", "%", "+", " ", "\0", "a b  c ", "\U0001f600 \U00010000"):
        assert quote_plus(text) == urllib.parse.quote_plus(text, safe=""), text


def test_quote_plus_refuses_a_lone_surrogate_as_the_standard_library_does() -> None:
    for text in ("\ud800", "a \udfff b"):
        with pytest.raises(UnicodeEncodeError):
            urllib.parse.quote_plus(text, safe="")
        with pytest.raises(UnicodeEncodeError):
            quote_plus(text)


def test_add_to_calendar_urls_match_the_standard_library() -> None:
    """Each link's query, as a browser asks for it, as ``urllib.parse.urlencode`` writes it
    from the values in full."""
    site = load_site(Path(__file__).resolve().parents[1] / "events")
    with memoised():
        for event in site.events:
            url = site.settings.site_url + paths.event_page(event.id)
            google = urllib.parse.urlsplit(as_requested(google_calendar_url(event, url)))
            outlook = urllib.parse.urlsplit(as_requested(outlook_url(event, url)))
            fields = dict(urllib.parse.parse_qsl(google.query))
            start, end = event.local_start, event.local_end
            if event.all_day:
                dates = f"{start:%Y%m%d}/{end:%Y%m%d}"
                times = [("startdt", start.isoformat()), ("enddt", end.isoformat())]
                times.append(("allday", "true"))
            else:
                first, last = event.aware(start), event.aware(end)
                dates = "/".join(
                    t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") for t in (first, last)
                )
                times = [("startdt", first.isoformat()), ("enddt", last.isoformat())]
            assert google.query == urllib.parse.urlencode(
                [
                    ("action", "TEMPLATE"),
                    ("text", event.record.title),
                    ("dates", dates),
                    ("details", fields["details"]),
                    ("location", fields["location"]),
                    ("ctz", event.tzid),
                ]
            )
            assert outlook.query == urllib.parse.urlencode(
                [
                    ("path", "/calendar/action/compose"),
                    ("rru", "addevent"),
                    ("subject", event.record.title),
                    *times,
                    ("body", fields["details"]),
                    ("location", fields["location"]),
                ]
            )
