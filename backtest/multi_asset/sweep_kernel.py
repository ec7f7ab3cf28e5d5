"""The portfolio sweep kernel: every combination of a grid in one compiled, parallel call.

Each combination is the very simulation of a single `backtest.portfolio` run
(`kernel.run_portfolio_nb`, same code, same order of operations) on its own target
weights, stored compactly as the rebalance rows only; it is reduced at once to the
metrics of a single run (`backtest.metrics.metrics_nb` on its equity and gross exposure,
no trades) and its per-asset accumulator, so no per-bar array outlives its combination.
Stop levels are grid dimensions of the same call: combination ``c`` runs the weights
``w_rows[w_of[c]]`` under the stops ``sl_stop[c]``/``tp_stop[c]``, so the stop levels of
one parameter combination share its weight rows (held once). The grid is cut into
`n_chunks` parallel chunks (one per thread), each reusing one pair of equity/exposure
scratch buffers. Pure: arrays in, arrays out, status codes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from backtest.metrics import metrics_nb
from backtest.multi_asset.kernel import N_ACC, run_portfolio_nb
from backtest.multi_asset.records import ORDER_DT
from backtest.records import METRICS_DT, TRADE_DT


@njit(cache=True)
def _chunk_bounds(n_items, n_chunks, k):
    size = (n_items + n_chunks - 1) // n_chunks
    return min(k * size, n_items), min((k + 1) * size, n_items)


@njit(cache=True, parallel=True)
def sweep_portfolio_nb(open_, close, tradable, w_rows, row_of, fund_at_open, fund_intra,
                       delist_idx, inverse, lot_step, fill_close, init_cash, fee_rate, slip,
                       leverage, threshold, bars_per_year, bar_days, n_chunks, w_of, high, low,
                       sl_stop, tp_stop, sl_trail):
    """Simulate combination ``c`` on the weights ``w_rows[w_of[c]]`` (rebalance rows x
    assets; bar ``t`` rebalances to row ``row_of[t]`` when ``row_of[t] >= 0``) with the
    stops ``sl_stop[c]``/``tp_stop[c]`` (NaN = off); the other arguments are
    `kernel.simulate_portfolio_nb`'s, shared by every combination.

    Returns ``(metrics, acc, n_orders, status)``: a METRICS_DT record per combination
    (``fees_paid``/``funding_paid`` 0: the caller sums them from `acc` as a single run
    does), its ``(assets, N_ACC)`` accumulator, its order count and kernel status."""
    n_combo = w_of.shape[0]
    n, m = close.shape
    out = np.empty(n_combo, dtype=METRICS_DT)
    acc = np.zeros((n_combo, m, N_ACC))
    n_orders = np.zeros(n_combo, dtype=np.int64)
    status = np.zeros(n_combo, dtype=np.int64)
    no_trades = np.empty(0, dtype=TRADE_DT)
    for k in prange(n_chunks):
        lo, hi = _chunk_bounds(n_combo, n_chunks, k)
        equity = np.empty(n)
        gross = np.empty(n)
        unused = np.empty(0)
        unused_pos = np.empty((0, m))
        count_only = np.empty(0, dtype=ORDER_DT)
        for c in range(lo, hi):
            st, n_ord = run_portfolio_nb(open_, close, tradable, w_rows[w_of[c]], row_of,
                                         fund_at_open, fund_intra, delist_idx, inverse,
                                         lot_step, fill_close, init_cash, fee_rate, slip,
                                         leverage, threshold, equity, gross, unused, unused,
                                         unused, unused, unused_pos, acc[c], count_only, high,
                                         low, sl_stop[c], tp_stop[c], sl_trail)
            status[c] = st
            n_orders[c] = n_ord
            metrics_nb(equity, gross, no_trades, init_cash, 0.0, 0.0, bars_per_year, bar_days,
                       -1, out, c)
    return out, acc, n_orders, status
