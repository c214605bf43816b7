"""The writer: the only code that writes into the output folder.

A build is written into a fresh temporary folder beside ``out/`` and then swapped into place, so
readers of ``out/`` (a web server, git, a person) see either the whole old build or the whole
new one. On Linux the swap is one atomic ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames,
and a build that was killed between them is repaired by the next one. A lock on the parent
folder keeps two builds from writing at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import posixpath
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import OutputError
from .paths import MANIFEST

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$|^\.nojekyll$|^_headers$")
_WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def check_artifact_path(path: str) -> None:
    """Refuse any path that could leave out/ or misbehave on another file system."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(
            p in ("", ".", "..") or not _SAFE_PART.match(p) or _WINDOWS_DEVICES.match(p)
            for p in parts
        )
    ):
        raise OutputError(f"refusing to write unsafe output path {path!r}")


def check_target(out_dir: Path, *, events_dir: Path | None) -> None:
    """Refuse an output folder that is not ours to replace."""
    out = out_dir.resolve()
    if out == Path(out.anchor) or out == Path.home().resolve():
        raise OutputError(
            f"refusing to use {out_dir} as the output folder: it is a root or home folder"
        )
    if (out / ".git").exists():
        raise OutputError(f"refusing to use {out_dir} as the output folder: it is a git repository")
    if events_dir is not None:
        events = events_dir.resolve()
        if out == events or events.is_relative_to(out) or out.is_relative_to(events):
            raise OutputError(
                f"refusing to use {out_dir} as the output folder: it overlaps the events folder "
                f"{events_dir}"
            )
    if out.is_symlink() or out_dir.is_symlink():
        raise OutputError(f"refusing to replace {out_dir}: it is a symbolic link")
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"refusing to replace {out_dir}: it is a file, not a folder")
        if any(out.iterdir()) and not _made_by_eventfeed(out / MANIFEST):
            raise OutputError(
                f"refusing to replace {out_dir}: it is not empty and was not made by eventfeed "
                f"(no eventfeed {MANIFEST}); choose another --out or empty it yourself"
            )


def _made_by_eventfeed(manifest: Path) -> bool:
    """True when ``manifest`` is a regular file that eventfeed wrote (another tool's
    ``manifest.json`` does not make a folder ours to delete)."""
    try:
        if manifest.is_symlink() or not manifest.is_file():
            return False
        data = json.loads(manifest.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("generator") == "eventfeed"


@contextlib.contextmanager
def build_lock(parent: Path, name: str) -> Iterator[None]:
    """An exclusive lock on the parent folder, so two builds of one out/ never interleave."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on the atomic renames alone
        yield
        return
    fd = os.open(parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"another eventfeed build is writing {parent / name}; try again when it ends"
            ) from None
        yield
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two folders (Linux renameat2); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV):
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True


def _discard(folder: Path) -> None:
    """Remove a folder of ours, best effort: a read-only leftover must not fail a build."""
    shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        return
    for dirpath, _dirnames, _filenames in os.walk(folder):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _recover(out: Path) -> None:
    """Finish or undo what a killed build left: stale temporaries, a half-done swap."""
    parent = out.parent
    olds = sorted(parent.glob(f".{out.name}.old-*"))
    if not out.exists() and olds:
        os.rename(olds[-1], out)
        olds = olds[:-1]
    for leftover in [*olds, *parent.glob(f".{out.name}.tmp-*")]:
        if leftover.is_dir() and not leftover.is_symlink():
            _discard(leftover)


def _read_manifest(out: Path) -> bytes | None:
    try:
        return (out / MANIFEST).read_bytes()
    except OSError:
        return None


def _manifest_files(data: bytes | None) -> dict[str, str] | None:
    """The ``files`` digests of an eventfeed manifest; None when there are none to trust."""
    if data is None:
        return None
    try:
        files = json.loads(data).get("files")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    return files


def _unchanged(out: Path, artifacts: Mapping[str, bytes]) -> bool:
    """True when out/ holds exactly these paths, as regular files of these sizes, and the
    same manifest (whose digests, compared by the caller, name the content)."""
    if _read_manifest(out) != artifacts.get(MANIFEST):
        return False
    folders: set[str] = set()
    for key in artifacts:
        parent = posixpath.dirname(key)
        while parent and parent not in folders:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    found = 0
    for dirpath, dirnames, filenames in os.walk(out):
        for name in dirnames:  # a link, or a folder no artifact needs, is not ours
            path = Path(dirpath, name)
            if path.is_symlink() or path.relative_to(out).as_posix() not in folders:
                return False
        for name in filenames:
            path = Path(dirpath, name)
            key = path.relative_to(out).as_posix()
            try:
                info = path.lstat()
            except OSError:
                return False
            if key not in artifacts or not stat.S_ISREG(info.st_mode):
                return False
            if info.st_size != _size(artifacts, key):
                return False
            found += 1
    return found == len(artifacts)


def _size(artifacts: Mapping[str, bytes], path: str) -> int:
    """A file's size, without reading a file the build took from the previous one."""
    size = getattr(artifacts, "size", None)
    return int(size(path)) if size is not None else len(artifacts[path])


def _link(out: Path, path: str, target: Path, size: int) -> bool:
    """Hard-link an unchanged file of the previous build into the new tree; False when the
    file is not there as it should be, or the file system cannot link (then it is written).

    The previous tree is only ever renamed and then removed as a whole, so the shared file
    keeps its bytes: linking instead of writing saves the data copy of every unchanged file.
    """
    source = out.joinpath(*path.split("/"))
    try:
        info = source.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            return False
        os.link(source, target, follow_symlinks=False)
    except OSError:
        return False
    return True


def write_tree(out_dir: Path, artifacts: Mapping[str, bytes], *, events_dir: Path | None) -> None:
    """Replace ``out_dir`` with exactly ``artifacts``, all at once, or leave it untouched."""
    for path in artifacts:
        check_artifact_path(path)
    check_target(out_dir, events_dir=events_dir)
    out = out_dir.resolve()
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with build_lock(parent, out.name):
            _recover(out)
            new_files = _manifest_files(artifacts.get(MANIFEST))
            old_files = _manifest_files(_read_manifest(out)) if new_files is not None else None
            if old_files == new_files and _unchanged(out, artifacts):
                return  # the same bytes are already in place: nothing to swap
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
            try:
                made: set[Path] = set()
                for path in sorted(artifacts):
                    target = tmp.joinpath(*path.split("/"))
                    if target.parent not in made:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        made.add(target.parent)
                    same = (
                        old_files is not None
                        and new_files is not None
                        and path in new_files
                        and old_files.get(path) == new_files[path]
                    )
                    if not (same and _link(out, path, target, _size(artifacts, path))):
                        target.write_bytes(artifacts[path])
                os.chmod(tmp, 0o755)
                if not out.exists():
                    os.rename(tmp, out)
                    return
                if _exchange(tmp, out):
                    old = tmp  # now holds the old build
                else:
                    old = parent / f".{out.name}.old-{os.getpid()}"
                    os.rename(out, old)
                    os.rename(tmp, out)
            except BaseException:
                _discard(tmp)
                raise
            # The new build is in place: whatever happens now, the build succeeded.
            _discard(old)
    except OSError as exc:
        where = exc.filename or out_dir
        raise OutputError(
            f"cannot write the build to {out_dir} ({exc.strerror} at {where}); "
            f"{out_dir} was left as it was"
        ) from None
