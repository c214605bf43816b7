"""Build history: what each event looked like in the previous build, and when it changed.

Calendar clients and feed readers decide "is this new?" from SEQUENCE, DTSTAMP, LAST-MODIFIED
(RFC 5545 sections 3.8.7.2-4, 3.8.7.4) and Atom's ``updated`` (RFC 4287 section 4.2.15). Those
must follow the record's real history, not the build's clock. The previous build leaves a
manifest in ``out/``; the next build reads it and moves an event's times only when its content
hash changed. A change to time, place, status or recurrence (the *schedule*) also raises
SEQUENCE; a wording fix does not.

"now" is a parameter: it is consulted only for an event that changed without a newer
``updated`` date in its record, and what it gives is then kept in the manifest, so rebuilding
gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import StateError
from .event import Event
from .paths import MANIFEST
from .write import manifest_json, manifest_read

FORMAT = 1


@dataclass(frozen=True)
class EventState:
    content: str
    schedule: str
    sequence: int
    created: datetime
    last_modified: datetime
    dtstamp: datetime
    published: datetime
    cancelled: bool
    source: str


#: EventState's fields in order; ``asdict`` would deep-copy every value of every event
_FIELDS = tuple(f.name for f in fields(EventState))


@dataclass(frozen=True)
class Manifest:
    as_of: date
    events: Mapping[str, EventState]
    files: Mapping[str, str]
    #: the digest of the bytes it was read from (:func:`read_manifest`); "" for one made
    digest: str = field(default="", compare=False)
    #: the bytes it was read from (:func:`read_manifest`); empty for one made
    raw: bytes = field(default=b"", compare=False, repr=False)

    def to_bytes(self) -> bytes:
        """The manifest as ``json.dumps(..., indent=1, ensure_ascii=False)`` writes it."""
        return b"".join(self.parts())

    def parts(
        self,
        head: Sequence[bytes] | None = None,
        listed: ListedFiles | None = None,
        previous: Manifest | None = None,
    ) -> Iterator[bytes]:
        """The bytes of :meth:`to_bytes`, a few thousand lines at a time (with 100,000 events
        a manifest is tens of megabytes, which the build writes without joining).

        That indenting encoder is written in Python and was the build's slowest way to spell
        a few strings; the same text is put together here from the C encoder's strings, and
        anything but the plain values a manifest holds takes the library's own way.

        ``head``: what :func:`manifest_head` gave for this manifest's day and events, made
        beforehand (the build makes it while the calendars are made beside); ``listed``:
        what :func:`files_listed` gave for some of its files, made beforehand too;
        ``previous``: a manifest read back that this very code wrote, whose text of the
        files is taken when it names the same ones (:func:`_patched_files`)."""
        if head is None:
            head = manifest_head(self.as_of, self.events)
        if head is None or not _plain_files(self.files):
            yield self._to_bytes_by_library()
            return
        yield from head
        patched = _patched_files(self.files, previous) if previous is not None else None
        if patched is not None:
            yield from patched
            return
        yield from _joined(_files_pieces(self.files, listed))

    def _to_bytes_by_library(self) -> bytes:
        data = {
            "generator": "eventfeed",
            "format": FORMAT,
            "as_of": self.as_of.isoformat(),
            "events": {
                key: {name: _iso(getattr(state, name)) for name in _FIELDS}
                for key, state in sorted(self.events.items())
            },
            "files": dict(sorted(self.files.items())),
        }
        return (json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode()


class _NotPlain(Exception):
    """A value the fast manifest writer does not spell; the library's encoder does."""


_string = json.encoder.encode_basestring  # what json.dumps uses with ensure_ascii=False


def _plain(value: Any, times: dict[datetime, str]) -> str:
    """One value as json.dumps spells it (the values an EventState holds)."""
    if isinstance(value, str):
        return _string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if isinstance(value, datetime):
        if value.tzinfo is not UTC:  # equal in one zone is not always the same instant
            return _string(_iso(value))
        text = times.get(value)
        if text is None:
            text = times[value] = _string(_iso(value))
        return text
    raise _NotPlain


#: pieces of text joined into one part of :meth:`Manifest.parts`
_PIECES = 1 << 12


def manifest_head(
    as_of: date, events: Mapping[str, EventState], previous: Manifest | None = None
) -> list[bytes] | None:
    """The text of a manifest of ``as_of`` and ``events`` up to its files, in parts (all but
    the files are known before the build's files are made); None when a state holds a value
    :func:`_plain` does not spell (then the library writes the whole manifest).

    ``previous``: a manifest read back (:func:`read_manifest`) that this very code wrote
    (the caller knows it: :func:`eventfeed.build.made_for`). When it names the same events,
    its text is taken, with the day and the events whose state is not the very one it
    holds spelled again (:func:`_patched_head`): with 100,000 events, 0.05 s after one
    edit, against about half a second for the whole text.
    """
    if previous is not None:
        patched = _patched_head(as_of, events, previous)
        if patched is not None:
            return patched
    if not _plain_events(events):
        return None
    return list(_joined(_head_pieces(as_of, events)))


def _patched_head(
    as_of: date, events: Mapping[str, EventState], previous: Manifest
) -> list[bytes] | None:
    """:func:`manifest_head` of ``as_of`` and ``events``, from the text of ``previous``,
    which this code wrote; None when it does not name the same events, or its text does
    not begin as this code spells its day, or a changed state holds a value :func:`_plain`
    does not spell (those read back are plain).

    A manifest spells its day in its first lines and each event in a block of lines of its
    own, in the order of their ids, which nothing else in it begins as they do (a block's
    first line is its id, indented by two spaces; values are indented by three). The blocks
    of the events whose state changed are found in that order, each searched for from the
    one before, so the text is gone through once."""
    raw = previous.raw
    if not raw or events.keys() != previous.events.keys():
        return None
    times: dict[datetime, str] = {}
    old = "".join(_opening(previous.as_of, times)).encode()
    end = raw.find(b'\n },\n "files": {')
    if not raw.startswith(old) or end < 0:
        return None
    changed = sorted(k for k, state in events.items() if state is not previous.events[k])
    if not _plain_events({key: events[key] for key in changed}):
        return None
    parts = ["".join(_opening(as_of, times)).encode()]
    at = len(old)
    labels = _labels()
    for key in changed:
        start = raw.find(f"\n  {_string(key)}: {{".encode(), at, end)
        stop = raw.find(b"\n  }", start, end) if start >= 0 else -1
        if stop < 0:
            return None
        parts.append(raw[at:start])
        parts.append(_block(key, events[key], labels, times).encode())
        at = stop + len(b"\n  }")
    parts.append(raw[at : end + len(b"\n }")])
    return parts


def _patched_files(files: Mapping[str, str], previous: Manifest) -> list[bytes] | None:
    """The text of a manifest's files (:func:`_files_pieces`) from the text of ``previous``,
    which this code wrote, with the lines of the files whose digest changed spelled again;
    None when it does not name the same files, or its text does not end as this code
    spells files. With 100,000 events, a rebuild after one edit spells the lines of about
    200,000 files otherwise, for the few that changed (half a second).

    Each file has a line of its own, in the order of their paths, which nothing else in the
    text begins as it does (two spaces, then the path as a JSON string; a string holds no
    line break). Each changed line is searched for from the one before, whole (its old
    digest and what follows it), so the text is gone through once."""
    raw, old = previous.raw, previous.files
    start = raw.find(b'\n },\n "files": {\n  ')
    if not raw or start < 0 or not raw.endswith(b"\n }\n}\n") or files.keys() != old.keys():
        return None
    changed = sorted(path for path, digest in files.items() if old[path] != digest)
    if not _plain_files({path: files[path] for path in changed}):
        return None
    at = start + len(b"\n }")
    parts = []
    for path in changed:
        line = f"\n  {_file_line(path, old[path])}".encode()
        found = raw.find(line, at)
        after = found + len(line)
        if found < 0 or raw[after : after + 1] not in (b",", b"\n"):
            return None
        parts.append(raw[at:found])
        parts.append(f"\n  {_file_line(path, files[path])}".encode())
        at = after
    parts.append(raw[at:])
    return parts


def _joined(pieces: Iterable[str]) -> Iterator[bytes]:
    """Pieces of text as the bytes of :data:`_PIECES` of them at a time."""
    held: list[str] = []
    for piece in pieces:
        held.append(piece)
        if len(held) >= _PIECES:
            yield "".join(held).encode()
            held.clear()
    yield "".join(held).encode()


def _plain_events(events: Mapping[str, EventState]) -> bool:
    """Whether every key and value of the events is one :func:`_plain` spells (by their types,
    gathered in one pass per field)."""
    if not all(issubclass(kind, str) for kind in set(map(type, events))):
        return False
    kinds: set[type] = set()
    for name in _FIELDS:
        kinds.update(map(type, map(operator.attrgetter(name), events.values())))
    return all(kind in (bool, int) or issubclass(kind, (str, datetime)) for kind in kinds)


def _plain_files(files: Mapping[str, str]) -> bool:
    names = set(map(type, files)) | set(map(type, files.values()))
    return all(issubclass(kind, str) for kind in names)


def _opening(as_of: date, times: dict[datetime, str]) -> Iterator[str]:
    """The manifest's text up to its events."""
    yield '{\n "generator": "eventfeed",\n "format": '
    yield _plain(FORMAT, times)
    yield ',\n "as_of": '
    yield _plain(as_of.isoformat(), times)
    yield ',\n "events": {'


def _labels() -> list[str]:
    """What comes before each field's value in an event's block."""
    return [
        ("\n   " if n == 0 else ",\n   ") + f"{_string(name)}: " for n, name in enumerate(_FIELDS)
    ]


def _block(key: str, state: EventState, labels: list[str], times: dict[datetime, str]) -> str:
    """One event's block of lines, from the line break before its id to its closing brace."""
    parts = ["\n  ", _string(key), ": {"]
    for label, name in zip(labels, _FIELDS, strict=True):
        parts.append(label)
        parts.append(_plain(getattr(state, name), times))
    parts.append("\n  }")
    return "".join(parts)


def _head_pieces(as_of: date, events: Mapping[str, EventState]) -> Iterator[str]:
    """The manifest's text up to its files, in pieces; every value must be plain
    (:func:`_plain_events`)."""
    times: dict[datetime, str] = {}  # equal UTC times spell the same; states share many
    yield from _opening(as_of, times)
    labels = _labels()
    separator = ""
    for key, state in sorted(events.items()):
        yield separator + _block(key, state, labels, times)
        separator = ","
    yield "\n }" if events else "}"


#: Some of a manifest's files, and the line of each in path order (:func:`files_listed`).
ListedFiles = tuple[dict[str, str], list[tuple[str, str]]]


def files_listed(files: Mapping[str, str]) -> ListedFiles | None:
    """The manifest's lines of ``files`` (path: digest), in path order, spelled before the
    rest of the build's files are made (the build does it while the calendars are made
    beside): with 100,000 events, those of the 200,000 files of the events. None when one is
    not plain (:func:`_plain_files`)."""
    if not _plain_files(files):
        return None
    known = dict(files)
    return known, [(path, _file_line(path, digest)) for path, digest in sorted(known.items())]


def _file_line(path: str, digest: str) -> str:
    return f"{_string(path)}: {_string(digest)}"


def _files_pieces(files: Mapping[str, str], listed: ListedFiles | None = None) -> Iterator[str]:
    """The rest of the manifest's text: its files (every one plain, :func:`_plain_files`),
    with the lines ``listed`` spelled beforehand for the files it names with the same
    digests (if any other: every line spelled here)."""
    yield ',\n "files": {'
    lines: Iterable[str] | None = None
    if listed is not None:
        known, spelled = listed
        if all(files.get(path) == digest for path, digest in known.items()):
            both = spelled + [(p, _file_line(p, d)) for p, d in files.items() if p not in known]
            # (the lines spelled before are already in order: the sort merges the few others
            # in, instead of sorting every line again)
            both.sort(key=_first_item)
            lines = map(_second_item, both)
    if lines is None:
        lines = (_file_line(path, digest) for path, digest in sorted(files.items()))
    separator = "\n  "
    for line in lines:
        yield separator + line
        separator = ",\n  "
    yield "\n }\n}\n" if files else "}\n}\n"


_first_item, _second_item = operator.itemgetter(0), operator.itemgetter(1)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        if value.year < 1000:  # isoformat pads the year, strftime's %Y does not
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")
        return value.isoformat(timespec="seconds")[:19] + "Z"
    return value


#: what _iso writes; checked before the quicker fromisoformat, which reads more than this
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _parse_time(value: str) -> datetime:
    if type(value) is str and _TIME.fullmatch(value):
        return datetime.fromisoformat(value)  # "Z" gives the same UTC as strptime did
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def read_manifest(out_dir: Path, known: Manifest | None = None) -> Manifest | None:
    """The manifest in ``out_dir``, or None; ``known``: one read before, taken again when
    the file holds the same bytes."""
    path = out_dir / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(
            f"{path}: cannot read the previous build's manifest: {exc.strerror}"
        ) from None
    if known is not None and known.raw == raw:
        manifest_read(raw, known.files)
        return known
    try:
        data = manifest_json(raw)
        if data.get("generator") != "eventfeed" or data.get("format") != FORMAT:
            raise ValueError("not an eventfeed manifest of a known format")
        # A manifest names few moments, many times each (with 100,000 events, about 4,000
        # among 400,000 times): each is read once, and the states share it.
        times: dict[str, datetime] = {}

        def moment(value: str) -> datetime:
            found = times.get(value)
            if found is None:
                found = times[value] = _parse_time(value)
            return found

        events = {
            key: EventState(
                content=str(v["content"]),
                schedule=str(v["schedule"]),
                sequence=int(v["sequence"]),
                created=moment(v["created"]),
                last_modified=moment(v["last_modified"]),
                dtstamp=moment(v["dtstamp"]),
                published=moment(v["published"]),
                cancelled=bool(v["cancelled"]),
                source=str(v["source"]),
            )
            for key, v in data["events"].items()
        }
        files = {str(k): str(v) for k, v in data["files"].items()}
        manifest = Manifest(
            as_of=date.fromisoformat(data["as_of"]),
            events=events,
            files=files,
            digest=file_digest(raw),
            raw=raw,
        )
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise StateError(
            f"{path}: the previous build's manifest is damaged ({exc}); restore it from git "
            "(git checkout -- out/manifest.json) so event history is kept"
        ) from None
    manifest_read(raw, files)
    return manifest


#: one encoder for every digest (json.dumps with options would make one per call)
_DIGEST_ENCODER = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":")
)


def _digest(value: Any) -> str:
    text = _DIGEST_ENCODER.encode(value)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


#: The record's fields whose change raises SEQUENCE (with the event's zone).
SCHEDULE = (
    "start",
    "end",
    "duration",
    "location",
    "online",
    "status",
    "rrule",
    "exdates",
    "rdates",
    "overrides",
)


def schedule_fields(event: Event) -> dict[str, Any]:
    """What a subscriber's calendar must be told about with a raised SEQUENCE."""
    data = event.record.model_dump(mode="json", include=set(SCHEDULE))
    data["timezone"] = event.tzid
    return data


def content_fields(event: Event) -> dict[str, Any]:
    data = event.record.model_dump(mode="json")
    data["_body"] = event.body
    data["_timezone"] = event.tzid
    data["_language"] = event.language
    data["_organisations"] = [o.__dict__ for o in (*event.organizers, *event.partners)]
    return data


def content_digests(event: Event) -> tuple[str, str]:
    """The digests of the event's content (what it says) and schedule (when and where); a
    pure function of the record, its body and the settings, so the loader keeps them in the
    record store and a rebuild works them out only for records that changed."""
    found = event.digests
    if found is None:
        content = content_fields(event)
        # The schedule is a part of what the content holds: taken from its dump, the record
        # is serialised once, not twice.
        schedule = {name: content[name] for name in SCHEDULE}
        schedule["timezone"] = event.tzid
        found = (_digest(content), _digest(schedule))
        event.keep_digests(found)
    return found


def _utc(event: Event, value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    return event.aware(value).astimezone(UTC)


def below(root: str, shown: str) -> str:
    """A record's path below the events folder (``/`` between names), from its name as shown
    (``shown``, beginning with the folder as shown, ``root``; :func:`eventfeed.load.
    display_path`): what the manifest names it by, the same from whichever folder the build
    is run, and never a path of the machine it ran on."""
    if root == ".":
        return shown
    prefix = root.rstrip("/") + "/"
    return shown[len(prefix) :] if shown.startswith(prefix) else shown


def advance(
    previous: Manifest | None, events: Iterable[Event], now: datetime, root: str = "."
) -> dict[str, EventState]:
    """The history of every event after this build. Pure: ``now`` is a parameter. ``root``:
    the events folder as the events' sources show it (:attr:`eventfeed.load.Site.root`)."""
    now = history_clock(now)
    old = previous.events if previous else {}
    return {event.id: advanced(old, event, now, root) for event in events}


def history_clock(now: datetime) -> datetime:
    """The build's clock as the history keeps it (:func:`advanced` takes it so)."""
    return now.astimezone(UTC).replace(microsecond=0)


def advanced(old: Mapping[str, EventState], event: Event, now: datetime, root: str) -> EventState:
    """The history of one event after this build (:func:`advance`), from the last build's
    (``old``, by event id); ``now`` as :func:`history_clock` gives it."""
    content, schedule = content_digests(event)
    prev = old.get(event.id)
    source = below(root, event.source)
    if prev is not None and prev.content == content:  # the most, at a rebuild
        state = prev if prev.source == source else _replace(prev, source=source)
    else:
        state = _changed(event, prev, content, schedule, now, source)
    sequence = event.brief.sequence
    if sequence is not None and sequence != state.sequence:
        state = _replace(state, sequence=sequence)
    return state


def _changed(
    event: Event,
    prev: EventState | None,
    content: str,
    schedule: str,
    now: datetime,
    source: str,
) -> EventState:
    """The history of an event that is new (``prev`` None) or whose content changed; only
    these read the record's dates (of its brief: the history of a cold build leaves every
    record packed, to be made by the workers that compile it)."""
    brief = event.brief
    updated = _utc(event, brief.updated)
    published = _utc(event, brief.published)
    if prev is None:
        last_modified = updated or published or now
        created = min(published or last_modified, last_modified)
        return EventState(
            content=content,
            schedule=schedule,
            sequence=0,
            created=created,
            last_modified=last_modified,
            dtstamp=last_modified,
            published=published or created,
            cancelled=event.cancelled,
            source=source,
        )
    moment = updated if updated is not None and updated > prev.last_modified else now
    last_modified = max(moment, prev.last_modified + timedelta(seconds=1))
    moved = prev.schedule != schedule
    return EventState(
        content=content,
        schedule=schedule,
        sequence=prev.sequence + 1 if moved else prev.sequence,
        created=prev.created,
        last_modified=last_modified,
        dtstamp=last_modified if moved else prev.dtstamp,
        published=published if published is not None else prev.published,
        cancelled=event.cancelled,
        source=source,
    )


def _replace(state: EventState, **changes: Any) -> EventState:
    """``state`` with some fields changed (``dataclasses.asdict`` would deep-copy the rest)."""
    values = {name: getattr(state, name) for name in _FIELDS}
    values.update(changes)
    return EventState(**values)


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
