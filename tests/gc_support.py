"""What Python's cycle collector walks, for the tests that check what a build keeps from it."""

from __future__ import annotations

import gc
from collections.abc import Iterable


def tracked(generations: Iterable[int] = range(3)) -> set[int]:
    """The ids of every object the collector tracks in ``generations`` (a frozen object is in
    none of them)."""
    return {id(o) for generation in generations for o in gc.get_objects(generation)}
