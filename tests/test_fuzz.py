"""Fuzzing: generated front matter, valid and hostile, through the loader and the whole build.

Every example ends in one of two ways: a clean report (exit 1, no traceback, every problem
with a path, a line and a field or a file-level message) and nothing written; or a build whose
every output the independent readers of ``test_hostile`` accept. Runs are derandomized and
bounded; set ``EVENTFEED_FUZZ_EXAMPLES`` for a deeper run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed.cli import main
from eventfeed.frontmatter import FrontMatterError, read_document

from .test_hostile import HOSTILE, assert_outputs_safe

EXAMPLES = int(os.environ.get("EVENTFEED_FUZZ_EXAMPLES", "100"))

NASTY = [
    "END:VCALENDAR",
    "BEGIN:VEVENT\r\nUID:evil",
    "x\nEND:VEVENT",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '";CN=Fake:mailto:x@example.org',
    "a;b,c:d\\e",
    "../../etc/passwd",
    "con",
    "Meeting",
    "me\u0435ting",
    "\u202eexe.fdp",
    "\u2028",
    "\x00",
    "\x1b[31m",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "https://example.org/a;b=c?d=%22x%22",
    'https://example.org/"x',
    "&amp; &lt; ]]> -->",
    "9" * 40,
    "",
    " ",
]
hostile_text = st.one_of(st.sampled_from(NASTY), st.text(max_size=30))
#: hostile yet valid one-line text: it must reach the outputs and stay inert there
valid_line = st.sampled_from([n for n in NASTY if n.isprintable() and n.strip()])
line = st.one_of(valid_line, valid_line, hostile_text)
good_when = st.one_of(
    st.dates(date(1990, 1, 1), date(2100, 12, 31)).map(str),
    st.datetimes(
        datetime(1990, 1, 1),  # noqa: DTZ001 - records hold local wall-clock times
        datetime(2100, 12, 31),  # noqa: DTZ001
    ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M")),
)
when = st.one_of(
    good_when,
    good_when,
    st.dates().map(str),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M")),
    st.sampled_from(
        ["2023-03-26T02:30", "2023-10-29T02:30", "2022-12-07", "2022-12-07T15:00", "2022-02-30"]
    ),
    hostile_text,
)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), hostile_text, when
)
anything = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)
url = st.sampled_from(
    ["https://example.org/join", "https://example.org/a;b=1&c=2", "https://example.org/%22x"]
)
good_datetime = st.datetimes(
    datetime(1990, 1, 1),  # noqa: DTZ001 - records hold local wall-clock times
    datetime(2100, 12, 31),  # noqa: DTZ001
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M"))

#: fields of a valid record, each with values that are hostile yet valid
VALID = {
    "title": valid_line,
    "kind": st.sampled_from(["meeting", "webinar"]),
    "timezone": st.sampled_from(["Europe/Zurich", "America/New_York", "Asia/Kolkata", "UTC"]),
    "status": st.sampled_from(["confirmed", "cancelled", "tentative", "postponed"]),
    "rrule": st.sampled_from(
        ["FREQ=WEEKLY;COUNT=3", "FREQ=MONTHLY;BYDAY=1TH;UNTIL=20991231", "FREQ=DAILY"]
    ),
    "online": st.fixed_dictionaries({"url": url}, optional={"platform": valid_line}),
    "location": st.fixed_dictionaries(
        {"venue": valid_line}, optional={"city": valid_line, "country": st.just("CH")}
    ),
    "organizers": st.lists(
        st.one_of(
            st.sampled_from(["ilo", "evil"]),
            st.fixed_dictionaries({"name": valid_line}, optional={"url": url}),
        ),
        max_size=2,
        unique_by=str,
    ),
    "speakers": st.lists(
        st.fixed_dictionaries({"name": valid_line}, optional={"affiliation": valid_line}),
        max_size=2,
    ),
    "links": st.fixed_dictionaries({}, optional={"registration": url, "page": url}),
    "tags": st.lists(st.sampled_from(["sse", "policy", "a-b"]), max_size=2, unique=True),
    "language": st.sampled_from(["en", "es-419", "fr"]),
    "participants": st.integers(0, 10**6),
    "uid": st.sampled_from(['a;b,c:d"e@example.org', "x@example.org"]),
}
#: what replaces a field in a broken record
BROKEN = st.one_of(hostile_text, anything, when)


@st.composite
def record(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record with hostile text, then zero to two fields broken."""
    timed = draw(st.booleans())
    start = draw(good_datetime if timed else good_when.filter(lambda v: "T" not in v))
    data: dict[str, Any] = {"title": draw(valid_line), "kind": "meeting", "start": start}
    if timed:
        data["duration"] = draw(st.sampled_from(["PT1H", "PT30M", "PT2H15M"]))
    for name in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=5, unique=True)):
        data[name] = draw(VALID[name])
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        name = draw(st.sampled_from([*sorted(VALID), "start", "end", "exdates", "unknown"]))
        data[name] = draw(BROKEN)
    return data


#: exit codes of 'check' seen, by count (for the closing figures of a run)
OUTCOMES: dict[int, int] = {}
PROBLEM = re.compile(r"^events/[^\n]+?(?::\d+)?: (?:warning: )?[^\n]+$")


def runner() -> CliRunner:
    return CliRunner()


@settings(derandomize=True, max_examples=EXAMPLES, deadline=None)
@given(
    data=record(),
    body=hostile_text,
    name=st.sampled_from(["event", "event", "event", "con", "Event", "a.b"]),
)
def test_generated_records_give_a_clean_report_or_readable_output(
    data: dict[str, Any], body: str, name: str
) -> None:
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        root = Path(folder)
        (root / "events").mkdir()
        shutil.copy(HOSTILE / "site.yaml", root / "events" / "site.yaml")
        text = "---\n" + yaml.safe_dump(data, allow_unicode=True) + "---\n" + body + "\n"
        (root / "events" / f"{name}.md").write_text(text, encoding="utf-8", newline="")
        checked = runner().invoke(main, ["check", "--format", "json"], catch_exceptions=False)
        assert checked.exit_code in (0, 1), checked.output
        problems = json.loads(checked.stdout)
        for problem in problems:
            assert problem["path"] == f"events/{name}.md"
            assert isinstance(problem["line"], int)
            assert problem["line"] >= 0
            assert isinstance(problem["field"], str)
            assert problem["message"]
            assert problem["message"].isprintable(), problem
            assert problem["field"].isprintable(), problem
        text_report = runner().invoke(main, ["check"], catch_exceptions=False)
        for line in text_report.stderr.splitlines():
            assert (
                line.startswith("    fix: ")
                or PROBLEM.match(line)
                or " error(s), " in line
                or (line.endswith("record(s) checked in events"))
            ), line
        built = runner().invoke(
            main,
            ["build", "--now", "2023-01-01T00:00:00", "--as-of", "2023-01-01"],
            catch_exceptions=False,
        )
        OUTCOMES[checked.exit_code] = OUTCOMES.get(checked.exit_code, 0) + 1
        if checked.exit_code == 1:
            assert built.exit_code == 1
            assert not (root / "out").exists()
        else:
            assert built.exit_code == 0, built.stderr
            assert_outputs_safe(root / "out", root / "events")


@settings(derandomize=True, max_examples=EXAMPLES * 3, deadline=None)
@given(raw=st.binary(max_size=300), prefix=st.sampled_from([b"", b"---\n", b"---\ntitle: "]))
def test_arbitrary_bytes_never_crash_the_reader(raw: bytes, prefix: bytes) -> None:
    outcome: object
    try:
        outcome = read_document(prefix + raw + b"\n---\n")
    except FrontMatterError as exc:
        outcome = exc
    if isinstance(outcome, FrontMatterError):
        assert outcome.line >= 0
        assert outcome.message
    else:
        assert isinstance(getattr(outcome, "data", None), dict)
