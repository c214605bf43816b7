"""The committed out/ is what the code makes of the shipped events/, byte for byte.

Every page, calendar and feed of the shipped records (the day of that build included: a check
reuses the day of the build in out/) is compared, so any change of output shows here. After
an intended change, rebuild it with ``python3 dev.py build`` and commit out/ with it.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from eventfeed.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_out_is_what_a_build_makes() -> None:
    args = ["build", "--check", "--events", str(ROOT / "events"), "--out", str(ROOT / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "is up to date" in result.output
