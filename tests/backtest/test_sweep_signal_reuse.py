"""The crossover sweep computes one signal per indicator-row pair for all its stop levels
(`backtest.batch.sweep_cross_nb`), and `simulate_nb` caches a position's stop levels per
fill (issue 14's benchmark): every grid point must still equal its own run from scratch,
whatever the chunking (chunks that split a pair's levels, more chunks than pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.batch import run_one_nb, sweep_cross_nb
from backtest.indicators import ma_lines_nb
from backtest.kernels import BOTH, cross_signal_nb
from backtest.records import METRICS_DT, TRADE_DT
from tests.support.backtest import make_bars

N_BARS = 1_500


def _grid():
    windows = np.array([4, 9, 25, 60], dtype=np.int64)
    pairs = [(0, 2), (1, 3), (0, 3), (2, 1)]
    levels = [(0.01, np.nan), (0.02, 0.03), (np.nan, 0.02), (np.nan, np.nan)]
    fast = np.array([f for _ in levels for f, _ in pairs], dtype=np.int64)  # level-major
    slow = np.array([s for _ in levels for _, s in pairs], dtype=np.int64)
    sl = np.repeat([lv[0] for lv in levels], len(pairs)).astype(np.float64)
    tp = np.repeat([lv[1] for lv in levels], len(pairs)).astype(np.float64)
    return windows, fast, slow, sl, tp


def _scalars():  # direction .. min_notional, then bars_per_year, bar_days
    return (BOTH, True, 10_000.0, 1.0, 2.0, 0.0005, 0.0002, 0.05, 0.0, 0.0, 0.0,
            8760.0, 1.0 / 24.0)


@pytest.mark.parametrize("trail", [False, True])
@pytest.mark.parametrize("n_chunks", [1, 3, 7, 16])
def test_each_point_equals_its_own_run(n_chunks, trail):
    b = make_bars(N_BARS, seed=5, vol=0.012)
    windows, fast, slow, sl, tp = _grid()
    lines = ma_lines_nb(b.close, windows, False)
    fund = np.zeros(N_BARS)
    fund[::8] = 0.0001 * b.close[::8]  # funding resets the cached ruin price too
    got, status = sweep_cross_nb(b.open, b.high, b.low, b.close, lines, fast, slow, fund,
                                 np.zeros(N_BARS), *_scalars(), n_chunks, sl, tp, trail, False)
    want = np.empty(fast.shape[0], dtype=METRICS_DT)
    scratch, trades = np.empty((2, N_BARS)), np.empty(N_BARS + 1, dtype=TRADE_DT)
    for c in range(fast.shape[0]):
        sig = cross_signal_nb(lines[fast[c]], lines[slow[c]])
        st = run_one_nb(b.open, b.high, b.low, b.close, sig, fund, np.zeros(N_BARS),
                        *_scalars(), scratch, trades, want, c, sl[c], tp[c], trail, False)
        assert status[c] == st
    for name in METRICS_DT.names:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # the stops act: a pair's points differ across its levels
    equity = got["final_equity"].reshape(4, 4)
    assert all(np.unique(equity[:, p]).shape[0] == 4 for p in range(4))
