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
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from icalendar import Event
from icalendar.cal.component import Component
from icalendar.prop import vText

#: the longest piece of a folded line, in octets, as icalendar cuts them
PIECE = 74
_ESCAPES = b"\\^"  # backslash, caret


def fold(line: str) -> bytes:
    """One content line as folded octets, with its CRLF."""
    return _folded(line.encode("utf-8")) + b"\r\n"


def _folded(data: bytes) -> bytes:
    """A content line's octets, folded, without the CRLF."""
    size = len(data)
    if size <= PIECE:
        return data
    pieces: list[bytes] = []
    append = pieces.append
    start = 0
    stop = size - PIECE
    while start < stop:
        end = start + PIECE
        octet = data[end]
        while 0x80 <= octet < 0xC0:  # a continuation octet: cut before its character
            end -= 1
            octet = data[end]
        if data[end - 1] in _ESCAPES:
            end -= 1
        append(data[start:end])
        start = end
    append(data[start:])
    return b"\r\n ".join(pieces)


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
    # each replacement is a pass over the text: those of characters it lacks are skipped
    if "\\" in text:
        text = text.replace("\\N", "\n").replace("\\", "\\\\")
    text = text.replace(";", "\\;").replace(",", "\\,")
    if "\r" in text:
        return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return text.replace("\n", "\\n")


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
        return _stamp(value), value.tzinfo
    if isinstance(value, date):
        return f"{value.year:04d}{value.month:02d}{value.day:02d}", "date"
    if isinstance(value, list) and name == "CATEGORIES" and all(type(v) is str for v in value):
        return ",".join(escape_text(v) for v in value), "categories"
    return None


def _stamp(value: datetime) -> str:
    """A DATE-TIME's digits as icalendar writes them (RFC 5545 section 3.3.5)."""
    return "%04d%02d%02dT%02d%02d%02d" % (  # noqa: UP031 (twice as fast as an f-string here)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
    )


# --- the values of each shape, as iCalendar text and as jCal --------------------------------
#
# A frame's ``text_of`` takes a value of the shape the frame was made for (the same type, the
# same zone) and gives what :func:`_core` gives for it, or None where :func:`_core` gives None
# (then icalendar writes the value); its ``jcal_of`` gives what :func:`_jcal_values` gives,
# from the value and that text.


def _uri_text(value: str) -> str | None:
    return value if value.isprintable() else None


def _int_text(value: int) -> str | None:
    return str(value) if -(2**31) <= value < 2**31 else None


def _date_text(value: date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _categories_text(value: list[str]) -> str | None:
    if not all(type(v) is str for v in value):
        return None
    return ",".join(escape_text(v) for v in value)


def _string_jcal(value: str, text: str, suffix: str) -> str:
    return _json_string(value)


def _datetime_jcal(value: datetime, text: str, suffix: str) -> str:
    if value.year < 1000:
        return _jcal_values(value, suffix)
    t = text
    return f'"{t[:4]}-{t[4:6]}-{t[6:8]}T{t[9:11]}:{t[11:13]}:{t[13:15]}{suffix}"'


def _date_jcal(value: date, text: str, suffix: str) -> str:
    if value.year < 1000:
        return _jcal_values(value, suffix)
    return f'"{text[:4]}-{text[4:6]}-{text[6:]}"'


def _other_jcal(value: object, text: str, suffix: str) -> str:
    return _jcal_values(value, suffix)


#: by shape (:func:`_core`; a zone for a DATE-TIME): the frame's ``text_of`` and ``jcal_of``
_FORMS: dict[object, tuple[Callable[[Any], str | None], Callable[[Any, str, str], str]]] = {
    "text": (escape_text, _string_jcal),
    "uri": (_uri_text, _string_jcal),
    "int": (_int_text, _other_jcal),
    "date": (_date_text, _date_jcal),
    "categories": (_categories_text, _other_jcal),
}
_DATETIME_FORM = (_stamp, _datetime_jcal)


class Writer:
    """A component written as icalendar would write it, from the same ``add`` calls.

    ``add`` takes what :meth:`icalendar.cal.component.Component.add` takes. The first time a
    property of a given shape (name, type of value, zone, parameters) is added, icalendar
    writes it; what comes before and after the value in that line is kept, and later values of
    the same shape are escaped and formatted here between the two. Values of any other kind
    (a recurrence rule, a position) are written by icalendar every time. Lines are ordered as
    icalendar orders them: its canonical order for the component, then by name, values of one
    name in the order added.
    """

    __slots__ = ("_jcal", "_kind", "_lines")

    def __init__(self, kind: type[Component], *, jcal: bool = False) -> None:
        self._kind = kind
        #: each line with its place in icalendar's order (:func:`_rank`)
        self._lines: list[tuple[tuple[int, str], str]] = []
        #: jCal text of each property by name, names in the order first added (as icalendar
        #: keeps them); None when only the iCalendar text is wanted
        self._jcal: dict[str, list[str]] | None = {} if jcal else None

    def add(self, name: str, value: object, parameters: dict[str, str] | None = None) -> None:
        name = name.upper()
        cls = type(value)
        key = (
            self._kind,
            name,
            cls,
            value.tzinfo if isinstance(value, datetime) else None,
            tuple(parameters.items()) if parameters else (),
        )
        frame = _FRAMES.get(key)
        if frame is None:
            core = _core(name, value)
            if core is None:
                self._add_slowly(name, value, parameters)
                return
            frame = _FRAMES[key] = _frame(self._kind, name, value, parameters, *core)
        jcal = self._jcal
        last = frame.last
        if last and last[0] == value and (jcal is None or last[2]):
            # the same value as the shape's last one (a time stamp, a status): the same text
            line, item = last[1], last[2]
        else:
            around = frame.text
            framed = frame.jcal
            if around is None or (jcal is not None and framed is None):
                self._add_slowly(name, value, parameters)
                return
            text = frame.text_of(value)
            if text is None:
                self._add_slowly(name, value, parameters)
                return
            line = around[0] + text + around[1]
            item = ""
            if jcal is not None:
                assert framed is not None
                item = framed[0] + frame.jcal_of(value, text, framed[1]) + "]"
            frame.last = (value.copy() if type(value) is list else value, line, item)
        self._lines.append((frame.rank, line))
        if jcal is not None:
            texts = jcal.get(name)
            if texts is None:
                texts = jcal[name] = []
            texts.append(item)

    def _add_slowly(self, name: str, value: object, parameters: dict[str, str] | None) -> None:
        component = _icalendar_component(self._kind, name, value, parameters)
        rank = _rank(self._kind, name)
        self._lines.extend((rank, line) for line in _lines_of(component))
        if self._jcal is not None:
            self._jcal.setdefault(name, []).extend(
                jcal_text(item) for item in component.to_jcal()[1]
            )

    def to_bytes(self) -> bytes:
        lines = sorted(self._lines, key=_first)
        kind = self._kind.name
        # a line of ASCII no longer than a piece needs no folding
        body = b"\r\n".join(
            [
                line.encode() if len(line) <= PIECE and line.isascii() else _folded(line.encode())
                for _, line in lines
            ]
        )
        if not lines:
            return f"BEGIN:{kind}\r\nEND:{kind}\r\n".encode()
        return b"".join((f"BEGIN:{kind}\r\n".encode(), body, f"\r\nEND:{kind}\r\n".encode()))

    def jcal(self) -> str:
        """The component as icalendar's ``to_jcal()`` gives it, as :func:`jcal_text`."""
        assert self._jcal is not None, "a Writer made without jcal=True"
        props = ",".join(text for texts in self._jcal.values() for text in texts)
        return f"[{jcal_text(str(self._kind.name).lower())},[{props}],[]]"


#: the place of a line in its component (its first item)
_first = operator.itemgetter(0)


def _rank(kind: type[Component], name: str) -> tuple[int, str]:
    """Where icalendar puts a property: its canonical order for ``kind``, then by name."""
    found = _RANKS.get((kind, name))
    if found is None:
        order: tuple[str, ...] = tuple(kind.canonical_order or ())
        found = (order.index(name), "") if name in order else (len(order), name)
        _RANKS[kind, name] = found
    return found


def tzid_param(value: datetime) -> str | None:
    """The TZID icalendar gives a DATE-TIME in ``value``'s zone (None: written in UTC)."""
    return _tzids.get(value.tzinfo) if value.tzinfo in _tzids else _tzid_of(value)


def _tzid_of(value: datetime) -> str | None:
    sample = Event()
    sample.add("dtstart", value)
    tzid = sample["DTSTART"].params.get("TZID")
    found = _tzids[value.tzinfo] = None if tzid is None else str(tzid)
    return found


@dataclass
class _Frame:
    """What icalendar writes around a value of one shape.

    ``text``: the content line before and after the value as written here (None: icalendar
    writes every value of the shape); ``jcal``: the jCal text of the property up to its first
    value, and what icalendar appends to a date-time's value ("Z" for UTC), or None.
    """

    text: tuple[str, str] | None
    jcal: tuple[str, str] | None
    #: a value of this shape as iCalendar text (None: icalendar writes it), and as jCal
    text_of: Callable[[Any], str | None]
    jcal_of: Callable[[Any, str, str], str]
    #: where its lines go in the component (:func:`_rank`)
    rank: tuple[int, str]
    #: the last value written here, its line and its jCal text ("" when not made): many
    #: components in a row have the same time stamps, status, class
    last: tuple[object, str, str] | tuple[()] = ()


_tzids: dict[object, str | None] = {}
_FRAMES: dict[tuple[object, ...], _Frame] = {}
_RANKS: dict[tuple[type[Component], str], tuple[int, str]] = {}

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
    kind: type[Component],
    name: str,
    value: object,
    parameters: dict[str, str] | None,
    text: str,
    shape: object,
) -> _Frame:
    """What icalendar writes around ``text`` and around the value in jCal, for this shape.

    Each is None when icalendar's output for this value is not the form assumed here (one
    line that holds ``text`` as written here; one jCal property whose values are those of
    :func:`_jcal_values`); then icalendar writes every value of the shape.
    """
    component = _icalendar_component(kind, name, value, parameters)
    return _Frame(
        _text_frame(_lines_of(component), text),
        _jcal_frame(component, value),
        *_FORMS.get(shape, _DATETIME_FORM),  # a zone: a DATE-TIME
        _rank(kind, name),
    )


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
