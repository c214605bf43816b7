"""Progress for long runs: a counter on a terminal, nothing at all in CI or in a pipe.

A line such as ``importing 1,200/4,000`` is redrawn on standard error, at most a few times a
second, and erased at the end. It appears only when standard error is a terminal and the ``CI``
variable is unset, so logs and redirected output never fill with carriage returns.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

#: Runs shorter than this many items never show a counter.
MIN_ITEMS = 200
#: Seconds between redraws.
INTERVAL = 0.2


def enabled(stream: TextIO | None = None) -> bool:
    """Whether progress should be drawn on ``stream`` (standard error by default)."""
    target = stream if stream is not None else sys.stderr
    if os.environ.get("CI"):
        return False
    isatty = getattr(target, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Count items of a known total; draw only when :func:`enabled`."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        force: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        show = enabled(self.stream) if force is None else force
        self.active = show and total >= MIN_ITEMS
        self.done = 0
        self._last = 0.0
        self._width = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self.active:
            return
        now = time.monotonic()
        if now - self._last >= INTERVAL or self.done >= self.total:
            self._last = now
            self._draw(f"{self.label} {self.done:,}/{self.total:,}")

    def close(self) -> None:
        if self.active and self._width:
            self._draw("")
            self.stream.write("\r")
            self.stream.flush()

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(
    items: Iterable[T], label: str, total: int, *, stream: TextIO | None = None
) -> Iterator[T]:
    """Yield ``items`` while counting them on the terminal."""
    with Progress(label, total, stream=stream) as progress:
        for item in items:
            yield item
            progress.advance()
