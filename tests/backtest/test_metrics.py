"""Each metric on small worked numbers."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from backtest import metrics as M
from backtest.records import TRADE_CLOSED, TRADE_DT, TRADE_OPEN

EQ = [110.0, 99.0, 121.0]  # from 100: +10 %, -10 %, +22.2 %


def test_returns_start_from_init_cash():
    np.testing.assert_allclose(M.returns(EQ, 100.0), [0.1, -0.1, 121 / 99 - 1])


def test_final_total_return_and_cagr():
    assert M.final_equity(EQ) == 121.0
    assert M.total_return(EQ, 100.0) == pytest.approx(0.21)
    # 3 daily bars = 3/365 years: 1.21 ** (365/3) - 1
    assert M.cagr(EQ, 100.0, 1.0) == pytest.approx(1.21 ** (365 / 3) - 1, rel=1e-12)
    # one year of hourly bars doubling: cagr = 100 %
    assert M.cagr(np.full(8760, 200.0), 100.0, 1 / 24) == pytest.approx(1.0)
    assert M.cagr([0.0], 100.0, 1.0) == -1.0


def test_sharpe_and_sortino_annualize_on_365_days():
    r = [0.1, -0.1, 121 / 99 - 1]
    mean, sd = statistics.mean(r), statistics.stdev(r)  # sample std (ddof=1)
    assert M.sharpe(r, 365.0) == pytest.approx(mean / sd * math.sqrt(365), rel=1e-12)
    assert M.sharpe(r, 365.0) == pytest.approx(8.6999, rel=1e-4)
    downside = math.sqrt((0 + 0.01 + 0) / 3)
    assert M.sortino(r, 365.0) == pytest.approx(mean / downside * math.sqrt(365), rel=1e-12)
    assert math.isnan(M.sharpe([0.01, 0.01], 365.0))  # zero variance: undefined
    assert M.bars_per_year(1 / 24) == pytest.approx(8760)


def test_max_drawdown_and_duration():
    assert M.max_drawdown(EQ, 100.0) == pytest.approx(0.1)
    assert M.max_drawdown_duration(EQ, 100.0, 1.0) == 1.0
    eq = [100, 90, 80, 120, 60, 70]  # peak 120 -> 60: 50 %, two bars under water at the end
    assert M.max_drawdown(eq, 100.0) == pytest.approx(0.5)
    assert M.max_drawdown_duration(eq, 100.0, 0.5) == 1.0  # 2 bars of half a day
    assert M.max_drawdown([90.0], 100.0) == pytest.approx(0.1)  # peak starts at init cash


def test_calmar():
    assert M.calmar(0.3, 0.15) == pytest.approx(2.0)
    assert math.isnan(M.calmar(0.3, 0.0))


def test_trade_statistics_use_closed_trades():
    pnl = [10.0, -5.0, 20.0, 3.0]
    closed = [True, True, True, False]
    assert M.win_rate(pnl, closed) == pytest.approx(2 / 3)
    assert M.profit_factor(pnl, closed) == pytest.approx(6.0)
    assert M.expectancy(pnl, closed) == pytest.approx(25 / 3)
    assert M.profit_factor([1.0, 2.0]) == math.inf
    assert math.isnan(M.win_rate([], []))


def test_exposure():
    assert M.exposure([0.0, 1.5, -2.0, 0.0]) == 0.5


def test_compute_metrics_bundle():
    trades = np.zeros(4, dtype=TRADE_DT)
    trades["pnl"] = [10.0, -5.0, 20.0, 3.0]
    trades["status"] = [TRADE_CLOSED] * 3 + [TRADE_OPEN]
    m = M.compute_metrics(EQ, [0.0, 1.0, 1.0], trades, 100.0, 1.5, -0.25, 1.0)
    assert list(m) == list(M.METRIC_NAMES)
    assert m["n_trades"] == 4 and isinstance(m["n_trades"], int)
    assert m["fees_paid"] == 1.5 and m["funding_paid"] == -0.25
    assert m["exposure"] == pytest.approx(2 / 3)
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.1)
    assert m["win_rate"] == pytest.approx(2 / 3)
