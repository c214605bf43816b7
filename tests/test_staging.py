"""Forked workers write each file they make into a staging tree; the writer takes that tree
whole as the new out/ when nothing is kept from an earlier build, and links its files
otherwise. Either way out/ holds exactly the bytes of a build made in one process, and a
writer stopped at any step leaves the old out/ and a next build that is exact."""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import os
import pathlib
import pickle
import shutil
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventfeed import build, write
from eventfeed.build import Artifacts, Spilled, Staged, compile_site
from eventfeed.cli import main
from eventfeed.load import Site, load_site
from eventfeed.state import read_manifest
from eventfeed.write import write_tree

from .bench_records import generate
from .test_faults import snapshot
from .test_write_spare import Injected, counting, site, spare_of, stopping_at

pytestmark = pytest.mark.skipif(write._renameat2() is None, reason="needs the atomic exchange")

NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
AS_OF = date(2023, 11, 14)
RECORDS = 60


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return load_site(generate(tmp_path_factory.mktemp("records"), RECORDS), today=NOW.date())


@pytest.fixture(scope="module")
def expected(records: Site) -> dict[str, bytes]:
    made = compile_site(records, None, NOW, as_of=AS_OF, jobs=1)
    assert made.staging is None
    return {path: made[path] for path in made}


def _aside(path: str) -> bool:
    """Whether the calendars' step, run beside the others, makes the file at ``path``."""
    return path in ("calendar.ics", "calendar.json") or path.startswith("calendars/")


def whole_staged(files: Mapping[str, bytes], *, aside: bool = True) -> set[str]:
    """The whole steps' files that a build with a staging tree writes there as well: those
    as large as the spill size of the process that makes them, or larger (``aside``: the
    calendars were made beside the other whole steps)."""
    return {
        path
        for path, data in files.items()
        if not path.startswith("events/")
        and len(data) >= (build.ASIDE_SPILL_BYTES if aside and _aside(path) else build.SPILL_BYTES)
    }


def parallel(records: Site, expected: dict[str, bytes]) -> Artifacts:
    """The build made by two workers: every event's files staged, and the large files of
    the whole steps (the calendars past the spill size of the process beside)."""
    made = compile_site(records, None, NOW, as_of=AS_OF, jobs=2)
    staged = {path for path in made if made.staged(path) is not None}
    whole = whole_staged(expected)
    assert whole  # (the test would not see them otherwise)
    assert staged == {path for path in expected if path.startswith("events/")} | whole
    assert len(staged) == 2 * RECORDS + len(whole)
    for path in staged:  # at its path, with the bytes of a build made in one process
        assert Path(made.staging or "", path).read_bytes() == expected[path]
    assert made.staging is not None
    assert Path(made.staging).is_dir()
    return made


def test_a_first_build_takes_the_workers_tree_whole(
    records: Site, expected: dict[str, bytes], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = parallel(records, expected)
    assert made.staging is not None
    staging = Path(made.staging)
    links = counting(monkeypatch, "link")
    write_tree(out, made, events_dir=None)
    assert snapshot(out) == expected
    assert links == []  # nothing linked or copied: the staged files were in place
    assert not staging.exists()
    page = out / "events" / "event-000000.html"
    assert os.lstat(page).st_nlink == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_the_first_rebuild_takes_it_in_place_of_the_empty_kept_tree(
    records: Site, expected: dict[str, bytes], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = site("before")
    write_tree(out, before, events_dir=None)
    made = parallel(records, expected)
    links = counting(monkeypatch, "link")
    write_tree(out, made, events_dir=None)
    assert snapshot(out) == expected
    assert links == []
    assert snapshot(spare_of(out)) == before  # the replaced tree, kept for the next build
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


@pytest.mark.parametrize("kept", [10, 0])
def test_a_rebuild_over_a_kept_tree_moves_the_staged_files_in(
    records: Site,
    expected: dict[str, bytes],
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    kept: int,
) -> None:
    """Each staged file is moved to its place in the kept tree, where linking it took one
    more call: its staging name removed with the staging tree. The kept tree's file there,
    which may be a link to out/'s file, is removed first: out/'s is left as it was. Nothing
    of the staging tree is left, so no file of out/ changes (removing a file's other name
    sets its change time) after the caller looked at them to vouch for them next time.

    With ``kept`` 0, the kept tree holds no file where a staged one goes: its files of
    ``events/`` are all removed, and the folder with them, before the moves."""
    pages = sorted(path for path in expected if path.startswith("events/"))[:kept]
    older = dict.fromkeys(pages, "older\n")
    write_tree(out, site("1", older), events_dir=None)
    second = site("2", {"events/e1.ics": "edited\n", **older})
    write_tree(out, second, events_dir=None)
    # the kept tree holds build 1, whose files out/ (build 2) holds linked, but one
    assert {p for p in snapshot(spare_of(out)) if p.startswith("events/event-")} == set(pages)
    made = parallel(records, expected)
    staging = made.staging
    assert staging is not None
    staged = {path for path in made if made.staged(path) is not None}
    spare = str(spare_of(out))
    links = counting(monkeypatch, "link")
    renames = counting(monkeypatch, "rename")
    unlinks = counting(monkeypatch, "unlink")
    write_tree(out, made, events_dir=None)
    assert snapshot(out) == expected
    moved = {
        os.path.relpath(source, staging) for source, *_ in renames if source.startswith(staging)
    }
    assert moved == staged
    assert links == []
    # (the staging tree is removed by names in it, not paths: none of a staged file is left)
    names = {path.rpartition("/")[2] for path in staged}
    assert not [path for path, *_ in unlinks if path in names or path.startswith(staging)]
    removed = {os.path.relpath(path, spare) for path, *_ in unlinks if path.startswith(spare)}
    assert removed >= set(pages)  # each kept file where a staged one goes
    assert snapshot(spare_of(out)) == second  # the replaced out/, untouched by the moves
    assert not Path(staging).exists()
    page = "events/event-000000.html"
    assert os.lstat(out / page).st_nlink == 1
    assert made[page] == expected[page]  # a staged file is read from out/ now
    del made
    assert snapshot(out) == expected


def test_past_its_budget_a_worker_spills_its_files_then_they_are_staged_meanwhile(
    records: Site, expected: dict[str, bytes], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files a worker spilled are copied into the staging tree while the whole steps run, by
    another process: the writer then finds every event's file in place."""
    monkeypatch.setattr(build, "STAGE_BYTES", 200_000)
    moved: list[int] = []
    real = build._copy_to_tree

    def copying(tree: str, moves: list[tuple[str, Spilled]]) -> None:
        moved.append(len(moves))
        assert all(spilled.spill.name.endswith(".spill") for _, spilled in moves)
        real(tree, moves)

    monkeypatch.setattr(build, "_copy_to_tree", copying)
    made = compile_site(records, None, NOW, as_of=AS_OF, jobs=2)
    assert moved == []  # it ran in the forked process, not here
    events = {path for path in expected if path.startswith("events/")}
    # (the copy takes the second core: the calendars are made here, beside nothing)
    whole = whole_staged(expected, aside=False)
    assert {path for path in made if made.staged(path) is not None} == events | whole
    assert all(made.spilled(path) is None for path in events)
    assert made.staging is not None
    spills = [p for p in Path(made.staging).parent.iterdir() if p.name.endswith(".spill")]
    assert sum(p.stat().st_size for p in spills) > 0  # past the budget, the workers spilled
    copies = counting(monkeypatch, "copy_file_range")
    write_tree(out, made, events_dir=None)
    assert snapshot(out) == expected
    assert copies == []  # the whole-site files here are small: nothing copied at all


def test_spilled_files_the_copy_could_not_stage_are_copied_by_the_writer(
    records: Site, expected: dict[str, bytes], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that fails half-way (here after leaving a wrong file in the staging tree) leaves
    the files spilled; the writer copies them over whatever the copy left."""
    monkeypatch.setattr(build, "STAGE_BYTES", 200_000)

    def failing(tree: str, moves: list[tuple[str, Spilled]]) -> None:
        path, _ = moves[0]
        Path(tree, *path.split("/")).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build, "_copy_to_tree", failing)
    made = compile_site(records, None, NOW, as_of=AS_OF, jobs=2)
    spilled = {path for path in made if made.spilled(path) is not None}
    assert {path for path in spilled if path.startswith("events/")}
    write_tree(out, made, events_dir=None)
    assert snapshot(out) == expected


def test_staged_files_that_cannot_be_moved_or_linked_are_written(
    records: Site, expected: dict[str, bytes], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when the cache folder is on another file system than out/."""
    made = parallel(records, expected)
    assert made.staging is not None
    staging = made.staging

    def rename(source: Any, target: Any, **kwargs: Any) -> None:
        if str(source).startswith(staging):  # the tree, or a file of it
            raise OSError(errno.EXDEV, "cross-device link")
        real_rename(source, target, **kwargs)

    def link(source: Any, target: Any, **kwargs: Any) -> None:
        raise OSError(errno.EXDEV, "cross-device link")

    real_rename = os.rename
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "link", link)
    write_tree(out, made, events_dir=None)
    monkeypatch.undo()
    assert snapshot(out) == expected
    assert not Path(staging).exists()  # removed once its files were written into out/
    page = "events/event-000000.html"
    assert made[page] == expected[page]  # read from out/ from then on


@pytest.mark.parametrize("name", ["os.rename", "pathlib.Path.write_bytes"])
def test_stopped_at_any_step_out_is_the_old_build_and_the_next_is_exact(
    records: Site, expected: dict[str, bytes], out: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Out/ holds a build and the kept tree is still empty: the staging tree is moved in its
    place, filled with the whole steps' files and swapped with out/; the writer is stopped at
    a step of that (the move, a file)."""
    owner: Any = os if name == "os.rename" else pathlib.Path
    attribute = name.rsplit(".", 1)[1]
    before = site("before")
    cache = os.environ["EVENTFEED_CACHE_DIR"]
    write_tree(out, before, events_dir=None)
    made = parallel(records, expected)
    calls = counting(monkeypatch, attribute, owner)
    write_tree(out, made, events_dir=None)
    monkeypatch.undo()
    assert snapshot(out) == expected
    assert calls
    steps = sorted({1, max(1, len(calls) // 2), len(calls)})
    for step in steps:
        monkeypatch.setenv("EVENTFEED_CACHE_DIR", cache)
        shutil.rmtree(out)
        shutil.rmtree(Path(cache) / "trees")
        write_tree(out, before, events_dir=None)  # as at the start
        stop = functools.partial(stopping_at, monkeypatch, attribute, step, owner)
        stopped_then_exact(records, expected, out, monkeypatch, stop, before, cache)


def stopped_then_exact(
    records: Site,
    expected: dict[str, bytes],
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop: Callable[[], None],
    before: dict[str, bytes],
    cache: str,
) -> None:
    """The writer of the workers' build, stopped where ``stop`` makes it stop, leaves out/
    as it was (``before``); the next build is exact, and nothing is left beside out/."""
    made = parallel(records, expected)
    stop()
    with pytest.raises(Injected):
        write_tree(out, made, events_dir=None)
    monkeypatch.undo()
    assert snapshot(out) == before
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", cache)
    write_tree(out, parallel(records, expected), events_dir=None)
    assert snapshot(out) == expected
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_stopped_while_moving_staged_files_in_out_is_the_old_build_and_the_next_is_exact(
    records: Site, expected: dict[str, bytes], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out/ holds a build and the kept tree the one before, with files where staged ones
    go (some of them links to out/'s); the writer is stopped at the first, a middle and the
    last move of a staged file into the kept tree."""
    pages = sorted(path for path in expected if path.startswith("events/"))[:10]
    older = dict.fromkeys(pages, "older\n")
    first, second = site("1", older), site("2", {"events/e1.ics": "edited\n", **older})
    cache = os.environ["EVENTFEED_CACHE_DIR"]
    moves = 2 * RECORDS + len(whole_staged(expected))
    for step in (1, moves // 2, moves):
        monkeypatch.setenv("EVENTFEED_CACHE_DIR", cache)
        for folder in (out, Path(cache) / "trees"):
            shutil.rmtree(folder, ignore_errors=True)
        write_tree(out, first, events_dir=None)
        write_tree(out, second, events_dir=None)
        stop = functools.partial(stopping_at, monkeypatch, "rename", step)
        stopped_then_exact(records, expected, out, monkeypatch, stop, second, cache)
        assert snapshot(spare_of(out)) == second, step


def test_a_path_the_writer_refuses_is_not_staged(tmp_path: Path) -> None:
    tree = str(tmp_path / "tree")
    assert build._stage(tree, "../outside.html", b"x", _digest(b"x")) == b"x"
    assert not (tmp_path / "outside.html").exists()
    assert build._stage(tree, "events/a.html", b"page", _digest(b"page")) == Staged(
        _digest(b"page"), 4
    )
    assert (tmp_path / "tree" / "events" / "a.html").read_bytes() == b"page"


def test_what_a_worker_sends_back_of_each_file_reads_back_equal(tmp_path: Path) -> None:
    """Staged and spilled files are sent back to the first process by pickling (made again
    by their constructors, which is quicker than a frozen dataclass's generic state)."""
    spill = tmp_path / "1.spill"
    spill.write_bytes(b"..page..")
    sent = [Staged("d" * 64, 4), Spilled("e" * 64, 4, spill, 2)]
    back = pickle.loads(pickle.dumps(sent, pickle.HIGHEST_PROTOCOL))
    assert back == sent
    assert [type(item) for item in back] == [Staged, Spilled]
    assert back[1].data() == b"page"
    with pytest.raises(AttributeError):
        back[0].size = 5  # type: ignore[misc]


def test_a_piece_of_a_staged_file_is_read_alone_and_equals_the_slice(tmp_path: Path) -> None:
    """The calendars take each event's components from its staged file (offset and size):
    the piece read is the slice of the whole file, for a staged file and for bytes held; a
    piece past the end is the (short) slice, as of bytes."""
    artifacts = Artifacts(tmp_path / "build")
    artifacts.staging = str(tmp_path / "tree")
    data = b"BEGIN:VCALENDAR\r\nthe components\r\nEND:VCALENDAR\r\n"
    staged = build._stage(artifacts.staging, "events/a.ics", data, _digest(data))
    assert isinstance(staged, Staged)
    artifacts.update_from({"events/a.ics": staged, "events/b.ics": data})
    for path in ("events/a.ics", "events/b.ics"):
        whole = artifacts[path]
        assert whole == data
        for offset, size in ((0, len(data)), (17, 16), (len(data) - 3, 3), (40, 100)):
            assert artifacts.piece(path, offset, size) == whole[offset : offset + size]


def test_a_file_made_again_while_writing_reads_the_staged_files_where_they_went(
    tmp_path: Path, out: Path
) -> None:
    """A file taken from the previous out/ that changed there is made again from the event
    files while the writer runs, after the staging tree became the new tree."""
    artifacts = Artifacts()
    tree = artifacts.staging_tree()
    artifacts.add_known(
        "events/e.ics", build._stage(tree, "events/e.ics", b"event", _digest(b"event"))
    )
    joined = b"calendar of event"

    def again() -> bytes:
        return b"calendar of " + artifacts["events/e.ics"]

    gone = str(tmp_path / "previous" / "calendar.ics")  # no longer there
    digest = hashlib.sha256(joined).hexdigest()
    artifacts.add_known("calendar.ics", build._Known(digest, len(joined), gone, again))
    write_tree(out, artifacts, events_dir=None)
    assert snapshot(out) == {"calendar.ics": joined, "events/e.ics": b"event"}
    assert not Path(tree).exists()  # taken whole


class _LoggedLock:
    """The workers' lock, each take and release written to a file shared by the processes
    (one line appended at a time), as is each file a worker creates (:func:`build._stage`)."""

    def __init__(self, log: Path) -> None:
        self.log = str(log)
        self.lock = build._writing_lock()
        assert self.lock is not None

    def line(self, what: str) -> None:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{what} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def acquire(self, timeout: float) -> bool:
        taken = self.lock.acquire(timeout=timeout)
        if taken:
            self.line("take")
        return taken

    def release(self) -> None:
        self.line("give")
        self.lock.release()


def test_the_workers_create_their_files_one_at_a_time(
    records: Site, expected: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes creating files in one folder at once contend for it inside the kernel:
    each worker creates a chunk's files while it alone holds the workers' lock."""
    lock = _LoggedLock(tmp_path / "log")
    real = build._stage

    def staging(
        tree: str, path: str, data: bytes, digest: str, second: str | None = None
    ) -> bytes | Staged:
        lock.line("file")
        return real(tree, path, data, digest, second)

    monkeypatch.setattr(build, "_writing_lock", lambda: lock)
    monkeypatch.setattr(build, "_stage", staging)
    made = parallel(records, expected)
    assert {path: made[path] for path in made} == expected
    holder = None
    files: dict[str, int] = {}
    for line in (tmp_path / "log").read_text().splitlines():
        what, pid = line.split()
        if what == "take":
            assert holder is None, line
            holder = pid
        elif what == "give":
            assert holder == pid, line
            holder = None
        else:
            assert holder == pid, line
            files[pid] = files.get(pid, 0) + 1
    assert holder is None
    assert len(files) == 2  # both workers created files
    assert sum(files.values()) == 2 * RECORDS


def test_a_lock_never_given_back_holds_a_worker_back_only_a_while(
    records: Site, expected: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when a worker died holding it: the others create their files anyway."""
    lock = build._writing_lock()
    assert lock is not None
    assert lock.acquire(timeout=1)
    monkeypatch.setattr(build, "_writing_lock", lambda: lock)
    monkeypatch.setattr(build, "WRITE_WAIT", 0.05)
    made = parallel(records, expected)
    assert {path: made[path] for path in made} == expected


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("changed_by_hand", [False, True])
def test_files_a_worker_makes_as_out_holds_them_are_not_staged(
    records: Site,
    expected: dict[str, bytes],
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    changed_by_hand: bool,
) -> None:
    """After a change of the site's title, which changes every page but no event's calendar
    file, the workers create the pages only: each calendar file they make with the bytes the
    previous manifest names is taken from out/, whose file stays (the same inode). Should that
    file change under the build, it is made again, and out/ is still exact."""
    write_tree(out, parallel(records, expected), events_dir=None)
    previous = read_manifest(out)
    assert previous is not None
    retitled = dataclasses.replace(
        records, settings=records.settings.model_copy(update={"title": "Another title"})
    )
    wanted = compile_site(retitled, None, NOW, as_of=AS_OF, jobs=1)
    calendars = {path for path in wanted if path.startswith("events/") and ".ics" in path}
    pages = {path for path in wanted if path.startswith("events/") and ".html" in path}
    assert len(calendars) == len(pages) == RECORDS
    assert all(wanted[path] == expected[path] for path in calendars)
    assert all(wanted[path] != expected[path] for path in pages)
    inodes = {path: os.lstat(out / path).st_ino for path in calendars}

    made = compile_site(retitled, previous, NOW, as_of=AS_OF, jobs=2, previous_out=out)
    staged = {path for path in made if made.staged(path) is not None}
    assert {path for path in staged if path.startswith("events/")} == pages
    assert staged - pages <= whole_staged(wanted)  # what the whole steps made again
    assert made.staging is not None
    assert {
        p.relative_to(made.staging).as_posix() for p in Path(made.staging).rglob("*.*")
    } == staged
    assert all(made.digest(path) == _digest(wanted[path]) for path in calendars)
    hand = "events/event-000003.ics"
    if changed_by_hand:
        (out / hand).write_bytes(b"changed by hand")
    write_tree(out, made, events_dir=None)
    assert snapshot(out) == {path: wanted[path] for path in wanted}
    kept = {path for path in calendars if os.lstat(out / path).st_ino == inodes[path]}
    assert kept == (calendars - {hand} if changed_by_hand else calendars)


def test_a_first_build_leaves_a_spare_for_the_next_linked_by_its_workers(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build into an out/ without a manifest takes the staging tree as out/, so it has no
    tree of the build before to keep: its workers link each file they stage into a second
    tree, the writer links the rest, and that tree is kept as the spare. The next build
    then writes only what it changes, instead of linking every file of out/ anew."""
    events = generate(tmp_path / "records", RECORDS)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(build, "PARALLEL_MIN_EVENTS", 10)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    args = ["build", "--events", str(events), "--out", str(out), "--as-of", str(AS_OF), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    first = snapshot(out)
    spare = spare_of(out)
    assert snapshot(spare) == first
    inodes = {path: os.lstat(out / path).st_ino for path in first}
    assert {path: os.lstat(spare / path).st_ino for path in first} == inodes

    record = next(iter(sorted(events.rglob("event-*.md"))))
    record.write_text(record.read_text(encoding="utf-8") + "\nEdited.\n", encoding="utf-8")
    links = counting(monkeypatch, "link")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(links) < 5  # (without the spare: one for each file of out/)
    second = snapshot(out)
    changed = {path for path in first if second.get(path) != first[path]}
    assert any(path.endswith(".html") for path in changed)  # the edited event's page
    assert len(changed) < 10
    # every other file is the very file the first build wrote, not a copy
    assert {path for path in first if os.lstat(out / path).st_ino != inodes[path]} == changed
    check = CliRunner().invoke(main, [*args, "--check"])
    assert check.exit_code == 0, check.output
