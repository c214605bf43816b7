"""Recurrence rules: parsing the record's ``rrule`` and bounded expansion.

Records write RRULE as in RFC 5545 section 3.3.10 (``FREQ=MONTHLY;BYDAY=1TH;COUNT=6``). An
``UNTIL`` is read in the event's own zone (a date, a local date-time, or a UTC time ending in
``Z``); the calendar compiler writes it back in UTC as the RFC requires for zoned DTSTARTs.

Expansion is always bounded: by a window, by :data:`MAX_OCCURRENCES` and by :data:`HORIZON`,
so a rule with no end at a high frequency cannot hang a build or exhaust memory, and a rule that
never matches (``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``) stops searching at the horizon instead of
walking every day to the year 9999. Rules are also refused where calendar clients would expand
them into a flood: no sub-daily frequency, at most :data:`MAX_PER_DAY` occurrences a day,
``COUNT`` up to :data:`MAX_OCCURRENCES` and a bounded ``INTERVAL``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from dateutil import rrule as du

from .model import MAX_YEAR, MIN_YEAR

#: Occurrences examined per series by checks and listings.
MAX_OCCURRENCES = 5000
#: No series is expanded past this local time (the first instant after the supported years).
HORIZON = datetime(MAX_YEAR + 1, 1, 1)  # noqa: DTZ001 - local wall-clock time
MAX_INTERVAL = 1000
#: Occurrences a rule may produce on one day (BYHOUR values times BYMINUTE values).
MAX_PER_DAY = 24
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
    for name, high in (("COUNT", MAX_OCCURRENCES), ("INTERVAL", MAX_INTERVAL)):
        if name in parts and not (parts[name].isdigit() and 1 <= int(parts[name][:9]) <= high):
            raise RuleError(f"{name} must be a whole number from 1 to {high}")
    if "BYSECOND" in parts:
        raise RuleError("BYSECOND is not supported; events start on a whole minute")
    per_day = len(parts.get("BYHOUR", "0").split(",")) * len(parts.get("BYMINUTE", "0").split(","))
    if per_day > MAX_PER_DAY:
        raise RuleError(
            f"BYHOUR and BYMINUTE give {per_day} occurrences a day; at most {MAX_PER_DAY} allowed"
        )
    _check_satisfiable(parts, per_day)
    return parts


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _numbers(value: str) -> list[int] | None:
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        return None  # dateutil names the bad value


def _check_satisfiable(parts: dict[str, str], per_day: int) -> None:
    """Refuse rules that can never match (RFC 5545 section 3.3.10 limits, impossible dates).

    dateutil searches for the next match period by period up to the year 9999 without ever
    yielding, so a DAILY rule for 30 February would spend seconds per expansion.
    """
    freq = parts["FREQ"]
    for name in ("BYYEARDAY", "BYWEEKNO"):
        if name in parts and freq != "YEARLY":
            raise RuleError(f"{name} is only allowed with FREQ=YEARLY")
    if "BYMONTHDAY" in parts and freq == "WEEKLY":
        raise RuleError("BYMONTHDAY is not allowed with FREQ=WEEKLY")
    days = _numbers(parts.get("BYMONTHDAY", "1"))
    months = _numbers(parts.get("BYMONTH", "1,2,3,4,5,6,7,8,9,10,11,12"))
    if days is not None and months is not None:
        longest = max((_MONTH_DAYS[m - 1] for m in months if 1 <= m <= 12), default=31)
        if all(abs(d) > longest for d in days):
            raise RuleError("BYMONTHDAY and BYMONTH name a day that never exists")
    positions = _numbers(parts.get("BYSETPOS", "1"))
    most = _most_per_period(parts, per_day, days)
    if positions is not None and most is not None and all(abs(p) > most for p in positions):
        raise RuleError(f"BYSETPOS can never match: a period has at most {most} occurrence(s)")


def _most_per_period(parts: dict[str, str], per_day: int, days: list[int] | None) -> int | None:
    """An upper bound of the occurrences in one DAILY, WEEKLY or MONTHLY period."""
    weekdays = [d.strip() for d in parts["BYDAY"].split(",")] if "BYDAY" in parts else []
    freq = parts["FREQ"]
    if freq == "DAILY":
        return per_day
    if freq == "WEEKLY":
        return max(len(weekdays), 1) * per_day
    if freq == "MONTHLY":
        if "BYMONTHDAY" in parts:
            return len(days) * per_day if days is not None else None
        if weekdays:
            return sum(5 if d.isalpha() else 1 for d in weekdays) * per_day
        return per_day
    return None


def local_until(value: str, zone: ZoneInfo, all_day: bool) -> date | datetime:
    """UNTIL as a naive local value comparable with the series' local starts."""
    m = _UNTIL.fullmatch(value)
    if not m:
        raise RuleError(f"UNTIL={value} is not a date (20231231) or date-time (20231231T235959Z)")
    try:
        # Wall-clock values in the event's zone are naive on purpose.
        day = datetime.strptime(m.group(1), "%Y%m%d").date()  # noqa: DTZ007
        moment = datetime.strptime(m.group(1) + (m.group(2) or "235959"), "%Y%m%d%H%M%S")  # noqa: DTZ007
    except ValueError:
        raise RuleError(f"UNTIL={value} is not a valid date or date-time") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise RuleError(f"UNTIL={value} is outside the supported years {MIN_YEAR}-{MAX_YEAR}")
    if m.group(2) is None:
        return day if all_day else datetime.combine(day, time(23, 59, 59))
    if m.group(3):
        moment = moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    return moment.date() if all_day else moment


def build_rule(rule: str, start: date | datetime, zone: ZoneInfo) -> du.rrule:
    """A dateutil rule over naive local starts (dates become midnight datetimes)."""
    all_day = not isinstance(start, datetime)
    parts = parse_parts(rule)
    text_parts = [f"{k}={v}" for k, v in parts.items() if k != "UNTIL"]
    dtstart = start if isinstance(start, datetime) else datetime.combine(start, time())
    until = HORIZON
    if "UNTIL" in parts:
        given = local_until(parts["UNTIL"], zone, all_day)
        until = min(
            until, given if isinstance(given, datetime) else datetime.combine(given, time())
        )
    try:
        parsed = du.rrulestr(";".join(text_parts), dtstart=dtstart, cache=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RuleError(str(exc)) from None
    if "COUNT" not in parts:
        parsed = parsed.replace(until=until)  # dateutil refuses COUNT with UNTIL
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
    position = 0  # next unused entry of pending (popping the head of a list is linear)
    seen: set[datetime] = set()
    next_rule = next(rule_iter, None)
    while produced < limit:
        if next_rule is not None and (position == len(pending) or next_rule <= pending[position]):
            current = next_rule
            next_rule = next(rule_iter, None)
        elif position < len(pending):
            current = pending[position]
            position += 1
        else:
            return
        if until is not None and current > until:
            return
        if current in seen or current in excluded:
            continue
        seen.add(current)
        produced += 1
        yield current.date() if all_day else current
