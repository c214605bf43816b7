"""Event pages are their own part put in a frame rendered once per build; listings put each
event's item in as bytes: the same bytes as rendering the page whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from eventfeed import build, pages
from eventfeed.load import load_site
from eventfeed.markdown import memoised

ROOT = Path(__file__).resolve().parents[1]


def event_pages(as_of: dt.date) -> dict[str, bytes]:
    site = load_site(ROOT / "events")
    history = build.advance(None, site.events, dt.datetime(2023, 1, 1, tzinfo=dt.UTC))
    context = build.BuildContext(site=site, history=history, as_of=as_of)
    renderer = pages.Renderer(context)
    with memoised():
        return {event.id: renderer.event(event) for event in site.events}


def test_event_pages_are_those_rendered_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    for as_of in (dt.date(2022, 1, 1), dt.date(2030, 1, 1)):  # upcoming and past
        framed = event_pages(as_of)
        with monkeypatch.context() as patch:
            patch.setattr(pages, "_frame", lambda template, values: None)
            assert event_pages(as_of) == framed
        assert all(page.startswith(b"<!DOCTYPE html>") for page in framed.values())
        assert all(b"https://calendar.google.com/" in page for page in framed.values())


@pytest.mark.parametrize("title", ["a \0 mark", "\x000\x00", "\x004\x00 and \x002\x00", "é \0\0"])
def test_a_frame_that_shows_the_marks_character_is_not_used(title: str) -> None:
    site = load_site(ROOT / "events")
    settings = site.settings.model_construct(**{**dict(site.settings), "title": title})
    template = pages._environment().get_template("event.html")
    frames = pages.event_pages(settings)
    assert frames.frame is None
    values = frames.shell.values("events/x.html", frames.shell.site_feeds)
    assert pages._frame(template, values) is None
    plain = pages.event_pages(site.settings)
    assert plain.frame is not None
    assert sum(type(piece) is int for piece in plain.frame) == len(pages._FRAME_VALUES)


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
