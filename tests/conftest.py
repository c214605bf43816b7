"""Shared fixtures: a small site folder to write records into, an output folder, and a CLI
runner."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eventfeed import build as build_module
from eventfeed import quick
from eventfeed.cli import main

SITE_YAML = """\
title: Test events
description: Events for tests.
base_url: https://events.example.org/sub/
publisher:
  name: Test Secretariat
  email: secretariat@example.org
timezone: Europe/Zurich
language: en
kinds: [webinar, meeting]
regions: [global, europe]
organisations:
  ilo:
    name: International Labour Organization
    short: ILO
    url: https://www.ilo.org/
collections:
  webinars:
    title: Webinars
    kinds: [webinar]
"""

MINIMAL = """\
---
title: A meeting
kind: meeting
start: 2022-12-07T15:00
end: 2022-12-07T17:00
online:
  url: https://example.org/join
updated: 2022-12-01
---
Body.
"""


class SiteDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.events = root / "events"
        self.out = root / "out"
        self.events.mkdir()
        (self.events / "site.yaml").write_text(SITE_YAML, encoding="utf-8")

    def record(self, name: str, text: str | bytes) -> Path:
        path = self.events / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def shown(self, name: str) -> str:
        """The path as eventfeed prints it when run from ``root``."""
        return f"events/{name}"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps its build caches in a folder of its own, never in the user's."""
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def full_rebuilds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuilds that go the full way, never the quick one (:mod:`eventfeed.quick`): for the
    tests of what the full rebuild does within (tests/test_quick.py compares the two)."""
    monkeypatch.setattr(quick, "MAX_EDITED", 0)


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the events the build compiles in this process (not taken from the
    per-event store, nor compiled by a forked worker)."""
    seen: list[str] = []
    real = build_module._each

    def counting(steps: Any, context: Any, todo: list[Any]) -> Any:
        seen.extend(e.id for e in todo)
        return real(steps, context, todo)

    monkeypatch.setattr(build_module, "_each", counting)
    return seen


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SiteDir:
    monkeypatch.chdir(tmp_path)
    return SiteDir(tmp_path)


Run = Callable[..., Result]


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An output folder not made yet, alone in its parent folder, with the cache folder (and
    so the writer's kept trees) beside it, on the same file system."""
    monkeypatch.setenv("EVENTFEED_CACHE_DIR", str(tmp_path / "cache"))
    target = tmp_path / "site" / "out"
    target.parent.mkdir()
    return target


@pytest.fixture
def run() -> Run:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke
