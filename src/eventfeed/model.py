"""The record and settings models (pydantic v2).

Models check the shape and the form of each value: unknown keys are errors, strings are not
numbers, URLs are http(s), zones exist. Checks that need several fields, other records or the
settings live in :mod:`eventfeed.checks`, where they can name the exact field they blame.
"""

from __future__ import annotations

import re
import sys
import zoneinfo
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_SLUG = re.compile(SLUG_PATTERN)
MAX_SLUG = 80
#: Device names Windows reserves in every folder: a file ``con.html`` breaks checkouts there.
WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)
#: Years a date may have: far enough for archives and long series, near enough that every
#: computed end, exclusive all-day end and UTC conversion stays inside Python's date range.
MIN_YEAR, MAX_YEAR = 1900, 2199
MAX_DURATION = timedelta(days=366)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?$")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


def is_slug(value: str) -> bool:
    # fullmatch: ``$`` in match() also accepts a trailing newline ("meeting\n")
    return bool(_SLUG.fullmatch(value)) and len(value) <= MAX_SLUG


def shown(value: str) -> str:
    """A user's value quoted for a message, with line breaks and controls made visible."""
    return f"'{value}'" if value.isprintable() else repr(value)


@cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# --- value types -------------------------------------------------------------------------


def _one_line(value: str) -> str:
    if _CONTROL.search(value) or "\n" in value:
        raise ValueError("must be a single line of text without control characters")
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _text(value: str) -> str:
    if _CONTROL.search(value.replace("\n", "").replace("\t", "")):
        raise ValueError("contains control characters")
    return value


def _shared(value: str) -> str:
    """One copy of a value many records share (slugs, zones, languages, countries name kinds,
    regions, tags and organisations): kept once by sys.intern, not once per record."""
    return sys.intern(value) if type(value) is str else value


def _slug(value: str) -> str:
    if not is_slug(value):
        raise ValueError(
            f"{shown(value)} is not a slug: use lowercase letters, digits and single hyphens "
            f"(at most {MAX_SLUG} characters)"
        )
    if value in WINDOWS_DEVICES:
        raise ValueError(
            f"'{value}' is a device name reserved on Windows, so files named after it "
            "cannot be checked out there; choose another name"
        )
    return _shared(value)


#: An http(s) URL with a plain host name, in printable ASCII: it passes the checks of :func:`_url`
#: up to the characters that must be percent-encoded (urlsplit would find this scheme and host).
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?:[/?#][!-~]*)?")


def _url(value: str) -> str:
    if not _PLAIN_URL.fullmatch(value):
        if _CONTROL.search(value) or any(c.isspace() for c in value):
            raise ValueError("URL must not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{shown(value)} is not an http(s) URL")
    if '"' in value or "<" in value or ">" in value or "\\" in value:
        raise ValueError("URL contains characters that must be percent-encoded")
    return value


def _zone(value: str) -> str:
    if value not in known_zones():
        raise ValueError(f"{shown(value)} is not an IANA time zone")
    return _shared(value)


def _language(value: str) -> str:
    if not _LANGUAGE.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a BCP 47 language tag such as 'en' or 'es-419'")
    return _shared(value)


def _country(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValueError(f"{shown(value)} is not a two-letter ISO 3166 country code such as 'US'")
    return _shared(value)


def parse_when(value: Any) -> Any:
    """A date (all-day) or a local date-time without offset, in the supported years."""
    result = _parse_when(value)
    if not MIN_YEAR <= result.year <= MAX_YEAR:
        raise ValueError(
            f"{result.isoformat()} is outside the supported years {MIN_YEAR}-{MAX_YEAR}"
        )
    return result


def _parse_when(value: Any) -> date | datetime:
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str):
        raise ValueError(
            "expected a date such as 2022-12-07 or a local time such as 2022-12-07T15:00"
        )
    text = value.strip()
    if _DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{shown(text)} is not a calendar date") from None
    if _DATETIME.match(text):
        try:
            return datetime.fromisoformat(text.replace(" ", "T"))
        except ValueError:
            raise ValueError(f"{shown(text)} is not a valid date and time") from None
    if _OFFSET.search(text):
        raise ValueError(
            f"{shown(text)} has a UTC offset; write the local time (2022-12-07T15:00) "
            "and set 'timezone'"
        )
    raise ValueError(
        f"{shown(text)} is neither a date (2022-12-07) nor a local time (2022-12-07T15:00)"
    )


def parse_duration(value: Any) -> timedelta:
    if (
        not isinstance(value, str)
        or not (m := _DURATION.match(value.strip()))
        or value.strip() in ("P", "PT")
    ):
        raise ValueError(f"{shown(str(value))} is not an ISO 8601 duration such as PT1H30M or P2D")
    too_long = f"duration is longer than {MAX_DURATION.days} days"
    if any(g and len(g) > 7 for g in m.groups()):
        raise ValueError(too_long)  # before timedelta() can overflow
    weeks, days, hours, minutes = (int(g) if g else 0 for g in m.groups())
    result = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
    if result <= timedelta(0):
        raise ValueError("duration must be longer than zero")
    if result > MAX_DURATION:
        raise ValueError(too_long)
    return result


_WHEN_SCHEMA = {
    "type": "string",
    "description": "A date (all-day, e.g. 2022-12-07) or a local date-time (2022-12-07T15:00).",
    "pattern": r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?$",
}

OneLine = Annotated[StrictStr, AfterValidator(_one_line), Field(max_length=300)]
Text = Annotated[StrictStr, AfterValidator(_text), Field(max_length=20_000)]
Slug = Annotated[
    StrictStr, AfterValidator(_slug), WithJsonSchema({"type": "string", "pattern": SLUG_PATTERN})
]
Url = Annotated[
    StrictStr,
    AfterValidator(_url),
    Field(max_length=2000),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://"}),
]
Zone = Annotated[
    StrictStr,
    AfterValidator(_zone),
    WithJsonSchema({"type": "string", "description": "IANA time zone, e.g. Europe/Zurich"}),
]
Language = Annotated[
    StrictStr,
    AfterValidator(_language),
    WithJsonSchema({"type": "string", "description": "BCP 47 tag, e.g. en or es"}),
]
Country = Annotated[
    StrictStr, AfterValidator(_country), WithJsonSchema({"type": "string", "pattern": "^[A-Z]{2}$"})
]
When = Annotated[date | datetime, BeforeValidator(parse_when), WithJsonSchema(_WHEN_SCHEMA)]
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "description": "ISO 8601 duration, e.g. PT1H30M or P2D"}),
]
# No spaces, controls, quotes or the separators of iCalendar and of address lists.
_EMAIL_PART = r'[^@\s<>"\x00-\x1f\x7f-\x9f;:,]+'
Email = Annotated[
    StrictStr, Field(pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$", max_length=254)
]
Count = Annotated[StrictInt, Field(ge=0, le=10_000_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- records -----------------------------------------------------------------------------


class Status(StrEnum):
    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    POSTPONED = "postponed"
    CANCELLED = "cancelled"


class Location(Strict):
    """Where people meet in person."""

    venue: OneLine | None = None
    address: OneLine | None = None
    city: OneLine | None = None
    country: Country | None = None
    lat: Annotated[float, Field(ge=-90, le=90, strict=True)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, strict=True)] | None = None


class Online(Strict):
    """How people join online."""

    url: Url | None = None
    platform: OneLine | None = None


class InlineOrganisation(Strict):
    """An organisation named once, not defined in the site settings."""

    name: OneLine
    url: Url | None = None


#: A string names an organisation defined in the site settings; a mapping names a one-off.
OrganisationRef = Slug | InlineOrganisation


class Speaker(Strict):
    name: OneLine
    role: OneLine | None = None
    affiliation: OneLine | None = None


class Document(Strict):
    title: OneLine
    url: Url


class Links(Strict):
    registration: Url | None = None
    recording: Url | None = None
    page: Url | None = None
    documents: tuple[Document, ...] = ()


class Override(Strict):
    """A change to one occurrence of a recurring event, named by its original start."""

    occurrence: When
    start: When | None = None
    end: When | None = None
    status: Status | None = None
    title: OneLine | None = None
    note: Text | None = None


class Record(Strict):
    """One event, as written in the front matter of ``events/**/*.md``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="eventfeed event record",
        json_schema_extra={"description": "Front matter of one event file."},
    )

    id: Slug | None = Field(None, description="Defaults to the file name without extension.")
    title: OneLine
    kind: Slug
    status: Status = Status.CONFIRMED
    start: When
    end: When | None = None
    duration: Duration | None = None
    timezone: Zone | None = Field(None, description="Defaults to the site's time zone.")
    location: Location | None = None
    online: Online | None = None
    organizers: tuple[OrganisationRef, ...] = ()
    partners: tuple[OrganisationRef, ...] = ()
    speakers: tuple[Speaker, ...] = ()
    region: Slug | None = None
    language: Language | None = Field(None, description="Defaults to the site's language.")
    tags: tuple[Slug, ...] = ()
    links: Links = Links()
    published: When | None = Field(None, description="When the news went out.")
    updated: When | None = Field(None, description="When the record was last edited.")
    participants: Count | None = None
    rrule: Annotated[StrictStr, AfterValidator(_one_line)] | None = Field(
        None, description="RFC 5545 recurrence rule, e.g. FREQ=MONTHLY;BYDAY=1TH;COUNT=6"
    )
    exdates: tuple[When, ...] = ()
    rdates: tuple[When, ...] = ()
    overrides: tuple[Override, ...] = ()
    sequence: Count | None = Field(None, description="Overrides the computed SEQUENCE.")
    uid: Annotated[StrictStr, AfterValidator(_one_line), Field(max_length=1000)] | None = Field(
        None,
        description="Calendar UID kept from an imported calendar; defaults to <id>@<site domain>.",
    )


# --- site settings -----------------------------------------------------------------------


class Organisation(Strict):
    name: OneLine
    short: OneLine | None = None
    url: Url | None = None
    email: Email | None = None


class Publisher(Strict):
    name: OneLine
    email: Email | None = None
    url: Url | None = None


class Collection(Strict):
    """A named selection of events published as its own calendar and feed.

    An event belongs when it matches every filter given; within one filter any value matches.
    """

    title: OneLine
    description: Text | None = None
    kinds: tuple[Slug, ...] = ()
    regions: tuple[Slug, ...] = ()
    tags: tuple[Slug, ...] = ()
    organizers: tuple[Slug, ...] = ()
    languages: tuple[Language, ...] = ()


class CalendarSettings(Strict):
    lookback_days: Annotated[StrictInt, Field(ge=0, le=36_500)] = 365
    refresh_hours: Annotated[StrictInt, Field(ge=1, le=24 * 7)] = 12
    by_kind: bool = True
    by_region: bool = True
    by_language: bool = True
    max_bytes: Annotated[StrictInt, Field(ge=10_000)] = 4_000_000


class PageSettings(Strict):
    max_bytes: Annotated[StrictInt, Field(ge=10_000)] = 1_000_000


class FeedSettings(Strict):
    max_entries: Annotated[StrictInt, Field(ge=1, le=10_000)] = 50
    icon: Url | None = None
    logo: Url | None = None


class Settings(Strict):
    """Site-wide settings, read from ``events/site.yaml``."""

    title: OneLine
    description: Text = ""
    base_url: Url
    publisher: Publisher
    timezone: Zone
    language: Language = "en"
    kinds: tuple[Slug, ...] = Field(min_length=1)
    regions: tuple[Slug, ...] = ()
    organisations: dict[Slug, Organisation] = {}
    collections: dict[Slug, Collection] = {}
    calendars: CalendarSettings = CalendarSettings()
    feeds: FeedSettings = FeedSettings()
    pages: PageSettings = PageSettings()

    @property
    def site_url(self) -> str:
        """The base URL, always ending in a slash so relative links resolve under it."""
        return self.base_url if self.base_url.endswith("/") else self.base_url + "/"

    @property
    def domain(self) -> str:
        return _hostname(self.base_url)


@cache
def _hostname(url: str) -> str:
    """The host of the site's URL (every event's UID ends in it: asked once per event)."""
    return urlsplit(url).hostname or "localhost"


def record_schema() -> dict[str, Any]:
    """The JSON Schema of a record's front matter, generated from the model."""
    schema = Record.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
