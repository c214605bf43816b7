"""Recurrence rules: parsing the record's ``rrule`` and bounded expansion.

Records write RRULE as in RFC 5545 section 3.3.10 (``FREQ=MONTHLY;BYDAY=1TH;COUNT=6``). An
``UNTIL`` is read in the event's own zone (a date, a local date-time, or a UTC time ending in
``Z``); the calendar compiler writes it back in UTC as the RFC requires for zoned DTSTARTs.

Expansion is always bounded: by a window and by :data:`MAX_OCCURRENCES`, so a rule with no end
at a high frequency cannot hang a build or exhaust memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from dateutil import rrule as du

#: Occurrences examined per series by checks and listings.
MAX_OCCURRENCES = 5000
ALLOWED_FREQ = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_PARTS = {
    "FREQ",
    "UNTIL",
    "COUNT",
    "INTERVAL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
}
_UNTIL = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")


class RuleError(ValueError):
    pass


def parse_parts(rule: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for chunk in rule.strip().removeprefix("RRULE:").split(";"):
        if not chunk:
            continue
        name, sep, value = chunk.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise RuleError(f"'{chunk}' is not NAME=VALUE")
        if name not in _PARTS:
            raise RuleError(f"unknown rule part '{name}'")
        if name in parts:
            raise RuleError(f"rule part '{name}' given twice")
        parts[name] = value.strip().upper()
    if "FREQ" not in parts:
        raise RuleError("FREQ is missing")
    if parts["FREQ"] not in ALLOWED_FREQ:
        raise RuleError(
            f"FREQ={parts['FREQ']} is not supported; use one of {', '.join(ALLOWED_FREQ)}"
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RuleError("COUNT and UNTIL cannot both be given (RFC 5545 section 3.3.10)")
    return parts


def local_until(value: str, zone: ZoneInfo, all_day: bool) -> date | datetime:
    """UNTIL as a naive local value comparable with the series' local starts."""
    m = _UNTIL.match(value)
    if not m:
        raise RuleError(f"UNTIL={value} is not a date (20231231) or date-time (20231231T235959Z)")
    # Wall-clock values in the event's zone are naive on purpose.
    day = datetime.strptime(m.group(1), "%Y%m%d").date()  # noqa: DTZ007
    if m.group(2) is None:
        return day if all_day else datetime.combine(day, time(23, 59, 59))
    moment = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")  # noqa: DTZ007
    if m.group(3):
        moment = moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    return moment.date() if all_day else moment


def build_rule(rule: str, start: date | datetime, zone: ZoneInfo) -> du.rrule:
    """A dateutil rule over naive local starts (dates become midnight datetimes)."""
    all_day = not isinstance(start, datetime)
    parts = parse_parts(rule)
    text_parts = [f"{k}={v}" for k, v in parts.items() if k != "UNTIL"]
    dtstart = start if isinstance(start, datetime) else datetime.combine(start, time())
    kwargs = {}
    if "UNTIL" in parts:
        until = local_until(parts["UNTIL"], zone, all_day)
        kwargs["until"] = until if isinstance(until, datetime) else datetime.combine(until, time())
    try:
        parsed = du.rrulestr(";".join(text_parts), dtstart=dtstart, cache=False)
    except (ValueError, TypeError) as exc:
        raise RuleError(str(exc)) from None
    if kwargs:
        parsed = parsed.replace(**kwargs)
    return parsed


def naive(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time())


def occurrences(
    rule: str | None,
    start: date | datetime,
    zone: ZoneInfo,
    *,
    rdates: tuple[date | datetime, ...] = (),
    exdates: tuple[date | datetime, ...] = (),
    until: datetime | None = None,
    limit: int = MAX_OCCURRENCES,
) -> Iterator[date | datetime]:
    """Original local starts of a series in order (before overrides move any), bounded."""
    all_day = not isinstance(start, datetime)
    excluded = {naive(d) for d in exdates}
    candidates: list[datetime] = [naive(start), *(naive(d) for d in rdates)]
    produced = 0
    rule_iter: Iterator[datetime] = iter(build_rule(rule, start, zone)) if rule else iter(())
    pending = sorted(set(candidates))
    seen: set[datetime] = set()
    next_rule = next(rule_iter, None)
    while produced < limit:
        if next_rule is not None and (not pending or next_rule <= pending[0]):
            current = next_rule
            next_rule = next(rule_iter, None)
        elif pending:
            current = pending.pop(0)
        else:
            return
        if until is not None and current > until:
            return
        if current in seen or current in excluded:
            continue
        seen.add(current)
        produced += 1
        yield current.date() if all_day else current
