"""The no-change rebuild: know, without parsing a record, that out/ is already the build.

A build is a pure function of the record files, the settings, the previous manifest, the day
(``as_of``), the day that quiets warnings, ``--strict`` and eventfeed itself. After a build,
:meth:`Fingerprint.save` keeps a digest of all of them, together with what the writer left in
out/ (the manifest's bytes, every file's path, size and modification time). The next build
computes the same digest from the raw bytes of the files alone; when it is equal, compiling
would give the bytes already in out/ (an unchanged event keeps its history, so the manifest is
its own successor) and the build stops there.

The digest (a few hundred bytes per output folder) lives in the user's cache folder
(:func:`cache_dir`), not in out/ and not in the working tree: out/ is committed and must stay
byte-for-byte what a cold build writes, a build must leave nothing else beside it (nothing to
ignore in git, nothing a static host could upload), and a cache describes one machine's out/,
so it must not travel through git. Deleting it is always safe: the next build is a full one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata, resources
from pathlib import Path
from zoneinfo import ZoneInfo

from . import __version__
from .errors import Problem
from .frontmatter import read_yaml_file
from .load import SETTINGS_FILE, _record_files

FORMAT = 1
#: where the fingerprints are kept, instead of the user's cache folder
CACHE_DIR_VARIABLE = "EVENTFEED_CACHE_DIR"


def cache_dir() -> Path:
    """``$EVENTFEED_CACHE_DIR``, else ``$XDG_CACHE_HOME/eventfeed``, else ``~/.cache/eventfeed``."""
    chosen = os.environ.get(CACHE_DIR_VARIABLE)
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eventfeed"


def cache_file(out_dir: Path) -> Path:
    """One small file per output folder, named by a digest of its absolute path."""
    name = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:32]
    return cache_dir() / f"{name}.json"


#: Libraries whose upgrade can change output bytes (serialisers, renderers, zone data).
_LIBRARIES = (
    "icalendar",
    "feedgen",
    "lxml",
    "markdown-it-py",
    "nh3",
    "Jinja2",
    "MarkupSafe",
    "pydantic",
    "PyYAML",
    "tzdata",
)


def _environment() -> str:
    """The versions of the libraries and of the system's time zone data in use."""
    parts = [sys.version]
    for name in _LIBRARIES:
        try:
            parts.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name}=-")
    for folder in zoneinfo.TZPATH:
        try:
            info = os.stat(os.path.join(folder, "tzdata.zi"))
        except OSError:
            continue
        parts.append(f"{folder}:{info.st_size}:{info.st_mtime_ns}")
        break
    return "\n".join(parts)


def _code_digest() -> str:
    """eventfeed's own code and templates, and what it runs on: a changed compiler or
    library must never reuse a build."""
    digest = hashlib.sha256(__version__.encode() + b"\0" + _environment().encode())
    root = resources.files("eventfeed")
    stack = [root]
    found = []
    while stack:
        folder = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                if entry.name != "__pycache__":
                    stack.append(entry)
            elif entry.name.endswith((".py", ".html", ".css", ".svg", ".txt")):
                found.append(entry)
    for entry in sorted(found, key=lambda e: str(e)):
        digest.update(str(entry).encode() + b"\0" + entry.read_bytes())
    return digest.hexdigest()


def _out_state(out: Path) -> list[tuple[str, int, int]] | None:
    """Every file of out/ with its size and modification time; None if anything is odd."""
    files = []
    for dirpath, dirnames, filenames in os.walk(out):
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                return None
        for name in filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            files.append((os.path.relpath(path, out), info.st_size, info.st_mtime_ns))
    return sorted(files)


@dataclass(frozen=True)
class Fingerprint:
    """The inputs of one build, digested; ``None`` fields mean "cannot tell": build."""

    path: Path
    inputs: str
    settings: str

    @classmethod
    def of(
        cls, events_dir: Path, out_dir: Path, clock: datetime, as_of: date | None, strict: bool
    ) -> Fingerprint | None:
        """Digest the raw inputs; None when the folder holds something the loader reports."""
        problems: list[Problem] = []
        files = list(_record_files(events_dir, problems)) if events_dir.is_dir() else []
        if problems or not files:
            return None
        try:
            raw_settings = (events_dir / SETTINGS_FILE).read_bytes()
            settings = hashlib.sha256(raw_settings).hexdigest()
            digest = hashlib.sha256()
            for path in files:
                name = path.relative_to(events_dir).as_posix()
                digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            return None
        parts = [
            str(FORMAT),
            _code_digest(),
            str(events_dir.resolve()),
            settings,
            digest.hexdigest(),
            clock.date().isoformat(),  # the day that quiets warnings
            "strict" if strict else "",
            (as_of or _site_day(clock, raw_settings)).isoformat(),
        ]
        inputs = hashlib.sha256("\n".join(parts).encode()).hexdigest()
        return cls(cache_file(out_dir), inputs, settings)

    def _key(self, out_dir: Path) -> str | None:
        out = out_dir.resolve()
        state = _out_state(out) if out.is_dir() else None
        if state is None:
            return None
        try:
            manifest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
        except OSError:
            return None
        text = json.dumps([self.inputs, manifest, state], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def lookup(self, out_dir: Path) -> str | None:
        """The warnings text of the build already in out/, when it is this build; else None."""
        try:
            data = json.loads(self.path.read_bytes())
            key, warnings = data["key"], data["warnings"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(warnings, str) or key != self._key(out_dir):
            return None
        return warnings

    def save(self, out_dir: Path, warnings: str) -> None:
        """Remember the build now in out/; a cache that cannot be written is no failure."""
        key = self._key(out_dir)
        if key is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps({"key": key, "warnings": warnings}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass


def _site_day(clock: datetime, raw_settings: bytes) -> date | datetime:
    """The build's day in the site's zone, as the build computes it; the clock itself when
    the settings do not say (the build then reports them, or uses the default)."""
    try:
        data, _ = read_yaml_file(raw_settings)
        return clock.astimezone(ZoneInfo(str(data["timezone"]))).date()
    except Exception:  # any trouble here only means: do not trust the cache
        return clock
