"""``eventfeed diff``: what subscribers will see if the current records are published.

The records are compiled in memory against the manifest of the published build (``out/`` by
default, or ``--against DIR``), exactly as ``eventfeed build`` would, and the result is compared
with that build: event by event through the per-event calendar files on both sides (read with
icalendar, so the comparison sees what calendar clients see), and file by file through the
hashes the manifest lists. Nothing is written.

The report is sorted (sections in a fixed order, events by id, files by path), so the same
change always reads the same, and ``--format markdown`` is meant for a pull-request comment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import icalendar

from . import paths
from .build import Artifacts, compile_site
from .errors import EventfeedError, ProblemsFound, errors_in, format_problems
from .load import display_path, load_site, shown_path
from .options import events_option
from .state import Manifest, file_digest, read_manifest

# --- reading one event's calendar file -------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What a calendar client shows of one occurrence or series."""

    title: str
    start: date | datetime
    end: date | datetime
    tzid: str
    status: str
    location: str


@dataclass(frozen=True)
class Shown:
    """An event as its ``events/<id>.ics`` presents it."""

    master: Seen
    recurrence: tuple[str, ...]
    #: RECURRENCE-ID (as text) -> the occurrence as changed
    occurrences: Mapping[str, Seen]
    data: bytes


#: What calendars put before the title of a cancelled or postponed event; the report says it.
_STATUS_PREFIXES = ("Cancelled: ", "Postponed: ")


def _seen(component: Any) -> Seen:
    start_prop = component["DTSTART"]
    start = start_prop.dt
    end_prop = component.get("DTEND")
    end = end_prop.dt if end_prop is not None else start
    tzid = str(start_prop.params.get("TZID", "UTC" if isinstance(start, datetime) else ""))
    title = str(component.get("SUMMARY", ""))
    for prefix in _STATUS_PREFIXES:
        title = title.removeprefix(prefix)
    return Seen(
        title=title,
        start=start,
        end=end,
        tzid=tzid,
        status=str(component.get("STATUS", "CONFIRMED")).upper(),
        location=str(component.get("LOCATION", "")),
    )


def read_event_file(data: bytes) -> Shown | None:
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError:
        return None
    master: Seen | None = None
    rules: list[str] = []
    changed: dict[str, Seen] = {}
    components: list[Any] = calendar.walk("VEVENT")
    for component in components:
        if component.get("RECURRENCE-ID") is not None:
            changed[_key(component["RECURRENCE-ID"].dt)] = _seen(component)
            continue
        master = _seen(component)
        for name in ("RRULE", "RDATE", "EXDATE"):
            value = component.get(name)
            for item in value if isinstance(value, list) else [value] if value else []:
                rules.append(f"{name}:{item.to_ical().decode()}")
    if master is None:
        return None
    return Shown(master, tuple(rules), changed, data)


def _key(value: date | datetime) -> str:
    """An occurrence by its original start as written (local time in the series' zone)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    return value.isoformat()


# --- words -----------------------------------------------------------------------------------


def _day(value: date) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


def when_words(seen: Seen) -> str:
    """``Wednesday 7 December 2022, 15:00–17:00 (Europe/Zurich)``, as the site writes times."""
    start, end = seen.start, seen.end
    if not isinstance(start, datetime):
        last = end - timedelta(days=1) if isinstance(end, date) and end > start else start
        if last == start:
            return f"{_day(start)} (all day)"
        return f"{_day(start)} – {_day(last)} (all day)"
    assert isinstance(end, datetime)
    zone = seen.tzid or "UTC"
    if start.tzinfo is not None and zone in _zones():
        start, end = start.astimezone(ZoneInfo(zone)), end.astimezone(ZoneInfo(zone))
    if start.date() == end.date():
        return f"{_day(start.date())}, {start:%H:%M}–{end:%H:%M} ({zone})"
    return f"{_day(start.date())} {start:%H:%M} – {_day(end.date())} {end:%H:%M} ({zone})"


def _zones() -> frozenset[str]:
    from .model import known_zones

    return known_zones()


def occurrence_words(key: str) -> str:
    try:
        value = datetime.fromisoformat(key)
    except ValueError:
        return key
    if len(key) == 10:
        return _day(value.date())
    return f"{_day(value.date())} {value:%H:%M}"


# --- the comparison ----------------------------------------------------------------------------

SECTIONS = (
    ("added", "Added"),
    ("moved", "Moved"),
    ("rescheduled", "Schedule changed"),
    ("cancelled", "Cancelled"),
    ("restored", "No longer cancelled"),
    ("vanished", "Removed without cancellation"),
    ("removed", "Removed (had been cancelled)"),
    ("text", "Text changed"),
)


@dataclass(frozen=True)
class Change:
    event_id: str
    title: str
    lines: tuple[str, ...]


@dataclass
class Report:
    changes: dict[str, list[Change]] = field(default_factory=dict)
    #: group ("calendars", "feeds", "pages") -> [(path, "changed" | "new" | "removed")]
    files: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, section: str, change: Change) -> None:
        self.changes.setdefault(section, []).append(change)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.files


def compare_event(event_id: str, old: Shown | None, new: Shown, report: Report) -> None:
    n = new.master
    if old is None:
        report.add("added", Change(event_id, n.title, (when_words(n),)))
        return
    if old.data == new.data:
        return
    o = old.master
    was_cancelled, is_cancelled = o.status == "CANCELLED", n.status == "CANCELLED"
    if is_cancelled and not was_cancelled:
        report.add("cancelled", Change(event_id, n.title, (when_words(n),)))
        return
    if was_cancelled and not is_cancelled:
        report.add("restored", Change(event_id, n.title, (when_words(n),)))
        return
    if (o.start, o.end, o.tzid) != (n.start, n.end, n.tzid):
        lines = [f"from {when_words(o)}", f"to {when_words(n)}"]
        report.add("moved", Change(event_id, n.title, tuple(lines + _schedule_lines(old, new))))
        return
    lines = _schedule_lines(old, new)
    if lines:
        report.add("rescheduled", Change(event_id, n.title, tuple(lines)))
        return
    detail = (f"title was: {o.title}",) if o.title != n.title else ()
    report.add("text", Change(event_id, n.title, detail))


def _schedule_lines(old: Shown, new: Shown) -> list[str]:
    lines = []
    o, n = old.master, new.master
    if old.recurrence != new.recurrence:
        rules_before = "; ".join(old.recurrence) or "none"
        rules_after = "; ".join(new.recurrence) or "none"
        lines.append(f"recurrence: {rules_before} → {rules_after}")
    if o.status != n.status:
        lines.append(f"status: {o.status.lower()} → {n.status.lower()}")
    if o.location != n.location:
        lines.append(f"place: {o.location or 'none'} → {n.location or 'none'}")
    for key in sorted(set(old.occurrences) | set(new.occurrences)):
        before, after = old.occurrences.get(key), new.occurrences.get(key)
        label = f"occurrence of {occurrence_words(key)}"
        if before == after:
            continue
        if after is None:
            lines.append(f"{label}: back to the series' time")
        elif after.status == "CANCELLED" and (before is None or before.status != "CANCELLED"):
            lines.append(f"{label}: cancelled")
        elif before is None or (before.start, before.end) != (after.start, after.end):
            lines.append(f"{label}: now {when_words(after)}")
        elif before.location != after.location or before.status != after.status:
            lines.append(f"{label}: changed")
    return lines


def _group(path: str) -> str | None:
    if path == paths.MANIFEST or path.startswith("events/"):
        return None  # per-event files are reported through their events
    if path.startswith("feeds/"):
        return "feeds"
    if path.endswith(".ics") or path == paths.JCAL:
        return "calendars"
    return "pages"


def compare(
    previous: Manifest | None,
    old_files: Mapping[str, bytes | None],
    artifacts: Artifacts,
    root: str = ".",
) -> Report:
    """Compare a fresh build with the published one. ``old_files`` holds the old per-event
    calendar files that could be read (None where missing); ``root``, the events folder as
    the user sees it, where a removed event's record was."""
    report = Report()
    old_events = previous.events if previous else {}
    new_ids = {
        path.removeprefix("events/").removesuffix(".ics")
        for path in artifacts
        if path.startswith("events/") and path.endswith(".ics")
    }
    # every file's digest, as the build knows it (without reading the files again)
    after = {path: artifacts.digest(path) for path in artifacts}
    for event_id in sorted(new_ids):
        path = paths.event_ics(event_id)
        old_data = old_files.get(event_id)
        if old_data is not None and file_digest(old_data) == after[path]:
            # the calendar file published, byte for byte: nothing for subscribers to see (most
            # events of a pull request; reading each file back took most of the time)
            continue
        new = read_event_file(artifacts[path])
        if new is None:
            continue
        old = read_event_file(old_data) if old_data is not None else None
        if old is None and event_id in old_events:
            # published before, but its old file is missing: judge by the manifest
            state = old_events[event_id]
            if state.cancelled != (new.master.status == "CANCELLED"):
                section = "cancelled" if not state.cancelled else "restored"
                report.add(section, Change(event_id, new.master.title, (when_words(new.master),)))
            continue
        compare_event(event_id, old, new, report)
    for event_id in sorted(set(old_events) - new_ids):
        state = old_events[event_id]
        old_data = old_files.get(event_id)
        old = read_event_file(old_data) if old_data is not None else None
        title = old.master.title if old else event_id
        lines: tuple[str, ...] = (when_words(old.master),) if old else ()
        lines += (f"was {shown_path(root, state.source)}",)
        report.add("removed" if state.cancelled else "vanished", Change(event_id, title, lines))
    before = dict(previous.files) if previous else {}
    for path in sorted(set(before) | set(after)):
        group = _group(path)
        if group is None or before.get(path) == after.get(path):
            continue
        how = "new" if path not in before else "removed" if path not in after else "changed"
        report.files.setdefault(group, []).append((path, how))
    return report


# --- output ----------------------------------------------------------------------------------

_GROUPS = (("calendars", "Calendars"), ("feeds", "Feeds"), ("pages", "Pages"))
VANISHED_WARNING = (
    "subscribers' calendars keep these events, because a calendar cannot tell a deleted "
    "event from one left out; restore each record with 'status: cancelled' instead"
)


def format_text(report: Report) -> str:
    if report.empty:
        return "No change for subscribers.\n"
    out: list[str] = []
    for key, label in SECTIONS:
        changes = report.changes.get(key)
        if not changes:
            continue
        heading = f"{label} ({len(changes)}):"
        if key == "vanished":
            heading = f"WARNING: {label.lower()} ({len(changes)}): {VANISHED_WARNING}"
        out.append(heading)
        for change in sorted(changes, key=lambda c: c.event_id):
            out.append(f"  {change.event_id}: {change.title}")
            out.extend(f"    {line}" for line in change.lines)
    for key, label in _GROUPS:
        files = report.files.get(key)
        if files:
            out.append(f"{label} that change ({len(files)}):")
            out.extend(f"  {path}" + ("" if s == "changed" else f" ({s})") for path, s in files)
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return text


def format_markdown(report: Report) -> str:
    out = ["### What subscribers will see", ""]
    if report.empty:
        return "\n".join([*out, "No change for subscribers.", ""])
    for key, label in SECTIONS:
        changes = report.changes.get(key)
        if not changes:
            continue
        if key == "vanished":
            out += [
                "> [!WARNING]",
                f"> **{label}** ({len(changes)}): {VANISHED_WARNING}.",
            ]
            prefix = "> "
        else:
            out.append(f"**{label}** ({len(changes)})")
            prefix = ""
        out.append(prefix.rstrip())
        for change in sorted(changes, key=lambda c: c.event_id):
            out.append(f"{prefix}- `{change.event_id}`: {_md(change.title)}")
            out.extend(f"{prefix}  - {_md(line)}" for line in change.lines)
        out.append("")
    for key, label in _GROUPS:
        files = report.files.get(key)
        if files:
            out += [f"<details><summary>{label} that change ({len(files)})</summary>", ""]
            out += [f"- `{path}`" + ("" if s == "changed" else f" ({s})") for path, s in files]
            out += ["", "</details>", ""]
    return "\n".join(out)


# --- the command -------------------------------------------------------------------------------


class _OldEventFiles(Mapping[str, bytes | None]):
    """The published per-event calendar files, by event id, each read when it is asked for
    (None when it cannot be read): :func:`compare` looks at one at a time, and holding them
    all took 595 MB more at the peak with 100,000 events (1,565 MB against 970 MB)."""

    def __init__(self, against: Path, previous: Manifest | None) -> None:
        self._against = against
        self._ids = previous.events if previous else {}

    def __getitem__(self, event_id: str) -> bytes | None:
        if event_id not in self._ids:
            raise KeyError(event_id)
        try:
            return (self._against / paths.event_ics(event_id)).read_bytes()
        except OSError:
            return None

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def _clock() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(tz=UTC)


@click.command("diff")
@click.option(
    "--against",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("out"),
    show_default=True,
    help="The published build to compare with.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="markdown for a pull-request comment.",
)
@events_option()
def diff_command(against: Path, fmt: str, events_dir: Path) -> None:
    """Say what subscribers will see when the current records are built and published.

    Events added, moved (old and new time), cancelled, removed without cancellation (a
    warning: calendars keep such events), text changed, and which calendars, feeds and pages
    change. Nothing is written. Exit code 0 whatever changed, 1 when the records have errors.

    \b
    Examples:
      eventfeed diff
      eventfeed diff --against published/ --format markdown > comment.md
    """
    try:
        site = load_site(events_dir)
        previous = read_manifest(against)
        day = previous.as_of if previous is not None else None
        # A file the published build holds as it is made now is read from there when asked
        # for, not written out by the workers again (:class:`eventfeed.build.AsBefore`).
        published = against.resolve() if previous is not None else None
        artifacts = compile_site(site, previous, _clock(), as_of=day, previous_out=published)
    except ProblemsFound as exc:
        click.echo(format_problems(exc.problems, "text"), err=True)
        click.echo(f"{len(errors_in(exc.problems))} error(s); fix them to see the diff", err=True)
        sys.exit(1)
    except EventfeedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if previous is None:
        click.echo(
            f"note: {display_path(against)} has no {paths.MANIFEST}; every event counts as new",
            err=True,
        )
    report = compare(previous, _OldEventFiles(against, previous), artifacts, site.root)
    click.echo(format_markdown(report) if fmt == "markdown" else format_text(report), nl=False)
