"""Event pages put their "add to calendar" links in as bytes after rendering: the same bytes as
rendering the links in place."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Template
from markupsafe import Markup

from eventfeed import build, pages
from eventfeed.load import load_site
from eventfeed.markdown import memoised


def plain(template: Template, values: dict[str, Any], spliced: tuple[bytes, ...]) -> bytes:
    """The page with the links rendered in place, as pages were rendered before."""
    for name, value in zip(pages._SPLICED, spliced, strict=True):
        values[name] = Markup(value.decode("utf-8"))
    return template.render(values).encode("utf-8")


def event_pages(as_of: dt.date) -> dict[str, bytes]:
    site = load_site(Path(__file__).resolve().parents[1] / "events")
    history = build.advance(None, site.events, dt.datetime(2023, 1, 1, tzinfo=dt.UTC))
    context = build.BuildContext(site=site, history=history, as_of=as_of)
    renderer = pages.Renderer(context)
    with memoised():
        return {event.id: renderer.event(event) for event in site.events}


def test_event_pages_are_those_rendered_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    for as_of in (dt.date(2022, 1, 1), dt.date(2030, 1, 1)):  # upcoming and past
        spliced = event_pages(as_of)
        with monkeypatch.context() as patch:
            patch.setattr(pages, "_spliced", plain)
            assert event_pages(as_of) == spliced
        assert all(b"https://calendar.google.com/" in page for page in spliced.values())


def test_a_page_that_shows_the_marks_character_is_rendered_in_place() -> None:
    template = pages._environment().from_string(
        "{{ title }} <a href='{{ google }}'>{{ title }}</a> {{ outlook }} {{ outlook_live }}\n"
    )
    links = (b"https://g.example/?a=1&amp;b=2", b"https://o.example/?x", b"https://l.example/?y")
    for title in ("Plain", "a \0 mark", "\x000\x00", "\x001\x00 and \x002\x00", "é \0\0"):
        expected = plain(template, {"title": title}, links)
        assert pages._spliced(template, {"title": title}, links) == expected, repr(title)
    assert pages._spliced(template, {"title": "A"}, links) == (
        b"A <a href='https://g.example/?a=1&amp;b=2'>A</a> https://o.example/?x"
        b" https://l.example/?y\n"
    )


def test_marked_pieces_are_put_in_as_they_are() -> None:
    """Each piece's own bytes objects go into the page, where its mark was; marks missing,
    repeated or unknown mean the page is rendered in place instead."""
    first, second = b"<li>one</li>", b"<li>two</li>"
    mark0, mark1 = str(pages._mark(0)), str(pages._mark(1))
    parts = pages._spliced_parts(f"<ul>{mark1}é{mark0}</ul>", [[first], [second, first]])
    assert parts == [b"<ul>", second, first, "é".encode(), first, b"</ul>"]
    assert parts is not None
    assert parts[1] is second
    assert parts[4] is first
    for text in (f"{mark0}", f"{mark0}{mark0}{mark1}", f"{mark0}{mark1}\0x\0", "\0 2 \0 1"):
        assert pages._spliced_parts(text, [[first], [second]]) is None, repr(text)
