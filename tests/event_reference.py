"""``Event`` as it was before its derived values were kept, as a reference for its tests.

``tests/test_event_values.py`` checks that every property of the memoising ``Event`` equals
this straightforward one's, on every record the repository holds. Do not change this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from zoneinfo import ZoneInfo

from eventfeed.model import InlineOrganisation, Record, Settings, Status


class Mode(StrEnum):
    ONLINE = "online"
    HYBRID = "hybrid"
    IN_PERSON = "in-person"


@dataclass(frozen=True)
class Org:
    name: str
    short: str | None = None
    url: str | None = None
    email: str | None = None
    key: str | None = None


DEFAULT_DURATION = timedelta(hours=1)


@dataclass(frozen=True)
class Event:
    id: str
    #: the record's path as the user names it, for messages (``events/2022/x.md``)
    source: str
    record: Record
    body: str
    settings: Settings = field(repr=False)

    # --- identity -------------------------------------------------------------------
    @property
    def uid(self) -> str:
        """RFC 5545 UID: the id at the site's domain; never a position, time or random number."""
        return self.record.uid or f"{self.id}@{self.settings.domain}"

    # --- time -----------------------------------------------------------------------
    @property
    def tzid(self) -> str:
        return self.record.timezone or self.settings.timezone

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tzid)

    @property
    def all_day(self) -> bool:
        return not isinstance(self.record.start, datetime)

    @property
    def local_start(self) -> date | datetime:
        """The start as written: a date, or a naive local date-time in :attr:`zone`."""
        return self.record.start

    @property
    def local_end(self) -> date | datetime:
        """Exclusive end: for all-day events the day after the record's inclusive end date."""
        rec = self.record
        if self.all_day:
            if rec.duration is not None:
                return rec.start + timedelta(days=max(1, rec.duration.days))
            last = rec.end if rec.end is not None else rec.start
            if isinstance(last, datetime):  # mixed types are reported by checks
                last = last.date()
            return last + timedelta(days=1)
        assert isinstance(rec.start, datetime)
        if isinstance(rec.end, datetime):
            return rec.end
        return rec.start + (rec.duration or DEFAULT_DURATION)

    @property
    def last_day(self) -> date:
        """The last day the event takes place on (inclusive), for display."""
        end = self.local_end
        if self.all_day:
            return end - timedelta(days=1)
        assert isinstance(end, datetime)
        return (end - timedelta(microseconds=1)).date()

    def aware(self, value: date | datetime) -> datetime:
        """A local value as an aware datetime in the event's zone (dates at midnight)."""
        if not isinstance(value, datetime):
            value = datetime.combine(value, time())
        return value.replace(tzinfo=self.zone)

    @property
    def start(self) -> date | datetime:
        """Start for compilers: a date (all-day) or an aware datetime in the event's zone."""
        return self.local_start if self.all_day else self.aware(self.local_start)

    @property
    def end(self) -> date | datetime:
        return self.local_end if self.all_day else self.aware(self.local_end)

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Chronological order with a stable tie-break on id."""
        return (self.aware(self.local_start).astimezone(ZoneInfo("UTC")), self.id)

    # --- what and where -----------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self.record.status is Status.CANCELLED

    @property
    def language(self) -> str:
        return self.record.language or self.settings.language

    @property
    def mode(self) -> Mode:
        online = self.record.online is not None
        loc = self.record.location
        in_person = loc is not None and any((loc.venue, loc.address, loc.city))
        if online and in_person:
            return Mode.HYBRID
        if in_person:
            return Mode.IN_PERSON
        return Mode.ONLINE

    def _orgs(self, refs: tuple[str | InlineOrganisation, ...]) -> tuple[Org, ...]:
        result = []
        for ref in refs:
            if isinstance(ref, InlineOrganisation):
                result.append(Org(name=ref.name, url=ref.url))
            else:
                known = self.settings.organisations.get(ref)
                if known is None:  # reported by checks; never reaches a successful build
                    result.append(Org(name=ref, key=ref))
                else:
                    result.append(
                        Org(
                            name=known.name,
                            short=known.short,
                            url=known.url,
                            email=known.email,
                            key=ref,
                        )
                    )
        return tuple(result)

    @property
    def organizers(self) -> tuple[Org, ...]:
        return self._orgs(self.record.organizers)

    @property
    def partners(self) -> tuple[Org, ...]:
        return self._orgs(self.record.partners)

    @property
    def categories(self) -> tuple[str, ...]:
        """Kind, region and tags, in that order, without repeats."""
        values = [self.record.kind, self.record.region, *self.record.tags]
        return tuple(dict.fromkeys(v for v in values if v))
