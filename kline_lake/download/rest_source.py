"""The REST source: thin I/O loops around the pure page plans of `pagination`.

`fetch_series_rest(ctx, task, ranges_ms)` fetches the given ranges of one series and
commits them through the series sink. Long ranges are split into independent chunks
that run concurrently (the shared limiter keeps the sum within the budget).
"""

from __future__ import annotations

import math
from typing import Any

from kline_lake.core import ranges as rg
from kline_lake.core.aio import gather_or_cancel
from kline_lake.core.intervals import INTERVAL_MS, ceil_open_ms, floor_open_ms
from kline_lake.core.markets import ARCHIVE_ONLY_DATASETS, ENDPOINTS, KLINE_DATASETS
from kline_lake.core.ranges import Range
from kline_lake.core.timeutil import MS_PER_DAY, MS_PER_HOUR, format_us, ms_to_us
from kline_lake.download import pages as pg
from kline_lake.download.context import RunContext, SeriesTask
from kline_lake.download.rest_metrics import fetch_metrics_rest
from kline_lake.download.rest_rows import (
    parse_rest_agg_trades,
    parse_rest_funding,
    parse_rest_klines,
)
from kline_lake.download.rest_trades import fetch_trades_rest
from kline_lake.errors import InputError, TransientError
from kline_lake.exchange.weights import best_page_limit

CHUNKS_PER_SERIES = 8  # chunks of one series fetched at once
TARGET_CHUNKS = 32  # aim for this many chunks per series when the range is long
MAX_PAGES_PER_CHUNK = 16


async def fetch_series_rest(ctx: RunContext, task: SeriesTask, ranges_ms: list[Range]) -> None:
    """Fetch `ranges_ms` of the task's series from REST and commit them (batched)."""
    dataset = task.key.dataset
    sink = ctx.sink(task)
    if dataset == "agg_trades":
        await _fetch_agg_trades(ctx, task, sink, ranges_ms)
    elif dataset == "trades":
        await fetch_trades_rest(ctx, task, sink, ranges_ms, _get, _parse,
                                _trade_chunks)
    elif dataset == "funding":
        await _fetch_funding(ctx, task, sink, ranges_ms)
    elif dataset == "metrics":
        await fetch_metrics_rest(ctx, task, sink, ranges_ms, _get, _parse)
    elif dataset in ARCHIVE_ONLY_DATASETS:
        _no_rest_history(ctx, task, ranges_ms)
    else:
        await _fetch_klines(ctx, task, sink, ranges_ms)
    await sink.flush()


def _no_rest_history(ctx: RunContext, task: SeriesTask, ranges_ms: list[Range]) -> None:
    """book_ticker, book_depth: the exchange publishes no REST history of them (only the
    archive's daily files, the day after), so what the archive lacks is said and skipped."""
    ctx.progress.note(f"{task.label}: {task.key.dataset} has no REST history (archive only); "
                      f"{len(ranges_ms)} range(s) not in the archive yet were skipped")
    name = "ranges skipped (not on REST)"
    ctx.totals.extra[name] = ctx.totals.extra.get(name, 0) + len(ranges_ms)


async def _get(ctx: RunContext, task: SeriesTask, endpoint: str, params: dict[str, Any],
               **kwargs: Any) -> Any:
    """One REST call for `task`, its weight counted on the series (for progress)."""
    weight = kwargs.get("weight")
    task.weight += weight if weight is not None else ctx.client.weight_of(endpoint, params.get("limit"))
    return await ctx.client.get(endpoint, params, **kwargs)


def _parse(fn, rows: Any, *args: Any):
    """Parse a page; a shape problem in a 200 answer is a transient (malformed) body."""
    try:
        return fn(rows, *args)
    except InputError as exc:
        raise TransientError(f"malformed exchange answer: {exc}") from None


# ----------------------------------------------------------------- klines
def _kline_base_params(task: SeriesTask) -> dict[str, Any]:
    if task.key.dataset == "index_klines":
        return {"pair": task.info.pair, "interval": task.key.interval}
    return {"symbol": task.key.symbol, "interval": task.key.interval}


def pages_per_chunk(total_ms: int, interval: str, limit: int) -> int:
    """Enough pages per chunk for about TARGET_CHUNKS chunks, within [1, 16]."""
    slot_ms = INTERVAL_MS.get(interval, 31 * MS_PER_DAY)
    pages = math.ceil(total_ms / (slot_ms * limit)) if total_ms > 0 else 1
    return max(1, min(MAX_PAGES_PER_CHUNK, math.ceil(pages / TARGET_CHUNKS)))


async def _fetch_klines(ctx: RunContext, task: SeriesTask, sink, ranges_ms: list[Range]) -> None:
    market, interval = ctx.market, task.key.interval
    upper = pg.kline_upper_bound_ms(task.end_ms, interval, ctx.server_now_ms)
    ranges = rg.clip(ranges_ms, task.start_ms, upper)
    if not ranges:
        return
    endpoint = ENDPOINTS[task.key.dataset]
    limit = best_page_limit(market, task.key.dataset)
    slot_ms = INTERVAL_MS.get(interval, 31 * MS_PER_DAY)
    if ranges[-1][1] - ranges[0][0] > slot_ms * limit:
        ranges = await clamp_to_listing(ctx, task, sink, ranges)
    window = pg.CM_KLINE_WINDOW_MS if market.name == "cm" else None
    total = sum(b - a for a, b in ranges)
    ppc = pages_per_chunk(total, interval, limit)
    chunks = [c for a, b in ranges for c in pg.plan_kline_chunks(a, b, interval, limit, ppc, window)]
    await gather_or_cancel([_kline_chunk(ctx, task, sink, endpoint, limit, c) for c in chunks],
                           CHUNKS_PER_SERIES)


# ---------------------------------------------------------------- listing
def _probe_request(task: SeriesTask) -> tuple[str, dict[str, Any], str]:
    """(endpoint, params without startTime, what it finds) of the listing probe: the
    series' own klines, or for trades and funding the symbol's 1m klines (no trade and no
    funding before the first minute of trading)."""
    if task.key.dataset in KLINE_DATASETS:
        endpoint = ENDPOINTS[task.key.dataset]
        kind = "" if task.key.dataset == "klines" else task.key.dataset.replace("_klines", " price ")
        return endpoint, _kline_base_params(task), f"{task.key.interval} {kind}kline".replace("  ", " ")
    return "klines", {"symbol": task.key.symbol, "interval": "1m"}, "1m kline"


async def clamp_to_listing(ctx: RunContext, task: SeriesTask, sink,
                           ranges: list[Range]) -> list[Range]:
    """Drop what lies before the series' first row, so no page and no archive file is
    asked for before the listing; the dropped part is recorded as confirmed empty and,
    when whole slots are dropped, said in one line through the progress display.

    One probe per series and run (`limit=1`, `startTime` only: valid on every market
    whatever the span, COIN-M's 200-day rule applies to startTime..endTime). exchangeInfo's
    `onboardDate` spares it when the ranges start at or after it; it is not used as the
    start itself: on the real exchange the first kline can be earlier (USD-M BTCUSDT
    onboards 2019-09-25, its klines start 2019-09-08).
    """
    if not ranges or task.listing_probed:
        return ranges
    task.listing_probed = True
    lo = ranges[0][0]
    if task.info.onboard_ms is not None and lo >= task.info.onboard_ms:
        return ranges
    endpoint, params, what = _probe_request(task)
    # From the open of the kline holding `lo`: if that kline exists, nothing is clamped
    # (a trade or a funding time inside it may lie after `lo`).
    step_iv = task.key.interval if task.key.dataset in KLINE_DATASETS else "1m"
    params = {**params, "startTime": floor_open_ms(lo, step_iv), "limit": 1}
    rows = await _get(ctx, task, endpoint, params, expect=list)
    first = int(rows[0][0]) if rows else None
    if first is not None and first <= ceil_open_ms(lo, step_iv):
        # listed already: at most the part of a slot before its first open is empty,
        # which the pages prove anyway (and a month stays whole for the archive plan)
        return ranges
    todo, empty = pg.clamp_to_first_open(ranges, first, ranges[-1][1])
    if empty:
        await sink.add(None, empty)
    _say_clamp(ctx, task, lo, first, what)
    return todo


def _say_clamp(ctx: RunContext, task: SeriesTask, lo: int, first: int | None, what: str) -> None:
    since = f"--start {_when(lo)}" if lo == task.start_ms else _when(lo)
    if first is None:
        ctx.progress.note(f"{task.label}: the exchange has no {what} at or after {since}; "
                          f"nothing to fetch")
    elif task.key.dataset in KLINE_DATASETS:
        ctx.progress.note(f"{task.label}: the first {what} at or after {since} opens "
                          f"{_when(first)}; nothing to fetch before it")
    else:
        ctx.progress.note(f"{task.label}: the first {what} at or after {since} opens "
                          f"{_when(first)}; no {task.key.dataset} before it to fetch")


def _when(ts_ms: int) -> str:
    return format_us(ms_to_us(ts_ms))


async def _kline_chunk(ctx: RunContext, task: SeriesTask, sink, endpoint: str, limit: int,
                       chunk: Range) -> None:
    cursor, chunk_end = chunk
    base = _kline_base_params(task)
    while cursor is not None and cursor < chunk_end:
        params = {**base, **pg.kline_page_params(cursor, chunk_end, limit)}
        rows = await _get(ctx, task, endpoint, params, expect=list)
        page = pg.interpret_kline_page(rows, cursor, chunk_end, limit, task.key.interval,
                                       ctx.server_now_ms)
        table = _parse(parse_rest_klines, page.rows, task.key.dataset) if page.rows else None
        task.holes_ms.extend(page.holes)
        await sink.add(table, [page.covered] if page.covered else [])
        cursor = page.next_cursor_ms


# ------------------------------------------------------------- agg trades
def agg_chunk_ms(total_ms: int) -> int:
    """Chunk length for agg trades: about TARGET_CHUNKS chunks, whole hours, 1 h..1 day."""
    per = math.ceil(total_ms / TARGET_CHUNKS / MS_PER_HOUR) * MS_PER_HOUR
    return max(MS_PER_HOUR, min(MS_PER_DAY, per))


async def _fetch_agg_trades(ctx: RunContext, task: SeriesTask, sink, ranges_ms: list[Range]) -> None:
    upper = min(task.end_ms, ctx.server_now_ms)
    ranges = rg.clip(ranges_ms, task.start_ms, upper)
    if not ranges:
        return
    ranges = await clamp_to_listing(ctx, task, sink, ranges)
    step = agg_chunk_ms(sum(b - a for a, b in ranges))
    chunks = [c for a, b in ranges for c in pg.plan_time_chunks(a, b, step)]
    spans: list[tuple[int, int, int | None, int | None]] = []
    await gather_or_cancel([_agg_chunk(ctx, task, sink, c, upper, spans) for c in chunks],
                           CHUNKS_PER_SERIES)
    task.id_holes.extend(cross_chunk_id_holes(spans))


def _trade_chunks(ranges: list[Range]) -> list[Range]:
    """Time chunks of a trades range: as for agg trades (whole hours, 1 h..1 day)."""
    step = agg_chunk_ms(sum(b - a for a, b in ranges))
    return [c for a, b in ranges for c in pg.plan_time_chunks(a, b, step)]


def cross_chunk_id_holes(spans: list[tuple[int, int, int | None, int | None]]) -> list[Range]:
    """Id holes between chunks adjacent in time: (start_ms, end_ms, first_id, last_id)
    per chunk, ids None for a chunk without trades."""
    holes = []
    prev_end, prev_last = None, None
    for start, end, first, last in sorted(spans):
        if prev_end != start:
            prev_last = None
        if first is not None:
            if prev_last is not None and first > prev_last + 1:
                holes.append((prev_last + 1, first))
            prev_last = last
        prev_end = end
    return holes


async def _agg_chunk(ctx: RunContext, task: SeriesTask, sink, chunk: Range, cap_ms: int,
                     spans: list[tuple[int, int, int | None, int | None]]) -> None:
    start, chunk_end = chunk
    limit = ctx.market.agg_trades_max_limit
    futures = ctx.market.is_futures
    confirmed = start
    window_t: int | None = start
    from_id: int | None = None
    first_id = last_id = None
    while True:
        if from_id is None:
            window = pg.agg_window_params(window_t, chunk_end, futures, limit)
            params = {"symbol": task.key.symbol, **window}
        else:
            window = None
            params = {"symbol": task.key.symbol, **pg.agg_from_id_params(from_id, limit)}
        rows = await _get(ctx, task, "aggTrades", params, expect=list)
        page = pg.interpret_agg_page(rows, chunk_end_ms=chunk_end, cap_ms=cap_ms, limit=limit,
                                     from_id=from_id, window=window)
        task.id_holes.extend(page.holes)
        table = _parse(parse_rest_agg_trades, page.rows) if page.rows else None
        if page.rows:
            first_id = int(page.rows[0]["a"]) if first_id is None else first_id
            last_id = int(page.rows[-1]["a"])
        if page.covered_end_ms is not None:
            await sink.add(table, [(confirmed, page.covered_end_ms)])
            break
        # Trades come in time order: everything before the last trade's time is in hand.
        reached = page.next_window_ms if page.next_window_ms is not None else int(page.rows[-1]["T"])
        await sink.add(table, [(confirmed, reached)] if reached > confirmed else [])
        confirmed = max(confirmed, reached)
        from_id, window_t = page.next_from_id, page.next_window_ms
    spans.append((start, chunk_end, first_id, last_id))


# ---------------------------------------------------------------- funding
async def _fetch_funding(ctx: RunContext, task: SeriesTask, sink, ranges_ms: list[Range]) -> None:
    upper = min(task.end_ms, ctx.server_now_ms)
    ranges = rg.clip(ranges_ms, task.start_ms, upper)
    limit = ctx.market.funding_max_limit
    weight = ctx.client.weight_of("fundingRate", limit)
    for a, b in ranges:
        cursor: int | None = a
        while cursor is not None:
            params = {"symbol": task.key.symbol, **pg.funding_params(cursor, b, limit)}
            rows = await _get(ctx, task, "fundingRate", params, weight=weight,
                                        pools=("funding",), expect=list)
            page = pg.interpret_funding_page(rows, cursor, b, limit, upper)
            table = _parse(parse_rest_funding, page.rows) if page.rows else None
            await sink.add(table, [page.covered] if page.covered else [])
            cursor = page.next_cursor_ms
