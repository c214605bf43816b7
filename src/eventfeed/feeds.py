"""Atom 1.0, RSS 2.0 and JSON Feed 1.1 news feeds."""

from __future__ import annotations

from collections.abc import Mapping

from .build import BuildContext


def compile_feeds(context: BuildContext) -> Mapping[str, bytes]:
    return {}
