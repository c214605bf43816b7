"""The ``eventfeed`` command as people run it, in its own process: it leaves without taking
the process apart, and still gives the same exit codes and messages and leaves nothing
behind in the cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .bench_records import generate
from .test_faults import snapshot

SRC = Path(__file__).resolve().parent.parent / "src"
#: the command, with two workers from 10 events on (normally from 1,000, and two cores)
COMMAND = (
    "import atexit, os, sys; os.cpu_count = lambda: 2; "
    "atexit.register(lambda: print('exit functions ran', file=sys.stderr)); "
    "from eventfeed import build; build.PARALLEL_MIN_EVENTS = 10; "
    "from eventfeed.cli import run; sys.argv[0] = 'eventfeed'; run()"
)


def eventfeed(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "EVENTFEED_CACHE_DIR": str(tmp_path / "cache"),
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    return subprocess.run(
        [sys.executable, "-c", COMMAND, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("records"), 40)


def test_a_build_exits_0_and_leaves_only_its_stores_in_the_cache(
    records: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = eventfeed(tmp_path, "build", "--events", str(records), "--out", str(out))
    assert done.returncode == 0, done.stderr
    built = f"built 40 event(s) into {out} ({len(snapshot(out))} files)\n"
    assert done.stderr.endswith(built + "exit functions ran\n")
    assert len([p for p in snapshot(out) if p.startswith("events/")]) == 80
    # the workers' staging folder is gone
    assert not [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith("spill-")]
    again = eventfeed(tmp_path, "build", "--events", str(records), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stderr.endswith("is up to date (nothing changed)\nexit functions ran\n")


def test_problems_exit_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = eventfeed(tmp_path, "check", "--events", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.endswith("exit functions ran\n")
    assert "events folder not found" in missing.stderr
    usage = eventfeed(tmp_path, "build", "--no-such-option")
    assert usage.returncode == 2
    assert "No such option '--no-such-option'" in usage.stderr
    listed = eventfeed(tmp_path, "--version")
    assert listed.returncode == 0
    assert listed.stdout.startswith("eventfeed, version ")


def test_python_m_eventfeed_is_the_same_command(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-m", "eventfeed", "build", "--bogus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "No such option '--bogus'" in done.stderr
