"""The registry of download sources: `--source` name -> fetch function and display.

Explicit, so the CLI's `--source` choices are built from it and a broken source module
fails with its own ImportError instead of reading as "unknown --source". A source is a
`SourceFetcher(ctx, task, ranges_ms)` (see `kline_lake.download.context`).

A source names its fetch function and display as ``"module:attribute"`` and imports them
on use: the archive and REST code load Polars, PyArrow and Numba, which
``kline-lake download --help`` and a rejected command line never need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kline_lake.errors import InputError

if TYPE_CHECKING:
    from kline_lake.download.context import SourceFetcher
    from kline_lake.download.progress import DownloadProgress


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Source:
    """One way to fetch history."""

    name: str
    fetch_target: str  # "module:attribute" of its SourceFetcher
    help: str
    uses_archive: bool
    progress_target: str  # "module:attribute" of the terminal display that fits it

    @property
    def fetch(self) -> SourceFetcher:
        return _load(self.fetch_target)

    @property
    def progress(self) -> Callable[[], DownloadProgress]:
        return _load(self.progress_target)


_HYBRID = "kline_lake.archive.hybrid"
SOURCES: dict[str, Source] = {
    s.name: s for s in (
        Source("auto", f"{_HYBRID}:fetch_series_auto",
               "archive zips for past months/days, REST for the rest", True,
               f"{_HYBRID}:HybridProgress"),
        Source("archive", f"{_HYBRID}:fetch_series_archive", "archive zips only", True,
               f"{_HYBRID}:HybridProgress"),
        Source("rest", "kline_lake.download.rest_source:fetch_series_rest", "REST only", False,
               "kline_lake.download.progress:TqdmProgress"),
    )
}
SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise InputError(f"unknown --source {name!r}; expected one of {', '.join(SOURCE_NAMES)}") from None


def source_fetcher(name: str) -> SourceFetcher:
    """The fetch function of source `name`."""
    return get_source(name).fetch
