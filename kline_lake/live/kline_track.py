"""The klines track of the follower: closed klines (`"x": true`) from `<symbol>@kline_<iv>`.

- Catch up: from where each series' coverage ends (with no coverage: from its first
  stored row, or, in an empty series, the open of the kline in progress) to now.
- Rows are keyed by open time; coverage grows only over a contiguous run of closed
  klines from where it ends, so a duplicate or a late message changes nothing, and a
  kline missing before later ones is a hole, downloaded over REST after `hole_grace_s`.
- Every connect (the first one too: what closed before it) marks its series for a
  backfill, done as soon as a kline has closed since the coverage's end.
- Calendar months (`1M`) work like every other interval: the grid, the close and the
  backfill condition use the calendar (`next_open_ms`), never a fixed length.
"""

from __future__ import annotations

import time
from typing import Any

from kline_lake.core.intervals import floor_open_ms, next_open_ms
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us
from kline_lake.download.rest_rows import parse_rest_klines
from kline_lake.errors import KlineLakeError
from kline_lake.live import streams
from kline_lake.live.state import SeriesState
from kline_lake.live.streams import ClosedKline


class KlineTrack:
    """Closed klines of one interval (see the module docstring)."""

    dataset = "klines"

    def __init__(self, follower: Any) -> None:
        self.f = follower
        self.interval = follower.req.interval

    def key(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.f.req.market.name, "klines", symbol, self.interval)

    def stream_name(self, symbol: str) -> str:
        return streams.stream_name("klines", symbol, self.interval)

    def _next(self, open_ms: int) -> int:
        return next_open_ms(open_ms, self.interval)

    # ---- REST --------------------------------------------------------------------------

    def catch_up(self, now_ms: int) -> None:
        floor_now = floor_open_ms(now_ms, self.interval)
        for symbol in self.f.symbols:
            key = self.key(symbol)
            end = self.f.coverage_end_ms(key, None)
            if end is None:  # rows a killed follower committed past a hole: cover them too
                end = self.f.first_row_ms(key)
            if self.f.req.start_ms is not None:
                end = self.f.req.start_ms
            start = floor_now if end is None else min(end, floor_now)
            self.f.series[symbol] = SeriesState(key, symbol, start)
        behind = [s for s in self.f.series.values() if s.covered_ms < floor_now]
        if behind:
            self._download(behind, "catch-up")

    def _download(self, states: list, why: str) -> None:
        self.f.download(tuple(s.symbol for s in states), min(s.covered_ms for s in states), why)
        for s in states:
            end = self.f.coverage_end_ms(s.key, s.covered_ms)
            s.covered_ms = max(s.covered_ms, end or s.covered_ms)
            s.needs_backfill, s.hole_since = False, None
            s.uncovered = {o: t for o, t in s.uncovered.items() if o >= s.covered_ms}

    def backfill_due(self) -> None:
        now = self.f.server_now_ms
        states = self.f.series.values()
        due = [s for s in states if s.needs_backfill and self._next(s.covered_ms) <= now]
        for s in states:  # nothing has closed since: no hole to fill
            if s.needs_backfill and s not in due:
                s.needs_backfill = False
        if not due:
            return
        self.f.totals.backfills += 1
        try:
            self._download(due, "backfill")
        except KlineLakeError as exc:  # the REST side failed for now: retry at the next flush
            self.f.log(f"backfill failed, will retry: {exc}")
        self.f.flush()

    def backfill_at_stop(self) -> None:
        """A hole known at a graceful stop is filled now rather than at the next start."""
        for s in self.f.series.values():
            s.needs_backfill = s.needs_backfill or bool(s.uncovered)
        self.backfill_due()

    # ---- stream ------------------------------------------------------------------------

    def on_connected(self, symbols: list[str], is_reconnect: bool) -> None:
        for sym in symbols:  # what closed while not connected comes over REST
            self.f.series[sym].needs_backfill = True
        if is_reconnect:
            self.f.log(f"reconnected ({len(symbols)} series): backfilling over REST")

    def on_item(self, state: Any, kline: ClosedKline, recv_t: float, _serial: int) -> None:
        self.f.totals.send_delays_ms.append(kline.event_ms - int(kline.row[6]) - 1)
        state.received += 1
        if self._next(kline.open_ms) <= state.covered_ms or kline.open_ms in state.uncovered:
            return  # a duplicate of what the lake holds
        state.buffer[kline.open_ms] = (kline.row, recv_t)
        state.last_closed_ms = max(state.last_closed_ms or 0, kline.open_ms)

    def flush_one(self, state: Any) -> tuple[int | None, list[float]]:
        """Commit one series' batch; (rows committed or None if no commit, lags)."""
        start = cur = state.covered_ms
        for o in sorted(set(state.buffer) | set(state.uncovered)):
            if o <= cur:
                cur = max(cur, self._next(o))
        covered = [(ms_to_us(start), ms_to_us(cur))] if cur > start else []
        rows = [state.buffer[o][0] for o in sorted(state.buffer)]
        result: tuple[int | None, list[float]] = (None, [])
        if rows or covered:
            self.f.writer.commit(state.key, parse_rest_klines(rows, "klines"), covered)
            done = time.monotonic()
            result = (len(rows), [done - recv_t for _, recv_t in state.buffer.values()])
        merged = {**state.uncovered, **{o: o for o in state.buffer}}
        state.uncovered = {o: t for o, t in merged.items() if o >= cur}
        state.buffer.clear()
        state.covered_ms = cur
        self.f.note_hole(state, str(state.covered_ms))
        return result
