"""Faults: out/ is all-old or all-new whatever happens while it is written.

Failures are injected at every step of the writer (each file written, each rename, each
chmod), the writer is SIGKILLed at seeded random moments, the disk fills up, the old build
cannot be removed, two builds race. Unsafe --out targets are refused without touching
anything, and nothing outside out/ is ever removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventfeed import write
from eventfeed.cli import main
from eventfeed.errors import OutputError
from eventfeed.write import write_tree

from .conftest import MINIMAL

SRC = Path(write.__file__).resolve().parents[1]


def manifest(tag: str) -> bytes:
    return json.dumps({"generator": "eventfeed", "format": 1, "tag": tag}).encode()


def artifacts(tag: str, files: int = 6) -> dict[str, bytes]:
    """A build: nested folders, a manifest, every file saying which build it belongs to."""
    result = {f"events/e{i:04d}.ics": f"{tag} {i}\n".encode() * 20 for i in range(files)}
    result["index.html"] = f"<p>{tag}</p>".encode()
    result["feeds/atom.xml"] = f"<feed>{tag}</feed>".encode()
    result["manifest.json"] = manifest(tag)
    return result


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def everything(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


OLD, NEW = artifacts("old"), artifacts("new")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    target = tmp_path / "site" / "out"
    target.parent.mkdir()
    write_tree(target, OLD, events_dir=None)
    assert snapshot(target) == OLD
    return target


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


# --- a failure at every step ------------------------------------------------------------


class Injected(BaseException):
    """Stands for the process dying at this step (BaseException: no handler may swallow it)."""


STEPS = [
    ("pathlib.Path.write_bytes", None),
    ("os.rename", None),
    ("os.chmod", None),
    ("eventfeed.write._exchange", None),
]


def count_steps(monkeypatch: pytest.MonkeyPatch, out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for target, _ in STEPS:
        original = _resolve(target)

        def counting(*args: Any, _t: str = target, _o: Callable[..., Any] = original) -> Any:
            counts[_t] = counts.get(_t, 0) + 1
            return _o(*args)

        monkeypatch.setattr(target, counting)
    write_tree(out, NEW, events_dir=None)
    monkeypatch.undo()
    write_tree(out, OLD, events_dir=None)
    return counts


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.rpartition(".")
    if module_name == "pathlib.Path":
        import pathlib

        return getattr(pathlib.Path, attr)  # type: ignore[no-any-return]
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)  # type: ignore[no-any-return]


FAILURES: list[Callable[[], BaseException]] = [
    lambda: Injected(),
    lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    lambda: KeyboardInterrupt(),
]


def test_failure_at_every_step_leaves_out_all_old_or_all_new(
    monkeypatch: pytest.MonkeyPatch, out: Path
) -> None:
    counts = count_steps(monkeypatch, out)
    assert counts["pathlib.Path.write_bytes"] == len(NEW)
    scenarios = 0
    for target, steps in counts.items():
        for step in range(1, steps + 1):
            for make_failure in FAILURES:
                original = _resolve(target)
                calls = {"n": 0}

                def failing(
                    *args: Any,
                    _o: Callable[..., Any] = original,
                    _step: int = step,
                    _make: Callable[[], BaseException] = make_failure,
                    _calls: dict[str, int] = calls,
                ) -> Any:
                    _calls["n"] += 1
                    if _calls["n"] == _step:
                        raise _make()
                    return _o(*args)

                monkeypatch.setattr(target, failing)
                failure = make_failure()
                expected: type[BaseException] = (
                    OutputError if isinstance(failure, OSError) else type(failure)
                )
                with pytest.raises(expected):
                    write_tree(out, NEW, events_dir=None)
                monkeypatch.undo()
                assert snapshot(out) == OLD, (target, step, failure)
                scenarios += 1
                # the next build repairs whatever the dead one left, and nothing remains
                write_tree(out, NEW, events_dir=None)
                assert snapshot(out) == NEW
                assert leftovers(out) == []
                write_tree(out, OLD, events_dir=None)
    assert scenarios >= len(FAILURES) * (len(NEW) + 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_on_linux_the_new_build_is_swapped_in_at_once(
    monkeypatch: pytest.MonkeyPatch, out: Path
) -> None:
    """The C library's renameat2 is found without naming the library (no ``ldconfig`` run),
    and replacing a build exchanges the two folders in one step."""
    assert write._renameat2() is not None
    swapped: list[bool] = []
    real = write._exchange

    def watching(a: Path, b: Path) -> bool:
        swapped.append(real(a, b))
        return swapped[-1]

    monkeypatch.setattr(write, "_exchange", watching)
    monkeypatch.setattr(subprocess, "Popen", None)  # nothing may run a program to find it
    write_tree(out, NEW, events_dir=None)
    assert snapshot(out) == NEW
    assert swapped == [True]
    assert leftovers(out) == []


def test_killed_between_the_two_renames_is_repaired(
    monkeypatch: pytest.MonkeyPatch, out: Path
) -> None:
    """Where the atomic exchange is missing: out/ moved aside, new one not yet in place."""
    monkeypatch.setattr(write, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def die_on_second(src: Any, dst: Any) -> None:
        if Path(src).name.startswith(".out.tmp-"):
            raise Injected
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", die_on_second)
    with pytest.raises(Injected):
        write_tree(out, NEW, events_dir=None)
    monkeypatch.setattr(os, "rename", real_rename)
    assert not out.exists()  # the moment of a non-atomic swap
    write_tree(out, NEW, events_dir=None)
    assert snapshot(out) == NEW
    assert leftovers(out) == []


# --- SIGKILL at seeded random moments ---------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from eventfeed.write import write_tree
    tag, files = sys.argv[2], 800
    data = {f"events/e{i:04d}.ics": f"{tag} {i}\\n".encode() * 20 for i in range(files)}
    data["manifest.json"] = ('{"generator": "eventfeed", "tag": "%s"}' % tag).encode()
    print("ready", flush=True)
    write_tree(Path(sys.argv[1]), data, events_dir=None)
    """
)


def spawn_writer(out: Path, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), tag, str(SRC)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


def tags_of(out: Path) -> set[str]:
    """Which builds the files of out/ come from (one tag means consistent)."""
    found = set()
    for name, data in snapshot(out).items():
        if name == "manifest.json":
            found.add(json.loads(data)["tag"])
        else:
            found.add(data.split(b" ")[0].decode())
    return found


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = spawn_writer(out, "b0")
    assert first.stdout is not None
    assert first.stdout.readline() == "ready\n"
    started = time.perf_counter()
    finish(first)
    duration = time.perf_counter() - started  # how long writing takes here
    rng = random.Random(8)
    completed = killed = 0
    for attempt in range(1, 7):
        tag = f"b{attempt}"
        before = tags_of(out)
        process = spawn_writer(out, tag)
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, duration * 1.3))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        code = process.returncode
        killed += code == -signal.SIGKILL
        completed += code == 0
        after = tags_of(out)
        assert after in (before, {tag}), (attempt, after)
        assert len(snapshot(out)) == 801
    assert killed >= 1  # the seeded delays really interrupt some writes
    finish(spawn_writer(out, "last"))
    assert tags_of(out) == {"last"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- disk full, read-only ---------------------------------------------------------------


def test_disk_full_leaves_out_untouched_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, out: Path
) -> None:
    import pathlib

    real = pathlib.Path.write_bytes
    written: list[str] = []

    def full(self: Path, data: Any) -> int:
        if len(written) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        written.append(self.name)
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(OutputError) as caught:
        write_tree(out, NEW, events_dir=None)
    message = str(caught.value)
    assert message.startswith(f"cannot write the build to {out} (No space left on device at ")
    assert message.endswith(f"{out} was left as it was")
    assert snapshot(out) == OLD
    assert leftovers(out) == []


def test_old_build_that_cannot_be_removed_does_not_fail_the_new_one(
    monkeypatch: pytest.MonkeyPatch, out: Path
) -> None:
    """A read-only file or folder in the old out/: the swap succeeded, so the build did."""

    def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("ignore_errors"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", refuse)
    write_tree(out, NEW, events_dir=None)
    monkeypatch.undo()
    assert snapshot(out) == NEW
    write_tree(out, OLD, events_dir=None)  # the leftover is cleared by the next build
    assert leftovers(out) == []


def interpreter_for(user: pwd.struct_passwd | None) -> str | None:
    """A Python 3.11+ the user may run; the writer needs nothing beyond the standard library."""
    candidates = [sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    for python in dict.fromkeys(c for c in candidates if c):
        try:
            probe = run_as(user, "import sys; assert sys.version_info >= (3, 11)", python=python)
        except OSError:
            continue
        if probe.returncode == 0:
            return python
    return None


def _nobody() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("nobody")
    except KeyError:  # pragma: no cover
        return None


def run_as(
    user: pwd.struct_passwd | None, code: str, *args: str, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    def demote() -> None:
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    return subprocess.run(
        [python, "-c", code, *args],
        capture_output=True,
        text=True,
        preexec_fn=demote,
        timeout=60,
        check=False,
    )


READ_ONLY_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from eventfeed.errors import OutputError
    from eventfeed.write import write_tree
    data = {"index.html": b"new", "sub/page.html": b"new",
            "manifest.json": b'{"generator": "eventfeed", "tag": "new"}'}
    try:
        write_tree(Path(sys.argv[1]), data, events_dir=None)
    except OutputError as exc:
        print(exc)
        sys.exit(1)
    """
)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user can enter (pytest's own tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="eventfeed-faults-"))
    os.chmod(folder, 0o777)
    try:
        yield folder
    finally:
        for dirpath, _dirs, _files in os.walk(folder):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize("what", ["file", "folder", "parent"])
def test_read_only_output_as_an_unprivileged_user(shared_dir: Path, what: str) -> None:
    """chmod does not stop root, so when root runs the tests the writer runs as 'nobody'."""
    user = _nobody()
    if os.geteuid() == 0 and user is None:  # pragma: no cover
        pytest.fail("running as root without a 'nobody' user: read-only cannot be tested")
    python = interpreter_for(user)
    if python is None:  # pragma: no cover
        if os.environ.get("CI"):
            pytest.fail("no Python 3.11+ that an unprivileged user may run")
        pytest.skip("no Python 3.11+ that an unprivileged user may run")
    site = shared_dir / "site"
    site.mkdir()
    out = site / "out"
    (out / "sub").mkdir(parents=True)
    (out / "index.html").write_bytes(b"old")
    (out / "sub" / "page.html").write_bytes(b"old")
    (out / "manifest.json").write_bytes(b'{"generator": "eventfeed", "tag": "old"}')
    if user is not None:
        for path in [site, *site.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
    before = snapshot(out)
    if what == "file":
        os.chmod(out / "sub" / "page.html", 0o444)
    elif what == "folder":
        os.chmod(out / "sub", 0o555)
        os.chmod(out, 0o555)
    else:
        os.chmod(site, 0o555)
    result = run_as(user, READ_ONLY_WRITER, str(out), str(SRC), python=python)
    assert "Traceback" not in result.stderr, result.stderr
    after = snapshot(out)
    if what == "parent":
        # nowhere to put the new build: refused, and out/ is exactly as it was
        assert result.returncode == 1
        assert result.stdout.startswith(f"cannot write the build to {out} (Permission denied")
        assert after == before
    else:
        # the old build is swapped out whole; its read-only remains do not fail the build
        assert result.returncode == 0, result.stdout + result.stderr
        assert set(after.values()) == {b"new", b'{"generator": "eventfeed", "tag": "new"}'}
        assert len(after) == 3


# --- refused targets, nothing deleted outside out/ ----------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from .conftest import SITE_YAML

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "site.yaml").write_text(SITE_YAML, encoding="utf-8")
    (tmp_path / "events" / "one.md").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "manifest.json").write_text('{"name": "a web app"}')
    (tmp_path / "file").write_text("a file")
    (tmp_path / "link").symlink_to(tmp_path / "other")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


REFUSED = {
    "events": "refusing to use events as the output folder: it overlaps the events folder events",
    "events/sub": "refusing to use events/sub as the output folder: it overlaps the events folder",
    ".": "refusing to use . as the output folder: it is a git repository",
    "home": "refusing to use home as the output folder: it is a root or home folder",
    "/": "refusing to use / as the output folder: it is a root or home folder",
    "other": "refusing to replace other: it is not empty and was not made by eventfeed",
    "webapp": "refusing to replace webapp: it is not empty and was not made by eventfeed",
    "link": "refusing to replace link: it is a symbolic link",
}


@pytest.mark.parametrize("target", sorted(REFUSED))
def test_unsafe_out_is_refused_and_nothing_changes(repo: Path, target: str) -> None:
    before = {p: snapshot(repo / p) for p in ("events", "home", "other", "webapp")}
    listing = everything(repo)
    result = invoke("build", "--out", target)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {REFUSED[target]}"), result.stderr
    assert "Traceback" not in result.stderr
    assert everything(repo) == listing
    assert {p: snapshot(repo / p) for p in before} == before


def test_out_that_is_a_file_is_a_usage_error(repo: Path) -> None:
    result = invoke("build", "--out", "file")
    assert result.exit_code == 2
    assert "Invalid value for '--out': Directory 'file' is a file." in result.stderr
    assert (repo / "file").read_text() == "a file"


def test_build_never_deletes_outside_out(repo: Path) -> None:
    outside = repo / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    assert invoke("build").exit_code == 0
    # things beside out/ whose names look like ours, and a link inside out/ to the outside
    (repo / ".out.tmp-notes").write_text("a file, not a folder of ours")
    (repo / ".out.old-link").symlink_to(outside, target_is_directory=True)
    (repo / "out-backup").mkdir()
    (repo / "out-backup" / "keep.txt").write_text("keep")
    (repo / "out" / "escape").symlink_to(outside, target_is_directory=True)
    before = everything(repo) - {p for p in everything(repo) if p.startswith("out/")}
    assert invoke("build").exit_code == 0
    after = everything(repo) - {p for p in everything(repo) if p.startswith("out/")}
    assert after == before
    assert (outside / "precious.txt").read_text() == "keep"
    assert not (repo / "out" / "escape").exists()  # out/ is exactly the new build


# --- two builds at once -----------------------------------------------------------------


def test_build_refuses_while_another_holds_the_lock(repo: Path) -> None:
    assert invoke("build").exit_code == 0
    before = snapshot(repo / "out")
    fd = os.open(repo, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (repo / "events" / "one.md").write_text(MINIMAL.replace("Body.", "Edited."))
        result = invoke("build")
    finally:
        os.close(fd)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: another eventfeed build is writing {repo / 'out'}; try again when it ends\n"
    )
    assert snapshot(repo / "out") == before


def test_two_builds_at_once_never_mix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    finish(spawn_writer(out, "b0"))
    for round_ in range(3):
        tags = (f"x{round_}", f"y{round_}")
        processes = [spawn_writer(out, tag) for tag in tags]
        results = []
        for process in processes:
            _, stderr = process.communicate(timeout=60)
            results.append((process.returncode, stderr))
        for code, stderr in results:
            # either it wrote, or it was refused by the lock with a clear message
            assert code == 0 or "another eventfeed build is writing" in stderr, stderr
        assert tags_of(out) in ({tags[0]}, {tags[1]}) or any(code for code, _ in results)
        assert len(tags_of(out)) == 1
        assert len(snapshot(out)) == 801
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- a damaged manifest in out/ ---------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        b"[" * 100_000,
        b'{"generator": "eventfeed", "format": 1, "as_of": "2023-01-01", "files": {},'
        b' "events": {"one": {"sequence": 1e999}}}',
    ],
    ids=["deeply-nested", "infinite-sequence"],
)
def test_damaged_manifest_is_reported_without_traceback(repo: Path, damage: bytes) -> None:
    assert invoke("build").exit_code == 0
    (repo / "out" / "manifest.json").write_bytes(damage)
    checked = invoke("build", "--check")
    assert checked.exit_code == 1
    assert checked.stderr.startswith(
        "error: out/manifest.json: the previous build's manifest is damaged ("
    ), checked.stderr
    assert invoke("check").exit_code == 0  # check still reports on the records
