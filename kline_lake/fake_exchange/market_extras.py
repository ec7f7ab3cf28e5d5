"""Synthetic book ticker, book depth and metrics for the fake exchange (USD-M, COIN-M). Pure.

Built from the same per-second aggregate trades as the fake's trades, aggTrades and klines
(`series.trades_for_seconds`: one aggregate trade per data-bearing second, all its trades
at the second's close price `p`), so every dataset agrees with the trade stream:

- book ticker: one update per data-bearing second, at the trade's own millisecond
  (`transaction_time = T`, `event_time = T + 3..12 ms`). The taker side sets which side
  the trade hit: a taker buy (`m` false) trades at the best ask (`ask = p`, the bid 1..3
  ticks below), a taker sell at the best bid (`bid = p`, the ask 1..3 ticks above). The
  update in force at a trade is therefore one with `bid <= price <= ask`. `update_id`
  grows with the agg id (`UPDATE_ID_BASE + 3 * agg_id`: gaps, as the real order-book ids
  that also count updates below the top of the book).
- book depth: a snapshot every minute at second 7 (the archive's snapshots are a few
  seconds past the minute), of the book around the mid of the book ticker in force then:
  bands -5..-1 (bids) and 1..5 (asks) percent, `depth` cumulative base quantity (contracts
  on COIN-M) growing with the band, `notional` = depth times an average price that lies
  inside the band (bids: between mid*(1-pct/100) and mid; asks: between mid and
  mid*(1+pct/100)).
- metrics: every 5 minutes while the symbol trades, deterministic open interest (base
  asset, contracts on COIN-M) around a third of the daily volume, its value at the
  second's price (quote asset; COIN-M: base asset, contracts * contract size / price), and
  four ratios with 4 decimals (as REST prints them; the archive prints the same values).

Everything is a function of (seed, symbol, time): the same rows for the REST endpoints
(`rest.py`) and the archive files (`archive.py`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np

from kline_lake.fake_exchange import series
from kline_lake.fake_exchange.synthetic import SymbolPath
from kline_lake.fake_exchange.universe import SymbolSpec

UPDATE_ID_BASE = 1_000_000_000
METRICS_STEP_MS = 300_000
DEPTH_STEP_S = 60
DEPTH_OFFSET_S = 7
DEPTH_BANDS = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)
REST_METRICS_DAYS = 30  # "Only the data of the latest 30 days is available."
_MASK = np.uint64(2**64 - 1)


def _mix(values: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of (value, salt): deterministic uint64 noise."""
    with np.errstate(over="ignore"):
        z = (np.asarray(values, dtype=np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(salt & 0xFFFFFFFFFFFF)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def _unit(values: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) per value."""
    return (_mix(values, salt) >> np.uint64(11)).astype(np.float64) / float(2**53)


def _salt(spec: SymbolSpec, name: str) -> int:
    digest = hashlib.sha256(f"{spec.market}/{spec.symbol}/{name}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def aggs_between(path: SymbolPath, start_ms: int, end_ms: int, now_ms: int | None = None
                 ) -> dict[str, np.ndarray]:
    """The per-second aggregate trades with time in [start_ms, end_ms) (and <= now_ms)."""
    segs = path.segments(None if now_ms is None else now_ms // 1000)
    start_s, end_s = start_ms // 1000, -(-end_ms // 1000)
    secs = series.seconds_forward(segs, start_s, max(0, end_s - start_s))
    secs = secs[secs < end_s]
    times = secs * 1000 + path.trade_offset_ms(secs)
    keep = (times >= start_ms) & (times < end_ms)
    if now_ms is not None:
        keep &= times <= now_ms
    return series.trades_for_seconds(path, secs[keep], times[keep], path.segments(None))


def book_ticker(spec: SymbolSpec, aggs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Book ticker updates (prices/quantities in grid units) of the given aggregate trades."""
    a, p, q, t, m = aggs["a"], aggs["p"], aggs["q"], aggs["T"], aggs["m"]
    spread = 1 + (_mix(a, _salt(spec, "spread")) % np.uint64(3)).astype(np.int64)
    bid = np.where(m, p, p - spread)
    ask = np.where(m, p + spread, p)
    size = np.maximum(q, 1)
    bid_qty = size * (1 + (_mix(a, _salt(spec, "bq")) % np.uint64(5)).astype(np.int64))
    ask_qty = size * (1 + (_mix(a, _salt(spec, "aq")) % np.uint64(5)).astype(np.int64))
    latency = 3 + (_mix(a, _salt(spec, "lat")) % np.uint64(10)).astype(np.int64)
    return {"update_id": UPDATE_ID_BASE + 3 * a, "bid": bid, "bid_qty": bid_qty, "ask": ask,
            "ask_qty": ask_qty, "T": t, "E": t + latency}


def depth_times_s(aggs: dict[str, np.ndarray], start_ms: int, end_ms: int) -> np.ndarray:
    """Snapshot seconds in [start_ms, end_ms) with a book in force (a trade before, in
    the same minute or the one before: the symbol is trading)."""
    first = -(-(start_ms // 1000 - DEPTH_OFFSET_S) // DEPTH_STEP_S) * DEPTH_STEP_S + DEPTH_OFFSET_S
    times = np.arange(first, -(-end_ms // 1000), DEPTH_STEP_S, dtype=np.int64)
    times = times[(times * 1000 >= start_ms) & (times * 1000 < end_ms)]
    trade_s = aggs["T"] // 1000
    idx = np.searchsorted(trade_s, times, side="right") - 1
    ok = idx >= 0
    ok[ok] &= times[ok] - trade_s[idx[ok]] < 2 * DEPTH_STEP_S
    return times[ok]


def book_depth(spec: SymbolSpec, aggs: dict[str, np.ndarray], times_s: np.ndarray
               ) -> dict[str, np.ndarray]:
    """Depth snapshots: one row per (time, band) in DEPTH_BANDS order; `depth` cumulative
    quantity (float, on the quantity grid) and `notional` cumulative quote value (COIN-M:
    base asset) from the mid of the book ticker in force out to the band. The liquidity
    between bands j-1 and j % sits at one price inside that slice of the book, so the
    average price to every band lies between the mid and the band's price."""
    ticker = book_ticker(spec, aggs)
    idx = np.searchsorted(ticker["T"] // 1000, times_s, side="right") - 1
    mid = (ticker["bid"][idx] + ticker["ask"][idx]) / 2 / 10**spec.price_decimals
    n, steps = len(times_s), np.arange(1, 6, dtype=np.int64)
    sides = {}
    for sign in (-1, 1):
        keys = times_s[:, None] * 16 + (sign * steps)[None, :] + 8
        inc = np.round(spec.daily_volume / 50 * (0.8 + 0.4 * _unit(keys, _salt(spec, "depth"))),
                       spec.qty_decimals)
        inc = np.maximum(inc, 10.0**-spec.qty_decimals)
        where = (steps[None, :] - 1 + 0.2 + 0.6 * _unit(keys, _salt(spec, "at"))) / 100
        price = mid[:, None] * (1 + sign * where)
        value = inc * spec.contract_size / price if spec.contract_size else inc * price
        sides[sign] = (np.cumsum(inc, axis=1), np.cumsum(value, axis=1))
    # DEPTH_BANDS order: -5..-1 (bids, outermost first), then 1..5
    depth = np.concatenate([sides[-1][0][:, ::-1], sides[1][0]], axis=1)
    notional = np.concatenate([sides[-1][1][:, ::-1], sides[1][1]], axis=1)
    return {"time_s": np.repeat(times_s, len(DEPTH_BANDS)),
            "percentage": np.tile(np.asarray(DEPTH_BANDS, dtype=np.int64), n),
            "depth": np.round(depth.ravel(), spec.qty_decimals), "notional": np.round(notional.ravel(), 8)}


def metrics_times_ms(path: SymbolPath, start_ms: int, end_ms: int) -> np.ndarray:
    """5-minute slots in [start_ms, end_ms) at which the symbol trades (listed, not in
    maintenance): the second before the slot bears data."""
    first = -(-start_ms // METRICS_STEP_MS) * METRICS_STEP_MS
    slots = np.arange(first, end_ms, METRICS_STEP_MS, dtype=np.int64)
    if not len(slots):
        return slots
    prev_s = slots // 1000 - 1
    live = np.zeros(len(slots), dtype=bool)
    for s0, s1 in path.segments(None):
        live |= (prev_s >= s0) & (prev_s < s1)
    return slots[live]


def metrics(spec: SymbolSpec, path: SymbolPath, times_ms: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics per slot: open interest (float, base or contracts), its value, and the four
    ratios (4 decimals) as floats."""
    t = np.asarray(times_ms, dtype=np.int64)
    if not len(t):
        return {k: np.empty(0) for k in ("oi", "oi_value", "top_account", "top_position",
                                          "global_account", "taker")}
    price = path.level("second", t // 1000 - 1)["c"] / 10**spec.price_decimals
    slot = t // METRICS_STEP_MS
    wave = np.sin(slot / 288 * 2 * np.pi / 3)  # a three-day swing
    oi = spec.daily_volume / 3 * (1 + 0.2 * wave + 0.05 * _unit(slot, _salt(spec, "oi")))
    oi = np.round(oi, 3 if not spec.contract_size else 0)
    value = oi * spec.contract_size / price if spec.contract_size else oi * price

    def ratio(name: str) -> np.ndarray:
        return np.round(0.6 + 1.8 * _unit(slot, _salt(spec, name)), 4)

    return {"oi": oi, "oi_value": np.round(value, 8), "top_account": ratio("ta"),
            "top_position": ratio("tp"), "global_account": ratio("ga"), "taker": ratio("tk")}


def text_time_s(times_s: np.ndarray) -> list[str]:
    """Epoch seconds -> the archive's `YYYY-MM-DD HH:MM:SS` (UTC)."""
    return [datetime.fromtimestamp(int(s), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            for s in np.asarray(times_s).tolist()]
