"""A record read back from the store makes its lines only when asked for them; the messages
that need them (two records with one id or one calendar UID) are those of a record parsed."""

from __future__ import annotations

import pytest

from eventfeed import load as load_module
from eventfeed.load import load
from eventfeed.recordstore import PACKED_LINES, RecordStore, pack, unpack

from .conftest import MINIMAL, SiteDir


def _clashing(site: SiteDir) -> None:
    # the id and the uid on other lines in each record, so that a wrong line shows
    site.record("a.md", MINIMAL.replace("kind: meeting\n", "kind: meeting\nid: same\n"))
    site.record("b.md", MINIMAL.replace("updated: 2022-12-01\n", "updated: 2022-12-01\nid: same\n"))
    site.record("c.md", MINIMAL.replace("kind: meeting\n", "kind: meeting\nuid: one@example.org\n"))
    site.record("d.md", MINIMAL.replace("---\ntitle", "---\nuid: ONE@example.org\ntitle"))
    site.record("e.md", MINIMAL.replace("title: A meeting\n", "title: A meeting\nid: other\n"))


def test_clash_messages_from_the_store_are_those_of_a_parse(site: SiteDir) -> None:
    _clashing(site)
    plain = load(site.events)
    store_file = site.root / "store.sqlite"
    first = load(site.events, store=RecordStore(store_file))
    second = load(site.events, store=RecordStore(store_file))
    lines = sorted((p.path, p.line, p.field) for p in plain.problems if p.field in ("id", "uid"))
    assert lines == [
        ("events/a.md", 4, "id"),
        ("events/b.md", 9, "id"),
        ("events/d.md", 2, "uid"),
    ]
    assert first.problems == plain.problems
    assert second.problems == plain.problems
    assert [e.id for e in second.events] == [e.id for e in plain.events]


def test_the_lines_are_made_on_first_use_and_equal_the_parsed_ones(site: SiteDir) -> None:
    _clashing(site)
    for name, id_line in (("a.md", 4), ("e.md", 3), ("c.md", 1)):
        parsed = load_module.read_record(site.events / name, name)
        assert isinstance(parsed, load_module.RecordFile)
        back = unpack(pack(parsed))
        assert back is not None
        assert "lines" not in back.__dict__
        assert PACKED_LINES in back.__dict__
        assert back.id_line == parsed.id_line == id_line
        assert back.lines == parsed.lines
        assert type(back.lines) is dict
        assert back.lines is back.lines  # made once
        assert back == parsed


def test_only_the_lines_are_made_late(site: SiteDir) -> None:
    _clashing(site)
    parsed = load_module.read_record(site.events / "a.md", "a.md")
    back = unpack(pack(parsed))
    with pytest.raises(AttributeError):
        back.nothing  # noqa: B018 - an attribute no record has
