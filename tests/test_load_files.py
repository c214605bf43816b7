"""Which files the loader reads, in which order, and how it names them in messages.

The loader lists each folder once and builds every record's shown name from the events
folder's; these tests hold it to what ``os.walk``, ``sorted`` on paths and ``display_path``
say for the same tree, with the events folder given relative, absolute, as ``.`` and from
outside the working directory.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path

import pytest

from eventfeed import load
from eventfeed.errors import Problem

from .gc_support import tracked

NAMES = [
    "a.md",
    "a-b.md",
    "b.md",
    "README.md",
    "notes.txt",
    ".hidden.md",
    "_draft.md",
    "x.y.md",
    "a/b.md",
    "a/z/c.md",
    "a-c/d.md",
    "a-c/_e.md",
    "_drafts/f.md",
    ".git/g.md",
    "Z/h.md",
    "dir.md/i.md",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    events = tmp_path / "work" / "events"
    for name in NAMES:
        (events / name).parent.mkdir(parents=True, exist_ok=True)
        (events / name).write_text("---\n---\n", encoding="utf-8")
    return events


def walked(root: Path) -> list[Path]:
    """The record files as a plain os.walk finds them (no links in this tree)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        for name in filenames:
            if name.endswith(".md") and name != "README.md" and not name.startswith((".", "_")):
                found.append(Path(dirpath) / name)
    return sorted(found)


@pytest.mark.parametrize("where", ["inside", "root", "above", "outside", "absolute"])
def test_files_are_sorted_by_path_and_shown_as_display_path(tree: Path, where: str) -> None:
    cwd, root = {
        "inside": (tree.parent, Path("events")),
        "root": (tree, Path(".")),
        "above": (tree.parent.parent, Path("work/events")),
        "outside": (tree.parent.parent / "elsewhere", Path("../work/events")),
        "absolute": (tree.parent.parent / "elsewhere", tree),
    }[where]
    cwd.mkdir(exist_ok=True)
    with contextlib.chdir(cwd):
        problems: list[Problem] = []
        files = load._record_files_shown(root, problems)
        expected = walked(root)
        assert [path for path, _ in files] == expected
        assert [shown for _, shown in files] == [load.display_path(p) for p in expected]
    assert problems == []
    assert [shown for _, shown in files][:3] == {
        "inside": ["events/Z/h.md", "events/a/b.md", "events/a/z/c.md"],
        "root": ["Z/h.md", "a/b.md", "a/z/c.md"],
        "above": ["work/events/Z/h.md", "work/events/a/b.md", "work/events/a/z/c.md"],
        "outside": ["../work/events/Z/h.md", "../work/events/a/b.md", "../work/events/a/z/c.md"],
        "absolute": [f"{tree.as_posix()}/{n}" for n in ("Z/h.md", "a/b.md", "a/z/c.md")],
    }[where]


@pytest.mark.skipif(os.name != "posix", reason="symbolic links and FIFOs need POSIX")
def test_links_and_special_files_are_reported_in_walk_order(tree: Path) -> None:
    (tree / "a" / "link.md").symlink_to(tree / "b.md")
    (tree / "a" / "out.md").symlink_to(tree.parent / "secret.md")
    (tree.parent / "secret.md").write_text("---\n---\n", encoding="utf-8")
    (tree / "a" / "linked-folder").symlink_to(tree / "a-c", target_is_directory=True)
    (tree / "b-dangling.md").symlink_to(tree / "missing")
    os.mkfifo(tree / "a-c" / "pipe.md")
    with contextlib.chdir(tree.parent):
        problems: list[Problem] = []
        files = load._record_files_shown(Path("events"), problems)
    assert [(p.path, p.message) for p in problems] == [
        ("events/b-dangling.md", "symbolic link leads nowhere (dangling or a loop)"),
        ("events/a/linked-folder", "symbolic links to folders are not followed"),
        ("events/a/out.md", "symbolic link points outside the events folder"),
        ("events/a-c/pipe.md", "not a regular file"),
    ]
    assert "events/a/link.md" in [shown for _, shown in files]


def test_a_record_read_on_its_own(tree: Path) -> None:
    (tree / "a.md").write_text(
        "\n---\ntitle: A\nkind: meeting\nstart: 2022-12-07\n---\n\nBody.\n", encoding="utf-8"
    )
    parsed = load.read_record(tree / "a.md", "events/a.md")
    assert isinstance(parsed, load.RecordFile)
    assert (parsed.id, parsed.source, parsed.body, parsed.first_line) == (
        "a",
        "events/a.md",
        "Body.\n",
        2,
    )
    assert parsed.lines == {("title",): 3, ("kind",): 4, ("start",): 5}
    (tree / "b.md").write_text("---\ntitle: B\nkind: meeting\n---\n", encoding="utf-8")
    assert load.read_record(tree / "b.md", "events/b.md") == [
        Problem(
            "events/b.md", 1, "start", "required field is missing", "add it to the front matter"
        )
    ]


@pytest.mark.parametrize("size", [0, 1, 100, 1000])
def test_reading_stops_one_byte_past_the_limit(tmp_path: Path, size: int) -> None:
    path = tmp_path / "r.md"
    path.write_bytes(b"x" * size)
    if size <= 100:
        assert load._read(path, limit=100) == b"x" * size
    else:
        with pytest.raises(load.FrontMatterError) as raised:
            load._read(path, limit=100)
        assert raised.value.message == f"file is {size:,} bytes, over the limit of 100"


@pytest.mark.parametrize(("size", "limit"), [(200_000, 1_000_000), (200_000, 150_000)])
def test_a_file_that_grew_since_it_was_measured_is_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, limit: int
) -> None:
    path = tmp_path / "r.md"
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    measured = os.fstat

    class Small:
        st_size = 10

    monkeypatch.setattr(os, "fstat", lambda fd: Small() if fd > 2 else measured(fd))
    if size <= limit:
        assert load._read(path, limit=limit) == path.read_bytes()
    else:
        with pytest.raises(load.FrontMatterError) as raised:
            load._read(path, limit=limit)
        assert raised.value.message == f"file is {size:,} bytes, over the limit of {limit:,}"


@pytest.mark.parametrize("frozen", [False, True])
def test_what_is_made_with_the_collector_paused_is_not_left_young(frozen: bool) -> None:
    """What a pause made goes to the oldest generation at once; when something is frozen
    already (a build keeps its loaded site from the collector), it is frozen with it, and
    given back with it. Either way, the collector resuming does not walk it all as young."""
    was = gc.isenabled()
    gc.enable()
    try:
        if frozen:
            gc.freeze()
        before = gc.get_freeze_count()
        with load.collector_paused():
            made = [[n] for n in range(20_000)]
        added = gc.get_freeze_count() - before
        young = tracked((0, 1))
        everywhere = tracked()
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()
    ids = {id(item) for item in made}
    assert not ids & young
    if frozen:
        assert added >= len(made)
        assert not ids & everywhere
    else:
        assert added == 0
        assert ids <= everywhere
    assert gc.get_freeze_count() == 0  # given back, with what froze it first
    assert {id(made[0])} <= tracked()


@pytest.mark.parametrize("enabled", [True, False])
def test_loading_leaves_the_cycle_collector_as_it_found_it(tree: Path, enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        load.load(tree)
        assert gc.isenabled() is enabled
        inside = []

        def interrupted() -> None:
            with load.collector_paused():
                inside.append(gc.isenabled())
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            interrupted()
        assert inside == [False]
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
