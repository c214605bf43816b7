"""Bytes made in a forked process while this one goes on: what a build does on the second
core when it would otherwise be idle (the metadata of half of out/ at the save, the order of
the events while their history is worked out). Light to import: the no-change check uses it
before anything else is loaded."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable


class Forked:
    """Bytes made in a forked process, for this one to take when it needs them, or to stop.
    Anything wrong there (no fork, a process that fails or dies) gives nothing, and the
    caller does the work itself."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._fd = fd

    @classmethod
    def start(cls, work: Callable[[], bytes]) -> Forked | None:
        if not hasattr(os, "fork"):
            return None
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            return None
        if pid == 0:  # pragma: no cover - the forked process (its result is tested)
            code = 1
            try:
                os.close(read)
                data = work()
                with os.fdopen(write, "wb") as handle:
                    handle.write(data)
                code = 0
            finally:
                os._exit(code)  # nothing of the parent's (buffers, exit functions) runs here
        os.close(write)
        return cls(pid, read)

    def output(self) -> bytes | None:
        """What the work made, once the process has ended well; None otherwise. The process
        has ended on return, either way."""
        try:
            with os.fdopen(self._fd, "rb") as handle:
                data = handle.read()
        except OSError:
            self._end()
            return None
        try:
            _, status = os.waitpid(self.pid, 0)
        except OSError:
            return None
        return data if status == 0 else None

    def stop(self) -> None:
        """Stop the work (when :meth:`output` is not asked for), and wait for its end."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._end()

    def _end(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)
