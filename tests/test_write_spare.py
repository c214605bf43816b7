"""A rebuild is written into the tree of the build before the last (the spare), kept in the
cache folder: only what changed since that build is written, and the result is exactly the
build, whatever the spare holds and wherever the writer is stopped."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventfeed import write
from eventfeed.write import write_tree

from .test_faults import snapshot

pytestmark = pytest.mark.skipif(write._renameat2() is None, reason="needs the atomic exchange")


def site(tag: str, changed: dict[str, str] | None = None) -> dict[str, bytes]:
    """A build whose manifest names its files' digests, as eventfeed's does."""
    files = {f"events/e{i}.ics": f"event {i}\n".encode() * 10 for i in range(6)}
    files["index.html"] = b"<p>index</p>"
    files["feeds/atom.xml"] = b"<feed/>"
    for path, text in (changed or {}).items():
        if text == "":
            del files[path]
        else:
            files[path] = text.encode()
    digests = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
    manifest = {"generator": "eventfeed", "format": 1, "tag": tag, "files": digests}
    return {**files, "manifest.json": json.dumps(manifest).encode()}


def folders(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_dir()}


def spare_of(out: Path) -> Path:
    spares = list((out.parent.parent / "cache" / "trees").iterdir())
    assert len(spares) == 1
    return spares[0]


def counting(monkeypatch: pytest.MonkeyPatch, name: str, owner: Any = os) -> list[Any]:
    """The arguments of every call of ``owner.name`` from now on (``os`` by default)."""
    calls: list[Any] = []
    original: Callable[..., Any] = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def test_a_rebuild_writes_only_what_changed_since_the_build_before_the_last(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = site("1")
    write_tree(out, first, events_dir=None)
    first_tree = os.lstat(out).st_ino
    second = site("2", {"events/e1.ics": "edited 1\n"})
    write_tree(out, second, events_dir=None)
    assert snapshot(out) == second
    assert snapshot(spare_of(out)) == first  # the tree the second build replaced
    third = site(
        "3",
        {"events/e1.ics": "edited 1\n", "events/e2.ics": "edited 2\n", "feeds/atom.xml": ""},
    )
    third["new/folder/file.txt"] = b"added"
    links, unlinks = counting(monkeypatch, "link"), counting(monkeypatch, "unlink")
    write_tree(out, third, events_dir=None)
    assert snapshot(out) == third
    assert "feeds" not in folders(out)  # emptied by the removal of its only file
    assert os.lstat(out).st_ino == first_tree  # the first tree, brought up to date
    # e1 changed in the second build: linked from it; e2 and the manifest are new: written
    # (their old files removed first, as is the removed feed); the rest is not touched
    assert [Path(a[1]).name for a in links] == ["e1.ics"]
    assert sorted(Path(a[0]).name for a in unlinks) == [
        "atom.xml",
        "e1.ics",
        "e2.ics",
        "manifest.json",
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # nothing left beside it
    assert snapshot(spare_of(out)) == second


def test_whatever_the_spare_holds_the_build_is_exact(out: Path, tmp_path: Path) -> None:
    write_tree(out, site("1"), events_dir=None)
    write_tree(out, site("2", {"events/e1.ics": "edited\n"}), events_dir=None)
    spare = spare_of(out)
    (spare / "stray.txt").write_bytes(b"not of any build")
    (spare / "events" / "e3.ics").unlink()  # a file of out/ it no longer shares
    (spare / "events" / "e3.ics").write_bytes(b"same name, other bytes")
    (spare / "index.html").unlink()
    (spare / "index.html").mkdir()  # a folder where a file must go
    third = site("3", {"events/e4.ics": "edited\n"})
    write_tree(out, third, events_dir=None)
    assert snapshot(out) == third
    assert folders(out) == {"events", "feeds"}


def test_a_link_in_the_spare_is_never_followed(out: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "e0.ics").write_bytes(b"keep me")
    write_tree(out, site("1"), events_dir=None)
    write_tree(out, site("2", {"events/e1.ics": "edited\n"}), events_dir=None)
    spare = spare_of(out)
    for name in os.listdir(spare / "events"):
        (spare / "events" / name).unlink()
    (spare / "events").rmdir()
    (spare / "events").symlink_to(elsewhere)
    third = site("3", {"events/e0.ics": "edited\n"})
    write_tree(out, third, events_dir=None)
    assert snapshot(out) == third
    assert snapshot(elsewhere) == {"e0.ics": b"keep me"}


def test_a_file_edited_by_hand_in_out_is_not_kept_through_the_spare(out: Path) -> None:
    """The spare's unchanged files are out/'s own (hard links): an edit made in out/ shows in
    both, and the next build must write the file again, not keep it."""
    write_tree(out, site("1"), events_dir=None)
    write_tree(out, site("2", {"events/e1.ics": "edited\n"}), events_dir=None)
    target = out / "events" / "e0.ics"
    original = target.read_bytes()
    target.write_bytes(original.upper())  # same size, in place
    third = site("3", {"events/e1.ics": "edited again\n"})
    write_tree(out, third, events_dir=None)
    assert snapshot(out) == third
    assert (out / "events" / "e0.ics").read_bytes() == original


class Injected(BaseException):
    """Stands for the process dying at this step."""


def stopping_at(monkeypatch: pytest.MonkeyPatch, name: str, step: int, owner: Any = os) -> None:
    """From now on, the ``step``-th call of ``owner.name`` (counted from 1) raises
    :class:`Injected` instead of running."""
    original: Callable[..., Any] = getattr(owner, name)
    seen = [0]

    def failing(*args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] == step:
            raise Injected
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


@pytest.mark.parametrize("name", ["unlink", "link", "rmdir", "scandir"])
def test_stopped_at_any_step_out_is_the_old_build_and_the_next_is_exact(
    out: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    a = site("a")
    c = site("c", {"events/e2.ics": "c\n"})
    b = site("b", {"events/e1.ics": "b\n", "events/e2.ics": "c\n", "feeds/atom.xml": ""})
    cache = os.environ["EVENTFEED_CACHE_DIR"]

    def start() -> None:  # out/ holds c, the spare a; b keeps, links, writes and removes
        write_tree(out, a, events_dir=None)
        write_tree(out, c, events_dir=None)

    start()
    calls = counting(monkeypatch, name)
    write_tree(out, b, events_dir=None)
    monkeypatch.undo()
    assert calls
    for step in range(1, len(calls) + 1):
        monkeypatch.setenv("EVENTFEED_CACHE_DIR", cache)
        start()
        stopping_at(monkeypatch, name, step)
        with pytest.raises(Injected):
            write_tree(out, b, events_dir=None)
        monkeypatch.undo()
        assert snapshot(out) == c, step
        monkeypatch.setenv("EVENTFEED_CACHE_DIR", cache)
        write_tree(out, b, events_dir=None)  # from whatever the stopped build left
        assert snapshot(out) == b, step
        assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
