"""The agg-trades track of the follower: `<symbol>@aggTrade` events.

Aggregate trade ids (`a`) are consecutive per symbol (the exchange docs: "aggregate
tradeId"; REST `/aggTrades` pages by `fromId`), so completeness is proved by ids:

- State per series: `next_id`, the first id the lake lacks after its coverage (one past
  the last trade whose time is inside the coverage), and `covered_ms`, the coverage end.
- A flush commits every buffered trade and extends coverage to the time of the last
  trade of the run of consecutive ids that starts at `next_id` (exclusive: a later trade
  of the same millisecond may still come). Trades past a missing id are committed too
  (`uncovered`) but claim nothing; a duplicate (`a < next_id`, or already held) changes
  nothing, and a late one fills its place before the next flush.
- Holes: a missing id for `hole_grace_s`, any connect (what traded before it) and a
  reconnect (a drop, the 24 h cut, silence) mark the series for backfill: REST
  `/aggTrades?fromId=next_id` pages (at most `MAX_PAGES_PER_BACKFILL` per flush) through
  the follower's one client and weight limiter, until the pages reach the largest id
  already held or come back short (the exchange's latest trade).
- A series without any trade inside its coverage (an empty lake) has no `next_id`: its
  first backfill is the normal download path (by time) from its coverage end.
"""

from __future__ import annotations

import time
from typing import Any

import polars as pl

from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import MS_PER_DAY, ms_to_us
from kline_lake.download.rest_rows import parse_rest_agg_trades
from kline_lake.errors import InputError, KlineLakeError
from kline_lake.lake.scan import scan_series
from kline_lake.live import streams
from kline_lake.live.state import SeriesState
from kline_lake.live.streams import AggTrade

MAX_PAGES_PER_BACKFILL = 20


class AggTradeTrack:
    """Aggregate trades (see the module docstring)."""

    dataset = "agg_trades"

    def __init__(self, follower: Any) -> None:
        self.f = follower

    def key(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.f.req.market.name, "agg_trades", symbol)

    def stream_name(self, symbol: str) -> str:
        return streams.stream_name("agg_trades", symbol)

    # ---- lake --------------------------------------------------------------------------

    def _last_id_before(self, key: SeriesKey, end_ms: int) -> int | None:
        """The largest stored id with a time before `end_ms` (the last day first, then all)."""
        for lo in (ms_to_us(end_ms - MS_PER_DAY), None):
            frame = scan_series(self.f.writer.root, key, lo, ms_to_us(end_ms)) \
                .select(pl.col("agg_id").max()).collect()
            value = frame.item() if frame.height else None
            if value is not None:
                return int(value)
        return None

    def _sync(self, state: Any) -> None:
        """Re-read the series' coverage end and `next_id` from the lake (after a download)."""
        end = self.f.coverage_end_ms(state.key, state.covered_ms)
        state.covered_ms = max(state.covered_ms, end or state.covered_ms)
        last = self._last_id_before(state.key, state.covered_ms)
        state.next_id = None if last is None else last + 1
        if state.next_id is not None:
            state.buffer = {a: v for a, v in state.buffer.items() if a >= state.next_id}
            state.uncovered = {a: t for a, t in state.uncovered.items() if a >= state.next_id}

    # ---- REST --------------------------------------------------------------------------

    def catch_up(self, now_ms: int) -> None:
        for symbol in self.f.symbols:
            key = self.key(symbol)
            end = self.f.coverage_end_ms(key, None)
            if end is None:
                end = self.f.first_row_ms(key)
            if self.f.req.start_ms is not None:
                end = self.f.req.start_ms
            self.f.series[symbol] = SeriesState(key, symbol, now_ms if end is None else min(end, now_ms))
        behind = [s for s in self.f.series.values() if s.covered_ms < now_ms]
        if behind:
            self.f.download(tuple(s.symbol for s in behind), min(s.covered_ms for s in behind), "catch-up")
        for s in self.f.series.values():
            self._sync(s)

    def backfill_due(self) -> None:
        due = [s for s in self.f.series.values() if s.needs_backfill]
        if not due:
            return
        self.f.totals.backfills += 1
        for state in due:
            try:
                if state.next_id is None:
                    self._backfill_by_time(state)
                else:
                    self._backfill_by_id(state)
            except KlineLakeError as exc:  # the REST side failed for now: retry at the next flush
                self.f.log(f"{state.symbol}: backfill failed, will retry: {exc}")
        self.f.flush()

    def _backfill_by_time(self, state: Any) -> None:
        if state.covered_ms >= self.f.server_now_ms:
            return  # nothing can have traded since: wait for the clock to move
        try:
            self.f.download((state.symbol,), state.covered_ms, "backfill")
        except InputError as exc:  # e.g. the exchange's now is not past the coverage yet
            self.f.log(f"{state.symbol}: backfill deferred: {exc}")
            return
        self._sync(state)
        state.needs_backfill = state.next_id is None and bool(state.buffer)

    def _backfill_by_id(self, state: Any) -> None:
        held = set(state.buffer) | set(state.uncovered)
        until = max(held) if held else None
        rows, done = self.f.rest.run(self._pages(state.symbol, state.next_id, until))
        now = time.monotonic()
        for row in rows:
            state.buffer.setdefault(int(row["a"]), (row, now))
        state.needs_backfill = not done
        self.f.log(f"{state.symbol}: backfilled {len(rows)} agg trades over REST from id {state.next_id}")

    async def _pages(self, symbol: str, from_id: int, until_id: int | None) -> tuple[list[dict], bool]:
        """`/aggTrades` pages by `fromId` (weight per the market's table, through the
        follower's limiter); (rows, whether the hole is closed)."""
        client, limit = self.f.rest.client, self.f.req.market.agg_trades_max_limit
        rows: list[dict] = []
        cur = from_id
        for _ in range(MAX_PAGES_PER_BACKFILL):
            page = await client.get("aggTrades", {"symbol": symbol, "fromId": cur, "limit": limit}, expect=list)
            for row in page:
                if int(row["a"]) != cur:  # ids must be consecutive: keep what is proved
                    return rows, False
                rows.append(row)
                cur += 1
            if len(page) < limit or (until_id is not None and cur > until_id):
                return rows, True
        return rows, False

    def backfill_at_stop(self) -> None:
        for s in self.f.series.values():
            s.needs_backfill = s.needs_backfill or bool(s.uncovered)
        self.backfill_due()

    # ---- stream ------------------------------------------------------------------------

    def on_connected(self, symbols: list[str], is_reconnect: bool) -> None:
        for sym in symbols:  # what traded while not connected comes over REST
            self.f.series[sym].needs_backfill = True
        if is_reconnect:
            self.f.log(f"reconnected ({len(symbols)} series): backfilling agg trades over REST")

    def on_item(self, state: Any, trade: AggTrade, recv_t: float, _serial: int) -> None:
        state.received += 1
        if (state.next_id is not None and trade.agg_id < state.next_id) or trade.agg_id in state.uncovered:
            return  # a duplicate of what the lake holds
        state.buffer[trade.agg_id] = (trade.row, recv_t)
        state.last_closed_ms = max(state.last_closed_ms or 0, trade.time_ms)

    def flush_one(self, state: Any) -> tuple[int | None, list[float]]:
        """Commit one series' batch; (rows committed or None if no commit, lags)."""
        times = {**state.uncovered, **{a: int(v[0]["T"]) for a, v in state.buffer.items()}}
        cur, end_ms = state.next_id, state.covered_ms
        if cur is not None:
            while cur in times:
                end_ms = max(end_ms, times[cur])
                cur += 1
        covered = [(ms_to_us(state.covered_ms), ms_to_us(end_ms))] if end_ms > state.covered_ms else []
        rows = [state.buffer[a][0] for a in sorted(state.buffer)]
        result: tuple[int | None, list[float]] = (None, [])
        if rows or covered:
            self.f.writer.commit(state.key, parse_rest_agg_trades(rows), covered)
            done = time.monotonic()
            result = (len(rows), [done - recv_t for _, recv_t in state.buffer.values()])
        state.uncovered = {a: t for a, t in times.items() if cur is None or a >= cur}
        state.buffer.clear()
        state.next_id, state.covered_ms = cur, end_ms
        if cur is None and state.uncovered:
            state.needs_backfill = True  # nothing in the lake to continue from: tie it by time
        self.f.note_hole(state, f"agg id {cur}")
        return result
