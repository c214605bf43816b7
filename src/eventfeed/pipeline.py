"""Load, check the target, read the previous build and compile: the steps every builder shares.

``eventfeed build`` and ``eventfeed serve`` both go through :func:`compile_into`, so a change to
the order of these steps (the target is checked before a manifest in it is trusted) is made once.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from .build import Artifacts, compile_site
from .cache import Listed
from .eventcache import EventCache
from .load import Site, load_site
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
    site = load_site(events_dir, strict=strict, today=clock.date(), store=store, listed=listed)
    if loaded is not None:
        loaded(site)
    # The loaded site lives as long as the build: the cycle collector is kept from walking it
    # while the previous build is read, as :func:`compile_site` keeps it from doing after.
    gc.freeze()
    try:
        if writing:
            check_target(out_dir, events_dir=events_dir)  # before trusting a manifest in it
        previous = read_manifest(out_dir)
        if not writing and as_of is None and previous is not None:
            as_of = previous.as_of
        # A build that writes keeps what each event made, so the next one compiles only the
        # events that changed; ``--check`` neither uses nor changes that store.
        reuse = EventCache.for_out(out_dir) if writing else None
        artifacts = compile_site(
            site, previous, clock, as_of=as_of, reuse=reuse, previous_out=out_dir.resolve()
        )
    finally:
        gc.unfreeze()
    return site, artifacts
