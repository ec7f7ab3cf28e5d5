"""The registry of download sources: `--source` name -> fetch function and display.

Explicit, so the CLI's `--source` choices are built from it and a broken source module
fails with its own ImportError instead of reading as "unknown --source". A source is a
`SourceFetcher(ctx, task, ranges_ms)` (see `kline_lake.download.context`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kline_lake.archive.hybrid import HybridProgress, fetch_series_archive, fetch_series_auto
from kline_lake.download.context import SourceFetcher
from kline_lake.download.progress import DownloadProgress, TqdmProgress
from kline_lake.download.rest_source import fetch_series_rest
from kline_lake.errors import InputError


@dataclass(frozen=True)
class Source:
    """One way to fetch history."""

    name: str
    fetch: SourceFetcher
    help: str
    uses_archive: bool
    progress: Callable[[], DownloadProgress]  # the terminal display that fits it


SOURCES: dict[str, Source] = {
    s.name: s for s in (
        Source("auto", fetch_series_auto,
               "archive zips for past months/days, REST for the rest", True, HybridProgress),
        Source("archive", fetch_series_archive, "archive zips only", True, HybridProgress),
        Source("rest", fetch_series_rest, "REST only", False, TqdmProgress),
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
