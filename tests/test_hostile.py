"""The hostile corpus: every case in ``tests/hostile/cases.yaml`` is one test.

A refused case must give exactly the listed report from ``eventfeed check``, exit 1 without a
traceback, and make ``eventfeed build`` write nothing. A safe case must build, and every
output is then read by independent readers: icalendar and vobject for calendars, feedparser
and the standard library's parsers for feeds and pages. No output may carry an injected
component or parameter, a script, an event handler or a ``javascript:``/``data:`` link.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import feedparser
import icalendar
import pytest
import vobject
import yaml
from click.testing import CliRunner, Result

from eventfeed.cli import main
from eventfeed.load import load

HOSTILE = Path(__file__).parent / "hostile"
CASES: list[dict[str, Any]] = yaml.safe_load((HOSTILE / "cases.yaml").read_text("utf-8"))["cases"]

MINIMAL = (
    "---\ntitle: A meeting\nkind: meeting\nstart: 2022-12-07T15:00\nend: 2022-12-07T17:00\n"
    "online:\n  url: https://example.org/join\nupdated: 2022-12-01\n---\nBody.\n"
)


# --- cases that cannot be committed as files ---------------------------------------------


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _exdates(path: Path, years: int = 9) -> None:
    """A daily series without end and 336 exceptions a year (3,024 by default)."""
    days = [f"{m:02d}-{d:02d}T10:00" for m in range(1, 13) for d in range(1, 29)]
    dates = [f"{y}-{day}" for y in range(2023, 2023 + years) for day in days]
    text = (
        "---\ntitle: Daily with thousands of exceptions\nkind: meeting\n"
        "start: 2022-12-07T10:00\nend: 2022-12-07T10:30\nrrule: FREQ=DAILY\n"
        "online: {url: https://example.org/join}\nupdated: 2022-12-01\n"
        f"exdates: [{', '.join(dates)}]\n---\nBody.\n"
    )
    path.write_text(text, encoding="utf-8")


def _outside(path: Path) -> Path:
    outside = path.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.md").write_text(MINIMAL, encoding="utf-8")
    return outside


GENERATORS: dict[str, Callable[[Path], None]] = {
    "minimal": lambda p: _write(p, MINIMAL.encode()),
    "huge-file": lambda p: _write(p, (MINIMAL + "x" * 1_000_001).encode()),
    "nested-brackets": lambda p: _write(
        p, b"---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nx: " + b"[" * 100_000 + b"\n---\n"
    ),
    "nested-braces": lambda p: _write(
        p, b"---\ntitle: A\nkind: meeting\nstart: 2022-12-07\nx: " + b"{a: " * 100_000 + b"\n---\n"
    ),
    "binary": lambda p: _write(p, bytes(range(256)) * 16),
    "utf16": lambda p: _write(p, MINIMAL.encode("utf-16")),
    "nul-byte": lambda p: _write(p, b"---\ntitle: A\x00B\nkind: meeting\n---\n"),
    "case-collision": lambda p: (
        _write(p, MINIMAL.encode()),
        _write(p.with_name("meeting.md"), MINIMAL.encode()),
    ),
    "symlink-outside": lambda p: p.symlink_to(_outside(p) / "secret.md"),
    "symlink-loop": lambda p: (
        p.symlink_to(p.with_name("loop-b.md.link")),
        p.with_name("loop-b.md.link").symlink_to(p),
    ),
    "symlink-dangling": lambda p: p.symlink_to(p.with_name("missing-target")),
    "symlink-folder-outside": lambda p: p.symlink_to(_outside(p), target_is_directory=True),
    "site-symlink-outside": lambda p: (
        p.unlink(),
        (_outside(p) / "site.yaml").write_bytes((HOSTILE / "site.yaml").read_bytes()),
        p.symlink_to(_outside(p) / "site.yaml"),
    ),
    "fifo": lambda p: os.mkfifo(p),
    "thousands-of-exdates": _exdates,
}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events").mkdir()
    shutil.copy(HOSTILE / "site.yaml", tmp_path / "events" / "site.yaml")
    return tmp_path


def invoke(*args: str) -> Result:
    # catch_exceptions=False: a traceback fails the test with the traceback shown
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def problem_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("events/")]


def setup_case(root: Path, case: dict[str, Any]) -> Path:
    target = root / "events" / case["name"]
    generator = case.get("generate")
    if generator is None:
        shutil.copy(HOSTILE / "records" / case["name"], target)
    else:
        if generator == "fifo" and not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this system")  # pragma: no cover - Windows
        GENERATORS[generator](target)
    return target


def needs_posix(case: dict[str, Any]) -> None:
    posix_only = ("symlink", "fifo", "line\n")
    if sys.platform == "win32" and any(
        m in f"{case.get('generate')}{case['name']}" for m in posix_only
    ):
        pytest.skip("symbolic links, FIFOs and line breaks in names need a POSIX file system")


@pytest.mark.parametrize("case", CASES, ids=[c["name"].replace("\n", "\\n") for c in CASES])
def test_case(root: Path, case: dict[str, Any]) -> None:
    needs_posix(case)
    setup_case(root, case)
    checked = invoke("check")
    assert problem_lines(checked) == case["report"]
    errors = [line for line in case["report"] if ": warning: " not in line]
    assert checked.exit_code == (1 if errors else 0), checked.stderr
    before = sorted(p.name for p in root.iterdir())
    built = invoke("build", "--now", "2023-01-01T00:00:00", "--as-of", "2023-01-01")
    if case.get("safe"):
        assert built.exit_code == 0, built.stderr
        assert_outputs_safe(root / "out", root / "events")
    else:
        assert built.exit_code == 1
        assert errors, "a refused case must report at least one error"
        assert sorted(p.name for p in root.iterdir()) == before  # nothing written


def test_corpus_covers_every_file_and_every_generator() -> None:
    named = {c["name"] for c in CASES if "generate" not in c}
    assert named == {p.name for p in (HOSTILE / "records").iterdir()}
    assert {c["generate"] for c in CASES if "generate" in c} == set(GENERATORS)
    assert len({c["name"] for c in CASES}) == len(CASES)


# --- bounded time and memory ------------------------------------------------------------


def test_thousands_of_exdates_stay_fast(root: Path) -> None:
    _exdates(root / "events" / "many.md", years=60)  # 20,160 exceptions, 700 kB
    started = time.perf_counter()
    loaded = load(root / "events")
    elapsed = time.perf_counter() - started
    assert [p.message for p in loaded.problems] == ["has no end (COUNT or UNTIL)"]
    # linear work is well under a second; a quadratic loop over exdates takes minutes
    assert elapsed < 5, f"loading one series with 20,160 exdates took {elapsed:.1f}s"


def test_daily_rule_without_end_is_bounded_in_time_and_memory(root: Path) -> None:
    shutil.copy(HOSTILE / "records" / "daily-without-end.md", root / "events" / "daily.md")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = invoke("build", "--now", "2023-01-01T00:00:00", "--as-of", "2023-01-01")
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.stderr
    assert elapsed < 10, f"build took {elapsed:.1f}s"
    assert peak < 200_000_000, f"build peaked at {peak:,} bytes"


# --- independent readers of a safe build ------------------------------------------------


def front_matter(path: Path) -> dict[str, Any]:
    text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
    data = yaml.safe_load(text.split("---\n")[1])
    assert isinstance(data, dict)
    return data


def records(events: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(events.rglob("*.md")):
        yield path.stem, front_matter(path)


def assert_outputs_safe(out: Path, events: Path) -> None:
    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    assert files, "a safe case must produce output"
    for name, path in sorted(files.items()):
        data = path.read_bytes()
        if name.endswith(".ics"):
            assert_calendar_safe(name, data)
        elif name.endswith(".html"):
            assert_html_safe(name, data.decode("utf-8"))
        elif name.endswith(".xml"):
            assert_feed_safe(name, data)
        elif name.endswith(".json"):
            parsed = json.loads(data)
            for item in parsed.get("items", []) if isinstance(parsed, dict) else []:
                assert_html_safe(f"{name} {item['id']}", item.get("content_html", ""))
    for event_id, record in records(events):
        ics = files.get(f"events/{event_id}.ics")
        if ics is not None:
            assert_event_file(ics.read_bytes(), event_id, record)


def assert_calendar_safe(name: str, data: bytes) -> None:
    assert data.endswith(b"\r\n"), name
    lines = data.split(b"\r\n")[:-1]
    for line in lines:
        assert b"\r" not in line, (name, line)
        assert b"\n" not in line, (name, line)
        assert len(line) <= 75, (name, line)
    assert lines.count(b"BEGIN:VCALENDAR") == 1, name
    assert lines.count(b"END:VCALENDAR") == 1, name
    assert lines[0] == b"BEGIN:VCALENDAR", name
    assert lines[-1] == b"END:VCALENDAR", name
    text = data.decode("utf-8")
    calendars = list(vobject.readComponents(text))
    assert len(calendars) == 1, name
    parsed = icalendar.Calendar.from_ical(text)
    begins = sum(1 for line in lines if line.startswith(b"BEGIN:VEVENT"))
    assert len(parsed.walk("VEVENT")) == begins == len(calendars[0].contents.get("vevent", []))
    for component in parsed.walk():
        for prop_name, value in component.property_items(recursive=False):
            params = getattr(value, "params", {})
            assert not any(p.upper().startswith("X-EVIL") for p in params), (name, prop_name)
            assert not prop_name.upper().startswith("X-EVIL"), (name, prop_name)
        if component.name == "VEVENT":
            organizers = component.get("ORGANIZER")
            for organizer in organizers if isinstance(organizers, list) else [organizers]:
                if organizer is not None:
                    assert set(organizer.params) <= {"CN"}, (name, organizer.params)
                    assert str(organizer).startswith("mailto:"), (name, organizer)


def assert_event_file(data: bytes, event_id: str, record: dict[str, Any]) -> None:
    calendar = icalendar.Calendar.from_ical(data.decode("utf-8"))
    events = calendar.walk("VEVENT")
    # the master and one VEVENT per override, nothing injected
    assert len(events) == 1 + len(record.get("overrides", [])), event_id
    uids = {str(e["UID"]) for e in events}
    assert uids == {record.get("uid") or f"{event_id}@events.example.org"}, uids
    master = next(e for e in events if "RECURRENCE-ID" not in e)
    prefix = {"cancelled": "Cancelled: ", "postponed": "Postponed: "}.get(record.get("status"), "")
    assert str(master["SUMMARY"]) == prefix + record["title"]
    for override in record.get("overrides", []):
        if override.get("note"):
            # Markdown joins soft line breaks; the words must all arrive, as text
            words = " ".join(override["note"].split())
            descriptions = [" ".join(str(e.get("DESCRIPTION", "")).split()) for e in events]
            assert any(words in d for d in descriptions), descriptions


class _Inspector(HTMLParser):
    DANGEROUS = frozenset({"script", "iframe", "object", "embed", "frame", "base", "form"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.in_json_ld = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("type") == "application/ld+json":
            self.in_json_ld = True
        elif tag in self.DANGEROUS:
            self.found.append(f"<{tag}>")
        for attr, value in attrs:
            if attr.startswith("on"):
                self.found.append(f"{tag} {attr}")
            if attr in ("href", "src", "action", "formaction", "xlink:href") and value:
                scheme = "".join(value.split()).lower().split(":", 1)[0]
                if scheme in ("javascript", "data", "vbscript"):
                    self.found.append(f"{tag} {attr}={value}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_json_ld = False

    def handle_data(self, data: str) -> None:
        if self.in_json_ld:
            json.loads(data)  # structured data must stay valid JSON, not closed early


def assert_html_safe(name: str, html: str) -> None:
    inspector = _Inspector()
    inspector.feed(html)
    inspector.close()
    assert inspector.found == [], (name, inspector.found)


def assert_feed_safe(name: str, data: bytes) -> None:
    ElementTree.fromstring(data)  # well-formed XML
    parsed = feedparser.parse(data, sanitize_html=False)
    assert not parsed.bozo, (name, parsed.get("bozo_exception"))
    for entry in parsed.entries:
        for content in [*entry.get("content", []), entry.get("summary_detail") or {}]:
            if content and content.get("type") == "text/html":
                assert_html_safe(f"{name} {entry.id}", content["value"])
