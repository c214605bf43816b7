"""What a build writes does not depend on the folder it is run from: the manifest names each
record by its path below the events folder, never as the working directory or the machine
sees it, while messages still show a record's path as the user would type it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import eventfeed

from .conftest import MINIMAL, Run, SiteDir
from .test_diff import MEETING, OLD_NEWS

NOW = ("--now", "2022-12-02T00:00:00", "--as-of", "2022-12-02")


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_the_same_records_give_the_same_bytes_from_any_folder(
    site: SiteDir, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.record("2023/task-force-meeting.md", MEETING)
    site.record("a.md", MINIMAL)
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    builds = {
        # from the folder above the records, as the README has it
        "above": (site.root, ["--events", "events", "--out", str(tmp_path / "a")]),
        # from inside the events folder
        "inside": (site.events, ["--events", ".", "--out", str(tmp_path / "b")]),
        # from an unrelated folder, with the records' absolute path
        "elsewhere": (elsewhere, ["--events", str(site.events), "--out", str(tmp_path / "c")]),
    }
    for where, args in builds.values():
        monkeypatch.chdir(where)
        assert run("build", *args, *NOW).exit_code == 0
    trees = [_tree(tmp_path / name) for name in ("a", "b", "c")]
    assert trees[0] == trees[1] == trees[2]
    manifest = json.loads(trees[0]["manifest.json"])
    sources = {key: state["source"] for key, state in manifest["events"].items()}
    assert sources == {"a": "a.md", "task-force-meeting": "2023/task-force-meeting.md"}
    assert str(tmp_path).encode() not in trees[2]["manifest.json"]


def test_a_vanished_event_is_shown_at_its_record_as_the_user_types_it(
    site: SiteDir, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.record("2023/old-news.md", OLD_NEWS)
    site.record("a.md", MINIMAL)
    assert run("build", *NOW).exit_code == 0
    (site.events / "2023" / "old-news.md").unlink()
    shown = {
        site.root: "events/2023/old-news.md",
        site.events: "2023/old-news.md",
    }
    for where, path in shown.items():
        monkeypatch.chdir(where)
        events, out = ("events", "out") if where == site.root else (".", "../out")
        checked = run("check", "--events", events, "--out", out)
        assert f"{path}: warning: event 'old-news' was published and has disappeared" in (
            checked.output
        ), checked.output
        diffed = run("diff", "--events", events, "--against", out)
        assert f"    was {path}\n" in diffed.stdout, diffed.stdout


#: what the code digest test runs in the copies of eventfeed
SHOW_DIGEST = "import eventfeed.cache as c; print(c.__file__, c._code_digest())"


def test_the_code_digest_does_not_name_where_the_code_is(tmp_path: Path) -> None:
    """The same eventfeed at two places (two checkouts, two virtual environments) is the same
    code: every key of the stores digests it, so a build after a move would compile every
    event again if the digest held the path of a file."""
    package = Path(eventfeed.__file__).parent
    digests = set()
    for place in ("one", "two/deeper"):
        copy = tmp_path / place / "eventfeed"
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
        shown = subprocess.run(
            [sys.executable, "-c", SHOW_DIGEST],
            env={**os.environ, "PYTHONPATH": str(copy.parent)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert shown[0] == str(copy / "cache.py")  # the copy is the code that ran
        digests.add(shown[1])
    assert len(digests) == 1


def test_the_environment_names_the_libraries_installed_not_their_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventfeed import cache

    seen = {}
    for folder, version in (("one", "1.0"), ("two/deeper", "1.0"), ("three", "1.1")):
        (tmp_path / folder / f"library-{version}.dist-info").mkdir(parents=True)
        monkeypatch.setattr(sys, "path", [str(tmp_path / folder)])
        seen[folder] = cache._environment()
    assert "library-1.0.dist-info" in seen["one"]
    assert seen["one"] == seen["two/deeper"]  # the same library elsewhere
    assert seen["three"] != seen["one"]  # another version of it
