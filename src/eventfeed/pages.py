"""The static site: index, event and collection pages, stylesheet and host files."""

from __future__ import annotations

from collections.abc import Mapping

from .build import BuildContext


def compile_pages(context: BuildContext) -> Mapping[str, bytes]:
    return {}
