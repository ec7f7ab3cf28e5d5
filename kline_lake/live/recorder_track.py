"""The recorder track of the follower: datasets the exchange keeps no history of.

`mark_price` (`<symbol>@markPrice@1s`, USD-M and COIN-M): the exchange neither archives
these updates nor serves them over REST (REST `premiumIndex` is the current value only;
the mark price *klines* are another dataset), so the lake holds exactly what a follower
recorded:

- Nothing to catch up, nothing to backfill: a start, a reconnect, a missed message or
  a SIGKILL leaves an *unrecorded* gap, never filled and never papered over.
- Coverage records what was recorded: two updates that came one after the other on one
  connection, at most 1.5 update periods apart, prove the stretch between them was
  listened to, so `[a, b]` is covered; a missed update (2 periods apart), a reconnect
  (a new connection) or silence leaves the stretch between them uncovered, and
  `kline-lake gaps --data mark_price` / the inventory's `coverage_holes` show it.
- Rows are keyed by the update's event time: a duplicate changes nothing, and a late
  (reordered) one still joins its neighbours, since each flush sorts the recent updates
  of the connection (the last `TAIL_KEYS` of the previous flush included).

`book_ticker` (`<symbol>@bookTicker`, USD-M and COIN-M; the dataset's archive side is the
exchange's daily bookTicker files, which come a day late): updates come when the top of
the book changes, so there is no period to miss by, and update ids (`u`) are order-book
ids with gaps, so a missed update cannot be told either. Two consecutive updates on one
connection cover the stretch between their transaction times (the connection was live
and answering pings, the book was quiet in between); a reconnect or silence past the
timeout leaves the stretch uncovered. Rows are keyed by `update_id`.

`spot_book_ticker` (spot and Binance.US `<symbol>@bookTicker`, recorded by `follow --data
book_ticker` there): the payload has no event or transaction time, so each row carries
`recv_time`, the follower's clock (UTC us) when the update arrived, and coverage and
partitions follow that clock; otherwise as `book_ticker`. A duplicate keeps its first
receipt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from kline_lake.core.schemas import TS, conform, ts_column
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us
from kline_lake.live import streams
from kline_lake.live.state import SeriesState
from kline_lake.live.streams import Recorded

TAIL_KEYS = 8
COMMITTED_KEYS = 4096  # a late duplicate of these is dropped (spot: it would re-stamp recv_time)


def mark_price_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Parsed `markPriceUpdate` rows (`streams.mark_price_update`) -> the mark_price table."""
    def col(name: str) -> np.ndarray:
        return np.fromiter((r[name] for r in rows), np.float64, len(rows))

    def times(name: str) -> pa.Array:
        return ts_column(np.fromiter((r[name] for r in rows), np.int64, len(rows)))

    table = pa.table({"event_time": times("event_time"), "mark_price": col("mark_price"),
                      "index_price": col("index_price"), "estimated_settle_price": col("estimated_settle_price"),
                      "funding_rate": col("funding_rate"), "next_funding_time": times("next_funding_time")})
    return conform(table, "mark_price")


def book_ticker_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Parsed futures `bookTicker` rows (`streams.book_ticker_update`) -> the book_ticker table."""
    def col(name: str) -> np.ndarray:
        return np.fromiter((r[name] for r in rows), np.float64, len(rows))

    def ints(name: str) -> np.ndarray:
        return np.fromiter((r[name] for r in rows), np.int64, len(rows))

    table = pa.table({"update_id": ints("update_id"), "best_bid_price": col("best_bid_price"),
                      "best_bid_qty": col("best_bid_qty"), "best_ask_price": col("best_ask_price"),
                      "best_ask_qty": col("best_ask_qty"), "transaction_time": ts_column(ints("transaction_time")),
                      "event_time": ts_column(ints("event_time"))})
    return conform(table, "book_ticker")


def spot_book_ticker_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Parsed spot `bookTicker` rows (`streams.spot_book_ticker_update`) -> the spot_book_ticker table."""
    def col(name: str) -> np.ndarray:
        return np.fromiter((r[name] for r in rows), np.float64, len(rows))

    ints = np.fromiter((r["update_id"] for r in rows), np.int64, len(rows))
    recv = np.fromiter((r["recv_time"] for r in rows), np.int64, len(rows))
    table = pa.table({"update_id": ints, "best_bid_price": col("best_bid_price"),
                      "best_bid_qty": col("best_bid_qty"), "best_ask_price": col("best_ask_price"),
                      "best_ask_qty": col("best_ask_qty"), "recv_time": pa.array(recv, pa.int64()).view(TS)})
    return conform(table, "spot_book_ticker")


@dataclass(frozen=True)
class RecorderSpec:
    """How one recorder dataset's updates come: their period (None: when the book
    changes) and their table builder."""

    period_ms: int | None
    table: Callable[[Sequence[dict[str, Any]]], pa.Table]


RECORDERS = {"mark_price": RecorderSpec(1000, mark_price_table),
             "book_ticker": RecorderSpec(None, book_ticker_table),
             "spot_book_ticker": RecorderSpec(None, spot_book_ticker_table)}


def recorded_ranges(times_ms: Sequence[int], max_gap_ms: int | None) -> list[tuple[int, int]]:
    """Pure: the covered ms ranges `[a, b + 1)` of consecutive received update times at
    most `max_gap_ms` apart (None: any), times of one connection (unsorted and repeated
    times allowed)."""
    ts = sorted(set(times_ms))
    return [(a, b + 1) for a, b in zip(ts, ts[1:], strict=False) if max_gap_ms is None or b - a <= max_gap_ms]


class RecorderTrack:
    """A dataset recorded from its stream only (see the module docstring)."""

    def __init__(self, follower: Any) -> None:
        self.f = follower
        self.dataset = follower.req.dataset
        self.spec = RECORDERS[self.dataset]
        self.max_gap_ms = None if self.spec.period_ms is None else self.spec.period_ms * 3 // 2
        self.committed: dict[str, dict[int, None]] = {}  # per symbol, the last COMMITTED_KEYS keys

    def key(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.f.req.market.name, self.dataset, symbol)

    def stream_name(self, symbol: str) -> str:
        return streams.stream_name(self.dataset, symbol)

    # ---- no REST: nothing to catch up or backfill ---------------------------------------

    def catch_up(self, now_ms: int) -> None:
        for symbol in self.f.symbols:
            self.f.series[symbol] = SeriesState(self.key(symbol), symbol, now_ms)
        self.f.log(f"{self.dataset} is recorded from the stream only: the exchange keeps no history of it, "
                   "so nothing is caught up and a reconnect leaves an unrecorded gap")

    def backfill_due(self) -> None:
        """Nothing can be backfilled: the exchange has no history of the dataset."""

    def backfill_at_stop(self) -> None:
        """Nothing can be backfilled: the exchange has no history of the dataset."""

    # ---- stream ------------------------------------------------------------------------

    def on_connected(self, symbols: list[str], is_reconnect: bool) -> None:
        if is_reconnect:
            self.f.log(f"reconnected ({len(symbols)} series): the {self.dataset} updates missed meanwhile "
                       "cannot be fetched (no history on the exchange) and stay an unrecorded gap")

    def on_item(self, state: SeriesState, update: Recorded, recv_t: float, serial: int) -> None:
        state.received += 1
        if update.key not in self.committed.get(state.symbol, ()):  # a duplicate keeps its first receipt
            state.buffer.setdefault(update.key, (update.row, recv_t))
        state.seen.setdefault(serial, []).append(update.time_ms)
        state.last_closed_ms = max(state.last_closed_ms or 0, update.time_ms)

    def flush_one(self, state: SeriesState) -> tuple[int | None, list[float]]:
        """Commit one series' updates with the stretches they prove recorded."""
        if not state.buffer:
            return None, []  # the kept tail is committed already
        covered = [(ms_to_us(a), ms_to_us(b)) for serial in sorted(state.seen)
                   for a, b in recorded_ranges(state.seen[serial], self.max_gap_ms)]
        rows = [state.buffer[k][0] for k in sorted(state.buffer)]
        result: tuple[int | None, list[float]] = (None, [])
        if rows or covered:
            self.f.writer.commit(state.key, self.spec.table(rows), covered)
            done = time.monotonic()
            result = (len(rows), [done - recv_t for _, recv_t in state.buffer.values()])
        recent = self.committed.setdefault(state.symbol, {})
        recent.update(dict.fromkeys(state.buffer))
        for k in list(recent)[:max(0, len(recent) - COMMITTED_KEYS)]:
            del recent[k]
        if state.seen:  # only the newest connection can continue; keep its latest keys
            last = max(state.seen)
            state.seen = {last: sorted(set(state.seen[last]))[-TAIL_KEYS:]}
        state.buffer.clear()
        state.covered_ms = max(state.covered_ms, state.last_closed_ms or 0)
        return result
