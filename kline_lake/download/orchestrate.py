"""`kline-lake download`: orchestration shared by every source.

Order of work (nothing is written before everything is validated):
1. `validate_request` (pure): market, dataset, interval, symbols' characters, dates,
   lake path. 2. exchangeInfo (lake cache if fresh, else the exchange) -> symbols exist,
   budgets; the server clock -> default end, start < end. 3. Only then the lake is
   touched: exchangeInfo cached, series fetched and committed.

Sources plug in through one function each, `SourceFetcher(ctx, task, ranges_ms)`: fetch
the planned `[start, end)` ranges (ms) of one series and commit them through
`ctx.sink(task)` (`SeriesSink`: batched commits, progress, counters). `rest` lives in
`kline_lake.download.rest_source`; other names (`archive`, `auto`) are looked up as
`kline_lake.archive.ingest.fetch_series_<name>` (add the name to
`cli.download_cmd.SOURCES` too). A source may call `rest_fetch.fetch_series_rest` for
the ranges it cannot serve. Orchestration, progress and the summary are shared.

Coverage is recorded in the writer's microseconds; sources work in ms (`RunContext.commit`
converts). Ranges handed to a source are what the lake is missing within the request,
computed once per series before fetching (`missing_ms`).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow as pa

from kline_lake.core.aio import gather_or_cancel
from kline_lake.core.intervals import INTERVAL_MS, validate_interval
from kline_lake.core.markets import (
    KLINE_DATASETS,
    Market,
    get_market,
    resolve_base_url,
    validate_dataset,
)
from kline_lake.core.schemas import KEYS, TIME_COLUMNS
from kline_lake.core.timeutil import format_ms, ms_to_us, parse_utc_ms, us_to_ms, us_to_ms_ceil
from kline_lake.download.pages import Range, merge_ranges
from kline_lake.download.progress import DownloadProgress, NullProgress, RunTotals
from kline_lake.errors import InputError
from kline_lake.exchange import exchange_info as xinfo
from kline_lake.exchange.client import ExchangeClient, Session
from kline_lake.exchange.retry import Clock, RetryPolicy, SystemClock
from kline_lake.lake.layout import validate_symbol
from kline_lake.lake.writer import LakeWriter, SeriesKey, check_root

DEFAULT_BATCH_ROWS = 100_000
DEFAULT_SERIES_CONCURRENCY = 8


@dataclass(frozen=True)
class DownloadRequest:
    """A validated download request (see `validate_request`)."""

    market: Market
    dataset: str
    symbols: tuple[str, ...]  # as typed, upper-cased; ("ALL",) = every TRADING symbol
    interval: str | None  # kline datasets only
    start_ms: int
    end_ms: int | None  # exclusive; None = the server's now
    lake: Path
    base_url: str
    source: str = "rest"
    archive_url: str | None = None  # --archive-url; None: see archive_plan.resolve_download_archive_url


def validate_request(*, market: str, dataset: str, symbols: str, interval: str | None,
                     start: str, end: str | None, lake: str | Path,
                     base_url: str | None = None, source: str = "rest",
                     archive_url: str | None = None) -> DownloadRequest:
    """Check everything that needs no network; InputError on the first problem."""
    mkt = get_market(market)
    validate_dataset(mkt, dataset)
    if dataset in KLINE_DATASETS:
        interval = validate_interval(interval or "1m", mkt.name)
    elif interval is not None:
        raise InputError(f"--interval applies only to kline datasets, not {dataset!r}")
    names = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    if not names:
        raise InputError("--symbols: give at least one symbol (or ALL)")
    if "ALL" in names and len(names) > 1:
        raise InputError("--symbols ALL cannot be combined with other symbols")
    for name in names:
        validate_symbol(name)
    if len(set(names)) != len(names):
        raise InputError("--symbols lists a symbol twice")
    start_ms = parse_utc_ms(start, what="--start")
    end_ms = parse_utc_ms(end, what="--end") if end is not None else None
    if end_ms is not None and start_ms >= end_ms:
        raise InputError(f"--start {start} is not before --end {end} (--end is exclusive)")
    root = check_root(Path(lake))
    try:
        url = resolve_base_url(mkt, base_url)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise InputError(f"invalid --base-url: {exc}") from None
    if not url.startswith(("http://", "https://")):
        raise InputError(f"invalid --base-url {url!r}: expected http:// or https://")
    if archive_url is not None and not archive_url.startswith(("http://", "https://")):
        raise InputError(f"invalid --archive-url {archive_url!r}: expected http:// or https://")
    if source == "archive" and mkt.archive_prefix is None:
        raise InputError(f"market {mkt.name!r} has no archive; use --source rest or auto")
    return DownloadRequest(mkt, dataset, names, interval, start_ms, end_ms, root, url, source,
                           archive_url)


@dataclass
class SeriesTask:
    """One series of the run: what to fetch and what was seen."""

    key: SeriesKey
    info: xinfo.SymbolInfo
    start_ms: int
    end_ms: int
    label: str
    holes_ms: list[Range] = field(default_factory=list)
    id_holes: list[Range] = field(default_factory=list)
    first_key_ms: int | None = None
    last_key_ms: int | None = None
    weight: int = 0  # request weight spent on this series (first attempts)

    def see_times(self, first_ms: int, last_ms: int) -> None:
        self.first_key_ms = first_ms if self.first_key_ms is None else min(self.first_key_ms, first_ms)
        self.last_key_ms = last_ms if self.last_key_ms is None else max(self.last_key_ms, last_ms)

    def gaps_found(self) -> int:
        """Holes strictly between the first and last row seen (not before the listing,
        not after a delisting), after merging the pieces pages reported."""
        if self.first_key_ms is None or self.last_key_ms is None:
            return 0
        return sum(1 for a, b in merge_ranges(self.holes_ms)
                   if a > self.first_key_ms and b <= self.last_key_ms)


@dataclass
class RunContext:
    """Everything a source needs, shared by every series of one run."""

    request: DownloadRequest
    client: ExchangeClient
    writer: LakeWriter
    server_now_ms: int
    progress: DownloadProgress
    totals: RunTotals
    batch_rows: int = DEFAULT_BATCH_ROWS
    commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def market(self) -> Market:
        return self.request.market

    def sink(self, task: SeriesTask) -> SeriesSink:
        return SeriesSink(self, task)

    async def commit(self, key: SeriesKey, table: pa.Table, covered_ms: Sequence[Range]) -> None:
        """Commit rows and coverage (ms ranges) durably, one commit at a time, off the loop."""
        covered_us = [(ms_to_us(a), ms_to_us(b)) for a, b in merge_ranges(covered_ms)]
        async with self.commit_lock:
            await asyncio.to_thread(self.writer.commit, key, table, covered_us)
        self.totals.rows_written += table.num_rows
        self.totals.commits += 1


class SeriesSink:
    """Collects a series' pages and commits them in batches of about `batch_rows` rows.

    Coverage is committed only together with (after) the rows it vouches for.
    """

    def __init__(self, ctx: RunContext, task: SeriesTask) -> None:
        self.ctx = ctx
        self.task = task
        self._tables: list[pa.Table] = []
        self._covered: list[Range] = []
        self._rows = 0

    async def add(self, table: pa.Table | None, covered_ms: Sequence[Range] = ()) -> None:
        """Queue rows and the ranges they completely answer; flush when the batch is full."""
        if table is not None and table.num_rows:
            self._tables.append(table)
            self._rows += table.num_rows
            col = table.column(TIME_COLUMNS[self.task.key.dataset]).cast(pa.int64())
            self.task.see_times(us_to_ms(col[0].as_py()), us_to_ms(col[-1].as_py()))
            self.ctx.progress.advance(self.task.label, table.num_rows,
                                      self.ctx.client.stats.weight, self.task.weight)
        self._covered.extend(r for r in covered_ms if r[0] < r[1])
        if self._rows >= self.ctx.batch_rows:
            await self.flush()

    async def flush(self) -> None:
        """Commit everything queued (no-op when empty)."""
        if not self._tables and not self._covered:
            return
        tables, covered = self._tables, self._covered
        self._tables, self._covered, self._rows = [], [], 0
        schema_table = tables[0] if tables else None
        table = (pa.concat_tables(tables) if schema_table is not None
                 else _empty_table(self.task.key.dataset))
        if table.num_rows:
            table = table.sort_by(KEYS[self.task.key.dataset])
        await self.ctx.commit(self.task.key, table, covered)


def _empty_table(dataset: str) -> pa.Table:
    from kline_lake.core.schemas import schema_for

    return schema_for(dataset).empty_table()


SourceFetcher = Callable[[RunContext, SeriesTask, list[Range]], Awaitable[None]]


def source_fetcher(name: str) -> SourceFetcher:
    """The fetch function of source `name` ("rest", or archive-provided ones)."""
    if name == "rest":
        from kline_lake.download.rest_source import fetch_series_rest

        return fetch_series_rest
    try:
        module = importlib.import_module("kline_lake.archive.ingest")
        return getattr(module, f"fetch_series_{name}")
    except (ImportError, AttributeError):
        raise InputError(f"unknown --source {name!r}") from None


def series_key(request: DownloadRequest, symbol: str) -> SeriesKey:
    return SeriesKey(request.market.name, request.dataset, symbol, request.interval)


def expected_rows(request: DownloadRequest, ranges_ms: Sequence[Range]) -> int | None:
    """Upper bound of rows for fixed-interval klines (for the progress bar), else None."""
    if request.interval is None or request.interval not in INTERVAL_MS:
        return None
    step = INTERVAL_MS[request.interval]
    return sum(max(0, -(-(b - a) // step)) for a, b in ranges_ms)


async def prepare(request: DownloadRequest, session: Session, clock: Clock
                  ) -> tuple[ExchangeClient, list[xinfo.SymbolInfo], int, int, dict | None]:
    """Network validation: exchangeInfo (cached or fetched), symbols, server clock.

    Returns (client, symbols, server_now_ms, end_ms, exchange_info_to_cache or None when
    the lake's cache was used). Writes nothing.
    """
    client = session.client(request.market, request.base_url)
    reader = LakeWriter(request.lake) if request.lake.is_dir() else None
    cached = reader.load_exchange_info(request.market.name) if reader else None
    if xinfo.cache_is_fresh(cached, request.base_url, clock.time()):
        info = cached
        xinfo.apply_rate_limits(client, info)
    else:
        info = xinfo.with_cache_meta(await xinfo.fetch_exchange_info(client),
                                     request.base_url, clock.time())
    symbols = xinfo.resolve_symbols(info, list(request.symbols),
                                    by_pair=request.dataset == "index_klines")
    server_now_ms = await xinfo.server_time_ms(client)
    end_ms = request.end_ms if request.end_ms is not None else server_now_ms
    if request.start_ms >= min(end_ms, server_now_ms):
        raise InputError(
            f"--start {format_ms(request.start_ms)} is not before the end "
            f"{format_ms(min(end_ms, server_now_ms))} (the exchange has no data after its "
            f"now, {format_ms(server_now_ms)})"
        )
    return client, symbols, server_now_ms, end_ms, (None if info is cached else info)


async def run_download(request: DownloadRequest, *, progress: DownloadProgress | None = None,
                       transport: httpx.AsyncBaseTransport | None = None,
                       clock: Clock | None = None, retry: RetryPolicy | None = None,
                       batch_rows: int = DEFAULT_BATCH_ROWS,
                       series_concurrency: int = DEFAULT_SERIES_CONCURRENCY,
                       max_in_flight: int | None = None) -> RunTotals:
    """Download every series of `request` into the lake; returns the run's counters."""
    clock = clock or SystemClock()
    progress = progress or NullProgress()
    started = time.monotonic()
    fetch = source_fetcher(request.source)
    kwargs = {} if max_in_flight is None else {"max_in_flight": max_in_flight}
    async with Session(transport=transport, clock=clock, retry=retry, **kwargs) as session:
        client, symbols, now_ms, end_ms, fresh_info = await prepare(request, session, clock)
        writer = LakeWriter(request.lake)  # validation passed: from here the lake is written
        if fresh_info is not None:
            writer.save_exchange_info(request.market.name, fresh_info)
        totals = RunTotals()
        ctx = RunContext(request, client, writer, now_ms, progress, totals, batch_rows)
        tasks = [SeriesTask(series_key(request, s.symbol), s, request.start_ms, end_ms, s.symbol)
                 for s in symbols]
        plans = {t.label: missing_ms(writer, t) for t in tasks}
        progress.start([t.label for t in tasks],
                       {t.label: expected_rows(request, plans[t.label]) for t in tasks})
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
