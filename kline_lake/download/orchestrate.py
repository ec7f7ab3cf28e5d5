"""`kline-lake download`: orchestration shared by every source.

Order of work (nothing is written before everything is validated):
1. `validate_request` (`kline_lake.download.request`, pure): market, dataset, interval,
   symbols' characters, dates, lake path. 2. exchangeInfo (lake cache if fresh, else the
   exchange) -> symbols exist, budgets; the server clock -> default end, start < end.
3. Only then the lake is touched: exchangeInfo cached, series fetched and committed.

The source (`rest`, `archive`, `auto`) is looked up in the registry
`kline_lake.download.sources`; what a source receives is in `kline_lake.download.context`.
Ranges handed to a source are what the lake is missing within the request, computed once
per series before fetching (`missing_ms`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx

from kline_lake.core.aio import gather_or_cancel
from kline_lake.core.intervals import INTERVAL_MS
from kline_lake.core.ranges import Range
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import format_ms, format_us, ms_to_us, us_to_ms_ceil
from kline_lake.download.context import DEFAULT_BATCH_ROWS, RunContext, SeriesTask
from kline_lake.download.progress import DownloadProgress, NullProgress, RunTotals
from kline_lake.download.request import DownloadRequest, is_pattern
from kline_lake.download.select import select_symbols
from kline_lake.download.sources import source_fetcher
from kline_lake.errors import InputError
from kline_lake.exchange import exchange_info as xinfo
from kline_lake.exchange.client import ExchangeClient, Session
from kline_lake.exchange.retry import Clock, RetryPolicy, SystemClock
from kline_lake.lake.roots import is_object_store
from kline_lake.lake.writer import LakeWriter

DEFAULT_SERIES_CONCURRENCY = 8


def series_key(request: DownloadRequest, symbol: str, interval: str | None = None) -> SeriesKey:
    return SeriesKey(request.market.name, request.dataset, symbol,
                     interval if interval is not None else request.interval)


def expected_rows(interval: str | None, ranges_ms: Sequence[Range]) -> int | None:
    """Upper bound of rows for fixed-interval klines (for the progress bar), else None."""
    if interval is None or interval not in INTERVAL_MS:
        return None
    step = INTERVAL_MS[interval]
    return sum(max(0, -(-(b - a) // step)) for a, b in ranges_ms)


@dataclass(frozen=True)
class Prepared:
    """What the network validation found (`prepare`); nothing is written yet."""

    client: ExchangeClient
    symbols: list[xinfo.SymbolInfo]
    server_now_ms: int
    start_ms: int
    end_ms: int
    fresh_info: dict | None  # exchangeInfo to cache, None when the lake's cache was used


async def prepare(request: DownloadRequest, session: Session, clock: Clock,
                  progress: DownloadProgress | None = None) -> Prepared:
    """Network validation: exchangeInfo (cached or fetched), symbols, server clock, and
    the range (`--days` counts back from the end). Writes nothing.

    Waits the exchange imposes (429/418), an `--end` after the exchange's now and the
    symbols a pattern or `--quote` selected are told to `progress.note`.
    """
    progress = progress or NullProgress()
    client = session.client(request.market, request.base_url)
    client.on_wait = progress.note
    exists = is_object_store(request.lake) or request.lake.is_dir()
    reader = LakeWriter(request.lake) if exists else None
    cached = reader.load_exchange_info(request.market.name) if reader else None
    if xinfo.cache_is_fresh(cached, request.base_url, clock.time()):
        info = cached
        xinfo.apply_rate_limits(client, info)
    else:
        info = xinfo.with_cache_meta(await xinfo.fetch_exchange_info(client),
                                     request.base_url, clock.time())
    symbols = select_symbols(info, list(request.symbols), request.quote,
                             by_pair=request.dataset == "index_klines")
    _say_selection(request, symbols, progress)
    server_now_ms = await xinfo.server_time_ms(client)
    end_ms = request.end_ms if request.end_ms is not None else server_now_ms
    start_ms = request.resolve_start_ms(min(end_ms, server_now_ms))
    if start_ms >= min(end_ms, server_now_ms):
        raise InputError(
            f"--start {format_ms(start_ms)} is not before the end "
            f"{format_ms(min(end_ms, server_now_ms))} (the exchange has no data after its "
            f"now, {format_ms(server_now_ms)})"
        )
    if end_ms > server_now_ms:
        progress.note(f"--end {format_us(ms_to_us(end_ms))} is after the exchange's now "
                      f"({format_us(ms_to_us(server_now_ms))}): downloading up to now")
    return Prepared(client, symbols, server_now_ms, start_ms, end_ms,
                    None if info is cached else info)


def _say_selection(request: DownloadRequest, symbols: list[xinfo.SymbolInfo],
                   progress: DownloadProgress) -> None:
    if request.quote is None and not any(is_pattern(s) for s in request.symbols):
        return  # named symbols (or ALL, as before): nothing was guessed
    asked = ",".join(request.symbols)
    what = f"--symbols {asked}" + (f" --quote {request.quote}" if request.quote else "")
    names = [s.symbol for s in symbols]
    shown = ", ".join(names[:12]) + (f" ... ({len(names) - 12} more)" if len(names) > 12 else "")
    progress.note(f"{what}: {len(names)} symbol{'s' if len(names) != 1 else ''}: {shown}")


def make_tasks(request: DownloadRequest, prepared: Prepared) -> list[SeriesTask]:
    """One task per symbol and interval (labelled `SYMBOL` or `SYMBOL interval` when the
    request has several intervals)."""
    intervals = request.intervals or (None,)
    return [SeriesTask(series_key(request, s.symbol, iv), s, prepared.start_ms, prepared.end_ms,
                       s.symbol if len(intervals) == 1 else f"{s.symbol} {iv}")
            for s in prepared.symbols for iv in intervals]


async def run_download(request: DownloadRequest, *, progress: DownloadProgress | None = None,
                       transport: httpx.AsyncBaseTransport | None = None,
                       clock: Clock | None = None, retry: RetryPolicy | None = None,
                       batch_rows: int = DEFAULT_BATCH_ROWS,
                       series_concurrency: int = DEFAULT_SERIES_CONCURRENCY,
                       max_in_flight: int | None = None,
                       totals: RunTotals | None = None,
                       session: Session | None = None) -> RunTotals:
    """Download every series of `request` into the lake; returns the run's counters.

    `totals`, when given, is filled in place, also when the run fails or is cancelled
    (Ctrl-C): it then counts exactly what was committed. `session`, when given (a
    long-lived caller such as the follower), is used and left open: its HTTP pool and
    weight limiter are shared with the caller's other requests, and the request counters
    in `totals` are then the session client's running totals.
    """
    clock = clock or SystemClock()
    progress = progress or NullProgress()
    totals = totals if totals is not None else RunTotals()
    started = time.monotonic()
    fetch = source_fetcher(request.source)
    kwargs = {} if max_in_flight is None else {"max_in_flight": max_in_flight}
    async with _session_scope(session, transport=transport, clock=clock, retry=retry,
                              **kwargs) as session:
        prepared = await prepare(request, session, clock, progress)
        client = prepared.client
        writer = LakeWriter(request.lake)  # validation passed: from here the lake is written
        if prepared.fresh_info is not None:
            writer.save_exchange_info(request.market.name, prepared.fresh_info)
        ctx = RunContext(request, client, writer, prepared.server_now_ms, progress, totals,
                         batch_rows)
        tasks = make_tasks(request, prepared)
        plans = {t.label: missing_ms(writer, t) for t in tasks}
        progress.start([t.label for t in tasks],
                       {t.label: expected_rows(t.key.interval, plans[t.label]) for t in tasks})
        gate = asyncio.Semaphore(series_concurrency)

        async def one(task: SeriesTask) -> None:
            async with gate:
                await fetch(ctx, task, plans[task.label])
                progress.finish(task.label)

        try:
            await gather_or_cancel([one(t) for t in tasks])
        finally:
            progress.close()
            _fill_totals(totals, client, tasks, time.monotonic() - started)
    return totals


@contextlib.asynccontextmanager
async def _session_scope(session: Session | None, **kwargs) -> AsyncIterator[Session]:
    """`session` as is (left open), or a new one closed on exit."""
    if session is not None:
        yield session
        return
    async with Session(**kwargs) as own:
        yield own


def missing_ms(writer: LakeWriter, task: SeriesTask) -> list[Range]:
    """The parts of the task's range the lake does not cover yet, in ms."""
    gaps = writer.missing(task.key, ms_to_us(task.start_ms), ms_to_us(task.end_ms))
    return [(us_to_ms_ceil(a), us_to_ms_ceil(b)) for a, b in gaps if us_to_ms_ceil(a) < us_to_ms_ceil(b)]


def _fill_totals(totals: RunTotals, client: ExchangeClient, tasks: list[SeriesTask],
                 seconds: float) -> None:
    stats = client.stats
    totals.requests = stats.requests
    totals.weight = stats.weight
    totals.rate_limited_429 = stats.rate_limited_429
    totals.banned_418 = stats.banned_418
    totals.retries = stats.retries
    totals.gaps_found = sum(t.gaps_found() for t in tasks)
    totals.id_holes = sum(len(t.id_holes) for t in tasks)
    totals.series = len(tasks)
    totals.seconds = seconds
