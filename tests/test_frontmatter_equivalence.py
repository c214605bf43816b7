"""The fast front matter reader gives exactly what the straightforward reader gave.

``eventfeed.frontmatter`` composes with a reduced resolver, checks the nesting depth on the
event stream only when a text could nest deeply or something is wrong, and resolves scalars
with a lookup instead of five patterns. ``frontmatter_reference`` is the reader as it was. On
generated texts (records, YAML soup, deep nests, aliases, tags, merges, fences) both must give
the same data (types included), the same line of every key, or the same error: line, message
and hint. ``EVENTFEED_FUZZ_EXAMPLES`` raises the number of examples for a deeper run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import frontmatter

from . import frontmatter_reference as reference

EXAMPLES = max(300, int(os.environ.get("EVENTFEED_FUZZ_EXAMPLES", "0")))
ROOT = Path(__file__).parent.parent


def outcome(read: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a reader gives, in a form where 1, 1.0 and True differ and key order counts."""
    try:
        result = read(*args, **kwargs)
    except (frontmatter.FrontMatterError, reference.FrontMatterError) as exc:
        return ("error", exc.line, exc.message, exc.hint)
    except Exception as exc:  # a bug must at least be the same bug
        return ("exception", type(exc).__name__, str(exc))
    if isinstance(result, frontmatter.Document | reference.Document):
        result = (result.data, result.lines, result.body, result.first_line)
    return ("ok", repr(result))


def assert_same_yaml(text: str, line_offset: int = 0) -> None:
    fast = outcome(frontmatter.parse_yaml, text, line_offset=line_offset)
    slow = outcome(reference.parse_yaml, text, line_offset=line_offset)
    assert fast == slow, text


def assert_same_document(raw: bytes) -> None:
    assert outcome(frontmatter.read_document, raw) == outcome(reference.read_document, raw), raw


KEYS = ["a", "b", "title", "<<", "'<<'", "=", "? a", "1", "null", "&k a", "*k", "!!str a"]
KEYS += ["[a, b]", "{a: 1}", "! x", "!!merge a", "!x a", '"a"', "a b", "-", "?"]
VALUES = ["", "1", "-1", "+1", "1.5", ".5", "1e3", "-.5e-3", "1_000", "0x1F", "0o7", "9" * 40]
VALUES += ["9" * 31, "+" + "9" * 30, "null", "~", "NULL", "Null", "true", "False", "TRUE", "yes"]
VALUES += ["no", "NO", "on", "2022-12-07", "2022-12-07T15:00", "'q'", '"a\\nb"', "|", ">", "|-"]
VALUES += ["&a x", "*a", "&a [1, 2]", "&b {c: 1}", "*b", "!!binary aGVsbG8=", "!!str 5"]
VALUES += ["!!python/object/apply:os.system ['ls']", "!custom x", "! x", "! '<<'", '! "*"']
VALUES += ["! '='", "! '!'", "! &", "!!map", "!!seq", "!!map {a: 1}", "!!set {a}", "!!int '7'"]
VALUES += ["!!null x", "!!bool yes", "!!float 1", "!!timestamp 2001-12-14", "[", "]", "{", "}"]
VALUES += ["[1, [2, [3]]]", "[" * 13 + "]" * 13, "[" * 12 + "]" * 12, "{a: {b: {c: 1}}}"]
VALUES += ["- x", "<<", "=", "*", "&", "a # comment", "'multi\n\n  line'", "foo\n\n  bar"]
VALUES += ["x\n\n  1", "1\n\n  2", "[a: 1, ? b]", "{? a}", "'", '"', "@x", "`x", "%x", "\t1"]
VALUES += ["https://example.org/a?b=c&d", "a: b", "[*a]", "[&c x, *c]", ".inf", ".nan", "0."]
LINES = st.builds(
    lambda indent, key, sep, value: indent + key + sep + value,
    st.sampled_from(["", "", "", " ", "  ", "    ", "- ", "  - ", "\t"]),
    st.sampled_from(KEYS),
    st.sampled_from([": ", ": ", ":", " : ", ""]),
    st.sampled_from(VALUES),
)
SPECIAL_LINES = st.sampled_from(["---", "...", "--- x", "%YAML 1.1", "%TAG ! !x", "#", ""])
STRUCTURED = st.lists(st.one_of(LINES, LINES, LINES, SPECIAL_LINES), max_size=8).map("\n".join)
FLAT = st.lists(st.sampled_from(VALUES), max_size=10).map(
    lambda values: "\n".join(f"k{i}: {value}" for i, value in enumerate(values))
)
DUMPED = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
).flatmap(
    lambda data: st.sampled_from([None, True, False]).map(
        lambda flow: yaml.safe_dump({"k": data}, default_flow_style=flow, allow_unicode=True)
    )
)
SOUP = st.text(alphabet=" \n\t-:?[]{},&*!|>'\"#%@`<=~0123456789.eE+abnNtTfFuxl", max_size=60)


@st.composite
def nests(draw: st.DrawFn) -> str:
    """Block and flow nests around the depth limit, with a problem before or after them."""
    depth = draw(st.integers(9, 14))  # collections, the top-level mapping included
    leaf = draw(st.sampled_from(["x", "[]", "{}", "[1]", "*a", "!x y", "[[]]", "!!set {}"]))
    style = draw(st.sampled_from(["map", "seq", "seq-map", "flow", "flow-map"]))
    if style == "map":
        text = "\n".join("  " * level + "k:" for level in range(depth - 1)) + " " + leaf
    elif style == "seq":
        text = "k: " + "- " * (depth - 1) + leaf
    elif style == "seq-map":
        pairs = (depth - 1) // 2
        text = "k:\n" + "\n".join("  " + "    " * i + "- k:" for i in range(pairs)) + " " + leaf
    elif style == "flow":
        text = "k: " + "[" * (depth - 1) + leaf + "]" * (depth - 1)
    else:
        text = "k: " + "{k: " * (depth - 1) + leaf + "}" * (depth - 1)
    problem = draw(st.sampled_from(["", "z: *a", "z: !x y", "<<: {}", "k: [", "w: 1\nw: 2"]))
    problem = draw(st.sampled_from(["", "a: &a 1", problem]))
    padding = draw(st.sampled_from(["", "p: '" + "-:" * 120 + "'", "p: [" + "a-b, " * 60 + "]"]))
    parts = [problem, text, padding] if draw(st.booleans()) else [text, padding, problem]
    return "\n".join(p for p in parts if p)


@settings(derandomize=True, max_examples=EXAMPLES, deadline=None)
@given(
    text=st.one_of(STRUCTURED, FLAT, DUMPED, SOUP, nests()), line_offset=st.sampled_from([0, 1, 3])
)
def test_generated_yaml_reads_the_same(text: str, line_offset: int) -> None:
    assert_same_yaml(text, line_offset)


FENCE_LINES = ["---", "--- ", "---\u00a0", "...", "... x", "----", " ---", "", " ", "\u00a0"]
FENCE_LINES += ["a: 1", "b: [1, 2]", "c: 'x'", "Body text.", "**bold**", "\r", "---\r"]
FENCE_LINES += ["d: |+", "d: |", "  x", "", "\t"]


@settings(derandomize=True, max_examples=EXAMPLES, deadline=None)
@given(
    lines=st.lists(st.sampled_from(FENCE_LINES), max_size=10),
    ending=st.sampled_from(["", "\n", "\n\n", "\r\n"]),
    bom=st.booleans(),
)
def test_generated_files_split_the_same(lines: list[str], ending: str, bom: bool) -> None:
    text = "\n".join(lines) + ending
    assert_same_document(("\ufeff" if bom else "").encode() + text.encode())
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    assert outcome(frontmatter.split, normal) == outcome(reference.split, normal)


RECORD_FILES = sorted(
    [
        *(ROOT / "tests" / "hostile" / "records").glob("*.md"),
        *(ROOT / "tests" / "fixtures").rglob("*.md"),
        *(ROOT / "events").rglob("*.md"),
    ]
)


@pytest.mark.parametrize("path", RECORD_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_record_in_the_repository_reads_the_same(path: Path) -> None:
    assert_same_document(path.read_bytes())


@pytest.mark.parametrize(
    "text",
    [
        "a: [" + "[" * 100_000,  # the parser's own stack, not the composer's
        "a: " + "[" * 5_000 + "]" * 5_000,
        "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)) + "  " * 40 + "x",
        "- " * 14 + "x",
        "a: " + "[" * 12 + "]" * 12,
        "a: " + "[" * 11 + "]" * 11,
        "- " * 12 + "[]",
        "- " * 12 + "x",
        "a: &x [1]\nb: *x\nc: " + "[" * 13 + "]" * 13,
        "a: *x\nc: " + "[" * 13 + "]" * 13,
        "c: " + "[" * 13 + "]" * 13 + "\nb: [",
        "b: [\nc: " + "[" * 13 + "]" * 13,
        "x: 1\n---\ny: 2",
        "a: &x 1\nb: &x 2",
        "&a k: 1\nx: *a",
        "x: &a k\n*a : 2",
        "x: &a [1]\n*a : 2",
        "k: ! '<<'\n",
        'k: ! "<<\\n"\n',
        'k: ! "*"',
        "k: !!str 5",
        "k: 1_000",
        "k: '" + "-" * 300 + "'",
    ],
)
def test_edge_cases_read_the_same(text: str) -> None:
    assert_same_yaml(text)
    assert_same_yaml(text, line_offset=1)


@pytest.mark.parametrize("value", VALUES)
def test_every_value_reads_the_same(value: str) -> None:
    for text in (f"k: {value}", f"- {value}", f"k: [{value}]", f"{value}: k", f"? {value}"):
        assert_same_yaml(text)


def test_the_deep_nest_guard_takes_the_event_scan() -> None:
    """Over the indicator budget the depth is scanned first; under it the text is composed."""
    assert not frontmatter._may_nest_deeply("a: [" + "1, " * 60 + "]")
    assert frontmatter._may_nest_deeply("a: [" + "[" * 300)
    with pytest.raises(frontmatter.FrontMatterError) as raised:
        frontmatter.parse_yaml("a: " + "[" * 300_000, line_offset=1)
    assert (raised.value.line, raised.value.message) == (2, "nested more than 12 levels deep")
