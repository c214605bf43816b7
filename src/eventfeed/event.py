"""An event: one record resolved against the site settings, as every compiler consumes it.

The record says what an editor wrote; the event adds what follows from it and the settings: its
id, its zone, aware start and end (all-day ends exclusive, as iCalendar wants them), its
language, its mode, and its organisations with their names and links.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, Protocol, TypeVar
from zoneinfo import ZoneInfo

from .model import InlineOrganisation, Record, Settings, Status


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
_UTC = ZoneInfo("UTC")
#: where :func:`microseconds` counts from, in the zone of :attr:`Event.sort_key`'s start
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MICROSECOND = timedelta(microseconds=1)


def microseconds(moment: datetime) -> int:
    """An aware moment as whole microseconds since 1970 (UTC): exact, and ordered as the
    moments are, where a pickled datetime names its zone and a timestamp is a float."""
    return (moment - _EPOCH) // _MICROSECOND


def moment_of(micros: int) -> datetime:
    """:func:`microseconds` read back, in the zone of :attr:`Event.sort_key`'s start."""
    return _EPOCH + timedelta(microseconds=micros)


T = TypeVar("T")


class Brief(NamedTuple):
    """What a build asks of every event's record, not only of the events it compiles: where
    it is listed and filed (kind, region, tags, the organisations named by their key,
    language), when it starts, its uid, status and a given sequence, and when it was
    published and updated (its history). The fields are named as the record's, whose values
    they are (:meth:`of`), but for :attr:`org_keys`.

    A record read back from the store keeps its brief beside it, and the rest packed
    (:meth:`Event.packed`): a rebuild makes the whole record only of the events it compiles
    again, instead of every one (at 100,000 events, about a second)."""

    kind: str
    region: str | None
    tags: tuple[str, ...]
    #: the organisers and partners named by their key in the settings, in the record's order
    org_keys: tuple[str, ...]
    language: str | None
    timezone: str | None
    start: date | datetime
    status: Status
    sequence: int | None
    uid: str | None
    published: date | datetime | None
    updated: date | datetime | None

    @classmethod
    def of(cls, record: Record) -> Brief:
        return cls(
            record.kind,
            record.region,
            record.tags,
            _org_keys(record),
            record.language,
            record.timezone,
            record.start,
            record.status,
            record.sequence,
            record.uid,
            record.published,
            record.updated,
        )


def _org_keys(record: Record) -> tuple[str, ...]:
    """The organisers and partners a record names by their key in the settings."""
    return tuple(r for r in (*record.organizers, *record.partners) if isinstance(r, str))


@functools.cache
def _zone(key: str) -> ZoneInfo:
    """The zone of ``key``, one object per zone for the whole run.

    ``ZoneInfo`` keeps only the last few zones it made alive; the others are made again from
    the zone data when no event holds them any more. Loading, where each event is checked
    and let go, and a build of events in many zones would read the same files again and
    again. The zone keys are those the records name, a few hundred at most.
    """
    return ZoneInfo(key)


#: what :meth:`Event.packed` gives the record field before it leaves it unset
_PACKED: Any = object()


class _Packed(Protocol):
    """What an event still packed takes its record and body from (:meth:`Event.packed`)."""

    @property
    def record(self) -> Record: ...
    @property
    def body(self) -> str: ...


def _has_body(event: Event) -> bool:
    try:
        object.__getattribute__(event, "body")  # (not :meth:`Event.__getattr__`)
    except AttributeError:
        return False
    return True


def _keep(event: Event, slot: str, value: T) -> T:
    object.__setattr__(event, slot, value)  # the event is frozen; its slots of memos are not
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """An event; each derived value is computed on first use and kept.

    Compilers ask for the same values hundreds of thousands of times in a large build. Record
    and settings are frozen, so a value once derived stays right; it is kept in a slot of its
    own (no per-event ``__dict__``), and ``dataclasses.replace`` starts a new event afresh.
    """

    id: str
    #: the record's path as the user names it, for messages (``events/2022/x.md``)
    source: str
    record: Record
    body: str
    settings: Settings = field(repr=False)

    # derived values, kept once computed (None: not yet)
    _uid: str | None = field(default=None, init=False, repr=False, compare=False)
    _zone: ZoneInfo | None = field(default=None, init=False, repr=False, compare=False)
    _local_end: date | datetime | None = field(default=None, init=False, repr=False, compare=False)
    _last_day: date | None = field(default=None, init=False, repr=False, compare=False)
    _start: date | datetime | None = field(default=None, init=False, repr=False, compare=False)
    _end: date | datetime | None = field(default=None, init=False, repr=False, compare=False)
    _sort_key: tuple[datetime, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _mode: Mode | None = field(default=None, init=False, repr=False, compare=False)
    _organizers: tuple[Org, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _partners: tuple[Org, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _categories: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    #: the digests of its content and schedule (:func:`eventfeed.state.content_digests`)
    _digests: tuple[str, str] | None = field(default=None, init=False, repr=False, compare=False)
    #: its "when" line (:func:`eventfeed.text.when_text`), which calendars, pages and feeds show
    _when: str | None = field(default=None, init=False, repr=False, compare=False)
    #: what every build asks of the record, when the record is still packed (:meth:`packed`)
    _brief: Brief | None = field(default=None, init=False, repr=False, compare=False)
    #: what makes the record and body still packed (:meth:`packed`); None once the record is
    #: made
    _unpack: _Packed | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def packed(
        cls,
        id: str,
        source: str,
        brief: Brief,
        unpack: _Packed,
        settings: Settings,
        body: str | None = None,
    ) -> Event:
        """An event whose record (and body, unless given) are taken from ``unpack`` when
        first asked for (the record read back packed, :class:`eventfeed.load.RecordFile`);
        until then, what :class:`Brief` holds is taken from ``brief``, which must be
        ``Brief.of`` the record."""
        event = cls(id=id, source=source, record=_PACKED, body=body or "", settings=settings)
        object.__delattr__(event, "record")  # left unset: :meth:`__getattr__` makes it
        if body is None:
            object.__delattr__(event, "body")  # (and the body)
        _keep(event, "_brief", brief)
        _keep(event, "_unpack", unpack)
        return event

    def __getattr__(self, name: str) -> Any:
        # Reached only for an attribute not set: the record or body of an event still packed.
        unpack = self._unpack if name == "record" or name == "body" else None
        if unpack is None:
            raise AttributeError(name)
        if name == "body":
            return _keep(self, "body", unpack.body)
        record = unpack.record
        _keep(self, "record", record)
        if not _has_body(self):
            _keep(self, "body", unpack.body)
        _keep(self, "_unpack", None)
        return record

    @property
    def packed_from(self) -> _Packed | None:
        """What the record (and body) of an event still packed are taken from; None once the
        record is made, or for an event made whole."""
        return self._unpack

    @property
    def brief(self) -> Brief | Record:
        """The record, or what every build asks of it while it is still packed: read only
        the fields of :class:`Brief` (but ``org_keys``: :attr:`org_keys`) from it."""
        brief = self._brief
        return brief if brief is not None else self.record

    @property
    def org_keys(self) -> tuple[str, ...]:
        """:attr:`Brief.org_keys`."""
        brief = self._brief
        return brief.org_keys if brief is not None else _org_keys(self.record)

    def keep_digests(self, digests: tuple[str, str]) -> None:
        """Keep the content and schedule digests worked out for this record and settings
        (by :mod:`eventfeed.state`, or found in the record store by the loader)."""
        _keep(self, "_digests", digests)

    @property
    def digests(self) -> tuple[str, str] | None:
        return self._digests

    @property
    def kept_when(self) -> str | None:
        """Its "when" line if :meth:`keep_when` kept it."""
        return self._when

    def keep_when(self, text: str) -> str:
        return _keep(self, "_when", text)

    # --- identity -------------------------------------------------------------------
    @property
    def uid(self) -> str:
        """RFC 5545 UID: the id at the site's domain; never a position, time or random number."""
        if self._uid is None:
            return _keep(self, "_uid", self.brief.uid or f"{self.id}@{self.settings.domain}")
        return self._uid

    # --- time -----------------------------------------------------------------------
    @property
    def tzid(self) -> str:
        return self.brief.timezone or self.settings.timezone

    @property
    def zone(self) -> ZoneInfo:
        if self._zone is None:
            return _keep(self, "_zone", _zone(self.tzid))
        return self._zone

    @property
    def all_day(self) -> bool:
        return not isinstance(self.brief.start, datetime)

    @property
    def local_start(self) -> date | datetime:
        """The start as written: a date, or a naive local date-time in :attr:`zone`."""
        return self.brief.start

    @property
    def local_end(self) -> date | datetime:
        """Exclusive end: for all-day events the day after the record's inclusive end date."""
        if self._local_end is None:
            return _keep(self, "_local_end", self._compute_local_end())
        return self._local_end

    def _compute_local_end(self) -> date | datetime:
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
        if self._last_day is None:
            return _keep(self, "_last_day", self._compute_last_day())
        return self._last_day

    def _compute_last_day(self) -> date:
        end = self.local_end
        if self.all_day:
            return end - timedelta(days=1)
        assert isinstance(end, datetime)
        return (end - timedelta(microseconds=1)).date()

    def aware(self, value: date | datetime) -> datetime:
        """A local value as an aware datetime in the event's zone (dates at midnight)."""
        if not isinstance(value, datetime):
            value = datetime.combine(value, time())
        return value.replace(tzinfo=self._zone or self.zone)  # the kept zone, else computed

    @property
    def start(self) -> date | datetime:
        """Start for compilers: a date (all-day) or an aware datetime in the event's zone."""
        if self._start is None:
            value = self.local_start if self.all_day else self.aware(self.local_start)
            return _keep(self, "_start", value)
        return self._start

    @property
    def end(self) -> date | datetime:
        if self._end is None:
            return _keep(
                self, "_end", self.local_end if self.all_day else self.aware(self.local_end)
            )
        return self._end

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Chronological order with a stable tie-break on id."""
        if self._sort_key is None:
            value = (self.aware(self.local_start).astimezone(_UTC), self.id)
            return _keep(self, "_sort_key", value)
        return self._sort_key

    # --- what and where -----------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self.brief.status is Status.CANCELLED

    @property
    def language(self) -> str:
        return self.brief.language or self.settings.language

    @property
    def mode(self) -> Mode:
        if self._mode is None:
            return _keep(self, "_mode", self._compute_mode())
        return self._mode

    def _compute_mode(self) -> Mode:
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
        if self._organizers is None:
            return _keep(self, "_organizers", self._orgs(self.record.organizers))
        return self._organizers

    @property
    def partners(self) -> tuple[Org, ...]:
        if self._partners is None:
            return _keep(self, "_partners", self._orgs(self.record.partners))
        return self._partners

    @property
    def categories(self) -> tuple[str, ...]:
        """Kind, region and tags, in that order, without repeats."""
        if self._categories is None:
            brief = self.brief
            values = [brief.kind, brief.region, *brief.tags]
            return _keep(self, "_categories", tuple(dict.fromkeys(v for v in values if v)))
        return self._categories
