"""The benchmark's timing by phase still fits the build it times.

``benchmarks/phases.py`` wraps the build's own functions by name; a function renamed or
moved would make it fail, or time nothing. This runs it as ``bench.py --stages`` runs it, on
enough records for the forked workers, and checks that every phase and every kind of
process is timed. The figures themselves are never checked: timings are read, not asserted.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from .bench_records import BENCH, generate

#: the phases a cold build goes through, and those of a one-edit rebuild after it
COLD = [
    "no-change check",
    "load",
    "out/ checked",
    "manifest read",
    "per-event store opened",
    # (no "history": a first build works it out as it loads, eventfeed.build.Ahead.loaded)
    "keys",
    "whole steps and manifest",
    "whole step: feeds",
    "whole step: pages",
    "write",
    "fingerprint saved",
]
EDIT = [
    "no-change check",
    "quick rebuild",  # (eventfeed.quick: the benchmark edits a past event's report)
    "edits found",
    "out/ found as left",
    "manifest read",
    "per-event work (here)",
    "dated calendars spliced",
    "write",
    "fingerprint saved",
]
#: those of the first rebuild of the next day, and of one after a change of the settings
#: (the full rebuild)
REBUILD = [
    "no-change check",
    "load",
    "per-event store opened",
    "unchanged events taken",
    "per-event work (here)",
    "whole steps and manifest",
    "write",
    "fingerprint saved",
]
DAY = [*REBUILD[:3], "keys", *REBUILD[3:]]
SETTINGS = ["no-change check", "load", "keys", "per-event work (workers)", *REBUILD[-3:]]
BUSY = re.compile(
    r"cores busy (\d+\.\d\d) of (\d+\.\d\d) core-seconds \((\d+)%\); on \d+ cores this "
    r"work takes at least (\d+\.\d\d) s"
)
ROW = re.compile(r"^\s+(\S.*?) +(-?\d+\.\d\d) +(\d+\.\d\d) +(\d+\.\d\d) +(\d+\.\d\d)$")


def test_the_benchmark_times_every_phase_of_a_build(tmp_path: Path) -> None:
    events = generate(tmp_path, 1000)  # the least that the workers share out
    profile = tmp_path / "cold.prof"
    done = _bench(tmp_path, "--runs", "0", "--stages", "--profile", str(profile))
    cold, rest = done.stdout.split("one-edit rebuild, phase by phase")
    edit, rest = rest.split("next-day rebuild, phase by phase")
    day, retitled = rest.split("settings rebuild, phase by phase")
    for text, phases in ((cold, COLD), (edit, EDIT), (day, DAY), (retitled, SETTINGS)):
        rows = [ROW.match(line) for line in text.splitlines()]
        timed = {m.group(1).strip(): m for m in rows if m is not None}
        assert [p for p in phases if p not in timed] == []
        for m in timed.values():  # start, end, wall: in order, and agreeing
            start, end, wall = (float(m.group(i)) for i in (2, 3, 4))
            assert 0 <= start <= end
            assert abs(end - start - wall) <= 0.011
        assert "whole command" in text
        busy = BUSY.search(text)
        assert busy is not None
        work, available, share, least = (float(busy.group(i)) for i in (1, 2, 3, 4))
        assert work > 0
        assert 0 < least <= work
        # (the share is of the unrounded figures: each printed one is off by up to 0.005,
        # which a short build, such as a quick rebuild of 1,000 records, feels)
        slack = 100 * 0.005 * (1 / available + work / available**2)
        assert abs(share - 100 * work / available) <= 1 + slack
    for process in ("load worker", "of which compiled", "whole step beside", "whole step: ical"):
        assert len(re.findall(rf"^ +{re.escape(process)} +pid \d+", cold, re.M)) >= 1, process
    # a first build compiles in the load's two workers (eventfeed.build.Ahead); a build after
    # a change of the settings, in workers of its own
    assert len(re.findall(r"^ +of which compiled +pid \d+", cold, re.M)) == 2
    assert "per-event worker" not in cold
    assert re.search(r"^ +history ", cold, re.M) is None  # (worked out as the records load)
    assert re.search(r"^ +history ", day, re.M) is not None
    assert len(re.findall(r"^ +per-event worker +pid \d+", retitled, re.M)) == 2
    assert profile.stat().st_size > 0
    assert not (tmp_path / "out-stages").exists()  # the timed builds' folders are removed
    assert events.is_dir()
    assert "(retitled)" not in (events / "site.yaml").read_text(encoding="utf-8")


#: the timings of a run, in the order the benchmark prints them
RUNS = [
    *("floor", "cold", "nochange", "oneedit", "nextedit", "comingedit", "soonedit", "nextday"),
    *("check", "diff", "clone", "settings", "checkout", "checkout_settings"),
]


def test_every_timing_of_a_run_is_made_and_printed(tmp_path: Path) -> None:
    """One run at the least size: each build the benchmark times succeeds (it stops at the
    first that fails, ``build --check`` of the next day's out/ and ``diff`` against it among
    them) and is printed, and each edit's rebuild, and the rebuild that puts it back, is
    byte-identical to a cold build."""
    generate(tmp_path, 1000)
    done = _bench(tmp_path, "--runs", "1")
    printed = re.findall(r"^  (\w+) +median +\d+\.\d\d s", done.stdout, re.M)
    assert printed == RUNS
    cpu = re.findall(r"^  \w+ +median .*\)  cpu +(\d+\.\d\d) s  peak", done.stdout, re.M)
    assert len(cpu) == len(RUNS)
    assert all(float(c) > 0 for c in cpu)
    for edit in ("one-edit", "coming-edit", "soonest-edit"):
        for done_as in ("rebuild", "put back, rebuild"):
            line = f"{edit} {done_as} identical to a cold build from the same manifest: True"
            assert line in done.stdout
    # what creating a file costs on that file system, before the timings and after them
    costs = re.findall(
        r"^  (.+), creating a file here(?: \((\w+)\))? costs (\d+) us$", done.stdout, re.M
    )
    assert [when for when, _, _ in costs] == ["before the timings", "after them"]
    assert all(int(cost) > 0 for _, _, cost in costs)
    # and on which file system, as the system's own table of mounts names it
    kinds = {kind for _, kind, _ in costs}
    assert kinds == {_mounted_type(tmp_path)}
    # the builds' folders and the probes' are removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]


def test_a_run_can_stop_after_a_named_timing(tmp_path: Path) -> None:
    """``--until oneedit``: the floor, the cold build and the two rebuilds after it, and no
    other; the edited record is put back, and the identity check still runs."""
    events = generate(tmp_path, 1000)
    before = {p: p.read_bytes() for p in events.rglob("*") if p.is_file()}
    done = _bench(tmp_path, "--runs", "1", "--until", "oneedit")
    printed = re.findall(r"^  (\w+) +median +\d+\.\d\d s", done.stdout, re.M)
    assert printed == RUNS[: RUNS.index("oneedit") + 1]
    assert "identical to a cold build from the same manifest: True" in done.stdout
    assert {p: p.read_bytes() for p in events.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]


def _mounted_type(path: Path) -> str:
    """The type of the file system ``path`` is on, as coreutils' ``df`` reads it (a reader
    of the mount table other than the benchmark's own)."""
    done = subprocess.run(
        ["df", "--output=fstype", str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()[-1]


def _bench(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The benchmark run at 1,000 records on the records generated in ``folder``; it must
    succeed."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "1000", "--keep", str(folder), *args],
        env=dict(os.environ, CI="true", SOURCE_DATE_EPOCH="1700000000"),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def _bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("eventfeed_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_file_system_named_is_the_one_mounted_there(tmp_path: Path) -> None:
    """The benchmark names the file system of its folder as ``df`` does, for a folder on
    disk and one on the shared-memory file system (a mount point and a folder inside)."""
    bench = _bench_module()
    inside = Path("/dev/shm") / f"eventfeed-bench-{os.getpid()}"
    inside.mkdir()
    try:
        for path in (tmp_path, Path("/dev/shm"), inside):
            assert bench.file_system(path) == _mounted_type(path)
    finally:
        inside.rmdir()
    assert bench.file_system(Path("/dev/shm")) != bench.file_system(Path("/proc")) == "proc"
    # a mount point's escapes read back, a character beyond ASCII left as it is
    assert bench.mount_point("/mnt/my\\040disk/caf\u00e9\\134x") == "/mnt/my disk/caf\u00e9\\x"


def test_the_cpu_time_of_a_command_counts_the_processes_it_waited_for() -> None:
    """The CPU seconds printed for a build are those of its workers too: a command that
    waits for a child burning a quarter of a second of CPU is charged for it."""
    bench = _bench_module()
    burn = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    end = time.process_time() + 0.25\n"
        "    while time.process_time() < end: pass\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    wall, peak, cpu = bench.timed([sys.executable, "-c", burn], dict(os.environ))
    assert cpu >= 0.25
    assert wall > 0
    assert peak > 0
