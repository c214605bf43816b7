"""The writer's check of the paths it writes, in one regular expression, against the rule
it spells out a part at a time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed import write
from eventfeed.errors import OutputError


def by_parts(path: str) -> bool:
    """The rule, part by part: each a name of ``_SAFE_PART`` (no empty part, no ``.`` or
    ``..``) and none a Windows device name."""
    return bool(path) and not any(
        p in ("", ".", "..")
        or not write._SAFE_PART.fullmatch(p)
        or write._WINDOWS_DEVICES.fullmatch(p)
        for p in path.split("/")
    )


def accepted(path: str) -> bool:
    try:
        write.check_artifact_path(path)
    except OutputError:
        return False
    return True


PARTS = [
    "", ".", "..", "a", "index.html", ".nojekyll", "_headers", "_other", ".hidden", "-x",
    "con", "CON", "con.txt", "Con.a.b", "console", "com1", "COM9.ics", "com10", "lpt0",
    "aux", "nul.html", "prn-x", "a b", "é", "a\n", "\n", "x.y-z_w", "2024", "a..b",
]  # fmt: skip


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("where", ["alone", "first", "last", "middle"])
def test_each_kind_of_part_anywhere(part: str, where: str) -> None:
    path = {
        "alone": part,
        "first": f"{part}/b.html",
        "last": f"events/{part}",
        "middle": f"a/{part}/b",
    }[where]
    assert accepted(path) == by_parts(path), path


@pytest.mark.parametrize(
    "path",
    ["/abs", "a/", "a//b", "./a", "a/../b", "events/event-1.html", "feeds/webinars/atom.xml"],
)
def test_known_paths(path: str) -> None:
    assert accepted(path) == by_parts(path)
    assert accepted(path) is path.startswith(("events/", "feeds/"))


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(PARTS), st.text(alphabet="acolmnpux019._-/\n ", max_size=8)),
        min_size=1,
        max_size=4,
    )
)
def test_the_expression_is_the_rule(parts: list[str]) -> None:
    path = "/".join(parts)
    assert accepted(path) == by_parts(path), path
