"""Components to bytes: icalendar's content lines, folded without a loop per character.

icalendar builds, escapes and orders every content line; only the last step, folding each line
to at most 75 octets (RFC 5545 section 3.1), is done here. icalendar folds with a Python loop
over the characters of each line, which took the largest single share of a large build. The
rule applied here is the same, so the bytes are identical (tests/test_serialise.py compares
both on generated text):

* a line of at most 74 octets is not folded; a longer one is cut into pieces of at most 74
  octets, each piece after the first starting with one space;
* a cut never falls inside a UTF-8 sequence;
* a piece that would end in a backslash or a caret moves that character to the next piece, so
  a TEXT escape (``\\n``, ``\\;``) or an RFC 6868 parameter escape (``^n``) is never split, a
  split some clients misread.
"""

from __future__ import annotations

import json
import json.encoder
from dataclasses import dataclass
from datetime import date, datetime

from icalendar import Event
from icalendar.cal.component import Component
from icalendar.prop import vText

#: the longest piece of a folded line, in octets, as icalendar cuts them
PIECE = 74
_ESCAPES = (0x5C, 0x5E)  # backslash, caret


def fold(line: str) -> bytes:
    """One content line as folded octets, with its CRLF."""
    data = line.encode("utf-8")
    size = len(data)
    if size <= PIECE:
        return data + b"\r\n"
    pieces = []
    start = 0
    while size - start > PIECE:
        end = start + PIECE
        while data[end] & 0xC0 == 0x80:  # a continuation octet: cut before its character
            end -= 1
        if data[end - 1] in _ESCAPES:
            end -= 1
        pieces.append(data[start:end])
        start = end
    pieces.append(data[start:])
    return b"\r\n ".join(pieces) + b"\r\n"


def component_bytes(component: Component) -> bytes:
    """``component.to_ical()``, folded here: the same bytes, in a fraction of the time."""
    return b"".join(fold(line) for line in component.content_lines() if line)


# --- writing components without building them ----------------------------------------------

#: Properties whose text icalendar escapes (vText); others of ours are URIs, written as given.
_TEXT = frozenset(
    {"UID", "SUMMARY", "DESCRIPTION", "LOCATION", "STATUS", "CLASS", "TRANSP", "X-ALT-DESC"}
)
_URI = frozenset({"URL", "CONFERENCE", "ORGANIZER"})


def escape_text(text: str) -> str:
    """TEXT escaping as icalendar does it (RFC 5545 section 3.3.11), in its order; a literal
    ``\\N`` is taken as a line break first, as icalendar takes it."""
    return (
        text.replace("\\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _core(name: str, value: object) -> tuple[str, object] | None:
    """The value as written, and what else shapes its line; None: icalendar writes it."""
    if isinstance(value, str):
        if name in _TEXT:
            return escape_text(value), "text"
        if name in _URI and not isinstance(value, vText) and value.isprintable():
            return value, "uri"
        return None  # icalendar writes it (and refuses a URI with a line break)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not -(2**31) <= value < 2**31:
            return None  # icalendar refuses it (RFC 5545 INTEGER)
        return str(value), "int"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return None
        stamp = (
            f"{value.year:04d}{value.month:02d}{value.day:02d}"
            f"T{value.hour:02d}{value.minute:02d}{value.second:02d}"
        )
        return stamp, value.tzinfo
    if isinstance(value, date):
        return f"{value.year:04d}{value.month:02d}{value.day:02d}", "date"
    if isinstance(value, list) and name == "CATEGORIES" and all(type(v) is str for v in value):
        return ",".join(escape_text(v) for v in value), "categories"
    return None


class Writer:
    """A component written as icalendar would write it, from the same ``add`` calls.

    ``add`` takes what :meth:`icalendar.cal.component.Component.add` takes. The first time a
    property of a given shape (name, kind of value, zone, parameters) is added, icalendar
    writes it; what comes before and after the value in that line is kept, and later values of
    the same shape are escaped and formatted here between the two. Values of any other kind
    (a recurrence rule, a position) are written by icalendar every time. Lines are ordered as
    icalendar orders them: its canonical order for the component, then by name, values of one
    name in the order added.
    """

    def __init__(self, kind: type[Component], *, jcal: bool = False) -> None:
        self._kind = kind
        self._lines: list[tuple[str, str]] = []
        #: jCal text of each property by name, names in the order first added (as icalendar
        #: keeps them); None when only the iCalendar text is wanted
        self._jcal: dict[str, list[str]] | None = {} if jcal else None

    def add(self, name: str, value: object, parameters: dict[str, str] | None = None) -> None:
        name = name.upper()
        core = _core(name, value)
        if core is not None:
            text, shape = core
            given = tuple(sorted(parameters.items())) if parameters else ()
            key = (self._kind, name, shape, given)
            frame = _FRAMES.get(key)
            if frame is None:
                frame = _FRAMES[key] = _frame(self._kind, name, value, parameters, text)
            around = frame.text
            jcal = self._jcal
            if around is not None and jcal is None:
                self._lines.append((name, around[0] + text + around[1]))
                return
            if around is not None and jcal is not None and frame.jcal is not None:
                self._lines.append((name, around[0] + text + around[1]))
                prefix, suffix = frame.jcal
                texts = jcal.get(name)
                if texts is None:
                    texts = jcal[name] = []
                texts.append(prefix + _jcal_values(value, suffix) + "]")
                return
        component = _icalendar_component(self._kind, name, value, parameters)
        self._lines.extend((name, line) for line in _lines_of(component))
        if self._jcal is not None:
            self._jcal.setdefault(name, []).extend(
                jcal_text(item) for item in component.to_jcal()[1]
            )

    def to_bytes(self) -> bytes:
        order = _ORDER.get(self._kind)
        if order is None:
            names: tuple[str, ...] = tuple(self._kind.canonical_order or ())
            order = _ORDER[self._kind] = {n: i for i, n in enumerate(names)}
        last = len(order)
        ranked = sorted(
            self._lines,
            key=lambda item: (order.get(item[0], last), item[0] if item[0] not in order else ""),
        )
        begin = f"BEGIN:{self._kind.name}"
        end = f"END:{self._kind.name}"
        return fold(begin) + b"".join(fold(line) for _, line in ranked) + fold(end)

    def jcal(self) -> str:
        """The component as icalendar's ``to_jcal()`` gives it, as :func:`jcal_text`."""
        assert self._jcal is not None, "a Writer made without jcal=True"
        props = ",".join(text for texts in self._jcal.values() for text in texts)
        return f"[{jcal_text(str(self._kind.name).lower())},[{props}],[]]"


def tzid_param(value: datetime) -> str | None:
    """The TZID icalendar gives a DATE-TIME in ``value``'s zone (None: written in UTC)."""
    return _tzids.get(value.tzinfo) if value.tzinfo in _tzids else _tzid_of(value)


def _tzid_of(value: datetime) -> str | None:
    sample = Event()
    sample.add("dtstart", value)
    tzid = sample["DTSTART"].params.get("TZID")
    found = _tzids[value.tzinfo] = None if tzid is None else str(tzid)
    return found


@dataclass(frozen=True)
class _Frame:
    """What icalendar writes around a value of one shape.

    ``text``: the content line before and after the value as written here (None: icalendar
    writes every value of the shape); ``jcal``: the jCal text of the property up to its first
    value, and what icalendar appends to a date-time's value ("Z" for UTC), or None.
    """

    text: tuple[str, str] | None
    jcal: tuple[str, str] | None


_tzids: dict[object, str | None] = {}
_FRAMES: dict[tuple[object, ...], _Frame] = {}
_ORDER: dict[type[Component], dict[str, int]] = {}

#: JSON as the calendars write it: sorted keys, no insignificant space, UTF-8 as is
jcal_text = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode
#: what that encoder writes for a string
_json_string = json.encoder.encode_basestring


def _jcal_values(value: object, suffix: str) -> str:
    """The values of a property of a shape :func:`_core` knows, as icalendar's jCal gives them
    (its ``strftime`` formats, for the years where an f-string gives the same digits)."""
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, datetime):
        if value.year < 1000:
            return _json_string(value.strftime("%Y-%m-%dT%H:%M:%S") + suffix)
        return (
            f'"{value.year}-{value.month:02d}-{value.day:02d}'
            f'T{value.hour:02d}:{value.minute:02d}:{value.second:02d}{suffix}"'
        )
    if isinstance(value, date):
        if value.year < 1000:
            return _json_string(value.strftime("%Y-%m-%d"))
        return f'"{value.year}-{value.month:02d}-{value.day:02d}"'
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, list):
        return ",".join(_json_string(str(v)) for v in value) if value else '""'
    return jcal_text(value)


def _icalendar_component(
    kind: type[Component], name: str, value: object, parameters: dict[str, str] | None
) -> Component:
    """A component of ``kind`` holding only this property, added by icalendar."""
    component = kind()
    if parameters:
        component.add(name, value, parameters=dict(parameters))
    else:
        component.add(name, value)
    return component


def _lines_of(component: Component) -> list[str]:
    lines = [str(line) for line in component.content_lines() if line]
    return lines[1:-1]  # without BEGIN and END


def _frame(
    kind: type[Component], name: str, value: object, parameters: dict[str, str] | None, text: str
) -> _Frame:
    """What icalendar writes around ``text`` and around the value in jCal, for this shape.

    Each is None when icalendar's output for this value is not the form assumed here (one
    line that holds ``text`` as written here; one jCal property whose values are those of
    :func:`_jcal_values`); then icalendar writes every value of the shape.
    """
    component = _icalendar_component(kind, name, value, parameters)
    return _Frame(_text_frame(_lines_of(component), text), _jcal_frame(component, value))


def _text_frame(lines: list[str], text: str) -> tuple[str, str] | None:
    if len(lines) != 1:
        return None
    line = lines[0]
    for suffix in ("", "Z"):
        if line.endswith(":" + text + suffix):
            return line[: len(line) - len(text) - len(suffix)], suffix
    return None


def _jcal_frame(component: Component, value: object) -> tuple[str, str] | None:
    items = component.to_jcal()[1]
    if len(items) != 1 or len(items[0]) < 4:
        return None
    head = jcal_text(items[0][:3])
    values = jcal_text(items[0][3:])[1:-1]
    for suffix in ("", "Z") if isinstance(value, datetime) else ("",):
        if values == _jcal_values(value, suffix):
            return head[:-1] + ",", suffix
    return None
