"""Listings made from each event's item, rendered once: the same bytes as rendering them whole."""

from __future__ import annotations

import dataclasses
import io
import pickle
from datetime import UTC, date, datetime
from pathlib import Path

from markupsafe import escape

from eventfeed import pages, paths
from eventfeed.build import BuildContext, compile_site
from eventfeed.load import load_site
from eventfeed.markdown import memoised
from eventfeed.state import advance

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 1, 1, tzinfo=UTC)
AS_OF = date(2022, 12, 10)


def _context() -> BuildContext:
    site = load_site(ROOT / "events")
    return BuildContext(site=site, history=advance(None, site.events, NOW), as_of=AS_OF)


def test_listings_from_the_notes_are_the_listings_rendered_whole() -> None:
    """The build takes each event's item from its per-event step; without those notes the
    whole step renders every item itself. Both give the same pages."""
    built = compile_site(load_site(ROOT / "events"), None, NOW, as_of=AS_OF)
    context = _context()
    assert "pages" not in context.notes
    with memoised():
        whole = pages.compile_pages(context)
    listings = [paths.INDEX] + [
        paths.collection_page(name) for name in sorted(context.settings.collections)
    ]
    assert len(listings) > 2
    for path in listings:
        assert whole[path] == built[path], path


def test_an_item_is_cut_where_its_links_go() -> None:
    """A past event with a body links its page twice, an upcoming one once; record text,
    whatever it holds (the NUL character, quotes, markup), is escaped where it is shown."""
    context = _context()
    renderer = pages.Renderer(context)
    past = [e for e in context.events if not renderer.listed(e).upcoming]
    event = next(e for e in past if renderer.facts(e).has_body)
    card = renderer.card(event)
    title = str(escape(event.record.title))
    for text in ["a \0 b", "\0\0\0", "\0", 'x"\0"<y>\'&']:
        odd = dataclasses.replace(card, facts=dataclasses.replace(card.facts, summary=text))
        item = pages.listing_item(odd)
        assert len(item.pieces) == 3
        for href in ["events/a.html", "../events/a.html"]:
            html = item.html(href)
            assert html.count(f'href="{href}"') == 2
            assert f'<a class="p-name u-url" href="{href}">{title}</a>' in html
            assert f'<p class="p-summary">{escape(text)}</p>\n' in html
            assert f'<p><a href="{href}">Read the report: {title}</a></p>\n' in html
    coming = next(e for e in context.events if renderer.listed(e).upcoming)
    assert len(pages.listing_item(renderer.card(coming)).pieces) == 2


class _AsBefore(pickle.Pickler):
    """Pickles a listing item as it was kept before it spelled its start as a number."""

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, pages.ListingItem):
            return object.__reduce_ex__(obj, 5)
        return NotImplemented


def test_a_kept_listing_item_reads_back_the_same_item() -> None:
    """Each event's item is kept in the per-event store and read back at every build: the
    same pieces and place, its start in the zone of the events' sort key (so it orders
    among the items made in the build); an item kept the way it was before reads back too."""
    context = _context()
    renderer = pages.Renderer(context)
    items = [pages.listing_item(renderer.card(e)) for e in context.events]
    assert {item.placed[0] for item in items} == {True, False}
    for item in items:
        back = pickle.loads(pickle.dumps(item, pickle.HIGHEST_PROTOCOL))
        assert back == item
        assert back.placed[1][0].tzinfo is item.placed[1][0].tzinfo
        buffer = io.BytesIO()
        _AsBefore(buffer, pickle.HIGHEST_PROTOCOL).dump(item)
        assert pickle.loads(buffer.getvalue()) == item
