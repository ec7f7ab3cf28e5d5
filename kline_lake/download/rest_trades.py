"""The REST source of `trades` (every trade): `historicalTrades` paged by `fromId`.

`GET /api/v3/historicalTrades` (spot, Binance.US), `/fapi/v1/historicalTrades`,
`/dapi/v1/historicalTrades` ("Old trade lookup", https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#old-trade-lookup,
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Old-Trades-Lookup)
take only `symbol`, `limit` and `fromId`, and need the `X-MBX-APIKEY` header. A time
range is therefore located through `aggTrades` (by time; its first aggregate trade's `f`
is the first trade id at or after the start), then paged by id until a trade at or after
the end (or a short page: no newer trades yet).

The key comes from the environment variable `BINANCE_API_KEY`; it is sent as a header
only, never logged, never in a message or in the lake. Without it the source is skipped
with one line through the progress display (the archive still serves its days).

The pure part (`interpret_trades_page`) decides what a page proves; the loop is I/O.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kline_lake.core import ranges as rg
from kline_lake.core.aio import gather_or_cancel
from kline_lake.core.markets import ENV_API_KEY
from kline_lake.core.ranges import Range
from kline_lake.download import pages as pg
from kline_lake.download.context import RunContext, SeriesTask
from kline_lake.download.rest_rows import parse_rest_trades

API_KEY_HEADER = "X-MBX-APIKEY"


def api_key_headers(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The header carrying the API key, or None when `BINANCE_API_KEY` is unset/blank."""
    key = (os.environ if env is None else env).get(ENV_API_KEY, "").strip()
    return {API_KEY_HEADER: key} if key else None


@dataclass(frozen=True)
class TradesPage:
    """What one historicalTrades answer proves: the rows inside the chunk, the next
    `fromId` (None when done), whether the chunk's end was reached, and id holes."""

    rows: list[Mapping[str, Any]]
    next_from_id: int | None
    done: bool
    holes: list[Range] = field(default_factory=list)


def interpret_trades_page(rows: Sequence[Mapping[str, Any]], from_id: int, end_ms: int,
                          limit: int) -> TradesPage:
    """Pure. Rows at or after `end_ms` end the chunk; a page shorter than `limit` means no
    newer trades exist yet (done up to the cap). Ids must run on from `from_id`."""
    ordered = sorted(rows, key=lambda r: int(r["id"]))
    kept = [r for r in ordered if int(r["time"]) < end_ms]
    holes, expected = [], from_id
    for row in kept:
        tid = int(row["id"])
        if tid > expected:
            holes.append((expected, tid))
        expected = max(expected, tid + 1)
    if len(kept) < len(ordered) or len(rows) < limit or not kept:
        return TradesPage(kept, None, True, holes)
    return TradesPage(kept, int(kept[-1]["id"]) + 1, False, holes)


async def fetch_trades_rest(ctx: RunContext, task: SeriesTask, sink, ranges_ms: list[Range],
                            get, parse, chunks_of) -> None:
    """Fetch `ranges_ms` of a trades series. `get`/`parse` are rest_source's call and
    parse wrappers, `chunks_of(ranges)` its time chunking (shared with agg trades)."""
    headers = api_key_headers()
    if headers is None:
        ctx.progress.note(f"{task.label}: trades from REST need an API key (set {ENV_API_KEY}, "
                          f"sent as {API_KEY_HEADER}); REST skipped, the archive serves what it has")
        ctx.totals.extra["ranges skipped (no API key)"] = \
            ctx.totals.extra.get("ranges skipped (no API key)", 0) + len(ranges_ms)
        return
    upper = min(task.end_ms, ctx.server_now_ms)
    ranges = rg.clip(ranges_ms, task.start_ms, upper)
    if not ranges:
        return
    jobs = [_trades_chunk(ctx, task, sink, c, upper, headers, get, parse) for c in chunks_of(ranges)]
    await gather_or_cancel(jobs, 8)


async def _first_trade_id(ctx: RunContext, task: SeriesTask, start: int, end: int, get) -> int | None:
    """The id of the first trade at or after `start` and before `end`, via aggTrades."""
    t: int | None = start
    while t is not None and t < end:
        window = pg.agg_window_params(t, end, ctx.market.is_futures, 1)
        rows = await get(ctx, task, "aggTrades", {"symbol": task.key.symbol, **window}, expect=list)
        if rows:
            return int(rows[0]["f"]) if int(rows[0]["T"]) < end else None
        t = int(window["endTime"]) + 1
    return None


async def _trades_chunk(ctx: RunContext, task: SeriesTask, sink, chunk: Range, cap_ms: int,
                        headers: dict[str, str], get, parse) -> None:
    start, chunk_end = chunk
    end = min(chunk_end, cap_ms)
    from_id = await _first_trade_id(ctx, task, start, end, get)
    if from_id is None:
        await sink.add(None, [(start, end)])
        return
    limit = ctx.market.trades_max_limit
    confirmed = start
    while True:
        params = {"symbol": task.key.symbol, "fromId": from_id, "limit": limit}
        rows = await get(ctx, task, "historicalTrades", params, expect=list, headers=headers)
        page = interpret_trades_page(rows, from_id, end, limit)
        task.id_holes.extend(page.holes)
        table = parse(parse_rest_trades, page.rows) if page.rows else None
        if page.done:
            await sink.add(table, [(confirmed, end)])
            return
        reached = int(page.rows[-1]["time"])  # trades at this ms may continue next page
        await sink.add(table, [(confirmed, reached)] if reached > confirmed else [])
        confirmed = max(confirmed, reached)
        from_id = page.next_from_id
