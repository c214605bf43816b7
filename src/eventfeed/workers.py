"""Work shared out among forked workers, in chunks taken back in order as they come.

The loader (parsing records) and the build (compiling events) share their work the same way:
the work is a list set in a module variable before the workers are forked, so they inherit it
instead of being sent it; each worker is given a range of that list and sends back what it
made of it. A machine without ``fork``, or a worker that dies (killed, out of memory, a full
disk), is no failure: the chunks stop there and the caller does the rest itself.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

R = TypeVar("R")


def chunks_done(
    work: Callable[[tuple[int, int]], R],
    count: int,
    jobs: int,
    *,
    least: int,
    most: int | None = None,
) -> Iterator[tuple[int, int, R]]:
    """``work`` of the items ``0 .. count - 1`` in chunks, by ``jobs`` forked workers; each
    chunk as ``(start, end, result)``, in order, as soon as it and those before it are done.

    ``work`` must be a function of its module (the workers find it by name). The chunks stop
    early, without an error, when the workers cannot run: the caller goes on from the last
    ``end``. Their sizes are :func:`_chunks`'.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return
    chunks = _chunks(count, jobs, least, most)
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            made = pool.map(work, chunks)
            for start, end in chunks:
                try:
                    part = next(made)
                except (BrokenProcessPool, OSError):  # a worker died, or its disk is full
                    return
                yield start, end, part
    except (BrokenProcessPool, OSError):  # no worker could be started
        return


def _chunks(count: int, jobs: int, least: int, most: int | None) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk of ``count`` items: about eight per worker, each of
    ``least`` to ``most`` items, until each worker has two chunks' worth left; from there on a
    quarter of a worker's share of what is left, so that the last chunks are small and the
    workers finish at about the same time (with even chunks, one worker went on alone with
    the last one while the other waited)."""
    size = max(least, -(-count // (jobs * 8)))
    if most is not None:
        size = min(most, size)
    found = []
    start = 0
    while start < count:
        step = max(least, min(size, -(-(count - start) // (jobs * 2))))
        found.append((start, min(start + step, count)))
        start += step
    return found
