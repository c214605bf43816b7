#!/usr/bin/env python3
"""Set up and run eventfeed from a fresh clone with nothing but Python 3.11+.

    python3 dev.py build     # create .venv if needed, install, build events/ into out/
    python3 dev.py test      # the same, then lint, format check, type check and the test suite

Extra arguments after the command go to ``eventfeed build`` or to ``pytest``.
The virtual environment is reinstalled only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv(extra: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs before any install
        sys.exit("eventfeed needs Python 3.11 or newer")
    stamp = VENV / f".installed-{extra or 'base'}"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"+ creating {VENV.name}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extra}]" if extra else "."
    run(
        BIN / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--editable",
        target,
    )
    stamp.write_text(wanted)


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "build":
        ensure_venv("")
        run(BIN / "eventfeed", "build", *rest)
    elif command == "test":
        ensure_venv("test")
        run(BIN / "ruff", "check", "src", "tests", "dev.py", "benchmarks")
        run(BIN / "ruff", "format", "--check", "src", "tests", "dev.py", "benchmarks")
        run(BIN / "mypy")
        run(BIN / "python", "-m", "pytest", *rest)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
