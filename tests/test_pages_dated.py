"""Listings too large for one page: shared out among the listing's page and dated pages.

The site is the benchmark's synthetic records with a small ``pages.max_bytes``, built twice:
with the limit, and with one no listing reaches (the reference: every listing one page). The
pages are read back with lxml and checked against the reference, not against our own split:
each listing's pages, read in the order their links give, list the same events in the same
order as its one page; no page lists more than the limit; every page is strict HTML5 and its
links lead to pages that were built.
"""

from __future__ import annotations

import posixpath
import re
from datetime import UTC, date, datetime
from pathlib import Path

import html5lib
import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import pages, paths
from eventfeed.build import Artifacts, compile_site
from eventfeed.load import load_site

from .bench_records import generate
from .test_pages import target_of

NOW = datetime(2023, 11, 14, 12, tzinfo=UTC)
AS_OF = date(2023, 11, 14)
LIMIT = 20_000
RECORDS = 300
#: an item of a listing, as the page holds it
ARTICLE = re.compile(rb'<article class="event h-event[^"]*">.*?</article>', re.S)


def _build(events: Path, limit: int) -> Artifacts:
    site_yaml = events / "site.yaml"
    text = site_yaml.read_text(encoding="utf-8")
    text = re.sub(r"\npages:\n  max_bytes: \d+\n", "\n", text)
    site_yaml.write_text(text + f"pages:\n  max_bytes: {limit}\n", encoding="utf-8")
    return compile_site(load_site(events), None, NOW, as_of=AS_OF)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifacts, Artifacts]:
    """(the split site, the reference)."""
    events = generate(tmp_path_factory.mktemp("dated"), RECORDS)
    return _build(events, LIMIT), _build(events, 10**9)


def _listings(artifacts: Artifacts) -> list[tuple[str | None, str]]:
    found = [(None, paths.INDEX)]
    for path in sorted(artifacts):
        if re.fullmatch(r"collections/[^/]+\.html", path):
            found.append((posixpath.basename(path).removesuffix(".html"), path))
    return found


def _events_in(artifacts: Artifacts, page: str, section: str | None) -> list[str]:
    """The event pages that ``page`` lists, in order (in one section of it, when given)."""
    doc = lxml.html.fromstring(artifacts[page])
    scope = doc if section is None else doc.get_element_by_id(section).getparent()
    links = scope.xpath(".//article//a[contains(@class, 'p-name')]/@href")
    return [target for url in links if (target := target_of(url, page)) is not None]


def _dated_links(artifacts: Artifacts, page: str, label: str) -> list[str]:
    doc = lxml.html.fromstring(artifacts[page])
    urls = doc.xpath(f"//nav[@class='dated'][@aria-label='{label}']//a/@href")
    return [target for url in urls if (target := target_of(url, page)) is not None]


def test_the_shipped_site_and_a_listing_that_fits_have_no_dated_pages(
    built: tuple[Artifacts, Artifacts],
) -> None:
    _, reference = built
    for artifacts in (reference, compile_site(load_site(Path("events")), None, NOW)):
        assert not [p for p in artifacts if re.search(r"(^|/)(past|later)/", p)]
        assert b'class="dated"' not in artifacts[paths.INDEX]


def test_each_listing_read_through_its_pages_is_the_one_page_listing(
    built: tuple[Artifacts, Artifacts],
) -> None:
    split, reference = built
    kinds: set[str] = set()
    for _, page in _listings(reference):
        assert len(reference[page]) > LIMIT  # every listing is split
        for section, label in (("upcoming", "More upcoming events"), ("past", "Earlier events")):
            whole = _events_in(reference, page, section)
            dated = _dated_links(split, page, label)
            kinds.update(d.split("/")[-2] for d in dated)
            shared = _events_in(split, page, section)
            for other in dated:
                assert _dated_links(split, other, label) == dated  # the same links on each
                shared += _events_in(split, other, None)
            assert shared == whole, (page, section)
            assert len(set(whole)) == len(whole)
    assert kinds == {"past", "later"}


def test_no_page_lists_more_than_the_limit(built: tuple[Artifacts, Artifacts]) -> None:
    split, _ = built
    listing_pages = [p for p in split if p.endswith(".html") and not p.startswith("events/")]
    parts = [p for p in listing_pages if "-part" in p]
    assert len(listing_pages) > 20
    for page in listing_pages:
        items = ARTICLE.findall(split[page])
        assert sum(len(item) + 1 for item in items) <= LIMIT or len(items) == 1, page
    for page in parts:
        assert ARTICLE.findall(split[page])


def test_dated_pages_are_strict_html5_and_their_links_resolve(
    built: tuple[Artifacts, Artifacts],
) -> None:
    split, _ = built
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    dated = [p for p in split if re.search(r"(^|/)(past|later)/", p)]
    assert dated
    for page in [paths.INDEX, *dated]:
        parser.parse(split[page])
        doc = lxml.html.fromstring(split[page])
        for element, attribute, url, _ in doc.iterlinks():
            if element.tag == "data" or attribute not in ("href", "src"):
                continue
            target = target_of(url, page)
            assert target is None or target in split, (page, url)
        if page != paths.INDEX:
            current = doc.xpath("//a[@aria-current='page']/@href")
            assert [target_of(url, page) for url in current] == [page]


# --- the rules, on made-up listings ------------------------------------------------------


def _entry(index: int, month: int, size: int) -> pages.Entry:
    moment = datetime(month // 100, month % 100, 1, tzinfo=UTC)
    item = pages.ListingItem((b"x" * size, b"y"), (True, (moment, f"e{index:04d}"), month))
    href = b"events/e.html"
    return ((moment, f"e{index:04d}"), month, item, href, size + 1 + len(href) + 1)


def _size(entry: pages.Entry) -> int:
    return sum(map(len, entry[2].pieces)) + len(entry[3]) + 1


months = st.integers(2015, 2030).flatmap(lambda y: st.integers(1, 12).map(lambda m: y * 100 + m))


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(months, st.integers(1, 3000)), max_size=60),
    st.integers(1, 12),
    st.integers(500, 20_000),
)
def test_the_split_follows_its_rules(
    events: list[tuple[int, int]], coming: int, limit: int
) -> None:
    entries = [_entry(i, month, size) for i, (month, size) in enumerate(events)]
    entries.sort(key=lambda e: e[0])
    upcoming = entries[len(entries) * coming // 12 :]
    past = entries[: len(entries) * coming // 12][::-1]
    split = pages.split_listing(upcoming, past, limit, 3)
    # every entry once, in its listing's order
    later = [e for d in split.dated if d.kind == pages.LATER for e in d.entries]
    earlier = [e for d in split.dated if d.kind == pages.PAST for e in d.entries]
    assert split.upcoming + later == upcoming
    assert split.past + earlier == past
    kept = sum(map(_size, split.upcoming + split.past))
    if not split.dated:
        assert sum(map(_size, upcoming + past)) <= limit
        return
    assert kept <= limit
    # the past events of the oldest years go first; coming ones only when none is left
    if later:
        assert not split.past
    for d in split.dated:
        assert {e[1] // 100 for e in d.entries} == {d.year}
        if d.month is not None:
            assert {e[1] % 100 for e in d.entries} == {d.month}
        dated_size = sum(_size(e) + 3 for e in d.entries)
        assert dated_size <= limit or len(d.entries) == 1
        if d.part is None and d.month is None:
            continue
        # a year (or month) is cut up only when it does not fit whole
        whole = [e for e in (upcoming if d.kind == pages.LATER else past) if e[1] // 100 == d.year]
        assert sum(_size(e) + 3 for e in whole) > limit
    if split.past:
        oldest_kept = min(e[1] // 100 for e in split.past)
        assert all(e[1] // 100 < oldest_kept for e in earlier)


def test_a_page_limit_below_the_least_is_refused(tmp_path: Path) -> None:
    from eventfeed.model import PageSettings

    with pytest.raises(ValueError, match="greater than or equal to 10000"):
        PageSettings(max_bytes=5_000)
