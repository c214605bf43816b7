"""iCalendar subscriptions, per-event files and jCal (RFC 5545, RFC 7986, RFC 7265)."""

from __future__ import annotations

from collections.abc import Mapping

from .build import BuildContext


def compile_calendars(context: BuildContext) -> Mapping[str, bytes]:
    return {}
