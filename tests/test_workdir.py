"""What a build writes does not depend on the folder it is run from: the manifest names each
record by its path below the events folder, never as the working directory or the machine
sees it, while messages still show a record's path as the user would type it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
