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
import re
import shutil
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
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
            try:
                for path in sorted(artifacts):
                    target = tmp.joinpath(*path.split("/"))
                    target.parent.mkdir(parents=True, exist_ok=True)
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
