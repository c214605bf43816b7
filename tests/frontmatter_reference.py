"""The front matter reader as it was before it was made faster, kept as a reference.

``tests/test_frontmatter_equivalence.py`` compares the reader in ``eventfeed.frontmatter`` with
this straightforward one (a depth scan of the event stream, the stock composer and resolver,
then a recursive walk) on generated texts: every result and every error must be the same.
Do not "fix" this file: it is the behaviour the fast reader promises to keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

try:  # the C composer is about ten times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 12
#: Longest integer literal read as a number (Python refuses to convert above 4,300 digits).
MAX_INT_DIGITS = 30

KeyPath = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
#: C0 and C1 controls except tab and line breaks, YAML 1.1's extra line breaks, non-characters.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "!"})
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")


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
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start == len(lines):
        raise FrontMatterError(0, "file is empty", "start the file with a '---' front matter block")
    if lines[start].rstrip() != "---":
        raise FrontMatterError(
            start + 1,
            "file does not start with a '---' front matter block",
            "put the event's fields between two lines of '---' at the top of the file",
        )
    for end in range(start + 1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            front = "\n".join(lines[start + 1 : end])
            body = "\n".join(lines[end + 1 :])
            return front, body.strip("\n") + ("\n" if body.strip() else ""), start + 1
    raise FrontMatterError(
        start + 1,
        "front matter block is never closed",
        "add a line of '---' after the last field",
    )


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


def parse_yaml(text: str, *, line_offset: int = 0) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Parse a YAML mapping safely, returning the data and the line of every key path."""
    _check_depth(text, line_offset)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark else 0
        message = f"YAML syntax: {exc.problem or exc.context}"
        if exc.context and exc.context_mark and exc.problem:
            started = exc.context_mark.line + 1 + line_offset
            message += f" ({exc.context} that starts on line {started})"
        raise FrontMatterError(
            line,
            message,
            "check indentation and quote values that contain ': ' or start with a symbol",
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1 + line_offset
        raise FrontMatterError(line, f"YAML syntax: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise FrontMatterError(0, f"YAML syntax: {str(exc).splitlines()[0]}") from None
    if node is None:
        return {}, {}
    lines: dict[KeyPath, int] = {}
    builder = _Builder(lines, line_offset)
    data = builder.build(node, (), 0)
    if not isinstance(data, dict):
        raise FrontMatterError(
            node.start_mark.line + 1 + line_offset,
            "front matter must be a mapping of field names to values",
            "write one 'field: value' per line",
        )
    return data, lines


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


class _Builder:
    def __init__(self, lines: dict[KeyPath, int], offset: int) -> None:
        self.lines = lines
        self.offset = offset
        self.seen: set[int] = set()

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1 + self.offset

    def build(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise FrontMatterError(
                self.line(node), f"nested more than {MAX_DEPTH} levels deep", "flatten the value"
            )
        if id(node) in self.seen:
            # the node is the anchored one; the line of the key that refers to it is ours
            where = path if path and isinstance(path[-1], str) else path[:-1]
            raise FrontMatterError(
                self.lines.get(where, self.line(node)),
                "YAML aliases (*name) are not allowed",
                "write the value out in full",
            )
        self.seen.add(id(node))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            raise FrontMatterError(
                self.line(node),
                f"YAML tag {node.tag} is not allowed",
                "remove the '!tag' before the value",
            )
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag == "tag:yaml.org,2002:merge"
                ):
                    raise FrontMatterError(
                        self.line(key_node),
                        "keys must be plain names (no '<<' merges or complex keys)",
                        "write 'name: value'",
                    )
                key = str(key_node.value)
                if key in result:
                    first = self.lines.get((*path, key), 0)
                    raise FrontMatterError(
                        self.line(key_node),
                        f"duplicate key '{key}' (first given on line {first})",
                        "keep one of the two",
                    )
                self.lines[(*path, key)] = self.line(key_node)
                result[key] = self.build(value_node, (*path, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = self.line(item)
                items.append(self.build(item, (*path, index), depth + 1))
            return items
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        value = str(node.value)
        tag = node.tag
        if tag not in (
            "tag:yaml.org,2002:str",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:null",
            "tag:yaml.org,2002:timestamp",
            "!",
        ):
            raise FrontMatterError(
                self.line(node),
                f"YAML tag {tag} is not allowed",
                "remove the '!tag' before the value",
            )
        if getattr(node, "style", None) or tag == "!":  # C composer: "" for plain
            return value  # quoted or block scalars are always text
        if _NULL.match(value):
            return None
        if _TRUE.match(value):
            return True
        if _FALSE.match(value):
            return False
        if _INT.match(value):
            if len(value.lstrip("+-")) > MAX_INT_DIGITS:
                raise FrontMatterError(
                    self.line(node),
                    f"number has more than {MAX_INT_DIGITS} digits",
                    "put it in quotes if it is meant as text",
                )
            return int(value)
        if _FLOAT.match(value):
            return float(value)
        return value
