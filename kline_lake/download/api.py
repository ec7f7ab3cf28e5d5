"""The public download API: `download(...)` and `Lake`, the catalog that can also download.

`kline_lake.download_data(...)` and `kline_lake.Lake(root).download(...)` (the package
face exposes both) run the same download as `kline-lake download`, with the same
arguments as its options, and return the run's counters (`RunTotals`;
`summary_line(totals)` is the CLI's last line).

A decision on layering: the lake is the layer below the downloader and may not import it,
so `Lake.download` lives here, on a subclass of the read-only catalog
(`kline_lake.lake.catalog.Lake`); the face's `kline_lake.Lake` is this class.

Works inside a running event loop too (Jupyter): the download then runs on a worker
thread with its own loop, so a notebook calls `lake.download(...)` without `await`.
Use `download_async` to await it instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from kline_lake.core.timeutil import format_us, to_us
from kline_lake.download.progress import DownloadProgress, NullProgress, RunTotals, summary_line
from kline_lake.download.request import validate_request
from kline_lake.lake import catalog
from kline_lake.lake.roots import check_root, is_object_store
from kline_lake.lake.storage import Storage

T = TypeVar("T")


async def download_async(lake: str | Path, market: str, data: str,
                         symbols: str | Sequence[str] | None = None, *,
                         interval: str | Sequence[str] | None = None, start: Any = None,
                         end: Any = None, days: int | None = None, quote: str | None = None,
                         source: str = "auto", base_url: str | None = None,
                         archive_url: str | None = None,
                         progress: DownloadProgress | None = None) -> RunTotals:
    """`download`, to be awaited."""
    # imported here: `from kline_lake import Lake` should not load the sources (numba)
    from kline_lake.download.orchestrate import run_download

    request = validate_request(market=market, dataset=data, symbols=symbols, interval=interval,
                               start=_text(start, "start"), end=_text(end, "end"), lake=lake, base_url=base_url,
                               source=source, archive_url=archive_url, days=days, quote=quote)
    return await run_download(request, progress=progress or NullProgress())


def download(lake: str | Path, market: str, data: str,
             symbols: str | Sequence[str] | None = None, *,
             interval: str | Sequence[str] | None = None, start: Any = None, end: Any = None,
             days: int | None = None, quote: str | None = None, source: str = "auto",
             base_url: str | None = None, archive_url: str | None = None,
             progress: DownloadProgress | None = None) -> RunTotals:
    """Download into the lake at `lake` what it does not hold yet; returns the counters.

    The arguments are `kline-lake download`'s options: `market` (spot, um, cm, us),
    `data` (klines, agg_trades, funding, mark_klines, index_klines, premium_klines),
    `symbols` (names, patterns such as "BTC*", or "ALL"; a string "A,B" or a list),
    `interval` ("1h", "1m,1h,1d" or a list; kline datasets), `start` (a date string,
    `datetime` or `date`; UTC) or `days`, `end` (exclusive, default now), `quote`,
    `source` (auto, archive, rest), `base_url`/`archive_url` (e.g. a fake exchange's).
    Notes (waits, clamped ranges) go to `progress` (default: kept in
    `NullProgress().notes`, not printed). Bad input raises InputError before anything
    is written.
    """
    return _run(download_async(lake, market, data, symbols, interval=interval, start=start,
                               end=end, days=days, quote=quote, source=source, base_url=base_url,
                               archive_url=archive_url, progress=progress))


class Lake(catalog.Lake):
    """The lake catalog (`kline_lake.lake.catalog.Lake`) plus `download`.

    `Lake(root)` needs an existing lake, as the catalog does (a typo is an error, not an
    empty lake); `Lake(root, create=True)` makes the directory first, for a lake that
    is about to be downloaded into.
    """

    def __init__(self, root: str | Path, *, create: bool = False) -> None:
        if create and not is_object_store(root):  # an object store needs no directory
            check_root(Path(root)).mkdir(parents=True, exist_ok=True)
        super().__init__(root)

    def download(self, market: str, data: str, symbols: str | Sequence[str] | None = None,
                 **kwargs: Any) -> RunTotals:
        """Download into this lake (arguments as `kline_lake.download.api.download`);
        queries afterwards see the new rows (views are rebuilt on each call)."""
        root = self.root.uri() if isinstance(self.root, Storage) else self.root
        return download(root, market, data, symbols, **kwargs)


def _text(value: Any, what: str) -> str | None:
    """A `start`/`end` as the CLI would spell it: strings as given; a `datetime` (naive =
    UTC), `date`, pandas `Timestamp`, `numpy.datetime64` or epoch ms/us int in ISO form."""
    if value is None or isinstance(value, str):
        return value
    ts_us = to_us(value, what)
    return None if ts_us is None else format_us(ts_us)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion: here, or on a worker thread when this thread already runs
    an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 (handed back to the caller's thread)
            result["error"] = exc

    worker = threading.Thread(target=work, name="kline-lake-download")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


__all__ = ["Lake", "RunTotals", "download", "download_async", "summary_line"]
