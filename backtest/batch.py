"""Batch kernels for parameter sweeps: a whole grid in one compiled, parallel call.

Each grid point simulates into its own scratch buffers (allocated inside the parallel
loop, so memory stays at a few bar-length arrays per core) and reduces them with the
same `metrics_nb` a single run uses, so a sweep row equals the single run's metrics.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from backtest.kernels import N_ORDER_COLS, N_TRADE_COLS, cross_signal_nb, simulate_nb
from backtest.metrics import N_METRICS, metrics_nb


@njit(cache=True)
def run_one_nb(open_, high, low, close, sig, fund_at_open, fund_intra, direction, fill_close,
               init_cash, size_frac, leverage, fee_rate, slip, mmr, bars_per_year, bar_days,
               out_row):
    """Simulate one signal array and write its metrics to `out_row`; returns the status."""
    n = close.shape[0]
    equity = np.empty(n)
    pos = np.empty(n)
    cash = np.empty(n)
    fees = np.empty(n)
    fund = np.empty(n)
    orders = np.empty((0, N_ORDER_COLS))
    trades = np.empty((n + 1, N_TRADE_COLS))
    status, _, n_tr = simulate_nb(open_, high, low, close, sig, fund_at_open, fund_intra,
                                  direction, fill_close, init_cash, size_frac, leverage,
                                  fee_rate, slip, mmr, equity, pos, cash, fees, fund, orders,
                                  trades)
    fees_paid = fees[n - 1] if n > 0 else 0.0
    funding_paid = fund[n - 1] if n > 0 else 0.0
    metrics_nb(equity, pos, trades[:n_tr], init_cash, fees_paid, funding_paid, bars_per_year,
               bar_days, out_row)
    return status


@njit(cache=True, parallel=True)
def sweep_cross_nb(open_, high, low, close, lines, fast_idx, slow_idx, fund_at_open,
                   fund_intra, direction, fill_close, init_cash, size_frac, leverage, fee_rate,
                   slip, mmr, bars_per_year, bar_days):
    """Crossover grid: `lines` holds one indicator row per distinct window; grid point c
    crosses row ``fast_idx[c]`` with row ``slow_idx[c]``. Returns (metrics, statuses)."""
    n_combo = fast_idx.shape[0]
    out = np.empty((n_combo, N_METRICS))
    status = np.zeros(n_combo, dtype=np.int64)
    for c in prange(n_combo):
        sig = cross_signal_nb(lines[fast_idx[c]], lines[slow_idx[c]])
        status[c] = run_one_nb(open_, high, low, close, sig, fund_at_open, fund_intra,
                               direction, fill_close, init_cash, size_frac, leverage, fee_rate,
                               slip, mmr, bars_per_year, bar_days, out[c])
    return out, status


@njit(cache=True, parallel=True)
def sweep_signals_nb(open_, high, low, close, sigs, fund_at_open, fund_intra, direction,
                     fill_close, init_cash, size_frac, leverage, fee_rate, slip, mmr,
                     bars_per_year, bar_days):
    """Generic grid: one precomputed int8 signal row per grid point."""
    n_combo = sigs.shape[0]
    out = np.empty((n_combo, N_METRICS))
    status = np.zeros(n_combo, dtype=np.int64)
    for c in prange(n_combo):
        status[c] = run_one_nb(open_, high, low, close, sigs[c], fund_at_open, fund_intra,
                               direction, fill_close, init_cash, size_frac, leverage, fee_rate,
                               slip, mmr, bars_per_year, bar_days, out[c])
    return out, status
