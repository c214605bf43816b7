"""``eventfeed list``: what is on, in a terminal or as JSON.

Recurring events are expanded into their occurrences within the window (never further than
:data:`recurrence.MAX_OCCURRENCES` per series), with overrides applied: a moved occurrence
shows at its new time, a cancelled one is marked, an override's title replaces the series'.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from . import recurrence
from .build import in_collection
from .errors import ProblemsFound, errors_in, format_problems
from .event import Event
from .load import load_site
from .model import Override, Status
from .options import events_option
from .text import where_text

#: Default length of the window for --upcoming and --past.
WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class Occurrence:
    event: Event
    #: a date (all-day) or a naive local time in the event's zone
    start: date | datetime
    #: exclusive end, same kind as start
    end: date | datetime
    title: str
    status: Status
    #: original start when this is one occurrence of a series, else None
    original: date | datetime | None

    @property
    def aware_start(self) -> datetime:
        return self.event.aware(self.start)

    @property
    def aware_end(self) -> datetime:
        return self.event.aware(self.end)

    def sort_key(self) -> tuple[datetime, str, str]:
        return (self.aware_start.astimezone(ZoneInfo("UTC")), self.event.id, str(self.start))


def occurrences(event: Event, until: datetime) -> list[Occurrence]:
    """Every occurrence of ``event`` that starts before ``until`` (an aware moment)."""
    rec = event.record
    length = recurrence.naive(event.local_end) - recurrence.naive(event.local_start)
    if rec.rrule is None and not rec.rdates:
        return [
            Occurrence(
                event, event.local_start, event.local_end, rec.title, rec.status, original=None
            )
        ]
    overrides: dict[datetime, Override] = {recurrence.naive(o.occurrence): o for o in rec.overrides}
    # Overrides may move an occurrence by some time; look a year further so moves are seen.
    limit = until.astimezone(event.zone).replace(tzinfo=None) + WINDOW
    result = []
    for original in recurrence.occurrences(
        rec.rrule, rec.start, event.zone, rdates=rec.rdates, exdates=rec.exdates, until=limit
    ):
        override = overrides.get(recurrence.naive(original))
        start: date | datetime = original
        end: date | datetime = _shift(original, length)
        title, status = rec.title, rec.status
        if override is not None:
            if override.start is not None:
                start = override.start
                end = _shift(start, length)
            if override.end is not None:
                end = (
                    override.end
                    if isinstance(override.end, datetime)
                    else override.end + timedelta(days=1)
                )
            title = override.title or title
            status = override.status or status
        result.append(Occurrence(event, start, end, title, status, original=original))
    return result


def _shift(value: date | datetime, length: timedelta) -> date | datetime:
    if isinstance(value, datetime):
        return value + length
    return value + timedelta(days=length.days)


def select(
    events: list[Event] | tuple[Event, ...], start: datetime, end: datetime
) -> list[Occurrence]:
    """Occurrences that overlap [start, end), chronological."""
    found = [
        occ
        for event in events
        for occ in occurrences(event, end)
        if occ.aware_end > start and occ.aware_start < end
    ]
    return sorted(found, key=Occurrence.sort_key)


# --- output --------------------------------------------------------------------------------


def when_short(occ: Occurrence) -> str:
    if not isinstance(occ.start, datetime):
        assert not isinstance(occ.end, datetime)
        last = occ.end - timedelta(days=1)
        if last <= occ.start:
            return f"{occ.start:%a %Y-%m-%d} (all day)"
        return f"{occ.start:%a %Y-%m-%d} – {last:%a %Y-%m-%d}"
    assert isinstance(occ.end, datetime)
    zone = occ.event.tzid
    if occ.end.date() == occ.start.date():
        return f"{occ.start:%a %Y-%m-%d %H:%M}–{occ.end:%H:%M} {zone}"
    return f"{occ.start:%a %Y-%m-%d %H:%M} – {occ.end:%a %Y-%m-%d %H:%M} {zone}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(items: list[Occurrence]) -> str:
    rows = []
    for occ in items:
        title = occ.title
        if occ.status is not Status.CONFIRMED:
            title += f" [{occ.status.value}]"
        rows.append((when_short(occ), _clip(title, 60), _clip(where_text(occ.event), 40)))
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(
        f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}".rstrip() for r in rows
    )


def _iso(occ: Occurrence, value: date | datetime, end: bool) -> str:
    if isinstance(value, datetime):
        return occ.event.aware(value).isoformat()
    return (value - timedelta(days=1)).isoformat() if end else value.isoformat()


def as_json(items: list[Occurrence]) -> str:
    data: list[dict[str, Any]] = [
        {
            "id": occ.event.id,
            "title": occ.title,
            "status": occ.status.value,
            "all_day": not isinstance(occ.start, datetime),
            "start": _iso(occ, occ.start, False),
            "end": _iso(occ, occ.end, True),
            "timezone": occ.event.tzid,
            "where": where_text(occ.event),
            "occurrence": None if occ.original is None else occ.original.isoformat(),
            "source": occ.event.source,
        }
        for occ in items
    ]
    return json.dumps(data, indent=2, ensure_ascii=False)


# --- the command -------------------------------------------------------------------------------


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


@click.command("list")
@click.option("--upcoming", "mode", flag_value="upcoming", default=True, help="From today on.")
@click.option("--past", "mode", flag_value="past", help="Before today, most recent first.")
@click.option("--collection", help="Only events of this collection of site.yaml.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--from", "from_day", type=click.DateTime(["%Y-%m-%d"]), help="First day of the window."
)
@click.option("--to", "to_day", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the window.")
@click.option(
    "--today",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The day that splits upcoming from past. Default: today in the site's zone.",
)
@events_option()
def list_command(
    mode: str,
    collection: str | None,
    fmt: str,
    from_day: datetime | None,
    to_day: datetime | None,
    today: datetime | None,
    events_dir: Path,
) -> None:
    """List events, recurring ones expanded into their occurrences.

    Upcoming events run from today to a year ahead, past ones from a year back to today;
    --from and --to choose another window (both days included). Times are shown in each
    event's own zone.

    \b
    Examples:
      eventfeed list
      eventfeed list --past --collection webinars
      eventfeed list --from 2023-01-01 --to 2023-12-31 --format json
    """
    try:
        site = load_site(events_dir)
    except ProblemsFound as exc:
        click.echo(format_problems(exc.problems, "text"), err=True)
        click.echo(f"{len(errors_in(exc.problems))} error(s); fix them to list events", err=True)
        sys.exit(1)
    settings = site.settings
    zone = ZoneInfo(settings.timezone)
    events = list(site.events)
    if collection is not None:
        if collection not in settings.collections:
            names = ", ".join(settings.collections) or "(none defined)"
            raise click.BadParameter(
                f"'{collection}' is not a collection in site.yaml; use one of: {names}",
                param_hint="--collection",
            )
        events = [e for e in events if in_collection(e, settings, collection)]
    day = today.date() if today else datetime.now(zone).date()
    if mode == "past":
        start, end = _midnight(day, zone) - WINDOW, _midnight(day, zone)
    else:
        start, end = _midnight(day, zone), _midnight(day, zone) + WINDOW
    if from_day is not None:
        start = _midnight(from_day.date(), zone)
    if to_day is not None:
        end = _midnight(to_day.date() + timedelta(days=1), zone)
    if end <= start:
        raise click.UsageError("the window is empty: --to must not be before --from")
    items = select(events, start, end)
    if mode == "past" and from_day is None and to_day is None:
        items = [o for o in items if o.aware_end <= end]
        items.reverse()
    if fmt == "json":
        click.echo(as_json(items))
    elif items:
        click.echo(table(items))
    else:
        click.echo("no events in this window", err=True)
