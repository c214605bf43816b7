"""Load, check the target, read the previous build and compile: the steps every builder shares.

``eventfeed build`` and ``eventfeed serve`` both go through :func:`compile_into`, so a change to
the order of these steps (the target is checked before a manifest in it is trusted) is made once.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from .build import Ahead, Artifacts, compile_site
from .cache import Listed
from .errors import EventfeedError
from .eventcache import EventCache
from .load import Site, collector_paused, load_site
from .paths import MANIFEST
from .recordstore import RecordStore
from .state import read_manifest
from .write import check_target


def compile_into(
    events_dir: Path,
    out_dir: Path,
    clock: datetime,
    *,
    strict: bool = False,
    as_of: date | None = None,
    writing: bool = True,
    loaded: Callable[[Site], None] | None = None,
    listed: Listed | None = None,
) -> tuple[Site, Artifacts]:
    """Compile the records for ``out_dir`` in memory; nothing is written.

    ``writing`` is False for ``build --check``: the target is only read, and without an explicit
    ``as_of`` the day of the existing build is reused, so a day passing does not make it stale.
    ``loaded`` is called with the site as soon as it is valid (to print its warnings).
    ``listed``: the record files as the no-change check found them (:func:`load_site`).
    """
    # A build that writes keeps the records it parsed, so the next one parses only those
    # whose bytes changed; ``--check`` neither uses nor changes that store.
    store = RecordStore.for_events(events_dir) if writing else None
    # A build that compiles every event has the workers that check the records compile
    # their events as they go (:func:`_ahead`).
    ahead = _ahead(events_dir, out_dir, clock, as_of, writing)
    # A build that writes keeps what each event made, so the next one compiles only the
    # events that changed; ``--check`` neither uses nor changes that store.
    reuse = ahead.reuse if ahead is not None else None
    site = load_site(
        events_dir, strict=strict, today=clock.date(), store=store, listed=listed, ahead=ahead
    )
    if loaded is not None:
        loaded(site)
    # The loaded site lives as long as the build: the cycle collector is kept from walking it
    # while the previous build is read, as :func:`compile_site` keeps it from doing after.
    gc.freeze()
    try:
        if writing:
            check_target(out_dir, events_dir=events_dir)  # before trusting a manifest in it
        previous = read_manifest(out_dir, ahead.previous if ahead is not None else None)
        if not writing and as_of is None and previous is not None:
            as_of = previous.as_of
        if writing and reuse is None:
            reuse = EventCache.for_out(out_dir)
        artifacts = compile_site(
            site,
            previous,
            clock,
            as_of=as_of,
            reuse=reuse,
            previous_out=out_dir.resolve(),
            ahead=ahead,
        )
    finally:
        gc.unfreeze()
    return site, artifacts


def _ahead(
    events_dir: Path, out_dir: Path, clock: datetime, as_of: date | None, writing: bool
) -> Ahead | None:
    """What a build that compiles every event needs to compile them as its records are
    loaded (:class:`Ahead`): a first build (no manifest in ``out_dir``), one that writes
    without the per-event store of the builds into it (a fresh clone of a site whose out/ is
    committed), ``build --check``. Not a rebuild, which takes most events from that store.

    The manifest of out/ is read here, before the build has checked that out/ is its own to
    trust it (:func:`eventfeed.write.check_target`, which runs again after the load): what
    was made with it is taken only when the build, having checked, reads the very same
    manifest. None when out/ is refused or the manifest cannot be read: nothing is compiled
    for a build that will fail, and the build says why where it always did, after the
    records' problems."""
    first = not os.path.lexists(out_dir / MANIFEST)
    if writing and not first and EventCache.file_for(out_dir).exists():
        return None
    try:
        if writing:
            check_target(out_dir, events_dir=events_dir)
        # (with the collector paused, as the load makes its objects: the history of every
        # event is kept to the end of the build, and a pass over it would free nothing)
        with collector_paused():
            previous = None if first else read_manifest(out_dir)
    except EventfeedError:
        return None
    if not writing and as_of is None and previous is not None:
        as_of = previous.as_of  # (as the build takes it)
    reuse = EventCache.for_out(out_dir) if writing else None
    return Ahead(clock, as_of, reuse, previous, out_dir.resolve())
