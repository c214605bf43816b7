"""Progress is drawn on a terminal only: never in CI, never into a pipe or a file."""

from __future__ import annotations

import io

import pytest

from eventfeed.progress import Progress, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_count_and_the_line_is_erased(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    stream = Terminal()
    assert list(track(range(300), "importing", 300, stream=stream)) == list(range(300))
    text = stream.getvalue()
    assert text.startswith("\rimporting 1/300")
    assert "\rimporting 300/300" in text
    assert text.endswith("\r" + " " * len("importing 300/300") + "\r")


def test_ci_and_pipes_see_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    stream = Terminal()
    list(track(range(300), "importing", 300, stream=stream))
    assert stream.getvalue() == ""
    monkeypatch.delenv("CI")
    pipe = io.StringIO()
    list(track(range(300), "importing", 300, stream=pipe))
    assert pipe.getvalue() == ""


def test_short_runs_show_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    stream = Terminal()
    with Progress("importing", 10, stream=stream) as progress:
        progress.advance(10)
    assert stream.getvalue() == ""
