"""The files of the whole steps (calendars, listings) are made by forked workers, one file at a
time each, when the build shares its work out. The bytes are those of a build made in one
process, and so are the zones kept for the next build; what the workers cannot make, the
parent makes."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from eventfeed import build, vtimezone
from eventfeed.build import Spilled, compile_site
from eventfeed.load import Site, load_site

from .bench_records import generate

NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
AS_OF = date(2023, 11, 14)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return load_site(generate(tmp_path_factory.mktemp("records"), 80), today=NOW.date())


@pytest.fixture(scope="module")
def expected(records: Site) -> dict[str, bytes]:
    made = compile_site(records, None, NOW, as_of=AS_OF, jobs=1)
    return {path: made[path] for path in made}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))


# Workers find the function they run by its name: these are module functions.
def full_disk(bounds: tuple[int, int]) -> list[bytes | Spilled]:
    raise OSError(28, "No space left on device")


def never_asked(bounds: tuple[int, int]) -> list[bytes | Spilled]:
    raise AssertionError("no worker should be asked")


def _whole_paths(expected: dict[str, bytes]) -> set[str]:
    """The files of the whole steps that are made as parts (calendars and listing pages)."""
    return {p for p in expected if p.endswith(".ics") and not p.startswith("events/")} | {
        p for p in expected if p.endswith(".html") and not p.startswith("events/")
    }


def test_workers_make_the_whole_files_with_the_same_bytes(
    records: Site, expected: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "SPILL_BYTES", 1)  # every file made in a worker is spilled
    made = compile_site(records, None, NOW, as_of=AS_OF, jobs=2)
    assert list(made) == sorted(expected)
    assert {path: made[path] for path in made} == expected
    by_worker = {
        path: spilled.spill.name
        for path in _whole_paths(expected)
        if (spilled := made.spilled(path)) is not None
    }
    # each made by a worker, in its own spill file: none by this process
    assert set(by_worker) == _whole_paths(expected)
    assert all(name.endswith(".whole.spill") for name in by_worker.values())
    assert f"{os.getpid()}.whole.spill" not in by_worker.values()


def test_the_zones_kept_for_the_next_build_are_those_of_one_process(
    records: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vtimezone, "KNOWN", {})
    vtimezone.vtimezone_bytes.cache_clear()
    monkeypatch.setattr(build, "_each_forked", lambda *args: 0)  # per-event steps made here
    compile_site(records, None, NOW, as_of=AS_OF, jobs=2)
    parallel = dict(vtimezone.KNOWN)
    monkeypatch.setattr(vtimezone, "KNOWN", {})
    vtimezone.vtimezone_bytes.cache_clear()
    compile_site(records, None, NOW, as_of=AS_OF, jobs=1)
    assert parallel == vtimezone.KNOWN
    assert len(parallel) > 10


def test_what_the_workers_cannot_make_is_made_here(
    records: Site, expected: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    made_here: list[str] = []
    add_parts = build.Artifacts.add_parts

    def counted(self: build.Artifacts, path: str, make: object) -> None:
        made_here.append(path)
        add_parts(self, path, make)  # type: ignore[arg-type]

    monkeypatch.setattr(build, "_make_chunk", full_disk)
    monkeypatch.setattr(build.Artifacts, "add_parts", counted)
    made = compile_site(records, None, NOW, as_of=AS_OF, jobs=2)
    assert {path: made[path] for path in made} == expected
    assert _whole_paths(expected) <= set(made_here)


def test_a_site_too_small_to_share_makes_its_files_here(
    records: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "_make_chunk", never_asked)
    compile_site(records, None, NOW, as_of=AS_OF)  # 80 events: below PARALLEL_MIN_EVENTS
    monkeypatch.setattr(build, "PARALLEL_MIN_EVENTS", 50)
    with pytest.raises(AssertionError, match="no worker"):
        compile_site(records, None, NOW, as_of=AS_OF)
