"""The writer: the only code that writes into the output folder.

A build is written into a fresh temporary folder beside ``out/`` and then swapped into place, so
readers of ``out/`` (a web server, git, a person) see either the whole old build or the whole
new one. On Linux the swap is one atomic ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames,
and a build that was killed between them is repaired by the next one. A lock on the parent
folder keeps two builds from writing at once.

The tree a build replaces is kept in the cache folder (when that is on the same file system),
and the next build starts from it instead of an empty folder: most of its files are already
the files of out/ (hard links), so only what changed since the build before the last is
written, and no tree of a hundred thousand files is removed at each build. When there is no
such tree to start from, the tree the build's workers wrote their files into is taken whole;
a first build (into an out/ without a manifest) keeps instead the second tree its workers
linked their files into (:func:`keep_second`), for the next build to start from.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from .cache import ROW, OutState, Trusted, cache_dir, written_before
from .errors import OutputError
from .forked import Forked
from .paths import MANIFEST

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$|^\.nojekyll$|^_headers$")
_WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


#: A whole path of :data:`_SAFE_PART` parts, none of them a Windows device name, in one
#: expression: the writer checks every path of a build (with 100,000 events, 200,000 of
#: them), and a look at each part in Python took about 0.4 s.
_PART = (
    r"(?!(?i:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\.[^/]*)?(?:/|\Z))"
    r"(?:[A-Za-z0-9][A-Za-z0-9._-]*|\.nojekyll|_headers)"
)
_SAFE_PATH = re.compile(rf"{_PART}(?:/{_PART})*")


def check_artifact_path(path: str) -> None:
    """Refuse any path that could leave out/ or misbehave on another file system: each part
    is a name of :data:`_SAFE_PART` (no empty part, no ``.`` or ``..``, no line break) and
    none is a Windows device name (:data:`_WINDOWS_DEVICES`)."""
    if _SAFE_PATH.fullmatch(path) is None:
        raise OutputError(f"refusing to write unsafe output path {path!r}")


#: the last manifest text parsed, and what it parsed to (:func:`manifest_json`)
_PARSED: tuple[bytes, Any] | None = None
#: the last manifest text the build read as eventfeed's, and its files (:func:`manifest_read`)
_READ: tuple[bytes, Mapping[str, str]] | None = None


def manifest_json(raw: bytes) -> Any:
    """``json.loads(raw)``, parsed once for the same bytes: a build reads the manifest of out/
    up to three times (is the folder ours, the history, which files changed), and at 100,000
    events each parse costs as much as a small build. The caller must not change the result.
    """
    global _PARSED
    if _PARSED is not None and _PARSED[0] == raw:
        return _PARSED[1]
    data = json.loads(raw)
    _PARSED = (raw, data)
    return data


def manifest_read(raw: bytes, files: Mapping[str, str]) -> None:
    """The build has read the manifest ``raw`` as eventfeed's (:func:`eventfeed.state.
    read_manifest`), and keeps its ``files``: the writer asks for nothing else of it (is the
    folder ours, which files changed), and takes them from here. What it was parsed to is let
    go of: with 100,000 events, about 150 MB that the build held to its end."""
    global _PARSED, _READ
    _PARSED = None
    _READ = (raw, files)


def _read_files(raw: bytes) -> Mapping[str, str] | None:
    """The files of the manifest ``raw``, when the build read it (:func:`manifest_read`)."""
    return _READ[1] if _READ is not None and _READ[0] == raw else None


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
        raw = manifest.read_bytes()
        if _read_files(raw) is not None:
            return True
        data = manifest_json(raw)
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


@functools.cache
def _renameat2() -> Any:
    """The C library's ``renameat2``, None where it has none. It is looked
    up among the symbols the interpreter has loaded: the C library is one of them, and
    :func:`ctypes.util.find_library` would run ``ldconfig`` in a child process to name it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two folders (Linux renameat2); False where unsupported."""
    renameat2 = _renameat2()
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


def _manifest_files(data: bytes | None) -> Mapping[str, str] | None:
    """The ``files`` digests of an eventfeed manifest; None when there are none to trust."""
    if data is None:
        return None
    read = _read_files(data)
    if read is not None:
        return read
    try:
        files = manifest_json(data).get("files")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    return files


class _Trust:
    """Which files of out/ still hold what the last build wrote, by their metadata alone.

    The no-change fingerprint, when it was saved, found out/ as the writer left it
    (:func:`eventfeed.cache.written_before`): a file and the folders above it whose change
    times are older than that moment are unchanged since (writing, replacing, linking or
    renaming a file sets its change time), and so are those changed since whose inode and
    change time are the ones the fingerprint kept. Any other file is read and compared with the
    digest the manifest names, so that a file edited by hand in out/, even to the same size,
    is written again instead of kept."""

    def __init__(self, out: str, trusted: Trusted | None) -> None:
        self.out = out
        self.cut: int | None = trusted[0] if trusted is not None else None
        self.later: Mapping[str, tuple[int, int]] = trusted[1] if trusted is not None else {}
        self._folders: dict[str, bool] = {}
        self._read: dict[str, str | None] = {}  # the digests of files read, by path
        if self.cut is not None:
            try:
                if not self.unchanged(MANIFEST, os.lstat(self.path(MANIFEST))):
                    self.cut = None  # the manifest's digests name nothing we can trust
            except OSError:
                self.cut = None

    def path(self, key: str) -> str:
        return f"{self.out}{os.sep}{key}" if os.sep == "/" else os.path.join(self.out, key)

    def unchanged(self, key: str, info: os.stat_result) -> bool:
        return self.unchanged_in(posixpath.dirname(key), info, key)

    def unchanged_in(self, folder: str, info: os.stat_result, key: str) -> bool:
        """:meth:`unchanged` for the file ``key`` of ``folder`` (its path's folder part)."""
        return self._vouched(key, info) and self.folder(folder)

    def _vouched(self, key: str, info: os.stat_result) -> bool:
        """Whether the file or folder ``key`` is as the last build left it by its metadata:
        changed before the trusted moment, or since, as the build wrote it."""
        cut = self.cut
        if cut is None:
            return False
        if info.st_ctime_ns < cut:
            return True
        return self.later.get(key) == (info.st_ino, info.st_ctime_ns)

    def folder(self, key: str) -> bool:
        """Whether the folder ``key`` of out/ (and each one above it) is unchanged since the
        trusted moment; each folder is looked at once."""
        known = self._folders.get(key)
        if known is None:
            try:
                info = os.lstat(self.path(key) if key else self.out)
            except OSError:
                known = False
            else:
                known = self._vouched(key, info) and (
                    not key or self.folder(posixpath.dirname(key))
                )
            self._folders[key] = known
        return known

    def holds(self, key: str, info: os.stat_result, digest: str | None) -> bool:
        """Whether the file at ``key`` (whose ``lstat`` is ``info``) holds these bytes; a
        file read to know is read once per build."""
        if self.unchanged(key, info):
            return True
        if digest is None:
            return False
        if key not in self._read:
            self._read[key] = read_digest(self.path(key))
        return self._read[key] == digest


def read_digest(path: str) -> str | None:
    """The digest of the file at ``path``, as the manifest gives it; None when it cannot be
    read."""
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


#: From this many files to read back on, a forked process reads half of them
#: (:func:`read_digests`).
DIGEST_ASIDE_FILES = 1_000
#: how a digest read aside is sent back: 64 hexadecimal digits, or this for none
_UNREAD = b"-" * 64


def read_digests(paths: list[str]) -> list[str | None]:
    """:func:`read_digest` of every path, in order. A build reads out/'s files back when
    nothing vouches for them (a fresh clone's build finding its bytes already there, ``build
    --check``), once it has made everything: the second core is idle then, and from
    :data:`DIGEST_ASIDE_FILES` paths on a forked process reads the second half (with 10,000
    records, 20,000 files: 0.5 s in one process). Where it cannot, this process reads
    them all. (Threads were slower: each waited for the interpreter lock after every system
    call on a small file.)"""
    half = len(paths) // 2
    rest = None
    if len(paths) >= DIGEST_ASIDE_FILES:
        rest = Forked.start(lambda: b"".join(_sent(read_digest(p)) for p in paths[half:]))
    if rest is None:
        return [read_digest(p) for p in paths]
    try:
        first = [read_digest(p) for p in paths[:half]]
    except BaseException:
        rest.stop()
        raise
    data = rest.output()
    if data is None or len(data) != len(_UNREAD) * (len(paths) - half):
        return [*first, *(read_digest(p) for p in paths[half:])]
    size = len(_UNREAD)
    chunks = (data[i : i + size] for i in range(0, len(data), size))
    return [*first, *(None if c == _UNREAD else c.decode("ascii") for c in chunks)]


def _sent(digest: str | None) -> bytes:
    return _UNREAD if digest is None else digest.encode("ascii")


def _unchanged(
    out: Path, artifacts: Mapping[str, bytes], files: Mapping[str, str] | None, trust: _Trust
) -> bool:
    """True when out/ holds exactly these paths, as regular files of these sizes and bytes
    (the same manifest; a file is read only when its metadata cannot vouch for it)."""
    if _read_manifest(out) != artifacts.get(MANIFEST):
        return False
    folders: set[str] = set()
    for key in artifacts:
        parent = posixpath.dirname(key)
        while parent and parent not in folders:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    found = 0
    top = str(out)
    unread: list[str] = []  # files to read back, and the digest each must have
    expected: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top).replace(os.sep, "/")
        prefix = "" if rel == "." else f"{rel}/"
        for name in dirnames:  # a link, or a folder no artifact needs, is not ours
            if os.path.islink(os.path.join(dirpath, name)) or prefix + name not in folders:
                return False
        for name in filenames:
            key = prefix + name
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                return False
            if key not in artifacts or not stat.S_ISREG(info.st_mode):
                return False
            if info.st_size != _size(artifacts, key):
                return False
            if key != MANIFEST and not trust.unchanged(key, info):
                digest = files.get(key) if files is not None else None
                if digest is None:
                    digest = hashlib.sha256(artifacts[key]).hexdigest()
                unread.append(os.path.join(dirpath, name))
                expected.append(digest)
            found += 1
    return found == len(artifacts) and read_digests(unread) == expected


def _size(artifacts: Mapping[str, bytes], path: str) -> int:
    """A file's size, without reading a file the build took from the previous one."""
    size = getattr(artifacts, "size", None)
    return int(size(path)) if size is not None else len(artifacts[path])


def _link(trust: _Trust, path: str, folder: str, target: str, size: int, digest: str) -> bool:
    """Hard-link an unchanged file of the previous build into the new tree; False when the
    file is not there as it should be (another size, or other bytes than ``digest``), or the
    file system cannot link (then it is written).

    The previous tree is only ever renamed, then removed or kept as the next build's spare
    (whose files are replaced, never written in place), so the shared file keeps its bytes:
    linking instead of writing saves the data copy of every unchanged file.
    """
    source = trust.path(path)
    try:
        info = os.lstat(source)
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            return False
        if not (trust.unchanged_in(folder, info, path) or trust.holds(path, info, digest)):
            return False
        os.link(source, target, follow_symlinks=False)
    except OSError:
        return False
    return True


class _Spill(Protocol):
    """Where a file of the build is in a spill file (:class:`eventfeed.build.Spilled`)."""

    @property
    def spill(self) -> Path: ...
    @property
    def offset(self) -> int: ...
    @property
    def size(self) -> int: ...


def _fill(
    tmp: str,
    artifacts: Mapping[str, bytes],
    old_files: Mapping[str, str] | None,
    new_files: Mapping[str, str] | None,
    trust: _Trust,
    present: dict[str, int] | None = None,
    adopted: bool = False,
    stay: frozenset[str] = frozenset(),
) -> list[tuple[str, str, str]]:
    """Write every artifact into the new tree ``tmp``, linking the previous build's files
    that are the same (plain strings: a path object per file cost more than the writing),
    and copying those the build spilled to disk straight from the spill file.

    Returns the files the workers staged that are still to be moved into ``tmp`` (path,
    staged file, place in ``tmp``), by :func:`_move_staged` once nothing can ask for this
    tree to be filled again: until then each stays where it is, to be read or linked.

    ``present``: the files ``tmp`` already holds, by path, with their inode numbers, when
    ``tmp`` is the tree of the build before the last (:func:`_spare`). A file that is the
    very file out/ holds (the same inode), with the bytes this build wants, stays; any other
    is removed first (never written in place: it may be a link to a file of out/), and those
    this build does not have at all are removed at the end.

    ``adopted``: ``tmp`` is the staging tree the workers wrote (:func:`_adopt`), so the files
    they staged are in place already.

    ``stay``: files of ``present`` known to stay (:func:`_stayed`), not looked at again."""
    made: set[str] = {""}
    native = os.sep == "/"
    spilled: Callable[[str], _Spill | None] = getattr(artifacts, "spilled", lambda path: None)
    staged: Callable[[str], str | None] = getattr(artifacts, "staged", lambda path: None)
    sized: Callable[[str], int] = getattr(artifacts, "size", lambda path: len(artifacts[path]))
    spills: dict[Path, int] = {}  # spill file -> its open descriptor
    moves: list[tuple[str, str, str]] = []
    # (with a spare tree, nearly every file is one that stays: the loop is kept lean for it)
    new = new_files if new_files is not None else {}
    old = old_files if old_files is not None else {}
    kept = present if present is not None else {}
    for path in stay:
        del kept[path]
    try:
        for path in sorted(path for path in artifacts if path not in stay):
            folder = path.rpartition("/")[0]
            if folder not in made:
                os.makedirs(
                    os.path.join(tmp, folder if native else folder.replace("/", os.sep)),
                    exist_ok=True,
                )
                made.add(folder)
            if adopted and staged(path) is not None:
                continue
            target = f"{tmp}/{path}" if native else os.path.join(tmp, path.replace("/", os.sep))
            digest = new.get(path)
            # the digest, when the last build's manifest names the same: out/ may hold it
            same = digest if digest is not None and old.get(path) == digest else None
            inode = kept.pop(path, None)
            # a file a worker staged, which out/ does not hold: moved in once the tree is
            # filled (:func:`_move_staged`)
            source = staged(path) if same is None else None
            if inode is not None:
                if same is not None and _same(trust, path, folder, inode, sized(path), same):
                    continue
                os.unlink(target)
            if source is not None:
                moves.append((path, source, target))
                continue
            if same is not None and _link(trust, path, folder, target, sized(path), same):
                continue
            source = staged(path)
            if source is not None and _link_staged(source, target):
                continue
            where = spilled(path)
            if where is None or not copy_spilled(where, target, spills):
                Path(target).write_bytes(artifacts[path])  # one call per file: faults test it
        if present:
            _prune(tmp, present)
    finally:
        for fd in spills.values():
            os.close(fd)
    return moves


def _link_staged(source: str, target: str) -> bool:
    """Link a file a worker staged (:class:`eventfeed.build.Staged`) into the new tree; False
    where the file system cannot (then it is written)."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        return False
    return True


def _move_staged(
    artifacts: Mapping[str, bytes], moves: list[tuple[str, str, str]], tmp: str
) -> None:
    """Move each staged file of ``moves`` to its place in the new tree ``tmp`` (emptied by
    :func:`_fill`): one call, where linking it in took two (its staging name is removed with
    the staging tree otherwise). With 10,000 pages to replace, the writer's calls took
    1.25-1.40 s instead of 1.53-1.79 s; a move over the spare's file, in one call, took
    longer than both (1.58 s): the file system frees the replaced file within it. Where a
    file cannot be moved, it is written there. Then every staged file is read from the new
    tree (:class:`eventfeed.build.Staged`), which holds all of them now.

    The moved file's change time is set here, before the tree is swapped into place, so
    before the caller looks at out/'s files to vouch for them next time
    (:func:`eventfeed.cache.written_before`)."""
    for path, source, target in moves:
        try:
            _move(source, target)
        except OSError:  # (nothing is at ``target``: a move happens whole or not at all)
            Path(target).write_bytes(artifacts[path])
    if moves:
        setattr(artifacts, "staging", tmp)  # noqa: B010 (a Mapping here)


def _move(source: str, target: str) -> None:
    try:
        os.rename(source, target)
    except FileNotFoundError:  # its folder held nothing else of the spare's (:func:`_prune`)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(source, target)


def _unstage(artifacts: Mapping[str, bytes], staging: str, out: Path) -> None:
    """Remove the staging tree, whose files the new tree, now out/, holds linked (or written
    again): before the caller looks at out/'s files to vouch for them next time
    (:func:`eventfeed.cache.written_before`), since removing a file's other name changes its
    change time. Its files are read from out/ from then on (:class:`eventfeed.build.Staged`)."""
    setattr(artifacts, "staging", str(out))  # noqa: B010 (a Mapping here)
    _discard(Path(staging))


def _adopt(staging: str | None, place: Path) -> bool:
    """Make the staging tree the workers wrote the new tree, in place of the empty folder
    ``place``: their files are then written once, and neither copied nor linked. False when
    there is none, or it is on another file system."""
    if staging is None:
        return False
    try:
        os.rename(staging, place)  # over an empty folder, as POSIX allows
    except OSError:
        return False
    return True


def _same(trust: _Trust, path: str, folder: str, inode: int, size: int, digest: str) -> bool:
    """Whether the spare tree's file at ``path`` (in ``folder``; inode ``inode``) is out/'s
    file, which holds these bytes."""
    try:
        info = os.lstat(trust.path(path))
    except OSError:
        return False
    return (
        info.st_ino == inode
        and stat.S_ISREG(info.st_mode)
        and info.st_size == size
        and (trust.unchanged_in(folder, info, path) or trust.holds(path, info, digest))
    )


def _stayed(
    out: Path,
    present: Mapping[str, int],
    old: Mapping[str, str],
    new: Mapping[str, str],
    trust: _Trust,
    seen: OutState,
) -> frozenset[str]:
    """The files of the spare tree ``present`` that stay as they are, judged by what was seen
    of out/ before the build (:meth:`eventfeed.cache.Fingerprint.seen`) instead of a look at
    each: the build wants the bytes the last one wrote there, and the spare's file is out/'s
    own (the same inode), unchanged since the last build (its change time and its folders'
    older than the trusted moment, :class:`_Trust`). Nothing stays when out/ is not the folder
    that was seen.

    (A file changed by hand after that look may stay as it is; the fingerprint then takes
    that look's moment as the trusted one, so the next build reads and repairs it.)"""
    cut = trust.cut
    if cut is None or seen.seen is None:
        return frozenset()
    later = trust.later
    try:
        top = os.lstat(out)
    except OSError:
        return frozenset()
    if (top.st_ino, top.st_dev) != (seen.top.st_ino, seen.top.st_dev):
        return frozenset()
    folders, files, rows = seen.seen
    # every folder vouched for (as after a build): no file's folders need be asked for
    every = all(map(trust.folder, ["", *folders]))
    regular = stat.S_ISREG
    device = top.st_dev
    stay = []
    # in the order of the look, each path hashed once
    for path, (mode, _, _, ctime, ino, dev) in zip(files, ROW.iter_unpack(rows), strict=True):
        if present.get(path) != ino or dev != device or not regular(mode):
            continue
        if ctime >= cut and later.get(path) != (ino, ctime):
            continue
        digest = new.get(path)
        if digest is None or old.get(path) != digest:
            continue
        if every or trust.folder(path.rpartition("/")[0]):
            stay.append(path)
    return frozenset(stay)


def _prune(tmp: str, leftovers: Mapping[str, int]) -> None:
    """Remove from a reused tree the files this build does not have, then the folders that
    are left empty."""
    folders: set[str] = set()
    for path in leftovers:
        os.unlink(os.path.join(tmp, *path.split("/")))
        folder = posixpath.dirname(path)
        while folder:
            folders.add(folder)
            folder = posixpath.dirname(folder)
    for folder in sorted(folders, key=lambda f: -f.count("/")):  # the deepest first
        with contextlib.suppress(OSError):  # not empty: it holds files of this build
            os.rmdir(os.path.join(tmp, *folder.split("/")))


def _files_of(tree: str) -> dict[str, int] | None:
    """Every file under ``tree`` by its path, with its inode number (from the folder
    listing, without a stat per file); None when the tree holds anything but folders and
    regular files, which a reused tree must not (a link could lead the writer outside it)."""
    found: dict[str, int] = {}
    pending = [("", tree)]
    while pending:
        prefix, folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found[prefix + entry.name] = entry.inode()
                else:
                    return None
    return found


def _spare(out: Path) -> tuple[Path, dict[str, int]] | None:
    """The tree of the build before the last, where a rebuild is written, and what it holds.

    It is kept in the cache folder, under a digest of out/'s path, and swapped with out/ by
    the atomic exchange, so after each build it holds the tree that build replaced. A
    rebuild starts from it instead of an empty folder: its unchanged files are already the
    files of out/ (hard links), so the rebuild writes only what changed since the build
    before the last, and no tree of a hundred thousand files is removed at every build.
    Nothing in it is trusted but a file that is out/'s own file (:func:`_same`), so a
    spare left half-written by a killed build is as good as any.

    None where there is no atomic exchange, or the cache folder is on another file system
    than out/ (a tree cannot move between them), or the spare cannot be read."""
    if _renameat2() is None:
        return None
    place = _spare_place(out)
    try:
        place.mkdir(parents=True, exist_ok=True)
        if os.lstat(place).st_dev != os.lstat(out).st_dev:
            return None
        present = _files_of(str(place))
        if present is None:  # not only folders and files: made again from nothing
            _discard(place)
            place.mkdir()
            present = {}
    except OSError:
        return None
    return place, present


def _spare_place(out: Path) -> Path:
    """Where the spare tree of out/ (resolved) is kept (:func:`_spare`)."""
    return cache_dir() / "trees" / hashlib.sha256(str(out).encode()).hexdigest()[:32]


def spares_kept() -> bool:
    """Whether builds here keep a spare tree (:func:`_spare`): only with the atomic exchange."""
    return _renameat2() is not None


def keep_second(out: Path, artifacts: Mapping[str, bytes]) -> None:
    """After a build into an out/ that had no manifest: keep the second tree its workers
    linked their files into (:meth:`eventfeed.build.Artifacts.second_tree`) as out/'s spare,
    with out/'s other files linked in too, in place of any spare there was. The next build
    then writes only what it changes, as every later one does, instead of linking each of
    out/'s files into a new tree (with 100,000 events, two seconds, and a second more to look
    at them all again for the fingerprint).

    Best effort: the build has succeeded when this runs, and a spare is trusted only where
    its file is out/'s own (:func:`_same`), so a tree left incomplete, or none, costs the
    next build time, never a wrong file."""
    second: str | None = getattr(artifacts, "second", None)
    if second is None:
        return
    linked: set[str] = getattr(artifacts, "in_second", set())
    setattr(artifacts, "second", None)  # noqa: B010 (a Mapping here)
    tree = Path(second)
    try:
        if not tree.is_dir() or os.lstat(tree).st_dev != os.lstat(out).st_dev:
            _discard(tree)
            return
        made = {""}
        for path in artifacts:
            if path in linked:  # by the worker that staged it
                continue
            folder = path.rpartition("/")[0]
            if folder not in made:
                os.makedirs(os.path.join(second, *folder.split("/")), exist_ok=True)
                made.add(folder)
            os.link(os.path.join(out, *path.split("/")), os.path.join(second, *path.split("/")))
        place = _spare_place(out)
        _discard(place)
        place.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tree, place)
    except OSError:
        _discard(tree)


def copy_spilled(where: _Spill, target: str, spills: dict[Path, int]) -> bool:
    """Copy a file the build spilled to disk (:class:`eventfeed.build.Spilled`) into
    ``target`` inside the kernel, without reading it into memory; False where the system
    cannot (then the caller writes it)."""
    copy = getattr(os, "copy_file_range", None)
    if copy is None:
        return False
    source = spills.get(where.spill)
    if source is None:
        source = spills[where.spill] = os.open(where.spill, os.O_RDONLY | _CLOEXEC)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o666)
    try:
        offset, left = where.offset, where.size
        while left:
            try:
                done = copy(source, fd, left, offset)
            except OSError as exc:
                if exc.errno in _NO_COPY and offset == where.offset:
                    return False  # not on this file system: written the plain way
                raise
            if done == 0:
                raise OSError(errno.EIO, "the spill file ended early", str(where.spill))
            offset += done
            left -= done
    finally:
        os.close(fd)
    return True


def write_file(target: str, data: bytes) -> None:
    """Write ``data`` as the file ``target`` (created, or emptied first)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: errors of copy_file_range that mean "not here", not "failed"
_NO_COPY = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def write_tree(
    out_dir: Path,
    artifacts: Mapping[str, bytes],
    *,
    events_dir: Path | None,
    files: Mapping[str, str] | None = None,
    seen: OutState | None = None,
) -> frozenset[str] | None:
    """Replace ``out_dir`` with exactly ``artifacts``, all at once, or leave it untouched.

    ``files``: the digests that the manifest among ``artifacts`` names, when the caller has
    them (else they are read from it). ``seen``: what was seen of out/ before the build
    (:meth:`eventfeed.cache.Fingerprint.seen`), trusted instead of a look at each file of it.

    Returns, when ``seen`` was taken, the files of out/ left exactly as they were then (for
    :meth:`eventfeed.cache.Fingerprint.save`); else None."""
    for path in artifacts:
        check_artifact_path(path)
    check_target(out_dir, events_dir=events_dir)
    out = out_dir.resolve()
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with build_lock(parent, out.name):
            _recover(out)
            new_files: Mapping[str, str] | None = files
            if new_files is None:
                new_files = _manifest_files(artifacts.get(MANIFEST))
            old_files = _manifest_files(_read_manifest(out)) if new_files is not None else None
            trust = _Trust(str(out), written_before(out))
            if old_files == new_files and _unchanged(out, artifacts, new_files, trust):
                return None  # the same bytes are already in place: nothing to swap
            staging: str | None = getattr(artifacts, "staging", None)
            spare = _spare(out) if old_files is not None else None
            if spare is not None:
                tmp, present = spare
                adopted = not present and _adopt(staging, tmp)
            else:
                tmp, present = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent)), None
                adopted = _adopt(staging, tmp)
            if adopted:
                present = None  # nothing in it to keep or remove
                # its files are read from where they are now, if a file is made again
                # (:class:`eventfeed.build.Staged`)
                setattr(artifacts, "staging", str(tmp))  # noqa: B010 (a Mapping here)
            stay: frozenset[str] | None = None
            if seen is not None and present and old_files is not None and new_files is not None:
                stay = _stayed(out, present, old_files, new_files, trust, seen)
            try:
                try:
                    moves = _fill(
                        str(tmp),
                        artifacts,
                        old_files,
                        new_files,
                        trust,
                        present,
                        adopted,
                        stay or frozenset(),
                    )
                except OSError as exc:
                    if present is None or exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    # the spare does not fit this build (a file where a folder must go):
                    # written again from nothing
                    _discard(tmp)
                    tmp.mkdir()
                    stay = None
                    moves = _fill(str(tmp), artifacts, old_files, new_files, trust)
                _move_staged(artifacts, moves, str(tmp))
                os.chmod(tmp, 0o755)
                if not out.exists():
                    os.rename(tmp, out)
                    if staging is not None and not adopted:
                        _unstage(artifacts, staging, out)
                    keep_second(out, artifacts)
                    return None
                if _exchange(tmp, out):
                    old = tmp  # now holds the old build
                else:
                    old = parent / f".{out.name}.old-{os.getpid()}"
                    os.rename(out, old)
                    os.rename(tmp, out)
            except BaseException:
                if spare is None:
                    _discard(tmp)  # (a spare left half-written is still a spare)
                raise
            # The new build is in place: whatever happens now, the build succeeded.
            if staging is not None and not adopted:
                _unstage(artifacts, staging, out)
            if old != tmp or spare is None:
                _discard(old)  # else it stays, the next build's spare
                stay = None  # (its files were linked from the old tree, now removed)
            if spare is None:
                keep_second(out, artifacts)
            return stay
    except OSError as exc:
        where = exc.filename or out_dir
        raise OutputError(
            f"cannot write the build to {out_dir} ({exc.strerror} at {where}); "
            f"{out_dir} was left as it was"
        ) from None
