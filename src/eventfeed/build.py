"""The build: records in, ``{relative path: bytes}`` out. No file is read or written here.

Compilers are pure functions of a :class:`BuildContext`; each returns its artifacts, and
:class:`Artifacts` refuses two compilers (or two events) claiming the same path.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from multiprocessing.connection import Connection
from zoneinfo import ZoneInfo

from . import markdown, paths
from .event import Event
from .load import Site
from .model import Settings
from .state import EventState, Manifest, advance, file_digest


@dataclass(frozen=True)
class BuildContext:
    site: Site
    history: Mapping[str, EventState]
    #: the day "upcoming" and the look-back windows are measured from, in the site's zone
    as_of: date
    #: orders and memberships computed once per build (every compiler asks for them, and the
    #: site asks once per page); the context is frozen, so they cannot go stale
    _memo: dict[str, tuple[Event, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def settings(self) -> Settings:
        return self.site.settings

    @property
    def events(self) -> tuple[Event, ...]:
        return self.site.events

    def chronological(self) -> list[Event]:
        """Events by start (UTC), ties broken by id."""
        order = self._memo.get("")
        if order is None:
            order = self._memo[""] = tuple(sorted(self.site.events, key=lambda e: e.sort_key))
        return list(order)

    def collection(self, name: str) -> list[Event]:
        """The events of one collection of the settings, chronological."""
        key = "collection:" + name
        members = self._memo.get(key)
        if members is None:
            members = tuple(
                e for e in self.chronological() if in_collection(e, self.settings, name)
            )
            self._memo[key] = members
        return list(members)


def in_collection(event: Event, settings: Settings, name: str) -> bool:
    """An event belongs when it matches every filter the collection gives (any value of each)."""
    spec = settings.collections[name]
    rec = event.record
    organisations = {r for r in (*rec.organizers, *rec.partners) if isinstance(r, str)}
    return (
        (not spec.kinds or rec.kind in spec.kinds)
        and (not spec.regions or rec.region in spec.regions)
        and (not spec.tags or bool(set(spec.tags) & set(rec.tags)))
        and (not spec.organizers or bool(set(spec.organizers) & organisations))
        and (not spec.languages or event.language in spec.languages)
    )


class DuplicatePath(Exception):
    """Two artifacts claim one path: a bug in a compiler, never a user error."""


class Artifacts(Mapping[str, bytes]):
    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    def add(self, path: str, data: bytes) -> None:
        if path in self._files:
            raise DuplicatePath(path)
        self._files[path] = data

    def update_from(self, other: Mapping[str, bytes]) -> None:
        for path in sorted(other):
            self.add(path, other[path])

    def __getitem__(self, path: str) -> bytes:
        return self._files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._files))

    def __len__(self) -> int:
        return len(self._files)


Compiler = Callable[[BuildContext], Mapping[str, bytes]]


def compilers() -> list[Compiler]:
    """Every compiler, in a fixed order. Imported here to keep the import graph one-way."""
    from . import feeds, ical, pages

    return [ical.compile_calendars, feeds.compile_feeds, pages.compile_pages]


def as_of_for(now: datetime, settings: Settings) -> date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


#: Below this many events a second process costs more than it saves.
PARALLEL_MIN_EVENTS = 1000


def compile_site(
    site: Site,
    previous: Manifest | None,
    now: datetime,
    *,
    as_of: date | None = None,
    jobs: int | None = None,
) -> Artifacts:
    """Compile every artifact in memory, the manifest last.

    With ``jobs`` of 2 or more (by default when there are two cores and enough events), the
    first compiler (the calendars, the largest) runs in a forked process while this one runs
    the others. Compilers are pure functions of the context, so the bytes are the same either
    way; only the wall time changes.
    """
    history = advance(previous, site.events, now)
    context = BuildContext(site=site, history=history, as_of=as_of or as_of_for(now, site.settings))
    steps = compilers()
    if jobs is None:
        enough = len(site.events) >= PARALLEL_MIN_EVENTS and (os.cpu_count() or 1) >= 2
        jobs = 2 if enough else 1
    forked = jobs > 1 and "fork" in multiprocessing.get_all_start_methods()
    results = _compile_forked(steps, context) if forked else _compile(steps, context)
    artifacts = Artifacts()
    for result in results:
        artifacts.update_from(result)
    files = {path: file_digest(data) for path, data in artifacts.items()}
    manifest = Manifest(as_of=context.as_of, events=history, files=files)
    artifacts.add(paths.MANIFEST, manifest.to_bytes())
    return artifacts


def _compile(steps: list[Compiler], context: BuildContext) -> list[Mapping[str, bytes]]:
    with markdown.memoised():  # each body is rendered once, whichever compilers show it
        return [step(context) for step in steps]


def _compile_forked(steps: list[Compiler], context: BuildContext) -> list[Mapping[str, bytes]]:
    """The first step in a forked child (which inherits the context), the rest here."""
    fork = multiprocessing.get_context("fork")
    receiver, sender = fork.Pipe(duplex=False)
    child = fork.Process(target=_child, args=(steps[0], context, sender), daemon=True)
    child.start()
    sender.close()
    try:
        rest = _compile(steps[1:], context)
        try:
            ok, value = receiver.recv()
        except EOFError:  # the child died without a word (killed, out of memory)
            ok, value = True, None
    finally:
        receiver.close()
        child.join()
    if not ok:
        raise value
    if value is None:  # do it here after all: a build must not depend on the child
        return _compile(steps, context)
    return [value, *rest]


def _child(step: Compiler, context: BuildContext, sender: Connection) -> None:
    try:
        with markdown.memoised():
            result: tuple[bool, object] = (True, dict(step(context)))
    except Exception as exc:  # handed to the parent, which raises it as its own
        result = (False, exc)
    sender.send(result)
    sender.close()
