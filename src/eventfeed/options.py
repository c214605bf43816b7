"""Options shared by the commands, so --events and --out mean the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def events_option(help: str = "Folder of event records (with site.yaml).") -> Decorator:
    return click.option(
        "--events",
        "events_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("events"),
        show_default=True,
        help=help,
    )


def out_option(
    help: str = "Output folder (replaced as a whole by a successful build).",
) -> Decorator:
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("out"),
        show_default=True,
        help=help,
    )
