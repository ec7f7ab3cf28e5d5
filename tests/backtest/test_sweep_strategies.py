"""Sweeps equal single runs; strategies, indicators and --param parsing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.data import FundingEvents
from backtest.indicators import ema_nb, rolling_max_prev_nb, rsi_nb, sma_nb
from backtest.metrics import METRIC_NAMES
from backtest.params import grid_product, parse_param, parse_params, single_values
from backtest.strategies import REGISTRY, get_strategy
from kline_lake.errors import InputError
from tests.support.backtest import make_bars


def _funding(bars):
    t = bars.open_time_us[::8] + 1000
    return FundingEvents(t, np.full(t.shape[0], 2e-4), np.full(t.shape[0], np.nan))


@pytest.mark.parametrize("strategy, grid", [
    ("sma_cross", {"fast": [3, 7, 20], "slow": [10, 40]}),
    ("ema_cross", {"fast": [5, 9], "slow": [21, 30]}),
    ("rsi", {"window": [7, 14], "lower": [25.0, 30.0], "upper": [70.0]}),
    ("donchian", {"window": [10, 30]}),
])
def test_sweep_rows_equal_single_runs(strategy, grid):
    bars = make_bars(800, seed=21)
    kw = dict(bars=bars, fee=0.0004, slippage_bps=2, direction="both",
              funding_events=_funding(bars), leverage=2)
    res = backtest.sweep(strategy, grid, **kw)
    frame = res.to_frame()
    assert list(frame.columns) == [*grid, *METRIC_NAMES]
    for row in frame.iter_rows(named=True):
        params = {k: row[k] for k in grid}
        single = backtest.run(strategy, params, **kw).metrics
        for name in METRIC_NAMES:
            np.testing.assert_allclose(row[name], single[name], rtol=1e-12, err_msg=name)
    assert frame["funding_paid"].abs().sum() > 0


def test_sweep_skips_invalid_points_and_rejects_an_all_invalid_grid():
    bars = make_bars(300, seed=2)
    res = backtest.sweep("sma_cross", {"fast": [5, 30], "slow": [20, 40]}, bars=bars)
    assert res.to_frame().select("fast", "slow").rows() == [(5, 20), (5, 40), (30, 40)]
    assert res.skipped[0]["fast"] == 30 and "fast must be < slow" in res.skipped[0]["reason"]
    assert res.best("sharpe")["fast"] in (5, 30)
    rows = json.loads(res.to_json())
    assert rows[0]["fast"] == 5 and "sharpe" in rows[0]
    with pytest.raises(InputError, match="no valid parameter"):
        backtest.sweep("sma_cross", {"fast": [50], "slow": [20]}, bars=bars)
    with pytest.raises(InputError, match="no parameter window"):
        backtest.sweep("sma_cross", {"window": [5]}, bars=bars)


def test_pure_python_sweep_matches_jit():
    bars = make_bars(300, seed=8)
    grid = {"fast": [4, 8], "slow": [16, 32]}
    a = backtest.sweep("sma_cross", grid, bars=bars, fee=0.001, jit=True).to_frame()
    b = backtest.sweep("sma_cross", grid, bars=bars, fee=0.001, jit=False).to_frame()
    assert a.equals(b)


def test_indicators_agree_with_pandas():
    x = make_bars(400, seed=3).close
    s = pd.Series(x)
    np.testing.assert_allclose(sma_nb(x, 20), s.rolling(20).mean(), rtol=1e-12)
    ema = s.ewm(span=12, adjust=False).mean().to_numpy().copy()
    ema[:11] = np.nan
    np.testing.assert_allclose(ema_nb(x, 12), ema, rtol=1e-12)
    np.testing.assert_allclose(rolling_max_prev_nb(x, 5)[5:], s.rolling(5).max().shift(1)[5:])
    # Wilder's RSI == pandas ewm(alpha=1/n) seeded with the first n-change mean
    d = np.diff(x)
    gain, loss = np.maximum(d, 0), np.maximum(-d, 0)
    g, lo = gain[:14].mean(), loss[:14].mean()
    expected = [100 - 100 / (1 + g / lo)]
    for k in range(14, d.shape[0]):
        g = (g * 13 + gain[k]) / 14
        lo = (lo * 13 + loss[k]) / 14
        expected.append(100 - 100 / (1 + g / lo))
    np.testing.assert_allclose(rsi_nb(x, 14)[14:], expected, rtol=1e-12)
    assert np.isnan(rsi_nb(x, 14)[:14]).all()


def test_builtin_strategies_and_user_functions():
    bars = make_bars(300, seed=4)
    assert set(REGISTRY) == {"sma_cross", "ema_cross", "rsi", "donchian", "hold"}
    for name, strat in REGISTRY.items():
        sig = strat.signals(bars, strat.resolve_params({}))
        assert sig.dtype == np.int8 and sig.shape == (300,), name
    hold_short = backtest.run("hold", bars=bars, direction="short")
    assert hold_short.trades["side"].to_list() == ["short"]

    def momentum(b, lookback=5):
        out = np.zeros(len(b), dtype=np.int8)
        out[lookback:] = np.sign(b.close[lookback:] - b.close[:-lookback])
        return out

    res = backtest.run(momentum, {"lookback": 3}, bars=bars, funding=False)
    assert res.strategy == "momentum" and res.metrics["n_trades"] > 0
    with pytest.raises(InputError, match="no parameter"):
        backtest.run(momentum, {"window": 3}, bars=bars)
    with pytest.raises(InputError, match="returned shape"):
        backtest.run(lambda b: np.zeros(3), bars=bars)
    with pytest.raises(InputError, match="unknown strategy"):
        get_strategy("macd")
    with pytest.raises(InputError, match="lower < upper"):
        backtest.run("rsi", {"lower": 80}, bars=bars)


def test_result_objects_carry_report_inputs():
    bars = make_bars(200, seed=6)
    res = backtest.run("sma_cross", {"fast": 5, "slow": 20}, bars=bars,
                       funding_events=_funding(bars))
    cols = {"open_time", "close", "signal", "entry", "exit", "position", "cash", "equity",
            "buy_hold_equity", "drawdown", "cum_fees", "cum_funding"}
    assert cols <= set(res.equity.columns)
    assert res.equity["entry"].sum() == res.trades.height
    pdf = res.to_pandas()
    assert pdf.index.name == "open_time" and len(pdf) == 200
    data = json.loads(res.to_json())
    assert data["strategy"] == "sma_cross" and data["config"]["fee_rate"] == 0.0005
    assert res.equity["cum_fees"][-1] == pytest.approx(res.metrics["fees_paid"])


def test_param_parsing():
    assert parse_param("fast=10") == ("fast", [10])
    assert parse_param("fast=5:50:5") == ("fast", list(range(5, 50, 5)))
    assert parse_param("lower=20:30:2.5") == ("lower", [20.0, 22.5, 25.0, 27.5])
    assert parse_param("w=3,5,8") == ("w", [3, 5, 8])
    assert parse_param("x=0.5") == ("x", [0.5])
    # float ranges step in decimal: the values are the decimals written, not accumulated
    # float error (0.1 + 2 * 0.1 == 0.30000000000000004), and the stop stays exclusive
    assert parse_param("sl=0.1:0.7:0.1") == ("sl", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert parse_param("sl=0.01:0.06:0.01")[1] == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert parse_param("x=1e-3:4e-3:1e-3")[1] == [0.001, 0.002, 0.003]
    for bad in ("fast", "fast=", "=3", "fast=1:2:0", "fast=5:1", "fast=a:b", "f=nan"):
        with pytest.raises(InputError):
            parse_param(bad)
    with pytest.raises(InputError, match="twice"):
        parse_params(["a=1", "a=2"])
    with pytest.raises(InputError, match="backtest sweep"):
        single_values({"fast": [1, 2]})
    assert grid_product({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
