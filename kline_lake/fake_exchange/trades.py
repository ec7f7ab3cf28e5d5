"""Every trade of a synthetic path: the stream the aggregate trades aggregate. Pure.

Each data-bearing second has one aggregate trade (`series.agg_trades`) at the second's
close price, carrying the second's whole volume `v` and trade count `t`, first/last trade
ids `f..l`. Its trades are the `t` ids `f..l`, all at the aggregate's price, time and
taker side (an aggTrade is, by the exchange's definition, trades "at the same time, from
the same order, with the same price"), whose quantities split `v` in whole lots (the
aggTrade's `lot`: `synthetic`/`splits`; spot's lot puts price * quantity on the 1e-8
quote grid, COIN-M's trades are one contract each) and sum to it exactly: the first
`lots % t` trades take one lot more than `lots // t`. A second never has more trades
than lots (`splits`), so no trade is empty. So trades -> aggTrades -> klines agree in
volume, count, taker-buy volume and, since each trade's quote quantity is exact, in
quote volumes too.

Looking up a trade id: the agg id whose `f..l` contains it is found by a search over agg
ids (trade ids grow with agg ids; interpolation, falling back to bisection), each probe
one `series.trades_for_seconds` call.
"""

from __future__ import annotations

import numpy as np

from kline_lake.fake_exchange import series
from kline_lake.fake_exchange.synthetic import SymbolPath

TRADE_COLUMNS = ("id", "p", "q", "T", "m", "a")


def _empty() -> dict[str, np.ndarray]:
    out = {k: np.empty(0, dtype=np.int64) for k in TRADE_COLUMNS}
    out["m"] = np.empty(0, dtype=bool)
    return out


def _first_trade_of_agg(path: SymbolPath, life: series.Segments, agg_id: int) -> int | None:
    sec = series.second_of_agg_id(life, agg_id)
    if sec is None:
        return None
    cols = series.trades_for_seconds(path, np.array([sec]), np.array([sec * 1000]), life)
    return int(cols["f"][0])


def agg_id_of_trade(path: SymbolPath, trade_id: int, now_ms: int) -> int | None:
    """The agg id whose trade range holds `trade_id`, or None past the last trade.

    First trade ids grow strictly with agg ids (every second trades), so the answer is
    the last agg id whose first trade is <= `trade_id`: found by interpolating between
    the bracket's ends (trade counts per second vary slowly), each probe one
    `_first_trade_of_agg`."""
    life = path.segments(None)
    n_aggs = series.agg_id_of_second(life, now_ms // 1000 + 1)
    if n_aggs <= 0 or trade_id < 0:
        return None if trade_id >= 0 else 0
    lo, hi = 0, n_aggs - 1  # agg ids < n_aggs lie inside the life: probes are never None
    f_lo, f_hi = _first_trade_of_agg(path, life, lo), _first_trade_of_agg(path, life, hi)
    if f_hi <= trade_id:
        return hi
    if trade_id <= f_lo:
        return lo
    # Regula falsi on first(a) - trade_id with the Illinois rule (an end kept twice in a
    # row has its weight halved, so the guesses close in from both sides); a bisection
    # step whenever two probes did not quarter the bracket bounds the probes at about
    # twice plain bisection's. Invariant: first(lo) <= trade_id < first(hi).
    y_lo, y_hi = float(f_lo - trade_id), float(f_hi - trade_id)
    side, width0, probes = 0, hi - lo, 0
    while hi - lo > 1:
        if probes == 2:
            bisect, width0, probes = 4 * (hi - lo) > width0, hi - lo, 0
        else:
            bisect = False
        mid = (lo + hi) // 2 if bisect else \
            min(max(lo + int(-y_lo * (hi - lo) / (y_hi - y_lo)), lo + 1), hi - 1)
        first = _first_trade_of_agg(path, life, mid)
        probes += 1
        if first <= trade_id:
            lo, y_lo = mid, float(first - trade_id)
            y_hi = y_hi / 2 if side == -1 else y_hi
            side = -1
        else:
            hi, y_hi = mid, float(first - trade_id)
            y_lo = y_lo / 2 if side == 1 else y_lo
            side = 1
    return lo


def expand(aggs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """aggTrade columns (a, p, q, f, l, T, m) -> one row per trade (id, p, q, T, m, a)."""
    if not len(aggs["a"]):
        return _empty()
    counts = aggs["l"] - aggs["f"] + 1
    rep = np.repeat(np.arange(len(counts)), counts)
    ids = np.repeat(aggs["f"], counts) + (np.arange(len(rep)) - np.repeat(np.cumsum(counts) - counts, counts))
    pos = ids - np.repeat(aggs["f"], counts)  # index of the trade inside its aggTrade
    lot = np.repeat(aggs["lot"], counts) if "lot" in aggs else 1
    v, t = np.repeat(aggs["q"], counts) // lot, np.repeat(counts, counts)
    qty = (v // t + (pos < v % t)) * lot
    return {"id": ids, "p": aggs["p"][rep], "q": qty, "T": aggs["T"][rep], "m": aggs["m"][rep],
            "a": aggs["a"][rep]}


def trades(path: SymbolPath, from_id: int | None, limit: int, now_ms: int) -> dict[str, np.ndarray]:
    """Up to `limit` trades with id >= `from_id` (ascending), trades up to `now_ms` only;
    without `from_id`, the latest `limit` trades (REST `historicalTrades` semantics)."""
    if from_id is None:
        aggs = series.agg_trades(path, None, None, now_ms, limit, now_ms)
        rows = expand(aggs)
        return {k: v[-limit:] for k, v in rows.items()}
    agg = agg_id_of_trade(path, from_id, now_ms)
    if agg is None:
        return _empty()
    aggs = series.agg_trades(path, agg, None, None, limit, now_ms)
    rows = expand(aggs)
    keep = rows["id"] >= from_id
    return {k: v[keep][:limit] for k, v in rows.items()}
