"""Queries over a synthetic path: which klines, trades and funding records exist, and
their values. Pure functions of (path, request, now); no I/O.

Kline selection follows the REST semantics: klines whose open time is >= startTime and
<= endTime; with only endTime (or neither, then endTime = now) the *last* `limit` ones.
A kline exists when any data-bearing second falls inside it (so klines overlapping a
maintenance gap, the listing or the delisting are partial aggregates, and the kline that
contains "now" is the open one, aggregated up to the current second).
"""

from __future__ import annotations

import numpy as np

from kline_lake.core.intervals import INTERVAL_MS, ceil_open_ms, floor_open_ms, next_open_ms
from kline_lake.fake_exchange.synthetic import (
    FIELDS,
    LEVEL_S,
    Bars,
    SymbolPath,
    normal,
    reduce_bars,
)

Segments = list[tuple[int, int]]


def interval_level(interval: str) -> str:
    """The path level whose bars tile klines of `interval`."""
    if interval == "1s":
        return "second"
    if interval.endswith("m"):
        return "minute"
    if interval.endswith("h"):
        return "hour"
    return "day"


def _prev_open_ms(open_ms: int, interval: str) -> int:
    return floor_open_ms(open_ms - 1, interval)


def _batch(cur_ms: int, n: int, interval: str, forward: bool) -> np.ndarray:
    """n consecutive open times from cur_ms, ascending if forward else descending."""
    if interval != "1M":
        step = INTERVAL_MS[interval] if forward else -INTERVAL_MS[interval]
        return cur_ms + step * np.arange(n, dtype=np.int64)
    out = [cur_ms]
    for _ in range(n - 1):
        out.append(next_open_ms(out[-1], "1M") if forward else _prev_open_ms(out[-1], "1M"))
    return np.array(out, dtype=np.int64)


def close_ms_of(opens_ms: np.ndarray, interval: str) -> np.ndarray:
    """Exclusive end (next open) of each kline."""
    if interval != "1M":
        return opens_ms + INTERVAL_MS[interval]
    return np.array([next_open_ms(int(o), "1M") for o in opens_ms], dtype=np.int64)


def _present(opens_ms: np.ndarray, interval: str, segs: Segments) -> np.ndarray:
    a = opens_ms // 1000
    b = close_ms_of(opens_ms, interval) // 1000
    mask = np.zeros(len(opens_ms), dtype=bool)
    for s0, s1 in segs:
        mask |= (a < s1) & (b > s0)
    return mask


def select_kline_opens(
    segs: Segments, interval: str, start_ms: int | None, end_ms: int | None, limit: int
) -> np.ndarray:
    """Open times (ascending) of the klines a REST call returns."""
    if not segs or limit <= 0:
        return np.empty(0, dtype=np.int64)
    lower = floor_open_ms(segs[0][0] * 1000, interval)
    upper = floor_open_ms((segs[-1][1] - 1) * 1000, interval)
    if end_ms is not None:
        upper = min(upper, floor_open_ms(end_ms, interval))
    size = limit + 16 if interval != "1M" else min(limit + 2, 64)
    out: list[np.ndarray] = []
    got = 0
    forward = start_ms is not None
    cur = max(ceil_open_ms(start_ms, interval), lower) if forward else upper
    while got < limit and (lower <= cur <= upper):
        cur = _skip_gap(cur, interval, segs, forward)
        if cur is None or not lower <= cur <= upper:
            break
        cand = _batch(cur, size, interval, forward)
        cand = cand[(cand <= upper) & (cand >= lower)]
        if not len(cand):
            break
        found = cand[_present(cand, interval, segs)][: limit - got]
        out.append(found)
        got += len(found)
        last = int(cand[-1])
        cur = next_open_ms(last, interval) if forward else _prev_open_ms(last, interval)
    if not out:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(out))


def _skip_gap(cur_ms: int, interval: str, segs: Segments, forward: bool) -> int | None:
    """Jump over whole klines that hold no data (inside a gap), towards the next data."""
    cur_s = cur_ms // 1000
    end_s = int(close_ms_of(np.array([cur_ms]), interval)[0]) // 1000
    if forward:
        for s0, s1 in segs:
            if s1 > cur_s:
                return cur_ms if s0 < end_s else floor_open_ms(s0 * 1000, interval)
        return None
    for s0, s1 in reversed(segs):
        if s0 < end_s:
            return cur_ms if s1 > cur_s else floor_open_ms((s1 - 1) * 1000, interval)
    return None


def kline_bars(path: SymbolPath, interval: str, opens_ms: np.ndarray, segs: Segments) -> Bars:
    """Aggregated bars of the klines opening at `opens_ms` (all present in `segs`)."""
    n = len(opens_ms)
    out = {f: np.zeros(n, dtype=np.int64) for f in FIELDS}
    if not n:
        return out
    a = opens_ms // 1000
    b = close_ms_of(opens_ms, interval) // 1000
    regular = np.zeros(n, dtype=bool)
    for s0, s1 in segs:
        regular |= (a >= s0) & (b <= s1)
    if regular.any():
        size = LEVEL_S[interval_level(interval)]
        ra, rb = a[regular], b[regular]
        counts = (rb - ra) // size
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        idx = np.repeat(ra // size, counts) + (np.arange(counts.sum()) - np.repeat(starts, counts))
        bars = reduce_bars(path.level(interval_level(interval), idx), starts)
        for f in FIELDS:
            out[f][regular] = bars[f]
    for i in np.flatnonzero(~regular):
        ranges = [(max(int(a[i]), s0), min(int(b[i]), s1)) for s0, s1 in segs]
        agg = path.aggregate([(x, y) for x, y in ranges if x < y])
        if agg is None:
            raise ValueError("kline_bars called with an empty kline")
        for f in FIELDS:
            out[f][i] = agg[f]
    return out


# ---- aggregate trades: one per data-bearing second -------------------------------------


def agg_id_of_second(segs_life: Segments, sec: int) -> int:
    """Number of data-bearing seconds before `sec` (the agg id of its trade)."""
    return sum(max(0, min(sec, s1) - s0) for s0, s1 in segs_life if sec > s0)


def second_of_agg_id(segs_life: Segments, agg_id: int) -> int | None:
    for s0, s1 in segs_life:
        if agg_id < s1 - s0:
            return s0 + agg_id
        agg_id -= s1 - s0
    return None


def seconds_forward(segs: Segments, from_s: int, n: int) -> np.ndarray:
    """Up to n data-bearing seconds >= from_s, ascending."""
    out, got = [], 0
    for s0, s1 in segs:
        if s1 <= from_s or got >= n:
            continue
        a = max(s0, from_s)
        take = min(n - got, s1 - a)
        out.append(np.arange(a, a + take, dtype=np.int64))
        got += take
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def seconds_backward(segs: Segments, to_s: int, n: int) -> np.ndarray:
    """Up to n data-bearing seconds <= to_s, ascending."""
    out, got = [], 0
    for s0, s1 in reversed(segs):
        if s0 > to_s or got >= n:
            continue
        b = min(s1, to_s + 1)
        take = min(n - got, b - s0)
        out.append(np.arange(b - take, b, dtype=np.int64))
        got += take
    return np.concatenate(out[::-1]) if out else np.empty(0, dtype=np.int64)


def agg_trades(
    path: SymbolPath,
    from_id: int | None,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    now_ms: int,
) -> dict[str, np.ndarray]:
    """The aggregate trades a REST call returns (ascending ids)."""
    segs = path.segments(now_ms // 1000)
    life = path.segments(None)
    if from_id is not None:
        s0 = second_of_agg_id(life, from_id)
        secs = np.empty(0, dtype=np.int64) if s0 is None else seconds_forward(segs, s0, limit + 1)
    elif start_ms is not None:
        secs = seconds_forward(segs, start_ms // 1000, limit + 1)
    else:
        top = now_ms if end_ms is None else min(end_ms, now_ms)
        secs = seconds_backward(segs, top // 1000, limit + 1)
    times = secs * 1000 + path.trade_offset_ms(secs)
    keep = times <= now_ms
    if start_ms is not None:
        keep &= times >= start_ms
    if end_ms is not None:
        keep &= times <= end_ms
    secs, times = secs[keep], times[keep]
    secs, times = (secs[:limit], times[:limit]) if start_ms is not None or from_id is not None else (secs[-limit:], times[-limit:])
    return trades_for_seconds(path, secs, times, life)


def trades_for_seconds(
    path: SymbolPath, secs: np.ndarray, times_ms: np.ndarray, life: Segments
) -> dict[str, np.ndarray]:
    """aggTrade columns for consecutive data-bearing seconds `secs` (plus `lot`, the
    quantity units of the lots its trades split `q` into: `trades.expand`). A second's
    trades all take its side (`tb` is 0 or `v`: `synthetic`), so `m` is exact."""
    if not len(secs):
        empty = np.empty(0, dtype=np.int64)
        return {"a": empty, "p": empty, "q": empty, "f": empty, "l": empty, "T": empty,
                "m": np.empty(0, dtype=bool), "lot": empty}
    first = int(secs[0])
    bars = path.level("second", secs)
    before = path.aggregate([(s0, min(s1, first)) for s0, s1 in life if s0 < first])
    trades_before = 0 if before is None else before["t"]
    last_ids = trades_before + np.cumsum(bars["t"]) - 1
    first_aid = agg_id_of_second(life, first)
    return {
        "a": first_aid + np.arange(len(secs), dtype=np.int64),
        "p": bars["c"],
        "q": bars["v"],
        "f": last_ids - bars["t"] + 1,
        "l": last_ids,
        "T": times_ms,
        "m": bars["tb"] * 2 < bars["v"],
        "lot": np.full(len(secs), path.units.lot, dtype=np.int64),  # trades split q in lots
    }


# ---- futures: funding and price klines -------------------------------------------------

MARK_FACTOR = 1.00015
INDEX_FACTOR = 0.99995


def price_units(ticks: np.ndarray, price_decimals: int, kind: str, base_price: float) -> np.ndarray:
    """Price klines in units of 1e-8: mark/index are fixed monotone transforms of the last
    price, so they aggregate across intervals exactly like it; premium is a monotone
    function of the price level (premium = 0.0001 + 0.001 * (price / base - 1))."""
    x = np.asarray(ticks, dtype=np.float64)
    scale = 10.0 ** (8 - price_decimals)
    if kind == "mark":
        return np.rint(x * scale * MARK_FACTOR).astype(np.int64)
    if kind == "index":
        return np.rint(x * scale * INDEX_FACTOR).astype(np.int64)
    if kind == "premium":
        base_ticks = base_price * 10**price_decimals
        return np.rint((x / base_ticks - 1.0) * 1e5).astype(np.int64) + 10_000
    raise ValueError(f"unknown price kline kind {kind!r}")


def funding_times_s(
    path: SymbolPath, start_ms: int | None, end_ms: int | None, limit: int, now_ms: int
) -> np.ndarray:
    """Funding times (epoch seconds, ascending): every funding_hours from 00:00 UTC,
    strictly after listing, before delisting, not after now."""
    spec = path.spec
    step = spec.funding_hours * 3600
    first = (spec.listed_ms // 1000) // step * step + step
    stop_s = now_ms // 1000
    if spec.delisted_ms is not None:
        stop_s = min(stop_s, spec.delisted_ms // 1000 - 1)
    last = stop_s // step * step
    if end_ms is not None:
        last = min(last, end_ms // 1000 // step * step)
    if start_ms is not None:
        lo = max(first, -(-start_ms // (step * 1000)) * step)
        hi = min(last, lo + (limit - 1) * step)
    else:
        hi = last
        lo = max(first, hi - (limit - 1) * step)
    if hi < lo:
        return np.empty(0, dtype=np.int64)
    return np.arange(lo, hi + 1, step, dtype=np.int64)


def funding_values(path: SymbolPath, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rate in 1e-8 units, mark price in 1e-8 units) at each funding time: the mark
    price is the mark-price close of the minute before; the rate follows the premium."""
    spec = path.spec
    if not len(times_s):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    close_ticks = path.level("minute", times_s // 60 - 1)["c"]
    mark = price_units(close_ticks, spec.price_decimals, "mark", spec.base_price)
    premium = price_units(close_ticks, spec.price_decimals, "premium", spec.base_price)
    noise = np.rint(3000 * normal(path.keys["funding"], times_s, 0)).astype(np.int64)
    rate = np.clip(premium + noise, -300_000, 300_000)
    return rate, mark
