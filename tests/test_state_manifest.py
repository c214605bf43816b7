"""The manifest's own writer and reader against the json library's: the same bytes, the same
values, the same refusals."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import state as state_module
from eventfeed import write
from eventfeed.errors import StateError
from eventfeed.paths import MANIFEST
from eventfeed.state import (
    EventState,
    Manifest,
    _parse_time,
    _replace,
    files_listed,
    manifest_head,
    read_manifest,
)

FIELDS = (
    "content",
    "schedule",
    "sequence",
    "created",
    "last_modified",
    "dtstamp",
    "published",
    "cancelled",
    "source",
)


def reference_bytes(manifest: Manifest) -> bytes:
    """What the manifest was always written as: the library's indenting encoder."""

    def spell(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return value

    data = {
        "generator": "eventfeed",
        "format": 1,
        "as_of": manifest.as_of.isoformat(),
        "events": {
            key: {name: spell(getattr(state, name)) for name in FIELDS}
            for key, state in sorted(manifest.events.items())
        },
        "files": dict(sorted(manifest.files.items())),
    }
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()


ZURICH = ZoneInfo("Europe/Zurich")
texts = st.text(max_size=12)  # every code point: quotes, backslashes, controls, astral
times = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - made aware below
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), ZURICH]),
)
states = st.builds(
    EventState,
    content=texts,
    schedule=texts,
    sequence=st.integers(min_value=-(2**70), max_value=2**70),
    created=times,
    last_modified=times,
    dtstamp=times,
    published=times,
    cancelled=st.booleans(),
    source=texts,
)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    as_of=st.dates(),
    events=st.dictionaries(texts, states, max_size=4),
    files=st.dictionaries(texts, texts, max_size=4),
)
def test_written_as_the_json_library_writes_it(
    as_of: date, events: dict[str, EventState], files: dict[str, str]
) -> None:
    manifest = Manifest(as_of=as_of, events=events, files=files)
    assert manifest.to_bytes() == reference_bytes(manifest)
    # its events written out beforehand, as the build does while the calendars are made
    head = manifest_head(as_of, events)
    assert head is not None
    assert b"".join(manifest.parts(head)) == reference_bytes(manifest)


@settings(derandomize=True, max_examples=80, deadline=None)
@given(
    events=st.dictionaries(texts, states, max_size=2),
    files=st.dictionaries(texts, texts, max_size=6),
    data=st.data(),
)
def test_files_spelled_beforehand_are_written_as_the_others(
    events: dict[str, EventState], files: dict[str, str], data: st.DataObject
) -> None:
    """The lines of some of the files spelled beforehand (as the build does for the files
    made before the calendars, while those are made): the same bytes; and when one of them
    has another digest in the manifest, every line is spelled again."""
    chosen = data.draw(st.lists(st.booleans(), min_size=len(files), max_size=len(files)))
    early = {p: files[p] for p, kept in zip(sorted(files), chosen, strict=True) if kept}
    if early and data.draw(st.booleans()):
        early[min(early)] += "changed since"
    manifest = Manifest(as_of=date(2023, 11, 14), events=events, files=files)
    head = manifest_head(manifest.as_of, events)
    listed = files_listed(early)
    assert listed is not None
    assert b"".join(manifest.parts(head, listed)) == reference_bytes(manifest)


def test_empty_manifest_and_odd_values_take_the_library() -> None:
    empty = Manifest(as_of=date(2023, 11, 14), events={}, files={})
    assert empty.to_bytes() == reference_bytes(empty)
    assert empty.to_bytes().endswith(b'"events": {},\n "files": {}\n}\n')
    moment = datetime(2023, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    state = EventState("c", "s", 1, moment, moment, moment, moment, False, "a.md")
    odd = _replace(state, sequence=1.5)  # not a value the fast writer spells
    manifest = Manifest(as_of=date(2023, 1, 2), events={"e": odd}, files={"a": "b"})
    assert manifest.to_bytes() == reference_bytes(manifest)
    assert b'"sequence": 1.5,' in manifest.to_bytes()
    assert manifest_head(manifest.as_of, manifest.events) is None
    assert b"".join(manifest.parts(None)) == reference_bytes(manifest)


#: strftime writes the years before 1000 unpadded, and strptime cannot read those back: the
#: manifest round trip holds from the year 1000 on (records are far later)
later = st.datetimes(
    min_value=datetime(1000, 1, 2),  # noqa: DTZ001 - made aware below
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))]),
)
readable = st.builds(
    EventState,
    content=texts,
    schedule=texts,
    sequence=st.integers(min_value=0, max_value=2**40),
    created=later,
    last_modified=later,
    dtstamp=later,
    published=later,
    cancelled=st.booleans(),
    source=texts,
)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(events=st.dictionaries(texts, readable, max_size=3))
def test_read_back_gives_the_same_values(events: dict[str, EventState]) -> None:
    manifest = Manifest(as_of=date(2024, 2, 29), events=events, files={"index.html": "ab"})
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / MANIFEST).write_bytes(manifest.to_bytes())
        back = read_manifest(folder)
    assert back is not None
    assert back.files == {"index.html": "ab"}
    assert back.as_of == date(2024, 2, 29)
    for key, state in events.items():
        again = back.events[key]
        for name in ("created", "last_modified", "dtstamp", "published"):
            value = getattr(again, name)
            assert value == getattr(state, name).replace(microsecond=0)
            assert value.tzinfo is UTC
        assert (again.content, again.sequence, again.cancelled) == (
            state.content,
            state.sequence,
            state.cancelled,
        )


def _read_back(manifest: Manifest) -> Manifest:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / MANIFEST).write_bytes(manifest.to_bytes())
        back = read_manifest(folder)
    assert back is not None
    return back


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    events=st.dictionaries(texts, readable, min_size=1, max_size=6),
    changed=st.lists(st.tuples(st.integers(min_value=0), readable), max_size=4),
    as_of=st.sampled_from([date(2024, 2, 29), date(2024, 3, 1), date(1999, 12, 31)]),
    files=st.dictionaries(texts, texts, max_size=3),
)
def test_the_text_of_the_last_manifest_is_taken_for_the_events_it_names(
    events: dict[str, EventState],
    changed: list[tuple[int, EventState]],
    as_of: date,
    files: dict[str, str],
) -> None:
    """The events section is the last manifest's text, with the day and the events whose
    state is another spelled again: the text of a manifest written whole."""
    previous = _read_back(Manifest(as_of=date(2024, 2, 29), events=events, files=files))
    now = dict(previous.events)  # unchanged events keep the very state read back
    keys = sorted(now)
    for index, state in changed:
        now[keys[index % len(keys)]] = state
    patched = state_module._patched_head(as_of, now, previous)
    assert patched is not None  # taken from the last text
    whole = manifest_head(as_of, now)
    assert whole is not None
    assert b"".join(patched) == b"".join(whole)
    head = manifest_head(as_of, now, previous)
    assert head == patched
    made = Manifest(as_of=as_of, events=now, files={"a.html": "00"})
    assert b"".join(made.parts(head)) == reference_bytes(made)


def test_the_text_of_the_last_manifest_is_not_taken_for_other_events() -> None:
    moment = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    state = EventState("c", "s", 0, moment, moment, moment, moment, False, "a.md")
    previous = _read_back(
        Manifest(as_of=date(2023, 1, 2), events={"a": state, "b": state}, files={})
    )
    for events in ({"a": state}, {"a": state, "b": state, "c": state}):
        assert state_module._patched_head(date(2023, 1, 2), events, previous) is None
        head = manifest_head(date(2023, 1, 2), events, previous)
        assert head == manifest_head(date(2023, 1, 2), events)
    # nor when a changed state holds a value the fast writer does not spell: the library
    # writes the whole manifest then
    odd = {"a": _replace(state, sequence=1.5), "b": previous.events["b"]}
    assert state_module._patched_head(date(2023, 1, 2), odd, previous) is None
    assert manifest_head(date(2023, 1, 2), odd, previous) is None
    # nor for a text this code would not have written (another spelling of the format)
    other = dataclasses.replace(previous, raw=previous.raw.replace(b'"format": 1', b'"format":  1'))
    assert state_module._patched_head(date(2023, 1, 2), other.events, other) is None


#: texts from a few characters, so that paths and digests are often prefixes of one another
#: or spell the manifest's own punctuation
near = st.text(alphabet='a"\\\n:, ', max_size=3)


@settings(derandomize=True, max_examples=80, deadline=None)
@given(
    events=st.dictionaries(texts, readable, min_size=1, max_size=3),
    files=st.dictionaries(st.one_of(texts, near), st.one_of(texts, near), min_size=1, max_size=8),
    changed=st.lists(st.tuples(st.integers(min_value=0), st.one_of(texts, near)), max_size=4),
    other=st.sampled_from(["same", "added", "removed"]),
)
def test_the_text_of_the_last_manifest_is_taken_for_the_files_it_names(
    events: dict[str, EventState],
    files: dict[str, str],
    changed: list[tuple[int, str]],
    other: str,
) -> None:
    """The files section is the last manifest's text, with the lines of the files whose
    digest changed spelled again, when it names the same files: the text of a manifest
    written whole. Another set of files takes the whole spelling, with the same bytes."""
    previous = _read_back(Manifest(as_of=date(2024, 2, 29), events=events, files=files))
    now = dict(previous.files)
    paths = sorted(now)
    for index, digest in changed:
        now[paths[index % len(paths)]] = digest
    if other == "added":
        now[max(paths) + "z"] = "new"
    elif other == "removed":
        del now[paths[0]]
    made = Manifest(as_of=date(2024, 2, 29), events=previous.events, files=now)
    patched = state_module._patched_files(now, previous)
    assert (patched is None) == (other != "same")
    head = manifest_head(made.as_of, made.events, previous)
    whole = b"".join(made.parts(head))
    assert whole == reference_bytes(made)
    assert b"".join(made.parts(head, None, previous)) == whole
    if patched is not None:
        assert b"".join(patched) == whole[len(b"".join(head)) :]


def test_the_text_of_the_last_manifest_is_not_taken_when_not_spelled_as_ours() -> None:
    previous = _read_back(
        Manifest(as_of=date(2023, 1, 2), events={}, files={"a.html": "00", "b.html": "11"})
    )
    assert state_module._patched_files({"a.html": "01", "b.html": "11"}, previous) is None
    moment = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    state = EventState("c", "s", 0, moment, moment, moment, moment, False, "a.md")
    files = {"a.html": "00", "b.html": "11"}
    previous = _read_back(Manifest(as_of=date(2023, 1, 2), events={"a": state}, files=files))
    assert state_module._patched_files({"a.html": "01", "b.html": "11"}, previous) is not None
    # a line spelled otherwise (two spaces after the colon): its old line is not found
    other = dataclasses.replace(previous, raw=previous.raw.replace(b'"a.html": ', b'"a.html":  '))
    assert state_module._patched_files({"a.html": "01", "b.html": "11"}, other) is None
    # a line that goes on after its digest (a space before the comma): the same
    other = dataclasses.replace(previous, raw=previous.raw.replace(b'"00",', b'"00" ,'))
    assert state_module._patched_files({"a.html": "01", "b.html": "11"}, other) is None
    # nor when a changed digest is not a string
    odd: dict[str, Any] = {"a.html": 1, "b.html": "11"}
    assert state_module._patched_files(odd, previous) is None


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14T22:13:25Z",
        "0999-01-01T00:00:00Z",
        "2024-02-29T23:59:59Z",
        "2023-1-5T2:3:4Z",  # strptime reads single digits; kept as it was
    ],
)
def test_times_read_as_strptime_reads_them(text: str) -> None:
    expected = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert _parse_time(text) == expected
    assert _parse_time(text).tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14T22:13:25+01:00",
        "2023-11-14T22:13:25.5Z",
        "2023-11-14",
        "20231114T221325Z",
        "2023-02-30T00:00:00Z",
        "2023-11-14T22:13:25Z ",
        [2023],  # not text at all
        {"at": 1},
        2023,
        None,
    ],
)
def test_a_time_not_written_by_us_damages_the_manifest(tmp_path: Path, text: object) -> None:
    moment = datetime(2023, 1, 1, tzinfo=UTC)
    state = EventState("c", "s", 0, moment, moment, moment, moment, False, "a.md")
    data = json.loads(Manifest(date(2023, 1, 1), {"e": state}, {}).to_bytes())
    data["events"]["e"]["created"] = text
    (tmp_path / MANIFEST).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(StateError, match="damaged"):
        read_manifest(tmp_path)


def test_replace_changes_only_what_it_is_given() -> None:
    moment = datetime(2023, 1, 1, tzinfo=UTC)
    state = EventState("c", "s", 0, moment, moment, moment, moment, False, "a.md")
    assert _replace(state, source="b.md") == EventState(
        "c", "s", 0, moment, moment, moment, moment, False, "b.md"
    )
    assert state.source == "a.md"


def test_written_in_parts_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build writes a large manifest a part at a time; the parts join to the same bytes,
    and an odd value anywhere sends the whole manifest the library's way before any part."""
    from eventfeed import state as state_module

    monkeypatch.setattr(state_module, "_PIECES", 3)
    moment = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = EventState("c", "s", 1, moment, moment, moment, moment, False, "a.md")
    events = {f"event-{i}": _replace(first, sequence=i) for i in range(10)}
    files = {f"f/{i}.html": f"{i:064x}" for i in range(10)}
    manifest = Manifest(as_of=date(2023, 1, 2), events=events, files=files)
    parts = list(manifest.parts())
    assert len(parts) > 5
    assert b"".join(parts) == manifest.to_bytes() == reference_bytes(manifest)
    odd = Manifest(manifest.as_of, events | {"event-9": _replace(first, sequence=1.5)}, files)
    assert list(odd.parts()) == [reference_bytes(odd)]


@pytest.mark.parametrize("odd", ["key", "path", "digest", "field"])
def test_a_value_of_another_type_anywhere_takes_the_library(odd: str) -> None:
    moment = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    state = EventState("c", "s", 1, moment, moment, moment, moment, False, "a.md")
    events: dict[Any, EventState] = {"e": state}
    files: dict[Any, Any] = {"a": "b"}
    if odd == "key":
        events = {7: state}
    elif odd == "path":
        files = {7: "b"}
    elif odd == "digest":
        files = {"a": 7}
    else:
        events = {"e": _replace(state, sequence=1.5)}
    manifest = Manifest(as_of=date(2023, 1, 2), events=events, files=files)
    assert list(manifest.parts()) == [manifest._to_bytes_by_library()]


def test_the_parse_is_let_go_of_once_read(tmp_path: Path) -> None:
    """Once read, the manifest's parse is not held (with 100,000 events, 150 MB): the writer
    takes the files the build kept, and the folder is ours; other bytes are parsed again."""
    stamp = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    state = EventState("c" * 32, "s" * 32, 0, stamp, stamp, stamp, stamp, False, "a.md")
    manifest = Manifest(date(2024, 1, 2), {"a": state}, {"events/a.html": "d" * 64})
    raw = manifest.to_bytes()
    (tmp_path / MANIFEST).write_bytes(raw)
    read = read_manifest(tmp_path)
    assert read == manifest
    assert write._PARSED is None
    assert read is not None
    assert write._manifest_files(raw) is read.files
    assert write._made_by_eventfeed(tmp_path / MANIFEST)
    other = raw.replace(b'"' + b"d" * 64, b'"e' + b"d" * 63)
    assert write._manifest_files(other) == {"events/a.html": "e" + "d" * 63}
    assert read_manifest(tmp_path) == manifest  # the same bytes, parsed again


def test_each_moment_is_read_once_and_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest names a build's few moments many times: each is parsed once, and the
    states it is read into share it."""
    first, second = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 6, 1, 12, tzinfo=UTC)
    events = {
        f"e{i}": EventState("c", "s", i, first, second, first, second if i else first, False, "")
        for i in range(3)
    }
    (tmp_path / MANIFEST).write_bytes(Manifest(date(2023, 6, 1), events, {}).to_bytes())
    parsed: list[str] = []

    def counting(text: str) -> datetime:
        parsed.append(text)
        return _parse_time(text)

    monkeypatch.setattr(state_module, "_parse_time", counting)
    back = read_manifest(tmp_path)
    assert back is not None
    assert sorted(parsed) == ["2023-01-01T00:00:00Z", "2023-06-01T12:00:00Z"]
    assert back.events == events
    times = [getattr(s, n) for s in back.events.values() for n in ("created", "last_modified")]
    assert len({id(t) for t in times}) == 2
