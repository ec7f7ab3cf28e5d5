"""Batch kernels for parameter sweeps: a whole grid in one compiled, parallel call.

A grid point is a strategy parameter combination *and* a stop setting: the stop levels
``sl_stop[c]``/``tp_stop[c]`` (of `simulate_nb`; NaN = off) are per point, so a sweep
over 400 parameter combinations x 5 stop levels is one call over 2,000 points. Points
that differ only in their stops share their input: the crossover kernel indexes the
same indicator rows (``fast_idx[c]``, ``slow_idx[c]``), the generic kernel the same
signal row (``sig_idx[c]``); nothing is copied per level, and the crossover of one
row pair is computed once for all its levels. ``sl_trail`` (whether the
stop-loss trails) is one setting per call.

Each grid point simulates into its own scratch buffers (allocated inside the parallel
loop, so memory stays at a few bar-length arrays per core) and reduces them with the
same `metrics_nb` a single run uses, so a sweep row equals the single run's metrics.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from backtest.kernels import cross_signal_nb, simulate_nb
from backtest.metrics import metrics_nb
from backtest.records import METRICS_DT, ORDER_DT, TRADE_DT


@njit(cache=True)
def run_one_nb(open_, high, low, close, sig, fund_at_open, fund_intra, direction, fill_close,
               init_cash, size_frac, leverage, fee_rate, slip, mmr, qty_step, min_qty,
               min_notional, bars_per_year, bar_days, scratch, trades, out, k, sl_stop,
               tp_stop, sl_trail, inverse):
    """Simulate one signal array into reusable `scratch` (2, n: equity, position) and
    `trades` buffers and write its metrics to record `k` of `out`; returns the kernel
    status. `sl_stop`/`tp_stop`/`sl_trail` are `simulate_nb`'s stops (NaN = off),
    `inverse` its inverse-mirror flag (`backtest.inverse`)."""
    orders = np.empty(0, dtype=ORDER_DT)
    none = np.empty(0)
    status, _, n_tr, fees_paid, funding_paid, ruin_idx = simulate_nb(
        open_, high, low, close, sig, fund_at_open, fund_intra, direction, fill_close,
        init_cash, size_frac, leverage, fee_rate, slip, mmr, qty_step, min_qty, min_notional,
        scratch[0], scratch[1], none, none, none, orders, trades, sl_stop, tp_stop, sl_trail,
        inverse)
    metrics_nb(scratch[0], scratch[1], trades[:n_tr], init_cash, fees_paid, funding_paid,
               bars_per_year, bar_days, ruin_idx, out, k)
    return status


@njit(cache=True)
def _chunk_bounds(n_items, n_chunks, k):
    size = (n_items + n_chunks - 1) // n_chunks
    return min(k * size, n_items), min((k + 1) * size, n_items)


@njit(cache=True)
def _by_line_pair_nb(fast_idx, slow_idx, n_lines):
    """The grid points ordered by their (fast, slow) indicator rows, grid order within
    a pair (a stable sort): the points of one parameter combination under its stop
    levels come out consecutively, so a chunk computes their crossover once."""
    return np.argsort(fast_idx * n_lines + slow_idx, kind="mergesort")


@njit(cache=True, parallel=True)
def sweep_cross_nb(open_, high, low, close, lines, fast_idx, slow_idx, fund_at_open,
                   fund_intra, direction, fill_close, init_cash, size_frac, leverage, fee_rate,
                   slip, mmr, qty_step, min_qty, min_notional, bars_per_year, bar_days,
                   n_chunks, sl_stop, tp_stop, sl_trail, inverse):
    """Crossover grid: `lines` holds one indicator row per distinct window; grid point c
    crosses row ``fast_idx[c]`` with row ``slow_idx[c]`` under the stops ``sl_stop[c]``,
    ``tp_stop[c]`` (float arrays of the grid's length, NaN = off); `inverse` runs an
    inverse contract's mirror (`backtest.inverse`; its negated crossover signal is the
    caller's swapped fast/slow indices). The grid is split in
    `n_chunks` parallel chunks (one per thread), each reusing one set of scratch buffers;
    a chunk walks its points by indicator-row pair (`_by_line_pair_nb`) and computes a
    pair's crossover once for all the stop levels that share it.
    Returns (metrics, statuses): a METRICS_DT record per grid point and its status."""
    n_combo = fast_idx.shape[0]
    n = close.shape[0]
    out = np.empty(n_combo, dtype=METRICS_DT)
    status = np.zeros(n_combo, dtype=np.int64)
    order = _by_line_pair_nb(fast_idx, slow_idx, lines.shape[0])
    for k in prange(n_chunks):
        lo, hi = _chunk_bounds(n_combo, n_chunks, k)
        scratch = np.empty((2, n))
        trades = np.empty(n + 1, dtype=TRADE_DT)
        sig = np.zeros(0, dtype=np.int8)
        for j in range(lo, hi):
            c = order[j]
            if j == lo or fast_idx[c] != fast_idx[order[j - 1]] \
                    or slow_idx[c] != slow_idx[order[j - 1]]:
                sig = cross_signal_nb(lines[fast_idx[c]], lines[slow_idx[c]])
            status[c] = run_one_nb(open_, high, low, close, sig, fund_at_open, fund_intra,
                                   direction, fill_close, init_cash, size_frac, leverage,
                                   fee_rate, slip, mmr, qty_step, min_qty, min_notional,
                                   bars_per_year, bar_days, scratch, trades, out, c,
                                   sl_stop[c], tp_stop[c], sl_trail, inverse)
    return out, status


@njit(cache=True, parallel=True)
def sweep_signals_nb(open_, high, low, close, sigs, sig_idx, fund_at_open, fund_intra,
                     direction, fill_close, init_cash, size_frac, leverage, fee_rate, slip,
                     mmr, qty_step, min_qty, min_notional, bars_per_year, bar_days, n_chunks,
                     sl_stop, tp_stop, sl_trail, inverse):
    """Generic grid: grid point c simulates the int8 signal row ``sigs[sig_idx[c]]``
    under the stops ``sl_stop[c]``, ``tp_stop[c]`` (see `sweep_cross_nb`)."""
    n_combo = sig_idx.shape[0]
    n = close.shape[0]
    out = np.empty(n_combo, dtype=METRICS_DT)
    status = np.zeros(n_combo, dtype=np.int64)
    for k in prange(n_chunks):
        lo, hi = _chunk_bounds(n_combo, n_chunks, k)
        scratch = np.empty((2, n))
        trades = np.empty(n + 1, dtype=TRADE_DT)
        for c in range(lo, hi):
            status[c] = run_one_nb(open_, high, low, close, sigs[sig_idx[c]], fund_at_open,
                                   fund_intra, direction, fill_close, init_cash, size_frac,
                                   leverage, fee_rate, slip, mmr, qty_step, min_qty,
                                   min_notional, bars_per_year, bar_days, scratch, trades,
                                   out, c, sl_stop[c], tp_stop[c], sl_trail, inverse)
    return out, status
