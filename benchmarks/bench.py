#!/usr/bin/env python3
"""Benchmark the whole build on a deterministic synthetic set of records.

    .venv/bin/python benchmarks/bench.py                      # N = 1,000 and 10,000, 3 runs each
    .venv/bin/python benchmarks/bench.py --sizes 100000 --runs 3
    .venv/bin/python benchmarks/bench.py --sizes 1000 --keep /tmp/bench  # keep, reuse the tree
    .venv/bin/python benchmarks/bench.py --sizes 10000 --runs 1 --stages --profile /tmp/p.prof

For each N it measures, in child processes so peak memory is the child's own:

* floor    -- only reading every file and YAML-parsing its front matter (the C loader);
* cold     -- a full build into an empty output folder;
* nochange -- a rebuild with nothing changed (the previous out/ and manifest present);
* oneedit  -- a rebuild after editing one record's wording (the first rebuild after the cold
  build: the writer links every file into a new tree);
* nextedit -- the rebuild after that, which puts the record back: an edit as every later one
  is made, into the tree the rebuild before replaced, which already holds the unchanged files;
* comingedit -- a rebuild after editing the wording of a coming event, the first a year after
  the day of the builds (from 10,000 records on, calendar.ics has no room for it: a later
  calendar holds it), then put back by a rebuild not timed;
* soonedit -- the same for the soonest coming event, which calendar.ics holds (and so
  calendar.json and the other subscription calendars that show it);
* nextday  -- a rebuild with nothing changed on the next day (the first build of each day:
  events that ended are past now, and the clock is not the one the records were checked on);
* check    -- ``build --check`` of that out/, up to date (what CI runs on every push to the
  main branch: a build in memory, without the stores, compared with the committed out/);
* diff     -- ``eventfeed diff`` of the records against that out/, nothing changed (what CI
  runs on every pull request, to say what subscribers will see);
* clone    -- the same build without the stores (a new cache folder) over that out/: the first
  build of a fresh checkout, which has the committed out/ and nothing else;
* settings -- a rebuild after a change of the site's title, that day: every record checked
  again and every event compiled again, over an out/ that holds most of the files already
  (each event's calendar file is as it was; its page is not);
* checkout -- the same build again, with the stores, after the records were checked out
  afresh: the first build of a fresh checkout whose cache folder was restored (what CI
  does), where every record file is new to the stores (another inode, the times of the
  checkout) and nothing else changed;
* checkout_settings -- a rebuild after another change of the title, in another fresh
  checkout: every record new to the stores and checked again (a commit of the settings,
  built by CI with its cache restored);

and prints the median wall time, the peak resident memory, records per second and the ratio to
the floor. With ``--stages`` it also times a cold build, a one-edit rebuild, a next-day and a
settings rebuild phase by phase and process by process (``phases.py``), and with
``--profile FILE`` writes the cProfile of that cold build's first process. It also
checks that each edit's rebuild (the one-edit, coming-edit and soonest-edit scenarios'), and
the rebuild that puts the edit back, gives the same bytes as a cold build of the same records
from the same previous manifest. Not part of the test suite: timings are figures
to read, never assertions. eventfeed's modules are compiled to bytecode before the timings, as
an installed package has them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ZONES = [
    "Europe/Zurich",
    "Europe/Paris",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Warsaw",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Nairobi",
    "Africa/Lagos",
    "Africa/Dakar",
    "Africa/Johannesburg",
    "Africa/Cairo",
    "Asia/Bangkok",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Jakarta",
    "Asia/Manila",
    "Asia/Seoul",
    "Asia/Dubai",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Fiji",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Mexico_City",
    "America/Bogota",
    "America/Lima",
    "America/Santiago",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "America/Halifax",
    "America/St_Johns",
    "Atlantic/Azores",
    "UTC",
    "Asia/Tehran",
]
KINDS = ["webinar", "meeting", "regional-session", "conference"]
REGIONS = ["global", "africa", "asia-pacific", "europe", "latin-america-caribbean"]
# Words in several scripts for bodies, so the renderer and folding meet multi-byte text.
WORDS = {
    "en": "social solidarity economy cooperative network policy meeting members decent work "
    "innovation regional session partners report agenda finance local development",
    "es": "economía social solidaria cooperativa política reunión miembros trabajo decente "
    "innovación sesión regional socios informe desarrollo local",
    "ru": "социальная солидарная экономика кооператив сеть политика встреча участники развитие",
    "ar": "الاقتصاد الاجتماعي التضامني التعاونيات الشبكة السياسات الاجتماع الأعضاء التنمية",
    "zh": "社会 团结 经济 合作社 网络 政策 会议 成员 发展 报告",
    "hi": "सामाजिक एकजुटता अर्थव्यवस्था सहकारी नेटवर्क नीति बैठक सदस्य विकास",
}

SITE = """\
title: Benchmark events
description: Synthetic records for the benchmark.
base_url: https://bench.example.org/events/
publisher: {name: Benchmark, email: bench@example.org}
timezone: Europe/Zurich
language: en
kinds: [webinar, meeting, regional-session, conference]
regions: [global, africa, asia-pacific, europe, latin-america-caribbean]
organisations:
  ilo: {name: International Labour Organization, short: ILO, email: ilo@example.org}
  unctad: {name: United Nations Conference on Trade and Development, short: UNCTAD}
collections:
  webinars: {title: Webinars, kinds: [webinar]}
  africa: {title: Africa, regions: [africa]}
calendars: {lookback_days: 365}
"""


def body(rng: random.Random) -> str:
    lang = rng.choice(list(WORDS))
    target = rng.randint(200, 2000)
    paragraphs, size = [], 0
    while size < target:
        vocabulary = WORDS[lang].split()
        words = [rng.choice(vocabulary) for _ in range(rng.randint(12, 40))]
        if rng.random() < 0.3:
            words[3] = f"[{words[3]}](https://example.org/{rng.randint(1, 999)})"
        if rng.random() < 0.2:
            words[0] = f"**{words[0]}**"
        text = " ".join(words) + "."
        paragraphs.append(text)
        size += len(text)
    return "\n\n".join(paragraphs) + "\n"


def record(i: int, rng: random.Random) -> str:
    year = rng.randint(2019, 2027)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    zone = rng.choice(ZONES)
    lines = [
        "---",
        f'title: "Event {i}: {" ".join(rng.choice(WORDS["en"].split()) for _ in range(4))}"',
        f"kind: {rng.choice(KINDS)}",
        f"region: {rng.choice(REGIONS)}",
        f"timezone: {zone}",
    ]
    roll = rng.random()
    if roll < 0.10:
        lines.append(f"start: {year}-{month:02d}-{day:02d}")
        if rng.random() < 0.5:
            lines.append(f"end: {year}-{month:02d}-{min(28, day + rng.randint(0, 2)):02d}")
    else:
        hour = rng.randint(7, 18)
        lines += [
            f"start: {year}-{month:02d}-{day:02d}T{hour:02d}:00",
            f"end: {year}-{month:02d}-{day:02d}T{hour + 1:02d}:30",
        ]
    if 0.10 <= roll < 0.15:
        lines.append(f"rrule: FREQ=WEEKLY;COUNT={rng.randint(3, 20)}")
    if rng.random() < 0.03:
        lines.append("status: cancelled")
    if rng.random() < 0.6:
        lines += ["online:", f"  url: https://meet.example.org/{i}", "  platform: Video call"]
    if rng.random() < 0.5:
        lines += ["location:", f"  venue: Hall {i % 50}", "  city: Geneva", "  country: CH"]
    lines += [
        f"organizers: [{rng.choice(['ilo', 'unctad'])}]",
        f"tags: [tag-{i % 30}, topic-{i % 7}]",
        f"published: {year - 1 if month == 1 else year}-{max(1, month - 1):02d}-01",
        f"updated: {year - 1 if month == 1 else year}-{max(1, month - 1):02d}-02",
        "---",
    ]
    return "\n".join(lines) + "\n" + body(rng)


def _generated(events: Path, n: int) -> bool:
    """True when ``events`` holds exactly the n records this script generates (kept trees)."""
    if not (events / "site.yaml").is_file():
        return False
    count = sum(1 for _ in events.rglob("event-*.md"))
    return count == n and (events / f"{(n - 1) // 1000:03d}" / f"event-{n - 1:06d}.md").is_file()


def generate(root: Path, n: int, seed: int = 20221207) -> Path:
    events = root / "events"
    if events.exists():
        shutil.rmtree(events)
    events.mkdir(parents=True)
    (events / "site.yaml").write_text(SITE, encoding="utf-8")
    rng = random.Random(seed)
    for i in range(n):
        folder = events / f"{i // 1000:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"event-{i:06d}.md").write_text(record(i, rng), encoding="utf-8")
    return events


FLOOR = textwrap.dedent("""
    import sys, yaml
    from pathlib import Path
    for path in sorted(Path(sys.argv[1]).rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        front = text.split("\\n---\\n", 1)[0].removeprefix("---\\n")
        yaml.load(front, Loader=yaml.CSafeLoader)
""")


#: the day every build is made as of (``--as-of``), and a year after it
AS_OF, A_YEAR_ON = "2023-11-14", "2024-11-14"


def stages(events: Path, out: Path, env: dict[str, str], profile: Path | None) -> list[Path]:
    """Print where a cold build, a one-edit rebuild after it, the first rebuild of the next
    day and a rebuild after a change of the site's title spend their time, phase by phase
    and process by process (``phases.py``: the real command, workers and all); with a
    profile file, the cold build's first process is cProfiled into it. Returns the folders
    the builds made, for the caller to remove after its own timings (see :func:`run_size`)."""
    cache = out.with_name(out.name + "-cache")
    for folder in (out, cache):
        shutil.rmtree(folder, ignore_errors=True)
    env = dict(env, EVENTFEED_CACHE_DIR=str(cache))
    script = str(Path(__file__).with_name("phases.py"))
    build = ["build", "--events", str(events), "--out", str(out), "-q", "--as-of", AS_OF]
    edited = next(iter(sorted(events.rglob("event-*.md"))))
    original = edited.read_text(encoding="utf-8")
    settings = events / "site.yaml"
    settings_text = settings.read_text(encoding="utf-8")
    day_build, day_env = next_day(build, env)
    try:
        for name in ("cold build", "one-edit rebuild", "next-day rebuild", "settings rebuild"):
            extra = ["--profile", str(profile)] if profile and name == "cold build" else []
            run_env, args = env, build
            if name == "one-edit rebuild":
                edited.write_text(original + "\nEdited for the phases.\n", encoding="utf-8")
            elif name != "cold build":
                run_env, args = day_env, day_build
                if name == "settings rebuild":
                    settings.write_text(retitled(settings_text), encoding="utf-8")
            cmd = [sys.executable, script, *extra, *args]
            done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"timing by phase failed:\n{done.stderr[-2000:]}")
            print(f"  {name}, phase by phase (seconds from the start of the command):")
            print(textwrap.indent(done.stderr.rstrip("\n"), "  "), flush=True)
    finally:
        edited.write_text(original, encoding="utf-8")
        settings.write_text(settings_text, encoding="utf-8")
    if profile:
        print(f"  profile of the cold build's first process: {profile}")
        print(f"  (python -m pstats {profile})")
    return [out, cache]


#: What one timed command took: wall seconds, peak RSS in MB of its largest process, and the
#: CPU seconds (user and system) of it and every process it waited for (its workers).
Timing = tuple[float, float, float]


def timed(cmd: list[str], env: dict[str, str]) -> Timing:
    """Run a child; return what it took (:data:`Timing`). The CPU time is the kernel's
    account of the child and the processes it forked and waited for; other load on the
    machine moves it much less than the wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # (reaped here, not by Popen)
    with proc.stderr or contextlib.nullcontext():
        if proc.returncode != 0:
            err = proc.stderr.read().decode() if proc.stderr else ""
            sys.exit(f"command failed: {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def eventfeed() -> list[str]:
    return [sys.executable, "-m", "eventfeed"]


def compile_bytecode() -> None:
    """Compile eventfeed's modules before the timings, as installing it does (an installer
    compiles the package it installs). Run from a source tree never run before, or with
    PYTHONDONTWRITEBYTECODE set, every build would otherwise compile them again as it starts:
    about a tenth of a second of a build's 5 at 10,000 records, which no installed
    eventfeed spends. (Where the package cannot be written, nothing is compiled.)"""
    import compileall

    import eventfeed as package

    compileall.compile_dir(Path(package.__file__).parent, quiet=2)


#: Disk a run takes per record at its largest (measured: about 12 GB for 100,000 records).
DISK_PER_RECORD = 120_000
#: Disk a run's output folder and stores keep per record until the end of the timings
#: (measured: about 520 MB for 10,000 records), and the two copies of the records that the
#: fresh checkouts replaced (about 90 MB; :func:`checked_out`).
KEPT_PER_RECORD = 70_000


#: Files the probe of :func:`creation_cost` creates, and the cost of one above which the
#: figures are marked as taken on a slow file system.
PROBE_FILES = 2000
SLOW_CREATE_US = 80.0


def creation_cost(root: Path) -> float:
    """Microseconds of wall time to create one small file in ``root`` now (the median of
    batches of :data:`PROBE_FILES` files).

    A build creates two files an event, and what one costs depends on the file system's
    state more than on eventfeed: on ext4, right after a tree of a hundred thousand files
    was deleted, the kernel's inode allocator passes over the inodes deleted lately
    (``recently_deleted`` in a profile of the kernel) and a file cost 160-250 us, against
    about 20 us on a tmpfs and 30 us on the same disk when calm. Printed beside the
    timings, so that figures taken in such a state are read as such."""
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=root))
    samples = []
    data = b"x" * 4096
    try:
        for batch in range(3):
            start = time.perf_counter()
            for i in range(PROBE_FILES):
                fd = os.open(probe / f"{batch}-{i}.html", os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(fd, data)
                os.close(fd)
            samples.append((time.perf_counter() - start) / PROBE_FILES * 1e6)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return statistics.median(samples)


#: a character the mount table writes as a backslash and three octal digits
_OCTAL = re.compile(r"\\([0-7]{3})")


def mount_point(field: str) -> str:
    """A mount point as the mount table writes it, read back: its spaces, tabs, newlines and
    backslashes are written in octal, any other character as it is."""
    return _OCTAL.sub(lambda found: chr(int(found.group(1), 8)), field)


def file_system(path: Path) -> str | None:
    """The type of the file system ``path`` is on (``ext4``, ``tmpfs``...), from the mount
    table of this process (Linux); None where there is none. A cold build writes every file
    of out/, and the same build takes a tenth longer on ext4 than on tmpfs here, so each
    figure goes with the file system it was measured on."""
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    where = os.path.realpath(path)
    found: tuple[int, str] | None = None
    for line in lines:
        fields = line.split(" ")
        if "-" not in fields:
            continue
        point = mount_point(fields[4])
        kind = fields[fields.index("-") + 1]
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and (found is None or len(point) >= found[0]):
            found = (len(point), kind)  # the last of equal ones is the one mounted on top
    return found[1] if found is not None else None


def print_creation_cost(root: Path, when: str) -> None:
    cost = creation_cost(root)
    kind = file_system(root)
    here = f"here ({kind})" if kind else "here"
    print(f"  {when}, creating a file {here} costs {cost:.0f} us", flush=True)
    if cost > SLOW_CREATE_US:
        print(
            f"  (more than {SLOW_CREATE_US:.0f} us: this file system creates files slowly "
            "now, as ext4 does for a while after large deletions; the cold builds and the "
            "first rebuild after each, which create every file, read slower than they are)",
            flush=True,
        )


#: What a run times, in order: each rebuild follows the ones before it.
SCENARIOS = (
    *("floor", "cold", "nochange", "oneedit", "nextedit", "comingedit", "soonedit", "nextday"),
    *("check", "diff", "clone", "settings", "checkout", "checkout_settings"),
)


def run_size(
    n: int,
    runs: int,
    keep: Path | None,
    *,
    by_stage: bool = False,
    profile: Path | None = None,
    until: str = SCENARIOS[-1],
) -> list[tuple[str, float, float]]:
    """Time every scenario of :data:`SCENARIOS` up to ``until``, ``runs`` times, at ``n``
    records; print and return the medians (name, seconds, peak MB)."""
    root = keep or Path(tempfile.mkdtemp(prefix="eventfeed-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    need, free = n * DISK_PER_RECORD, shutil.disk_usage(root).free
    if free < need:
        if keep is None:
            root.rmdir()
        sys.exit(
            f"N = {n:,} needs about {need / 1e9:.1f} GB of free disk in {root} (the records, "
            f"two output folders, the stores and the spill files); {free / 1e9:.1f} GB are "
            "free. Free some, or pass --keep with a folder on a larger disk."
        )
    # The fingerprints of no-change rebuilds go beside the generated tree, not to the user's.
    env = dict(
        os.environ,
        SOURCE_DATE_EPOCH="1700000000",
        CI="true",
        EVENTFEED_CACHE_DIR=str(root / "cache"),
    )
    shutil.rmtree(root / "cache", ignore_errors=True)
    events = root / "events"
    if keep is not None and _generated(events, n):
        print(f"\nN = {n:,}: reusing {events}", flush=True)
    else:
        print(f"\nN = {n:,}: generating ...", flush=True)
        events = generate(root, n)
    print_creation_cost(root, "before the timings")
    made: list[Path] = []
    if by_stage or profile:
        made += stages(events, root / "out-stages", env, profile)
    if runs < 1:  # --runs 0: the stages only
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        return []
    # Each run builds into an output folder and stores of its own, all removed after the
    # timings: on ext4, a file system that has just deleted tens of thousands of files
    # creates new ones slowly for minutes (it passes over the inodes deleted lately), so a
    # cold build right after deleting the last run's folders pays for that deletion (10,000
    # records: about 2.7 s more of kernel time in the workers). A fresh checkout in CI does
    # not. Without the disk to keep them, each run deletes the last one's, as before.
    fresh = free >= need + runs * n * KEPT_PER_RECORD
    if not fresh:
        print("  (not enough disk to keep each run's folders: every cold build follows")
        print("   the deletion of the last one's, which on ext4 makes it slower)", flush=True)
    timed_here = SCENARIOS[: SCENARIOS.index(until) + 1]
    results: dict[str, list[Timing]] = {k: [] for k in timed_here}
    edited, original = _edited(events)
    coming = _coming(events)
    for run in range(runs):
        results["floor"].append(timed([sys.executable, "-c", FLOOR, str(events)], env))
        out, cache = (
            (root / f"out-{run}", root / f"cache-{run}")
            if fresh
            else (root / "out", root / "cache")
        )
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)  # cold: no stores of earlier runs
        made += [out, cache]
        env["EVENTFEED_CACHE_DIR"] = str(cache)
        build = [*eventfeed(), "build", "--events", str(events), "--out", str(out), "-q"]
        build += ["--as-of", AS_OF]
        results["cold"].append(timed(build, env))
        if until != "cold":
            made += _rebuilds(results, until, run, events, out, build, env, coming)
    identical = check_identical(events, out, edited, original, build, env)
    also = [
        (name, check_identical(events, out, record, record.read_text(encoding="utf-8"), build, env))
        for name, record in zip(("coming-edit", "soonest-edit"), coming, strict=True)
    ]
    print_creation_cost(root, "after them")
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)
    if keep is None:
        shutil.rmtree(root, ignore_errors=True)
    floor = statistics.median(w for w, _, _ in results["floor"])
    rows = []
    for name, samples in results.items():
        wall = statistics.median(w for w, _, _ in samples)
        peak = max(m for _, m, _ in samples)
        cpu = statistics.median(c for _, _, c in samples)
        rows.append((name, wall, peak))
        each = ", ".join(f"{w:.2f}" for w, _, _ in samples)
        print(
            f"  {name:17} median {wall:8.2f} s  (runs: {each})  cpu {cpu:7.2f} s"
            f"  peak {peak:7.0f} MB  {n / wall:9.0f} records/s  {wall / floor:5.1f}x floor",
            flush=True,
        )
    for name, (same, back) in [("one-edit", identical), *also]:
        for done_as, result in (("rebuild", same), ("put back, rebuild", back)):
            print(f"  {name} {done_as} identical to a cold build from the same manifest: {result}")
    return rows


def _edited(events: Path) -> tuple[Path, str]:
    """The record the rebuilds edit, and its text."""
    edited = next(iter(sorted(events.rglob("event-*.md"))))
    return edited, edited.read_text(encoding="utf-8")


_START = re.compile(r"^start: (\S+)$", re.M)


def _coming(events: Path) -> tuple[Path, Path]:
    """Two records of coming events: the first to start a year after the day of the builds,
    and the soonest (by their starts as written, then their names)."""
    starts = []
    for path in events.rglob("event-*.md"):
        found = _START.search(path.read_text(encoding="utf-8"))
        if found is not None and found.group(1) >= AS_OF:
            starts.append((found.group(1), path.name, path))
    starts.sort()
    later = next(path for start, _, path in starts if start >= A_YEAR_ON)
    return later, starts[0][2]


def _rebuilds(
    results: dict[str, list[Timing]],
    until: str,
    run: int,
    events: Path,
    out: Path,
    build: list[str],
    env: dict[str, str],
    coming: tuple[Path, Path],
) -> list[Path]:
    """Time the rebuilds that follow a cold build into ``out``, in order, up to ``until``
    (each one's files as the last one left them; the records and settings as they were
    after; ``coming``: the records of the coming events edited, :func:`_coming`); return
    the folders made for them, to remove after the timings."""
    made: list[Path] = []

    def then(name: str, command: list[str], with_env: dict[str, str]) -> bool:
        """Time ``command`` as scenario ``name``: whether the next one is wanted."""
        results[name].append(timed(command, with_env))
        return name != until

    if not then("nochange", build, env):
        return made
    edited, original = _edited(events)
    edited.write_text(original + f"\nEdited in run {run}.\n", encoding="utf-8")
    try:
        if not then("oneedit", build, env):
            return made
    finally:
        edited.write_text(original, encoding="utf-8")  # back, for the next run
    if not then("nextedit", build, env):
        return made
    for name, record in zip(("comingedit", "soonedit"), coming, strict=True):
        text = record.read_text(encoding="utf-8")
        record.write_text(text + f"\nEdited in run {run}.\n", encoding="utf-8")
        try:
            wanted = then(name, build, env)
        finally:
            record.write_text(text, encoding="utf-8")  # back, and built so (not timed)
        timed(build, env)
        if not wanted:
            return made
    day_build, day_env = next_day(build, env)
    if not then("nextday", day_build, day_env):
        return made
    if not then("check", [*day_build, "--check"], day_env):
        return made
    against = ["diff", "--events", str(events), "--against", str(out)]
    if not then("diff", [*eventfeed(), *against], day_env):
        return made
    clone_cache = out.parent / f"cache-clone-{run}"
    shutil.rmtree(clone_cache, ignore_errors=True)
    made.append(clone_cache)
    if not then("clone", day_build, dict(day_env, EVENTFEED_CACHE_DIR=str(clone_cache))):
        return made
    settings = events / "site.yaml"
    settings_text = settings.read_text(encoding="utf-8")
    settings.write_text(retitled(settings_text), encoding="utf-8")
    try:
        if not then("settings", day_build, day_env):
            return made
        # (the settings as the last build's: nothing but the checkout is new)
        made.append(checked_out(events, run, 1))
        if not then("checkout", day_build, day_env):
            return made
        made.append(checked_out(events, run, 2))
        settings.write_text(retitled(retitled(settings_text)), encoding="utf-8")
        then("checkout_settings", day_build, day_env)
    finally:
        settings.write_text(settings_text, encoding="utf-8")
    return made


#: How long a fresh checkout is left before it is built: the stores do not take a file changed
#: less than :data:`eventfeed.cache.RACY_NS` (3 s) before a build as known by its metadata, and
#: a checkout of many records takes longer than that, so most of its files are quiet by then.
QUIET_AFTER_CHECKOUT = 3.5


def checked_out(events: Path, run: int, nth: int) -> Path:
    """The records as a fresh checkout leaves them, in the same place: each file created anew
    (another inode, the times of now), left quiet for :data:`QUIET_AFTER_CHECKOUT`. Returns
    the folder that held them before, for the caller to remove after the timings (removing
    many files just before a build slows the file system's next creations; see
    :func:`run_size`)."""
    fresh = events.with_name(f"{events.name}.checkout")
    before = events.with_name(f"{events.name}.before-{run}-{nth}")
    for folder in (fresh, before):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(events, fresh, copy_function=shutil.copyfile)
    events.rename(before)
    fresh.rename(events)
    time.sleep(QUIET_AFTER_CHECKOUT)
    return before


#: the day after the one every other build is made as of (``--as-of``)
NEXT_DAY = "2023-11-15"


def next_day(build: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The same build made the next day: as of :data:`NEXT_DAY` (``build`` ends with the day
    ``--as-of`` gives), with the clock one day on."""
    epoch = str(int(env["SOURCE_DATE_EPOCH"]) + 86_400)
    return [*build[:-1], NEXT_DAY], dict(env, SOURCE_DATE_EPOCH=epoch)


def retitled(settings: str) -> str:
    """The settings with another site title (the first line that gives it)."""
    lines = settings.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("title:"):
            lines[i] = line.rstrip("\n") + " (retitled)\n"
            return "".join(lines)
    raise ValueError("the generated settings give no title")


def check_identical(
    events: Path, out: Path, edited: Path, original: str, build: list[str], env: dict[str, str]
) -> tuple[bool, bool]:
    """Edit, rebuild incrementally, put the edit back and rebuild again; beside each rebuild,
    copy the manifest it starts from into a folder of its own and build cold there. Whether
    the edit's rebuild, and the put-back's, are each identical to their cold build."""
    edited.write_text(original + "\nEdited for the identity check.\n", encoding="utf-8")
    edit = _identical(out, build, env)
    edited.write_text(original, encoding="utf-8")
    back = _identical(out, build, env)  # (out/ as before the edit, for what follows)
    return edit, back


def _identical(out: Path, build: list[str], env: dict[str, str]) -> bool:
    """Rebuild ``out`` (the records changed since its build), and build cold from its
    manifest in a folder of its own: whether the two are the same, file for file."""
    cold = out.parent / "out-cold"
    shutil.rmtree(cold, ignore_errors=True)
    cold.mkdir()
    shutil.copy(out / "manifest.json", cold / "manifest.json")
    timed(build, env)
    cold_build = [*build[: build.index("--out") + 1], str(cold), *build[build.index("--out") + 2 :]]
    timed(cold_build, env)
    same = all(
        (cold / p.relative_to(out)).read_bytes() == p.read_bytes()
        for p in out.rglob("*")
        if p.is_file()
    ) and sum(1 for p in cold.rglob("*") if p.is_file()) == sum(
        1 for p in out.rglob("*") if p.is_file()
    )
    shutil.rmtree(cold, ignore_errors=True)
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated record counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--keep", type=Path, default=None, help="generate into this folder and keep it"
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also time a cold build and the rebuilds after it (one edit, next day, settings) "
        "phase by phase",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="cProfile that cold build's first process into this file",
    )
    parser.add_argument(
        "--until",
        choices=SCENARIOS[1:],
        default=SCENARIOS[-1],
        help="time the scenarios of a run up to this one only (each follows the ones before "
        "it): 'oneedit' times the floor, a cold build and the two rebuilds after it",
    )
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    compile_bytecode()
    for n in (int(s) for s in args.sizes.split(",")):
        keep = args.keep / str(n) if args.keep and "," in args.sizes else args.keep
        run_size(n, args.runs, keep, by_stage=args.stages, profile=args.profile, until=args.until)


if __name__ == "__main__":
    main()
