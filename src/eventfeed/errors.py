"""Problems found in user input, and the few exceptions eventfeed raises.

The exception tree is small on purpose::

    EventfeedError              any error a user can act on (exit code 1, no traceback)
    ├── ProblemsFound           one or more Problems in records or settings
    ├── OutputError             out/ cannot be written safely (refused target, lock held, disk)
    └── StateError              the previous build's manifest cannot be read

Usage errors (bad options) are click's business and exit with code 2. Anything else that
escapes is a bug and is allowed to show its traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one place in the input, reported compiler style.

    ``path`` is shown as given (relative to the working directory where possible), ``line`` is
    1-based and 0 when the problem concerns a whole file. ``field`` is a dotted path such as
    ``location.lat`` or ``overrides[1].start``; empty for file-level problems.
    """

    path: str
    line: int
    field: str
    message: str
    hint: str = ""
    severity: Severity = Severity.ERROR

    def format_text(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        label = "" if self.severity is Severity.ERROR else "warning: "
        field = f"{self.field}: " if self.field else ""
        text = f"{where}: {label}{field}{self.message}"
        if self.hint:
            text += f"\n    fix: {self.hint}"
        return text

    def format_github(self) -> str:
        """A GitHub Actions workflow command, so the problem shows on the pull request line."""
        kind = "error" if self.severity is Severity.ERROR else "warning"
        props = [f"file={_escape_property(self.path)}"]
        if self.line:
            props.append(f"line={self.line}")
        if self.field:
            props.append(f"title={_escape_property(self.field)}")
        message = self.message + (f" (fix: {self.hint})" if self.hint else "")
        return f"::{kind} {','.join(props)}::{_escape_data(message)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "field": self.field,
            "severity": str(self.severity),
            "message": self.message,
            "hint": self.hint,
        }


def _escape_data(value: str) -> str:
    # The escapes GitHub's runner applies to workflow command data.
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def format_problems(problems: Iterable[Problem], fmt: str) -> str:
    items = sorted(problems)
    if fmt == "json":
        return json.dumps([p.as_dict() for p in items], indent=2, ensure_ascii=False)
    if fmt == "github":
        return "\n".join(p.format_github() for p in items)
    return "\n".join(p.format_text() for p in items)


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.ERROR]


class EventfeedError(Exception):
    """An error the user can act on; the CLI prints it and exits with code 1."""


class ProblemsFound(EventfeedError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(errors_in(self.problems))} problem(s) found")


class OutputError(EventfeedError):
    """The output folder cannot be written safely; nothing was changed."""


class StateError(EventfeedError):
    """The previous build's manifest exists but cannot be used."""
