"""Reading a record file: bytes -> (front matter data, line of every key, Markdown body).

YAML is read defensively, because records arrive through pull requests from many hands:

* the C parser composes a node tree (no constructors, so no Python objects from tags);
* aliases are refused outright, which also makes alias-expansion bombs impossible;
* duplicate keys are refused (PyYAML would silently keep the last one);
* nesting depth and file size are bounded. libyaml's composer recurses once per level, and
  100,000 nested ``[`` would overflow the C stack and kill the process, so a text that could
  nest deeply (many ``[{-:?`` indicators) has its depth measured on the parser's event stream
  before anything is composed; any other text nests at most as deep as it has indicators, which
  the composer survives, and its depth is checked on the composed nodes;
* text is refused if it holds control characters other than tab and line breaks (they are
  invalid in XML feeds, and YAML reads U+0085, U+2028 and U+2029 as line breaks, which would
  shift every line number reported after them);
* plain scalars resolve by the YAML 1.2 core schema, so ``NO`` (Norway) stays a string and
  ``2022-12-07`` stays text for the model to parse, never a YAML 1.1 timestamp;
* the file must be UTF-8 (a BOM is accepted) and CRLF line endings are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

try:  # the C composer is about ten times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Loader
    from yaml._yaml import CParser as _ParserBase
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]
    from yaml import SafeLoader as _ParserBase  # type: ignore[assignment]

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 12
#: Longest integer literal read as a number (Python refuses to convert above 4,300 digits).
MAX_INT_DIGITS = 30

KeyPath = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
#: The plain scalars the core schema reads as null or booleans, spelled out for a dict lookup.
_WORDS: dict[str, bool | None] = {
    **dict.fromkeys(("~", "null", "Null", "NULL", ""), None),
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
}
#: C0 and C1 controls except tab and line breaks, YAML 1.1's extra line breaks, non-characters.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "!"})
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
#: _INT or _FLOAT in one match: group 1 is set when the value is an integer.
_NUMBER = re.compile(r"^[-+]?(?:([0-9]+)$|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$)")
_SCALAR_TAGS = frozenset(
    {
        "tag:yaml.org,2002:str",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:timestamp",
        "!",
    }
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: More ``[{-:?`` than this and a text could nest deeper than the composer's recursion should go.
_COMPOSE_SAFE_INDICATORS = 200


class FrontMatterError(Exception):
    """A problem that stops a file from being read at all (line is 1-based, 0 if unknown)."""

    def __init__(self, line: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Document:
    data: dict[str, Any]
    lines: dict[KeyPath, int]
    body: str
    #: line of the opening ``---`` (1 unless the file starts with blank lines)
    first_line: int


def decode(raw: bytes, *, limit: int = MAX_FILE_BYTES) -> str:
    """Decode a user file strictly as UTF-8 with normalised line endings."""
    if len(raw) > limit:
        raise FrontMatterError(
            0,
            f"file is {len(raw):,} bytes, over the limit of {limit:,}",
            "move long material to a linked document; records hold a summary",
        )
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise FrontMatterError(line, "file contains a NUL byte", "save the file as UTF-8 text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FrontMatterError(
            line,
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            "re-save the file with UTF-8 encoding",
        ) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    bad = _FORBIDDEN.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise FrontMatterError(
            line,
            f"file contains the control character U+{ord(bad.group()):04X}",
            "remove it: only tabs and line breaks are allowed besides printable text",
        )
    return text


def split(text: str) -> tuple[str, str, int]:
    """Split text into (front matter, body, line of the opening fence)."""
    start = 0  # index of the first line that is not blank
    pos = 0  # where that line starts in the text
    while True:
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if line.strip():
            break
        if end < 0:
            raise FrontMatterError(
                0, "file is empty", "start the file with a '---' front matter block"
            )
        pos = end + 1
        start += 1
    if line.rstrip() != "---":
        raise FrontMatterError(
            start + 1,
            "file does not start with a '---' front matter block",
            "put the event's fields between two lines of '---' at the top of the file",
        )
    fence = _FENCE.search(text, end + 1) if end >= 0 else None
    if fence is None:
        raise FrontMatterError(
            start + 1,
            "front matter block is never closed",
            "add a line of '---' after the last field",
        )
    front = text[end + 1 : max(end + 1, fence.start() - 1)]
    body = text[fence.end() + 1 :]
    return front, body.strip("\n") + ("\n" if body.strip() else ""), start + 1


#: A closing fence: a whole line of ``---`` or ``...``, trailing white space allowed (as rstrip).
_FENCE = re.compile(r"^(?:---|\.\.\.)[^\S\n]*$", re.MULTILINE)


def _check_depth(text: str, line_offset: int) -> None:
    """Refuse deep nesting from the event stream, before the recursive composer sees it.

    The parser keeps its own state stack on the heap, so walking events is safe at any depth.
    Syntax errors are left for :func:`parse_yaml` to report.
    """
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise FrontMatterError(
                        mark.line + 1 + line_offset if mark else 0,
                        f"nested more than {MAX_DEPTH} levels deep",
                        "flatten the value",
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def _may_nest_deeply(text: str) -> bool:
    """Whether the text has enough indicators to nest deeper than the composer should recurse.

    Every mapping or sequence starts at an indicator of its own: ``[``, ``{``, ``-``, ``?`` or
    the ``:`` after a key. So a text with few of them cannot nest deeply, whatever else it holds.
    """
    return len(text) > _COMPOSE_SAFE_INDICATORS and (
        text.count(":") + text.count("-") + text.count("[") + text.count("{") + text.count("?")
        > _COMPOSE_SAFE_INDICATORS
    )


def parse_yaml(text: str, *, line_offset: int = 0) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Parse a YAML mapping safely, returning the data and the line of every key path.

    A nest deeper than :data:`MAX_DEPTH` is reported before any other problem, wherever it is,
    so every error path measures the depth on the event stream before it raises.
    """
    if _may_nest_deeply(text):
        _check_depth(text, line_offset)
    try:
        node = _compose(text)
    except yaml.YAMLError as exc:
        _check_depth(text, line_offset)
        raise _syntax_error(exc, text, line_offset) from None
    if node is None:
        return {}, {}
    lines: dict[KeyPath, int] = {}
    try:
        data = _Builder(text, lines, line_offset).build(node, (), 0)
    except FrontMatterError:
        _check_depth(text, line_offset)
        raise
    if not isinstance(data, dict):
        raise FrontMatterError(
            node.start_mark.line + 1 + line_offset,
            "front matter must be a mapping of field names to values",
            "write one 'field: value' per line",
        )
    return data, lines


def _compose(text: str) -> yaml.Node | None:
    composer = _Composer(text)
    try:
        return composer.get_single_node()
    finally:
        composer.dispose()


def _syntax_error(exc: yaml.YAMLError, text: str, line_offset: int) -> FrontMatterError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark else 0
        message = f"YAML syntax: {exc.problem or exc.context}"
        if exc.context and exc.context_mark and exc.problem:
            started = exc.context_mark.line + 1 + line_offset
            message += f" ({exc.context} that starts on line {started})"
        return FrontMatterError(
            line,
            message,
            "check indentation and quote values that contain ': ' or start with a symbol",
        )
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1 + line_offset
        return FrontMatterError(line, f"YAML syntax: {exc.reason}")
    return FrontMatterError(0, f"YAML syntax: {str(exc).splitlines()[0]}")


def read_document(raw: bytes, *, limit: int = MAX_FILE_BYTES) -> Document:
    text = decode(raw, limit=limit)
    front, body, first_line = split(text)
    data, lines = parse_yaml(front, line_offset=first_line)
    return Document(data=data, lines=lines, body=body, first_line=first_line)


def read_yaml_file(
    raw: bytes, *, limit: int = MAX_FILE_BYTES
) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Read a plain YAML file (the site settings)."""
    return parse_yaml(decode(raw, limit=limit))


#: Tags the stock resolver gives plain scalars, by first character, where one is not allowed.
_RESOLVER = yaml.resolver.Resolver()
_RISKY_FIRST = frozenset(
    first
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    if any(tag not in _SCALAR_TAGS for tag, _ in resolvers)
)


class _Composer(_ParserBase):
    """The C composer with a resolver that does only what :class:`_Builder` looks at.

    Plain scalars are resolved again by the YAML 1.2 core schema when the tree is built, so
    composing needs a scalar's tag only to refuse the ones that are not allowed (``<<`` is a
    merge, ``=`` a value): those scalars go to the stock resolver, every other one is text.
    """

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0] and value is not None and value[:1] in _RISKY_FIRST:
                return str(_RESOLVER.resolve(kind, value, implicit))  # type: ignore[no-untyped-call]
            return "tag:yaml.org,2002:str"
        if kind is yaml.SequenceNode:
            return "tag:yaml.org,2002:seq"
        return "tag:yaml.org,2002:map"

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


class _Builder:
    """Node tree -> plain data and the line of every key path, refusing what is not allowed."""

    def __init__(self, text: str, lines: dict[KeyPath, int], offset: int) -> None:
        self.text = text
        self.lines = lines
        self.offset = offset
        #: ids of the nodes built so far; only a text with a ``*`` can hold an alias
        self.seen: set[int] | None = set() if "*" in text else None

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1 + self.offset

    def build(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise FrontMatterError(
                self.line(node), f"nested more than {MAX_DEPTH} levels deep", "flatten the value"
            )
        seen = self.seen
        if seen is not None:
            if id(node) in seen:
                # the node is the anchored one; the line of the key that refers to it is ours
                where = path if path and isinstance(path[-1], str) else path[:-1]
                raise FrontMatterError(
                    self.lines.get(where, self.line(node)),
                    "YAML aliases (*name) are not allowed",
                    "write the value out in full",
                )
            seen.add(id(node))
        kind = type(node)
        if kind is yaml.ScalarNode:
            return self.scalar(node)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            raise FrontMatterError(
                self.line(node),
                f"YAML tag {node.tag} is not allowed",
                "remove the '!tag' before the value",
            )
        if depth >= MAX_DEPTH:
            # a collection this deep holds the next level: the event stream says where it is
            _check_depth(self.text, self.offset)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            lines = self.lines
            offset = self.offset + 1
            items = []
            for index, item in enumerate(node.value):
                where = (*path, index)
                lines[where] = item.start_mark.line + offset
                items.append(self.build(item, where, depth + 1))
            return items
        return self.scalar(node)

    def mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        lines = self.lines
        offset = self.offset + 1
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                raise FrontMatterError(
                    self.line(key_node),
                    "keys must be plain names (no '<<' merges or complex keys)",
                    "write 'name: value'",
                )
            key = str(key_node.value)
            where = (*path, key)
            if key in result:
                first = lines.get(where, 0)
                raise FrontMatterError(
                    self.line(key_node),
                    f"duplicate key '{key}' (first given on line {first})",
                    "keep one of the two",
                )
            lines[where] = key_node.start_mark.line + offset
            result[key] = self.build(value_node, where, depth + 1)
        return result

    def scalar(self, node: yaml.Node) -> Any:
        value = str(node.value)
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            raise FrontMatterError(
                self.line(node),
                f"YAML tag {tag} is not allowed",
                "remove the '!tag' before the value",
            )
        if getattr(node, "style", None) or tag == "!":  # C composer: "" for plain
            return value  # quoted or block scalars are always text
        # A plain scalar never ends in a line break, so the lookup and _NUMBER (whose $ could
        # match before one) read it as _NULL, _TRUE, _FALSE, _INT and _FLOAT did, in that order.
        word = _WORDS.get(value, value)
        if word is not value:
            return word
        if value[:1] not in _NUMERIC_FIRST:
            return value
        number = _NUMBER.match(value)
        if number is None:
            return value
        if number.group(1) is None:
            return float(value)
        return self.integer(node, value)

    def integer(self, node: yaml.Node, value: str) -> int:
        if len(value.lstrip("+-")) > MAX_INT_DIGITS:
            raise FrontMatterError(
                self.line(node),
                f"number has more than {MAX_INT_DIGITS} digits",
                "put it in quotes if it is meant as text",
            )
        return int(value)


_NUMERIC_FIRST = frozenset("+-.0123456789")
