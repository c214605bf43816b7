"""The no-change rebuild: what the fingerprint notices, and what it lets pass unread.

Every change to a record or to out/ that the cache module's docstring promises to see must
lead to a real build whose out/ equals a cold build; an unchanged tree must not be read
again (records trusted by their metadata) nor built. The "racy" cases are simulated with
file metadata that does not move, as on a file system with coarse timestamps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventfeed import cache, frontmatter, load, paths
from eventfeed.cache import Fingerprint, _Chunk, _Odd, _record_chunks
from eventfeed.cli import main
from eventfeed.errors import Problem
from eventfeed.recordstore import RecordStore

from .conftest import SITE_YAML

AS_OF = "2022-12-10"
UP_TO_DATE = "is up to date (nothing changed)"

RECORD = """\
---
title: Meeting {n}
kind: meeting
start: 2022-12-{day:02d}T15:00
end: 2022-12-{day:02d}T17:00
online:
  url: https://example.org/join/{n}
updated: 2022-12-01
---
Body of meeting {n:03d}.
"""


def record(n: int) -> str:
    return RECORD.format(n=n, day=1 + n % 28)


class Tree:
    """A site of records in two folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.events = root / "events"
        self.out = root / "out"
        self.cache = root / "cache"
        (self.events / "a").mkdir(parents=True)
        (self.events / "b").mkdir()
        (self.events / "site.yaml").write_text(SITE_YAML, encoding="utf-8")
        for n in range(40):
            (self.events / "a" / f"meeting-{n:03d}.md").write_text(record(n), encoding="utf-8")
        for n in range(40, 45):
            (self.events / "b" / f"meeting-{n:03d}.md").write_text(record(n), encoding="utf-8")

    def build(self, out: Path | None = None) -> Result:
        args = ["build", "--events", str(self.events), "--out", str(out or self.out)]
        result = CliRunner().invoke(main, [*args, "--as-of", AS_OF])
        assert result.exit_code == 0, result.output
        return result

    def record(self, n: int) -> Path:
        return self.events / ("a" if n < 40 else "b") / f"meeting-{n:03d}.md"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    made = Tree(tmp_path)
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(made.cache))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1670000000")
    monkeypatch.chdir(tmp_path)
    # The tree was written a moment ago: no record counts as racy, unless a test says so.
    monkeypatch.setattr(cache, "RACY_NS", 0)
    return made


@pytest.fixture(params=["here", "beside"])
def scanned(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """out/ looked at by the lookup itself, or beside the records in a forked process (as
    from :data:`eventfeed.cache.SCAN_ASIDE_CHUNKS` chunks on)."""
    monkeypatch.setattr(cache, "SCAN_ASIDE_CHUNKS", 10**9 if request.param == "here" else 0)
    return str(request.param)


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The process id of each look at out/ started beside the records (0: none could be)."""
    started: list[int] = []
    start = cache._OutScan.start

    def starting(out: Path) -> Any:
        made = start(out)
        started.append(made.forked.pid if made is not None else 0)
        return made

    monkeypatch.setattr(cache._OutScan, "start", starting)
    return started


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The chunks of records read (not trusted by their metadata), by their first file."""
    read: list[str] = []
    digest = _Chunk.digest

    def counted(self: _Chunk) -> str:
        read.append(self.folder + self.names[0])
        return digest(self)

    monkeypatch.setattr(_Chunk, "digest", counted)
    return read


def freeze(monkeypatch: pytest.MonkeyPatch, stamp: int, *, records: bool) -> None:
    """Metadata that never moves, for the records or for out/: both times at ``stamp``, one
    inode and device for all; only the type and size are real."""
    real = cache._lstat_all

    def frozen(paths: list[str]) -> list[os.stat_result]:
        infos = real(paths)
        return [
            _frozen(info, stamp) if path.endswith(".md") == records else info
            for path, info in zip(paths, infos, strict=True)
        ]

    monkeypatch.setattr(cache, "_lstat_all", frozen)


def _frozen(info: os.stat_result, stamp: int) -> os.stat_result:
    fields = list(info)
    fields[1:3] = [1, 1]  # inode, device
    fields[8:10] = [stamp // 10**9] * 2  # whole-second modification and change times
    return os.stat_result(fields, {"st_mtime_ns": stamp, "st_ctime_ns": stamp})


def rebuilt(
    tree: Tree, change: Callable[[], object], reads: list[str] | None = None
) -> dict[str, bytes]:
    """Change something after a build; the next build must be a real one, equal to a cold
    build (``reads``: left with the chunks that build read)."""
    tree.build()
    manifest = tree.root / "manifest-before.json"
    shutil.copy(tree.out / "manifest.json", manifest)
    change()
    if reads is not None:
        reads.clear()
    result = tree.build()
    read = list(reads or ())
    assert UP_TO_DATE not in result.stderr
    assert "built " in result.stderr
    after = snapshot(tree.out)
    other = tree.root / "cold"
    other.mkdir()
    shutil.copy(manifest, other / "manifest.json")
    tree.build(other)
    assert snapshot(other) == after
    if reads is not None:
        reads[:] = read
    return after


def test_an_unchanged_tree_is_neither_read_nor_built(
    tree: Tree, reads: list[str], scanned: str
) -> None:
    assert "built 45 event(s)" in tree.build().stderr
    assert len(reads) >= 2
    reads.clear()
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tree.out.rglob("*")}
    again = tree.build()
    assert UP_TO_DATE in again.stderr
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tree.out.rglob("*")} == stamps
    assert reads == []


def test_a_same_size_edit_with_the_old_modification_time_is_built(
    tree: Tree, reads: list[str]
) -> None:
    path = tree.record(3)

    def edit() -> None:
        before = path.stat()
        text = path.read_text(encoding="utf-8").replace(
            "Body of meeting 003", "Body of meeting 333"
        )
        path.write_text(text, encoding="utf-8")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = path.stat()
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    after = rebuilt(tree, edit, reads)
    assert len(reads) == 1  # the chunk of meeting-003, whose change time moved
    assert reads[0].startswith("a/")
    assert b"Body of meeting 333" in after["events/meeting-003.html"]


@pytest.mark.parametrize(
    "change",
    ["added", "removed", "renamed", "settings", "grown", "replaced", "ignored-folder"],
)
def test_a_change_to_the_records_is_built(
    tree: Tree, change: str, scanned: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each change leads to a build equal to a cold one, whose saved state is the one a look
    at out/ after it finds; with out/ looked at beside the records, that state is made of
    the look before the build for the files the writer kept (files written a moment ago
    count as old here, so that the writer keeps them)."""
    if scanned == "beside":
        monkeypatch.setattr(cache, "FINE_RACY_NS", 0)
    events = tree.events
    parent = os.getpid()
    looks: list[int] = []  # who looked at tree.out
    real = cache._out_state

    def state(out: Path, **shared: Any) -> Any:
        if out == tree.out.resolve():
            looks.append(os.getpid())
        return real(out, **shared)

    monkeypatch.setattr(cache, "_out_state", state)

    def apply() -> None:
        # another record edited first, so that the spare tree holds out/'s files
        tree.record(20).write_text(record(20).replace("Body", "Text"), encoding="utf-8")
        tree.build()
        looks.clear()
        if change == "added":
            (events / "b" / "meeting-050.md").write_text(record(50), encoding="utf-8")
        elif change == "removed":
            cancelled = record(3).replace("updated:", "status: cancelled\nupdated:")
            tree.record(3).write_text(cancelled, encoding="utf-8")
            tree.build()
            tree.record(3).unlink()
        elif change == "renamed":
            tree.record(41).rename(events / "b" / "meeting-041-new.md")
        elif change == "settings":
            text = SITE_YAML.replace("Test events", "Other events")
            (events / "site.yaml").write_text(text, encoding="utf-8")
        elif change == "grown":
            with tree.record(7).open("a", encoding="utf-8") as handle:
                handle.write("More.\n")
        elif change == "replaced":  # an editor's save: a new file renamed over the old one
            new = events / "a" / ".meeting-007.md.swp"
            new.write_text(record(7).replace("Body", "Text"), encoding="utf-8")
            new.replace(tree.record(7))

    if change == "ignored-folder":  # not a record: no build needed, and none made
        tree.build()
        (events / "_drafts").mkdir()
        (events / "_drafts" / "draft.md").write_text("not even a record", encoding="utf-8")
        (events / "a" / "notes.txt").write_text("not a record", encoding="utf-8")
        assert UP_TO_DATE in tree.build().stderr
        return
    rebuilt(tree, apply)
    looked = list(looks)
    assert UP_TO_DATE in tree.build().stderr
    # the same files in out/: the save took the look made beside the records
    merged = scanned == "beside" and change in ("grown", "replaced")
    assert (parent in looked) is not merged


def test_a_racy_edit_is_read_again(
    tree: Tree, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metadata that does not move at all (a file system with coarse timestamps): a record
    changed within the racy window of the scan that saw it is still read again."""
    monkeypatch.setattr(cache, "RACY_NS", 3_000_000_000)
    # the system's clock is frozen: out/ is measured against it too, not its file system's
    monkeypatch.setattr(cache, "_file_clock", lambda out: None)
    frozen = 1_600_000_000_000_000_000
    monkeypatch.setattr(cache, "_now", lambda: frozen + 1_000_000_000)  # a second later
    freeze(monkeypatch, frozen, records=True)  # out/ keeps its real metadata
    path = tree.record(3)
    tree.build()
    reads.clear()
    after = rebuilt(tree, lambda: path.write_bytes(path.read_bytes().replace(b"003.", b"333.")))
    assert len(reads) >= 3  # nothing was trusted
    assert b"Body of meeting 333." in after["events/meeting-003.html"]

    # The same metadata seen long after the last change is trusted: such an edit would pass
    # unseen. This is the limit the racy rule exists for; the test shows the rule is needed.
    monkeypatch.setattr(cache, "_now", lambda: frozen + 3600 * 1_000_000_000)
    tree.build()  # read once more, now remembered
    path.write_bytes(path.read_bytes().replace(b"333.", b"444."))
    assert UP_TO_DATE in tree.build().stderr


@pytest.mark.parametrize("change", ["same-size", "appended", "added", "removed", "folder", "link"])
def test_a_change_made_by_hand_in_out_is_built(tree: Tree, change: str, scanned: str) -> None:
    tree.build()
    expected = snapshot(tree.out)
    target = tree.out / "calendar.ics"
    if change == "same-size":
        before = target.stat()
        data = target.read_bytes()
        target.write_bytes(data.replace(b"BEGIN:VCALENDAR", b"BEGIN:VCALENDAX", 1))
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert target.stat().st_size == before.st_size
    elif change == "appended":
        with target.open("ab") as handle:
            handle.write(b"X")
    elif change == "added":
        (tree.out / "events" / "extra.html").write_bytes(b"extra")
    elif change == "removed":
        (tree.out / "events" / "meeting-003.html").unlink()
    elif change == "folder":
        (tree.out / "extra").mkdir()
    else:
        (tree.out / "events" / "link.html").symlink_to(tree.out / "index.html")
    result = tree.build()
    assert UP_TO_DATE not in result.stderr
    assert "built 45 event(s)" in result.stderr
    if change != "same-size":  # the writer keeps a file of the right size: its concern
        assert snapshot(tree.out) == expected
        assert UP_TO_DATE in tree.build().stderr


def test_a_racy_file_in_out_is_read_again(
    tree: Tree, monkeypatch: pytest.MonkeyPatch, scanned: str
) -> None:
    """out/ on a file system whose metadata does not move: its files are compared by bytes."""
    monkeypatch.setattr(cache, "RACY_NS", 3_000_000_000)
    frozen = 1_600_000_000_000_000_000
    monkeypatch.setattr(cache, "_now", lambda: frozen + 1_000_000_000)
    freeze(monkeypatch, frozen, records=False)
    tree.build()
    assert UP_TO_DATE in tree.build().stderr
    saved = json.loads(next(tree.cache.glob("*.json")).read_bytes())
    assert "calendar.ics" in saved["racy"]
    assert "manifest.json" in saved["racy"]
    target = tree.out / "calendar.ics"
    target.write_bytes(target.read_bytes().replace(b"BEGIN:VCALENDAR", b"BEGIN:VCALENDAX", 1))
    assert UP_TO_DATE not in tree.build().stderr


@pytest.mark.parametrize("measured", ["file system", "margin"])
def test_a_racy_file_changed_before_the_save_is_not_remembered(
    tree: Tree, monkeypatch: pytest.MonkeyPatch, measured: str
) -> None:
    """A file of out/ changed by someone else after the moment the save measures against is
    compared with the build's bytes, and the save then remembers nothing: where the file
    system's clock is read, after that clock (while the save looks); else within the racy
    margin before the save (after the writer)."""
    tree.build()
    clock = datetime(2022, 12, 10, tzinfo=UTC)
    fingerprint = Fingerprint.of(tree.events, tree.out, clock, None, strict=False)
    assert fingerprint is not None
    written = snapshot(tree.out)

    def meddle() -> None:
        (tree.out / "index.html").write_bytes(b"<p>someone else's</p>")

    if measured == "file system":
        real = cache._file_clock

        def clock_then_meddle(out: Path) -> int | None:
            moment = real(out)
            assert moment is not None
            meddle()
            return moment

        monkeypatch.setattr(cache, "_file_clock", clock_then_meddle)
    else:
        monkeypatch.setattr(cache, "_file_clock", lambda out: None)
        meddle()
    fingerprint.save(tree.out, "", written)
    assert not fingerprint.path.exists()
    assert UP_TO_DATE not in tree.build().stderr


def test_a_cache_not_ours_means_a_build(tree: Tree) -> None:
    tree.build()
    (path,) = tree.cache.glob("*.json")
    for text in ("{", "[]", '{"format": 1, "key": "x", "warnings": ""}', '{"format": 2}'):
        path.write_text(text, encoding="utf-8")
        assert UP_TO_DATE not in tree.build().stderr
    assert UP_TO_DATE in tree.build().stderr


# The records the fingerprint reads are exactly those the loader reads.


def test_the_loaders_names_are_the_caches() -> None:
    assert cache.SETTINGS_FILE == load.SETTINGS_FILE
    assert cache.IGNORED_NAMES == load.IGNORED_NAMES
    assert cache.MAX_FILE_BYTES == frontmatter.MAX_FILE_BYTES
    assert cache.MANIFEST == paths.MANIFEST


def _loader_files(events: Path) -> tuple[list[str], list[Problem]]:
    problems: list[Problem] = []
    files = [str(p) for p in load._record_files(events, problems)]
    return files, problems


def _cache_files(events: Path) -> list[str] | None:
    try:
        return sorted(path for chunk in _record_chunks(events) for path in chunk.paths)
    except _Odd:
        return None


@pytest.fixture
def odd_tree(tmp_path: Path) -> Path:
    events = tmp_path / "events"
    for folder in ("2023/q1", "2023/q2", ".git", "_drafts", "x.md", "deep/er/est"):
        (events / folder).mkdir(parents=True)
    for name in (
        "site.yaml",
        "README.md",
        "top.md",
        "notes.txt",
        ".hidden.md",
        "_draft.md",
        "2023/q1/a.md",
        "2023/q1/b.MD",
        "2023/q2/c.md",
        ".git/d.md",
        "_drafts/e.md",
        "x.md/f.md",
        "deep/er/est/g.md",
        "deep/README.md",
    ):
        (events / name).write_text("---\n", encoding="utf-8")
    (events / "2023" / "linked.md").symlink_to(events / "2023" / "q1" / "a.md")
    (events / "_link").symlink_to(events / "2023")
    return events


def test_the_same_records_as_the_loader(odd_tree: Path) -> None:
    files, problems = _loader_files(odd_tree)
    assert problems == []
    assert _cache_files(odd_tree) == sorted(files)
    assert len(files) == 6


@pytest.mark.parametrize("oddity", ["folder-link", "outside", "dangling", "fifo", "link-to-folder"])
def test_what_the_loader_reports_means_a_build(odd_tree: Path, oddity: str) -> None:
    if oddity == "folder-link":
        (odd_tree / "more").symlink_to(odd_tree / "2023")
    elif oddity == "outside":
        outside = odd_tree.parent / "outside.md"
        outside.write_text("---\n", encoding="utf-8")
        (odd_tree / "outside.md").symlink_to(outside)
    elif oddity == "dangling":
        (odd_tree / "gone.md").symlink_to(odd_tree / "nowhere.md")
    elif oddity == "fifo":
        os.mkfifo(odd_tree / "pipe.md")
    else:
        (odd_tree / "folder.md").symlink_to(odd_tree / "2023")
    _, problems = _loader_files(odd_tree)
    assert problems
    assert _cache_files(odd_tree) is None


def test_a_no_change_build_imports_neither_parser_nor_compilers(tree: Tree) -> None:
    tree.build()
    script = (
        "import sys\n"
        "from eventfeed.cli import main\n"
        f"main(['build', '--events', {str(tree.events)!r}, '--out', {str(tree.out)!r}, "
        f"'--as-of', {AS_OF!r}, '-q'], standalone_mode=False)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = dict(os.environ, EVENTFEED_CACHE_DIR=str(tree.cache), SOURCE_DATE_EPOCH="1670000000")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    modules = set(done.stdout.split())
    heavy = {"icalendar", "feedgen", "jinja2", "pyromark", "pydantic", "yaml", "nh3", "lxml"}
    assert "eventfeed.cache" in modules
    assert modules & heavy == set()
    assert not {m for m in modules if m.startswith("eventfeed.")} - {
        "eventfeed.cache",
        "eventfeed.cli",
        "eventfeed.errors",
        "eventfeed.forked",  # (the look at out/ beside the records)
        "eventfeed.options",
    }


def test_every_command_is_still_there() -> None:
    names = {"build", "check", "schema", "new", "import", "list", "diff", "serve"}
    assert set(main.commands) == names
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in names:
        assert f"\n  {name} " in result.output


def test_a_record_over_the_loaders_limit_means_a_build(tree: Tree) -> None:
    tree.build()
    tree.record(3).write_bytes(b"---\n" + b"x" * frontmatter.MAX_FILE_BYTES)
    clock = datetime(2022, 12, 10, tzinfo=UTC)
    assert Fingerprint.of(tree.events, tree.out, clock, None, strict=False) is None


@pytest.mark.parametrize(
    "size",
    [0, 1, 4095, 65536, 65537, 200_000, cache.MAX_FILE_BYTES, cache.MAX_FILE_BYTES + 1],
)
def test_a_record_is_read_whole_up_to_one_byte_over_the_limit(tmp_path: Path, size: int) -> None:
    path = tmp_path / "r.md"
    path.write_bytes((b"a\r\n\0" * (size // 4 + 1))[:size])  # bytes kept as they are
    assert len(path.read_bytes()) == size
    assert cache.read_head(str(path)) == path.read_bytes()


def test_a_record_over_the_limit_is_read_only_one_byte_past_it(tmp_path: Path) -> None:
    path = tmp_path / "r.md"
    data = os.urandom(cache.MAX_FILE_BYTES + 70_000)
    path.write_bytes(data)
    assert cache.read_head(str(path)) == data[: cache.MAX_FILE_BYTES + 1]


def test_the_save_shares_out_the_metadata_of_out(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From :data:`eventfeed.cache.LSTAT_ASIDE_FILES` files on, the save takes the metadata
    of the second half of out/ in a forked process: the state of out/ is the same as when
    it is all taken here, a rebuild finds nothing changed, and a file changed by hand in
    that half is still seen."""
    tree.build()
    out = tree.out.resolve()
    alone = cache._out_state(out)
    monkeypatch.setattr(cache, "LSTAT_ASIDE_FILES", 2)
    forked: list[int] = []
    start = cache.Forked.start

    def starting(work: Callable[[], bytes]) -> Any:
        made = start(work)
        forked.append(made.pid if made is not None else 0)
        return made

    monkeypatch.setattr(cache.Forked, "start", starting)
    shared = cache._out_state(out, aside=True)
    assert len(forked) == 1
    assert forked[0] > 0
    assert alone is not None
    assert shared is not None
    assert (shared.signature, shared.racy, shared.seen) == (alone.signature, alone.racy, alone.seen)
    assert UP_TO_DATE in tree.build().stderr
    assert shared.seen is not None
    last = tree.out / shared.seen[1][-1]  # the last file in the half taken beside
    before = last.read_bytes()
    last.write_bytes(b"edited by hand")
    assert UP_TO_DATE not in tree.build().stderr
    assert last.read_bytes() == before
    assert UP_TO_DATE in tree.build().stderr


def test_metadata_taken_beside_falls_back_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata shared out is the same as taken here alone; when the forked process
    cannot take its half (a file gone, here), this process takes it, and raises what taking
    it alone raises."""
    monkeypatch.setattr(cache, "LSTAT_ASIDE_FILES", 2)
    paths = []
    for n in range(6):
        (tmp_path / f"f{n}").write_bytes(b"x" * n)
        paths.append(str(tmp_path / f"f{n}"))
    alone = cache._metadata(paths, aside=False)
    assert cache._metadata(paths, aside=True) == alone
    assert [size for _, size, *_ in alone[0]] == list(range(6))
    assert alone[1] == b"".join(cache.ROW.pack(*found) for found in alone[0])
    beside = cache.Forked.start
    gone: list[int] = []

    def failing(work: Callable[[], bytes]) -> Any:
        os.unlink(paths[-1])  # before the process looks
        made = beside(work)
        gone.append(made.pid if made is not None else 0)
        return made

    monkeypatch.setattr(cache.Forked, "start", failing)
    with pytest.raises(FileNotFoundError):
        cache._metadata(paths, aside=True)
    assert gone[0] > 0


@pytest.mark.usefixtures("full_rebuilds")
def test_changed_records_are_built_without_looking_at_out(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the inputs differ, no file of out/ is looked at before the build (at 100,000
    events that look is a second); with the same inputs it is, and a file changed in out/
    is still seen."""
    looked: list[Path] = []
    real = cache._out_state

    def spy(out: Path, **shared: Any) -> Any:
        looked.append(out)
        return real(out, **shared)

    monkeypatch.setattr(cache, "_out_state", spy)
    tree.build()
    assert looked == [tree.out.resolve()]  # the save, after the build
    looked.clear()
    assert UP_TO_DATE in tree.build().stderr
    assert looked == [tree.out.resolve()]  # the lookup
    looked.clear()
    tree.record(7).write_text(record(7).replace("Body", "Edited body"), encoding="utf-8")
    result = tree.build()
    assert "built 45 event(s)" in result.stderr
    assert looked == [tree.out.resolve()]  # the save alone
    looked.clear()
    (tree.out / "index.html").write_bytes(b"edited by hand")
    result = tree.build()
    assert "built 45 event(s)" in result.stderr
    assert looked == [tree.out.resolve(), tree.out.resolve()]  # the lookup, then the save
    assert (tree.out / "index.html").read_bytes() != b"edited by hand"


def test_out_is_looked_at_beside_the_records(
    tree: Tree, monkeypatch: pytest.MonkeyPatch, scans: list[int]
) -> None:
    """From enough chunks on, the lookup's look at out/ is made in a forked process while the
    records are looked at; when the records changed, that process is stopped, and out/ is
    looked at only by the save, here."""
    monkeypatch.setattr(cache, "SCAN_ASIDE_CHUNKS", 1)
    parent = os.getpid()
    where = tree.root / "looked"
    real = cache._out_state

    def spy(out: Path, **shared: Any) -> Any:
        with where.open("a", encoding="utf-8") as handle:
            handle.write(f"{'here' if os.getpid() == parent else 'beside'}\n")
        return real(out, **shared)

    monkeypatch.setattr(cache, "_out_state", spy)
    tree.build()
    assert scans == []  # no build remembered: nothing to look up
    where.unlink()
    assert UP_TO_DATE in tree.build().stderr
    assert where.read_text(encoding="utf-8").split() == ["beside"]
    (tree.out / "index.html").write_bytes(b"edited by hand")
    where.unlink()
    assert "built 45 event(s)" in tree.build().stderr  # seen beside
    assert sorted(where.read_text(encoding="utf-8").split()) == ["beside", "here"]
    tree.record(7).write_text(record(7).replace("Body", "Edited body"), encoding="utf-8")
    assert "built 45 event(s)" in tree.build().stderr
    assert len(scans) == 3
    assert all(scans)
    for pid in scans:  # every process ended and was waited for
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("failure", ["dies", "odd"])
def test_a_look_beside_that_fails_is_made_by_the_lookup(
    tree: Tree, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    monkeypatch.setattr(cache, "SCAN_ASIDE_CHUNKS", 0)
    parent = os.getpid()
    real = cache._out_state

    def failing(out: Path, **shared: Any) -> Any:
        if os.getpid() != parent:
            if failure == "dies":
                os._exit(3)
            return "not a state"
        return real(out, **shared)

    monkeypatch.setattr(cache, "_out_state", failing)
    tree.build()
    assert UP_TO_DATE in tree.build().stderr
    (tree.out / "index.html").write_bytes(b"edited by hand")
    assert "built 45 event(s)" in tree.build().stderr
    assert (tree.out / "index.html").read_bytes() != b"edited by hand"


# A rebuild takes what was seen of out/ before it, for the files its writer leaves.


def _edit(tree: Tree, n: int, words: str) -> None:
    tree.record(n).write_text(record(n).replace("Body", words), encoding="utf-8")


def _cold(tree: Tree) -> dict[str, bytes]:
    """A cold build of the same records, beside, from the same previous manifest."""
    other = tree.root / f"cold-{len(list(tree.root.glob('cold-*')))}"
    other.mkdir()
    shutil.copy(tree.out / "manifest.json", other / "manifest.json")
    tree.build(other)
    return snapshot(other)


@pytest.mark.usefixtures("full_rebuilds")
@pytest.mark.parametrize("aside", [True, False])
def test_an_edit_rebuild_takes_the_look_before_it_for_the_files_it_leaves(
    tree: Tree, monkeypatch: pytest.MonkeyPatch, aside: bool
) -> None:
    """With out/ looked at beside the records, the writer trusts that look for the files it
    keeps instead of looking at each again, and the save takes it for them; the state saved
    so is the one a look after the build finds (the next build is a no-change one)."""
    from eventfeed import write

    monkeypatch.setattr(cache, "SCAN_ASIDE_CHUNKS", 0 if aside else 10**9)
    # files written a moment ago count as old (as in a build that takes seconds)
    monkeypatch.setattr(cache, "FINE_RACY_NS", 0)
    parent = os.getpid()
    real_state, real_same = cache._out_state, write._same
    looks: list[str] = []
    sames: list[str] = []

    def state(out: Path, **shared: Any) -> Any:
        if os.getpid() == parent:
            looks.append("here")
        return real_state(out, **shared)

    def same(trust: Any, path: str, *args: Any) -> bool:
        sames.append(path)
        return real_same(trust, path, *args)

    monkeypatch.setattr(cache, "_out_state", state)
    monkeypatch.setattr(write, "_same", same)
    tree.build()
    _edit(tree, 7, "Edited body")
    tree.build()
    before = snapshot(tree.out)
    _edit(tree, 8, "Edited body")
    tree.build()  # written into the tree the first build wrote, the spare
    after = snapshot(tree.out)
    changed = {path for path, data in after.items() if before.get(path) != data}
    looks.clear()
    sames.clear()
    _edit(tree, 9, "Edited body")
    result = tree.build()
    assert "built 45 event(s)" in result.stderr
    files = len(snapshot(tree.out))
    if aside:
        assert looks == []  # neither the writer nor the save looked at every file
        # the writer looked only at files the spare holds another copy of: those the last
        # build changed
        assert set(sames) <= changed
    else:
        assert looks == ["here"]  # the save
        assert len(sames) > files // 2
    assert snapshot(tree.out) == _cold(tree)
    assert UP_TO_DATE in tree.build().stderr


def test_a_file_changed_by_hand_while_the_build_runs_is_repaired_by_the_next(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of out/ written in place after the look beside, while the build runs, may be
    left by the writer, which trusts that look; the next build must see it and write it
    again (the trusted moment saved is the look's, not the save's)."""
    from eventfeed import write

    monkeypatch.setattr(cache, "SCAN_ASIDE_CHUNKS", 0)
    monkeypatch.setattr(cache, "FINE_RACY_NS", 0)
    tree.build()
    for n in (7, 8):
        _edit(tree, n, "Edited body")
        tree.build()
    expected_before = snapshot(tree.out)
    target = tree.out / "events" / "meeting-003.html"
    real = write.write_tree

    def meddling(*args: Any, **kwargs: Any) -> Any:
        data = target.read_bytes()
        with target.open("r+b") as handle:  # in place: the same inode, size and folder
            handle.write(data.replace(b"Meeting 3", b"Meeting X", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(write, "write_tree", meddling)
    _edit(tree, 9, "Edited body")
    tree.build()
    monkeypatch.setattr(write, "write_tree", real)
    result = tree.build()
    assert UP_TO_DATE not in result.stderr
    assert snapshot(tree.out) == _cold(tree)
    assert (
        snapshot(tree.out)["events/meeting-003.html"] == expected_before["events/meeting-003.html"]
    )
    assert UP_TO_DATE in tree.build().stderr


def test_a_look_beside_is_ended_when_the_build_fails(
    tree: Tree, monkeypatch: pytest.MonkeyPatch, scans: list[int]
) -> None:
    monkeypatch.setattr(cache, "SCAN_ASIDE_CHUNKS", 0)
    tree.build()
    before = snapshot(tree.out)
    tree.record(7).write_text(record(7).replace("kind: meeting", "kind: 12"), encoding="utf-8")
    args = ["build", "--events", str(tree.events), "--out", str(tree.out), "--as-of", AS_OF]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert snapshot(tree.out) == before
    assert len(scans) == 1
    assert all(scans)
    with pytest.raises(ChildProcessError):  # ended and waited for
        os.waitpid(scans[0], os.WNOHANG)


def test_the_loader_takes_the_records_as_the_no_change_check_listed_them(odd_tree: Path) -> None:
    """The files, their order and their names as shown, as the loader's own look finds
    them; each one's metadata is what the loader would take (a linked record's target's)."""
    fingerprint = Fingerprint.of(
        odd_tree, odd_tree.parent / "out", datetime(2023, 1, 1, tzinfo=UTC), None, False
    )
    assert fingerprint is not None
    listed = fingerprint.listed()
    assert listed is not None
    assert fingerprint.listed() is None  # given once, not held
    infos: dict[str, os.stat_result] = {}
    problems: list[Problem] = []
    assert load._listed_paths(odd_tree, listed, infos) == load._record_paths(odd_tree, problems)
    assert problems == []
    assert listed.records == []  # used up: the build does not hold it to its end
    assert len(infos) == 6
    for path, info in infos.items():
        now = os.stat(path)
        assert (info.st_ino, info.st_mtime_ns, info.st_size) == (
            now.st_ino,
            now.st_mtime_ns,
            now.st_size,
        )


def test_an_edit_rebuild_looks_for_the_records_once(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader takes the records the no-change check found, with their metadata: it
    neither looks through the folders nor takes a record's metadata again."""
    tree.build()
    visits: list[str] = []
    stats: list[str] = []
    visit, signature = load._visit, RecordStore.signature

    def visiting(folder: str, *args: Any) -> None:
        visits.append(folder)
        visit(folder, *args)

    def signing(self: RecordStore, source: str, *args: Any) -> str | None:
        stats.append(source)
        return signature(self, source, *args)

    monkeypatch.setattr(load, "_visit", visiting)
    monkeypatch.setattr(RecordStore, "signature", signing)
    after = rebuilt(tree, lambda: _edit(tree, 3, "Edited body"))
    assert visits == []
    assert stats == []
    assert [path for path, data in after.items() if b"Edited body of meeting 003" in data]
