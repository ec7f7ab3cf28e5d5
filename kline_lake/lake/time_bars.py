"""Time bars from every trade in one Numba pass: the fast path of `bars.build_bars`.

Trades arrive in time order (a lake file is sorted by trade id, and the exchange's trade
ids grow with time), so a time bar is a run of consecutive rows with the same
``time - time % width``: one pass over the time, price, quantity, quote-quantity and maker
columns opens a bar when the bucket changes and folds each row into it -- no hashing,
no sort, only the five columns read.

Exact like the general path: quantities and quote quantities are integers of 1e-8 (the
exchange prints both on that grid or a coarser one: spot 8 decimals, USD-M the product's
grid, COIN-M's base quantity 8 decimals), summed in int64 and divided once at the end
(one correctly rounded division, or exact fractions past 2**53 units), so a bar's volume
and quote volume are the nearest doubles of the exact decimal sums -- the exchange
kline's printed values.

Sums never overflow: each is kept as ``hi * 2**62 + lo`` (the kernel carries into `hi`
when `lo` reaches 2**62), and a bar whose sum needs `hi` is converted through Python's
exact integers; everything else is one NumPy division.

Status codes (`_time_bars_nb`): ``OK``; ``UNSORTED`` when a row's time is earlier than
the previous row's (the caller then sorts the chunk by time, stably, and runs again, so
open and close are always the earliest and latest trades).

Pure: arrays in, arrays out.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import polars as pl
from numba import njit

OK, UNSORTED = 0, 1
SCALE = 1e8  # quantities and quote quantities as integers of 1e-8
_CARRY = 2**62
_HALF = 2**31
_EXACT = 2**53  # integers below are exact doubles
COLUMNS = ("time", "price", "quantity", "quote_quantity", "is_buyer_maker")
_PRICES = ("open", "high", "low", "close")
SUMS = ("qu", "qq", "bqu", "bqq")  # volume, quote volume, taker-buy volume and quote


@njit(cache=True)
def _time_bars_nb(t_us, price, qty, quote, maker, width_us, bar, px, n, lo, hi):
    """Fold time-ordered trades into bars of `width_us`: bar open (us), prices (open, high,
    low, close), trade count and the four sums (`SUMS`) as lo/hi pairs. Returns (status,
    bar count)."""
    k = -1
    for i in range(t_us.shape[0]):
        if i and t_us[i] < t_us[i - 1]:
            return UNSORTED, 0
        b = t_us[i] - t_us[i] % width_us
        p = price[i]
        if k < 0 or b != bar[k]:
            k += 1
            bar[k] = b
            px[k, 0], px[k, 1], px[k, 2] = p, p, p
            n[k] = 0
            for j in range(4):
                lo[k, j], hi[k, j] = 0, 0
        elif p > px[k, 1]:
            px[k, 1] = p
        elif p < px[k, 2]:
            px[k, 2] = p
        px[k, 3] = p
        n[k] += 1
        q_u = np.int64(np.rint(qty[i] * SCALE))
        x_u = np.int64(np.rint(quote[i] * SCALE))
        last = 4 if not maker[i] else 2
        for j in range(last):
            lo[k, j] += q_u if j % 2 == 0 else x_u
            if lo[k, j] >= _CARRY:
                lo[k, j] -= _CARRY
                hi[k, j] += 1
    return OK, k + 1


def _run(frame: pl.DataFrame, width_us: int) -> dict[str, np.ndarray] | None:
    """The kernel over one frame whose columns are single Arrow chunks (zero-copy views);
    None when its times are out of order."""
    t_us = frame["time"].cast(pl.Int64).to_numpy()
    arrays = [frame[name].cast(pl.Float64).to_numpy() for name in ("price", "quantity", "quote_quantity")]
    maker = frame["is_buyer_maker"].to_numpy()
    span = (int(t_us[-1]) - int(t_us[0])) // width_us + 2 if len(t_us) else 0
    rows = max(0, min(len(t_us), span))  # bars <= rows, and <= the buckets the span covers
    out = {"bar": np.empty(rows, np.int64), "px": np.empty((rows, 4)), "trades": np.empty(rows, np.int64),
           "lo": np.empty((rows, 4), np.int64), "hi": np.empty((rows, 4), np.int64)}
    if t_us[-1] < t_us[0]:
        return None
    status, count = _time_bars_nb(t_us, *arrays, maker, width_us, out["bar"], out["px"],
                                  out["trades"], out["lo"], out["hi"])
    if status != OK:
        return None
    return {name: col[:count] for name, col in out.items()}


def chunk_bars(frame: pl.DataFrame, width_us: int) -> list[dict[str, np.ndarray]]:
    """Partial bars of one chunk of trades (columns `COLUMNS`, time order; a chunk out of
    order is sorted by time first, keeping the order of equal times), run over the
    frame's own Arrow chunks so no column is copied."""
    if not frame["time"].is_sorted():
        frame = frame.sort("time", maintain_order=True)
    if len(set(frame.n_chunks("all"))) > 1:  # columns chunked differently: align them
        frame = frame.rechunk()
    parts, offset = [], 0
    for length in frame["time"].chunk_lengths():
        part = _run(frame.slice(offset, length), width_us) if length else None
        if length and part is None:  # times out of order after all: one sorted run
            return [p for p in [_run(frame.sort("time", maintain_order=True).rechunk(), width_us)]
                    if p is not None]
        if part is not None:
            parts.append(part)
        offset += length
    return parts


def merge_chunks(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Partial bars of consecutive chunks -> whole bars (a bar may straddle chunks, and
    chunks out of order are put in order by bar, stably)."""
    parts = [p for p in parts if len(p["bar"])]
    if not parts:
        return {"bar": np.empty(0, np.int64), "px": np.empty((0, 4)), "trades": np.empty(0, np.int64),
                "lo": np.empty((0, 4), np.int64), "hi": np.empty((0, 4), np.int64)}
    cat = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    bars = cat["bar"]
    if len(bars) > 1 and (np.diff(bars) < 0).any():
        order = np.argsort(bars, kind="stable")
        cat = {name: col[order] for name, col in cat.items()}
        bars = cat["bar"]
    starts = np.flatnonzero(np.r_[True, bars[1:] != bars[:-1]])
    if len(starts) == len(bars):
        return cat
    ends = np.r_[starts[1:], len(bars)] - 1
    px = cat["px"]
    merged_px = np.column_stack([px[starts, 0], np.maximum.reduceat(px[:, 1], starts),
                                 np.minimum.reduceat(px[:, 2], starts), px[ends, 3]])
    # lo < 2**62: sum its 31-bit halves separately (no int64 overflow for any group size
    # below 2**31 parts), then carry
    top = np.add.reduceat(cat["lo"] >> 31, starts, axis=0)
    low = np.add.reduceat(cat["lo"] & (_HALF - 1), starts, axis=0)
    top += low >> 31
    low &= _HALF - 1
    hi = np.add.reduceat(cat["hi"], starts, axis=0) + (top >> 31)
    lo = ((top & (_HALF - 1)) << 31) | low
    return {"bar": bars[starts], "px": merged_px, "trades": np.add.reduceat(cat["trades"], starts),
            "lo": lo, "hi": hi}


def _decimal_floats(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """hi * 2**62 + lo integers of 1e-8 -> nearest doubles. Below 2**53 the integer is an
    exact double and one division rounds correctly; above, converting it would round
    first, so those bars (sums past ~9e7: one Python conversion per bar, never per
    trade) go through exact fractions."""
    out = lo / SCALE
    for i in np.flatnonzero((hi != 0) | (lo >= _EXACT)):
        out[i] = float(Fraction(int(hi[i]) * _CARRY + int(lo[i]), 10**8))
    return out


def to_frame(bars: dict[str, np.ndarray], width_us: int, schema: pl.Schema) -> pl.DataFrame:
    """Whole bars -> the kline-schema frame."""
    opens = bars["bar"]
    sums = {name: _decimal_floats(bars["lo"][:, j], bars["hi"][:, j]) for j, name in enumerate(SUMS)}
    cols = {
        "open_time": opens, **{name: bars["px"][:, j] for j, name in enumerate(_PRICES)},
        "volume": sums["qu"], "close_time": opens + width_us - 1_000, "quote_volume": sums["qq"],
        "trades": bars["trades"], "taker_buy_volume": sums["bqu"], "taker_buy_quote_volume": sums["bqq"],
    }
    return pl.DataFrame({name: pl.Series(name, cols[name]).cast(dtype) for name, dtype in schema.items()})
