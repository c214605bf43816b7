"""The benchmark's synthetic records, for tests that need many realistic ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def generate(root: Path, n: int) -> Path:
    """``n`` records as ``benchmarks/bench.py`` generates them, in ``root/events``."""
    spec = importlib.util.spec_from_file_location("eventfeed_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    events: Path = module.generate(root, n)
    return events
