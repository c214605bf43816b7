"""A cold build's fingerprint takes the records' digests from the loader instead of reading
them a second time (:meth:`eventfeed.cache.Fingerprint.loaded`); a record changed while the
build runs must still never let a later build pass for a no-change one with a stale out/."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventfeed import cache, pipeline
from eventfeed.cache import Fingerprint
from eventfeed.cli import main

from .test_cache import AS_OF, UP_TO_DATE, Tree, snapshot


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    made = Tree(tmp_path)
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(made.cache))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1670000000")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cache, "RACY_NS", 0)  # every chunk settled: remembered at once
    return made


@pytest.fixture
def fingerprint_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The record files the no-change check reads itself (the loader's reads not counted)."""
    read: list[str] = []
    real = cache.read_head

    def counted(path: str, limit: int = cache.MAX_FILE_BYTES) -> bytes:
        read.append(Path(path).name)
        return real(path, limit)

    monkeypatch.setattr(cache, "read_head", counted)
    return read


def _cold(tree: Tree, name: str, manifest: Path | None = None) -> dict[str, bytes]:
    """out/ as a build with no cache at all makes it from the records as they are now,
    continuing the history in ``manifest`` (none: a first build)."""
    other = tree.root / name
    if manifest is not None:
        other.mkdir()
        shutil.copy(manifest, other / "manifest.json")
    tree.build(other)  # a new out/: another fingerprint
    return snapshot(other)


def _during(monkeypatch: pytest.MonkeyPatch, step: str, change: Callable[[], object]) -> None:
    """Make ``change`` once while the next build runs: just before the loader (``load``),
    or just after it, while the site compiles (``compile``)."""
    name = "load_site" if step == "load" else "compile_site"
    real = getattr(pipeline, name)
    done: list[bool] = []

    def changed(*args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(True)
            change()
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, name, changed)


def test_a_cold_build_reads_each_record_once(tree: Tree, fingerprint_reads: list[str]) -> None:
    assert "built 45 event(s)" in tree.build().stderr
    assert fingerprint_reads == []  # the loader's digests were taken
    assert UP_TO_DATE in tree.build().stderr
    assert fingerprint_reads == []  # and remembered by each chunk's signature
    edited = tree.record(5)
    edited.write_text(edited.read_text(encoding="utf-8") + "More.\n", encoding="utf-8")
    result = tree.build()
    assert UP_TO_DATE not in result.stderr
    assert fingerprint_reads == ["meeting-000.md", *fingerprint_reads[1:]]  # one chunk read
    assert "meeting-005.md" in fingerprint_reads
    assert UP_TO_DATE in tree.build().stderr


def test_a_record_changed_after_the_loader_read_it_is_built_again(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tree.record(3)
    with monkeypatch.context() as patched:
        _during(
            patched,
            "compile",
            lambda: path.write_text(
                path.read_text(encoding="utf-8").replace("003.", "333."), encoding="utf-8"
            ),
        )
        tree.build()  # a cold build of the old bytes, which the record no longer holds
    assert b"Body of meeting 003." in (tree.out / "events" / "meeting-003.html").read_bytes()
    manifest = tree.root / "manifest-before.json"
    shutil.copy(tree.out / "manifest.json", manifest)
    result = tree.build()
    assert UP_TO_DATE not in result.stderr
    assert "built 45 event(s)" in result.stderr
    after = snapshot(tree.out)
    assert b"Body of meeting 333." in after["events/meeting-003.html"]
    assert _cold(tree, "cold", manifest) == after
    assert UP_TO_DATE in tree.build().stderr


def test_a_record_changed_before_the_loader_read_it_is_the_build(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changed between the fingerprint's scan and the loader: out/ is made of the new
    bytes, and the inputs saved are theirs (a later build of the same bytes is no build)."""
    path = tree.record(3)
    with monkeypatch.context() as patched:
        _during(
            patched,
            "load",
            lambda: path.write_text(
                path.read_text(encoding="utf-8").replace("003.", "333."), encoding="utf-8"
            ),
        )
        tree.build()
    built = snapshot(tree.out)
    assert b"Body of meeting 333." in built["events/meeting-003.html"]
    assert _cold(tree, "cold") == built
    assert UP_TO_DATE in tree.build().stderr
    assert snapshot(tree.out) == built
    # and a change after that is seen as usual
    path.write_text(path.read_text(encoding="utf-8").replace("333.", "444."), encoding="utf-8")
    assert UP_TO_DATE not in tree.build().stderr


def test_a_record_removed_before_the_loader_read_it_is_reported(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader reads the records the no-change check found: one removed in between is
    reported as gone (nothing written, no fingerprint to trust), and the next build, which
    does not find it, builds without it."""
    gone = tree.record(41)
    kept = tree.root / "kept.md"
    shutil.copy(gone, kept)
    with monkeypatch.context() as patched:
        _during(patched, "load", gone.unlink)
        result = CliRunner().invoke(
            main, ["build", "--events", str(tree.events), "--out", str(tree.out)]
        )
    assert result.exit_code == 1
    assert "meeting-041.md" in result.output
    assert "removed while the build ran" in result.output
    assert not tree.out.exists()
    assert "built 44 event(s)" in tree.build().stderr
    shutil.copy(kept, gone)
    result = tree.build()
    assert UP_TO_DATE not in result.stderr
    assert "built 45 event(s)" in result.stderr


def test_inputs_not_completed_match_no_build(tree: Tree) -> None:
    clock = datetime.fromtimestamp(1670000000, UTC)  # the fixture's SOURCE_DATE_EPOCH
    day = date.fromisoformat(AS_OF)
    cold = Fingerprint.of(tree.events, tree.out, clock, day, strict=False)
    assert cold is not None
    assert cold.inputs == cache._UNKNOWN  # nothing read: the loader has not run
    cold.loaded({})  # it read nothing of these records
    assert cold.inputs == cache._UNKNOWN
    tree.build()
    warm = Fingerprint.of(tree.events, tree.out, clock, day, strict=False)
    assert warm is not None
    assert len(warm.inputs) == 64
    assert warm.lookup(tree.out) is not None  # the build just made
