#!/usr/bin/env python3
"""Run one ``eventfeed`` command and print where its time went, process by process.

    .venv/bin/python benchmarks/phases.py build --events E --out O -q --as-of 2023-11-14
    .venv/bin/python benchmarks/phases.py --profile /tmp/parent.prof build --events E --out O

The command is the real one (``eventfeed.cli``), forked workers and all. Before it runs, the
build's phases are wrapped with timers: the no-change check, the load, the previous build
read back, the per-event store opened, the history and the keys, the per-event work, each
whole step, the writer and the fingerprint. Each timer takes the wall time and the CPU time
(user and kernel) of the process it runs in. The workers' chunks (the load's and the
per-event work's; in a first build, the load's workers compile too, which is timed within
their chunks), the whole step run beside the others and the copy of spilled files are
timed in their own processes and written to a log the parent reads at the end. Nothing the
build makes depends on the timers.

With ``--profile FILE``, the parent (not the workers) is run under cProfile too.

The names wrapped are the build's own functions: this script goes with the code of the same
commit (``tests/test_bench.py`` runs it, so a renamed function fails there, not here).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from eventfeed import build, cache, cli, load, pipeline, quick, write

#: (module or class, attribute, label): the phases of the first process, in build order
PHASES: list[tuple[Any, str, str]] = [
    (cache.Fingerprint, "of", "no-change check"),
    # a rebuild after a few edits, made from the last build (eventfeed.quick)
    (quick, "quick_build", "quick rebuild"),
    (cache.Fingerprint, "edits", "edits found"),
    (cache.Fingerprint, "left", "out/ found as left"),
    (quick, "_read_manifest", "manifest read"),
    (quick, "_each", "per-event work (here)"),  # (quick's own names of these three)
    (quick, "_dated_calendars", "dated calendars spliced"),
    (quick, "write_tree", "write"),
    (pipeline, "load_site", "load"),
    (pipeline, "check_target", "out/ checked"),
    (pipeline, "read_manifest", "manifest read"),
    (pipeline.EventCache, "for_out", "per-event store opened"),
    (build, "advance", "history"),
    (build, "_keys", "keys"),
    (build, "_reused", "unchanged events taken"),
    (build, "_each_forked", "per-event work (workers)"),
    (build, "_each", "per-event work (here)"),
    (build, "_whole", "whole steps and manifest"),
    (write, "write_tree", "write"),
    (cache.Fingerprint, "save", "fingerprint saved"),
]
#: functions that run in processes of their own: (module, name, what the process is)
OTHERS: list[tuple[Any, str, str]] = [
    (load, "_settle_chunk", "load worker"),
    (build.Ahead, "compile", "  of which compiled"),  # a first build's (:class:`build.Ahead`)
    (build, "_each_chunk", "per-event worker"),
    (build, "_aside_files", "whole step beside"),
    (build, "_copy_to_tree", "copy of spilled files"),
]

PARENT = os.getpid()
START = time.perf_counter()


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _write(log: str, *fields: object) -> None:
    with open(log, "a", encoding="utf-8") as handle:  # one short line: appends do not mix
        handle.write("\t".join(map(str, fields)) + "\n")


#: what a phase is called: its name, or a function of its arguments that names it
Label = str | Callable[..., str]


def _timed(function: Callable[..., Any], log: str, label: Label) -> Callable[..., Any]:
    """``function`` writing, when it returns, its label, process, start, end and CPU time."""

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began, cpu = time.perf_counter(), _cpu()
        try:
            return function(*args, **kwargs)
        finally:
            end, name = time.perf_counter(), label if isinstance(label, str) else label(*args)
            _write(log, name, os.getpid(), began - START, end - START, _cpu() - cpu)

    return timed


def _whole_step(step: Any, *_: Any) -> str:
    return f"  whole step: {step.name}"


def install(log: str) -> None:
    """Wrap every phase and worker function; the wrappers keep the functions' names, so a
    pool that sends a function to a worker by name finds the wrapper there."""
    for owner, name, label in PHASES:
        raw = owner.__dict__[name]
        if isinstance(raw, classmethod):
            setattr(owner, name, classmethod(_timed(raw.__func__, log, label)))
        else:
            setattr(owner, name, _timed(raw, log, label))
    build._whole_step = _timed(build._whole_step, log, _whole_step)
    for module, name, label in OTHERS:
        setattr(module, name, _timed(getattr(module, name), log, label))


def report(log: str, out: Any = sys.stderr) -> None:
    """The phases of the first process in order, then every other process's total."""
    rows = []
    with open(log, encoding="utf-8") as handle:
        for line in handle:
            label, pid, began, end, cpu = line.rstrip("\n").split("\t")
            rows.append((label, int(pid), float(began), float(end), float(cpu)))
    total = time.perf_counter() - START
    head = f"{'phase (first process)':34} {'start':>7} {'end':>7} {'wall':>7} {'cpu':>7}"
    print(f"  {head}", file=out)
    here = sorted((r for r in rows if r[1] == PARENT), key=lambda r: (r[2], -r[3]))
    for label, _, began, end, cpu in here:  # only phases run in the first process
        print(f"  {label:34} {began:7.2f} {end:7.2f} {end - began:7.2f} {cpu:7.2f}", file=out)
    phases = {label for _, _, label in PHASES}
    others: dict[tuple[str, int], list[tuple[float, float, float]]] = defaultdict(list)
    for label, pid, began, end, cpu in rows:
        if pid != PARENT and label not in phases:  # a worker's chunk runs ``_each`` too
            others[label, pid].append((began, end, cpu))
    for (label, pid), spans in sorted(others.items(), key=lambda kv: (kv[1][0][0], kv[0][1])):
        first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        busy, cpu = sum(s[1] - s[0] for s in spans), sum(s[2] for s in spans)
        print(
            f"  {label:22} pid {pid:<7} {first:7.2f} {last:7.2f}  {len(spans):3} parts, "
            f"busy {busy:6.2f} s, cpu {cpu:6.2f} s",
            file=out,
        )
    t = os.times()
    print(
        f"  whole command {total:.2f} s after imports; first process: user {t.user:.2f} s, "
        f"kernel {t.system:.2f} s; the others together: user {t.children_user:.2f} s, "
        f"kernel {t.children_system:.2f} s",
        file=out,
    )
    # The work, whichever process did it, against what the cores could have done meanwhile:
    # the wall time no sharing out could go below, and how far the command is from it.
    cores = os.cpu_count() or 1
    work = t.user + t.system + t.children_user + t.children_system
    print(
        f"  cores busy {work:.2f} of {cores * total:.2f} core-seconds "
        f"({work / (cores * total):.0%}); on {cores} cores this work takes at least "
        f"{work / cores:.2f} s",
        file=out,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None, help="cProfile the first process into FILE")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="eventfeed's arguments")
    args = parser.parse_args()
    handle, log = tempfile.mkstemp(prefix="eventfeed-phases-", suffix=".log")
    os.close(handle)
    install(log)
    # cli.run() runs the exit functions (last registered first), then ends the process
    atexit.register(lambda: (report(log), os.unlink(log)))
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        os.register_at_fork(after_in_child=lambda: sys.setprofile(None))  # workers: no
        profiler.enable()
        atexit.register(lambda: (profiler.disable(), profiler.dump_stats(args.profile)))
    sys.argv = ["eventfeed", *args.command]
    cli.run()


if __name__ == "__main__":
    main()
