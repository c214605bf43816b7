"""Checks that need more than one field: times, zones, recurrence, references to the settings.

Every function returns problems instead of raising, so one run reports everything at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from . import recurrence
from .errors import Problem, Severity
from .event import Event, Mode
from .frontmatter import KeyPath
from .model import MAX_YEAR as MAX_YEAR
from .model import MIN_YEAR as MIN_YEAR
from .model import Settings

Report = Callable[..., None]


def describe(value: date | datetime, tzid: str) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} {tzid}"
    return value.isoformat()


def local_time_problem(value: datetime, zone: ZoneInfo) -> str | None:
    """Say whether a wall-clock time does not exist (DST gap) or exists twice (DST fold)."""
    first = value.replace(tzinfo=zone, fold=0)
    second = value.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if round_trip != value:
            return "does not exist in {zone} (the clocks skip it when daylight saving starts)"
        return "happens twice in {zone} (the clocks repeat it when daylight saving ends)"
    return None


def check_event(event: Event, report: Report, *, coming: bool = True) -> None:
    """Report every problem with one event through ``report(path, message, hint=, warning=)``.

    ``coming``: whether the event is still to come on the day of the build (its last day is
    not before it). It is all the checks may know of the day: what they find then holds on
    every day on the same side of the event's last day, and the loader keeps it that long
    (:func:`eventfeed.load.check_record`)."""
    rec = event.record
    tz = event.tzid
    start = rec.start

    def check_when(value: date | datetime, path: KeyPath, name: str) -> None:
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            report(
                path,
                f"{value.isoformat()} is outside the supported years {MIN_YEAR}-{MAX_YEAR}",
                hint="check the year",
            )
            return
        if isinstance(value, datetime):
            problem = local_time_problem(value, event.zone)
            if problem:
                report(
                    path,
                    f"{value:%Y-%m-%d %H:%M} " + problem.format(zone=tz),
                    hint=f"choose another {name} time, or give it in another zone",
                )

    check_when(start, ("start",), "start")
    all_day = event.all_day
    if rec.end is not None and rec.duration is not None:
        report(("duration",), "give either end or duration, not both", hint="remove one of them")
    if rec.end is not None:
        check_when(rec.end, ("end",), "end")
        if isinstance(rec.end, datetime) != isinstance(start, datetime):
            report(
                ("end",),
                "end and start must both be dates (all-day) or both be date-times",
                hint="write both as 2022-12-07 or both as 2022-12-07T15:00",
            )
        elif all_day and rec.end < start:
            report(
                ("end",),
                f"must not be before start ({describe(start, tz)})",
                hint="all-day end dates are inclusive: a one-day event has end = start",
            )
        elif not all_day and rec.end <= start:
            report(
                ("end",),
                f"must be after start ({describe(start, tz)})",
                hint="check the date and the 24-hour time of both",
            )
        elif rec.end - start > timedelta(days=366):
            report(("end",), "event lasts more than a year", hint="check the year of end")
    if rec.duration is not None and all_day and rec.duration % timedelta(days=1):
        report(("duration",), "an all-day event lasts whole days", hint="write P1D, P2D, ...")

    for index, override in enumerate(rec.overrides):
        for name in ("occurrence", "start", "end"):
            value = getattr(override, name)
            if value is None:
                continue
            check_when(value, ("overrides", index, name), name)
            if isinstance(value, datetime) != isinstance(start, datetime):
                report(
                    ("overrides", index, name),
                    "must be a date-time like start"
                    if not all_day
                    else "must be a date like start",
                )
    for name in ("exdates", "rdates"):
        for index, value in enumerate(getattr(rec, name)):
            check_when(value, (name, index), name)
            if isinstance(value, datetime) != isinstance(start, datetime):
                report(
                    (name, index),
                    f"must be a {'date' if all_day else 'local date-time'} like start",
                )

    _check_recurrence(event, report)

    if event.mode is Mode.ONLINE and coming and (rec.online is None or rec.online.url is None):
        if rec.location is None and rec.online is None:
            report(
                ("start",),
                "event has neither a location nor an online link",
                hint="add 'location' (in person), 'online' (online) or both (hybrid)",
                warning=True,
            )
        elif rec.online is not None and rec.online.url is None and rec.links.registration is None:
            report(
                ("online",),
                "online event without a join link (online.url)",
                hint="add the link, or the registration link under links.registration",
                warning=True,
            )
    if rec.location is not None and (rec.location.lat is None) != (rec.location.lon is None):
        report(("location",), "give both lat and lon, or neither")
    if rec.updated is None and coming:
        report(
            ("title",),
            "no 'updated' date: subscribers cannot tell when this was last edited",
            hint="add 'updated: YYYY-MM-DD' and change it with every edit",
            warning=True,
        )
    if (
        rec.published
        and rec.updated
        and recurrence.naive(rec.updated) < recurrence.naive(rec.published)
    ):
        report(
            ("updated",),
            "is before published",
            hint="updated is the last edit, published the first",
        )


def _check_recurrence(event: Event, report: Report) -> None:
    rec = event.record
    if rec.rrule is None and not rec.rdates:
        if rec.exdates:
            report(("exdates",), "exdates without rrule or rdates have nothing to exclude")
        if rec.overrides:
            report(("overrides",), "overrides need a recurring event (rrule or rdates)")
        return
    if rec.rrule is not None:
        try:
            recurrence.build_rule(rec.rrule, rec.start, event.zone)
        except recurrence.RuleError as exc:
            report(
                ("rrule",),
                f"not a valid recurrence rule: {exc}",
                hint="write it as in RFC 5545, e.g. FREQ=MONTHLY;BYDAY=1TH;COUNT=6",
            )
            return
    try:
        originals = list(
            recurrence.occurrences(
                rec.rrule, rec.start, event.zone, rdates=rec.rdates, exdates=rec.exdates
            )
        )
    except (recurrence.RuleError, ValueError, OverflowError) as exc:
        report(("rrule",), f"cannot be expanded: {exc}")
        return
    if not originals:
        report(
            ("rrule",),
            "produces no occurrence (every date is excluded)",
            hint="check UNTIL, COUNT and exdates",
        )
        return
    if (
        len(originals) >= recurrence.MAX_OCCURRENCES
        and rec.rrule
        and "COUNT" not in rec.rrule.upper()
        and "UNTIL" not in rec.rrule.upper()
    ):
        report(
            ("rrule",),
            "has no end (COUNT or UNTIL)",
            hint="add COUNT=n or UNTIL=YYYYMMDD so calendars stay bounded",
            warning=True,
        )
    known = {recurrence.naive(o) for o in originals}
    # without exdates the series is what was just expanded: no need to expand it again
    all_occurrences = (
        {
            recurrence.naive(o)
            for o in recurrence.occurrences(rec.rrule, rec.start, event.zone, rdates=rec.rdates)
        }
        if rec.exdates
        else known
    )
    # Expansion stops at MAX_OCCURRENCES: beyond the last start examined nothing can be judged.
    limit = recurrence.MAX_OCCURRENCES
    exdates_until = max(all_occurrences) if len(all_occurrences) >= limit else None
    known_until = max(known) if len(known) >= limit else None
    for index, value in enumerate(rec.exdates):
        moment = recurrence.naive(value)
        if moment not in all_occurrences and (exdates_until is None or moment <= exdates_until):
            report(
                ("exdates", index),
                f"{describe(value, event.tzid)} is not an occurrence of the series",
                hint="use the original start of an occurrence",
                warning=True,
            )
    seen: dict[datetime, int] = {}
    for index, override in enumerate(rec.overrides):
        key = recurrence.naive(override.occurrence)
        if key in seen:
            report(
                ("overrides", index, "occurrence"),
                f"overrides the same occurrence as overrides[{seen[key]}]",
            )
        seen[key] = index
        if key not in known and (known_until is None or key <= known_until):
            report(
                ("overrides", index, "occurrence"),
                f"{describe(override.occurrence, event.tzid)} is not an occurrence of the series",
                hint="name the occurrence by its original start date (and time)",
            )
        if (
            override.start is not None
            and override.end is not None
            and override.end <= override.start
            and isinstance(override.start, datetime)
        ):
            report(("overrides", index, "end"), "must be after the override's start")


def check_references(event: Event, settings: Settings, report: Report) -> None:
    rec = event.record
    if rec.kind not in settings.kinds:
        report(
            ("kind",),
            f"'{rec.kind}' is not a kind in the site settings",
            hint=f"use one of: {', '.join(settings.kinds)}, or add it to 'kinds' in site.yaml",
        )
    if rec.region is not None and rec.region not in settings.regions:
        report(
            ("region",),
            f"'{rec.region}' is not a region in the site settings",
            hint=f"use one of: {', '.join(settings.regions) or '(none defined)'}",
        )
    for field in ("organizers", "partners"):
        for index, ref in enumerate(getattr(rec, field)):
            if isinstance(ref, str) and ref not in settings.organisations:
                report(
                    (field, index),
                    f"'{ref}' is not an organisation in the site settings",
                    hint="define it under 'organisations' in site.yaml, "
                    "or write {name: ..., url: ...}",
                )


def check_settings(settings: Settings, report: Report) -> None:
    for key, collection in settings.collections.items():
        pairs: Iterable[tuple[str, tuple[str, ...], Iterable[str]]] = (
            ("kinds", collection.kinds, settings.kinds),
            ("regions", collection.regions, settings.regions),
            ("organizers", collection.organizers, settings.organisations),
        )
        for name, values, allowed in pairs:
            allowed_set = set(allowed)
            for index, value in enumerate(values):
                if value not in allowed_set:
                    report(
                        ("collections", key, name, index),
                        f"'{value}' is not defined in the settings",
                    )


def severity(warning: bool) -> Severity:
    return Severity.WARNING if warning else Severity.ERROR


def problem(
    path: str,
    lines: dict[KeyPath, int],
    where: KeyPath,
    message: str,
    *,
    hint: str = "",
    warning: bool = False,
    default_line: int = 1,
) -> Problem:
    return Problem(
        path=path,
        line=line_of(lines, where, default_line),
        field=dotted(where),
        message=message,
        hint=hint,
        severity=severity(warning),
    )


def line_of(lines: dict[KeyPath, int], where: KeyPath, default: int = 1) -> int:
    for cut in range(len(where), 0, -1):
        if where[:cut] in lines:
            return lines[where[:cut]]
    return default


def dotted(where: KeyPath) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
